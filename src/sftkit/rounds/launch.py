"""The training stage in a child process (`python -m sftkit.train`, or `sftkit launch --config_file CFG -m
sftkit.train`: accelerate launch keeping the exit code), run by sftkit/supervise.py: its memory (and GPUs) are free
when it ends, its exit code — 75 when pre-empted — passes through, and stop signals reach it through its stop file.

In-process stages stop at once on SIGTERM/SIGUSR1 (`Preempted`): their .partial folder is redone by the next run.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path

from sftkit.errors import SftkitError
from sftkit.supervise import run_training
from sftkit.training.preempt import EXIT_PREEMPTED, SIGNALS

__all__ = ["EXIT_PREEMPTED", "Preempted", "stop_on_signals", "train_command", "run_training"]


class Preempted(Exception):
    """A stop signal during an in-process stage, or a training that exited with EXIT_PREEMPTED."""


def _raise(signum, frame) -> None:
    raise Preempted(signal.Signals(signum).name)


@contextlib.contextmanager
def stop_on_signals():
    """SIGTERM/SIGUSR1 raise Preempted in the main thread while the block runs."""
    previous = {sig: signal.signal(sig, _raise) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def train_command(accelerate: str | None) -> list[str]:
    """The launcher: this Python's `-m sftkit.train`, or `accelerate launch` with a shipped config name or a path."""
    if not accelerate:
        return [sys.executable, "-m", "sftkit.train"]
    from sftkit import resources

    config = Path(accelerate)
    if not config.is_file():
        config = resources.accelerate_config(accelerate)
    if not config.is_file():
        names = sorted(p.stem for p in resources.accelerate_configs().glob("*.yaml"))
        raise SftkitError(f"--accelerate-config {accelerate}: no such file or shipped config ({', '.join(names)})")
    # `sftkit launch` (accelerate launch that keeps the exit code: 75 when pre-empted, not accelerate's 1)
    return [sys.executable, "-m", "sftkit.launch", "--config_file", str(config), "-m", "sftkit.train"]
