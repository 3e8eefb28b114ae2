"""`sftkit train --config RECIPE [overrides]` — also `accelerate launch ... -m sftkit.train` and `torchrun -m`.

Stages, each one function: plan the run (config/plan.py) -> check inputs and the output folder (before any
expensive work) -> choose the checkpoint to resume -> build or open the tokenized examples -> load the model ->
train -> save global_step_final, then its Hugging Face export, and loss.png. A pre-empted run (SIGTERM/SIGUSR1)
saves global_step_N and exits with code 75 instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sftkit import dist
from sftkit.config.recipe_arg import split_config
from sftkit.config.show import show_config
from sftkit.data.training_data import TrainingData, load_data
from sftkit.dist import user_errors

if TYPE_CHECKING:  # the plan's module imports TRL: only where a run starts (`--help` stays instant)
    from sftkit.config.plan import RunPlan


def setup_wandb(plan: RunPlan) -> None:
    """wandb without credentials: offline into the output folder, never fatal."""
    t = plan.train
    if "wandb" not in t.logger:
        return
    os.environ.setdefault("WANDB_PROJECT", t.project_name)
    os.environ.setdefault("WANDB_DIR", t.output_dir)
    netrc = Path("~/.netrc").expanduser()
    has_key = bool(os.environ.get("WANDB_API_KEY")) or (
        netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")
    )
    if not has_key and os.environ.get("WANDB_MODE") not in ("offline", "disabled"):
        os.environ["WANDB_MODE"] = "offline"
        dist.print0(
            f"wandb: no credentials found, logging offline into {t.output_dir}/wandb; "
            f"upload later with `wandb sync {t.output_dir}/wandb/offline-run-*`"
        )


def quiet_when_logged() -> None:
    """Progress bars only on a terminal: in a log file (SLURM, nohup) they leave `\r` fragments."""
    if sys.stderr.isatty():
        return
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    disable_progress_bars()
    hf_logging.disable_progress_bar()


def run(plan: RunPlan, callbacks=()):
    """Train as planned; returns the trainer (its model is the in-memory model at the end of training)."""
    from sftkit.checkpoint import resume
    from sftkit.checkpoint.lock import RunLock
    from sftkit.stopping import stop_at_once
    from sftkit.training import modeling

    lock = None
    try:
        with stop_at_once():  # nothing to save before training: a stop signal ends the run at once (exit 75, main)
            show_config(plan)
            quiet_when_logged()
            t = plan.train
            dist.agree(lambda: modeling.check_inputs(plan))
            resume_from, saved = resume.choose(t.resume_from_checkpoint, t.output_dir)
            lock = RunLock(t.output_dir)
            dist.on_main(lambda: (resume.guard_output_dir(t.output_dir, resume_from), lock.acquire()))
            trainer, total_steps = build(plan, resume_from, saved, callbacks)
        trainer.stop.install()  # from here a stop signal saves at the next step boundary (training/preempt.py)
        try:
            if saved is not None and saved["global_step"] >= total_steps:
                from sftkit.training.finish import finish_finished

                finish_finished(plan, trainer, resume_from, saved)
                return trainer
            trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
            from sftkit.training.finish import finish, stopped_in_training

            if trainer.preempted:
                stopped_in_training(plan, trainer)
            else:
                finish(plan, trainer)
        finally:
            trainer.stop.restore()  # the stop contract holds until the run's last file is written
        return trainer
    finally:
        if lock is not None:
            lock.release()


def build(plan: RunPlan, resume_from, saved, callbacks=()):
    """Tokenizer, examples, model and trainer of the run (the resumed checkpoint checked against them); the
    trainer and the run's number of optimizer steps."""
    from transformers import set_seed

    from sftkit.checkpoint import resume, size
    from sftkit.training import modeling

    t = plan.train
    tokenizer = modeling.load_tokenizer(plan.model.model_name_or_path, t.trust_remote_code)
    data = load_data(plan, tokenizer)
    modeling.check_token_budget(plan, data.train)
    groups = prompt_groups(plan, data)
    if resume_from is not None:
        current = {**plan.to_dict(), "prompt_groups": groups is not None}
        resume.check_compatible(resume_from, saved, current, data.train.identity(), t.resume_ignore_mismatch)
    setup_wandb(plan)
    set_seed(t.seed)
    model = modeling.load_model(plan)
    dist.on_main(lambda: size.check_disk(plan, model))
    trainer = make_trainer(plan, model, tokenizer, data, groups, callbacks)
    dist.print0(trainer.sharding.line())  # an FSDP config can run as DDP: say which (training/sharding.py)
    return trainer, plan.total_steps(len(data.train))


