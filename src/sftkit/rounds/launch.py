"""The training stage in a child process (`python -m sftkit.train`, or `sftkit launch --config_file CFG -m
sftkit.train`: accelerate launch keeping the exit code): its memory (and GPUs) are free when it ends, and its exit
code — 75 when pre-empted — passes through. Stop signals reach it through its stop file ($SFTKIT_STOP_FILE,
training/preempt.py), which every rank checks at each step boundary, also under launchers that do not pass signals
on; the child runs in its own session, so a Ctrl-C in the terminal or a signal to the process group is not counted
twice (a second Ctrl-C in the training aborts it). The child dies with this process (PR_SET_PDEATHSIG).

In-process stages stop at once on SIGTERM/SIGUSR1 (`Preempted`): their .partial folder is redone by the next run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from sftkit.errors import SftkitError
from sftkit.training.preempt import EXIT_PREEMPTED, INTERRUPT, SIGNALS

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


def run_training(command: list[str], stop_file: Path) -> int:
    """Run the training, passing stop signals on through the stop file; its exit code."""
    env = dict(os.environ)
    stop = Path(env.setdefault("SFTKIT_STOP_FILE", str(stop_file)))  # a launcher's own stop file is kept
    if stop == stop_file:
        stop_file.unlink(missing_ok=True)  # left by an earlier stop: it would stop this attempt at once
    parent = os.getpid()
    from sftkit.data.encode_pool import die_with  # imported here, not in the forked child (import locks)

    proc = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=lambda: die_with(parent))
    received: list[int] = []

    def forward(signum, frame) -> None:
        if not received:
            print(
                f"\n{signal.Signals(signum).name} received: the training stops after its next optimizer step and "
                "saves a checkpoint; rerun the same command to continue",
                file=sys.stderr,
                flush=True,
            )
            stop.touch()
        elif signum == INTERRUPT:
            print("\nsecond interrupt: aborting the training (its last checkpoint is kept)", file=sys.stderr)
            proc.kill()
        received.append(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (*SIGNALS, INTERRUPT)}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if stop == stop_file:
            stop_file.unlink(missing_ok=True)
