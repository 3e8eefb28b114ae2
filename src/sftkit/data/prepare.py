"""`sftkit prepare`: JSONL (or Parquet) solutions -> `train.parquet` + `val.parquet`, split by problem by default,
curated on the way (`curate.py`: decontaminate, dedup, max per prompt, mix) with every count in
`prepare_report.json`.

Two streaming passes, so memory does not grow with the text: pass 1 validates every row (bad rows are counted and
shown with `file:line`, see `rows.py`) and keeps only 8-byte hashes of each usable row's prompt and solution plus the
column types; curation and the validation split are decided on those hashes; pass 2 re-reads the files and writes
both Parquet files in batches. Every choice is a seeded hash ranking: the same seed gives the same files, anywhere.
"""

from __future__ import annotations

import json
import os
import sys
from array import array
from collections import Counter
from pathlib import Path

import numpy as np

from sftkit.data import decontaminate
from sftkit.data.curate import Rows, curate, mix64
from sftkit.data.normalize import digest, solution_key
from sftkit.data.parquet import ParquetSink, kind_of, plan_columns
from sftkit.data.prepare_options import SUFFIXES, build_parser, mix_source, parse_args
from sftkit.data.prepare_report import build, format_report, sources_report
from sftkit.data.rows import DEFAULT_RESPONSE_KEY, RowReport, expand_inputs, iter_rows, response_column
from sftkit.dist import user_errors
from sftkit.errors import SftkitError, closest
from sftkit.outputs import check_output_dir
from sftkit.stopping import EXIT_PREEMPTED, Stopped, signals_deferred, stop_at_once

__all__ = ["build_parser", "choose_val", "main", "n_val"]
REPORT = "prepare_report.json"
OUTPUTS = ("train.parquet", "val.parquet", REPORT)


def _sources(args, report: RowReport) -> tuple[list[dict], list[tuple[Path, int]]]:
    """The sources (FILES with weight 1, then each --mix) and their files, [(file, source index)]: a file in two
    sources is an error (whose weight would it get?)."""
    sources = [{"name": "FILES", "weight": 1.0, "patterns": args.files}] if args.files else []
    sources += [mix_source(spec) for spec in args.mix or []]
    if not sources:
        raise SftkitError("no input: give FILES and/or --mix FILES:WEIGHT")
    files, owner = [], {}
    for index, source in enumerate(sources):
        source["files"] = []
        for path in expand_inputs(source["patterns"], report, SUFFIXES):
            if path.name == REPORT and str(path) not in source["patterns"]:
                continue  # an earlier prepare's report, found through its folder or a glob: not data
            first = owner.setdefault(path.resolve(), index)
            if first != index:
                raise SftkitError(f"{path} is in two sources ({sources[first]['name']} and {source['name']})")
            files.append((path, index))
            source["files"].append(str(path))
        del source["patterns"]
    return sources, files


def n_val(n_groups: int, val_split: float) -> int:
    """round(n * val_split), at least 1 when val_split > 0 and there are 2+ groups; train is never empty."""
    if val_split <= 0 or n_groups < 2:
        return 0
    return min(max(int(n_groups * val_split + 0.5), 1), n_groups - 1)


def choose_val(prompt_ids: np.ndarray, val_split: float, seed: int, split_by: str) -> np.ndarray:
    """Boolean mask of the validation rows: the groups (prompts or rows) with the smallest seeded rank."""
    mask = np.zeros(len(prompt_ids), dtype=bool)
    if split_by == "row":
        k = n_val(len(prompt_ids), val_split)
        mask[np.argsort(mix64(np.arange(len(prompt_ids)), seed), kind="stable")[:k]] = True
    else:
        groups = np.unique(prompt_ids)
        k = n_val(len(groups), val_split)
        mask = np.isin(prompt_ids, groups[np.argsort(mix64(groups, seed), kind="stable")[:k]])
    return mask


