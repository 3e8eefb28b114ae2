"""Text normalisation for curation: when two solutions are "the same", and the words of a prompt for n-grams.

`solution_key`: case, whitespace, LaTeX spacing (`\\,` `\\;` `\\quad` `\\left` `\\right` `\\left.`), math
delimiters (`$x$`, `\\(x\\)`, `\\[x\\]`, `$$x$$`), `\\dfrac`/`\\tfrac` and one-token arguments (`\\frac12` =
`\\frac{1}{2}`, `\\sqrt2` = `\\sqrt{2}`) do not make a solution distinct. It is a hashing key, not readable text.
`words`: lower-cased letters-and-digits runs of a text (punctuation and LaTeX braces drop out), for n-gram overlap.

Hand-written (a few string operations, ~5 us a solution): math-verify and latex2sympy parse answers, not
whole solutions, and a parser would cost 100x more per row at our 10^6-row scale.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_DROP = re.compile(r"\\[,;:! ]|\\q?quad(?![a-z])|\\(?:left|right)(?:\.|(?![a-z]))|\\[()\[\]]")
_VARIANT = re.compile(r"\\[dt]frac")
_ONE_TOKEN = re.compile(r"\\(frac|sqrt)([0-9a-z])")  # \frac12 -> \frac{1}2 (a one-character argument)
_SECOND = re.compile(r"\\frac(\{[^{}]*\})([0-9a-z])")  # \frac{1}2 -> \frac{1}{2}
_WORD = re.compile(r"[^\W_]+")


def solution_key(text: str) -> str:
    """The text two equivalent solutions share (see the module docstring)."""
    key = text.lower()
    if "\\" in key:
        key = _VARIANT.sub(r"\\frac", _DROP.sub("", key))
    key = "".join(key.replace("$", "").replace("~", "").split())
    if "\\frac" in key or "\\sqrt" in key:
        key = _SECOND.sub(r"\\frac\1{\2}", _ONE_TOKEN.sub(r"\\\1{\2}", key))
    return key


def digest(text: str) -> int:
    """A 64-bit hash of a text, the same on every machine and run (Python's own `hash` is salted)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def words(text: str) -> list[str]:
    """Lower-cased words (letters and digits) of a text, compatibility forms folded (NFKC: full-width digits)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())
