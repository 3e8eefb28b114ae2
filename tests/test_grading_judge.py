"""Gold answers as the MATH dataset writes them, against answers as models write them (`grading.judge`)."""

from __future__ import annotations

import logging
import threading

import pytest

from sftkit.grading.judge import CORRECT, UNPARSEABLE, WRONG, clean, judge, parse_math
from sftkit.grading.quiet import quiet_math_verify

M = "\\begin{{pmatrix}} {} \\\\ {} \\end{{pmatrix}}"  # a column vector

# (gold, final answer, graded correct?)
CASES = [
    # multiple choice, one letter or several
    ("\\text{(A)}", "A", True),
    ("\\text{(A)}", "(A)", True),
    ("\\text{(A)}", "\\textbf{(A)}", True),
    ("\\text{(A)}", "(B)", False),
    ("(\\text{E})", "E", True),
    ("\\text{A,D}", "A,D", True),
    ("\\text{A,D}", "D, A", True),
    ("\\text{A,D}", "A, C", False),
    ("\\text{A,C,F}", "\\text{A, C, F}", True),
    ("\\text{A,C,F}", "A, C", False),
    # currency, percent, degrees, units
    ("\\$3800", "3800", True),
    ("\\$3800", "\\$3,800", True),
    ("\\$3800", "3080", False),
    ("\\$32,\\!348", "\\$32,348", True),
    ("-\\$0.50", "-0.50", True),
    ("10\\%", "10\\%", True),
    ("10\\%", "10", True),
    ("10\\%", "12\\%", False),
    ("0.5", "50\\%", True),
    ("90^\\circ", "90", True),
    ("90^\\circ", "90^{\\circ}", True),
    ("90^\\circ", "90°", True),
    ("90^\\circ", "45^\\circ", False),
    ("\\cos 58^\\circ", "\\cos 58^\\circ", True),
    ("5\\text{ cm}", "5", True),
    ("15\\mbox{ cm}^2", "15 \\text{ cm}^2", True),
    ("15\\mbox{ cm}^2", "16\\text{cm}^2", False),
    ("\\frac{68}{3}\\text{ pounds}", "\\frac{68}{3}", True),
    ("\\text{4:30 p.m.}", "4:30 \\text{ p.m.}", True),
    # fractions and numbers as MATH writes them
    ("\\dfrac{17}{50}", "\\frac{17}{50}", True),
    ("\\frac12", "0.5", True),
    ("\\frac 59", "5/9", True),
    ("\\frac9{19}", "\\frac{9}{19}", True),
    ("\\frac{270}7", "\\frac{270}{7}", True),
    ("\\frac \\pi4 + 2", "\\frac{\\pi}{4} + 2", True),
    ("\\frac \\pi4 + 2", "\\frac{\\pi}{5} + 2", False),
    ("1\\frac{4}{5}", "1.8", True),
    ("10,\\!080", "10080", True),
    ("11,\\! 111,\\! 111,\\! 100", "11111111100", True),
    (".0000672", "6.72 \\times 10^{-5}", True),
    # intervals: the brackets matter
    ("x \\in [2, 5)", "[2,5)", True),
    ("[2, 5)", "x \\in [2, 5)", True),
    ("(1,2)", "[1,2]", False),
    ("(3,4]", "(3, 4]", True),
    ("(3,4]", "[3,4]", False),
    ("(0,9) \\cup (9,36)", "(0,9)\\cup(9,36)", True),
    # sets, tuples, lists of answers
    ("(15,-29)", "(15, -29)", True),
    ("(15,-29)", "(-29, 15)", False),
    ("(3,4,5)", "a = 3, b = 4, c = 5", True),
    ("(3,4,5)", "a = 3, b = 5, c = 4", False),
    ("1, -2", "-2, 1", True),
    ("1, -2", "x = 1, x = -2", True),
    ("1, -2", "1", False),
    ("\\{1\\pm\\sqrt{5},-2\\}", "-2, 1+\\sqrt{5}, 1-\\sqrt{5}", True),
    # plus-minus, matrices
    ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}", True),
    ("1 \\pm \\sqrt{19}", "1 + \\sqrt{19}", False),
    ("-6, -3, -2, -1, 1, 2, 3, 6", "\\pm 1, \\pm 2, \\pm 3, \\pm 6", True),
    (M.format("-1/3", "2/3"), M.format("-\\frac{1}{3}", "\\frac{2}{3}"), True),
    (M.format("-1/3", "2/3"), M.format("\\frac{2}{3}", "-\\frac{1}{3}"), False),
    # equations against their right side, chains of equalities
    ("y = 2x + 3", "2x+3", True),
    ("y = 2x + 3", "y=2x+3", True),
    ("y = 2x + 3", "y = 3x + 2", False),
    ("x=5", "5", True),
    ("24", "4! = 24", True),
    ("5", "a+b = 2+3 = 5", True),
    ("1000000", "(101-1)^3 = 100^3 = 1{,}000{,}000", True),
    # words
    ("\\text{Evelyn}", "Evelyn", True),
    ("\\text{east}", "\\text{West}", False),
]  # fmt: skip


