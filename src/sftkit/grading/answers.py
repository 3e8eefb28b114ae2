"""Final answers: where a solution states one, and whether it equals the gold answer (math-verify).

- `extract_answer(text)`: the text of the final answer, after the LAST of the markers below.
- `clean(answer)`: the answer without delimiters, currency, thousands separators and unit words.
- `judge(gold, answer)`: a verdict, comparing with math-verify (or as text / a multiple-choice letter).
- `grade_pairs(pairs, timeout, workers)`: many judgements on worker processes, each bounded in time.

Why not math-verify's own extraction: it ranks its patterns by kind ("final answer is" before `\\boxed` before
"answer" before any number) and takes the rightmost match of the best-ranked kind found, so
"\\boxed{5} ... the answer is 10" yields 5; it knows no "####" ("#### 72\\nbye 3" yields 3), and with no marker
it grades the last number in the text. We want the answer the solution states last, whatever the marker, and
nothing when it states none. So we locate the final answer ourselves and hand math-verify only that text, where
its parsing and comparison (fractions, percentages, sets, intervals, matrices, symbolic equality) do the work.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing as mp
import re
import signal
import sys
import threading
from collections.abc import Sequence

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
from tqdm import tqdm

CORRECT, WRONG, NO_ANSWER, UNPARSEABLE, TIMEOUT = "correct", "wrong", "no_answer", "unparseable", "timeout"
VERDICTS = (CORRECT, WRONG, NO_ANSWER, UNPARSEABLE, TIMEOUT)

# math-verify's own time limits use signal.alarm and cancel any alarm on return, which would cancel ours:
# we turn them off (None) and bound the whole judgement instead; this silences its "timeout is disabled" note.
logging.getLogger("math_verify").setLevel(logging.ERROR)

_MARKERS = re.compile(
    r"\\(?:boxed|fbox)\s*\{"  # \boxed{...}: the content up to the matching brace
    r"|####"  # GSM8K
    r"|(?i:\banswer\s+is\b\s*:?)"  # "The answer is", "The final answer is:"
    r"|(?i:\banswer\**\s*:)"  # "Answer:", "Final answer:", "**Answer:**"
    r"|(?m:^)[ \t>*#]*A\s*:"  # "A:" at the start of a line (Q:/A: few-shot format); case-sensitive
)
_SENTENCE_END = re.compile(r"\.(?:\s|$)")  # a full stop, not a decimal point
_DELIMITERS = [("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")]
_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+"
_NUMBER_WITH_UNIT = re.compile(  # "$1,000", "18 dollars", "25 percent", "3.5 \text{ hours}", "100 km/h"
    rf"(?:\\?\$|€|£|¥|₹)?\s*(?P<num>{_NUMBER})\s*(?P<pct>\\?%|percent\b)?"
    r"(?:\s+[A-Za-z]{2,}[A-Za-z./ -]*(?:\^\d)?|\s*\\(?:text|mbox|mathrm)\{[^{}]*\})?"
)
_INTEGER = re.compile(r"[-+]?\d+")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mbox|mathbf|textit)\{([^{}]*)\}")
_CHOICE_GOLD = re.compile(r"\(?([A-E])\)?")
_CHOICE_PRED = re.compile(r"[\s*:]*(?:(?i:option|choice)\s+)?(?:\(([A-Ea-e])\)|([A-E])(?![A-Za-z0-9]))")
_LATEX = [LatexExtractionConfig(boxed_match_priority=0)]
_EXPR = [ExprExtractionConfig()]


def _boxed_content(text: str, start: int) -> str | None:
    """Text inside the braces opening at `start` (nested braces counted, `\\{` `\\}` skipped); None if unclosed."""
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
                return text[start + 1 : i]
        i += 1
    return None


def extract_answer(text: str) -> str | None:
    """The final answer's text: after the last `\\boxed{}`, "The answer is", "####", "Answer:" or "A:".

    The last marker wins, so a boxed intermediate result followed by "The answer is 10" gives "10". After a
    word marker the answer is the rest of that line (or the next non-empty one) up to a full stop. None when
    there is no marker or the last `\\boxed{` is never closed (a truncated generation).
    """
    last = max(_MARKERS.finditer(text), key=lambda m: m.start(), default=None)
    if last is None:
        return None
    if last.group().endswith("{"):
        return _boxed_content(text, last.end() - 1)
    lines = [line.strip() for line in text[last.end() :].splitlines()]
    rest = next((line for line in lines if line), "")
    end = _SENTENCE_END.search(rest)
    return rest[: end.start()] if end else rest


def clean(answer: str) -> str:
    """Strip math delimiters, bold, a final full stop, currency, thousands separators and unit words.

    "$\\$1,000.$" -> "1000", "18 dollars" -> "18", "25 percent" -> "25\\%"; other answers pass unchanged.
    """
    s = answer.strip().replace("\u2212", "-").replace("\\!", "").replace("{,}", ",").replace("\\,", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\\(?:left|right)(?![A-Za-z])", "", s)
    changed = True
    while changed:
        changed = False
        s = s.strip().rstrip(".").strip().strip("*").lstrip(":").strip()  # "**Answer:** 5", "5."
        for left, right in _DELIMITERS:
            if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
                s, changed = s[len(left) : len(s) - len(right)], True
                break
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


def _kind(gold: str) -> str:
    """'choice' (a letter A-E), 'text' (words, no digits) or 'math'."""
    unwrapped = _unwrap(gold)
    if _CHOICE_GOLD.fullmatch(unwrapped):
        return "choice"
    without_commands = re.sub(r"\\[A-Za-z]+", " ", unwrapped)
    if re.search(r"[A-Za-z]{2,}", without_commands) and not re.search(r"\d", without_commands):
        return "text"
    return "math"


@functools.lru_cache(maxsize=20_000)
def parse_math(answer: str) -> list:
    """math-verify's parse of an isolated answer (as the content of a `\\boxed{}`), then as plain text."""
    parsed = parse(f"\\boxed{{{answer}}}", _LATEX, fallback_mode="no_fallback", parsing_timeout=None)
    return parsed or parse(answer, _EXPR, fallback_mode="no_fallback", parsing_timeout=None)


