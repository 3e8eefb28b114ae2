"""The recipe on a command line: `--config PATH` (also `--config_file`, `--recipe`, and the `=PATH` forms), taken
out of the arguments; what is left are the overrides. Read by `sftkit train` and `sftkit inspect`."""

from __future__ import annotations

from sftkit.errors import SftkitError


def split_config(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the recipe path or None, the other arguments in order)."""
    argv = list(argv)
    for flag in ("--config", "--config_file", "--recipe"):
        if flag in argv:
            i = argv.index(flag)
            if i + 1 >= len(argv):
                raise SftkitError(f"{flag} needs a recipe path, e.g. --config recipes/tiny.yaml")
            return argv[i + 1], argv[:i] + argv[i + 2 :]
        for i, a in enumerate(argv):
            if a.startswith(flag + "="):
                return a.split("=", 1)[1], argv[:i] + argv[i + 1 :]
    return None, argv
