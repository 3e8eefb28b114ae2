"""A training in a child process, stopped through its stop file: what `sftkit launch`, the seed shims and
`sftkit rounds` run.

Stop signals (SIGTERM/SIGUSR1 from SLURM or `scancel`, a first Ctrl-C) are not passed on as signals: they create
the stop file ($SFTKIT_STOP_FILE, training/preempt.py), which every rank checks at each optimizer-step boundary, so
every rank saves `global_step_N` and exits 75 and so does this process. Passing the signal on instead reaches a
launcher (torch elastic) that kills its workers and exits 128+N (143), losing the 75 that a requeue script acts on,
and a parent that dies on the signal leaves its child training on, detached. The child runs in its own session (a
signal to the terminal's process group is not counted twice) and dies with this process (PR_SET_PDEATHSIG); a
second Ctrl-C kills its whole session (its last checkpoint is kept).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sftkit.training.preempt import INTERRUPT, SIGNALS

SUPERVISED = "SFTKIT_SUPERVISED"


def run_training(command: list[str], stop_file: Path, env: dict | None = None) -> int:
    """Run `command`, passing stop signals on through the stop file; its exit code (128 + N if killed by N)."""
    env = dict(os.environ if env is None else env)
    env[SUPERVISED] = "1"  # `sftkit launch` inside runs Accelerate's launcher at once (supervised already)
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
            _kill(proc)
        received.append(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (*SIGNALS, INTERRUPT)}
    try:
        return exit_status(proc.wait())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            _kill(proc)
        if stop == stop_file:
            stop_file.unlink(missing_ok=True)


def exit_status(code: int) -> int:
    """A process's exit status as a shell shows it: a signal N as 128 + N."""
    return 128 - code if code < 0 else code


def _kill(proc: subprocess.Popen) -> None:
    """The child's whole session (a launcher's workers too), then the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()
