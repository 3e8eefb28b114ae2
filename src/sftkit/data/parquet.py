"""Writing rows to Parquet with one schema, even when a column's values differ in type across rows.

Used by `prepare` and `filter`: the column types seen in a first pass become a schema (`plan_columns`), with a
note for every column that had to be normalised; `ParquetSink` then writes rows in batches and renames the file into
place only when complete.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

BATCH_ROWS = 8192  # rows per Parquet write (one row group)...
BATCH_BYTES = 64 << 20  # ...or fewer when their text passes 64 MiB, so long solutions do not balloon memory
ARROW_TYPES = {"str": "string", "int": "int64", "float": "float64", "bool": "bool_"}


def kind_of(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -(2**63) <= value < 2**63 else "big int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "list/dict" if isinstance(value, (list, dict)) else type(value).__name__


def _as_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def plan_columns(kinds: dict[str, Counter], n_rows: int):
    """Arrow schema for the output, per-column converters, and a note for every column that had to be normalised."""
    import pyarrow as pa

    fields, convert, notes = [], {}, []
    for name, seen in kinds.items():
        present = sum(seen.values())
        values = set(seen) - {"null"}
        if values == {"int", "float"}:
            type_, convert[name] = pa.float64(), float
            notes.append(f"column {name!r}: int and float values -> float")
        elif len(values) == 1 and next(iter(values)) in ARROW_TYPES:
            type_ = getattr(pa, ARROW_TYPES[next(iter(values))])()
        elif not values:
            type_ = pa.string()  # only nulls: string is the type every reader takes
        else:
            type_, convert[name] = pa.string(), _as_text
            notes.append(f"column {name!r}: {' and '.join(sorted(values))} values -> text (JSON for non-strings)")
        if present < n_rows:
            notes.append(f"column {name!r}: absent in {n_rows - present} rows -> null there")
        fields.append(pa.field(name, type_))
    return pa.schema(fields), convert, notes


class ParquetSink:
    """Buffers rows and writes them in batches; the file appears (atomically renamed) only on `close()`."""

    def __init__(self, path: Path, schema, convert: dict[str, Callable]):
        import pyarrow.parquet as pq

        self.path, self.schema, self.convert = path, schema, convert
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.writer = pq.ParquetWriter(self.tmp, schema)
        self.rows, self.size = 0, 0
        self.columns: dict[str, list] = {name: [] for name in schema.names}

    def add(self, row: dict, size: int) -> None:
        for name, values in self.columns.items():
            value = row.get(name)
            values.append(self.convert[name](value) if value is not None and name in self.convert else value)
        self.rows, self.size = self.rows + 1, self.size + size
        if self.rows >= BATCH_ROWS or self.size >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if self.rows:
            self.writer.write_table(pa.Table.from_pydict(self.columns, schema=self.schema))
            self.columns = {name: [] for name in self.columns}
            self.rows, self.size = 0, 0

    def close(self) -> None:
        self.finish()
        self.publish()

    def finish(self) -> None:
        """The temporary file complete, not yet in place (`publish` renames it)."""
        self.flush()
        self.writer.close()

    def publish(self) -> None:
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.writer.close()
        self.tmp.unlink(missing_ok=True)
