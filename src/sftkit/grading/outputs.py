"""`sftkit filter`'s outputs: checked before any grading work, written by re-reading the inputs (streaming)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from sftkit.data.parquet import ParquetSink, plan_columns
from sftkit.data.rows import RowReport, iter_rows
from sftkit.errors import SftkitError


def check_output(path: str, flag: str, suffix: str | None = ".parquet") -> Path:
    """The output path, its folder created and writable; a SftkitError naming the flag now rather than a failed
    write after all the grading (a file where the folder should be, a read-only folder, a folder at the path)."""
    out = Path(path)
    if suffix and out.suffix != suffix:
        kind = {".parquet": "Parquet", ".jsonl": "JSON Lines"}.get(suffix, suffix)
        raise SftkitError(f"{flag} {path}: the output is {kind}; give a file name ending in {suffix}")
    blocker = next((p for p in [out.parent, *out.parent.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise SftkitError(f"{flag} {path}: {blocker} is a file, not a folder; give a path in a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SftkitError(f"{flag} {path}: cannot create the folder {out.parent} ({exc.strerror})") from None
    if out.is_dir():
        raise SftkitError(f"{flag} {path}: this is a folder; give a file name")
    if not os.access(out.parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise SftkitError(f"{flag} {path}: no permission to write there; give a path in a folder you can write to")
    return out


def check_outputs(save_correct: str, save_incorrect: str | None, report_json: str | None) -> dict[str, Path]:
    """All the output paths, checked; {"correct": ..., "incorrect": ..., "report": ...} (the ones given)."""
    outputs = {"correct": check_output(save_correct, "--save-correct")}
    if save_incorrect:
        outputs["incorrect"] = check_output(save_incorrect, "--save-incorrect")
        if outputs["incorrect"].resolve() == outputs["correct"].resolve():
            raise SftkitError("--save-incorrect names the same file as --save-correct: give two different files")
    if report_json:
        outputs["report"] = check_output(report_json, "--report-json", suffix=None)
    return outputs


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
