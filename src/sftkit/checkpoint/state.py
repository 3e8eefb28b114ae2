"""What a checkpoint holds, gathered from and loaded into the running model: weights, optimizer, RNG states.

Every rank takes part in gathering (FSDP needs it); the full, unsharded tensors end up on rank 0, on CPU, so a
checkpoint loads under any number of processes and any sharding (`set_model_state_dict` / `set_optimizer_state_dict`
scatter them again).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from sftkit.checkpoint.layout import MODEL, OPTIM, read
from sftkit.dist import distributed, gather
from sftkit.errors import SftkitError

GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)


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
    """Every rank's RNG states, in rank order (saved so that each rank resumes with its own)."""
    return gather(rng_state())


def trained_state_dict(model, lora: bool) -> dict:
    """Gathered to rank 0 on CPU (other ranks get {} under FSDP). LoRA: the adapter weights only, and the frozen
    base weights are not even gathered."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=lora)
    sd = get_model_state_dict(model, options=options)
    if lora:  # a tied weight (lm_head = embeddings) is not a parameter of its own and escapes the option above
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        sd = {k: v for k, v in sd.items() if k in trainable or ".lora_" in k}
    return sd


def tensor_bytes(obj, seen: set | None = None) -> int:
    """Bytes torch.save writes for the tensors in `obj`: a storage shared by several entries (tied embeddings)
    counts once, as it is written once."""
    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        key = (obj.untyped_storage().data_ptr(), obj.device.type)
        if key in seen:
            return 0
        seen.add(key)
        return obj.untyped_storage().nbytes()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(tensor_bytes(v, seen) for v in obj)
    return 0


def load_model(model, path: str | Path, lora: bool) -> None:
    sd = read(Path(path) / MODEL, "model weights", weights_only=True, mmap=True)
    options = StateDictOptions(full_state_dict=distributed(), strict=not lora)
    try:
        set_model_state_dict(model, sd, options=options)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise SftkitError(
            f"the weights in {Path(path) / MODEL} do not fit this model ({str(exc).splitlines()[0][:300]}): the "
            "checkpoint was trained from another model or with other LoRA settings. Resume it with the model it "
            "was trained from (trainer.resume_ignore_mismatch does not make different weights fit)."
        ) from None


def load_optimizer(model, optimizer, path: str | Path) -> None:
    osd = read(Path(path) / OPTIM, "an optimizer state", weights_only=True, mmap=True)
    if not osd:  # global_step_0: saved before the first step, nothing to restore
        return
    set_optimizer_state_dict(model, optimizer, osd, options=StateDictOptions(full_state_dict=distributed()))


def gather_optimizer(model, optimizer) -> dict:
    """Full optimizer state on rank 0, keyed by parameter name. {} before the first step: torch would otherwise
    initialise the state with a fake step (Adam's step count 1), changing the run that saved it."""
    if not getattr(optimizer, "optimizer", optimizer).state:
        return {}
    return get_optimizer_state_dict(model, optimizer, options=GATHER)
