"""The tokenized-examples cache: one folder per examples key, built once, opened memory-mapped by everyone.

    CACHE_DIR/examples-<key>/
        examples.arrow  input_ids, labels, length, trained (int32): an Arrow stream, memory-mapped on load
                        (datasets.Dataset.from_file)
        report.json     the build's bad-row and truncation report (printed again on every cache hit)
    CACHE_DIR/builds.log  one line per build: key, host, pid, seconds

CACHE_DIR is `data.cache_dir`, else $SFTKIT_CACHE_DIR, else $XDG_CACHE_HOME/sftkit or ~/.cache/sftkit. A folder is
built in `.tmp-examples-<key>-<host>-<pid>` and renamed into place when complete: an interrupted build leaves no folder
that looks complete, and two builders racing on a shared disk both succeed (the second keeps the first's folder).
`data.rebuild_cache=true` builds again. Deleting the folder is always safe. A temporary folder whose builder has
ended (killed mid-build: its pid on this host is gone) is removed by the next build.

The cache is not trusted blindly: report.json records the size and an xxh3-128 checksum of examples.arrow, checked
when the folder is opened (10^6 GSM8K-shaped examples, 1.7 GB: 0.2 s from the page cache, 1.9 s from disk; see
benchmarks/RESULTS.md); a damaged file is built again, with a note, before anything reads it. Errors writing the
cache (full disk, read-only folder) are messages that name the folder and `data.cache_dir` / SFTKIT_CACHE_DIR.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
from collections import Counter
from pathlib import Path

from sftkit import dist
from sftkit.data.rows import BadRow, RowReport
from sftkit.data.split import Split, TruncationStats
from sftkit.errors import SftkitError

SHOW = 5
COLUMNS = ("input_ids", "labels", "length", "trained")
FILE = "examples.arrow"
CHUNK = 8 << 20  # bytes hashed per read


def default_dir() -> Path:
    if os.environ.get("SFTKIT_CACHE_DIR"):
        return Path(os.environ["SFTKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sftkit"


def folder(cache_dir: str | Path | None, key: str) -> Path:
    return Path(cache_dir or default_dir()).expanduser() / f"examples-{key}"


def is_complete(path: Path) -> bool:
    """report.json is written last; it says how many examples were kept, and examples.arrow (with its checksum)
    must be beside it unless none was (a build that kept nothing may have written no file)."""
    try:
        saved = json.loads((path / "report.json").read_text())
        examples = saved.get("examples_kept")
    except (OSError, ValueError, AttributeError):
        return False
    if examples is None:  # a folder of an earlier layout: not ours to trust
        return False
    return examples == 0 or ((path / FILE).is_file() and "checksum" in saved)


def checksum(file: Path) -> dict:
    """{"bytes", "xxh3_128"} of a file, streamed. xxh3 (the `xxhash` package, a dependency of datasets) runs at
    memory speed; a cryptographic hash would be 5-10x slower and guards against nothing more here."""
    import xxhash

    digest = xxhash.xxh3_128()
    with open(file, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return {"bytes": file.stat().st_size, "xxh3_128": digest.hexdigest()}


def damage(path: Path) -> str | None:
    """Why examples.arrow is not the file that was built (truncated, overwritten, unreadable), or None."""
    expected = json.loads((path / "report.json").read_text()).get("checksum")
    if expected is None:  # nothing kept, no file
        return None
    file = path / FILE
    try:
        size = file.stat().st_size
        if size != expected["bytes"]:
            return f"{FILE} has {size} bytes, {expected['bytes']} were written"
        if checksum(file)["xxh3_128"] != expected["xxh3_128"]:
            return f"{FILE} does not match the checksum recorded when it was built"
    except OSError as exc:
        return f"{FILE} cannot be read ({exc.strerror or exc})"
    return None


@contextlib.contextmanager
def _writing(where: Path):
    """An OSError while writing the cache (full disk, read-only folder, quota) -> one message naming the fix."""
    try:
        yield
    except OSError as exc:
        code = exc.errno or next(map(int, re.findall(r"\[errno (\d+)\]", str(exc))), None)  # pyarrow's
        reason = os.strerror(code) if code else str(exc)
        raise SftkitError(
            f"cannot write the examples cache in {where} ({reason}): free some space there, or set data.cache_dir "
            "(or SFTKIT_CACHE_DIR) to a writable folder with room for the tokenized examples."
        ) from None


def _publish(tmp: Path, path: Path, report: dict, rebuild: bool) -> None:
    """tmp (examples.arrow written) -> path, complete: the checksum and report.json last, then one rename."""
    if report.get("examples_kept"):
        report["checksum"] = checksum(tmp / FILE)
    (tmp / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    if path.exists() and (rebuild or not is_complete(path)):
        shutil.rmtree(path)
    try:
        os.rename(tmp, path)
    except OSError:  # another process finished the same folder first: keep theirs
        if not is_complete(path):
            raise


def sweep(parent: Path) -> None:
    """Remove the temporary folders of builds on this host whose process has ended (killed mid-build)."""
    host = socket.gethostname()
    for tmp in parent.glob(".tmp-examples-*"):
        head, _, pid = tmp.name.rpartition("-")
        if head.endswith(f"-{host}") and pid.isdigit() and dist.process_gone(host, int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def ensure(path: Path, rebuild: bool, build) -> bool:
    """Build `path` with `build(tmp)` unless it is complete and intact (or `rebuild`). True when this call built
    it. Each build is recorded in CACHE_DIR/builds.log (key, host, pid, seconds): who tokenized what, and how
    often. The checksum is verified by the first process of each node (the others open what it checked)."""
    if is_complete(path) and not rebuild:
        problem = damage(path) if dist.is_local_main() else None
        if problem is None:
            return False
        print(f"note: the examples cache {path} is damaged ({problem}): building it again", flush=True)
        rebuild = True
    start = time.time()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SftkitError(
            f"cannot create the examples cache folder {path.parent} ({exc.strerror}); set data.cache_dir to a "
            "writable folder (or SFTKIT_CACHE_DIR)."
        ) from None
    sweep(path.parent)
    tmp = path.with_name(f".tmp-{path.name}-{socket.gethostname()}-{os.getpid()}")  # nodes may share the disk
    try:
        with _writing(path.parent):
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        report = build(tmp)  # its writes go through ExamplesWriter (the same messages); its reads are rows.py's
        with _writing(path.parent):
            _publish(tmp, path, report, rebuild)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    entry = {
        "key": path.name,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "seconds": round(time.time() - start, 3),
    }
    with contextlib.suppress(OSError), open(path.parent / "builds.log", "a") as fh:  # a record, not the cache
        fh.write(json.dumps(entry) + "\n")
    return True


class ExamplesWriter:
    """Encoded batches -> the kept examples appended to `examples.arrow` (Arrow IPC stream, opened memory-mapped by
    `datasets.Dataset.from_file`), and the build's counts: only the rejected rows of a batch become Python objects,
    so memory does not grow with the number of rows."""

    def __init__(self, folder: Path):
        self.path, self.writer = folder / FILE, None
        self.counts: Counter = Counter()
        self.truncated, self.bad_examples, self.dropped_ids, self.too_long = 0, [], [], None

    def add(self, table) -> None:
        with _writing(self.path.parent.parent):
            self._add(table)

    def _add(self, table) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        ok = pc.equal(table["status"], "ok")
        self.counts.update({k.as_py(): v.as_py() for k, v in zip(*pc.value_counts(table["status"]).flatten())})
        self.truncated += pc.sum(table["truncated"]).as_py() or 0
        for row in table.filter(pc.invert(ok)).select(["id", "where", "status", "reason"]).to_pylist():
            if row["status"] == "dropped":
                self.dropped_ids += [row["id"]][: SHOW - len(self.dropped_ids)]
            elif row["status"] == "too long":
                self.too_long = self.too_long or [row["where"], row["reason"]]
            elif len(self.bad_examples) < SHOW:
                self.bad_examples.append([row["where"], row["reason"]])
        good = table.filter(ok).select(list(COLUMNS))
        self.writer = self.writer or pa.ipc.new_stream(str(self.path), good.schema)
        self.writer.write_table(good)

    def close(self, report: RowReport) -> dict:
        """The report (reading + building), JSON-ready."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            with _writing(self.path.parent.parent):
                writer.close()
        out = _report_dict(report)
        bad = {k: v for k, v in self.counts.items() if k not in ("ok", "dropped", "too long")}
        out["rows_ok"] -= sum(bad.values())
        out["bad"] = dict(Counter(out["bad"]) + Counter(bad))
        out["examples"] = (out["examples"] + self.bad_examples)[:SHOW]
        out["truncation"] = {"truncated": self.truncated, "dropped": self.counts.get("dropped", 0),
                             "dropped_ids": self.dropped_ids, "too_long": self.too_long}  # fmt: skip
        out["examples_kept"] = self.counts.get("ok", 0)
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
    from datasets import Dataset

    saved = json.loads((path / "report.json").read_text())
    report = RowReport(rows_read=saved["rows_read"], rows_ok=saved["rows_ok"], bad=Counter(saved["bad"]))
    report.examples = [BadRow(where, reason) for where, reason in saved["examples"]]
    report.columns = Counter(saved["columns"])
    t = saved["truncation"]
    stats = TruncationStats(t["truncated"], t["dropped"], t["dropped_ids"], t["too_long"])
    kept = saved.get("examples_kept", 0)
    try:
        dataset = Dataset.from_file(str(path / FILE)) if kept else Dataset.from_dict({c: [] for c in COLUMNS})
    except OSError as exc:
        raise SftkitError(
            f"cannot read the examples cache {path} ({exc}): delete that folder or set data.rebuild_cache=true to "
            "build it again."
        ) from None
    return Split(dataset, report, stats, key, digest, seconds, path)
