"""A stage's folder on disk, published atomically like a checkpoint.

    OUT/round_N/NAME.partial/   the stage at work (a training keeps its checkpoints here until it finishes)
    OUT/round_N/NAME/           the finished stage: its files and stage.json, renamed from NAME.partial/

`stage.json` holds what the stage was made from (`settings`: options, the content of its input files, the
fingerprints of the stages before it), when and how long it ran, its numbers (`result`) and a random `id` that
the stages after it record: a stage redone since (its folder removed by hand) invalidates the stages made from it.
A folder without `stage.json` is never a finished stage.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sftkit.errors import SftkitError

RECORD = "stage.json"
PENDING = "stage.pending.json"  # in a training's .partial folder: what it was started with, and time spent so far
INPUT = "input."  # settings keys naming an earlier stage (their differences follow from that stage's)


@dataclass(frozen=True)
class Stage:
    round: int
    name: str  # generate, grade, data, train, eval
    out: Path  # the run's folder

    @property
    def folder(self) -> Path:
        return self.out / f"round_{self.round}" / self.name

    @property
    def partial(self) -> Path:
        return self.folder.with_name(f"{self.name}.partial")

    @property
    def label(self) -> str:
        return f"round {self.round} {self.name}"


def fingerprint(settings: dict) -> str:
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SftkitError(f"{path} cannot be read ({exc}): remove that stage's folder to redo it") from None


def finished(stage: Stage) -> dict | None:
    """The stage's record when it is finished, else None."""
    return read(stage.folder / RECORD) if stage.folder.is_dir() else None


def differences(old: dict, new: dict) -> list[str]:
    """`key: old -> new` for every setting that changed (those naming an earlier stage left out: that stage's own
    differences say why)."""
    keys = sorted(k for k in set(old) | set(new) if not k.startswith(INPUT))
    missing = "(not set)"
    return [f"{k}: {old.get(k, missing)} -> {new.get(k, missing)}" for k in keys if old.get(k) != new.get(k)]


def _write(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(data, indent=2, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def start(stage: Stage, settings: dict, keep_partial: bool) -> float:
    """The .partial folder ready for work: a fresh one, or (`keep_partial`, a training) the one left by an earlier
    attempt, continued. Returns the seconds earlier attempts spent."""
    pending = read(stage.partial / PENDING) if keep_partial else None
    if not keep_partial:
        shutil.rmtree(stage.partial, ignore_errors=True)
    stage.partial.mkdir(parents=True, exist_ok=True)
    before = float(pending.get("seconds", 0.0)) if pending else 0.0
    _write(stage.partial / PENDING, {"settings": settings, "seconds": before})
    return before


def pending(stage: Stage) -> dict | None:
    """What an unfinished training was started with (None when there is no such attempt)."""
    return read(stage.partial / PENDING) if stage.partial.is_dir() else None


def add_time(stage: Stage, seconds: float) -> None:
    """An attempt that stopped (pre-empted): its time counts in the stage's wall time when it finishes."""
    record = pending(stage)
    if record is not None:
        record["seconds"] = float(record.get("seconds", 0.0)) + seconds
        _write(stage.partial / PENDING, record)


def publish(stage: Stage, settings: dict, inputs: dict[str, str], seconds: float, result: dict) -> dict:
    """stage.json written into the .partial folder, then the folder renamed to its final name."""
    if stage.folder.exists():
        raise SftkitError(f"{stage.folder} exists but is not a finished stage (no {RECORD}): move it away and rerun")
    record = {
        "stage": stage.name,
        "round": stage.round,
        "id": uuid.uuid4().hex,
        "settings": settings,
        "fingerprint": fingerprint(settings),
        "inputs": inputs,
        "seconds": round(seconds, 3),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "result": result,
    }
    (stage.partial / PENDING).unlink(missing_ok=True)
    _write(stage.partial / RECORD, record)
    _fsync_dir(stage.partial)
    os.rename(stage.partial, stage.folder)
    _fsync_dir(stage.folder.parent)
    return record
