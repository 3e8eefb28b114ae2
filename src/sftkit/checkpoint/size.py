"""How much disk a run's checkpoints take, checked before training (not hours in, at the first save)."""

from __future__ import annotations

from pathlib import Path

from sftkit.checkpoint.layout import check_disk as free_enough
from sftkit.errors import SftkitError

LORA_SHARE = 50  # LoRA adapters: a few % of the weights at most (1/50 of the parameters, generously)


def trained_params(n_params: int, lora: bool) -> int:
    return max(1, n_params // LORA_SHARE) if lora else n_params


def export_bytes(n_params: int, plan) -> int:
    """Disk the final Hugging Face export takes: the weights in the base model's dtype (bf16 -> 2 bytes), the
    adapter for LoRA, plus the merged model with merge_lora."""
    per = 2 if plan.bf16 else 4
    if not plan.lora:
        return n_params * per
    return trained_params(n_params, True) + (n_params * per if plan.model.merge_lora else 0)


def check_disk(plan, model) -> None:
    """Room for a checkpoint (fp32 trained weights + Adam's two moments) and the final export."""
    n = sum(p.numel() for p in model.parameters())
    need = trained_params(n, plan.lora) * (4 + 8) + export_bytes(n, plan)
    problem = free_enough(Path(plan.train.output_dir), need)
    if problem:
        raise SftkitError(problem)
