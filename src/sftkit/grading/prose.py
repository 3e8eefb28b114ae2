"""The answer of a solution's concluding statement, for solutions that state it in prose without a marker.

"Therefore, the area of kite $ABCD$ is $75$ square units." -> "75"; "Thus, \\(x^3 = 12\\)." -> "x^3 = 12" (the
judge compares its right side); "... is **6**." -> "6"; "The roots are $1$ and $-2$." -> "1, -2".

How: the end of the text is cut into sentences (math spans and bold are kept whole); the concluding statement is
the last sentence that holds a candidate (a math span, a bold phrase, a number), among the last few; within it,
clauses that only restate ("which is about 33%") are skipped, and the answer is the first run of candidates
("$1$ and $-2$") after the statement's verb ("is", "equals", "=", "we get", ":"), or its last run without one.
A text cut off mid-sentence (a truncated generation) has no concluding statement.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from sftkit.grading.numbers import bold_count, bold_piece, number_words

TAIL = 1500  # characters read from the end (from a line start): the concluding statement is there; bounds the time
SHORT = 400  # a first, shorter window: most concluding statements are in the last lines
LOOKBACK = 4  # sentences, from the end, that may hold the concluding statement

_SPAN = re.compile(
    r"\$\$(?P<dd>.+?)\$\$"  # $$ display $$
    r"|\\\[(?P<db>.+?)\\\]"  # \[ display \]
    r"|(?<![\\$])\$(?P<d>(?:\\.|[^$\\\n])+)\$"  # $inline$ (one line; "\$" inside is a dollar sign)
    r"|\\\((?P<p>.+?)\\\)"  # \( inline \)
    r"|\*\*(?P<b>[^*\n]{1,80}?)\*\*",  # **bold**
    re.S,
)
_NUMBER = re.compile(  # a number in the text: "12", "3,800", "-0.5", "$3,800", "25%", "28 percent"; a choice "(B)"
    r"(?<![\w.^_{}\\/√-])(?:[-\u2212]|\\?\$)?√?(?:\d+,\d{1,2}(?![\d,])|\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?)(?:\s*(?:%|percent\b))?"
    r"(?:(?![\w/])|(?=(?:[mck]?m|kg|g|s|h|ft|in)[²³]?(?!\w)))"  # "1,000.99m²": a unit glued to it
    r"|\([A-E]\)"
)
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*(?:#|[-*] |\d+\. ))")  # sentence ends; paragraphs; list
_COPULA = re.compile(
    r"\b(?:is|are|was|were|be|equals|gives?|get|gets|got|obtain|have|yields?|becomes?|totals?|"
    r"comes? out to(?: be)?|simplifies to|reduces to)\b|=|:|'s\b",
    re.I,
)
_GLUE = re.compile(r"\s*(?:,\s*(?:(?:and|or)\b\s*)?|(?:and|or)\b\s*)")  # between items: "$1$, $2$, and $3$"
_SUBORDINATE = re.compile(  # clauses that are not the statement ("which means ..." is: it draws the consequence)
    r"\s*(?:which(?!\s+(?:means|gives|implies|yields|shows|leads))|since|because|as\b|where|when|if|assuming|so that)",
    re.I,
)
_NOT_MAIN_VERB = re.compile(  # "that are prime", "which is odd" (a relative clause); "is divided by" (a passive);
    # "is not 10" (a negation)
    r"(?:\b(?:that|which|who|whose)\s+$)|^\s*\w+(?:ed|en)\s+(?:by|into|from|among)\b|^\s*not\b",
    re.I,
)
_ELABORATION = re.compile(r"\s*(?:this|that|it|note|here|because|since|indeed|check|as a check)\b", re.I)
_PARTITIVE = re.compile(r"\s*(?:out\s+of|of(?:\s+the)?)\s*", re.I)  # "6 of the 10 numbers": 10 is the whole
_RESTATEMENT = re.compile(r".*(?:\b(?:approximately|about|roughly|or|namely)\b|\\approx)", re.I)  # ", or about 33%";
# ", namely $11$, $13$ and $17$" (the members of what was counted)
_CONCLUSION = re.compile(
    r"\s*(?:therefore|thus|hence|so|consequently|in conclusion|finally|overall|in total|altogether)\b", re.I
)
_NAME = re.compile(  # a math span that names something rather than stating a value: $ABCD$, $x$, $\overline{AB}$
    r"\s*(?:[A-Za-z]{1,4}'?|[A-Za-z](?:_\{?\w+\}?)?|[A-Za-z]\([a-z]\)|\\(?:overline|angle|triangle|mathbf)\W[^=]*)\s*"
)
_SYMBOL = re.compile(r"\s*\\(?:blacksquare|square|Box|qed|checkmark|surd|quad|ldots|dots|cdots)\s*")  # $\blacksquare$
_UNFINISHED = re.compile(r"[A-Za-z,;(+\-=]\s*$")  # ends without a full stop: on a word, a comma, an operator
_TRAILER = re.compile(  # what may follow the answer of a last sentence without a full stop: a unit, a noun
    r"(?!.*\b(?:and|or|so|then|we|to|of|the|that|is|are|which|since|because|but|if|with|for|in|by|it|this)\b)"
    r"\s*(?:[A-Za-z]+(?:\s+|$)){0,3}",
    re.I,
)


class Conclusion(NamedTuple):
    answer: str
    with_verb: bool  # the answer follows the statement's verb ("the area is $75$"), not just any candidate
    concluding: bool  # the statement opens with "Therefore", "Thus", "So", "Hence", ...
    start: int  # offset of the statement in the text
    mentions: tuple[str, ...]  # every candidate of the statement ("$5$", "$x = 5$"), without spaces


def _pieces(text: str, offset: int) -> list[tuple[str, str, int]]:
    """The text as ("math" | "text", content, offset) pieces; bold counts as math, numbers in text are split off."""
    pieces, at, moved = [], 0, ""
    for m in _SPAN.finditer(text):
        _text_pieces(moved + text[at : m.start()], offset + at, pieces)
        content = next(g for g in m.groups() if g is not None).strip()
        kind = "math"
        if m["b"] is not None:  # **$\frac12$** or **6** or **Evelyn**; **two** is the number 2 (kind "bold")
            kind, content = bold_piece(content.strip("$").strip())
        moved = content[-1] if content[-1:] in (",", ";") else ""  # "$-1,$ $0,$ and $1$": the comma is text
        pieces.append((kind, content.rstrip(",;").strip(), offset + m.start()))
        at = m.end()
    _text_pieces(moved + text[at:], offset + at, pieces)
    return pieces


def _text_pieces(text: str, offset: int, out: list) -> None:
    at = 0
    for m in _NUMBER.finditer(text):
        out.append(("text", text[at : m.start()], offset + at))
        out.append(("math", m.group().replace("\\$", "").replace("$", "").replace("\u2212", "-"), offset + m.start()))
        at = m.end()
    out.append(("text", text[at:], offset + at))


def _number_words(sentence: list) -> list:
    """A concluding sentence with its numbers in words after the verb as candidates ("Thus there are three such
    primes" -> 3); other sentences are left alone (there, "we checked all three cases" names no answer)."""
    return number_words(sentence) if _opens(sentence, _CONCLUSION) else sentence


def _sentences(pieces: list[tuple[str, str, int]]) -> list[list[tuple[str, str, int]]]:
    sentences, current = [], []
    for kind, content, at in pieces:
        if kind != "text":
            current.append((kind, content, at))
            continue
        parts = _BOUNDARY.split(content)
        for i, part in enumerate(parts):
            if i:
                sentences.append(current)
                current = []
            if part:
                current.append(("text", part, at))
    sentences.append(current)
    return [s for s in sentences if s]


def _is_candidate(piece: tuple[str, str, int]) -> bool:
    if piece[0] in ("word", "bold"):  # a number in words (`_number_words`), a bold number
        return True
    return piece[0] == "math" and bool(piece[1]) and not _NAME.fullmatch(piece[1]) and not _SYMBOL.fullmatch(piece[1])


def _glue(pieces: list) -> list[bool]:
    """For each piece: does it join the candidates on either side into one answer ("$1$, $2$ and $3$")? Not when
    one side is an equation and the other a value ("$3$, $5$ and $7$, and $3+5+7 = 15$"), nor for ", or" after a
    single value (a restatement: "$\\frac{7}{20}$, or $35\\%$")."""
    flags = [False] * len(pieces)
    for i in range(1, len(pieces) - 1):
        left, text, right = pieces[i - 1], pieces[i][1], pieces[i + 1]
        if pieces[i][0] != "text" or not _is_candidate(left) or not _is_candidate(right) or not _GLUE.fullmatch(text):
            continue
        restates = "," in text and re.search(r"\bor\b", text) and not (i >= 2 and flags[i - 2])
        flags[i] = ("=" in left[1]) == ("=" in right[1]) and not restates
    return flags


def _runs(clause: list) -> list[tuple[int, list[str]]]:
    """Candidate runs of a clause: (index of the run's first piece, the candidates joined by ',', 'and', 'or')."""
    runs, glue = [], _glue(clause)
    for i, piece in enumerate(clause):
        whole = i >= 2 and _PARTITIVE.fullmatch(clause[i - 1][1]) and _is_candidate(clause[i - 2])
        if not _is_candidate(piece) or whole:
            continue
        if i >= 2 and glue[i - 1] and runs:
            runs[-1][1].append(piece[1])
        else:
            runs.append((i, [piece[1]]))
    return runs


def _clauses(sentence: list) -> list[list]:
    """The sentence cut at commas and semicolons, except between the items of a run."""
    clauses, current, glue = [], [], _glue(sentence)
    for i, (kind, content, at) in enumerate(sentence):
        if kind == "text" and not glue[i]:
            parts = re.split(r"[,;]\s", content)
            for j, part in enumerate(parts):
                if j:
                    clauses.append(current)
                    current = []
                current.append(("text", part, at))
        else:
            current.append((kind, content, at))
    clauses.append(current)
    return [c for c in clauses if c]


def _is_verb(piece: tuple[str, str, int]) -> bool:
    """A text piece holding the statement's verb ("is", "are", "=", "we get", ":"), not a relative or passive one."""
    if piece[0] != "text":
        return False
    content = piece[1]
    return any(
        not _NOT_MAIN_VERB.search(content[: m.start()]) and not _NOT_MAIN_VERB.match(content[m.end() :])
        for m in _COPULA.finditer(content)
    )


def _clause_answer(clause: list) -> tuple[str, bool] | None:
    """The first run after the clause's last verb that has one after it (or the name right after it: "comes out
    to be $E$"); else the clause's last run."""
    runs = _runs(clause)
    for verb in (i for i in range(len(clause) - 1, -1, -1) if _is_verb(clause[i])):
        after = [items for start, items in runs if start > verb]
        if after:
            return ", ".join(after[0]), True
        if (
            _verb_ends(clause[verb][1])
            and verb + 1 < len(clause)
            and clause[verb + 1][0] == "math"
            and _NAME.fullmatch(clause[verb + 1][1])
        ):
            return clause[verb + 1][1], True
    written = [items for start, items in runs if clause[start][0] != "word"]  # a number in words only after a verb
    return (", ".join(written[-1]), False) if written else None


def _statement_answer(sentence: list) -> tuple[str, bool] | None:
    counted = bold_count(sentence)
    if counted:
        return counted, True
    clauses = _clauses(sentence)
    for i in range(len(clauses) - 1, -1, -1):
        opening = clauses[i][0][1] if clauses[i][0][0] == "text" else ""
        if _SUBORDINATE.match(opening) or (i and _RESTATEMENT.match(opening)):
            continue
        found = _clause_answer(clauses[i])
        if found:
            return found
    # only subordinate clauses ("When multiplying by the identity: $AB$"): the last one that has an answer
    return next(filter(None, (_clause_answer(c) for c in reversed(clauses))), None)


def _cut_off(last: list) -> bool:
    """A last sentence without a full stop reads as cut off (a truncated generation) unless it ends on its answer,
    give or take a unit: "... so the perimeter is 12 centimeters" is finished, "... we find $t = 5$, and" is not."""
    ends = [i for i, piece in enumerate(last) if _is_candidate(piece)]
    return not ends or not all(_TRAILER.fullmatch(content) for _, content, _ in last[ends[-1] + 1 :])


def _window(text: str, size: int) -> int | None:
    """Where to start reading the last `size` characters: on a line start (inline math does not span lines, so
    the window does not open inside it); the start of the text if it is shorter; None if no line starts there."""
    offset = max(0, len(text) - size)
    line = text.find("\n", offset, offset + size // 2) if offset else -1
    return 0 if not offset else line + 1 if line >= 0 else offset if size == TAIL else None


def _verb_ends(content: str) -> bool:
    """Does the text piece end on its verb ("comes out to be ", "is ")? Then a name right after it is the answer;
    a verb further back ("is 13, occurring ... relative to $x$") is not about that name."""
    last = max(_COPULA.finditer(content), key=lambda m: m.end(), default=None)
    return last is not None and not content[last.end() :].strip()


def _opens(sentence: list, pattern: re.Pattern) -> bool:
    opening = next((c for k, c, _ in sentence if k == "text" and c.strip()), "")
    return sentence[0][0] == "text" and bool(pattern.match(opening))


def _statement(sentences: list) -> Conclusion | None:
    window = [_number_words(s) for s in sentences[-LOOKBACK:]]
    concluding = [i for i, s in enumerate(window) if _opens(s, _CONCLUSION) and _statement_answer(s)]
    if concluding:  # "Therefore, the sum is $5$. This is because ... $7$.": an elaboration after the conclusion
        later = window[concluding[-1] + 1 :]
        if later and all(_opens(s, _ELABORATION) for s in later if _statement_answer(s)):
            window = window[: concluding[-1] + 1]
    for sentence in reversed(window):
        found = _statement_answer(sentence)
        if found:
            opening = next((c for k, c, _ in sentence if k == "text" and c.strip()), "")
            concluding = sentence[0][0] == "text" and bool(_CONCLUSION.match(opening))
            mentions = tuple(p[1].replace(" ", "") for p in sentence if _is_candidate(p))
            return Conclusion(found[0], found[1], concluding, sentence[0][2], mentions)
    return None


def concluding_answer(text: str) -> Conclusion | None:
    """The answer stated by the solution's concluding statement (see the module docstring), or None.

    Read from a short window first (most statements are in the last lines), then from the last TAIL characters."""
    for size in (SHORT, TAIL):
        offset = _window(text, size)
        if offset is None:
            continue
        sentences = _sentences(_pieces(text[offset:], offset))
        if not sentences or (_UNFINISHED.search(text) and _cut_off(sentences[-1])):
            return None
        whole = offset == 0 or size == TAIL
        usable = sentences if whole else sentences[1:]  # the window's first sentence may have begun before it
        found = _statement(usable)
        if found or whole or len(usable) >= LOOKBACK:
            return found
    return None
