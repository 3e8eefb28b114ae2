"""The numbers of `sftkit filter`'s report: accuracy overall and per file, pass@k and majority vote per problem."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

from sftkit.grading.answers import CORRECT, NO_ANSWER, TIMEOUT, UNPARSEABLE, VERDICTS


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k solutions drawn without replacement from n (c correct) is correct."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_vote(answers: list[tuple[str | None, str]]) -> float:
    """1 if the correct answer is the most frequent one, 1/t if it ties with t-1 others (correct answers are
    one answer: they all equal the gold); solutions without an answer do not vote."""
    votes = Counter(True if verdict == CORRECT else answer for answer, verdict in answers if answer)  # True: gold
    best = max(votes.values(), default=0)
    return 1 / sum(n == best for n in votes.values()) if votes[True] == best > 0 else 0.0


def summarize(files: Sequence[str], graded: Sequence[tuple[int, str, str | None]], verdicts: Sequence[str]) -> dict:
    """The report's numbers (JSON-ready) for graded solutions given as (file index, problem id, answer)."""
    rate = lambda a, b: a / b if b else 0.0  # noqa: E731
    counts = Counter(verdicts)
    per_file = {str(f): {"graded": 0, "correct": 0} for f in files}
    problems = defaultdict(list)
    for (file, problem, answer), verdict in zip(graded, verdicts):
        entry = per_file[str(files[file])]
        entry["graded"] += 1
        entry["correct"] += verdict == CORRECT
        problems[problem].append((answer, verdict))
    for entry in per_file.values():
        entry["accuracy"] = rate(entry["correct"], entry["graded"])
    sizes = [len(v) for v in problems.values()]
    report = {
        "graded": len(graded),
        "correct": counts[CORRECT],
        "accuracy": rate(counts[CORRECT], len(graded)),
        "per_file": per_file,
        "verdicts": {v: counts[v] for v in VERDICTS},
        "unparseable": counts[NO_ANSWER] + counts[UNPARSEABLE],
        "timeouts": counts[TIMEOUT],
        "problems": len(problems),
        "solutions_per_problem": {"min": min(sizes, default=0), "max": max(sizes, default=0)},
    }
    if max(sizes, default=0) > 1:
        ks = [2**i for i in range(max(sizes).bit_length()) if 2**i <= max(sizes)]
        report["pass_at_k"] = {}
        for k in ks:
            scores = [pass_at_k(len(v), sum(x == CORRECT for _, x in v), k) for v in problems.values() if len(v) >= k]
            report["pass_at_k"][str(k)] = {"value": rate(sum(scores), len(scores)), "problems": len(scores)}
        report["majority_vote"] = rate(sum(majority_vote(v) for v in problems.values()), len(problems))
        solved = sum(any(x == CORRECT for _, x in v) for v in problems.values())
        report["any_correct"] = {"problems": solved, "value": rate(solved, len(problems))}
    return report


def format_report(r: dict) -> str:
    pct = lambda x: f"{100 * x:.2f}%"  # noqa: E731
    width = max([20] + [len(f) + 2 for f in r["per_file"]])
    lines = [
        f"accuracy: {r['correct']}/{r['graded']} = {pct(r['accuracy'])}  "
        f"({r['graded']} solutions of {r['problems']} problems)"
    ]
    lines += [f"  {f:<{width}} {e['correct']}/{e['graded']} = {pct(e['accuracy'])}" for f, e in r["per_file"].items()]
    if "pass_at_k" in r:
        low, high = r["solutions_per_problem"].values()
        lines.append(f"per problem ({low if low == high else f'{low} to {high}'} solutions each):")
        for k, e in r["pass_at_k"].items():
            lines.append(f"  {'pass@' + k:<{width}} {pct(e['value'])}  ({e['problems']} problems with >= {k})")
        lines.append(f"  {'majority vote':<{width}} {pct(r['majority_vote'])}")
        any_ = r["any_correct"]
        lines.append(f"  {'any correct':<{width}} {any_['problems']}/{r['problems']} = {pct(any_['value'])}")
    v = r["verdicts"]
    lines.append(
        f"not correct: {r['graded'] - r['correct']} (wrong answer {v['wrong']}, no final answer "
        f"{v['no_answer']}, unparseable {v['unparseable']}, timeout {v['timeout']})"
    )
    missing, meta = r["ids_without_metadata"], r["metadata"]
    lines.append(
        f"ids without metadata: {missing['ids']} ({missing['solutions']} solutions, not graded)"
        + (f", e.g. {', '.join(map(repr, missing['first']))}" if missing["first"] else "")
    )
    lines.append(
        f"duplicate ids in metadata: {meta['duplicate_ids']} (first row kept; "
        f"{meta['conflicting_duplicates']} with a different answer)"
        + (f", e.g. {', '.join(map(repr, meta['first_duplicates']))}" if meta["first_duplicates"] else "")
    )
    return "\n".join(lines)
