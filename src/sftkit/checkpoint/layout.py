"""The `global_step_N/` checkpoint layout (SPEC §5): atomic write, FSDP gather, load, resume state.

    OUTPUT_DIR/global_step_{N|final}/
        model.pt        full, unsharded state dict of the trained weights (adapter weights only for LoRA)
        optimizer.pt    full optimizer state, keyed by parameter name (loads under any sharding / world size)
        scheduler.pt    learning-rate scheduler state
        train_state.pt  global step, epoch, data position, RNG states of every rank, resolved config, version
        trainer_state.json  transformers' TrainerState (log history; what Trainer's exact-resume logic reads)
        huggingface/    global_step_final only: from_pretrained-ready folder (see export.py)
    OUTPUT_DIR/latest   name of the newest complete checkpoint

Every rank takes part in gathering (FSDP needs it); rank 0 writes into `.tmp-global_step_N`, fsyncs, renames, then
updates `latest`. A crash or a full disk mid-save leaves earlier checkpoints intact and no half-written folder.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from sftkit.errors import SftkitError

MODEL, OPTIM, SCHED, STATE, HF_STATE = (
    "model.pt",
    "optimizer.pt",
    "scheduler.pt",
    "train_state.pt",
    "trainer_state.json",
)
REQUIRED = (MODEL, OPTIM, SCHED, STATE, HF_STATE)
NUMBERED = re.compile(r"^global_step_(\d+)$")
GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    if distributed():
        dist.barrier()


def broadcast(obj):
    """Rank 0's value on every rank (a decision all ranks must act on together, e.g. raising an error)."""
    if not distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.random.set_rng_state(state["cpu"])
    if torch.cuda.is_available() and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


def all_rng_states() -> list[dict]:
    if not distributed():
        return [rng_state()]
    states = [None] * dist.get_world_size()
    dist.all_gather_object(states, rng_state())
    return states


def trained_state_dict(model, lora: bool) -> dict:
    """Gathered to rank 0 on CPU (other ranks get {} under FSDP). LoRA: the adapter weights only, and the frozen
    base weights are not even gathered."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=lora)
    sd = get_model_state_dict(model, options=options)
    if lora:  # a tied weight (lm_head = embeddings) is not a parameter of its own and escapes the option above
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        sd = {k: v for k, v in sd.items() if k in trainable or ".lora_" in k}
    return sd


def tensor_bytes(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def check_disk(folder: Path, need: int) -> str | None:
    free = shutil.disk_usage(folder).free
    if free < need * 1.05 + (64 << 20):
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
    tmp.write_text(text)
    with open(tmp) as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_checkpoint(output_dir: str | Path, name: str, files: dict[str, object], extra=None) -> Path:
    """Rank 0: write `files` ({filename: object}) into OUTPUT/name atomically. `extra(tmp_dir)` may add more."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    final, tmp = out / name, out / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for filename, obj in files.items():
            if isinstance(obj, str):
                _fsync_text(obj, tmp / filename)
            else:
                _fsync_save(obj, tmp / filename)
        if extra is not None:
            extra(tmp)
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


def step_of(path: Path) -> int:
    m = NUMBERED.match(path.name)
    return int(m.group(1)) if m else -1


def is_complete(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in REQUIRED)


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


def load_state(path: str | Path) -> dict:
    return torch.load(Path(path) / STATE, map_location="cpu", weights_only=False)


def load_model(model, path: str | Path, lora: bool) -> None:
    sd = torch.load(Path(path) / MODEL, map_location="cpu", weights_only=True, mmap=True)
    options = StateDictOptions(full_state_dict=distributed(), strict=not lora)
    set_model_state_dict(model, sd, options=options)


def load_optimizer(model, optimizer, path: str | Path) -> None:
    osd = torch.load(Path(path) / OPTIM, map_location="cpu", weights_only=True, mmap=True)
    if not osd:  # global_step_0: saved before the first step, nothing to restore
        return
    set_optimizer_state_dict(model, optimizer, osd, options=StateDictOptions(full_state_dict=distributed()))


def gather_optimizer(model, optimizer) -> dict:
    """Full optimizer state on rank 0, keyed by parameter name. {} before the first step: torch would otherwise
    initialise the state with a fake step (Adam's step count 1), changing the run that saved it."""
    if not getattr(optimizer, "optimizer", optimizer).state:
        return {}
    return get_optimizer_state_dict(model, optimizer, options=GATHER)
