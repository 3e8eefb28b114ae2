"""Whether a problem asks for its answer's values in a given order (`grading.order.asks_order`)."""

from __future__ import annotations

import pytest

from sftkit.grading.order import asks_order

ASKS = [
    "Find the roots of $x^3 - 2x^2 - 5x + 6$. Enter them in increasing order, separated by commas.",
    "List the solutions in decreasing order.",
    "Give the values in ascending order, separated by commas.",
    "Enter the three numbers in strictly increasing order.",
    "Enter $a$, $b$ and $c$, in that order, separated by commas.",
    "Enter the values of $f(1)$, $f(2)$, $f(3)$ in the order given.",
    "Write the letters in alphabetical order.",
    "List the numbers in order, separated by commas.",
    "List them in order of increasing size.",
    "Order the fractions $\\frac12$, $\\frac13$ and $\\frac14$ from least to greatest.",
    "Arrange the numbers from the smallest to the largest.",
    "Write the terms from greatest to least.",
    "Give your answer as an ordered list.",
    "ENTER THE ROOTS IN INCREASING ORDER.",
]
DOES_NOT_ASK = [
    None,
    "",
    "Find all solutions, separated by commas.",
    "In order to find $x$, Mark first computes $y$. What is $x$?",  # "in order to"
    "In order for $N$ to be divisible by 12, what must $A$ be?",
    "What is the order of $3$ modulo $7$?",  # a group's order
    "Use the order of operations to evaluate $2 + 3 \\cdot 4$.",
    "Enter all the solutions, in any order, separated by commas.",
    "Enter the roots in increasing order or in any order: the order does not matter.",
    "Enter all ordered pairs $(x, y)$ of real numbers, separated by commas.",  # pairs are tuples; the list is not
    "Find the ordered triple $(a, b, c)$.",
    "The list of the first ten primes has no reordering.",
]


@pytest.mark.parametrize("question", ASKS)
def test_questions_that_ask_for_an_order(question: str):
    assert asks_order(question) is True


@pytest.mark.parametrize("question", DOES_NOT_ASK)
def test_questions_that_do_not_ask_for_an_order(question: str | None):
    assert asks_order(question) is False
