"""The tokenized-examples cache: one folder per examples key, built once, opened memory-mapped by everyone.

    CACHE_DIR/examples-<key>/
        dataset/        datasets.save_to_disk: input_ids, labels, length, trained (int32), memory-mapped on load
        report.json     the build's bad-row and truncation report (printed again on every cache hit)

CACHE_DIR is `data.cache_dir`, else $SFTKIT_CACHE_DIR, else $XDG_CACHE_HOME/sftkit or ~/.cache/sftkit. A folder is
built in `.tmp-examples-<key>-<pid>` and renamed into place when complete: an interrupted build leaves no folder
that looks complete, and two builders racing on a shared disk both succeed (the second keeps the first's folder).
`data.rebuild_cache=true` builds again. Deleting the folder is always safe.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections import Counter
from pathlib import Path

from sftkit.data.rows import BadRow, RowReport
from sftkit.errors import SftkitError

SHOW = 5
COLUMNS = ("input_ids", "labels", "length", "trained")


def default_dir() -> Path:
    if os.environ.get("SFTKIT_CACHE_DIR"):
        return Path(os.environ["SFTKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sftkit"


def folder(cache_dir: str | Path | None, key: str) -> Path:
    return Path(cache_dir or default_dir()).expanduser() / f"examples-{key}"


def is_complete(path: Path) -> bool:
    """report.json is written last; it says whether there is a dataset folder beside it (not when no example
    survived: datasets cannot save an empty table)."""
    try:
        examples = json.loads((path / "report.json").read_text()).get("examples_kept", 0)
    except (OSError, ValueError):
        return False
    return examples == 0 or (path / "dataset" / "dataset_info.json").is_file()


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def ensure(path: Path, rebuild: bool, build) -> bool:
    """Build `path` with `build(tmp)` unless it is complete (or `rebuild`). True when this call built it."""
    if is_complete(path) and not rebuild:
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SftkitError(
            f"cannot create the examples cache folder {path.parent} ({exc.strerror}); set data.cache_dir to a "
            "writable folder (or SFTKIT_CACHE_DIR)."
        ) from None
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        report = build(tmp)
        (tmp / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        for scratch in ("rows", "encoded"):
            shutil.rmtree(tmp / scratch, ignore_errors=True)
        if path.exists() and (rebuild or not is_complete(path)):
            shutil.rmtree(path)
        try:
            os.rename(tmp, path)
        except OSError:  # another process finished the same folder first: keep theirs
            if not is_complete(path):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True


@contextlib.contextmanager
def quiet():
    """datasets' progress bars off while we build (one summary line is printed instead)."""
    from datasets.utils import logging as ds_logging

    was = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            ds_logging.enable_progress_bar()


def from_generator(dataset_cls, generator, tmp: Path, features, files, settings: dict, report: RowReport, verbose):
    """The rows streamed into an Arrow table under tmp/rows (datasets' generator builder), in this process."""
    kwargs = {"files": files, "prompt_key": settings["prompt_key"], "response_key": settings["response_key"],
              "report": report, "verbose": verbose}  # fmt: skip
    try:
        return dataset_cls.from_generator(
            generator, features=features, cache_dir=str(tmp / "rows"), gen_kwargs=kwargs, fingerprint=tmp.name
        )
    except Exception as exc:  # datasets wraps what the generator raised (our SftkitError) in its own error
        cause = exc
        while cause is not None and not isinstance(cause, SftkitError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        if report.rows_ok == 0:  # nothing to write: datasets fails on an empty generator
            return None
        raise


def save_examples(examples, tmp: Path, report: RowReport) -> dict:
    """The good examples -> tmp/dataset; the report (reading + building) -> a JSON-ready dict."""
    import numpy as np
    import pyarrow.compute as pc
    from datasets import Sequence, Value

    out = _report_dict(report)
    if examples is None:  # no usable row at all
        return out
    status = examples.data.column("status")
    counts = Counter({k.as_py(): v.as_py() for k, v in zip(*pc.value_counts(status).flatten())})
    bad = {k: v for k, v in counts.items() if k not in ("ok", "dropped", "too long")}
    ok = pc.equal(status, "ok").to_numpy(zero_copy_only=False)
    not_ok = np.flatnonzero(~ok)[:2000]  # enough to show the first few of each kind
    firsts = examples.select(not_ok).select_columns(["id", "where", "status", "reason"]).to_list()
    out["rows_ok"] -= sum(bad.values())
    out["bad"] = dict(Counter(out["bad"]) + Counter(bad))
    out["examples"] += [[r["where"], r["reason"]] for r in firsts if r["status"] in bad][: SHOW - len(out["examples"])]
    dropped = [r["id"] for r in firsts if r["status"] == "dropped"]
    too_long = next(([r["where"], r["reason"]] for r in firsts if r["status"] == "too long"), None)
    truncated = pc.sum(examples.data.column("truncated")).as_py() or 0
    out["truncation"] = {"truncated": truncated, "dropped": counts.get("dropped", 0),
                         "dropped_ids": dropped[:SHOW], "too_long": too_long}  # fmt: skip
    out["examples_kept"] = int(ok.sum())
    if out["examples_kept"]:
        good = examples.select(np.flatnonzero(ok)).select_columns(list(COLUMNS))
        good = good.cast_column("input_ids", Sequence(Value("int32"))).cast_column("labels", Sequence(Value("int32")))
        good.save_to_disk(str(tmp / "dataset"))
    return out


def _report_dict(report: RowReport) -> dict:
    return {
        "rows_read": report.rows_read,
        "rows_ok": report.rows_ok,
        "bad": dict(report.bad),
        "examples": [[ex.where, ex.reason] for ex in report.examples],
        "columns": dict(report.columns),
        "truncation": {"truncated": 0, "dropped": 0, "dropped_ids": [], "too_long": None},
        "examples_kept": 0,
    }


def open_split(path: Path, key: str, digest: str, seconds: float | None):
    """The Split stored in `path` (memory-mapped)."""
    from datasets import Dataset, load_from_disk

    from sftkit.data.dataset import Split, TruncationStats

    saved = json.loads((path / "report.json").read_text())
    report = RowReport(rows_read=saved["rows_read"], rows_ok=saved["rows_ok"], bad=Counter(saved["bad"]))
    report.examples = [BadRow(where, reason) for where, reason in saved["examples"]]
    report.columns = Counter(saved["columns"])
    t = saved["truncation"]
    stats = TruncationStats(t["truncated"], t["dropped"], t["dropped_ids"], t["too_long"])
    data = path / "dataset"
    dataset = load_from_disk(str(data)) if data.is_dir() else Dataset.from_dict({c: [] for c in COLUMNS})
    return Split(dataset, report, stats, key, digest, seconds, path)
