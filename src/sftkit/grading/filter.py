"""`sftkit filter`: keep the solutions whose final answer matches the metadata's, and report accuracy.

Also the seed's `python evaluation/run_evaluation.py --solutions-file ... --metadata-file ... --save-correct ...`.
Path of the data: output paths checked (`outputs.py`) -> metadata and solution files read (`inputs.py`: JSONL or
Parquet -> (id, final answer, prompt) per row, the answer after a marker or from the concluding statement,
`extract.py`) -> the distinct (gold, answer, prompt) triples, graded on worker processes (`pool.grade_pairs`; the
prompt tells whether a list's order matters) -> a verdict per row -> the report (`report.py`) and Parquet files of
the correct (and incorrect) rows: source columns plus `source_file`, ready for `sftkit prepare`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sftkit import dist
from sftkit.data.parquet import plan_columns
from sftkit.data.rows import RowReport, expand_inputs
from sftkit.dist import user_errors
from sftkit.errors import SftkitError
from sftkit.grading.inputs import SHOW_IDS, Metadata, Solution, load_metadata, read_solutions
from sftkit.grading.judge import CORRECT
from sftkit.grading.outputs import check_outputs, write_rows
from sftkit.grading.pool import grade_pairs
from sftkit.grading.report import NO_GOLD, NO_METADATA, Record, format_report, summarize

SUFFIXES = (".jsonl", ".json", ".parquet")

OPTIONS = {  # flag -> argparse keywords; every option explained in --help
    "--solutions-file": dict(nargs="+", required=True, metavar="F", help="solution JSONL/Parquet files, globs or "
                             "directories; the solutions of one problem may be spread over several"),
    "--metadata-file": dict(required=True, metavar="M", help="JSONL with one row per problem: its id and gold "
                            "answer (or a `solution` whose last \\boxed{} is the answer)"),
    "--save-correct": dict(required=True, metavar="OUT.parquet", help="where to write the correct solutions "
                           "(their source columns + source_file and gold_answer)"),
    "--save-incorrect": dict(metavar="OUT.parquet", help="also write the other graded solutions, with columns "
                             "verdict, extracted_answer and gold_answer"),
    "--response-key": dict(default="generated_solution", metavar="KEY", help="field holding the solution text "
                           "(default: generated_solution)"),
    "--id-key": dict(default="id", metavar="KEY", help="field holding the problem id, in the solutions and in the "
                     "metadata (default: id)"),
    "--answer-key": dict(default="answer", metavar="KEY", help="metadata field holding the gold answer (default: "
                         "answer); a GSM8K answer ending in '#### N' gives N"),
    "--timeout": dict(type=float, default=5.0, metavar="SECONDS", help="time limit to grade one answer; over it "
                      "the answer counts as incorrect and is reported as a timeout (default: 5)"),
    "--workers": dict(type=int, metavar="N", help="grading processes (default: all available cores)"),
    "--require-marker": dict(action="store_true", help="grade only answers stated after a marker (\\boxed{}, "
                             "'The answer is', '####', 'Answer:'): a solution that states its answer only in prose "
                             "then counts as 'no final answer' (default: such answers are read from the concluding "
                             "statement, which agrees best with human graders)"),
    "--strict": dict(action="store_true", help="make any bad row, missing file, id without metadata or duplicate "
                     "metadata id fatal (exit code 2)"),
    "--report-json": dict(metavar="PATH", help="also write the report's numbers to this JSON file"),
    "--overwrite": dict(action="store_true", help="replace output files that exist already (an output that is "
                        "one of the inputs is refused even so)"),
}  # fmt: skip


DESCRIPTION = """\
Grade generated solutions against the metadata answers with math-verify, print accuracy (overall, per file, pass@k
and majority vote per problem) and save the correct solutions as Parquet.

Final answer of a solution: the text after its last marker (\\boxed{}, "The answer is", "final answer is", "####",
"Answer:", "A:"); a solution without one is graded on its concluding statement ("Therefore, the area is $75$
square units." -> 75), unless --require-marker. A later statement that plainly concludes with another value
("This gives $k = \\boxed{3}$. Therefore, the total is $15$.") overrides a boxed intermediate result. The report
counts the final answers found after a marker, from the concluding statement (prose) and not found. A list
answer ("2, 4, 3") is compared as a set, or in order where the row's `prompt` asks for an order ("in increasing
order", "in that order", "from least to greatest"). Agreement with careful human grading, per data set, is in the
README (benchmarks/RESULTS.md): e.g. 81/81 on our labelled competition-math rows never used for tuning, all 600 of
the GSM8K sample.

Accuracy counts every solution read; solutions whose id has no metadata or no gold answer are ungraded (not
correct) and counted beside it: "accuracy: 5/10 = 50.00% (5 ungraded: no gold answer)".
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sftkit filter",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: %(prog)s --solutions-file outputs/*.jsonl --metadata-file data/metadata.jsonl "
        "--save-correct data/sft/correct_solutions.parquet",
    )
    for flag, keywords in OPTIONS.items():
        p.add_argument(flag, **keywords)
    return p


def check_timeout(timeout: float) -> None:
    if timeout <= 0:
        raise SftkitError(f"--timeout {timeout}: the time limit per answer must be > 0 seconds")


def workers(requested: int | None) -> int:
    if requested is None:
        return dist.cores()
    if requested < 1:
        raise SftkitError(f"--workers {requested}: give 1 or more processes")
    return requested


