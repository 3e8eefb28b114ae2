"""User-facing errors: one clear message, no traceback, exit code 2 — printed once, by rank 0."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable


class SftkitError(Exception):
    """A user mistake (bad file, key, row, batch size...). The message names it and says how to fix it.

    `shared=True`: every rank of the run raises it together (see `sftkit.dist.on_main` / `agree`), so only rank 0
    prints it. A rank-local error (`shared=False`) raised on another rank is printed by that rank, with its number.
    """

    def __init__(self, message: str, shared: bool = False, exit_code: int = 2):
        super().__init__(message)
        self.shared = shared
        self.exit_code = exit_code  # 2 for a user mistake; 3 for a run that diverged (training/nonfinite.py)


def closest(name: str, choices, n: int = 3) -> str:
    """'did you mean' text for an unknown name."""
    import difflib

    matches = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f" Did you mean: {', '.join(matches)}?" if matches else ""


def report(exc: SftkitError) -> None:
    """`error: ...` on stderr: by rank 0 for errors every rank raises (config, data, decisions shared by the
    ranks); by any rank for an error only it can see."""
    from sftkit import dist

    if dist.is_main():
        print(f"error: {exc}", file=sys.stderr, flush=True)
    elif not exc.shared and dist.world_size() > 1 and dist.distributed():
        print(f"error (rank {dist.rank()}): {exc}", file=sys.stderr, flush=True)


def user_errors(func: Callable[..., int]) -> Callable[..., int]:
    """Turn SftkitError into `error: ...` on stderr (once) and its exit code (2), instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs) -> int:
        try:
            return func(*args, **kwargs)
        except SftkitError as exc:
            report(exc)
            return exc.exit_code

    return wrapper
