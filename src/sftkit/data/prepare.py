"""`sftkit prepare`: JSONL (or Parquet) solutions -> `train.parquet` + `val.parquet`, split by problem by default.

Two streaming passes, so memory does not grow with the text: pass 1 validates every row (bad rows are counted and
shown with `file:line`, see `rows.py`) and keeps only an 8-byte hash of each usable row's prompt plus the column
types; the validation rows are then chosen from those hashes; pass 2 re-reads the files and writes both Parquet
files in batches. The choice is a seeded hash ranking: the same seed gives the same files, on any machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from array import array
from collections import Counter
from pathlib import Path

import numpy as np

from sftkit.data.parquet import ParquetSink, kind_of, plan_columns
from sftkit.data.rows import RowReport, expand_inputs, iter_rows
from sftkit.errors import SftkitError, closest, user_errors

SUFFIXES = (".jsonl", ".json", ".parquet")
FILE_PROBLEMS = ("missing file", "no match", "empty file", "unreadable file")  # report kinds that are not rows


def build_parser(prog: str = "sftkit prepare") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Merge JSONL (or Parquet) solution files and split them into DIR/train.parquet and "
        "DIR/val.parquet. Bad rows are counted and shown with file:line, never dropped silently.",
        epilog="example: %(prog)s outputs/*.jsonl --output-dir data/sft --val-split 0.1",
    )
    p.add_argument(
        "files", nargs="+", metavar="FILES", help="JSONL/Parquet files, globs or directories; all rows merged"
    )
    p.add_argument("--output-dir", required=True, metavar="DIR", help="folder for train.parquet and val.parquet")
    p.add_argument(
        "--val-split",
        type=float,
        metavar="FRACTION",
        default=0.1,
        help="fraction of the problems (or rows, with --split-by row) for validation, in [0, 1) (default: 0.1); "
        "0 writes everything to train and an empty val.parquet",
    )
    p.add_argument(
        "--prompt-key", default="prompt", metavar="KEY", help="field holding the prompt text (default: prompt)"
    )
    p.add_argument(
        "--response-key",
        default=None,
        metavar="KEY",
        help="field holding the response text (default: generated_solution, or response when the files have "
        "that and no generated_solution)",
    )
    p.add_argument(
        "--seed", type=int, default=42, metavar="N", help="seed of the split; same seed, same files (default: 42)"
    )
    p.add_argument(
        "--split-by",
        choices=("prompt", "row"),
        default="prompt",
        help="prompt (default): all solutions of one problem land on the same side, so validation measures unseen "
        "problems; row: plain split of the rows (the seed's behaviour; problems leak into validation)",
    )
    p.add_argument("--strict", action="store_true", help="make any bad row or missing file fatal (exit code 2)")
    return p


def _mix(x: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of each uint64 (seeded): a fixed pseudo-random rank, the same with every numpy and platform."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64((seed + 1) * 0x9E3779B97F4A7C15 % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


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
        mask[np.argsort(_mix(np.arange(len(prompt_ids)), seed), kind="stable")[:k]] = True
    else:
        groups = np.unique(prompt_ids)
        k = n_val(len(groups), val_split)
        mask = np.isin(prompt_ids, groups[np.argsort(_mix(groups, seed), kind="stable")[:k]])
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
    sniffed = _sniff_columns(files)
    if "response" in sniffed and "generated_solution" not in sniffed:
        print("no 'generated_solution' field but a 'response' one: using --response-key response")
        return "response"
    return "generated_solution"


def _first_pass(files: list[Path], report: RowReport, keys: tuple[str, str]):
    """Validate every row, hash each prompt, record the value types of every column."""
    prompt_ids, kinds, useless = array("Q"), {}, []
    for path in files:
        read_before, ok_before = report.rows_read, report.rows_ok
        for _, _, row in iter_rows([path], report, required=keys):
            digest = hashlib.blake2b(row[keys[0]].strip().encode("utf-8"), digest_size=8).digest()
            prompt_ids.append(int.from_bytes(digest, "little"))
            for name, value in row.items():
                kinds.setdefault(name, Counter())[kind_of(value)] += 1
        if report.rows_read > read_before and report.rows_ok == ok_before:
            useless.append(f"{path}: none of its {report.rows_read - read_before} rows is usable")
    if not prompt_ids:
        raise _no_usable_rows(report, keys)
    return np.frombuffer(prompt_ids, dtype=np.uint64), kinds, useless


def _second_pass(files, keys, out_dir: Path, schema, convert, val_mask: np.ndarray) -> dict[str, Path]:
    """The same rows again, written in batches to train.parquet / val.parquet (renamed into place when done)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sinks = {side: ParquetSink(out_dir / f"{side}.parquet", schema, convert) for side in ("train", "val")}
    try:
        n = 0
        for _, _, row in iter_rows(files, RowReport(), required=keys):
            if n >= len(val_mask):
                break
            size = len(row[keys[0]]) + len(row[keys[1]]) + 64
            sinks["val" if val_mask[n] else "train"].add(row, size)
            n += 1
        if n != len(val_mask):
            raise SftkitError(
                f"the input files changed while preparing ({len(val_mask)} usable rows, then {n}); rerun"
            )
        for sink in sinks.values():
            sink.close()
    except BaseException:
        for sink in sinks.values():
            sink.abort()
        raise
    return {side: sink.path for side, sink in sinks.items()}


