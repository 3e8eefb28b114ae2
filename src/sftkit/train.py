"""`sftkit train --config RECIPE [overrides]` — also `accelerate launch ... -m sftkit.train` and `torchrun -m`.

Stages, each one function: resolve the config -> check inputs (before any expensive work) -> build the datasets
-> load the model -> train -> save global_step_final (+ huggingface/) and loss.png.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sftkit.config.parse import Resolved, resolve
from sftkit.errors import user_errors

HELP = """usage: sftkit train --config RECIPE [overrides...]

Overrides: `--learning_rate 1e-5`, `learning_rate=1e-5`, or verl's `optim.lr=1e-5`. Precedence, lowest to
highest: recipe -> environment (MODEL_NAME, TRAIN_FILE, VAL_FILE, OUTPUT_DIR, BATCH_SIZE, LEARNING_RATE, EPOCHS,
MAX_LENGTH, LORA_RANK, LORA_ALPHA) -> command line. Every key (field) follows; verl keys after it.
"""


def print_help() -> None:
    from sftkit.config.parse import make_parser
    from sftkit.verl.keys import VERL_KEYS

    print(HELP)
    print(make_parser().format_help())
    print("verl keys:")
    for key, name in VERL_KEYS.items():
        print(f"  {key:<40} -> {name}")


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def show_config(r: Resolved) -> None:
    if not is_main():
        return
    t, d, m = r.train, r.data, r.model
    method = f"LoRA rank {m.lora_rank} alpha {m.lora_alpha}" if m.lora_rank else "full fine-tuning"
    scheduler = getattr(t.lr_scheduler_type, "value", t.lr_scheduler_type)
    lines = [
        "resolved config:",
        f"  model: {m.model_name_or_path} ({method})",
        f"  train_files: {d.train_files}  val_files: {d.val_files}",
        f"  keys: prompt={d.prompt_key} response={d.response_key}  max_length: {t.max_length} "
        f"truncation: {d.truncation}",
        f"  world_size: {r.world_size}  micro_batch_per_gpu: {t.per_device_train_batch_size}  "
        f"gradient_accumulation: {t.gradient_accumulation_steps}  global_batch: {r.global_batch}",
        f"  lr: {t.learning_rate} scheduler: {scheduler} warmup: {t.warmup_steps}  epochs: {t.num_train_epochs} "
        f"max_steps: {t.max_steps}  seed: {t.seed}",
        f"  precision: {'bf16 mixed' if t.bf16 else 'fp32'}  attention: "
        f"{'flash_attention_2' if m.use_flash_attention else m.attn_implementation or 'sdpa'}  "
        f"activation_checkpointing: {t.activation_checkpointing}  padding_free: {d.use_remove_padding}",
        f"  output_dir: {t.output_dir}  save_steps: {t.save_steps}  eval_steps: {t.eval_steps}  logger: {t.logger}",
    ]
    resolved = r.to_dict()
    lines += [f"  {k} = {resolved.get(k)!r}   [{origin}]" for k, origin in r.sources.items()]
    print("\n".join(lines), flush=True)


def setup_wandb(r: Resolved) -> None:
    """wandb without credentials: offline into the output folder, never fatal."""
    if "wandb" not in r.train.logger:
        return
    os.environ.setdefault("WANDB_PROJECT", r.train.project_name)
    os.environ.setdefault("WANDB_DIR", r.train.output_dir)
    has_key = (
        bool(os.environ.get("WANDB_API_KEY"))
        or Path("~/.netrc").expanduser().is_file()
        and "api.wandb.ai" in Path("~/.netrc").expanduser().read_text(errors="ignore")
    )
    if not has_key and os.environ.get("WANDB_MODE") not in ("offline", "disabled"):
        os.environ["WANDB_MODE"] = "offline"
        if is_main():
            print(
                f"wandb: no credentials found, logging offline into {r.train.output_dir}/wandb; "
                f"upload later with `wandb sync {r.train.output_dir}/wandb/offline-run-*`"
            )


def prepare_args(r: Resolved, has_val: bool) -> None:
    """SFTConfig settings that follow from ours."""
    t = r.train
    t.save_strategy = "steps" if t.save_steps and t.save_steps > 0 else "no"
    t.eval_strategy = "steps" if has_val and t.eval_steps else "no"
    t.padding_free = r.data.use_remove_padding
    if t.padding_free:  # TRL refuses padding_free with max_length set; our examples are already cut to it
        t.max_length = None
    t.dataset_kwargs = {"skip_prepare_dataset": True}  # examples are built by labels.py
    t.remove_unused_columns = False
    t.disable_tqdm = True  # our MetricsCallback draws the progress bar
    if t.gradient_checkpointing is None:
        t.gradient_checkpointing = t.activation_checkpointing
    if t.train_sampling_strategy == "random" and not r.data.use_remove_padding:
        t.train_sampling_strategy = "group_by_length"


def build_data(r: Resolved, tokenizer):
    from sftkit.data.dataset import build_dataset
    from sftkit.data.labels import Encoder

    encoder = Encoder(tokenizer)
    d = r.data
    args = (encoder, d.prompt_key, d.response_key, r.train.max_length, d.truncation, d.strict)
    train, _, _ = build_dataset(d.train_files, *args, name="train")
    val = None
    if d.val_files:
        val, _, _ = build_dataset(d.val_files, *args, name="val")
    if is_main():
        print(f"data: {len(train)} training examples, {len(val) if val is not None else 0} validation examples")
    return train, val


def run(r: Resolved, callbacks=()):
    """Train as configured; returns the trainer (its model is the in-memory model at the end of training)."""
    from transformers import set_seed

    from sftkit.checkpoint import resume
    from sftkit.training import modeling
    from sftkit.training.metrics import MetricsCallback

    show_config(r)
    config = r.to_dict()  # as resolved: what checkpoints record and resume compares
    m, t = r.model, r.train
    modeling.check_model_path(m.model_name_or_path, t.trust_remote_code)
    attn = modeling.attention(m.use_flash_attention, m.attn_implementation)
    modeling.check_liger(m.use_liger)
    resume_from = resume.pick(t.resume_from_checkpoint, t.output_dir)
    if resume_from is not None:
        resume.check_compatible(resume_from, config, t.resume_ignore_mismatch)
    tokenizer = modeling.load_tokenizer(m.model_name_or_path, t.trust_remote_code)
    train_ds, val_ds = build_data(r, tokenizer)
    prepare_args(r, val_ds is not None)
    setup_wandb(r)
    set_seed(t.seed)
    model = modeling.load_model(m.model_name_or_path, attn, t.bf16, m.use_liger, t.trust_remote_code)
    check_output_dir(r, model, resume_from)
    trainer = make_trainer(r, config, model, tokenizer, train_ds, val_ds)
    for cb in [MetricsCallback(t.output_dir), *callbacks]:
        trainer.add_callback(cb)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    finish(r, trainer, val_ds)
    return trainer


def check_output_dir(r: Resolved, model, resume_from) -> None:
    """Before training: enough disk for a checkpoint (not hours in, at the first save), and a word when the
    folder already holds another run's checkpoints."""
    from sftkit.checkpoint import layout as checkpoint
    from sftkit.errors import SftkitError

    out = Path(r.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = sum(p.numel() for p in model.parameters())
    trained = n if not r.model.lora_rank else max(1, n // 100)  # LoRA adapters: about 1% of the weights
    need = trained * (4 + 8)  # fp32 weights + Adam's two moments
    problem = checkpoint.check_disk(out, need)  # every rank checks (no collective before the trainer exists)
    if problem:
        raise SftkitError(problem)
    if resume_from is None and is_main() and checkpoint.find_latest(out) is not None:
        print(
            f"note: {out} already holds checkpoints of an earlier run; this run starts from scratch and writes "
            "beside them (trainer.resume_from_checkpoint=auto would continue the newest one)"
        )


def make_trainer(r: Resolved, config: dict, model, tokenizer, train_ds, val_ds):
    from transformers import PrinterCallback, ProgressCallback, TrainerCallback

    from sftkit.training import modeling
    from sftkit.training.trainer import SftkitTrainer

    m = r.model
    peft_config = (
        modeling.lora_config(m.lora_rank, m.lora_alpha, m.lora_dropout, m.target_modules) if m.lora_rank else None
    )
    trainer = SftkitTrainer(
        model=model,
        args=r.train,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        resolved_config=config,
        lora=bool(m.lora_rank),
    )
    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)

    class SaveInitial(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if r.train.save_initial and state.global_step == 0:
                trainer.save_sftkit_checkpoint("global_step_0")

    trainer.add_callback(SaveInitial())
    return trainer


def finish(r: Resolved, trainer, val_ds) -> Path:
    from sftkit.checkpoint.export import export_checkpoint
    from sftkit.training.metrics import plot_loss

    evaluated = any(e.get("step") == trainer.state.global_step and "eval_loss" in e for e in trainer.state.log_history)
    if val_ds is not None and not evaluated:
        trainer.evaluate()
    # The Hugging Face folder is written inside the checkpoint before its rename: a final checkpoint is complete
    # with it or not there at all.
    path = trainer.save_sftkit_checkpoint(
        "global_step_final", extra=lambda tmp: export_checkpoint(tmp, tmp / "huggingface", r.model.merge_lora)
    )
    if trainer.is_world_process_zero():
        metrics = Path(r.train.output_dir) / "metrics.jsonl"
        png = plot_loss(metrics, Path(r.train.output_dir) / "loss.png") if metrics.exists() else None
        print(
            f"done: checkpoint {path}\n      Hugging Face folder {path / 'huggingface'}\n      metrics {metrics}"
            + (f"\n      loss curve {png}" if png else "")
        )
    return Path(r.train.output_dir) / "global_step_final"


def split_config(argv: list[str]) -> tuple[str | None, list[str]]:
    argv = list(argv)
    for flag in ("--config", "--config_file", "--recipe"):
        if flag in argv:
            i = argv.index(flag)
            if i + 1 >= len(argv):
                from sftkit.errors import SftkitError

                raise SftkitError(f"{flag} needs a recipe path, e.g. --config recipes/tiny.yaml")
            return argv[i + 1], argv[:i] + argv[i + 2 :]
        for i, a in enumerate(argv):
            if a.startswith(flag + "="):
                return a.split("=", 1)[1], argv[:i] + argv[i + 1 :]
    return None, argv


@user_errors
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print_help()
        return 0
    recipe, rest = split_config(argv)
    run(resolve(recipe, rest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
