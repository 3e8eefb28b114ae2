"""The `global_step_N/` checkpoint layout on disk (docs/contracts.md §5): names, atomic writes, finding and pruning.

    OUTPUT_DIR/global_step_{N|final}/
        model.pt        full, unsharded state dict of the trained weights (adapter weights only for LoRA)
        optimizer.pt    full optimizer state, keyed by parameter name (loads under any sharding / world size)
        scheduler.pt    learning-rate scheduler state
        train_state.pt  global step, epoch, data position and fingerprint, RNG states of every rank, resolved
                        config, version
        trainer_state.json  transformers' TrainerState (log history; what Trainer's exact-resume logic reads)
        huggingface/    global_step_final only: from_pretrained-ready folder (export.py), written after the rest
    OUTPUT_DIR/latest   name of the newest complete checkpoint

Rank 0 writes into `.tmp-global_step_N`, fsyncs, renames, then updates `latest`. A crash or a full disk mid-save
leaves earlier checkpoints intact and no half-written folder. (What goes into the files: state.py.)
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import torch

from sftkit.errors import SftkitError

MODEL, OPTIM, SCHED, STATE, HF_STATE = (
    "model.pt",
    "optimizer.pt",
    "scheduler.pt",
    "train_state.pt",
    "trainer_state.json",
)
REQUIRED = (MODEL, OPTIM, SCHED, STATE, HF_STATE)
HF_DIR = "huggingface"
NUMBERED = re.compile(r"^global_step_(\d+)$")


def check_disk(folder: Path, need: int) -> str | None:
    free = shutil.disk_usage(folder).free
    if free < need * 1.05 + (8 << 20):  # 5% and 8 MiB for what else a save writes
        return (
            f"not enough disk space for a checkpoint in {folder}: it needs about {need / 2**30:.2f} GiB and "
            f"{free / 2**30:.2f} GiB are free. Free some space, lower trainer.max_ckpt_to_keep, or point "
            "trainer.default_local_dir (output_dir) at a larger disk. Earlier checkpoints are intact."
        )
    return None


def _fsync_save(obj, path: Path) -> None:
    with open(path, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_text(text: str, path: Path) -> None:
    with open(path, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    _fsync_text(text, tmp)
    os.replace(tmp, path)


def _publish(output_dir: str | Path, name: str, fill) -> Path:
    """Rank 0: OUTPUT/name made atomically: `fill(tmp)` writes into `.tmp-name`, fsync, rename (an existing `name` is
    moved aside first), then `latest`. On an OSError (a full disk) the partial folder goes and a clear error says the
    earlier checkpoints are intact."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    final, tmp = out / name, out / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        fill(tmp)
        _fsync_dir(tmp)
        if final.exists():  # re-saving a name (global_step_final of a resumed run): move the old one aside first
            trash = out / f".old-{name}"
            shutil.rmtree(trash, ignore_errors=True)
            os.rename(final, trash)
            os.rename(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _fsync_dir(out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SftkitError(f"could not write checkpoint {final}: {exc}. Earlier checkpoints are intact.") from None
    write_atomic_text(out / "latest", name + "\n")
    return final


def write_checkpoint(output_dir: str | Path, name: str, files: dict[str, object]) -> Path:
    """Rank 0: write `files` ({filename: object}) into OUTPUT/name atomically."""

    def fill(tmp: Path) -> None:
        for filename, obj in files.items():
            if isinstance(obj, str):
                _fsync_text(obj, tmp / filename)
            else:
                _fsync_save(obj, tmp / filename)

    return _publish(output_dir, name, fill)


def copy_checkpoint(source: Path, output_dir: str | Path, name: str) -> Path:
    """Rank 0: the files of a complete checkpoint copied to OUTPUT/name, atomically (e.g. global_step_final from the
    last numbered checkpoint of a run stopped before its final save)."""

    def fill(tmp: Path) -> None:
        for filename in REQUIRED:
            shutil.copyfile(source / filename, tmp / filename)
            with open(tmp / filename, "rb") as fh:
                os.fsync(fh.fileno())

    return _publish(output_dir, name, fill)


# ---- reading the files of a checkpoint ----------------------------------------------------------------------
def read(path: Path, what: str, weights_only: bool, mmap: bool = False):
    """torch.load with a message naming the file when it is truncated or not a checkpoint file at all."""
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=mmap)
    except Exception as exc:  # truncated zip, garbage, pickle errors: torch raises many kinds
        raise SftkitError(
            f"{path} cannot be read as {what} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}): the file is "
            "damaged or was not written by sftkit. Resume from an earlier checkpoint (or "
            "trainer.resume_from_checkpoint=auto, which takes the newest complete one)."
        ) from None


def load_state(path: str | Path) -> dict:
    state = read(Path(path) / STATE, "a train state", weights_only=False)
    if not isinstance(state, dict) or "global_step" not in state:
        raise SftkitError(f"{Path(path) / STATE} is not an sftkit train state (no global_step in it).")
    return state


def step_of(path: Path) -> int:
    m = NUMBERED.match(path.name)
    return int(m.group(1)) if m else -1


def missing(path: Path) -> list[str]:
    """The files of REQUIRED that `path` lacks (an interrupted save or copy)."""
    return [f for f in REQUIRED if not (path / f).is_file()]


def is_complete(path: Path) -> bool:
    return path.is_dir() and not missing(path)


def numbered_checkpoints(output_dir: str | Path) -> list[Path]:
    out = Path(output_dir)
    if not out.is_dir():
        return []
    return sorted((p for p in out.iterdir() if NUMBERED.match(p.name) and is_complete(p)), key=step_of)


def saved_at(path: Path) -> float:
    """When a checkpoint was written: recorded in train_state.pt (the file's time for older checkpoints)."""
    try:
        return float(load_state(path).get("saved_at") or (path / STATE).stat().st_mtime)
    except Exception:  # unreadable: treat as oldest
        return 0.0


def find_latest(output_dir: str | Path) -> Path | None:
    """The most recently written complete checkpoint. Not the highest step: a folder may hold an older run's
    checkpoints. Not just `latest`: a crash between the rename of a new checkpoint and the update of `latest`
    leaves a newer complete one behind it. A `global_step_final` moved aside by an interrupted overwrite counts."""
    out = Path(output_dir)
    if not out.is_dir():
        return None
    found = [
        p
        for p in out.iterdir()
        if (p.name.startswith("global_step_") or p.name.startswith(".old-global_step_")) and is_complete(p)
    ]
    return max(found, key=lambda p: (saved_at(p), not p.name.startswith("."))) if found else None


def prune(output_dir: str | Path, keep: int | None, keep_also: Path | None = None) -> list[Path]:
    """After a save: remove the oldest (by write time) numbered checkpoints beyond the newest `keep`. Never
    global_step_final, never the checkpoint just written."""
    if not keep or keep < 1:
        return []
    ranked = sorted(numbered_checkpoints(output_dir), key=saved_at, reverse=True)
    old = [p for p in ranked[keep:] if keep_also is None or p.resolve() != Path(keep_also).resolve()]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    return old


def holds_checkpoints(folder: str | Path) -> list[Path]:
    """The global_step_* folders (complete or not) in `folder`: another run's work, not to be overwritten."""
    out = Path(folder)
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if p.is_dir() and p.name.startswith("global_step_"))
