"""The resolved configuration of a run, printed once at its start (rank 0): `sftkit train` and the dry run
(`sftkit inspect`) print the same lines, the values checkpoints save."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sftkit import dist

if TYPE_CHECKING:  # the plan's module imports TRL: only where a run starts (`--help` stays instant)
    from sftkit.config.plan import RunPlan


def show_config(plan: RunPlan) -> None:
    """The resolved configuration, printed once (rank 0): the same values checkpoints save."""
    if not dist.is_main():
        return
    t, d, m, c = plan.train, plan.data, plan.model, plan.to_dict()
    method = f"LoRA rank {m.lora_rank} alpha {m.lora_alpha}" if plan.lora else "full fine-tuning"
    micro = f"token budget {plan.token_budget}" if plan.token_budget else f"{plan.micro_batch} x {plan.grad_accum}"
    lines = [
        "resolved config:",
        f"  model: {m.model_name_or_path} ({method})",
        f"  train_files: {d.train_files}  val_files: {d.val_files}",
        f"  keys: prompt={d.prompt_key} response={d.response_key}  max_length: {plan.cut_length} "
        f"truncation: {d.truncation}",
        f"  world_size: {plan.world_size} (dp {plan.dp_size} x sp {plan.sp_size})  global_batch: "
        f"{plan.global_batch} sequences per step  micro-batches per process: {micro}",
        f"  lr: {t.learning_rate} scheduler: {c['lr_scheduler_type']} warmup: {t.warmup_steps}  epochs: "
        f"{t.num_train_epochs} max_steps: {t.max_steps}  seed: {t.seed}",
        f"  precision: {'bf16 mixed' if plan.bf16 else 'fp32'}  attention: {plan.attn_implementation}  "
        f"activation_checkpointing: {t.activation_checkpointing}  padding_free: {plan.padding_free}",
        f"  output_dir: {t.output_dir}  save_steps: {shown(t.save_steps)}  eval_steps: {shown(t.eval_steps)}  "
        f"logger: {t.logger}",
    ]
    lines += [f"  {k} = {shown(c.get(k))!r}   [{origin}]" for k, origin in plan.sources.items()]
    print("\n".join(lines), flush=True)


def shown(value):
    """A step count as written: `save_steps=1` is read into a float field (fractions of the run are allowed) and
    printed 1, not 1.0."""
    return int(value) if isinstance(value, float) and value.is_integer() and value >= 1 else value
