"""`sftkit filter`: keep the solutions whose final answer matches the metadata's, and report accuracy.

Also the seed's `python evaluation/run_evaluation.py --solutions-file ... --metadata-file ... --save-correct ...`.
Path of the data: solution files (JSONL or Parquet) -> (id, final answer) per row -> the distinct (gold, answer)
pairs, graded on worker processes (`answers.grade_pairs`) -> a verdict per row -> the report (`accuracy.py`) and
Parquet files of the correct (and incorrect) rows: source columns plus `source_file`, ready for `sftkit prepare`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import NamedTuple

from sftkit.data.parquet import ParquetSink, kind_of, plan_columns
from sftkit.data.rows import RowReport, expand_inputs, iter_rows
from sftkit.errors import SftkitError, user_errors
from sftkit.grading.answers import CORRECT, clean, extract_answer, grade_pairs
from sftkit.grading.report import format_report, summarize

SUFFIXES = (".jsonl", ".json", ".parquet")
SHOW_IDS = 5


class Solution(NamedTuple):
    file: int  # index in the list of input files
    line: int
    id: str
    answer: str | None  # the final answer's text, cleaned; None when the solution states none


OPTIONS = {  # flag -> argparse keywords; every option explained in --help
    "--solutions-file": dict(nargs="+", required=True, metavar="F", help="solution JSONL/Parquet files, globs or "
                             "directories; the solutions of one problem may be spread over several"),
    "--metadata-file": dict(required=True, metavar="M", help="JSONL with one row per problem: its id and gold "
                            "answer (or a `solution` whose last \\boxed{} is the answer)"),
    "--save-correct": dict(required=True, metavar="OUT.parquet", help="where to write the correct solutions "
                           "(their source columns + source_file)"),
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
    "--strict": dict(action="store_true", help="make any bad row, missing file, id without metadata or duplicate "
                     "metadata id fatal (exit code 2)"),
    "--report-json": dict(metavar="PATH", help="also write the report's numbers to this JSON file"),
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sftkit filter",
        description="Grade generated solutions against the metadata answers with math-verify, print accuracy "
        "(overall, per file, pass@k and majority vote per problem) and save the correct solutions as Parquet.",
        epilog="example: %(prog)s --solutions-file outputs/*.jsonl --metadata-file data/metadata.jsonl "
        "--save-correct data/sft/correct_solutions.parquet",
    )
    for flag, keywords in OPTIONS.items():
        p.add_argument(flag, **keywords)
    return p


def normalize_id(value) -> str | None:
    """Ids compare as text: 7, 7.0 and "7" are the same problem. None for a missing or unusable id."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value).strip() or None
    return None


def gold_answer(row: dict, answer_key: str) -> str | None:
    """`answer_key`'s text (the final answer of a worked one: GSM8K's "... #### 72" gives "72"), else the final
    answer of a `solution` field (MATH's last \\boxed{}); None if there is neither."""
    answer, solution = row.get(answer_key), row.get("solution")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        return str(answer)
    if isinstance(answer, str) and answer.strip():
        worked = "####" in answer or "\\boxed" in answer
        return (extract_answer(answer) or answer) if worked else answer.strip()
    return (extract_answer(solution) or None) if isinstance(solution, str) else None


def load_metadata(path: Path, id_key: str, answer_key: str, strict: bool) -> tuple[dict[str, str], dict]:
    """{id: gold answer text} from the metadata file, and its report (duplicates, bad rows)."""
    if not path.is_file():
        raise SftkitError(
            f"metadata file not found: {path}. Pass --metadata-file with a JSONL of "
            f'{{"{id_key}": ..., "{answer_key}": ...}} rows, one per problem.'
        )
    report, golds, duplicates, conflicts = RowReport(strict=strict), {}, [], 0
    for _, line, row in iter_rows([path], report):
        key, where = normalize_id(row.get(id_key)), f"{path}:{line}"
        answer = gold_answer(row, answer_key)
        if key is None:
            report.reject_accepted(where, f"no usable {id_key!r} field (fields: {', '.join(row)})", "missing id")
        elif not answer:
            report.reject_accepted(
                where, f"no {answer_key!r} (nor a 'solution' with a \\boxed{{}} answer)", "missing answer"
            )
        elif key in golds:
            if strict:
                raise SftkitError(f"{where}: duplicate id {key!r} in the metadata (--strict)")
            duplicates.append(key)
            conflicts += clean(golds[key]) != clean(answer)
        else:
            golds[key] = answer
    if not golds:
        raise SftkitError(
            f"no usable row in the metadata file {path}.\n{report.summary()}\n"
            f"columns found: {report.columns_found()} (use --id-key / --answer-key)"
        )
    info = {"problems": len(golds), "duplicate_ids": len(duplicates), "conflicting_duplicates": conflicts}
    return golds, {**info, "first_duplicates": duplicates[:SHOW_IDS], "bad_rows": report.n_bad, "report": report}


def read_solutions(files: list[Path], report: RowReport, response_key: str, id_key: str):
    """Every usable row -> Solution (the final answer extracted here: cheap), and the column types seen."""
    solutions, kinds, index = [], defaultdict(Counter), {path: i for i, path in enumerate(files)}
    for path, line, row in iter_rows(files, report, required=(response_key,)):
        key = normalize_id(row.get(id_key))
        if key is None:
            reason = f"no usable {id_key!r} field (fields: {', '.join(row)}); use --id-key to name the id field"
            report.reject_accepted(f"{path}:{line}", reason, "missing id")
            continue
        for name, value in row.items():
            kinds[name][kind_of(value)] += 1
        answer = extract_answer(row[response_key])
        solutions.append(Solution(index[path], line, key, clean(answer) if answer is not None else None))
    return solutions, kinds


