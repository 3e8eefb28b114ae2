"""Pre-emption: SIGTERM or SIGUSR1 (what SLURM and cloud schedulers send before they kill a job) asks the run to
stop at the next optimizer-step boundary, save `global_step_N` and exit with EXIT_PREEMPTED; `auto` resume then
continues from step N. The signal may reach only some ranks (or reach them at different moments): the ranks agree
at every step boundary (one small all-reduce), so all of them stop at the same step.

A launcher may also ask by creating the file named by $SFTKIT_STOP_FILE (scripts/launch.slurm does, on SLURM's
early warning signal): launchers in between (torchrun's agent) need not pass any signal on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

import torch

from sftkit import dist

SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s is not None)
# Ctrl-C stops like SIGTERM (save at the next step, exit 75); a second Ctrl-C aborts at once (KeyboardInterrupt).
INTERRUPT = signal.SIGINT
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again later" — scripts/launch.slurm requeues the job on it


class StopRequest:
    """Installed from the start of `trainer.train()` until the run's last file is written (train.py); `agreed()` at
    each step boundary and between the final validation, save and export (finish.py)."""

    def __init__(self):
        self.received: int | None = None
        self.previous: dict[int, object] = {}
        self.stop_file = os.environ.get("SFTKIT_STOP_FILE") or None

    def install(self) -> None:
        if self.previous or threading.current_thread() is not threading.main_thread():
            return  # installed already; signal handlers can only be set from the main thread (not in a notebook)
        for sig in (*SIGNALS, INTERRUPT):
            self.previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()

    def _handle(self, signum, frame) -> None:
        if signum == INTERRUPT and self.received is not None:
            raise KeyboardInterrupt  # the second Ctrl-C: abort now, without a checkpoint
        if self.received is None:
            name = signal.Signals(signum).name
            print(f"\n{name} received: stopping after this optimizer step and saving a checkpoint", file=sys.stderr)
        self.received = signum

    @property
    def asked(self) -> bool:
        """This rank received a signal (no collective: for places where the ranks need not agree)."""
        return self.received is not None

    def agreed(self, device) -> bool:
        """True on every rank as soon as any rank received a signal (or sees the stop file)."""
        if self.received is None and self.stop_file and os.path.exists(self.stop_file):
            print(f"\n{self.stop_file} exists: stopping after this optimizer step and saving", file=sys.stderr)
            self.received = 0
        flag = torch.tensor(1 if self.received is not None else 0, device=device)
        if dist.distributed():
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())


class StoppedBeforeTraining(BaseException):
    """A stop signal before training started: nothing to save yet, so the run ends at once with EXIT_PREEMPTED
    (a long tokenization would otherwise outlast the scheduler's grace period, and a SIGTERM killed the run with
    exit 143 and no word). A BaseException, as KeyboardInterrupt is, so that no library's `except Exception`
    swallows it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_at_once():
    """While the block runs (planning, tokenizing, loading the model), a stop signal raises StoppedBeforeTraining."""

    def _raise(signum, frame) -> None:
        raise StoppedBeforeTraining(signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise) for sig in (*SIGNALS, INTERRUPT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def ignore_in_worker(_worker_id: int) -> None:
    """DataLoader workers leave the stop signals to the main process: a SIGTERM to the whole process group (what
    `scancel` sends) or a Ctrl-C in the terminal would otherwise kill a worker first and crash the main process
    ("DataLoader worker ... killed") before it could save."""
    for sig in (*SIGNALS, INTERRUPT):
        signal.signal(sig, signal.SIG_IGN)
