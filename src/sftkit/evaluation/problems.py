"""The problems `sftkit eval` generates for: id, prompt and gold answer of each, from a JSONL or Parquet file.

Gold answers come from `--metadata-file`, read exactly as `sftkit filter` reads it (`grading.inputs.
load_metadata`), so that `sftkit filter` run on eval's output with the same metadata grades every row the same way;
without a metadata file, from the problems file's own `gold_answer` or `--answer-key` column (through the filter's
`gold_answer`: "... #### 72" gives 72). A problem without a gold answer is generated for, counted and reported as
ungraded (as `filter` does with ids without metadata); only a file where no problem has one is an error.

Rows sharing an id and a prompt are one problem: a prepared `train.parquet` / `val.parquet` has one row per
solution, and evaluating on it must not weigh a problem by its number of solutions. An id shared by different
prompts is an error (the metadata has one answer per id).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sftkit.data.rows import RowReport, iter_rows
from sftkit.errors import SftkitError
from sftkit.grading.inputs import gold_answer, load_metadata, normalize_id
from sftkit.grading.report import NO_GOLD, NO_METADATA

SUFFIXES = (".jsonl", ".json", ".parquet")
GOLD_COLUMN = "gold_answer"  # preferred over --answer-key in a problems file: an explicit name for the gold
SHOW = 5


@dataclass(frozen=True)
class Problem:
    id: object  # the id as the file has it (written back unchanged, so the output joins with the metadata)
    key: str  # the id as text: how `sftkit filter` compares ids
    prompt: str
    gold: str | None
    missing: str | None  # why there is no gold: report.NO_METADATA or report.NO_GOLD; None when there is one


@dataclass
class Problems:
    items: list[Problem]
    report: RowReport  # bad rows of the problems file
    repeated_rows: int  # rows of a problem already read (one row per solution in a prepared file)
    gold_source: str  # where the gold answers come from, for the printed report

    @property
    def without_gold(self) -> list[Problem]:
        return [p for p in self.items if p.gold is None]


def _check_file(path: Path, flag: str) -> None:
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise SftkitError(f"{flag} {path}: {what}. Give a JSONL or Parquet file with one problem per row.")
    if path.suffix not in SUFFIXES:
        raise SftkitError(f"{flag} {path}: not a JSONL or Parquet file (its name must end in {', '.join(SUFFIXES)})")


def _read_rows(path: Path, prompt_key: str, id_key: str, limit: int | None):
    """(id, key, prompt, row) of the first `limit` distinct problems, the report and the repeated rows."""
    report, first, rows, repeated = RowReport(), {}, [], 0
    for _, line, row in iter_rows([path], report, required=(prompt_key,)):
        key = normalize_id(row.get(id_key))
        if key is None:
            reason = f"no usable {id_key!r} field (fields: {', '.join(row)}); use --id-key to name the id field"
            report.reject_accepted(f"{path}:{line}", reason, "missing id")
            continue
        prompt = row[prompt_key]
        if key in first:
            if first[key][0] != prompt.strip():
                raise SftkitError(
                    f"id {key!r} is shared by different prompts: {path}:{first[key][1]} and {path}:{line}. Each "
                    "problem needs its own id (the metadata has one answer per id), or name the id field with "
                    "--id-key."
                )
            repeated += 1
            continue
        if limit is not None and len(rows) >= limit:
            break
        first[key] = (prompt.strip(), line)
        rows.append((row.get(id_key), key, prompt, row))
    return rows, report, repeated


def _golds_from_column(rows, answer_key: str) -> tuple[list[str | None], str]:
    key = GOLD_COLUMN if any(GOLD_COLUMN in r for *_, r in rows) else answer_key
    return [gold_answer(r, key) for *_, r in rows], f"column {key!r} of the problems file"


def load_problems(
    path: str | Path,
    prompt_key: str = "prompt",
    id_key: str = "id",
    answer_key: str = "answer",
    metadata_file: str | Path | None = None,
    limit: int | None = None,
) -> Problems:
    """The first `limit` distinct problems of `path` with their gold answers (see the module docstring)."""
    path = Path(path)
    _check_file(path, "--problems")
    meta = None
    if metadata_file is not None:
        _check_file(Path(metadata_file), "--metadata-file")
        meta = load_metadata(Path(metadata_file), id_key, answer_key, strict=False)
    rows, report, repeated = _read_rows(path, prompt_key, id_key, limit)
    if not rows:
        raise SftkitError(
            f"no usable problem in {path}.\n{report.summary()}\ncolumns found: {report.columns_found()} "
            "(use --prompt-key / --id-key)"
        )
    if meta is not None:
        keys = [key for _, key, _, _ in rows]
        golds, source = [meta.golds.get(key) for key in keys], f"metadata file {metadata_file}"
        why = [None if g else NO_GOLD if k in meta.without_answer else NO_METADATA for g, k in zip(golds, keys)]
    else:
        golds, source = _golds_from_column(rows, answer_key)
        why = [None if g else NO_GOLD for g in golds]
    items = [Problem(i, k, p, g, w) for (i, k, p, _), g, w in zip(rows, golds, why)]
    problems = Problems(items, report, repeated, source)
    if len(problems.without_gold) == len(items):
        raise SftkitError(_no_gold_message(problems, path, meta, answer_key))
    return problems


def _no_gold_message(problems: Problems, path: Path, meta, answer_key: str) -> str:
    ids = [p.key for p in problems.items[:SHOW]]
    if meta is None:
        return (
            f"no problem of {path} has a gold answer: it has no {GOLD_COLUMN!r} or {answer_key!r} column with one "
            f"(columns found: {problems.report.columns_found()}). Pass --metadata-file with the answers "
            "(as for `sftkit filter`), or name the answer column with --answer-key."
        )
    return (
        f"no problem of {path} has a gold answer in the {problems.gold_source}: problem ids {ids}, metadata ids "
        f"{list(meta.golds)[:SHOW]}. Check --id-key, --answer-key and that the files belong together."
    )
