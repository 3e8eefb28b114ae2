"""Whether a final answer equals the gold answer: `clean` the notation, then compare with math-verify.

- `clean(answer)`: the answer without delimiters, currency, thousands separators, units and degree signs.
- `judge(gold, answer, question=None)`: a verdict, comparing with math-verify (or as text / multiple-choice
  letters); a bare list is compared as a set, or item by item in order where the question asks for an order
  (`order.asks_order`: "Enter the roots in increasing order"); `relevant_question(question)`: the question, or
  None where it changes no verdict.

Gold answers are compared as the MATH dataset writes them: `\\text{(A)}`, `\\text{A,D}`, `\\$3800`, `10\\%`,
`90^\\circ`, `5\\text{ cm}`, `\\dfrac`, `\\frac12`, `x \\in [2, 5)`, intervals, sets, tuples, matrices, `\\pm`,
equations (`y = 2x+3` against `2x+3`) and lists (`1, -2` against `x = -2, x = 1`). math-verify's parsing and
comparison (fractions, percentages, sets, intervals, matrices, symbolic equality) do the mathematics.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from sftkit.grading.evaluated import asks_value, unevaluated
from sftkit.grading.numbers import counted
from sftkit.grading.order import asks_order
from sftkit.grading.quiet import quiet_math_verify

CORRECT, WRONG, NO_ANSWER, UNPARSEABLE, TIMEOUT = "correct", "wrong", "no_answer", "unparseable", "timeout"
VERDICTS = (CORRECT, WRONG, NO_ANSWER, UNPARSEABLE, TIMEOUT)

MAX_CLEAN = 10_000  # characters: longer "answers" are left as they are
_DELIMITERS = [("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")]
_NUMBER = r"[-+]?(?:[1-9]\d{0,2}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"  # "0,111" is no thousands separator
_NUMBER_WITH_UNIT = re.compile(  # "$1,000", "18 dollars", "25 percent", "3.5 \text{ hours}", "100 km/h"
    rf"(?:\\?\$|€|£|¥|₹)?\s*(?P<num>{_NUMBER})\s*(?P<pct>\\?%|percent\b)?"
    r"(?:\s+(?!" + r"(?:hundred|thousand|million|billion|trillion|dozen|or|and|to|plus|minus|times|more|less|at|"
    r"least|most|over|under|about|approximately|roughly)\b)"  # a scale or a hedge changes the value: not a unit
    r"[A-Za-z]{2,}[A-Za-z./ -]*(?:\^\d)?|\s*\\(?:text|mbox|mathrm)\{[^{}]*\})?"
)
_BOUND = re.compile(
    r"\b(?:or (?:more|less|fewer|greater|higher|lower)|at (?:least|most)|(?:more|less|fewer|greater) than|up to)\b",
    re.IGNORECASE,
)
_UNIT_WORDS = r"(?:cm|mm|km|m|in|inch(?:es)?|ft|feet|foot|units?|square units|sq units|degrees?|dollars?|cents?)"
_UNIT = re.compile(  # a unit after a value: "\text{ cm}^2", "\mbox{ inches}", "\text{cm}", "~\mathrm{m}"
    rf"\s*~?\\(?:text|mbox|mathrm)\s*\{{(?:\s+[^{{}}]*|\s*{_UNIT_WORDS}\s*)\}}(?:\^\{{?\d\}}?)?\s*$"
)
_DEGREES = re.compile(r"\^\s*\{?\\circ\}?|°|\\circ\b|\\text\{\s*degrees?\}|\s+degrees?\b")
_SHORT_FRACTION = [  # \frac12, \frac 59, \frac\pi4 -> \frac{1}{2}; \frac9{19}, \frac{270}7
    (re.compile(r"\\frac\s*(\d|\\[A-Za-z]+)\s*(\d|\\[A-Za-z]+)"), r"\\frac{\1}{\2}"),
    (re.compile(r"\\frac\s*(\d|\\[A-Za-z]+)\s*\{"), r"\\frac{\1}{"),
    (re.compile(r"\\frac\s*(\{[^{}]*\})\s*(\d)"), r"\\frac\1{\2}"),
]
_RATIONAL = re.compile(  # "12", "-0.5", ".5", "\frac{3}{4}", "3/4"
    r"(?P<sign>-?)(?:(?P<dec>\d+(?:\.\d+)?|\.\d+)|\\frac\{(?P<num>\d+)\}\{(?P<den>\d+)\}|(?P<n>\d+)/(?P<d>\d+))"
)
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mbox|mathbf|textit)\s*\{([^{}]*)\}")
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty".split()
)}  # fmt: skip
_NUMBER_WORD = re.compile(rf"(?i:({'|'.join(_NUMBER_WORDS)}))(?:\s+[A-Za-z]+){{0,2}}")  # "five integers" -> 5
_SQRT_SIGN = re.compile(r"√\s*(\d+|\{[^{}]*\}|\([^()]*\)|[A-Za-z])")  # "√3", "2√{x}" -> \sqrt{3}, 2\sqrt{x}
_FUNCTION_OF = re.compile(r"\s*([A-Za-z])\s*\(\s*([a-z])\s*\)\s*=")  # "f(x) =": the variable's name is free
_DECIMAL = re.compile(r"-?\d*\.\d+")
_DECIMAL_COMMA = re.compile(r"-?(?:0,\d+|\d+,(?:\d{1,2}|\d{4,}))")  # "1000,99", "0,111", "2,74"; not "1,000"
FLOAT_ROUNDING = 6  # decimals: math-verify's default float_rounding
_LETTERS = re.compile(r"\(?([A-H])\)?(?:\s*(?:,|and|\s)\s*\(?([A-H])\)?)*")  # "(A)", "A,D", "A, C and F"
_CHOICE_PRED = re.compile(r"[\s*:]*(?:(?i:option|choice)\s+)?(?:\(([A-Ea-e])\)|([A-E])(?![A-Za-z0-9]))")
_LIST_AND = re.compile(r"^\s*(?:and\s+|\\text\s*\{\s*and\s*\}\s*)")  # "2, 4, and 3": the last item's "and"
_LATEX = [LatexExtractionConfig(boxed_match_priority=0)]
_EXPR = [ExprExtractionConfig()]


def _strip_delimiters(s: str) -> str:
    changed = True
    while changed:
        changed = False
        s = s.strip().rstrip(".").strip().strip("*").lstrip(":").strip()  # "**Answer:** 5", "5."
        for left, right in _DELIMITERS:
            if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
                s, changed = s[len(left) : len(s) - len(right)], True
                break
    return s


def clean(answer: str) -> str:
    """Strip math delimiters, bold, a final full stop, currency, thousands separators, units and degree signs.

    "$\\$1,000.$" -> "1000", "18 dollars" -> "18", "25 percent" -> "25\\%", "90^\\circ" -> "90",
    "15\\mbox{ cm}^2" -> "15", "x \\in [2, 5)" -> "[2, 5)"; other answers pass unchanged.
    """
    if len(answer) > MAX_CLEAN:  # not an answer anyone wrote: keep the time bounded (it runs outside the workers)
        return answer.strip()
    s = answer.strip().replace("\u2212", "-").replace("{,}", ",").replace("\\,", "").replace("\\;", " ")
    s = re.sub(r",\\!\s*", ",", s).replace("\\!", "")
    s = re.sub(r"(?<!\\)\\ ", " ", s)  # "\ " (a space), not the row break "\\\\" of a matrix
    s = re.sub(r"\\(?:displaystyle|textstyle)\b", "", s)
    s = _SQRT_SIGN.sub(lambda m: "\\sqrt{" + m[1].strip("{}") + "}", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\cfrac", "\\frac")
    s = re.sub(r"\\(?:left|right)(?![A-Za-z])", "", s)
    for pattern, replacement in _SHORT_FRACTION:
        s = pattern.sub(replacement, s)
    s = _strip_delimiters(s)
    s = _DEGREES.sub("", _UNIT.sub("", s)).strip()
    s = re.sub(r"^[A-Za-z]\s*\\in\s*", "", s)  # x \in [2, 5)
    s = re.sub(r"^-\s*\\?\$\s*(?=\d)", "-", s)  # -\$0.50
    word = _NUMBER_WORD.fullmatch(s)
    if word:  # "five integers": the number in words
        return _NUMBER_WORDS[word[1].lower()]
    number = _NUMBER_WITH_UNIT.fullmatch(s)
    if number:
        s = number["num"].replace(",", "") + ("\\%" if number["pct"] else "")
    return s


def _unwrap(s: str) -> str:
    return _TEXT_WRAPPER.sub(r"\1", s).strip()


def _plain_text(s: str) -> str:
    """Lower-case words only: for answers that are words ("Monday", "yes")."""
    s = _unwrap(s).lower()
    s = re.sub(r"\\[a-z]+|[^a-z0-9]+", " ", s).split()
    return " ".join(s[1:] if s and s[0] in ("the", "a", "an") else s)


def _letters(s: str) -> set[str] | None:
    """The choice letters of "(A)", "\\text{A,D}", "(B) 12" (the letter opening it); None if it names none."""
    unwrapped = _unwrap(_unwrap(s))
    if _LETTERS.fullmatch(unwrapped):
        return set(re.findall(r"[A-H]", unwrapped))
    found = _CHOICE_PRED.match(unwrapped)
    return {(found[1] or found[2]).upper()} if found else None


def _kind(gold: str) -> str:
    """'choice' (letters A-H), 'text' (words, or a whole `\\text{}` such as "4:30 p.m.") or 'math'."""
    unwrapped = _unwrap(gold)
    if _LETTERS.fullmatch(unwrapped):
        return "choice"
    if _TEXT_WRAPPER.fullmatch(gold) and re.search(r"[A-Za-z]{2,}|[a-z]\.", unwrapped):
        return "text"
    without_commands = re.sub(r"\\[A-Za-z]+", " ", unwrapped)
    if re.search(r"[A-Za-z]{2,}", without_commands) and not re.search(r"\d", without_commands):
        return "text"
    return "math"


@functools.lru_cache(maxsize=20_000)
def parse_math(answer: str) -> list:
    """math-verify's parse of an isolated answer (as the content of a `\\boxed{}`), then as plain text."""
    with quiet_math_verify():
        parsed = parse(f"\\boxed{{{answer}}}", _LATEX, fallback_mode="no_fallback", parsing_timeout=None)
        return parsed or parse(answer, _EXPR, fallback_mode="no_fallback", parsing_timeout=None)


