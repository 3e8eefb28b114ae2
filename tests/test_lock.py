"""The run lock (checkpoint/lock.py): one training per output folder, and a lock whose holder is gone never blocks
(§3.2 of issue 20: a forked worker outlived a pre-empted run and kept the folder locked forever)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from sftkit.checkpoint.lock import NAME, RunLock
from sftkit.errors import SftkitError

FORKING_HOLDER = """
import multiprocessing as mp, os, sys, time
from sftkit.checkpoint.lock import RunLock
RunLock(sys.argv[1]).acquire()
child = mp.get_context("fork").Process(target=time.sleep, args=(120,))  # e.g. an encoder or DataLoader worker
child.start()
print(child.pid, flush=True)
time.sleep(120)
"""

FLOCK_HOLDER = """
import fcntl, sys, time
fh = open(sys.argv[1], "a+")
fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(120)
"""


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_forked_child_of_a_killed_run_does_not_keep_the_lock(tmp_path, sig):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", FORKING_HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    child = int(holder.stdout.readline())
    try:
        with pytest.raises(SftkitError, match=f"another training is running .*pid {holder.pid}"):
            RunLock(out).acquire()  # the run itself still holds it
        holder.send_signal(sig)
        holder.wait()
        os.kill(child, 0)  # its child lives on (no die-with-parent here): it must not hold the lock
        lock = RunLock(out)
        lock.acquire()
        lock.release()
    finally:
        _kill(child)
        _kill(holder.pid)


def test_a_lock_kept_for_a_holder_that_has_ended_is_taken_over(tmp_path, capsys):
    """What an orphan of an older sftkit left: the lock file names a process that has ended, while some other
    process still has the file locked."""
    out = tmp_path / "run"
    out.mkdir()
    dead = _dead_pid()
    (out / NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": dead, "started": time.time()}) + "\n")
    orphan = subprocess.Popen([sys.executable, "-c", FLOCK_HOLDER, str(out / NAME)], stdout=subprocess.PIPE, text=True)
    assert orphan.stdout.readline().strip() == "locked"
    try:
        lock = RunLock(out)
        lock.acquire()
        assert f"pid {dead}, which has ended: taking it over" in capsys.readouterr().out
        assert json.loads((out / NAME).read_text())["pid"] == os.getpid()
        with pytest.raises(SftkitError, match=f"another training is running .*pid {os.getpid()}"):
            RunLock(out).acquire()  # the new holder is alive: refused as always
        lock.release()
    finally:
        _kill(orphan.pid)
        orphan.wait()


LOCK_HOLDER = """
import sys, time
from sftkit.checkpoint.lock import RunLock
lock = RunLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_training_in_the_same_folder_is_refused_and_a_killed_one_leaves_no_lock(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    try:
        with pytest.raises(SftkitError, match=rf"another training is running in {out} \(host .*pid {holder.pid}"):
            RunLock(out).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the operating system releases the lock
        holder.wait()
    lock = RunLock(out)
    lock.acquire()  # no stale lock
    lock.release()
