"""Numbers a concluding statement states in words or in bold (`prose.py` reads them as candidates).

- `number_words(sentence)`: the numbers in words right after the verb ("Thus there are three such primes" -> 3).
- `bold_piece(content)`: a bold phrase's kind: "bold" for a number ("**6**", "**two**" -> 2), else "math".
- `bold_count(sentence)`: a bold number right after the verb, before a colon that lists details ("The graph has
  **two** y-intercepts: (0, 1) and (0, 3)" -> "2 (namely (0, 1), (0, 3))"); `counted(gold_items, answer)`: which
  of the two the judge compares, by the gold (the listed values for a list, else the count).

A sentence is a list of (kind, content, offset) pieces: "text", "math" (a math span), "word" (a number in words),
"bold" (a bold number).
"""

from __future__ import annotations

import re

WORD_VALUES = {w: str(i) for i, w in enumerate("zero _ two three four five six seven eight nine ten eleven twelve "
    "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()) if w != "_"}  # fmt: skip
_NUMBER_WORD = re.compile(  # "there are three such primes", "the answer is five": a number in words right after the
    # verb; not "one" (a pronoun as often as a number), nor "two of", "three times", "four-digit", "two cases: ..."
    r"\b(?:is|are|was|were|be|equals|totals?)\s+(?:exactly\s+|only\s+|just\s+|precisely\s+)?"
    rf"(?P<word>{'|'.join(WORD_VALUES)})\b"
    r"(?![-\u2011]|\s+(?:of|times|more|less|fewer|hundred|thousand|million|billion|and\s+a|halves|thirds|"
    r"quarters|fourths|fifths|sixths|percent)\b|(?:\s+\w+){0,3}\s*:)",
    re.I,
)
_BOLD_WORDS = {"one": "1", **WORD_VALUES}  # **one**: in bold, a number rather than a pronoun
_BARE_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")
_VERB_BEFORE = re.compile(  # "has **two** y-intercepts: ...", "there are exactly **3** solutions: ..."
    r"\b(?:is|are|was|were|has|have|had|equals|gives?|gets?|got|obtain|find|yields?|totals?)\s+"
    r"(?:exactly\s+|only\s+|precisely\s+)?$",
    re.I,
)
_COLON_AFTER = re.compile(r"[^.:;,$\n]{1,40}:")  # " y-intercepts: (0, 2 + √5) and (0, 2 - √5)"
NAMELY = " (namely "  # "2 (namely (0, 1), (0, 3))": a count with the values it counts
_COUNTED = re.compile(rf"(?P<count>-?\d+(?:,\d{{3}})*){re.escape(NAMELY)}(?P<listed>.+)\)", re.S)
_LIST_GLUE = re.compile(r"\s*,?\s*\band\s+")  # "x = 4 and x = 5", "1, 2, and 4": the items' "and"


def number_words(sentence: list) -> list:
    """The sentence with its numbers in words after the verb as "word" pieces of their value."""
    if not any(k == "text" and _NUMBER_WORD.search(c) for k, c, _ in sentence):
        return sentence
    out = []
    for kind, content, at in sentence:
        if kind != "text":
            out.append((kind, content, at))
            continue
        start = 0
        for m in _NUMBER_WORD.finditer(content):
            out.append(("text", content[start : m.start("word")], at + start))
            out.append(("word", WORD_VALUES[m["word"].lower()], at + m.start("word")))
            start = m.end("word")
        out.append(("text", content[start:], at + start))
    return out


def bold_piece(content: str) -> tuple[str, str]:
    """(kind, content) of a bold phrase: ("bold", "2") for "**two**", ("bold", "6") for "**6**"; else ("math", it)."""
    value = _BOLD_WORDS.get(content.lower(), content)
    return ("bold", value) if _BARE_NUMBER.fullmatch(value) else ("math", content)


def bold_count(sentence: list) -> str | None:
    """A bold number right after the verb, before a colon that lists details, with the details it counts: "The graph
    has **two** y-intercepts: (0, 1) and (0, 3)" -> "2 (namely (0, 1), (0, 3))" (`counted` reads it back); None if
    there is none."""
    for i in range(1, len(sentence) - 1):
        before, piece, after = sentence[i - 1], sentence[i], sentence[i + 1]
        if piece[0] == "bold" and before[0] == after[0] == "text":
            if _VERB_BEFORE.search(before[1]) and _COLON_AFTER.match(after[1]):
                details = "".join(content for _, content, _ in sentence[i + 1 :]).split(":", 1)[1]
                listed = _LIST_GLUE.sub(", ", details.strip().rstrip(".").strip())
                return f"{piece[1]}{NAMELY}{listed})"
    return None


def counted(gold_items: int, answer: str) -> str:
    """The answer to judge of a count with its details ("2 (namely x = 4, x = 5)", `bold_count`): the listed values
    where the gold is a list of `gold_items` > 1 ("4, 5"), else the count; any other answer as it is.
    Extraction does not see the gold, and a question that asks "how many" can still have a list for its gold
    ("How many solutions, and which?"): the gold decides."""
    found = _COUNTED.fullmatch(answer)
    if not found:
        return answer
    return found["listed"] if gold_items > 1 else found["count"]
