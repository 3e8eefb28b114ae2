"""The output convention of every command (docs/contracts.md §1 "Outputs"), checked before any work.

1. A command never writes over one of its own inputs: an output that is an input file (compared as real paths,
   so also through globs, folders, `..`, symlinks and hard links) is refused, even with `--overwrite`.
2. An output file that already exists is replaced only with `--overwrite` (last round's solutions are not lost to
   a repeated command line).
3. The output's folder is created and must be writable: a mistake there is an error now, not after an hour of work.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from sftkit.errors import SftkitError

FORMATS = {".parquet": "Parquet", ".jsonl": "JSON Lines"}


def same_file(a: Path, b: Path) -> bool:
    """One file under two spellings: equal real paths (symlinks, `..`), or the same inode (hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def refuse_inputs(out: Path, flag: str, inputs: Iterable[Path | str]) -> None:
    """SftkitError if `out` is one of `inputs` (already expanded to files)."""
    for path in inputs:
        if same_file(out, Path(path)):
            shown = f"{flag} {out}" if flag else str(out)
            same = "" if os.path.realpath(out) == os.path.realpath(path) else f" (the same file as {path})"
            raise SftkitError(
                f"{shown} is one of this command's inputs{same}: writing it would replace that input. "
                "Give an output path that is not an input."
            )


def refuse_existing(paths: Sequence[Path], flag: str, overwrite: bool) -> None:
    """SftkitError naming the outputs that exist already, unless `overwrite`."""
    existing = [str(p) for p in paths if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        what = existing[0] if len(existing) == 1 else ", ".join(existing)
        raise SftkitError(
            f"{flag} {what} already exist{'s' if len(existing) == 1 else ''}: add --overwrite to replace "
            f"{'it' if len(existing) == 1 else 'them'}, or give another path."
        )


def _writable_folder(folder: Path, flag: str, given: str, create: bool) -> None:
    blocker = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise SftkitError(f"{flag} {given}: {blocker} is a file, not a folder; give a path in a folder")
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SftkitError(f"{flag} {given}: cannot create the folder {folder} ({exc.strerror})") from None
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SftkitError(f"{flag} {given}: no permission to write there; give a path in a folder you can write to")


def check_output(
    path: str | Path,
    flag: str,
    suffix: str | None = ".parquet",
    inputs: Iterable[Path | str] = (),
    overwrite: bool = False,
) -> Path:
    """One output file: its format (`suffix`), not an input, new unless `overwrite`, its folder created and
    writable. Returns the path."""
    out = Path(path)
    if suffix and out.suffix != suffix:
        raise SftkitError(
            f"{flag} {path}: the output is {FORMATS.get(suffix, suffix)}; give a file name ending in {suffix}"
        )
    if out.is_dir():
        raise SftkitError(f"{flag} {path}: this is a folder; give a file name")
    refuse_inputs(out, flag, inputs)
    refuse_existing([out], flag, overwrite)
    _writable_folder(out.parent, flag, str(path), create=True)
    if out.exists() and not os.access(out, os.W_OK):
        raise SftkitError(f"{flag} {path}: no permission to write there; give a path in a folder you can write to")
    return out


def check_output_dir(
    folder: str | Path, flag: str, names: Sequence[str], inputs: Iterable[Path | str] = (), overwrite: bool = False
) -> dict[str, Path]:
    """The files `names` a command writes into `folder`: none an input, none existing unless `overwrite`, the
    folder a folder (not created here: nothing appears before the work succeeds). {name: path}."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SftkitError(f"{flag} {folder} exists and is not a folder")
    outs = {name: folder / name for name in names}
    inputs = list(inputs)
    for out in outs.values():
        refuse_inputs(out, f"{flag} {folder} would write {out.name}, but", inputs)
    refuse_existing(list(outs.values()), flag, overwrite)
    _writable_folder(folder, flag, str(folder), create=False)
    return outs


def distinct(outputs: dict[str, Path]) -> None:
    """SftkitError when two output flags name the same file."""
    seen: dict[str, str] = {}
    for flag, path in outputs.items():
        other = seen.setdefault(os.path.realpath(path), flag)
        if other != flag:
            raise SftkitError(f"{flag} names the same file as {other}: give two different files")
