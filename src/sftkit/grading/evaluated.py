"""Whether an answer is left unevaluated where the question asks for a value (`judge.py` calls it wrong).

"Simplify $\\sqrt{242}$" answered "\\sqrt{242} \\approx 15.6" (gold 11\\sqrt2), "Compute $\\dbinom{31}{28}$" answered
"\\frac{31!}{28!3!}" (gold 4495), "What is the value of $x^3 - 2x + 1$?" answered with the substitution left as
"(\\frac{1+\\sqrt5}{2})^3 - 2(\\frac{1+\\sqrt5}{2}) + 1": equal in value, and math-verify accepts them, but the
question asked for the work they leave undone. Seen in real Gemma 2 solutions (tests/assets/grading/real).

Narrow on purpose (a careful grader accepts "11\\sqrt{2} \\approx 15.56", "\\frac{3}{4}" for 0.75, "2^{10}" where
no value is asked): only where the question asks to simplify / compute / evaluate / calculate / give "the value of",
the gold is a plain value (a number, a fraction, a simplified radical), and the answer still holds an operation the
gold does not: a factorial, a binomial coefficient, a radicand with a square factor, or arithmetic on literals
(`2\\cdot 60`, `3+4`, `2^{10}`; not scientific notation `3 \\times 10^{5}`).
"""

from __future__ import annotations

import functools
import re

_ASKS_VALUE = re.compile(
    r"\b(?:simplify|compute|evaluate|calculate|what\s+is\s+the\s+value\s+of|find\s+the\s+value\s+of)\b", re.I
)
_NUM = r"\d+(?:\.\d+)?"
_VALUE = rf"(?:{_NUM}(?:\\sqrt\s*\{{?\d+\}}?)?|\\sqrt\s*\{{?\d+\}}?)"  # 12, 0.5, 11\sqrt2, \sqrt{3}
_PLAIN = re.compile(rf"-?(?:{_VALUE}|\\frac\{{{_VALUE}\}}\{{{_VALUE}\}}|{_NUM}/{_NUM})")
_COMBINATORIAL = re.compile(r"!|\\[dt]?binom\b|\\choose\b")
_RADICAND = re.compile(r"\\sqrt\s*(?:\{\s*(\d+)\s*\}|(\d))")
_OPERATION = re.compile(r"[\d})]\s*(?:[-+*^]|\\cdot|\\times|\\div)\s*[\d{(\\]")  # between two operands
_SCIENTIFIC = re.compile(r"\\times\s*10\s*\^")
_VARIABLE = re.compile(r"(?<!\\)\b[A-Za-z]")  # a letter that is not part of a command (\frac, \sqrt, \cdot)


@functools.lru_cache(maxsize=4096)
def asks_value(question: str | None) -> bool:
    """Does the question ask for a value: to simplify, compute, evaluate or calculate, or for "the value of"?"""
    return bool(question) and bool(_ASKS_VALUE.search(question))


def unevaluated(gold: str, answer: str) -> bool:
    """Is `answer` (cleaned) a plain-value gold's value left unevaluated: a factorial, a binomial coefficient, a
    radicand with a square factor, or arithmetic on literals that the gold does not hold?"""
    if not _PLAIN.fullmatch(gold.replace(" ", "")) or _unsimplified_radicand(gold):
        return False
    if _COMBINATORIAL.search(answer) or _unsimplified_radicand(answer):
        return True
    literals = re.sub(r"\\[A-Za-z]+", " ", answer)
    return bool(_OPERATION.search(answer)) and not _SCIENTIFIC.search(answer) and not _VARIABLE.search(literals)


def _unsimplified_radicand(s: str) -> bool:
    """Does `s` hold a square root of a number with a square factor ("\\sqrt{242}" = 11\\sqrt{2}, "\\sqrt{16}")?"""
    for m in _RADICAND.finditer(s):
        n = int(m[1] or m[2])
        if n > 10**9:
            return False
        if any(n % (k * k) == 0 for k in range(2, int(n**0.5) + 1)):
            return True
    return False
