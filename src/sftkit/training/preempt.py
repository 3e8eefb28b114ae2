"""Pre-emption: SIGTERM or SIGUSR1 (what SLURM and cloud schedulers send before they kill a job) asks the run to
stop at the next optimizer-step boundary, save `global_step_N` and exit with EXIT_PREEMPTED; `auto` resume then
continues from step N. The signal may reach only some ranks (or reach them at different moments): the ranks agree
at every step boundary (one small all-reduce), so all of them stop at the same step.

A launcher may also ask by creating the file named by $SFTKIT_STOP_FILE (scripts/launch.slurm does, on SLURM's
early warning signal): launchers in between (torchrun's agent) need not pass any signal on.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import torch

from sftkit import dist
from sftkit.stopping import EXIT_PREEMPTED, INTERRUPT, SIGNALS

__all__ = ["EXIT_PREEMPTED", "INTERRUPT", "SIGNALS", "StopRequest", "ignore_in_worker"]
# Ctrl-C stops like SIGTERM (save at the next step, exit 75); a second Ctrl-C aborts at once (KeyboardInterrupt).


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


def ignore_in_worker(_worker_id: int) -> None:
    """DataLoader workers leave the stop signals to the main process: a SIGTERM to the whole process group (what
    `scancel` sends) or a Ctrl-C in the terminal would otherwise kill a worker first and crash the main process
    ("DataLoader worker ... killed") before it could save."""
    for sig in (*SIGNALS, INTERRUPT):
        signal.signal(sig, signal.SIG_IGN)
