"""What sftkit does with each option it inherits from TRL's `SFTConfig` / transformers' `TrainingArguments`.

`sftkit train` accepts every field of those dataclasses on its command line (users coming from TRL type them), so
each one is either honoured or refused before any expensive work (docs/contracts.md §2) — never accepted and ignored:
- sftkit's own fields (`ModelArguments`, `DataArguments`, the fields `SftkitConfig` adds or redefines) and the
  inherited fields in HONOURED do what their help says;
- ALIASES are TRL/transformers habits with an obvious sftkit meaning: the value moves to the sftkit field (and its
  conversion), and the printed configuration shows it there;
- REFUSED fields set to anything but their default (or a value in `allowed`, which describes what sftkit does
  anyway) stop the run with a message naming what to use instead.

tests/test_options.py walks every field of the parser and fails on one that is in none of these tables, so an
upgrade of TRL or transformers that adds a field cannot slip through unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Refused:
    instead: str  # what to use instead (or why it cannot be)
    allowed: tuple = ()  # values that describe what sftkit does anyway: accepted


@dataclass(frozen=True)
class Alias:
    target: str  # the sftkit field that takes the value
    values: dict | None = None  # value conversion (TRL's spelling -> sftkit's); None = unchanged


# Inherited fields that sftkit (or the upstream machinery it keeps) applies as their help says.
HONOURED = frozenset(
    {
        # schedule and optimizer (transformers' Trainer builds them; checked early in config/checks.py)
        "learning_rate", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "optim", "optim_args",
        "optim_target_modules", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm",
        "num_train_epochs", "max_steps", "seed", "data_seed", "full_determinism",
        # batches (config/plan.py derives gradient accumulation; training/loader.py reads the data loader ones)
        "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
        "average_tokens_across_devices", "train_sampling_strategy", "dataloader_num_workers",
        "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor",
        "dataloader_multiprocessing_context", "max_length", "dataset_num_proc",
        # precision, memory, kernels
        "bf16", "fp16", "tf32", "activation_checkpointing", "activation_checkpointing_kwargs",
        "gradient_checkpointing", "activation_offloading", "torch_compile", "torch_compile_backend",
        "torch_compile_mode", "neftune_noise_alpha", "torch_empty_cache_steps", "use_cpu",
        # processes (Accelerate's DDP/process-group settings)
        "ddp_find_unused_parameters", "ddp_bucket_cap_mb", "ddp_broadcast_buffers", "ddp_static_graph",
        "ddp_backend", "ddp_timeout", "local_rank",
        # logging, saving, validation (training/callbacks.py, training/metrics.py)
        "output_dir", "logging_steps", "logging_first_step", "logging_nan_inf_filter", "log_level", "log_on_each_node",
        "log_level_replica", "disable_tqdm", "run_name", "save_steps", "save_strategy", "eval_steps",
        "eval_strategy", "eval_on_start", "resume_from_checkpoint", "trust_remote_code", "report_to",
        "completion_only_loss", "prediction_loss_only",
    }
)  # fmt: skip

ALIASES: dict[str, Alias] = {
    "save_total_limit": Alias("max_ckpt_to_keep"),
    "packing": Alias("use_remove_padding"),
    "padding_free": Alias("use_remove_padding"),
    "use_liger_kernel": Alias("use_liger"),
    "project": Alias("project_name"),
    "gradient_checkpointing_kwargs": Alias("activation_checkpointing_kwargs"),
    "truncation_mode": Alias("truncation", {"keep_start": "right", "keep_end": "left"}),
}

_EXPORT = "`sftkit export CHECKPOINT --output DIR`, then upload the folder (e.g. `hf upload`)"
_ACCEL = "an accelerate config (accelerate launch --config_file accelerate_configs/fsdp4.yaml -m sftkit.train ...)"
_EVAL = "validation is the loss over the validation set (and val_accuracy with eval_accuracy_samples)"
_TEMPLATE = "the model folder's tokenizer (chat template, end of turn, pad token) is used as it is"

REFUSED: dict[str, Refused] = {
    "label_smoothing_factor": Refused(
        "the loss is the plain token mean of the step (labels contract, docs/contracts.md §4)"
    ),
    "bf16_full_eval": Refused("validation runs in the training precision (bf16/dtype)"),
    "fp16_full_eval": Refused("validation runs in the training precision (bf16/dtype)"),
    "liger_kernel_config": Refused("model.use_liger=true applies Liger's kernels with sftkit's settings"),
    "use_cache": Refused("the KV cache is off while training; generation (eval) turns it on by itself"),
    "auto_find_batch_size": Refused(
        "token-budget micro-batches: data.use_dynamic_bsz=true data.max_token_len_per_gpu=N"
    ),
    "logging_strategy": Refused("logging_steps=N (sftkit logs every N optimizer steps)", ("steps",)),
    "include_num_input_tokens_seen": Refused("metrics.jsonl has tokens_per_second (trained tokens)", ("no", False)),
    "trackio_space_id": Refused("trainer.logger=console|wandb|tensorboard"),
    "trackio_bucket_id": Refused("trainer.logger=console|wandb|tensorboard"),
    "trackio_static_space_id": Refused("trainer.logger=console|wandb|tensorboard"),
    "eval_delay": Refused("eval_steps=N (trainer.test_freq)"),
    "eval_do_concat_batches": Refused(_EVAL),
    "eval_use_gather_object": Refused(_EVAL),
    "eval_accumulation_steps": Refused(_EVAL),
    "include_for_metrics": Refused(_EVAL),
    "batch_eval_metrics": Refused(_EVAL),
    "save_only_model": Refused("checkpoints always hold the optimizer, scheduler and RNG states (exact resume)"),
    "save_on_each_node": Refused("rank 0 writes every checkpoint (gathered on CPU); put output_dir on shared storage"),
    "enable_jit_checkpoint": Refused("pre-emption: SIGTERM/SIGUSR1 save global_step_N at the next step boundary"),
    "push_to_hub": Refused(_EXPORT),
    "hub_token": Refused(_EXPORT),
    "hub_private_repo": Refused(_EXPORT),
    "hub_model_id": Refused(_EXPORT),
    "hub_strategy": Refused(_EXPORT),
    "hub_always_push": Refused(_EXPORT),
    "hub_revision": Refused(_EXPORT),
    "load_best_model_at_end": Refused(
        "every validation's val_loss is in metrics.jsonl: pick the best global_step_N and `sftkit export` it"
    ),
    "metric_for_best_model": Refused("metrics.jsonl holds val_loss per validation step: choose the checkpoint there"),
    "greater_is_better": Refused("metrics.jsonl holds val_loss per validation step: choose the checkpoint there"),
    "ignore_data_skip": Refused("resume always continues at the exact position in the data (exact resume)"),
    "restore_callback_states_from_checkpoint": Refused("train_state.pt restores the whole run state on resume"),
    "accelerator_config": Refused(_ACCEL),
    "parallelism_config": Refused(f"{_ACCEL}, and ulysses_sequence_parallel_size=S"),
    "fsdp": Refused(_ACCEL),
    "fsdp_config": Refused(_ACCEL),
    "deepspeed": Refused(f"FSDP2 through {_ACCEL}"),
    "debug": Refused("TORCH_DISTRIBUTED_DEBUG=DETAIL / CUDA_LAUNCH_BLOCKING=1 in the environment"),
    "skip_memory_metrics": Refused("peak_memory_gib is logged on GPU at every logging step", (True,)),
    "do_train": Refused("`sftkit train` always trains"),
    "do_eval": Refused("validation runs when val_files are given (eval_steps=N)"),
    "do_predict": Refused("`sftkit eval CHECKPOINT --problems FILE` generates and grades"),
    "dataloader_drop_last": Refused("every example is trained once per epoch (a short last step is kept)"),
    "dataloader_in_order": Refused("the step order is fixed by seed/data_seed and epoch", (True,)),
    "remove_unused_columns": Refused("the examples are built by sftkit (input_ids, labels)"),
    "label_names": Refused("the examples are built by sftkit (input_ids, labels)"),
    "length_column_name": Refused("lengths are computed when the examples are built"),
    "model_init_kwargs": Refused("dtype=, attn_implementation=, model.trust_remote_code=true"),
    "router_aux_loss_coef": Refused("set it in the model's config.json (mixture-of-experts models)"),
    "chat_template_path": Refused(_TEMPLATE + "; edit its tokenizer_config.json / chat_template.jinja"),
    "dataset_text_field": Refused("data.prompt_key / data.response_key (prompt/response columns)"),
    "dataset_kwargs": Refused("data.* keys (examples are built by sftkit)"),
    "eos_token": Refused(_TEMPLATE),
    "pad_token": Refused(_TEMPLATE),
    "shuffle_dataset": Refused("the step order is shuffled per epoch by seed/data_seed (train_sampling_strategy)"),
    "packing_strategy": Refused("use_remove_padding=true concatenates each micro-batch into one row", ("bfd",)),
    "pad_to_multiple_of": Refused("padding-free batches (use_remove_padding=true) or length-grouped batches"),
    "eval_packing": Refused("validation batches are built like training ones (use_remove_padding)"),
    "assistant_only_loss": Refused("the response of each row is trained, the prompt never (labels contract)"),
    "loss_type": Refused("the loss is the token mean of the step (nll; labels contract)", ("nll",)),
}


def refusal(name: str, value: Any, default: Any) -> str | None:
    """The message refusing `name=value`, or None when the value is accepted."""
    rule = REFUSED.get(name)
    if rule is None or _same(value, default) or any(_same(value, ok) for ok in rule.allowed):
        return None
    return f"{name}={value!r} is not supported by sftkit; instead: {rule.instead}."


def _same(a: Any, b: Any) -> bool:
    a, b = getattr(a, "value", a), getattr(b, "value", b)  # enums (transformers' IntervalStrategy ...)
    return a == b or (a in (None, "", [], {}) and b in (None, "", [], {}))
