"""Stop signals where nothing can be saved yet: the command ends at once, cleanly, with EXIT_PREEMPTED.

SIGTERM/SIGUSR1 (SLURM, cloud schedulers, `scancel`) and Ctrl-C. Training saves at the next step boundary once it
runs (training/preempt.py); before that (planning, tokenizing, loading the model) and in `sftkit prepare` there is
nothing to save, and a stop must not wait (a long tokenization outlasts a scheduler's grace period) nor leave
half-written files: `stop_at_once` turns the signal into `Stopped`, which unwinds through the code's cleanup.
`signals_deferred` holds them back while a few outputs are published together (all of them or none).
Torch-free: `sftkit prepare` imports it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s is not None)
INTERRUPT = signal.SIGINT  # Ctrl-C stops like SIGTERM
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again later" — scripts/launch.slurm and `sftkit rounds` act on it


class Stopped(BaseException):
    """A stop signal where nothing can be saved. A BaseException, as KeyboardInterrupt is, so that no library's
    `except Exception` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_at_once(unless_handled: bool = False) -> Iterator[Callable[[], None]]:
    """While the block runs, a stop signal raises Stopped; yields `disarm()`, which gives the signals back to their
    previous handlers early. A signal the process ignores stays ignored (`nohup`, a background job's SIGINT).
    `unless_handled`: leave them to a caller that handles SIGTERM itself (`sftkit rounds` runs `prepare` in its own
    process and stops it its own way)."""
    previous: dict[int, object] = {}

    def _raise(signum, frame) -> None:
        raise Stopped(signum)

    def disarm() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        previous.clear()

    main = threading.current_thread() is threading.main_thread()
    handled = unless_handled and signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
    if main and not handled:
        wanted = [sig for sig in (*SIGNALS, INTERRUPT) if signal.getsignal(sig) is not signal.SIG_IGN]
        previous.update({sig: signal.signal(sig, _raise) for sig in wanted})
    try:
        yield disarm
    finally:
        disarm()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """A stop signal waits until the block is done, then takes its course (its previous handler runs). Handlers,
    not a signal mask: a mask holds signals back for this thread only, and pyarrow's threads would take a SIGTERM
    sent to the process and die of it."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = [sig for sig in (*SIGNALS, INTERRUPT) if signal.getsignal(sig) is not signal.SIG_IGN]
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            signal.raise_signal(received[0])
