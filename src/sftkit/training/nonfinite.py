"""A step whose loss or gradient norm is NaN/inf (docs/contracts.md §5): the run stops before the optimizer step, or,
with `nonfinite_step=skip`, that optimizer step is skipped. Either way no non-finite weight is ever stepped into, saved
or exported, and every rank decides alike (the gradient norm is global; the loss flags are all-reduced).
"""

from __future__ import annotations

import math

import torch

from sftkit import dist
from sftkit.checkpoint import layout
from sftkit.errors import SftkitError

EXIT_DIVERGED = 3


def finite(value) -> bool:
    value = value.item() if isinstance(value, torch.Tensor) else value
    return value is None or math.isfinite(value)


def check_step(trainer, model, loss_finite: bool, grad_norm) -> bool:
    """After the backward passes of a step, before its optimizer step. True when the step may go on; False when it
    is skipped (its gradients are dropped: optimizers leave parameters without gradients untouched)."""
    flag = torch.tensor(0 if loss_finite else 1, device=trainer.args.device)
    if dist.distributed():
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    if not flag.item() and finite(grad_norm):
        return True
    step = trainer.state.global_step + 1
    what = f"step {step}: the loss is {'not finite' if flag.item() else 'finite'}, grad_norm={_num(grad_norm)}"
    if trainer.plan.train.nonfinite_step == "skip":
        model.zero_grad(set_to_none=True)
        trainer.skipped_at.append(step)
        if flag.item():
            trainer.nonfinite_loss_at.append(step)
        dist.print0(f"warning: {what}; optimizer step skipped (nonfinite_step=skip; {trainer.skipped_steps} so far)")
        return False
    raise SftkitError(
        f"the run diverged at {what}. It stops before this optimizer step: no non-finite weights are saved or "
        f"exported; the last checkpoint is {_last_checkpoint(trainer)}. Lower the learning rate (optim.lr), clip "
        "gradients (optim.clip_grad=1.0) or add warm-up, then resume from that checkpoint or start afresh; "
        "nonfinite_step=skip skips such steps instead.",
        shared=True,
        exit_code=EXIT_DIVERGED,
    )


def check_final_validation(trainer) -> None:
    """Before global_step_final: a validation loss that is not finite at the last step (without validation: the
    last step's training loss, skipped with nonfinite_step=skip) means the final weights, finite as they are, give
    non-finite losses: the run is not a success, and nothing final is saved or exported."""
    step = trainer.state.global_step
    losses = [e["eval_loss"] for e in trainer.state.log_history if e.get("step") == step and "eval_loss" in e]
    if losses:
        if finite(losses[-1]):
            return
        what = f"validation loss at its last step ({step}) is {losses[-1]}"
    elif step in trainer.nonfinite_loss_at:  # no validation: the last step's own loss tells
        what = f"training loss at its last step ({step}) is not finite"
    else:
        return
    skipped = f" ({trainer.skipped_steps} optimizer steps were skipped)" if trainer.skipped_steps else ""
    raise SftkitError(
        f"the run diverged: the {what}{skipped}. global_step_final is not written and nothing is exported; the "
        f"last checkpoint is {_last_checkpoint(trainer)}. Lower the learning rate (optim.lr), clip gradients "
        "(optim.clip_grad=1.0) or add warm-up, then resume from that checkpoint or start afresh.",
        shared=True,
        exit_code=EXIT_DIVERGED,
    )


def window_loss(trainer, logs: dict, since: int) -> None:
    """The logged training loss of steps since..global_step: None (null in metrics.jsonl) when every one of them was
    skipped, where transformers' NaN filter would log 0 or a stale average as if the model had trained."""
    steps = trainer.state.global_step - since
    if (
        "loss" in logs
        and steps > 0
        and sum(since < s <= trainer.state.global_step for s in trainer.skipped_at) == steps
    ):
        logs["loss"] = None


def _last_checkpoint(trainer) -> str:
    latest = layout.find_latest(trainer.plan.train.output_dir)
    return str(latest) if latest is not None else "none (no checkpoint was written)"


def _num(value) -> str:
    value = value.item() if isinstance(value, torch.Tensor) else value
    return "not computed" if value is None else f"{value:.4g}"
