"""Training/validation files -> tokenized examples (`input_ids`, `labels`, `length`, `trained`), memory-mapped.

Path of the data: files (Parquet from `prepare`/`filter`, or JSONL) are streamed row by row (bad rows counted and
shown with `file:line`, never kept in Python lists), in batches, to worker processes that build the examples
(labels.py; encode_pool.py) into an Arrow file; the kept examples are written once under the cache folder
(`examples.arrow`), keyed by `fingerprint.examples_key` (files' content, keys, tokenizer and template,
max_length, truncation), and every later run and every other process opens them memory-mapped
(`datasets.Dataset.from_file`). The bad-row and truncation report is stored with them, so a cache hit prints
exactly what the build printed. See cache.py for the folder and who builds it.
"""

from __future__ import annotations

import time
from pathlib import Path

from sftkit import dist
from sftkit.data import cache
from sftkit.data.fingerprint import examples_key, files_digest, tokenizer_digest
from sftkit.data.labels import Encoder
from sftkit.data.rows import RowReport, check_fields, expand_inputs, iter_rows, response_column
from sftkit.data.split import Split
from sftkit.errors import SftkitError

BATCH = 1000  # rows per encoding batch (one task of the worker pool) and Arrow write
PARALLEL_FROM_BYTES = 8 << 20  # input files smaller than this are encoded in this process (forking costs more)


def split_files(patterns: list[str], name: str, verbose: bool = True) -> list[str]:
    """A folder written by `sftkit prepare` (train.parquet + val.parquet) stands for one split: its train.parquet
    for training, its val.parquet for validation — never both (the validation set would be trained on)."""
    out = []
    for pattern in patterns:
        folder = Path(pattern)
        if folder.is_dir() and (folder / "train.parquet").is_file() and (folder / "val.parquet").is_file():
            chosen = folder / ("val.parquet" if name == "val" else "train.parquet")
            if verbose:
                print(f"note: {folder} is a prepared folder: {name} data = {chosen}")
            out.append(str(chosen))
        else:
            out.append(pattern)
    return out


def _both_splits(files: list[Path], name: str) -> None:
    """A glob such as data/sft/*.parquet takes both files of a prepared folder: the validation rows would be
    trained on (or the training rows validated on)."""
    names = {(f.resolve().parent, f.name) for f in files}
    for folder, _ in names:
        if (folder, "train.parquet") in names and (folder, "val.parquet") in names:
            raise SftkitError(
                f"data.{name}_files takes both {folder}/train.parquet and {folder}/val.parquet (a glob over a "
                f"prepared folder?): name one of them, or the folder itself ({folder} means its {name} split)."
            )


def column(dataset, name: str):
    """One integer column of the examples as a numpy array (from the memory-mapped Arrow table, no Python list)."""
    import numpy as np

    return np.asarray(dataset.with_format("numpy")[name]).astype(np.int64)


def check_parquet_columns(path: Path, prompt_key: str, response_key: str) -> None:
    """A Parquet file has one schema: a missing column is an error that lists the columns found."""
    import pyarrow.parquet as pq

    try:
        columns = pq.ParquetFile(path).schema_arrow.names
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise SftkitError(f"{path}: cannot read as Parquet ({exc})") from None
    for key, what, flag in ((prompt_key, "prompt", "prompt_key"), (response_key, "response", "response_key")):
        if response_column(columns, key) not in columns:
            raise SftkitError(
                f"{path}: no column {key!r} for the {what} (columns found: {', '.join(columns)}). "
                f"Set data.{flag}=<column>."
            )


def stream_rows(files: list[Path], prompt_key: str, response_key: str, report: RowReport, verbose: bool = True):
    """{"id", "where", "prompt", "response"} for every usable row; bad rows go to `report`."""
    noted = False
    for path in files:
        if path.suffix == ".parquet":
            check_parquet_columns(path, prompt_key, response_key)
        for _, line, row in iter_rows([path], report, required=(prompt_key,)):
            r_key = response_column(row, response_key)
            problem = check_fields(row, (r_key,))
            if problem:  # counted like any bad row (iter_rows only checked the prompt)
                report.reject_accepted(f"{path}:{line}", problem[1], problem[0])
                continue
            if row.get("finished") is False:  # cut at max_new_tokens (sftkit eval): an end-of-turn would be invented
                reason = (
                    "an unfinished generation (cut at max_new_tokens): training it would teach stopping mid-answer"
                )
                report.reject_accepted(f"{path}:{line}", reason, "unfinished generation")
                continue
            if r_key != response_key and not noted and verbose:
                print(f"note: {path} has no {response_key!r} column; using its 'response' column")
                noted = True
            yield {"id": str(row.get("id", f"{path.name}:{line}")), "where": f"{path}:{line}",
                   "prompt": row[prompt_key], "response": row[r_key]}  # fmt: skip


