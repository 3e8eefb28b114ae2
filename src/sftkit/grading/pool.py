"""Many judgements at once: on worker processes, each bounded in time.

- `judge_in_time(gold, answer, seconds, question=None)`: `judge.judge` bounded by a timer (TIMEOUT when it fires).
- `grade_pairs(pairs, timeout, workers)`: verdicts for (gold, answer) or (gold, answer, question) pairs, in order,
  on worker processes (the question, where known, tells whether a list's order matters).
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import signal
import sys
import threading
from collections.abc import Sequence

from tqdm import tqdm

from sftkit.grading.judge import TIMEOUT, judge


class _Timeout(BaseException):  # BaseException: math-verify's `except Exception` must not swallow it
    pass


def _raise_timeout(signum, frame):
    raise _Timeout


def judge_in_time(gold: str, answer: str | None, seconds: float, question: str | None = None) -> str:
    """`judge` bounded by a SIGALRM timer (main thread only; elsewhere unbounded). TIMEOUT when it fires."""
    if seconds <= 0 or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return judge(gold, answer, question)
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, seconds)
            return judge(gold, answer, question)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Timeout:
        return TIMEOUT
    finally:
        signal.signal(signal.SIGALRM, previous)


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


Pair = tuple[str, str | None] | tuple[str, str | None, str | None]  # (gold, answer[, question]): None = unknown


def _judge_batch(batch: list[Pair], seconds: float) -> list[str]:
    return [judge_in_time(pair[0], pair[1], seconds, *pair[2:]) for pair in batch]


MIN_PARALLEL = 500  # below this many pairs, starting worker processes (~0.3 s) costs more than it saves
BATCH = 64  # pairs per task: one at a time, inter-process traffic would cost more than the grading
HARD_GRACE_S = 10.0  # a batch silent this long past its time limits is stuck where no signal reaches


def grade_pairs(pairs: Sequence[Pair], timeout: float, workers: int, progress: bool = True) -> list[str]:
    """Verdicts for (gold, answer[, question]) pairs, in order, on `workers` processes, each bounded by `timeout` s.

    Each pair is bounded twice: by a timer inside the worker (-> TIMEOUT), and, should a worker hang where the
    timer cannot reach (inside C code), by the parent: it replaces the pool, re-runs the stuck batch one pair
    per task, and counts the pair that hangs alone as TIMEOUT.
    """
    verdicts: list[str | None] = [None] * len(pairs)
    bar = tqdm(total=len(pairs), desc="grading", unit="answer", file=sys.stderr, disable=not progress)
    if workers <= 1 or len(pairs) < MIN_PARALLEL:
        for i, pair in enumerate(pairs):
            verdicts[i] = judge_in_time(pair[0], pair[1], timeout, *pair[2:])
            bar.update()
        bar.close()
        return verdicts
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:  # workers fork from a server that has imported sympy once: fast and thread-safe
        ctx.set_forkserver_preload(["sftkit.grading.pool"])
    size = max(1, min(BATCH, len(pairs) // (workers * 8)))  # >= 8 batches per worker balance the load
    todo = [list(range(i, min(i + size, len(pairs)))) for i in range(0, len(pairs), size)]
    while todo:
        with ctx.Pool(workers, initializer=_init_worker) as pool:
            tasks = ([pairs[i] for i in batch] for batch in todo)
            results = pool.imap(functools.partial(_judge_batch, seconds=timeout), tasks)
            for done, batch in enumerate(todo):
                try:
                    wait = len(batch) * timeout + HARD_GRACE_S if timeout > 0 else None
                    for i, verdict in zip(batch, results.next(timeout=wait)):
                        verdicts[i] = verdict
                    bar.update(len(batch))
                except mp.TimeoutError:  # leaving the `with` terminates the pool; the rest goes to a fresh one
                    if len(batch) == 1:
                        verdicts[batch[0]] = TIMEOUT
                        bar.update()
                    todo = [[i] for i in batch if len(batch) > 1] + todo[done + 1 :]
                    break
            else:
                todo = []
    bar.close()
    return verdicts