@pytest.mark.parametrize("gold, answer, expected", CASES, ids=[f"{i}:{c[0]}|{c[1]}" for i, c in enumerate(CASES)])
def test_math_gold_answers(gold: str, answer: str, expected: bool):
    verdict = judge(gold, answer)
    assert (verdict == CORRECT) == expected, (clean(gold), clean(answer), verdict)


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("90^\\circ", "90"),
        ("15\\mbox{ cm}^2", "15"),
        ("x \\in [2, 5)", "[2, 5)"),
        ("\\displaystyle \\frac12", "\\frac{1}{2}"),
        ("11,\\! 111", "11111"),
        ("-\\$0.50", "-0.50"),
        ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),  # rows kept
    ],
)
def test_clean_math_notation(raw: str, cleaned: str):
    assert clean(raw) == cleaned


def test_choice_verdicts():
    assert judge("\\text{(C)}", "the third one") == UNPARSEABLE
    assert judge("\\text{A,D}", "A") == WRONG


@pytest.mark.parametrize(
    "gold, answer, expected",
    [
        ("[\\frac{1}{2}, 8]", "\\frac12 \\le x \\le 8", True),  # an inequality for an interval gold
        ("[\\frac{1}{2}, 8]", "\\frac12 < x \\le 8", False),
        ("(-\\infty,-5)", "k < -5", True),
        ("(-\\infty,-5)", "k \\le -5", False),
        ("25\\%", "25", True),  # a percentage gold, the bare number
        ("25\\%", "30", False),
        ("6", "6\\text { square inches}", True),  # \text with a space before its brace
        ("6", "7\\text { square inches}", False),
        ("f(x) = 1", "f(y) = 1", True),  # the function's variable name is free
        ("f(x) = 1", "f(y) = y", False),
        ("f(x) = x", "f(y) = y", True),
        ("5", "five integers", True),  # number words
        ("5", "six integers", False),
        ("\\frac{1}{12}", "0.0833333333333333", True),  # the fraction to math-verify's 6 decimals
        ("\\frac{1}{12}", "0.0833", False),  # fewer decimals: a rounded, different answer
        ("\\frac{1}{3}", "0.33", False),
        ("\\sqrt{3}", "√3", True),
        ("2\\sqrt{3}", "2√3", True),
        ("3", "√3", False),
        ("1000.99", "1000,99", True),  # a European decimal comma against a decimal gold
        ("0,111", "0.111", True),
        ("12", "1,2", False),  # a list, not 1.2, against a whole number
        ("1.22", "1,220", False),  # a thousands separator
    ],
)
def test_grader_ii_equivalences(gold: str, answer: str, expected: bool):
    assert (judge(gold, answer) == CORRECT) == expected, judge(gold, answer)


IN_ORDER = "Enter the roots in increasing order, separated by commas."
ANY_ORDER = "Enter all the roots, separated by commas."


