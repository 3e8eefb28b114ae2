"""Final-answer extraction and grading (`grading.extract`, `grading.judge`, `grading.pool`): one table of solution
texts against gold answers (GSM8K-style and simple LaTeX), then the pieces one by one."""

from __future__ import annotations

import pytest

from sftkit.grading import pool
from sftkit.grading.extract import extract_answer, final_answer
from sftkit.grading.judge import CORRECT, NO_ANSWER, TIMEOUT, UNPARSEABLE, WRONG, clean, judge

B = "Natalia sold 48/2 = 24 clips in May and 12 in June.\n"  # reasoning full of other numbers

# (solution text, gold answer, graded correct?)
CASES = [
    # boxed
    (B + "The answer is $\\boxed{72}$.", "72", True),
    (B + "The answer is $\\boxed{73}$.", "72", False),
    (B + "So $\\boxed{\\frac{1}{2}}$", "0.5", True),
    (B + "$\\boxed{\\dfrac{3}{4}}$", "\\frac{3}{4}", True),
    (B + "$\\boxed{0.75}$", "3/4", True),
    (B + "\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt3}{2}", True),
    (B + "\\boxed{2\\sqrt{2}}", "\\sqrt{8}", True),
    (B + "\\boxed{\\{1, 2, 3\\}}", "\\{3,2,1\\}", True),
    (B + "\\boxed{(1, 2]}", "(1,2]", True),
    (B + "\\boxed{(1, 2)}", "(1,2]", False),
    (B + "\\boxed{[0, \\infty)}", "[0,\\infty)", True),
    (
        B + "\\boxed{\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}}",
        "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
        True,
    ),
    (
        B + "\\boxed{\\begin{pmatrix} 1 & 2 \\\\ 3 & 5 \\end{pmatrix}}",
        "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
        False,
    ),
    (B + "\\boxed{(x+1)^2}", "x^2+2x+1", True),
    (B + "\\boxed{x = 5}", "5", True),
    (B + "\\boxed{1,000}", "1000", True),
    (B + "\\boxed{\\$18.00}", "18", True),
    (B + "\\boxed{18 \\text{ dollars}}", "18", True),
    (B + "\\boxed{25\\%}", "25", True),
    (B + "\\boxed{\\text{Monday}}", "Monday", True),
    (B + "\\boxed{\\text{Tuesday}}", "Monday", False),
    (B + "\\boxed{B}", "B", True),
    (B + "\\boxed{C}", "B", False),
    (B + "\\boxed{\\textbf{(B)}}", "B", True),
    (B + "First $\\boxed{5}$ is half. Doubling, the answer is 10.", "10", True),
    (B + "First $\\boxed{5}$ is half. Doubling gives\n#### 10", "5", False),
    (B + "The answer is 10. Check: \\boxed{10}", "10", True),
    (B + "The answer is $\\boxed{}$.", "72", False),
    (B + "\\boxed{}", "0", False),
    (B + "\\boxed{\\boxed{7}}", "7", True),
    (B + "The answer is \\boxed{7", "7", False),  # truncated: never closed
    # ####
    (B + "#### 72", "72", True),
    (B + "#### 72\n", "72", True),
    (B + "#### 1,234", "1234", True),
    (B + "#### $1,234.50", "1234.5", True),
    (B + "#### 18 dollars", "18", True),
    (B + "#### -5", "-5", True),
    (B + "#### 5", "-5", False),
    (B + "#### 0.5", "\\frac{1}{2}", True),
    (B + "#### 33.3", "\\frac{100}{3}", False),
    (B + "#### 7", "72", False),  # the right number (7) earlier in the text does not count
    ("She has 72 apples.\n#### 71", "72", False),
    (B + "####", "72", False),
    # The answer is ...
    (B + "The answer is 72.", "72", True),
    (B + "The answer is 72. I hope it is correct.", "72", True),
    (B + "The final answer is: $\\frac{2}{3}$", "2/3", True),
    (B + "The answer is $18. Tom pays the rest.", "18", True),
    (B + "So the answer is 3.5 hours.", "3.5", True),
    (B + "So the answer is 35 hours.", "3.5", False),
    (B + "The answer is 20%.", "20", True),
    (B + "The answer is 20 percent.", "0.2", True),
    (B + "The answer is (B) 12.", "B", True),
    (B + "The answer is (b).", "B", True),
    (B + "The answer is D.", "B", False),
    (B + "The answer is yes, she can.", "yes", True),
    (B + "The answer is no.", "yes", False),
    (B + "The answer is $\\boxed{12}$, not 13.", "12", True),
    (B + "The answer is 12.\nWait, recounting: the answer is 13.", "12", False),
    # Answer: / A:
    (B + "Answer: 42", "42", True),
    (B + "**Final Answer:** $42$", "42", True),
    (B + "Final answer: 41", "42", False),
    (B + "Answer:\n\n\\(\\frac{7}{2}\\)", "3.5", True),
    ("Q: How many?\nA: 8", "8", True),
    ("Q: How many?\nA: 9", "8", False),
    ("Q: How many?\nA: The answer is 8.", "8", True),
    # no marker: the concluding statement / nothing
    ("She has 72 apples in total.", "72", True),
    ("She has 72 apples in total.", "71", False),
    ("", "72", False),
    (B + "The answer is", "72", False),
    (B + "The answer is banana.", "72", False),
]


