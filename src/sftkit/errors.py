"""User-facing errors: one clear message, no traceback, exit code 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable


class SftkitError(Exception):
    """A user mistake (bad file, key, row, batch size...). The message names it and says how to fix it."""


def closest(name: str, choices, n: int = 3) -> str:
    """'did you mean' text for an unknown name."""
    import difflib

    matches = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f" Did you mean: {', '.join(matches)}?" if matches else ""


def user_errors(func: Callable[..., int]) -> Callable[..., int]:
    """Turn SftkitError into `error: ...` on stderr and exit code 2, instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs) -> int:
        try:
            return func(*args, **kwargs)
        except SftkitError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return wrapper
