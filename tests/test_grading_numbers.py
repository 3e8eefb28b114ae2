"""Numbers a concluding statement states in words or in bold (`grading.numbers`), read by `grading.prose`."""

from __future__ import annotations

import pytest

from sftkit.grading.numbers import bold_count, bold_piece, number_words
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
    assert bold_count(_sentence("The graph has ", "**two**", " y-intercepts: (0, 1) and (0, 3).")) == "2"
    assert bold_count(_sentence("There are exactly ", "**3**", " solutions: 1, 2 and 4.")) == "3"


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
    assert found.answer == "2" and found.with_verb
    assert concluding_answer("The graph has two y-intercepts: $(0, 1)$ and $(0, 3)$.").answer == "(0, 1), (0, 3)"
