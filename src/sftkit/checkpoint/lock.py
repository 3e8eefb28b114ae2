"""One training at a time per output folder: `OUTPUT_DIR/.sftkit.lock`, held by rank 0 for the whole run.

The lock is an advisory `flock` on the file, which the operating system releases when the process ends however
it ends; the file itself only says who took it (host, pid, start time) for the message a second run prints.
Two things could still keep a lock whose holder is gone:
- a forked child (the examples' encoder workers, DataLoader workers) shares the locked file description, and with
  it the lock, for as long as it lives: every fork closes the child's copy (`os.register_at_fork`), so only the
  process that took the lock holds it;
- a child forked by an older sftkit that outlived its parent: when the recorded holder is a process of this host
  that no longer exists, the lock file is replaced by a fresh one (under a short guard lock, so that two runs
  racing for it cannot both win), and whatever still holds the old file holds nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from sftkit.dist import process_gone
from sftkit.errors import SftkitError

NAME = ".sftkit.lock"
_HELD: set = set()  # the open lock files of this process, closed in every forked child


def _close_in_child() -> None:
    for fh in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fh.fileno())  # not LOCK_UN: that would release the parent's lock too
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


class RunLock:
    def __init__(self, output_dir: str | Path):
        self.path = Path(output_dir) / NAME
        self.fh = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a fresh file replaced a stale one under our feet: try that one
            fh = open(self.path, "a+")
            if _try_lock(fh):
                if _same_file(fh, self.path):
                    return self._hold(fh)
                fh.close()
                continue
            holder = _read(fh)
            fh.close()
            if not (process_gone(holder.get("host"), holder.get("pid")) and self._replace_stale(holder)):
                raise SftkitError(
                    f"another training is running in {self.path.parent} ({_describe(holder)}): two runs in one "
                    "folder would overwrite each other's checkpoints and interleave metrics.jsonl. Wait for it to "
                    "finish, stop it, or use another output folder (trainer.default_local_dir=...)."
                )
        raise SftkitError(f"could not take the lock {self.path}: other runs keep replacing it; try again.")

    def _replace_stale(self, holder: dict) -> bool:
        """The recorded holder is dead but the lock is still held (by a child it left behind): unlink the file, so
        that the next open creates a fresh one. Under a guard lock, and only if the file still names that holder
        (another run may have replaced it first). True: try again."""
        with open(self.path.with_name(NAME + ".guard"), "a+") as guard:
            fcntl.flock(guard.fileno(), fcntl.LOCK_EX)  # held for a moment by whoever replaces the file
            try:
                with open(self.path) as current:
                    stale = _read(current) == holder
            except FileNotFoundError:
                return True
            if stale:
                self.path.unlink()
                print(f"note: {self.path} was held for pid {holder.get('pid')}, which has ended: taking it over")
        return True

    def _hold(self, fh) -> None:
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}) + "\n")
        fh.flush()
        self.fh = fh
        _HELD.add(fh)

    def release(self) -> None:
        if self.fh is not None:
            _HELD.discard(self.fh)
            with contextlib.suppress(OSError):
                fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None


def _try_lock(fh) -> bool:
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _same_file(fh, path: Path) -> bool:
    try:
        return os.fstat(fh.fileno()).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False


def _read(fh) -> dict:
    fh.seek(0)
    try:
        info = json.loads(fh.read().strip() or "{}")
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _describe(holder: dict) -> str:
    try:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["started"]))
        return f"host {holder['host']}, pid {holder['pid']}, started {started}"
    except (KeyError, TypeError, ValueError, OverflowError):
        return "holder unknown"