def judge(gold: str, answer: str | None) -> str:
    """Verdict for one final answer (as returned by `extract_answer`) against the gold answer."""
    if answer is None or not clean(answer):
        return NO_ANSWER
    gold, answer = clean(gold), clean(answer)
    kind = _kind(gold)
    if kind == "choice":
        found = _CHOICE_PRED.match(_unwrap(answer))
        if not found:
            return UNPARSEABLE
        return CORRECT if (found[1] or found[2]).upper() == _CHOICE_GOLD.fullmatch(_unwrap(gold))[1] else WRONG
    if kind == "text":
        first_clause = answer if "," in gold else re.split(r"[,;]", answer)[0]
        return CORRECT if _plain_text(first_clause) == _plain_text(gold) else WRONG
    if _INTEGER.fullmatch(gold) and _INTEGER.fullmatch(answer):  # most GSM8K answers: exact, 50x faster than sympy
        return CORRECT if int(gold) == int(answer) else WRONG
    predicted = parse_math(answer)
    if not predicted:
        return CORRECT if _plain_text(answer) == _plain_text(gold) else UNPARSEABLE
    gold_parsed = parse_math(gold)
    if not gold_parsed:  # a gold answer math-verify cannot read: compare the texts
        return CORRECT if _plain_text(answer) == _plain_text(gold) else WRONG
    return CORRECT if verify(gold_parsed, predicted, timeout_seconds=None) else WRONG


class _Timeout(BaseException):  # BaseException: math-verify's `except Exception` must not swallow it
    pass


def _raise_timeout(signum, frame):
    raise _Timeout


def judge_in_time(gold: str, answer: str | None, seconds: float) -> str:
    """`judge` bounded by a SIGALRM timer (main thread only; elsewhere unbounded). TIMEOUT when it fires."""
    if seconds <= 0 or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return judge(gold, answer)
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, seconds)
            return judge(gold, answer)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Timeout:
        return TIMEOUT
    finally:
        signal.signal(signal.SIGALRM, previous)


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


def _judge_batch(batch: list[tuple[str, str | None]], seconds: float) -> list[str]:
    return [judge_in_time(gold, answer, seconds) for gold, answer in batch]


MIN_PARALLEL = 500  # below this many pairs, starting worker processes (~0.3 s) costs more than it saves
BATCH = 64  # pairs per task: one at a time, inter-process traffic would cost more than the grading
HARD_GRACE_S = 10.0  # a batch silent this long past its time limits is stuck where no signal reaches


def grade_pairs(
    pairs: Sequence[tuple[str, str | None]], timeout: float, workers: int, progress: bool = True
) -> list[str]:
    """Verdicts for (gold, answer) pairs, in order, on `workers` processes, each pair bounded by `timeout` s.

    Each pair is bounded twice: by a timer inside the worker (-> TIMEOUT), and, should a worker hang where the
    timer cannot reach (inside C code), by the parent: it replaces the pool, re-runs the stuck batch one pair
    per task, and counts the pair that hangs alone as TIMEOUT.
    """
    verdicts: list[str | None] = [None] * len(pairs)
    bar = tqdm(total=len(pairs), desc="grading", unit="answer", file=sys.stderr, disable=not progress)
    if workers <= 1 or len(pairs) < MIN_PARALLEL:
        for i, (gold, answer) in enumerate(pairs):
            verdicts[i] = judge_in_time(gold, answer, timeout)
            bar.update()
        bar.close()
        return verdicts
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:  # workers fork from a server that has imported sympy once: fast and thread-safe
        ctx.set_forkserver_preload(["sftkit.grading.answers"])
    size = max(1, min(BATCH, len(pairs) // (workers * 8)))  # >= 8 batches per worker balance the load
    todo = [list(range(i, min(i + size, len(pairs)))) for i in range(0, len(pairs), size)]
    while todo:
        with ctx.Pool(workers, initializer=_init_worker) as pool:
            tasks = ([pairs[i] for i in batch] for batch in todo)
            results = pool.imap(functools.partial(_judge_batch, seconds=timeout), tasks)
            for done, batch in enumerate(todo):
                try:
                    wait = len(batch) * timeout + HARD_GRACE_S if timeout > 0 else None
                    for i, verdict in zip(batch, results.next(timeout=wait)):
                        verdicts[i] = verdict
                    bar.update(len(batch))
                except mp.TimeoutError:  # leaving the `with` terminates the pool; the rest goes to a fresh one
                    if len(batch) == 1:
                        verdicts[batch[0]] = TIMEOUT
                        bar.update()
                    todo = [[i] for i in batch if len(batch) > 1] + todo[done + 1 :]
                    break
            else:
                todo = []
    bar.close()
    return verdicts
