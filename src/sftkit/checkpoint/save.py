"""Saving a checkpoint of the running training (every rank calls it) and the final Hugging Face export.

Every rank gathers (FSDP needs all of them); rank 0 checks the disk, writes `global_step_N` atomically and prunes;
its outcome — the path, or the error — is shared, so a failed save stops every rank with one message instead of
leaving the others waiting. The export of `global_step_final` comes after the core checkpoint is in place, into
its own temporary folder: a failed export never touches model.pt / optimizer.pt.
"""

from __future__ import annotations

import time
from pathlib import Path

from sftkit import __version__, dist
from sftkit.checkpoint import base_model, layout, state
from sftkit.errors import SftkitError


def save_checkpoint(trainer, name: str) -> Path:
    """Write `name` (global_step_N, global_step_final) for the trainer's current state. All ranks call this."""
    plan = trainer.plan
    model_sd = state.trained_state_dict(trainer.model, plan.lora)
    optim_sd = state.gather_optimizer(trainer.model, trainer.optimizer) if trainer.optimizer is not None else {}
    rngs = state.all_rng_states()
    out = Path(plan.train.output_dir)

    def write() -> Path:
        bad = [key for key, tensor in model_sd.items() if not bool(tensor.isfinite().all())]
        if bad:  # a step's update overflowed (its gradients were finite: training/nonfinite.py let it pass)
            latest = layout.find_latest(out)
            raise SftkitError(
                f"the run diverged: after step {trainer.state.global_step} {len(bad)} weight tensors hold NaN/inf "
                f"(e.g. {bad[0]}); {name} is not written, and no non-finite weights are ever saved or exported. "
                f"The last checkpoint is {latest or 'none'}. Lower the learning rate (optim.lr) or clip gradients "
                "(optim.clip_grad=1.0).",
                exit_code=3,
            )
        out.mkdir(parents=True, exist_ok=True)
        problem = layout.check_disk(out, state.tensor_bytes(model_sd) + state.tensor_bytes(optim_sd))
        if problem:
            raise SftkitError(problem)
        files = {
            layout.MODEL: model_sd,
            layout.OPTIM: optim_sd,
            layout.SCHED: trainer.lr_scheduler.state_dict() if trainer.lr_scheduler is not None else {},
            layout.STATE: train_state(trainer, rngs),
            layout.HF_STATE: trainer.state_json(),
        }
        path = layout.write_checkpoint(out, name, files)
        layout.prune(out, plan.train.max_ckpt_to_keep, keep_also=path)
        return path

    return dist.on_main(write)


def train_state(trainer, rngs: list[dict]) -> dict:
    plan = trainer.plan
    return {
        "global_step": trainer.state.global_step,
        "epoch": trainer.state.epoch,
        # Position in the data: the steps are fixed by (seed, epoch, global batch, lengths), so the global step
        # says exactly which examples come next, whatever the number of processes.
        "samples_seen": trainer.state.global_step * plan.global_batch,
        "finished": trainer.state.global_step >= trainer.state.max_steps,
        "world_size": plan.world_size,
        "sharding": str(trainer.sharding),  # FSDP2 over 4 ranks / DDP over 2 ranks / none
        "rng_states": rngs,
        "config": {**plan.to_dict(), "prompt_groups": trainer.share_prompts},  # compared on resume
        "base_model": base_model.fingerprint(plan.model.model_name_or_path),  # compared on resume
        "data": trainer.data_identity,
        "sftkit_version": __version__,
        "saved_at": time.time(),
    }


def export_final(path: Path, merge_lora: bool) -> Path:
    """Rank 0: `path/huggingface` from the complete checkpoint `path`, via `path/.tmp-huggingface`."""
    from sftkit.checkpoint.export import export_checkpoint

    final = path / layout.HF_DIR
    try:
        return export_checkpoint(path, final, merge_lora, overwrite=True)
    except Exception as exc:  # export_checkpoint has removed its temporary folder; say what is intact and what to do
        raise SftkitError(
            f"the Hugging Face export into {final} failed ({exc}). The checkpoint {path} itself is complete and "
            f"intact (model.pt, optimizer.pt, ...). Free some disk space, then redo the export with "
            f"`sftkit export {path} --output {final}`" + (" --merge-lora" if merge_lora else "") + "."
        ) from None
