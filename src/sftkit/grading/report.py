"""The numbers of `sftkit filter`'s report: accuracy overall and per file, pass@k and majority vote per problem,
and how the final answers were found (after a marker, from the concluding statement, not at all).

Accuracy counts every solution read: a solution that could not be graded (its id has no metadata, or no gold
answer) is not correct, and the headline says how many there were beside the number."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import NamedTuple

from sftkit.grading.extract import MARKER, PROSE
from sftkit.grading.judge import CORRECT, NO_ANSWER, TIMEOUT, UNPARSEABLE, VERDICTS

NO_METADATA, NO_GOLD = "no_metadata", "no_gold_answer"  # why a solution was not graded
UNGRADED = {NO_GOLD: "no gold answer", NO_METADATA: "no metadata"}
ROUTE_KEYS = {MARKER: "marker", PROSE: "prose", None: "not_found"}


class Record(NamedTuple):
    file: int  # index in the list of files
    id: str
    answer: str | None
    route: str | None  # extract.MARKER, extract.PROSE, or None (no final answer found)
    outcome: str  # a verdict (judge.VERDICTS), or why it was not graded (NO_METADATA, NO_GOLD)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k solutions drawn without replacement from n (c correct) is correct."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_vote(answers: list[tuple[str | None, str]]) -> float:
    """1 if the correct answer is the most frequent one, 1/t if it ties with t-1 others (correct answers are
    one answer: they all equal the gold); solutions without an answer do not vote."""
    votes = Counter(True if verdict == CORRECT else answer for answer, verdict in answers if answer)  # True: gold
    best = max(votes.values(), default=0)
    return 1 / sum(n == best for n in votes.values()) if votes[True] == best > 0 else 0.0


def _rate(a: float, b: float) -> float:
    return a / b if b else 0.0


def _per_file(files: Sequence, records: Sequence[Record]) -> dict:
    per_file = {str(f): {"solutions": 0, "graded": 0, "ungraded": 0, "correct": 0} for f in files}
    for r in records:
        entry = per_file[str(files[r.file])]
        entry["solutions"] += 1
        entry["ungraded" if r.outcome in UNGRADED else "graded"] += 1
        entry["correct"] += r.outcome == CORRECT
    for entry in per_file.values():
        entry["accuracy"] = _rate(entry["correct"], entry["solutions"])
    return per_file


def _per_problem(problems: dict[str, list[tuple[str | None, str]]]) -> dict:
    sizes = [len(v) for v in problems.values()]
    report = {
        "problems": len(problems),
        "solutions_per_problem": {"min": min(sizes, default=0), "max": max(sizes, default=0)},
    }
    if max(sizes, default=0) > 1:
        ks = [2**i for i in range(max(sizes).bit_length()) if 2**i <= max(sizes)]
        report["pass_at_k"] = {}
        for k in ks:
            scores = [pass_at_k(len(v), sum(x == CORRECT for _, x in v), k) for v in problems.values() if len(v) >= k]
            report["pass_at_k"][str(k)] = {"value": _rate(sum(scores), len(scores)), "problems": len(scores)}
        report["majority_vote"] = _rate(sum(majority_vote(v) for v in problems.values()), len(problems))
        solved = sum(any(x == CORRECT for _, x in v) for v in problems.values())
        report["any_correct"] = {"problems": solved, "value": _rate(solved, len(problems))}
    return report


def summarize(files: Sequence, records: Sequence[Record]) -> dict:
    """The report's numbers (JSON-ready) for every solution read."""
    graded = [r for r in records if r.outcome not in UNGRADED]
    counts, problems = Counter(r.outcome for r in records), defaultdict(list)
    for r in graded:
        problems[r.id].append((r.answer, r.outcome))
    return {
        "solutions": len(records),
        "graded": len(graded),
        "ungraded": {key: counts[key] for key in UNGRADED},
        "correct": counts[CORRECT],
        "accuracy": _rate(counts[CORRECT], len(records)),
        "graded_accuracy": _rate(counts[CORRECT], len(graded)),
        "per_file": _per_file(files, records),
        "verdicts": {v: counts[v] for v in VERDICTS},
        "unparseable": counts[NO_ANSWER] + counts[UNPARSEABLE],
        "timeouts": counts[TIMEOUT],
        "answer_routes": {key: sum(r.route == route for r in graded) for route, key in ROUTE_KEYS.items()},
        **_per_problem(problems),
    }


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _headline(r: dict) -> str:
    """ "accuracy: 5/10 = 50.00% (5 ungraded: no gold answer); 5 graded solutions of 3 problems"."""
    ungraded = {UNGRADED[k]: n for k, n in r["ungraded"].items() if n}
    line = f"accuracy: {r['correct']}/{r['solutions']} = {_pct(r['accuracy'])}"
    if ungraded:
        why = next(iter(ungraded)) if len(ungraded) == 1 else ", ".join(f"{n} {k}" for k, n in ungraded.items())
        line += f" ({sum(ungraded.values())} ungraded: {why})"
    return line + f"; {r['graded']} graded solutions of {r['problems']} problems"


