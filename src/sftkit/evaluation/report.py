"""`sftkit eval`'s numbers: `sftkit filter`'s report (`grading.report.summarize`) over the generated solutions,
so that the accuracy printed here is the one `sftkit filter` prints for the output file; plus pass@K for K samples
that is not a power of two, the problems without a gold answer, and the generation's speed.

One difference with `sftkit filter` run on the output: a blank solution (empty or whitespace only: the model ended
its turn at once, or wrote only newlines) is a wrong answer here, while the filter skips a blank
`generated_solution` as a bad row; the report counts them."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from sftkit.evaluation.generate import Generated, Sampling
from sftkit.evaluation.grade import Graded
from sftkit.evaluation.problems import Problems
from sftkit.grading.judge import CORRECT
from sftkit.grading.report import NO_GOLD, NO_METADATA, UNGRADED, Record, pass_at_k, summarize

SHOW = 5


def _records(problems: Problems, generations: list[list[Generated]], graded: list[Graded]) -> list[Record]:
    flat = iter(graded)
    return [
        Record(0, p.key, g.answer, g.route, g.outcome)
        for p, samples in zip(problems.items, generations)
        for g in (next(flat) for _ in samples)
    ]


def _ungraded(problems: Problems, why: str, samples: int) -> dict:
    ids = [p.key for p in problems.items if p.missing == why]
    return {"ids": len(ids), "solutions": len(ids) * samples, "first": ids[:SHOW]}


def _pass_at_samples(summary: dict, records: list[Record], samples: int) -> None:
    """pass@K for K samples per problem when `summarize` stopped at the power of two below it."""
    if samples < 2 or str(samples) in summary.get("pass_at_k", {}):
        return
    per_problem = defaultdict(list)
    for r in records:
        if r.outcome not in UNGRADED:
            per_problem[r.id].append(r.outcome == CORRECT)
    scores = [pass_at_k(len(v), sum(v), samples) for v in per_problem.values() if len(v) >= samples]
    value = sum(scores) / len(scores) if scores else 0.0
    summary.setdefault("pass_at_k", {})[str(samples)] = {"value": value, "problems": len(scores)}


def make_summary(
    problems: Problems, generations: list[list[Generated]], graded: list[Graded], output: Path, sampling: Sampling
) -> dict:
    """The report's numbers, JSON-ready: `summarize`'s (accuracy, per file, pass@k, majority vote, verdicts) and
    the problems read."""
    records = _records(problems, generations, graded)
    summary = summarize([str(output)], records)
    _pass_at_samples(summary, records, sampling.samples)
    summary["ids_without_metadata"] = _ungraded(problems, NO_METADATA, sampling.samples)
    summary["ids_without_gold_answer"] = _ungraded(problems, NO_GOLD, sampling.samples)
    summary["empty_solutions"] = sum(not g.text.strip() for samples in generations for g in samples)
    summary["problems_read"] = {
        "problems": len(problems.items),
        "repeated_rows": problems.repeated_rows,
        "bad_rows": dict(problems.report.bad),
        "gold_answers": problems.gold_source,
    }
    return summary


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _accuracy_lines(r: dict, samples: int) -> list[str]:
    ungraded = {UNGRADED[k]: n for k, n in r["ungraded"].items() if n}
    mean = f", mean over {samples} samples per problem" if samples > 1 else ""
    line = f"accuracy (pass@1{mean}): {r['correct']}/{r['solutions']} = {_pct(r['accuracy'])}"
    if ungraded:
        line += f" ({sum(ungraded.values())} ungraded: {', '.join(f'{n} {k}' for k, n in ungraded.items())}); "
        line += f"of the graded: {r['correct']}/{r['graded']} = {_pct(r['graded_accuracy'])}"
    lines = [line]
    if "pass_at_k" in r:
        lines.append("  " + ", ".join(f"pass@{k} {_pct(e['value'])}" for k, e in r["pass_at_k"].items()))
        any_ = r["any_correct"]
        lines.append(
            f"  majority vote {_pct(r['majority_vote'])}, any correct {any_['problems']}/{r['problems']} problems"
        )
    return lines


def format_summary(r: dict) -> str:
    """The printed report (the numbers as `sftkit filter` computes them for the output file)."""
    samples, v, gen = r["generation"]["samples"], r["verdicts"], r["generation"]
    lines = [
        f"generated {r['solutions']} solutions in {gen['seconds']:.1f} s with {gen['backend']} ({gen['device']}): "
        f"{gen['tokens']} tokens, {gen['tokens_per_second']:.0f} tokens/s; {gen['cut_at_max_new_tokens']} cut at "
        "--max-new-tokens before the end of turn",
        *_accuracy_lines(r, samples),
        f"not correct: {r['graded'] - r['correct']} graded (wrong answer {v['wrong']}, no final answer "
        f"{v['no_answer']}, unparseable {v['unparseable']}, timeout {v['timeout']})",
    ]
    if r["empty_solutions"]:
        lines.append(
            f"blank solutions: {r['empty_solutions']} (empty or whitespace only; not correct here, while `sftkit "
            "filter` skips them as bad rows)"
        )
    for key, what in (("ids_without_metadata", "not in the metadata"), ("ids_without_gold_answer", "without gold")):
        e = r[key]
        if e["ids"]:
            first = ", ".join(map(repr, e["first"]))
            lines.append(f"problems {what}: {e['ids']} ({e['solutions']} solutions, not graded), e.g. {first}")
    return "\n".join(lines)