@user_errors
def main(argv: list[str] | None = None, prog: str = "sftkit prepare") -> int:
    args = build_parser(prog).parse_args(argv)
    if not 0 <= args.val_split < 1:
        raise SftkitError(f"--val-split must be a fraction in [0, 1) (0.1 = 10%), got {args.val_split}")
    out_dir = Path(args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SftkitError(f"--output-dir {out_dir} exists and is not a folder")
    report = RowReport(strict=args.strict)
    files = expand_inputs(args.files, report, SUFFIXES)
    if not files:
        raise SftkitError(f"no input file found.\n{report.summary()}")
    keys = (args.prompt_key, _response_key(files, args.response_key))
    ids, kinds, useless = _first_pass(files, report, keys)
    val_mask = choose_val(ids, args.val_split, args.seed, args.split_by)
    schema, convert, notes = plan_columns(kinds, len(ids))
    notes = [f"warning: {line}" for line in useless] + [f"note: {line}" for line in notes]
    paths = _second_pass(files, keys, out_dir, schema, convert, val_mask)
    print(_summary(report, args, files, keys, schema.names, ids, val_mask, notes, paths))
    return 0


def _summary(report, args, files, keys, columns, ids, val_mask, notes, paths) -> str:
    shown = ", ".join(map(str, files[:5])) + (f", ... ({len(files) - 5} more)" if len(files) > 5 else "")
    dropped = report.rows_read - report.rows_ok
    rows = [f"inputs: {len(files)} files: {shown}"]
    rows.append(f"rows read: {report.rows_read}, kept: {report.rows_ok}, dropped: {dropped}")
    rows += [f"  dropped ({kind}): {n}" for kind, n in sorted(report.bad.items()) if kind not in FILE_PROBLEMS]
    rows += [f"  input problem ({kind}): {n}" for kind, n in sorted(report.bad.items()) if kind in FILE_PROBLEMS]
    if report.examples:
        rows.append(f"first {len(report.examples)} problems (--strict makes them fatal):")
        rows += [f"  {example}" for example in report.examples]
    rows.append(f"prompt key: {keys[0]!r}, response key: {keys[1]!r}; columns kept: {', '.join(columns)}")
    rows += notes
    train, val = np.unique(ids[~val_mask]), np.unique(ids[val_mask])
    rows.append(
        f"problems (unique prompts): {len(np.unique(ids))}; split by {args.split_by}, "
        f"val fraction {args.val_split}, seed {args.seed}"
    )
    rows.append(f"  train: {int((~val_mask).sum())} rows, {len(train)} problems -> {paths['train']}")
    rows.append(f"  val:   {int(val_mask.sum())} rows, {len(val)} problems -> {paths['val']}")
    shared = len(np.intersect1d(train, val, assume_unique=True))
    if shared:
        rows.append(f"  {shared} problems are on both sides (--split-by row); --split-by prompt keeps them apart")
    if args.val_split == 0:
        rows.append("  val.parquet is empty (--val-split 0): train on everything, no validation")
    elif not val_mask.any():
        rows.append("  val is empty: the split needs at least 2 problems (or rows, with --split-by row)")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