def _split_top(s: str, separator: str) -> list[str]:
    """`s` cut at `separator` ("," or "=") outside braces and brackets ("<=", ">=", "!=" are not "=")."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(s):
        depth += (char in "{([") - (char in "})]")
        if char == separator and depth == 0 and not (separator == "=" and i and s[i - 1] in "<>!\\"):
            parts.append(s[start:i])
            start = i + 1
    return [*parts, s[start:]]


def _values(gold: str, answer: str) -> str:
    """The answer's values where the gold is not an equation: "x = 1, x = -2" -> "1, -2", "4! = 24" -> "24",
    "(101-1)^3 = 1,000,000" -> "1000000", and a list of as many values as the gold tuple has, as that tuple:
    "a = 3, b = 4" -> "(3, 4)" for "(3,4)"."""
    if len(_split_top(gold, "=")) > 1 or "=" not in answer:
        return answer
    items = _split_top(answer, ",")
    if len(items) > 1 and all(len(_split_top(item, "=")) > 1 for item in items):
        values = [clean(_split_top(item, "=")[-1]) for item in items]
        if gold[:1] in "([" and len(_split_top(gold[1:-1], ",")) == len(values):
            return "(" + ", ".join(values) + ")"
        return ", ".join(values)
    return clean(_split_top(answer, "=")[-1])


def _rational(s: str) -> Fraction | None:
    """ "12", "-0.5", "\\frac{3}{4}", "3/4" as an exact number; None for anything else."""
    m = _RATIONAL.fullmatch(s)
    if not m or (m["den"] or m["d"] or "1").strip("0") == "":
        return None
    value = Fraction(m["dec"]) if m["dec"] else Fraction(int(m["num"] or m["n"]), int(m["den"] or m["d"]))
    return -value if m["sign"] else value


def _decimal_comma(s: str, other: str) -> str:
    """ "1000,99" as 1000.99 where the other side is a decimal number ("1000.99"): a European decimal comma; "1,2"
    against "12" or "1, 2" stays a list, "1,000" a thousands separator."""
    return s.replace(",", ".") if _DECIMAL_COMMA.fullmatch(s) and _DECIMAL.fullmatch(other) else s


def _judge_math(gold: str, answer: str, question: str | None = None) -> str:
    answer = _values(gold, answer)
    gold, answer = _decimal_comma(gold, answer), _decimal_comma(answer, gold)
    if gold.replace(" ", "") == answer.replace(" ", ""):
        return CORRECT
    if asks_value(question) and unevaluated(gold, answer):  # "Compute $\\dbinom{31}{28}$": "\\frac{31!}{28!3!}"
        return WRONG
    in_order = _in_order(gold, answer, question)
    if in_order is not None:
        return in_order
    numbers = _rational(gold), _rational(answer)
    if None not in numbers:  # plain numbers and fractions (most answers): exact, 50x faster than sympy
        return CORRECT if numbers[0] == numbers[1] or _rounded(answer, *numbers) else WRONG
    answer = _same_variable(gold, answer)
    predicted = parse_math(answer)
    if not predicted:
        return CORRECT if _plain_text(answer) == _plain_text(gold) else UNPARSEABLE
    gold_parsed = parse_math(gold)
    if not gold_parsed:  # a gold answer math-verify cannot read: compare the texts
        return CORRECT if _plain_text(answer) == _plain_text(gold) else WRONG
    # allow_set_relation_comp: "1/2 <= x <= 8" for the gold [1/2, 8], "k < -5" for (-oo, -5) (math-verify's option)
    with quiet_math_verify():
        same = verify(gold_parsed, predicted, timeout_seconds=None, allow_set_relation_comp=True)
    return CORRECT if same else WRONG


def _in_order(gold: str, answer: str, question: str | None) -> str | None:
    """A bare list gold ("2, 4, 3") against the answer's list ("2, 3, 4", "(2, 3, 4)", "\\{2, 3, 4\\}"), item by
    item, where the question asks for an order; None otherwise (math-verify then compares lists as sets, tuples in
    order).
    Each pair of items is judged as a whole answer (math-verify's comparison). Equations ("a = 1, b = 2") name
    their values: not compared by position."""
    items = _split_top(gold, ",")
    if len(items) < 2 or "=" in gold or "=" in answer or not asks_order(question):
        return None
    inner = _unbracketed(answer)
    answered = [_LIST_AND.sub("", item) for item in _split_top(inner, ",")]
    if len(answered) != len(items):
        return WRONG
    return CORRECT if all(_judge_math(g.strip(), a.strip()) == CORRECT for g, a in zip(items, answered)) else WRONG


def _unbracketed(s: str) -> str:
    """The items of "(2, 3, 4)", "[2, 3, 4]" or "\\{2, 3, 4\\}" (a list written as a tuple or a set); `s` otherwise."""
    if s.startswith("\\{") and s.endswith("\\}") and "\\}" not in s[2:-2]:
        return s[2:-2]
    return s[1:-1] if s[:1] in "([" and _closing(s) == len(s) - 1 else s


def _closing(s: str) -> int:
    """Index of the bracket closing the one that opens `s` (-1 if none)."""
    depth = 0
    for i, char in enumerate(s):
        depth += (char in "{([") - (char in "})]")
        if depth == 0:
            return i
    return -1


def _rounded(answer: str, gold: Fraction, value: Fraction) -> bool:
    """A decimal answer with at least FLOAT_ROUNDING decimals that is the gold rounded ("0.0833333" for 1/12), as
    math-verify's float_rounding accepts it; fewer decimals ("0.08", "0.33") are a different, rounded answer."""
    decimals = answer.partition(".")[2]
    if len(decimals) < FLOAT_ROUNDING or not decimals.isdigit():
        return False
    return round(gold, FLOAT_ROUNDING) == round(value, FLOAT_ROUNDING)


def _same_variable(gold: str, answer: str) -> str:
    """ "f(y) = 1" read as "f(x) = 1" when the gold is "f(x) = ...": the function's variable name is free."""
    g, a = _FUNCTION_OF.match(gold), _FUNCTION_OF.match(answer)
    if not g or not a or g[1] != a[1] or g[2] == a[2] or re.search(rf"(?<![A-Za-z\\]){g[2]}(?![A-Za-z])", answer):
        return answer
    return re.sub(rf"(?<![A-Za-z\\]){a[2]}(?![A-Za-z])", g[2], answer)


def relevant_question(question: str | None) -> str | None:
    """The question where a verdict may depend on it (it asks for an order, or for a value: `evaluated.py`), else None:
    callers grade each distinct (gold, answer, question) once, and most questions change no verdict."""
    return question if asks_order(question) or asks_value(question) else None


def judge(gold: str, answer: str | None, question: str | None = None) -> str:
    """Verdict for one final answer (as `extract.final_answer` finds it) against the gold answer; `question`, the
    problem's text where known, tells whether a list's order matters (`order.asks_order`)."""
    if answer is None or not clean(answer):
        return NO_ANSWER
    raw_gold, gold = gold, clean(gold)
    raw = counted(len(_split_top(gold, ",")), answer)  # "2 (namely x = 4, x = 5)": the count or the listed values
    answer = clean(raw)
    kind = _kind(gold)
    if kind == "choice":
        letters = _letters(answer)
        return UNPARSEABLE if letters is None else CORRECT if letters == _letters(gold) else WRONG
    if kind == "text":  # as words, with or without what `clean` took for a unit ("4:30 \\text{ p.m.}")
        texts = {_plain_text(gold), _plain_text(_strip_delimiters(raw_gold))}
        first_clause = answer if "," in gold else re.split(r"[,;]", answer)[0]
        return CORRECT if {_plain_text(first_clause), _plain_text(_strip_delimiters(raw))} & texts else WRONG
    if _BOUND.search(answer) and not _BOUND.search(gold):  # "2 or more", "at least 2": a bound, not the value
        return WRONG
    return _judge_math(gold, answer, question)
