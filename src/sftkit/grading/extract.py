"""Where a solution states its final answer: after its last marker, or else in its concluding statement.

- `final_answer(text)`: the final answer's text and its route: MARKER (the last `\\boxed{}`, "The answer is",
  "final answer is", "####", "Answer:", "A:"), PROSE (no marker: the concluding statement, `prose.py`), or None.
- `extract_answer(text)`: markers only (gold answers in metadata; `--require-marker`).

Why not math-verify's own extraction: it ranks its patterns by kind ("final answer is" before `\\boxed` before
"answer" before any number) and takes the rightmost match of the best-ranked kind found, so
"\\boxed{5} ... the answer is 10" yields 5; it knows no "####" ("#### 72\\nbye 3" yields 3), and with no marker
it grades the last number of the text, wherever it is. We want the answer the solution states last: the last
marker, else the concluding statement. A marker is overridden only by a later statement that plainly concludes
with another value ("This gives $k = \\boxed{3}$. Therefore, the total is $15$."): the box was an intermediate.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from sftkit.grading.numbers import WORD_VALUES
from sftkit.grading.prose import Conclusion, concluding_answer

MARKER, PROSE = "marker", "prose"
ANSWER_ONLY = 200  # characters: a longer completion is a solution, not just an answer
MAX_PARTS, BLOCK = 10, 2000  # boxes read together as one answer: at most so many, within so many characters
MAX_SKIPPED = 10  # word markers that state no answer ("The answer is correct."), skipped from the end; then none
ROUTES = (MARKER, PROSE, None)  # None: no final answer found
UNCLEAR = ""  # a marker's sentence that states no single plain answer: judged as no answer, never as its text

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")  # \boxed{...}: the content up to the matching brace
_HASHES = re.compile(r"####(?![ \t]*(?:[A-Za-z]{2}|\*\*|#))")  # GSM8K "#### 72", not a Markdown "#### Case 1:"
_ANSWER = re.compile(r"(?<![a-z0-9])answer(?:\s+is\b\s*:?|\**\s*:)")  # "The answer is", "final answer is:",
# "Answer:", "**Answer:**": searched in the lower-cased text (a literal start makes the search 10x faster than (?i))
_ANSWER_ANY_CASE = re.compile(_ANSWER.pattern, re.I)  # for the rare text whose lower case changes its length
_QA = re.compile(r"(?m:^)[ \t>*#]*A\s*:")  # "A:" at the start of a line (Q:/A: few-shot format); case-sensitive
_SENTENCE_END = re.compile(r"\.(?:\s|$)")  # a full stop, not a decimal point
_CLAUSE_END = re.compile(r",\s+(?!and\b|or\b)(?=[A-Za-z]{2})")  # "12, which is ..." but not "1, 2 and 3"
_END_OF_TURN = re.compile(r"<\|im_end\|>|<\|im_start\|>|<\|eot_id\|>|<\|endoftext\|>|<\|end\|>|</s>|<end_of_turn>")
_THINK_END = "</think>"
_RETRACTS = re.compile(  # between two boxes: the second replaces the first ("\\boxed{5}. Wait, ... \\boxed{6}")
    r"\b(?:wait|actually|but|however|no|mistake|wrong|incorrect|instead|recheck|re-check|correct(?:ion|ed|ing)?)\b"
    r"|answer",
    re.I,
)
_EQUATED = re.compile(r"\}[\s$]*=[\s$]*")  # only "=" between two boxes: the second is the first's value
_HEADING = re.compile(r"\d{1,2}\.\s*[A-Z][A-Za-z ]*:?")  # a numbered step heading ("5. FORMAT:"), not an answer
_WORDS = re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}")  # a sentence, not an answer ("The largest n is 34")
_BOLD = re.compile(r"\*\*([^*\n]{1,80}?)\*\*")
_TEXT = re.compile(r"\\(?:text|textbf|mbox)\s*\{([^{}]*)\}")
_NOT_AN_ANSWER = re.compile(  # what follows "the final answer is" when it states no answer: the marker is none.
    # Narrow on purpose: any other words ("indeed twelve", "also wrong", "below: eight") keep the marker, which then
    # overrides an earlier box (a false accept costs more than a false reject)
    r"\W*(?:consistent with\b.*|(?:correct|verified|reasonable)(?:\s+as\s+(?:shown|stated|computed)(?:\s+above)?)?"
    r"|as expected)\W*",
    re.I,
)
_CONTRAST = re.compile(  # a sentence that negates or contrasts: its bold value or its number may be the one rejected
    r"\b(?:not|no|never|cannot|can't|isn't|aren't|wasn't|instead|rather|since|because|previously|earlier|before|"
    r"initially|but|however|although|though|except|wrong|incorrect|mistake|if)\b|n't\b",
    re.I,
)
_NUMBER_WORDS = re.compile(rf"\b(?:one|{'|'.join(WORD_VALUES)}|thirty|forty|fifty|hundred|thousand)\b", re.I)
_OPENERS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"), ("**", "**"))
_CONCLUDES = re.compile(  # a statement that may conclude with another value (then `prose.py` reads it)
    r"(?:^|[.!?]\s+|\n)\s*(?:therefore|thus|hence|so|consequently|in conclusion|finally|overall|in total|altogether)"
    r"\b",
    re.I,
)


class Final(NamedTuple):
    text: str | None  # the final answer's text (uncleaned); None when none is found
    route: str | None  # MARKER, PROSE or None


def _braced(text: str, start: int) -> int | None:
    """Index of the brace closing the one at `start` (nested braces counted, `\\{` `\\}` skipped); None if none."""
    depth, i = 0, start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _span_end(rest: str) -> int | None:
    """End of the math span or bold phrase that opens `rest` ("$...$" and "\\(...\\)" on one line, "\\[...\\]" and
    "$$...$$" on several; "\\$" is a dollar sign, not a delimiter); None if none opens it or it is never closed."""
    for left, right in _OPENERS:
        if rest.startswith(left):
            close = rest.find(right, len(left))
            while left == "$" and close > 0 and rest[close - 1] == "\\":
                close = rest.find(right, close + 1)
            one_line = left in ("$$", "\\[") or "\n" not in rest[:close]
            return close + len(right) if close > len(left) and one_line else None
    return None


def _after_word_marker(text: str, end: int) -> tuple[str, int]:
    """The answer after "The answer is" / "####" / "Answer:": a whole math span or bold phrase if one opens it,
    else the rest of the line (or of the next non-empty line) up to a full stop or a new clause."""
    end += _closing_emphasis(text, end)  # "**Answer:** The angle is **120**": the "**" closes the marker's bold
    rest = text[end:]
    skipped = len(rest) - len(rest.lstrip())
    rest = rest.lstrip()
    span = _span_end(rest)
    if span is not None:
        return rest[:span], end + skipped + span
    line = rest.split("\n", 1)[0].strip()
    full = m.start() if (m := _SENTENCE_END.search(line)) else len(line)
    bold = _bold_value(line[:full])  # "**Answer:** For $x = 60$, the angle is **120**." -> 120
    if bold:
        return bold, end + skipped + full
    stop = min((m.start() for m in (_SENTENCE_END.search(line), _CLAUSE_END.search(line)) if m), default=len(line))
    sentence = _sentence_answer(line[:stop])  # "Final Answer: The largest $n$ is 34." -> the sentence's answer
    if stop < full and (sentence is None or _CONTRAST.search(_unmath(line[:stop]))):
        # "Instead of **12**, the total is 15", "the same as the count, which is 9": the whole sentence is read
        stop, sentence = full, _sentence_answer(line[:full])
    return (line[:stop] if sentence is None else sentence), end + skipped + stop


def _closing_emphasis(text: str, end: int) -> int:
    """Length of the emphasis ("**", "__", "*") right after a word marker that closes one opened before it on its
    line ("**Answer:** 5", "*Answer:* 5"); 0 if none ("The answer is **5**": that bold is the answer's)."""
    before = text[text.rfind("\n", 0, end) + 1 : end]
    for mark, opened in (("**", before.count("**")), ("__", before.count("__")), ("*", before.count("*") % 2)):
        if text.startswith(mark, end) and opened % 2:  # "**" is tried first: a lone "*" is never half of one
            return len(mark)
    return 0


def _sentence_answer(text: str, single: bool = False) -> str | None:
    """The answer of `text` read as a concluding statement if it is a sentence ("The largest $n$ is 34", "Jim walks
    200 feet less than Martha"), its one bold value first ("... measures **120 degrees**"); None if it is no
    sentence, or states no value; UNCLEAR ("": no answer) where it states a bold value and another plain number
    ("The area is **12**, and the perimeter is 14"), or, with `single`, unless it states one answer plainly: no
    negation or contrast ("The sum cannot be 12"), no second value ("There are 5 red and 7 blue balls")."""
    if not _WORDS.search(_unmath(text)):
        return None
    bold = _bold_value(text)
    if bold:
        return bold
    conclusion = concluding_answer(text.rstrip(".") + ".")
    if conclusion is None:
        return None
    contrast, several = _CONTRAST.search(_unmath(text)), len(conclusion.mentions) != conclusion.answer.count(", ") + 1
    two = several and _BOLD.search(text) and _other_number(text)  # "The area is **12**, and the perimeter is 14"
    return UNCLEAR if (single and (contrast or several)) or (two and not contrast) else conclusion.answer


def _bold_value(sentence: str) -> str | None:
    """The one bold value of a sentence ("The angle measures **120 degrees**"); None if it has none or several, if
    the sentence negates or contrasts ("It is not **12**", "Instead of **12**, ...", "Since **60** is too small")
    or states another plain number ("The area is **12**, and the perimeter is 14"): the bold may be the value
    rejected, and the sentence is read as a concluding statement instead."""
    if not _WORDS.search(_unmath(sentence)) or _CONTRAST.search(_unmath(sentence)):
        return None
    bold = [b for b in _BOLD.findall(sentence) if re.search(r"\d", b)]
    return bold[0] if len(bold) == 1 and not _other_number(sentence) else None


def _other_number(sentence: str) -> bool:
    """Does the sentence state a plain number outside its bold ("The area is **12**, and the perimeter is 14")?"""
    rest = _BOLD.sub(" ", sentence)
    return bool(re.search(r"\d", _unmath(rest)) or re.search(r"\$\s*-?\d[\d,.]*\s*\$", rest))


def _unmath(text: str) -> str:
    """The text without its math spans ("$ABCD$", "\\(x\\)"), to look at its words."""
    return re.sub(r"\$[^$]*\$|\\\(.*?\\\)", " ", text)


def _boxes(text: str, last: re.Match) -> tuple[str, int] | None:
    """The last box's content and end; with the boxes just before it in the same paragraph, all of them, joined by
    commas ("part (a) $\\boxed{3}$, part (b) $\\boxed{5}$" -> "3, 5"). None if the last box is never closed."""
    close = _braced(text, last.end() - 1)
    if close is None:
        return None
    contents, start = [text[last.end() : close]], last.start()
    for earlier in reversed(list(_BOX.finditer(text, max(0, start - BLOCK), start))):
        end = _braced(text, earlier.end() - 1)
        between = text[end:start]
        if end is None or end > start or between.count("\n") > 1 or len(contents) == MAX_PARTS:
            break
        if _RETRACTS.search(between) or _EQUATED.fullmatch(between):  # a corrected answer, or "\\boxed{4!} =
            break  # \\boxed{24}" (one value restated), not a second part: the last box alone
        contents.insert(0, text[earlier.end() : end])
        start = earlier.start()
    return ", ".join(c.strip() for c in contents if c.strip()), close + 1


def _last_marker(text: str) -> re.Match | None:
    """The last marker of the text (a box, or a word marker such as "The answer is"); None if there is none. A word
    marker followed by words that state no answer ("The final answer is consistent with the steps") is none."""
    lowered, end = text.lower(), len(text)
    for _ in range(MAX_SKIPPED):  # bounded time: each skip rescans the text before the skipped marker
        answer = _last(_ANSWER, lowered, end) if len(lowered) == len(text) else _last(_ANSWER_ANY_CASE, text, end)
        found = [m for m in (_last(_BOX, text, end), _last(_HASHES, text, end), answer, _last(_QA, text, end)) if m]
        last = max(found, key=lambda m: m.start(), default=None)
        if last is None or last.re not in (_ANSWER, _ANSWER_ANY_CASE) or not _no_answer_after(text, last.end()):
            return last
        end = last.start()
    return None


def _no_answer_after(text: str, end: int) -> bool:
    """Do the words after a word marker state no answer: the rest of the sentence is "consistent with ...",
    "correct", "verified", "reasonable" or "as expected", with no number, number word or math ("The final answer is
    consistent with the given information"; not "The answer is correct only if we subtract two")?"""
    line = text[end : end + 300].lstrip().split("\n", 1)[0]
    sentence = line[: m.start()] if (m := _SENTENCE_END.search(line)) else line
    plain = not re.search(r"[\d$\\=]", sentence) and not _NUMBER_WORDS.search(sentence)
    return plain and bool(_NOT_AN_ANSWER.fullmatch(sentence))


def _last(pattern: re.Pattern, text: str, end: int) -> re.Match | None:
    return max(pattern.finditer(text, 0, end), key=lambda m: m.start(), default=None)


def _marker_answer(text: str, last: re.Match) -> tuple[str, int] | None:
    """The answer after the marker `last` and where it ends; None if it is a box never closed. A box holding a
    sentence ("\\boxed{Jim walks 200 feet less than Martha.}") gives the sentence's answer."""
    if last.re is not _BOX:
        return _after_word_marker(text, last.end())
    found = _boxes(text, last)
    if found and _is_sentence(found[0]):  # its answer where it states one plainly; else the sentence itself
        answer = _sentence_answer(found[0], single=True)
        return (found[0] if answer is None else answer), found[1]
    return found


def _is_sentence(content: str) -> bool:
    """Is a box's content a sentence: at least three words and, outside its math and `\\text{}`, no LaTeX
    ("Jim walks 200 feet less than Martha.", not "2\\sqrt{5} \\text{ square units}")?"""
    words = _TEXT.sub(r"\1", _unmath(content))
    return "\\" not in words and len(re.findall(r"[A-Za-z]{2,}", words)) >= 3


def extract_answer(text: str) -> str | None:
    """The text after the last marker: `\\boxed{}`, "The answer is", "####", "Answer:" or "A:"; None without one.

    The last marker wins, so a boxed intermediate result followed by "The answer is 10" gives "10". After a
    word marker the answer is the math span that opens it, or the rest of that line (or the next non-empty one)
    up to a full stop. None when there is no marker or the last `\\boxed{` is never closed (a truncated generation).
    """
    last = _last_marker(text)
    found = _marker_answer(text, last) if last else None
    return found[0] if found else None


def final_answer(text: str, require_marker: bool = False) -> Final:
    """The solution's final answer and its route (see the module docstring); `require_marker`: markers only."""
    text = _reply(text)
    last = _last_marker(text)
    if last is None:
        if require_marker:
            return Final(None, None)
        if _answer_only(text):  # "\\frac{10}{9}", ".4", "$E$": the whole completion is the answer
            return Final(text.strip(), PROSE)
        conclusion = concluding_answer(text)
        if conclusion is None or _HEADING.fullmatch(conclusion.answer.strip("* ")):  # "**5. FORMAT:**" then no
            return Final(None, None)  # answer: the step's number is no answer (seen in real Gemma 2 solutions)
        return Final(conclusion.answer, PROSE)
    found = _marker_answer(text, last)
    if found is None:  # a box never closed: a truncated generation
        return Final(None, None)
    if require_marker or not _CONCLUDES.search(text, found[1]):
        return Final(found[0], MARKER)  # no concluding statement after the marker's answer
    conclusion = concluding_answer(text)
    overrides = conclusion and conclusion.start >= found[1] and conclusion.with_verb and conclusion.concluding
    if not overrides or _restates(conclusion, found[0]):
        return Final(found[0], MARKER)
    return Final(conclusion.answer, PROSE)


def _reply(text: str) -> str:
    """The model's reply: the text before an end-of-turn token (`<|im_end|>`, `<|eot_id|>`, `</s>`, a next
    `<|im_start|>user` turn), after a thinking block (`<think>...</think>`) when something follows it."""
    end = _END_OF_TURN.search(text)
    text = text[: end.start()] if end else text
    think = text.rfind(_THINK_END)
    after = text[think + len(_THINK_END) :] if think >= 0 else ""
    return after if after.strip() else text


def _answer_only(text: str) -> bool:
    """A completion that is only an answer: short, one paragraph, no sentence ("\\frac{10}{9}", "$E$", "(1,4.5)")."""
    text = text.strip()
    if not text or len(text) > ANSWER_ONLY or "\n\n" in text:
        return False
    outside = re.sub(r"\\[A-Za-z]+|\\text\s*\{[^{}]*\}", " ", _unmath(text))
    return not re.search(r"[A-Za-z]{3,}", outside) and not _WORDS.search(outside)


def _restates(conclusion: Conclusion, answer: str) -> bool:
    """Does the statement after the marker mention the marker's answer ("$\\boxed{5}$ ... So the side is $5$ and
    the area is $25$")? Then it elaborates on the answer rather than replacing it."""
    answer = answer.replace(" ", "").strip("()")
    return any(m.strip("()") == answer or m.endswith("=" + answer) for m in (*conclusion.mentions, conclusion.answer))
