"""`sftkit filter`'s outputs: checked before any grading work (`sftkit.outputs`), written by re-reading the inputs
(streaming)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sftkit.data.parquet import ParquetSink, plan_columns
from sftkit.data.rows import RowReport, iter_rows
from sftkit.outputs import check_output, distinct


def check_outputs(args, inputs: list[Path]) -> dict[str, Path]:
    """All the output paths, checked (`sftkit.outputs`: none an input, existing ones only with --overwrite);
    {"correct": ..., "incorrect": ..., "report": ...} (the ones given)."""
    given = {"--save-correct": args.save_correct, "--save-incorrect": args.save_incorrect}
    given["--report-json"] = args.report_json
    distinct({flag: Path(path) for flag, path in given.items() if path})
    names = {"--save-correct": "correct", "--save-incorrect": "incorrect", "--report-json": "report"}
    return {
        names[flag]: check_output(path, flag, None if flag == "--report-json" else ".parquet", inputs, args.overwrite)
        for flag, path in given.items()
        if path
    }


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
