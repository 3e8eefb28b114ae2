"""The processes of a run, seen through Accelerate's `PartialState`: who is rank 0, waiting, sharing decisions.

One rank-0 test for the whole package (`is_main`). Before the run's process group exists (while the config is
parsed) it reads the launcher's `RANK`; afterwards it asks Accelerate. Decisions that every rank must act on
together (which checkpoint to resume, whether an error stops the run) are taken once and shared, so that a
problem seen by one rank stops all of them with the same message, printed once, instead of leaving the others
waiting forever at the next collective.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from sftkit.errors import SftkitError

T = TypeVar("T")


def _state():
    """Accelerate's PartialState once the run set it up (TrainingArguments does), else None. Never creates it: no
    public API tells whether it exists (`accelerate.state.is_initialized` watches AcceleratorState), so the private
    `_shared_state` is read; pinned in tests/test_upstream.py."""
    from accelerate.state import PartialState

    return PartialState() if PartialState._shared_state else None


def distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    state = _state()
    return state.process_index if state is not None else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    state = _state()
    return state.num_processes if state is not None else int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """The one rank-0 test: rank 0 prints, writes files and decides."""
    return rank() == 0


def is_local_main() -> bool:
    """The first process of this node (the one that builds node-local things such as the examples cache)."""
    state = _state()
    return state.is_local_main_process if state is not None else int(os.environ.get("LOCAL_RANK", "0")) == 0


def cores() -> int:
    """CPU cores this process may use (its affinity mask: a SLURM allocation, taskset), for worker pools."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def process_gone(host: str | None, pid) -> bool:
    """True when process `pid` of `host` is known to have ended (only this host's processes can be checked): the
    owner of a lock file or of a temporary folder that it left behind."""
    import socket

    if host != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def close() -> None:
    """The end of a successful run on every rank: wait for all of them, then tear the process group down. Without
    the barrier a rank that is done first destroys its gloo/NCCL group while another still talks to it (3 of 7
    Accelerate runs aborted at exit that way); without the teardown torch warns about a leaked group."""
    if not distributed():
        return
    import torch.distributed as torch_dist

    torch_dist.barrier()
    torch_dist.destroy_process_group()


def print0(*args, **kwargs) -> None:
    if is_main():
        print(*args, **kwargs, flush=True)


def broadcast(obj: T) -> T:
    """Rank 0's value on every rank."""
    if not distributed():
        return obj
    from accelerate.utils import broadcast_object_list

    box = [obj]
    broadcast_object_list(box, from_process=0)
    return box[0]


def gather(obj: Any) -> list:
    """Every rank's value, on every rank, in rank order."""
    if not distributed():
        return [obj]
    import torch.distributed as dist

    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def on_main(fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 only and share its result; a SftkitError there is raised on every rank (any other
    exception too: rank 0 re-raises it, the others stop with a note pointing at rank 0's traceback)."""
    result, problem, crash = None, None, None
    if is_main():
        try:
            result = fn()
        except SftkitError as exc:
            problem = (str(exc), exc.exit_code)
        except BaseException as exc:
            crash = exc
            broadcast((None, None, f"{type(exc).__name__}: {exc}"))
            raise
    result, problem, crash = broadcast((result, problem, crash))
    if problem is not None:
        raise SftkitError(problem[0], shared=True, exit_code=problem[1])
    if crash is not None:
        raise RuntimeError(f"rank 0 failed ({crash}); see its traceback")
    return result


def agree(fn: Callable[[], T]) -> T:
    """Run `fn` on every rank; if it fails on any, every rank raises the first failure (naming the rank when it
    is not rank 0), so no rank is left waiting for the others. A user error is raised as itself everywhere; any
    other exception is re-raised (with its traceback) by the rank it happened on, the others stop too."""
    result, problem, crash = None, None, None
    try:
        result = fn()
    except SftkitError as exc:
        problem = (str(exc), True)
    except Exception as exc:
        crash, problem = exc, (f"{type(exc).__name__}: {exc}", False)
    problems = gather(problem)
    for r, found in enumerate(problems):
        if found is None:
            continue
        message, user = found
        if user:
            raise SftkitError(message if r == 0 else f"(on rank {r}) {message}", shared=True)
        if crash is not None:
            raise crash
        raise RuntimeError(f"rank {r} failed ({message}); see its traceback")
    return result


# ---- user errors: printed once (rank 0), exit code, no traceback ------------------------------------------------
def report(exc: SftkitError) -> None:
    """`error: ...` on stderr: by rank 0 for errors every rank raises (config, data, decisions shared by the
    ranks); by any rank for an error only it can see."""
    if is_main():
        print(f"error: {exc}", file=sys.stderr, flush=True)
    elif not exc.shared and world_size() > 1 and distributed():
        print(f"error (rank {rank()}): {exc}", file=sys.stderr, flush=True)


def leave(together: bool) -> None:
    """Tear the process group down before a rank exits on a user error. A rank that exits with its gloo/NCCL group
    alive aborts in the C++ destructors ("terminate called without an active exception", SIGABRT) and the launcher
    reports a crash; an error every rank raised (`shared`) waits for all of them first, so none is killed mid-exit."""
    if not distributed():
        return
    import torch.distributed as torch_dist

    try:
        if together:
            torch_dist.barrier()
    finally:
        torch_dist.destroy_process_group()


def user_errors(func: Callable[..., int]) -> Callable[..., int]:
    """Turn SftkitError into `error: ...` on stderr (once) and its exit code (2), instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs) -> int:
        try:
            return func(*args, **kwargs)
        except SftkitError as exc:
            report(exc)
            leave(exc.shared)
            return exc.exit_code

    return wrapper