def _check_output(path: str, flag: str) -> Path:
    out = Path(path)
    if out.suffix != ".parquet":
        raise SftkitError(f"{flag} {path}: the output is Parquet; give a file name ending in .parquet")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SftkitError(f"{flag} {path}: cannot create the folder {out.parent} ({exc.strerror})") from None
    return out


def write_rows(out: Path, files: list[Path], keep: dict[tuple[int, int], dict], kinds, response_key: str) -> int:
    """Re-read the files (streaming) and write the rows in `keep` with their extra columns. Returns rows written."""
    extra = next(iter(keep.values()), {})
    schema, convert, _ = plan_columns(
        {**kinds, "source_file": Counter(str=1), **{k: Counter(str=1) for k in extra}}, 0
    )
    sink, written, index = ParquetSink(out, schema, convert), 0, {path: i for i, path in enumerate(files)}
    try:
        for path, line, row in iter_rows(files, RowReport(), required=(response_key,)):
            columns = keep.get((index[path], line))
            if columns is not None:
                sink.add({**row, "source_file": str(path), **columns}, len(row[response_key]))
                written += 1
        sink.close()
    except BaseException:
        sink.abort()
        raise
    return written


def _workers(requested: int | None) -> int:
    if requested is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if requested < 1:
        raise SftkitError(f"--workers {requested}: give 1 or more processes")
    return requested


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.timeout <= 0:
        raise SftkitError(f"--timeout {args.timeout}: the time limit per answer must be > 0 seconds")
    workers = _workers(args.workers)
    outputs = {"correct": _check_output(args.save_correct, "--save-correct")}
    if args.save_incorrect:
        outputs["incorrect"] = _check_output(args.save_incorrect, "--save-incorrect")
        if outputs["incorrect"].resolve() == outputs["correct"].resolve():
            raise SftkitError("--save-incorrect names the same file as --save-correct: give two different files")
    if args.report_json:
        Path(args.report_json).parent.mkdir(parents=True, exist_ok=True)
    golds, meta = load_metadata(Path(args.metadata_file), args.id_key, args.answer_key, args.strict)
    report = RowReport(strict=args.strict)
    files = expand_inputs(args.solutions_file, report, SUFFIXES)
    solutions, kinds = read_solutions(files, report, args.response_key, args.id_key)
    if not solutions:
        raise SftkitError(
            f"no usable solution in {', '.join(args.solutions_file)}.\n{report.summary()}\n"
            f"columns found: {report.columns_found()} (use --response-key / --id-key)"
        )
    graded = [s for s in solutions if s.id in golds]
    unmatched = list(dict.fromkeys(s.id for s in solutions if s.id not in golds))
    if not graded:
        raise SftkitError(
            f"no solution id is in the metadata ({args.metadata_file}): solution ids {unmatched[:3]}, "
            f"metadata ids {list(golds)[:3]}. Check --id-key and the files."
        )
    if unmatched and args.strict:
        raise SftkitError(f"{len(unmatched)} solution ids have no metadata, e.g. {unmatched[:SHOW_IDS]} (--strict)")

    start = time.perf_counter()
    pairs = list(dict.fromkeys((golds[s.id], s.answer) for s in graded))  # rejection sampling repeats answers a lot
    verdict_of = dict(zip(pairs, grade_pairs(pairs, args.timeout, workers)))
    verdicts = [verdict_of[golds[s.id], s.answer] for s in graded]
    seconds = round(time.perf_counter() - start, 3)

    summary = summarize(files, [(s.file, s.id, s.answer) for s in graded], verdicts)
    summary["ids_without_metadata"] = {"ids": len(unmatched), "solutions": len(solutions) - len(graded)}
    summary["ids_without_metadata"]["first"] = unmatched[:SHOW_IDS]
    summary["metadata"] = {k: v for k, v in meta.items() if k != "report"}
    summary["bad_rows"] = {"solutions": dict(report.bad), "metadata": dict(meta["report"].bad)}
    summary["grading"] = {"distinct_answers": len(pairs), "seconds": seconds, "workers": workers}
    keep: dict[str, dict] = {"correct": {}, "incorrect": {}}
    for s, verdict in zip(graded, verdicts):
        why = {"verdict": verdict, "extracted_answer": s.answer, "gold_answer": golds[s.id]}
        keep["correct" if verdict == CORRECT else "incorrect"][s.file, s.line] = {} if verdict == CORRECT else why
    summary["outputs"] = {
        name: {"path": str(out), "rows": write_rows(out, files, keep[name], kinds, args.response_key)}
        for name, out in outputs.items()
    }

    print(format_report(summary))
    for label, rep in (("solution", report), ("metadata", meta["report"])):
        if rep.n_bad:
            print(f"bad {label} rows/files (skipped; --strict makes them fatal):\n{rep.summary()}")
    for note in plan_columns(kinds, len(solutions))[2]:
        print(f"note: {note}")
    for name, out in summary["outputs"].items():
        print(f"wrote {out['rows']} {name} solutions -> {out['path']}")
    if args.report_json:
        Path(args.report_json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0
