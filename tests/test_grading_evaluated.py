"""An answer left unevaluated where the question asks for a value (`grading.evaluated`), as `judge` reads it."""

from __future__ import annotations

import pytest

from sftkit.grading.evaluated import asks_value, unevaluated
from sftkit.grading.judge import CORRECT, WRONG, judge, relevant_question

SIMPLIFY, COMPUTE = "Simplify $\\sqrt{242}$.", "Compute $\\dbinom{31}{28}$."
VALUE = "If $x^2 - x - 1 = 0$, what is the value of $x^3 - 2x + 1$?"
SUBSTITUTED = "\\left(\\dfrac{1 + \\sqrt{5}}{2}\\right)^3 - 2\\left(\\dfrac{1 + \\sqrt{5}}{2}\\right) + 1"


@pytest.mark.parametrize(
    "gold, answer, question",
    [("11\\sqrt2", "\\sqrt{242} \\approx 15.6", SIMPLIFY),  # a radicand with a square factor
     ("4495", "\\binom{31}{28} = \\dfrac{31!}{28!3!}", COMPUTE),  # factorials
     ("4495", "31! / (28! * 3!)", COMPUTE),
     ("4495", "\\dbinom{31}{3}", COMPUTE),  # a binomial coefficient
     ("2", f"{SUBSTITUTED}, {SUBSTITUTED.replace('1 +', '1 -')}", VALUE),  # arithmetic on literals
     ("120", "2 \\cdot 60", "Calculate the number of minutes in two hours."),
     ("4", "\\sqrt{16}", "Evaluate $\\sqrt{16}$.")],
)  # fmt: skip
def test_unevaluated_answers_to_a_question_that_asks_for_a_value_are_wrong(gold: str, answer: str, question: str):
    assert judge(gold, answer, question) == WRONG
    assert judge(gold, answer) == CORRECT  # equal in value: without the question, math-verify's verdict stands


@pytest.mark.parametrize(
    "gold, answer, question",
    [("11\\sqrt2", "11\\sqrt{2} \\approx 15.56", SIMPLIFY),  # simplified, then approximated
     ("11\\sqrt2", "11 \\sqrt{2}", SIMPLIFY),
     ("4495", "4495", COMPUTE),
     ("4495", "\\binom{31}{28} = 4495", COMPUTE),
     ("0.75", "\\frac{3}{4}", "Compute $3 \\div 4$."),  # a fraction is a value
     ("\\frac{3}{4}", "3/4", "Compute $3 \\div 4$."),
     ("-3", "-3", "Evaluate $f(2)$."),  # a sign is no operation
     ("300000", "3 \\times 10^{5}", "Compute $600 \\cdot 500$."),  # scientific notation
     ("2x+1", "1+2x", "Simplify $x + x + 1$."),  # not a plain value: math-verify compares
     ("3+2\\sqrt2", "2\\sqrt{2} + 3", "Simplify $(1+\\sqrt2)^2$."),
     ("1024", "2^{10}", "How many subsets does a 10-element set have?")],  # no value asked: not this rule's business
)  # fmt: skip
def test_values_and_other_answers_are_left_to_math_verify(gold: str, answer: str, question: str):
    assert judge(gold, answer, question) == CORRECT


def test_questions_that_ask_for_a_value():
    for question in (SIMPLIFY, COMPUTE, VALUE, "Evaluate $\\log_2 8$.", "Find the value of $k$.", "Calculate it."):
        assert asks_value(question) and relevant_question(question) == question
    for question in ("How many subsets does a 10-element set have?", "Find $x$.", "", None):
        assert not asks_value(question) and relevant_question(question) is None


def test_only_plain_value_golds_without_the_operation():
    assert unevaluated("24", "4!") and unevaluated("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt{12}}{4}")
    assert not unevaluated("4!", "4!")  # the gold holds the operation itself: not a plain value
    assert not unevaluated("2\\sqrt{8}", "\\sqrt{32}")  # nor an unsimplified gold
    assert not unevaluated("x+1", "1+x") and not unevaluated("12", "12")