def _records(
    solutions: list[Solution], golds: dict[str, str], without_answer: set[str], timeout: float, workers: int
) -> tuple[list[Record], int]:
    """A Record per solution (graded, or why not) and the number of distinct (gold, answer, question) triples graded
    (the question, the row's prompt, tells the judge whether a list's order matters)."""
    graded = [s for s in solutions if s.id in golds]
    pairs = list(dict.fromkeys((golds[s.id], s.answer, s.question) for s in graded))  # sampling repeats answers
    verdict_of = dict(zip(pairs, grade_pairs(pairs, timeout, workers)))
    records = []
    for s in solutions:
        graded_as = verdict_of[golds[s.id], s.answer, s.question] if s.id in golds else None
        outcome = graded_as or (NO_GOLD if s.id in without_answer else None)
        records.append(Record(s.file, s.id, s.answer, s.route, outcome or NO_METADATA))
    return records, len(pairs)


def _check_ids(solutions: list[Solution], meta: Metadata, args: argparse.Namespace) -> None:
    """Errors before grading: no solution id has a gold answer; ids without metadata under --strict."""
    golds = meta.golds
    if not any(s.id in golds for s in solutions):
        unmatched = list(dict.fromkeys(s.id for s in solutions))
        no_gold = [i for i in unmatched if i in meta.without_answer]
        why = f" ({len(no_gold)} of them are in it without an answer, e.g. {no_gold[:3]})" if no_gold else ""
        raise SftkitError(
            f"no solution id has a gold answer in the metadata ({args.metadata_file}): solution ids "
            f"{unmatched[:3]}, metadata ids {list(golds)[:3]}{why}. Check --id-key, --answer-key and the files."
        )
    unmatched = list(dict.fromkeys(s.id for s in solutions if s.id not in golds and s.id not in meta.without_answer))
    if unmatched and args.strict:
        raise SftkitError(f"{len(unmatched)} solution ids have no metadata, e.g. {unmatched[:SHOW_IDS]} (--strict)")


def _ungraded_ids(records: list[Record], outcome: str) -> dict:
    ids = list(dict.fromkeys(r.id for r in records if r.outcome == outcome))
    return {"ids": len(ids), "solutions": sum(r.outcome == outcome for r in records), "first": ids[:SHOW_IDS]}


def _write_outputs(
    outputs: dict[str, Path],
    records: list[Record],
    solutions: list[Solution],
    golds: dict[str, str],
    files: list[Path],
    kinds: dict,
    response_key: str,
) -> dict:
    """The correct (and the other graded) rows written to their Parquet files: {name: {"path", "rows"}}."""
    keep: dict[str, dict] = {"correct": {}, "incorrect": {}}
    for s, r in zip(solutions, records):
        if r.outcome == CORRECT:  # the gold travels with the row: accuracy during training reads it from val
            keep["correct"][s.file, s.line] = {"gold_answer": golds[s.id]}
        elif s.id in golds:
            why = {"verdict": r.outcome, "extracted_answer": s.answer, "gold_answer": golds[s.id]}
            keep["incorrect"][s.file, s.line] = why
    return {
        name: {"path": str(out), "rows": write_rows(out, files, keep[name], kinds, response_key)}
        for name, out in outputs.items()
        if name in keep
    }


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_timeout(args.timeout)
    n_workers = workers(args.workers)
    report = RowReport(strict=args.strict)
    files = expand_inputs(args.solutions_file, report, SUFFIXES)
    outputs = check_outputs(args, [*files, Path(args.metadata_file)])  # before any work
    meta = load_metadata(Path(args.metadata_file), args.id_key, args.answer_key, args.strict)
    solutions, kinds = read_solutions(files, report, args.response_key, args.id_key, args.require_marker)
    if not solutions:
        raise SftkitError(
            f"no usable solution in {', '.join(args.solutions_file)}.\n{report.summary()}\n"
            f"columns found: {report.columns_found()} (use --response-key / --id-key)"
        )
    _check_ids(solutions, meta, args)

    start = time.perf_counter()
    records, n_pairs = _records(solutions, meta.golds, meta.without_answer, args.timeout, n_workers)
    seconds = round(time.perf_counter() - start, 3)

    summary = summarize(files, records)
    summary["require_marker"] = args.require_marker
    summary["ids_without_metadata"] = _ungraded_ids(records, NO_METADATA)
    summary["ids_without_gold_answer"] = _ungraded_ids(records, NO_GOLD)
    summary["metadata"] = meta.info
    summary["bad_rows"] = {"solutions": dict(report.bad), "metadata": dict(meta.report.bad)}
    summary["grading"] = {"distinct_answers": n_pairs, "seconds": seconds, "workers": n_workers}
    summary["outputs"] = _write_outputs(outputs, records, solutions, meta.golds, files, kinds, args.response_key)

    print(format_report(summary))
    for label, rep in (("solution", report), ("metadata", meta.report)):
        if rep.n_bad:
            print(f"bad {label} rows/files (skipped; --strict makes them fatal):\n{rep.summary()}")
    for note in plan_columns(kinds, len(solutions))[2]:
        print(f"note: {note}")
    for name, out in summary["outputs"].items():
        print(f"wrote {out['rows']} {name} solutions -> {out['path']}")
    if args.report_json:
        outputs["report"].write_text(json.dumps(summary, indent=2) + "\n")
    return 0