def build_dataset(
    patterns: list[str],
    encoder: Encoder,
    prompt_key: str,
    response_key: str,
    max_length: int | None,
    truncation: str,
    strict: bool = False,
    name: str = "train",
    cache_dir: str | None = None,
    rebuild: bool = False,
    num_proc: int | None = None,
    verbose: bool = True,
) -> Split | None:
    """Files -> Split (from the cache when it has them), with a printed summary of bad rows and truncation.
    A validation set with no row (`prepare --val-split 0`) gives None: no validation."""
    report = RowReport(strict=strict)
    files = expand_inputs(split_files(patterns, name, verbose), report, suffixes=(".parquet", ".jsonl", ".json"))
    if not files:
        raise SftkitError(f"no data file found for {patterns}:\n{report.summary()}")
    _both_splits(files, name)
    digest = files_digest(files)
    settings = dict(prompt_key=prompt_key, response_key=response_key, max_length=max_length, truncation=truncation)
    key = examples_key(digest, tokenizer_digest(encoder.tokenizer), strict=strict, **settings)
    folder = cache.folder(cache_dir, key)
    start = time.perf_counter()
    build = lambda tmp: _build(tmp, files, encoder, settings, report, num_proc, verbose)  # noqa: E731
    built = cache.ensure(folder, rebuild, build)
    split = cache.open_split(folder, key, digest, time.perf_counter() - start if built else None)
    return _checked(split, patterns, name, strict, truncation, max_length, verbose)


def _build(tmp: Path, files, encoder, settings: dict, report: RowReport, num_proc: int | None, verbose: bool) -> dict:
    """Rows (streamed, checked here) -> examples (encoded on the machine's cores) -> tmp/examples.arrow; returns the
    report to store beside them."""
    from sftkit.data.encode_pool import batches_of, encoded_tables

    rows = stream_rows(files, settings["prompt_key"], settings["response_key"], report, verbose)
    size = sum(f.stat().st_size for f in files)
    workers = num_proc if num_proc is not None else (dist.cores() if size >= PARALLEL_FROM_BYTES else 1)
    writer = cache.ExamplesWriter(tmp)
    try:
        for table in encoded_tables(batches_of(rows, BATCH), encoder, settings["max_length"], settings["truncation"],
                                    workers):  # fmt: skip
            writer.add(table)
    finally:
        built = writer.close(report)
    return built


def _why_no_row(report: RowReport) -> str:
    """The likely cause, from what the rows were: the keys only when columns are missing."""
    kinds = set(report.bad)
    if report.rows_read == 0:
        return "the files hold no rows (empty files)."
    if kinds <= {"not an object", "malformed JSON", "invalid UTF-8", "empty file"}:
        return (
            "no line is a JSON object (a JSON array, or not JSON Lines?). Write one object per line: "
            '{"prompt": ..., "generated_solution": ...}.'
        )
    if "missing field" in kinds:
        return (
            f"columns found: {report.columns_found()}; set data.prompt_key/data.response_key to the columns that "
            "hold the prompt and the response."
        )
    return "every row has an empty or non-text prompt or response (see the reasons below)."


def _checked(split: Split, patterns, name: str, strict: bool, truncation: str, max_length, verbose: bool):
    report, stats = split.report, split.stats
    if report.rows_ok == 0:
        if name == "val" and set(report.bad) <= {"empty file"}:
            if verbose:
                print(f"[{name}] {patterns} hold no row: no validation")
            return None
        raise SftkitError(f"[{name}] no usable row in {patterns}: {_why_no_row(report)}\n{report.summary()}")
    if stats.too_long is not None:
        where, message = stats.too_long
        raise SftkitError(f"{where}: {message}")
    if strict and report.n_bad:
        first = report.examples[0] if report.examples else None
        raise SftkitError(f"{first} (--strict / data.strict makes every bad row fatal)\n{report.summary()}")
    if report.n_bad and verbose:
        print(f"[{name}] {report.summary()}")
    if (stats.truncated or stats.dropped) and verbose:
        print(
            f"[{name}] {stats.truncated} examples truncated to max_length={max_length} ({truncation}); "
            f"{stats.dropped} dropped with no response token left (first ids: {stats.dropped_ids[:5]})"
        )
    if not len(split):
        raise SftkitError(
            f"[{name}] every example was dropped by truncation: raise data.max_length "
            f"(now {max_length}) or use data.truncation=left."
        )
    return split
