"""Reading JSONL rows, streaming, with every bad row counted and reported (never a crash, never silent).

Used by `prepare`, `filter` and the trainer's data loading. A bad row is: malformed JSON, a line that is not a
JSON object, a missing / empty / non-string required field, a lone UTF-16 surrogate escape ("\\ud800": valid
JSON, not text). A missing or unreadable file, a glob with no match and an empty file are reported the same way.
`strict=True` turns the first of them into an error.
Parquet files (e.g. `sftkit filter`'s output) are read the same way by `iter_rows`; their "line" is the row number.
"""

from __future__ import annotations

import glob
import json
import os
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sftkit.errors import SftkitError

SHOW_FIRST = 5
BOM = b"\xef\xbb\xbf"
Rows = Iterator[tuple[Path, int, dict]]  # (file, line or row number, row) of the usable rows
DEFAULT_RESPONSE_KEY = "generated_solution"  # the seed's column name
FALLBACK_RESPONSE_KEY = "response"  # accepted in its place when the files have only this one


@dataclass
class BadRow:
    where: str  # "file:line" or "file"
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class RowReport:
    """Counts of good and bad rows, with the first few bad ones kept for display."""

    strict: bool = False
    rows_read: int = 0
    rows_ok: int = 0
    bad: Counter = field(default_factory=Counter)
    examples: list[BadRow] = field(default_factory=list)
    columns: Counter = field(default_factory=Counter)  # field name -> rows (good or bad) that have it

    def columns_found(self) -> str:
        """'id (600), prompt (600), ...' for error messages about a missing column."""
        return ", ".join(f"{name} ({n})" for name, n in self.columns.items()) or "none"

    def reject(self, where: str, reason: str, kind: str) -> None:
        if self.strict:
            raise SftkitError(f"{where}: {reason} (--strict makes every bad row fatal; drop it to skip and count)")
        self.bad[kind] += 1
        if len(self.examples) < SHOW_FIRST:
            self.examples.append(BadRow(where, reason))

    def reject_accepted(self, where: str, reason: str, kind: str) -> None:
        """A row the reader had accepted fails a later check (a column only the caller knows about)."""
        self.rows_ok -= 1
        self.reject(where, reason, kind)

    @property
    def n_bad(self) -> int:
        return sum(self.bad.values())

    def summary(self) -> str:
        lines = [f"rows read: {self.rows_read}, usable: {self.rows_ok}, bad: {self.n_bad}"]
        lines += [f"  {kind}: {n}" for kind, n in sorted(self.bad.items())]
        if self.examples:
            lines.append(f"first {len(self.examples)} bad rows:")
            lines += [f"  {ex}" for ex in self.examples]
        return "\n".join(lines)


def expand_inputs(
    patterns: Iterable[str], report: RowReport, suffixes: Sequence[str] = (".jsonl", ".json")
) -> list[Path]:
    """Files, globs and directories -> sorted, de-duplicated list of files. Missing ones go to the report."""
    files: list[Path] = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            found = sorted(p for p in Path(pattern).iterdir() if p.suffix in suffixes)
            if not found:
                report.reject(pattern, f"directory has no {'/'.join(suffixes)} file", "no match")
        elif glob.has_magic(pattern):
            found = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
            if not found:
                report.reject(pattern, "glob matches no file", "no match")
        elif os.path.isfile(pattern):
            found = [Path(pattern)]
        else:
            report.reject(pattern, "file not found", "missing file")
            found = []
        known = {p.resolve() for p in files}  # the same file under two spellings is read once
        for p in found:
            if p.resolve() not in known:
                files.append(p)
                known.add(p.resolve())
    return files


def response_column(columns: Collection[str], response_key: str) -> str:
    """The column that holds the response: `response_key`, except that the seed's default `generated_solution`
    falls back to `response` when only that one is present (files written by other tools). `columns` is a row's
    keys or a file's columns; the one owner of this rule for `prepare`, `filter`'s output and training."""
    if response_key == DEFAULT_RESPONSE_KEY and response_key not in columns and FALLBACK_RESPONSE_KEY in columns:
        return FALLBACK_RESPONSE_KEY
    return response_key


