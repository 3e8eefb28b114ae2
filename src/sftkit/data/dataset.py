"""Training/validation files -> tokenized examples (`input_ids`, `labels`) as a `datasets.Dataset`.

Reads Parquet (what `prepare`/`filter` write) and JSONL; bad rows are counted and shown with their location,
missing columns are an error that lists the columns found. Tokenization is batched; the labels come from
`labels.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sftkit.data.labels import Encoder, TruncationStats
from sftkit.data.rows import RowReport, check_fields, expand_inputs, iter_rows
from sftkit.errors import SftkitError

BATCH = 1024


@dataclass
class Rows:
    ids: list = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)


def check_parquet_columns(path: Path, prompt_key: str, response_key: str) -> None:
    """A Parquet file has one schema: a missing column is an error that lists the columns found."""
    import pyarrow.parquet as pq

    try:
        columns = pq.ParquetFile(path).schema_arrow.names
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise SftkitError(f"{path}: cannot read as Parquet ({exc})") from None
    for key, what, flag in ((prompt_key, "prompt", "prompt_key"), (response_key, "response", "response_key")):
        fallback = key == "generated_solution" and "response" in columns
        if key not in columns and not fallback:
            raise SftkitError(
                f"{path}: no column {key!r} for the {what} (columns found: {', '.join(columns)}). "
                f"Set data.{flag}=<column>."
            )


def response_of(row: dict, response_key: str) -> str:
    """The seed's files have `generated_solution`; a row with `response` and none of that name is accepted."""
    if response_key == "generated_solution" and response_key not in row and "response" in row:
        return "response"
    return response_key


def read_rows(patterns: list[str], prompt_key: str, response_key: str, strict: bool = False) -> tuple[Rows, RowReport]:
    report = RowReport(strict=strict)
    files = expand_inputs(patterns, report, suffixes=(".parquet", ".jsonl", ".json"))
    if not files:
        raise SftkitError(f"no data file found for {patterns}:\n{report.summary()}")
    rows, noted = Rows(), False
    for path in files:
        if path.suffix == ".parquet":
            check_parquet_columns(path, prompt_key, response_key)
        for _, line, row in iter_rows([path], report, required=(prompt_key,)):
            r_key = response_of(row, response_key)
            problem = check_fields(row, (r_key,))
            if problem:  # counted like any bad row (iter_rows only checked the prompt)
                report.reject_accepted(f"{path}:{line}", problem[1], problem[0])
                continue
            if r_key != response_key and not noted:
                print(f"note: {path} has no {response_key!r} column; using its 'response' column")
                noted = True
            rows.ids.append(row.get("id", f"{path.name}:{line}"))
            rows.prompts.append(row[prompt_key])
            rows.responses.append(row[r_key])
    return rows, report


def tokenize(rows: Rows, encoder: Encoder, max_length: int | None, truncation: str):
    """Rows -> {"input_ids", "labels", "length"} lists and truncation stats. Batched through the fast tokenizer."""
    out = {"input_ids": [], "labels": [], "length": []}
    stats = TruncationStats()
    for start in range(0, len(rows.prompts), BATCH):
        end = start + BATCH
        examples = encoder.encode_batch(
            rows.prompts[start:end], rows.responses[start:end], max_length, truncation, rows.ids[start:end]
        )
        for ex_id, example in zip(rows.ids[start:end], examples):
            if example is None:
                stats.dropped += 1
                stats.dropped_ids.append(ex_id)
                continue
            stats.truncated += example.truncated
            out["input_ids"].append(example.input_ids)
            out["labels"].append(example.labels)
            out["length"].append(len(example.input_ids))
    return out, stats


def build_dataset(
    patterns: list[str],
    encoder: Encoder,
    prompt_key: str,
    response_key: str,
    max_length: int | None,
    truncation: str,
    strict: bool = False,
    name: str = "train",
):
    """Files -> datasets.Dataset of examples, with a printed summary of bad rows and truncation.
    A validation set with no row (`prepare --val-split 0`) gives None: no validation."""
    from datasets import Dataset

    rows, report = read_rows(patterns, prompt_key, response_key, strict)
    if not rows.prompts:
        if name == "val" and set(report.bad) <= {"empty file"}:
            print(f"[val] {patterns} hold no row: no validation")
            return None, report, None
        raise SftkitError(
            f"[{name}] no usable row in {patterns} (columns found: {report.columns_found()}); set "
            f"data.prompt_key/data.response_key to the right columns.\n{report.summary()}"
        )
    columns, stats = tokenize(rows, encoder, max_length, truncation)
    if report.n_bad:
        print(f"[{name}] {report.summary()}")
    if stats.truncated or stats.dropped:
        print(
            f"[{name}] {stats.truncated} examples truncated to max_length={max_length} ({truncation}); "
            f"{stats.dropped} dropped with no response token left (first ids: {stats.dropped_ids[:5]})"
        )
    if not columns["input_ids"]:
        raise SftkitError(
            f"[{name}] every example was dropped by truncation: raise data.max_length "
            f"(now {max_length}) or use data.truncation=left."
        )
    return Dataset.from_dict(columns), report, stats
