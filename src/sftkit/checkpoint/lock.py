"""One training at a time per output folder: `OUTPUT_DIR/.sftkit.lock`, held by rank 0 for the whole run.

The lock is an advisory `flock` on the file, which the operating system releases when the process ends however
it ends, so a crashed or killed run never leaves a stale lock behind; the file itself only says who held it last
(host, pid, start time) for the message a second run prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from sftkit.errors import SftkitError

NAME = ".sftkit.lock"


class RunLock:
    def __init__(self, output_dir: str | Path):
        self.path = Path(output_dir) / NAME
        self.fh = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            raise SftkitError(
                f"another training is running in {self.path.parent} ({_describe(holder)}): two runs in one folder "
                "would overwrite each other's checkpoints and interleave metrics.jsonl. Wait for it to finish, stop "
                "it, or use another output folder (trainer.default_local_dir=...)."
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}) + "\n")
        fh.flush()
        self.fh = fh

    def release(self) -> None:
        if self.fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"]))
        return f"host {info['host']}, pid {info['pid']}, started {started}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