def _answer_lines(r: dict) -> list[str]:
    v, routes = r["verdicts"], r["answer_routes"]
    return [
        f"graded, not correct: {r['graded'] - r['correct']} (wrong answer {v['wrong']}, no final answer "
        f"{v['no_answer']}, unparseable {v['unparseable']}, timeout {v['timeout']})",
        f"final answers of the graded solutions: {routes['marker']} after a marker (\\boxed, 'The answer is', ####, "
        f"'Answer:'), {routes['prose']} from the concluding statement (prose), {routes['not_found']} not found"
        + (" (--require-marker: only markers count)" if r.get("require_marker") else ""),
    ]


def _id_lines(r: dict) -> list[str]:
    missing, meta = r["ids_without_metadata"], r["metadata"]
    no_gold = r.get("ids_without_gold_answer", {"ids": 0})
    lines = [
        f"ids without metadata: {missing['ids']} ({missing['solutions']} solutions, not graded)"
        + (f", e.g. {', '.join(map(repr, missing['first']))}" if missing["first"] else "")
    ]
    if no_gold["ids"]:
        lines.append(
            f"ids whose metadata has no gold answer: {no_gold['ids']} ({no_gold['solutions']} solutions, not "
            f"graded), e.g. {', '.join(map(repr, no_gold['first']))}"
        )
    lines.append(
        f"duplicate ids in metadata: {meta['duplicate_ids']} (first row kept; "
        f"{meta['conflicting_duplicates']} with a different answer)"
        + (f", e.g. {', '.join(map(repr, meta['first_duplicates']))}" if meta["first_duplicates"] else "")
    )
    return lines


def format_report(r: dict) -> str:
    width = max([20] + [len(f) + 2 for f in r["per_file"]])
    lines = [_headline(r)]
    for f, e in r["per_file"].items():
        note = f" ({e['ungraded']} ungraded)" if e["ungraded"] else ""
        lines.append(f"  {f:<{width}} {e['correct']}/{e['solutions']} = {_pct(e['accuracy'])}{note}")
    if "pass_at_k" in r:
        low, high = r["solutions_per_problem"].values()
        lines.append(f"per problem ({low if low == high else f'{low} to {high}'} solutions each):")
        for k, e in r["pass_at_k"].items():
            lines.append(f"  {'pass@' + k:<{width}} {_pct(e['value'])}  ({e['problems']} problems with >= {k})")
        lines.append(f"  {'majority vote':<{width}} {_pct(r['majority_vote'])}")
        any_ = r["any_correct"]
        lines.append(f"  {'any correct':<{width}} {any_['problems']}/{r['problems']} = {_pct(any_['value'])}")
    return "\n".join(lines + _answer_lines(r) + _id_lines(r))