def _sniff_columns(files: list[Path]) -> set[str]:
    """Fields of the first readable row (for the response-key default); empty if none is found quickly."""
    for path in files:
        try:
            if path.suffix == ".parquet":
                import pyarrow.parquet as pq

                return set(pq.read_schema(path).names)
            with open(path, encoding="utf-8-sig", errors="replace") as fh:
                for _, line in zip(range(100), fh):
                    row = json.loads(line) if line.strip().startswith("{") else None
                    if isinstance(row, dict):
                        return set(row)
        except Exception:  # unreadable / malformed: the real pass reports it
            continue
    return set()


def _no_usable_rows(report: RowReport, keys: tuple[str, str]) -> SftkitError:
    if report.rows_read == 0:
        return SftkitError(f"no input rows.\n{report.summary()}")
    lines = [f"no usable row in {report.rows_read} rows read.", report.summary()]
    if report.bad["missing field"]:
        lines.append(f"columns found (rows that have them): {report.columns_found()}")
        for key, flag in zip(keys, ("--prompt-key", "--response-key")):
            if key not in report.columns:
                lines.append(f"no row has a {key!r} column: pass {flag} with one of the columns found.")
                lines[-1] += closest(key, report.columns)
    return SftkitError("\n".join(lines))


def _response_key(files: list[Path], given: str | None) -> str:
    if given is not None:
        return given
    key = response_column(_sniff_columns(files), DEFAULT_RESPONSE_KEY)
    if key != DEFAULT_RESPONSE_KEY:
        print(f"no {DEFAULT_RESPONSE_KEY!r} field but a {key!r} one: using --response-key {key}")
    return key


def _first_pass(files: list[tuple[Path, int]], report: RowReport, keys: tuple[str, str], decon):
    """Validate every row; per usable row: prompt and solution hashes, source, contamination; column types."""
    columns = {name: array("Q") for name in ("prompt", "exact", "normal")}
    source, tainted, kinds, useless = array("H"), bytearray(), {}, []
    for path, index in files:
        read_before, ok_before = report.rows_read, report.rows_ok
        for _, line, row in iter_rows([path], report, required=keys):
            prompt, response = row[keys[0]].strip(), row[keys[1]]
            prompt_id = digest(prompt)
            columns["prompt"].append(prompt_id)
            columns["exact"].append(digest(response))
            columns["normal"].append(digest(solution_key(response)))
            source.append(index)
            tainted.append(decon is not None and decon.check(prompt_id, prompt, f"{path}:{line}"))
            for name, value in row.items():
                kinds.setdefault(name, Counter())[kind_of(value)] += 1
        if report.rows_read > read_before and report.rows_ok == ok_before:
            useless.append(f"{path}: none of its {report.rows_read - read_before} rows is usable")
    if not source:
        raise _no_usable_rows(report, keys)
    arrays = {name: np.frombuffer(values, dtype=np.uint64) for name, values in columns.items()}
    rows = Rows(**arrays, source=np.frombuffer(source, dtype=np.uint16), tainted=np.frombuffer(tainted, dtype=bool))
    return rows, kinds, useless


def _second_pass(files, keys, outs: dict[str, Path], schema, convert, counts, val) -> list:
    """The same rows again, each written `counts` times to train.parquet / val.parquet: their sinks, finished and
    not yet in place (`_publish`)."""
    outs["train.parquet"].parent.mkdir(parents=True, exist_ok=True)
    sinks = {side: ParquetSink(outs[f"{side}.parquet"], schema, convert) for side in ("train", "val")}
    try:
        n = 0
        for _, _, row in iter_rows([path for path, _ in files], RowReport(), required=keys):
            if n >= len(counts):
                break
            size = len(row[keys[0]]) + len(row[keys[1]]) + 64
            for _ in range(counts[n]):
                sinks["val" if val[n] else "train"].add(row, size)
            n += 1
        if n != len(counts):
            raise SftkitError(f"the input files changed while preparing ({len(counts)} usable rows, then {n}); rerun")
        for sink in sinks.values():
            sink.finish()
    except BaseException:
        _abort(sinks.values())
        raise
    return list(sinks.values())


