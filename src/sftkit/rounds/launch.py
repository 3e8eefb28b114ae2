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

__all__ = ["EXIT_PREEMPTED", "Preempted", "accelerate_settings", "stop_on_signals", "train_command", "run_training"]


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
    # `sftkit launch` (accelerate launch that keeps the exit code: 75 when pre-empted, not accelerate's 1)
    return [sys.executable, "-m", "sftkit.launch", "--config_file", str(_config(accelerate)), "-m", "sftkit.train"]


def _config(accelerate: str) -> Path:
    from sftkit import resources

    config = Path(accelerate)
    if not config.is_file():
        config = resources.accelerate_config(accelerate)
    if not config.is_file():
        names = sorted(p.stem for p in resources.accelerate_configs().glob("*.yaml"))
        raise SftkitError(f"--accelerate-config {accelerate}: no such file or shipped config ({', '.join(names)})")
    return config


def accelerate_settings(accelerate: str | None) -> tuple[int, str | None]:
    """(processes, mixed precision) that the training will have: one process without a config, else the config's
    num_processes and mixed_precision (what `accelerate launch` gives it as WORLD_SIZE, ACCELERATE_MIXED_PRECISION)."""
    if not accelerate:
        return 1, None
    import yaml

    path = _config(accelerate)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SftkitError(f"--accelerate-config {accelerate}: {path} cannot be read ({exc})") from None
    if not isinstance(config, dict):
        raise SftkitError(f"--accelerate-config {accelerate}: {path} is not an accelerate config (a YAML mapping)")
    precision = config.get("mixed_precision")
    return int(config.get("num_processes") or 1), str(precision) if precision else None
