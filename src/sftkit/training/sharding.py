"""Which sharding actually runs — FSDP2, FSDP1, DDP or none — read from Accelerate once the Trainer has built it.

An accelerate config may ask for FSDP (`accelerate_configs/fsdp4.yaml`) and still not get it: Accelerate keeps the
FSDP plugin only for GPU-like multi-process runs (`AcceleratorState.__init__`, the condition pinned in
tests/test_upstream.py). On a CPU-only machine it trains with DDP, with one process with no sharding at all, and
says nothing. sftkit does not refuse such a run (it is how the central command is dry-run on a laptop or in CI);
it says, in its start-up lines and in every checkpoint's train state, which sharding runs and why it is not the
one asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Sharding:
    kind: str  # "FSDP2", "FSDP1", "DDP" or "none"
    ranks: int
    asked: str | None  # what the launch asked for ("FSDP2" from an FSDP accelerate config), when it differs

    def __str__(self) -> str:
        return f"{self.kind} over {self.ranks} ranks" if self.kind != "none" else "none"

    def line(self) -> str:
        """The start-up line: `sharding: FSDP2 over 4 ranks`, with the reason when the launch asked for more."""
        text = f"sharding: {self}"
        if self.asked is None:
            return text
        if self.ranks < 2:
            why = f"one process: {self.asked} needs 2 or more (accelerate launch --num_processes N)"
        else:
            why = (
                f"Accelerate runs {self.asked} only on GPUs (or other accelerators); here every rank holds the whole "
                "model, optimizer and gradients"
            )
        return f"{text} — the accelerate config asks for {self.asked}, not run: {why}"


def asked(environ: Mapping[str, str] = os.environ) -> str | None:
    """What `accelerate launch` asked for: "FSDP2" / "FSDP1" from an FSDP config (its ACCELERATE_USE_FSDP and
    FSDP_VERSION variables), else None."""
    if environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        return None
    return f"FSDP{environ.get('FSDP_VERSION', '1')}"


def running(accelerator, environ: Mapping[str, str] = os.environ) -> Sharding:
    """The sharding of this run, from the Trainer's Accelerator (before or after it prepared the model)."""
    from accelerate.utils import DistributedType

    state = accelerator.state
    ranks = state.num_processes
    if state.distributed_type == DistributedType.FSDP and getattr(state, "fsdp_plugin", None) is not None:
        kind = f"FSDP{state.fsdp_plugin.fsdp_version}"
    elif state.distributed_type == DistributedType.DEEPSPEED:
        kind = "DeepSpeed"
    else:
        kind = "DDP" if ranks > 1 else "none"
    wanted = asked(environ)
    return Sharding(kind, ranks, wanted if wanted not in (None, kind) else None)