def _publish(sinks: list, report: Path, numbers: dict, done: dict) -> None:
    """train.parquet, val.parquet and prepare_report.json put in place together: a stop signal waits for all three
    (the earlier outputs are never left beside a new report), then takes its course. `done` says they are."""
    tmp = report.with_name(f".{report.name}.tmp")
    try:
        with signals_deferred():
            tmp.write_text(json.dumps(numbers, indent=2, ensure_ascii=False) + "\n")
            for sink in sinks:
                sink.publish()
            os.replace(tmp, report)
            done["published"] = True
    except BaseException:
        if not done:
            tmp.unlink(missing_ok=True)
            _abort(sinks)
        raise


def _abort(sinks: list) -> None:
    for sink in sinks:
        sink.abort()


@user_errors
def main(argv: list[str] | None = None, prog: str = "sftkit prepare") -> int:
    done: dict = {}
    try:
        with stop_at_once(unless_handled=True):  # nothing to save: a stop ends prepare at once
            sinks, outs, numbers = _prepare(argv, prog)
            _publish(sinks, outs["prepare_report.json"], numbers, done)
    except Stopped as stop:
        what = "after its outputs were written in full" if done else "nothing written (earlier outputs unchanged)"
        print(f"\n{stop} received: prepare stopped, {what}", file=sys.stderr)
        return EXIT_PREEMPTED
    print(format_report(numbers))
    return 0


def _prepare(argv: list[str] | None, prog: str):
    """Read, curate and split the rows, and write the outputs next to their final names: (sinks, outputs, report)."""
    args = parse_args(argv, prog)
    report = RowReport(strict=args.strict)
    sources, files = _sources(args, report)
    if not files:
        raise SftkitError(f"no input file found.\n{report.summary()}")
    decon = None
    if args.decontaminate:
        decon = decontaminate.build(args.decontaminate, args.decontaminate_ngram, args.decontaminate_key, SUFFIXES,
                                    args.strict)  # fmt: skip
    eval_files = decon.files if decon else []
    both = {Path(f).resolve() for f in eval_files} & {f.resolve() for f, _ in files}
    if both:
        raise SftkitError(
            f"{sorted(both)[0]} is both a training input and a --decontaminate file: every row of it would be dropped"
        )
    outs = check_output_dir(args.output_dir, "--output-dir", OUTPUTS, [f for f, _ in files] + eval_files,
                            args.overwrite)  # fmt: skip
    keys = (args.prompt_key, _response_key([f for f, _ in files], args.response_key))
    rows, kinds, useless = _first_pass(files, report, keys, decon)
    curated = curate(rows, args.dedup, args.max_per_prompt, [s["weight"] for s in sources], args.seed)
    kept = np.flatnonzero(curated.counts > 0)
    if not len(kept):
        dropped = ", ".join(f"{int(mask.sum())} {step}" for step, mask in curated.steps.items())
        weighed = len(rows) - sum(int(mask.sum()) for mask in curated.steps.values())
        if weighed:  # rows every step kept and a weight below 1 then left out (--mix FILES:0.0001)
            weights = ", ".join(f"{s['name']}:{s['weight']:g}" for s in sources if s["weight"] < 1)
            dropped += f", {weighed} left out by the weights ({weights})"
        raise SftkitError(f"curation dropped every one of the {len(rows)} usable rows ({dropped}): nothing to write")
    val = np.zeros(len(rows), dtype=bool)
    val[kept] = choose_val(rows.prompt[kept], args.val_split, args.seed, args.split_by)
    schema, convert, notes = plan_columns(kinds, len(rows))
    notes = [f"warning: {line}" for line in useless] + [f"note: {line}" for line in notes]
    sinks = _second_pass(files, keys, outs, schema, convert, curated.counts, val)
    try:
        inputs = {"files": [f for f, _ in files], "keys": keys, "columns": schema.names, "notes": notes}
        inputs |= {"sources": sources_report(sources, rows, curated), "decontamination": decon and decon.report()}
        paths = {side: outs[f"{side}.parquet"] for side in ("train", "val")}
        return sinks, outs, build(args, report, inputs, rows, curated, val, paths)
    except BaseException:
        _abort(sinks)
        raise


if __name__ == "__main__":
    raise SystemExit(main())