def check_fields(row: dict, required: Sequence[str]) -> tuple[str, str] | None:
    """(kind, reason) for the first required field that is missing, not a string, or empty; None if all are fine."""
    for key in required:
        if key not in row:
            return "missing field", f"no {key!r} field (fields: {', '.join(map(str, row)) or 'none'})"
        value = row[key]
        if not isinstance(value, str):
            return "non-string field", f"{key!r} is {type(value).__name__}, not a string"
        if not value.strip():
            return "empty field", f"{key!r} is empty"
    return None


def lone_surrogate(row) -> str | None:
    """Why a parsed row is not text, or None: JSON allows a lone UTF-16 surrogate escape ("\\ud800"), which no
    UTF-8 writer (Parquet, a tokenizer) can encode. Called only for lines holding a "\\ud..." escape (cheap)."""
    for key, value in row.items() if isinstance(row, dict) else [("row", row)]:
        text = json.dumps(value, ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"{key!r} holds a lone UTF-16 surrogate ({ascii(text[exc.start])[1:-1]}), which is not text"
    return None


def _accept(row, where: str, report: RowReport, required: Sequence[str]) -> bool:
    """Count `row` in `report`: True if usable, else rejected with its reason."""
    if not isinstance(row, dict):
        report.reject(where, f"a JSON {type(row).__name__}, not an object", "not an object")
        return False
    report.columns.update(row.keys())
    problem = check_fields(row, required)
    if problem:
        report.reject(where, problem[1], problem[0])
        return False
    report.rows_ok += 1
    return True


def iter_jsonl(files: Iterable[Path], report: RowReport, required: Sequence[str] = ()) -> Rows:
    """Yield (file, line number, row) for every usable row; bad rows are counted in `report`. Streaming.
    A UTF-8 byte-order mark is skipped; a line that is not valid UTF-8 is a bad row (never silently altered)."""
    for path in files:
        n_lines = 0
        try:
            fh = open(path, "rb")
        except OSError as exc:
            report.reject(str(path), f"cannot read ({exc.strerror})", "unreadable file")
            continue
        with fh:
            for lineno, raw in enumerate(fh, start=1):
                if lineno == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM) :]
                if not raw.strip():
                    continue
                n_lines += 1
                report.rows_read += 1
                where = f"{path}:{lineno}"
                try:
                    row = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    bad = raw[exc.start : exc.start + 1].hex()
                    report.reject(where, f"not valid UTF-8 (byte 0x{bad} at column {exc.start + 1})", "invalid UTF-8")
                    continue
                except json.JSONDecodeError as exc:
                    report.reject(where, f"malformed JSON ({exc.msg} at column {exc.colno})", "malformed JSON")
                    continue
                if (b"\\ud" in raw or b"\\uD" in raw) and (surrogate := lone_surrogate(row)):
                    report.reject(where, surrogate, "lone surrogate")
                    continue
                if _accept(row, where, report, required):
                    yield path, lineno, row
        if n_lines == 0:
            report.reject(str(path), "empty file", "empty file")


def iter_parquet(
    files: Iterable[Path], report: RowReport, required: Sequence[str] = (), batch_rows: int = 4096
) -> Rows:
    """Like `iter_jsonl` for Parquet files, read in batches; the "line" is the 1-based row number."""
    import pyarrow.parquet as pq

    for path in files:
        try:
            pf = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError... for unreadable files
            report.reject(str(path), f"not a readable Parquet file ({exc})", "unreadable file")
            continue
        rowno = 0
        for batch in pf.iter_batches(batch_size=batch_rows):
            for row in batch.to_pylist():
                rowno += 1
                report.rows_read += 1
                if _accept(row, f"{path}:{rowno}", report, required):
                    yield path, rowno, row
        if rowno == 0:
            report.reject(str(path), "empty file", "empty file")


def iter_rows(files: Iterable[Path], report: RowReport, required: Sequence[str] = ()) -> Rows:
    """`iter_parquet` for *.parquet files, `iter_jsonl` for the others, in the order given."""
    for path in files:
        reader = iter_parquet if Path(path).suffix == ".parquet" else iter_jsonl
        yield from reader([path], report, required)
