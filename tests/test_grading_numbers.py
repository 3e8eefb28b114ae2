"""Numbers a concluding statement states in words or in bold (`grading.numbers`), read by `grading.prose`."""

from __future__ import annotations

import pytest

from sftkit.grading.judge import CORRECT, judge
from sftkit.grading.numbers import bold_count, bold_piece, counted, number_words
from sftkit.grading.prose import concluding_answer


@pytest.mark.parametrize(
    "content, piece",
    [("6", ("bold", "6")), ("two", ("bold", "2")), ("One", ("bold", "1")), ("-1,000.5", ("bold", "-1,000.5")),
     ("Evelyn", ("math", "Evelyn")), ("120 degrees", ("math", "120 degrees")), ("\\frac12", ("math", "\\frac12"))],
)  # fmt: skip
def test_a_bold_number_is_a_bold_piece(content: str, piece: tuple[str, str]):
    assert bold_piece(content) == piece


def _sentence(*parts: str) -> list:
    """Pieces of a sentence: "**x**" parts are bold, others text."""
    return [(*bold_piece(p[2:-2]), i) if p.startswith("**") else ("text", p, i) for i, p in enumerate(parts)]


def test_a_bold_number_after_the_verb_before_a_colon_is_the_count():
    assert bold_count(_sentence("The graph has ", "**two**", " y-intercepts: (0, 1) and (0, 3).")) == (
        "2 (namely (0, 1), (0, 3))"
    )
    assert bold_count(_sentence("There are exactly ", "**3**", " solutions: 1, 2, and 4.")) == "3 (namely 1, 2, 4)"


@pytest.mark.parametrize(
    "parts",
    [("In ", "**two**", " cases: x = 1 and x = 3."),  # no verb before it
     ("The graph has ", "**two**", " y-intercepts, (0, 1) and (0, 3)."),  # no colon after it
     ("The graph has two", " y-intercepts: (0, 1) and (0, 3).")],  # not bold
)  # fmt: skip
def test_no_count_without_verb_bold_and_colon(parts: tuple[str, ...]):
    assert bold_count(_sentence(*parts)) is None


def test_number_words_after_the_verb_become_values():
    words = number_words([("text", "Thus there are three such primes", 0)])
    assert [p for p in words if p[0] == "word"] == [("word", "3", 15)]
    assert number_words([("text", "Thus the product is two times 6", 0)]) == [
        ("text", "Thus the product is two times 6", 0)
    ]


def test_prose_reads_the_bold_count_not_the_listed_details():
    found = concluding_answer("The graph of the parabola has **two** y-intercepts: (0, 2 + √5) and (0, 2 - √5).")
    assert found.answer == "2 (namely (0, 2 + √5), (0, 2 - √5))" and found.with_verb
    assert concluding_answer("The graph has two y-intercepts: $(0, 1)$ and $(0, 3)$.").answer == "(0, 1), (0, 3)"


@pytest.mark.parametrize(
    "gold_items, answer, judged",
    [(1, "2 (namely x = 4, x = 5)", "2"), (2, "2 (namely x = 4, x = 5)", "x = 4, x = 5"),
     (3, "1,000 (namely 1, 2)", "1, 2"), (2, "2 (x = 4, x = 5)", "2 (x = 4, x = 5)"), (1, "7", "7")],
)  # fmt: skip
def test_a_count_with_its_details_is_judged_by_the_gold(gold_items: int, answer: str, judged: str):
    assert counted(gold_items, answer) == judged


# Third round (issue 23, review): a count before a colon of listed values. (solution, gold, correct): the listed
# values where the gold is a list, the count otherwise, whatever the question.
COUNT_CASES = [
    ("Thus there are **2** solutions: x = 4 and x = 5.", "4, 5", True),
    ("Thus there are **2** solutions: x = 4 and x = 5.", "4", False),
    ("Thus there are **2** solutions: x = 4 and x = 5.", "2", True),
    ("Thus there are **2** solutions: x = 4 and x = 6.", "4, 5", False),
    ("The graph has **two** y-intercepts: (0, 3) and (0, -3).", "2", True),
    ("The graph has **three** y-intercepts: (0, 3) and (0, -3).", "2", False),
    ("So the graph has **two** y-intercepts: (0, 3) and (0, -3).", "3", False),
    ("So the graph has **two** y-intercepts: $(0, 3)$ and $(0, -3)$.", "(0,3), (0,-3)", True),
]


@pytest.mark.parametrize("question", [None, "How many solutions are there?"])
@pytest.mark.parametrize("text, gold, correct", COUNT_CASES)
def test_a_bold_count_or_its_listed_values_by_the_gold(text: str, gold: str, correct: bool, question: str | None):
    from sftkit.grading.extract import final_answer

    assert (judge(gold, final_answer(text).text, question) == CORRECT) == correct