@pytest.mark.parametrize(
    "gold, answer, question, expected",
    [
        ("2,4,3", "2, 3, 4", "Enter $a$, $b$, $c$, in that order.", False),  # the order asked: wrong order rejected
        ("2,4,3", "2, 4, 3", "Enter $a$, $b$, $c$, in that order.", True),
        ("2,4,3", "2, 3, 4", ANY_ORDER, True),  # no order asked: any order
        ("2,4,3", "2, 3, 4", None, True),  # no question: as before, a set
        ("-2, 1, 3", "3, 1, -2", IN_ORDER, False),
        ("-2, 1, 3", "-2, 1, 3", IN_ORDER, True),
        ("-2, 1, 3", "(-2, 1, 3)", IN_ORDER, True),  # the ordered list written as a tuple
        ("-2, 1, 3", "(3, 1, -2)", IN_ORDER, False),
        ("-2, 1, 3", "\\{-2, 1, 3\\}", IN_ORDER, True),  # as a set, or a list, but in the order asked
        ("-2, 1, 3", "[3, 1, -2]", IN_ORDER, False),
        ("-2, 1, 3", "-2, 1, and 3", IN_ORDER, True),
        ("-2, 1, 3", "x = -2, x = 1, x = 3", IN_ORDER, True),
        ("-2, 1, 3", "x = 3, x = 1, x = -2", IN_ORDER, False),
        ("-2, 1, 3", "-2, 1, 3, 3", IN_ORDER, False),  # a repeated item: not the same ordered list
        ("-2, 1, 3", "-2, 1", IN_ORDER, False),
        ("\\frac14, \\frac13, \\frac12", "0.25, \\frac{1}{3}, 0.5", "From least to greatest.", True),  # item by item
        ("\\frac14, \\frac13, \\frac12", "0.5, \\frac{1}{3}, 0.25", "From least to greatest.", False),
        ("(1,2), (3,4)", "(3,4), (1,2)", "Enter all ordered pairs, separated by commas.", True),  # pairs: any order
        ("(1,2), (3,4)", "(3,4), (1,2)", "List the points in order of increasing $x$.", False),
        ("(2,4,3)", "(2,3,4)", None, False),  # a tuple is ordered with or without a question
        ("a = 1, b = 2", "b = 2, a = 1", IN_ORDER, True),  # named values: not compared by position
        ("5", "5", IN_ORDER, True),  # not a list: the question changes nothing
    ],
)
def test_lists_in_order_when_the_question_asks_for_it(gold: str, answer: str, question: str | None, expected: bool):
    assert (judge(gold, answer, question) == CORRECT) == expected, judge(gold, answer, question)


def test_scale_words_are_not_units():
    """A scale word is not a unit: "4 hundred" was graded equal to 4."""
    assert judge("4", "4 hundred") != CORRECT
    assert judge("2", "2 or more") != CORRECT


def test_math_verify_is_quiet_while_it_judges_and_its_logging_is_left_as_found(caplog):
    """math-verify warns "timeout is disabled" on every call with our time limits off: silenced while it runs,
    and its logger's level is the user's again afterwards (nothing is changed at import)."""
    logger = logging.getLogger("math_verify")
    assert logger.level == logging.NOTSET  # importing sftkit.grading changed nothing
    parse_math.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger="math_verify"):
            assert judge("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}") == CORRECT  # parse and verify, in sympy
            assert logger.level == logging.INFO
        assert not [r for r in caplog.records if r.name.startswith("math_verify")]
    finally:
        logger.setLevel(logging.NOTSET)


def test_nested_and_concurrent_quiet_scopes_restore_the_level_once():
    logger = logging.getLogger("math_verify")
    logger.setLevel(logging.DEBUG)
    inside, release = threading.Event(), threading.Event()

    def other():
        with quiet_math_verify():
            inside.set()
            release.wait(5)

    try:
        worker = threading.Thread(target=other)
        with quiet_math_verify():
            worker.start()
            inside.wait(5)
            with quiet_math_verify():
                assert logger.level == logging.ERROR
        assert logger.level == logging.ERROR  # the other thread is still grading
        release.set()
        worker.join(5)
        assert logger.level == logging.DEBUG
    finally:
        logger.setLevel(logging.NOTSET)
