"""The end of a run: final validation, `global_step_final`, then its Hugging Face export, and loss.png.

Also what a resumed run does when its checkpoint had already trained every step (a SLURM requeue of a finished
job, or a run pre-empted at its last step or stopped during its final save): it trains nothing, and only writes
what is missing of the final checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

from sftkit import dist
from sftkit.checkpoint import layout, state
from sftkit.training import nonfinite

RESUME_HINT = "SFTKIT_RESUME_HINT"  # how to continue, in the words of a parent that resumes the run itself (rounds)


def finish(plan, trainer) -> Path:
    """A stop asked during the end (SIGTERM/SIGUSR1/Ctrl-C, checked between its parts) still leaves a resumable
    run: before the final validation, global_step_N is saved (`auto` then writes the final checkpoint, validating
    it); after it, global_step_final is saved and only the Hugging Face export is left for `auto` (or
    `sftkit export`) to write. Either way the run exits with 75 (pre-empted)."""
    step, device = trainer.state.global_step, trainer.args.device
    evaluated = any(e.get("step") == step and "eval_loss" in e for e in trainer.state.log_history)
    if trainer.eval_dataset is not None and not evaluated:
        if trainer.stop.agreed(device):
            return _stopped(trainer, trainer.save_checkpoint(f"global_step_{step}"), "before the final validation")
        trainer.evaluate()
    nonfinite.check_final_validation(trainer)
    if trainer.skipped_steps:
        dist.print0(
            f"warning: {trainer.skipped_steps} of {step} optimizer steps were skipped (nonfinite_step=skip): their "
            "losses or gradients were not finite"
        )
    path = trainer.save_checkpoint("global_step_final")
    if trainer.stop.agreed(device):
        return _stopped(trainer, path, "before the Hugging Face export")
    return export_and_report(plan, path)


def stopped_in_training(plan, trainer) -> None:
    """A stop during the training loop: the checkpoint the step boundary saved, named for the requeue."""
    latest = layout.find_latest(plan.train.output_dir)
    _stopped(trainer, latest, f"at step {trainer.state.global_step} (pre-empted, exit code 75)")


def _stopped(trainer, path: Path, when: str) -> Path:
    trainer.preempted = True
    hint = os.environ.get(RESUME_HINT) or "run again with trainer.resume_from_checkpoint=auto to finish the run"
    dist.print0(f"stopped {when}: {path} is saved; {hint}")
    return path


def finish_finished(plan, trainer, resume_from: Path, saved: dict) -> Path:
    out = Path(plan.train.output_dir)
    step = saved["global_step"]
    if resume_from.name == "global_step_final" and (resume_from / layout.HF_DIR).is_dir():
        dist.print0(f"done already: {resume_from} is the final checkpoint of this run (step {step}); nothing to train")
        return resume_from
    if resume_from.name != "global_step_final":
        dist.print0(f"{resume_from} holds the run's last step ({step}): writing global_step_final, training nothing")
        state.load_model(trainer.model, resume_from, plan.lora)
        trainer.state.global_step = step
        if trainer.eval_dataset is not None:
            trainer.evaluate()
            nonfinite.check_final_validation(trainer)
        resume_from = dist.on_main(lambda: layout.copy_checkpoint(resume_from, out, "global_step_final"))
    return export_and_report(plan, resume_from)


def export_and_report(plan, path: Path) -> Path:
    from sftkit.checkpoint.save import export_final

    dist.on_main(lambda: export_final(path, plan.model.merge_lora))
    if dist.is_main():
        from sftkit.training.metrics import plot_loss

        metrics = Path(plan.train.output_dir) / "metrics.jsonl"
        png = plot_loss(metrics, metrics.with_name("loss.png")) if metrics.exists() else None
        print(
            f"done: checkpoint {path}\n      Hugging Face folder {path / layout.HF_DIR}\n      metrics {metrics}"
            + (f"\n      loss curve {png}" if png else "")
        )
    return path