def prompt_groups(plan: RunPlan, data: TrainingData):
    """A prompt id per training example where shared-prompt packing runs (data.share_prompts and some prompt
    repeats; training/shared_prompts.py), else None. It changes which examples share a step, so a resume compares
    it (`prompt_groups` in the checkpoint's config)."""
    if not plan.data.share_prompts:
        return None
    from sftkit.training import shared_prompts

    return shared_prompts.prompt_groups(data.train.dataset)


def make_trainer(plan: RunPlan, model, tokenizer, data: TrainingData, groups=None, callbacks=()):
    from transformers import PrinterCallback, ProgressCallback

    from sftkit.data.dataset import column
    from sftkit.training import modeling, ulysses
    from sftkit.training.accuracy import AccuracyProbe
    from sftkit.training.callbacks import RunSchedule
    from sftkit.training.metrics import MetricsCallback
    from sftkit.training.trainer import SftkitTrainer

    m = plan.model
    if plan.lora:
        modeling.check_target_modules(model, m.target_modules)
    peft_config = (
        modeling.lora_config(m.lora_rank, m.lora_alpha, m.lora_dropout, m.target_modules) if plan.lora else None
    )
    if groups is not None:  # some prompt repeats (shared_prompts.py); set up before PEFT wraps the model
        from sftkit.training import shared_prompts

        shared_prompts.setup(model, plan.attn_implementation)
        dist.print0(f"data: {len(set(groups.tolist()))} prompts for {len(groups)} examples: shared-prompt packing "
                    "for micro-batches that hold several solutions of one (data.share_prompts)")  # fmt: skip
    from sftkit.training.lm_head import score_trained_positions_only

    score_trained_positions_only()  # TRL's fused head: prompt positions not projected on CPU either (lm_head.py)
    trainer = SftkitTrainer(
        model=model,
        args=plan.trainer_args,
        train_dataset=data.train.dataset,
        eval_dataset=data.val.dataset if data.val is not None else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        plan=plan,
        train_lengths=column(data.train.dataset, "length"),
        data_identity=data.train.identity(),
        sequence_parallel=ulysses.setup(plan, model) if plan.sp_size > 1 else None,
        accuracy=AccuracyProbe(plan, tokenizer) if plan.train.eval_accuracy_samples and data.val else None,
        prompt_groups=groups,
    )
    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    for cb in [
        RunSchedule(trainer, data.val is not None),
        MetricsCallback(plan.train.output_dir, not plan.train.disable_tqdm),
        *callbacks,
    ]:
        trainer.add_callback(cb)
    return trainer


@user_errors
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        from sftkit.config.help import text

        print(text())
        return 0
    from sftkit.stopping import EXIT_PREEMPTED, Stopped, stop_at_once

    recipe, rest = split_config(argv)
    try:
        with stop_at_once():
            from sftkit.config.plan import plan_run  # imports TRL: seconds

            plan = plan_run(recipe, rest)
        trainer = run(plan)
    except Stopped as stop:  # nothing to save before training: the run ends at once
        where = "" if dist.is_main() else f" (rank {dist.rank()})"
        print(f"\n{stop} received before training started{where}: nothing to save yet; run the same command "
              f"again to start (exit code {EXIT_PREEMPTED})", file=sys.stderr, flush=True)  # fmt: skip
        dist.leave(together=False)
        return EXIT_PREEMPTED
    dist.close()  # every rank done: a barrier, then the process group is torn down
    return EXIT_PREEMPTED if trainer.preempted else 0


if __name__ == "__main__":
    raise SystemExit(main())