@pytest.mark.parametrize("text, gold, expected", CASES, ids=[f"{i}:{c[0][-30:]!r}" for i, c in enumerate(CASES)])
def test_grade_table(text: str, gold: str, expected: bool):
    verdict = judge(gold, final_answer(text).text)
    assert (verdict == CORRECT) == expected, (final_answer(text), verdict)


def test_table_is_large_and_balanced():
    assert len(CASES) >= 60
    assert 20 <= sum(expected for *_, expected in CASES) <= len(CASES) - 20


@pytest.mark.parametrize(
    "text, answer",
    [
        (B + "The answer is $\\boxed{\\frac{a}{\\{b\\}}}$ here.", "\\frac{a}{\\{b\\}}"),  # nested and escaped braces
        (B + "\\boxed{5}\nThen the answer is 10.", "10"),  # the last marker wins
        (B + "The answer is 10.\n\\boxed{5}", "5"),
        (B + "#### 72\nSome trailing words", "72"),
        (B + "Answer:\n\n  42  \n", "42"),  # the next non-empty line
        (B + "The answer is 3.5 hours. Nice.", "3.5 hours"),  # a full stop ends it, a decimal point does not
        ("Plan A: buy 3.\nSo she buys 3.", None),  # "A:" only counts at the start of a line
        (B + "\\boxed{", None),
        ("no marker at all 42", None),
    ],
)
def test_extract_answer(text: str, answer: str | None):
    assert extract_answer(text) == answer


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("$\\$1,000.$", "1000"),
        ("**42**", "42"),
        ("\\(\\dfrac{1}{2}\\)", "\\frac{1}{2}"),
        ("18 dollars", "18"),
        ("25 percent", "25\\%"),
        ("1{,}234", "1234"),
        ("\u22125", "-5"),
        ("1,2", "1,2"),  # a pair, not a thousands separator
        ("5 x", "5 x"),  # one letter after a number is a variable, not a unit
    ],
)
def test_clean(raw: str, cleaned: str):
    assert clean(raw) == cleaned


def test_verdict_kinds():
    assert judge("72", None) == NO_ANSWER
    assert judge("72", "") == NO_ANSWER
    assert judge("B", "the one I like") == UNPARSEABLE
    assert judge("72", "73") == WRONG
    assert judge("72", "72.0") == CORRECT


def test_timeout_counts_as_incorrect():
    assert pool.judge_in_time("5", "9^{9^{9^{9}}}", 0.2) == TIMEOUT
    assert pool.judge_in_time("5", "5", 0.2) == CORRECT  # and the timer is off afterwards


def test_worker_processes_agree_with_one_process(monkeypatch):
    pairs = [(gold, extract_answer(text)) for text, gold, _ in CASES] * 3
    monkeypatch.setattr(pool, "MIN_PARALLEL", 0)
    assert pool.grade_pairs(pairs, 5.0, workers=2, progress=False) == [judge(g, a) for g, a in pairs]


def test_worker_processes_receive_the_question(monkeypatch):
    """(gold, answer, question) triples: the question reaches the judge on the workers (a list's order)."""
    asks, any_order = "Enter them in increasing order.", "Enter them in any order."
    triples = [("-2, 1, 3", "3, 1, -2", asks), ("-2, 1, 3", "3, 1, -2", any_order), ("-2, 1, 3", "3, 1, -2", None)]
    monkeypatch.setattr(pool, "MIN_PARALLEL", 0)
    assert pool.grade_pairs(triples * 8, 5.0, workers=2, progress=False) == [WRONG, CORRECT, CORRECT] * 8
    assert pool.judge_in_time(*triples[0][:2], 5.0, asks) == WRONG
