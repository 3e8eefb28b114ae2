"""Building examples on all the machine's cores: the rows are read (and checked) in this process, in batches; the
batches are encoded (labels.py) by forked worker processes; the Arrow tables come back in order.

Why not `datasets.Dataset.map(num_proc=...)`: measured on 100k rows with the real Qwen vocabulary, 2 processes were
no faster than 1 (17 s vs 17 s) — each job pickles the tokenizer (a 151k-entry vocabulary) with dill, and the rows
must first be written to an Arrow table of their own. Forked workers inherit the encoder instead; at most
2 batches per worker are in flight, so memory stays flat however many rows there are. A worker dies with its
parent (`die_with`), and does not hold the run's lock (checkpoint/lock.py closes it in every forked child).
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
from collections import deque
from collections.abc import Iterable, Iterator

from sftkit.data.labels import IGNORE, Encoder, Rejected

_WORKER: tuple | None = None  # (encoder, max_length, truncation), inherited by the forked workers


def _init(encoder, max_length, truncation, parent: int | None = None) -> None:
    global _WORKER
    _WORKER = (encoder, max_length, truncation)
    if parent is not None:
        die_with(parent)
        # a stop signal is the parent's to act on (train.py stops the run); a forked worker would otherwise run the
        # parent's Python handler and die with a traceback. It ends quietly, as the pool's terminate() expects.
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_DFL)


def die_with(parent: int) -> None:
    """This forked worker is killed when its parent ends, however it ends (SIGKILL, SIGTERM, a crash): a worker
    left behind would keep ~400 MB and whatever the parent had open. Linux only (prctl PR_SET_PDEATHSIG); where
    that is missing, the pool's own shutdown is all there is."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent ended before the call above: nobody would send the signal
        os._exit(1)


OK = "ok"  # the status of a kept example


def encode_columns(batch: dict, encoder: Encoder, max_length: int | None, truncation: str):
    """A batch of rows -> an Arrow table of examples, with `status` ("ok", "dropped", "too long" or a bad-row kind)
    and `reason`. (Arrow arrays built here in one C++ conversion each: datasets would otherwise convert every
    list of ids row by row.)"""
    import pyarrow as pa

    ids, labels, length, trained, truncated, status, reason = [], [], [], [], [], [], []
    for ex in encoder.encode_batch(batch["prompt"], batch["response"], max_length, truncation, batch["id"]):
        rejected = isinstance(ex, Rejected)
        ids.append([] if rejected else ex.input_ids)
        labels.append([] if rejected else ex.labels)
        length.append(0 if rejected else len(ex.input_ids))
        trained.append(0 if rejected else len(ex.labels) - ex.labels.count(IGNORE))
        truncated.append(False if rejected else ex.truncated)
        status.append(ex.kind if rejected else OK)
        reason.append(ex.reason if rejected else "")
    ids_type = pa.list_(pa.int32())
    return pa.table({
        "id": pa.array(batch["id"], pa.string()), "where": pa.array(batch["where"], pa.string()),
        "input_ids": pa.array(ids, ids_type), "labels": pa.array(labels, ids_type),
        "length": pa.array(length, pa.int32()), "trained": pa.array(trained, pa.int32()),
        "truncated": pa.array(truncated, pa.bool_()), "status": pa.array(status, pa.string()),
        "reason": pa.array(reason, pa.string()),
    })  # fmt: skip


def _encode(batch: dict):
    encoder, max_length, truncation = _WORKER
    return encode_columns(batch, encoder, max_length, truncation)


def batches_of(rows: Iterable[dict], size: int) -> Iterator[dict]:
    """Row dicts -> column dicts of `size` rows."""
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield {k: [r[k] for r in batch] for k in batch[0]}
            batch = []
    if batch:
        yield {k: [r[k] for r in batch] for k in batch[0]}


def encoded_tables(batches: Iterable[dict], encoder, max_length, truncation, workers: int) -> Iterator:
    """Each batch's examples as an Arrow table, in order; on `workers` forked processes when more than one."""
    if workers <= 1 or "fork" not in mp.get_all_start_methods():
        _init(encoder, max_length, truncation)
        yield from map(_encode, batches)
        return
    was = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # in the workers: one thread each, and no fork warning
    # Ctrl-C while the pool forks and starts its threads was lost in 1 of 4 tries: SIGINT is held back until the
    # pool is whole (then raised here as usual). The workers keep it blocked: signals are the parent's to handle,
    # and the parent's `with pool` ends them.
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        initargs = (encoder, max_length, truncation, os.getpid())
        pool = mp.get_context("fork").Pool(workers, initializer=_init, initargs=initargs)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if was is None:
            os.environ.pop("TOKENIZERS_PARALLELISM")
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = was
    with pool:
        pending: deque = deque()
        for batch in batches:
            pending.append(pool.apply_async(_encode, (batch,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
