"""User-facing errors: one clear message, no traceback, exit code 2 (printed once, by rank 0: dist.user_errors)."""

from __future__ import annotations


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
