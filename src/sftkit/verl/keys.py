"""The seed's interface as tables: verl/Hydra keys and environment variables -> sftkit config fields.

One mapping each, no scattered `if`s. The value of a verl key lands unchanged on the field, except the few keys in
SPLIT_KEYS whose one value feeds several fields.
"""

from __future__ import annotations

# verl key (as typed in the seed: `data.max_length=4096`) -> sftkit field.
VERL_KEYS: dict[str, str] = {
    "data.train_files": "train_files",
    "data.val_files": "val_files",
    "data.prompt_key": "prompt_key",
    "data.response_key": "response_key",
    "data.max_length": "max_length",
    "data.truncation": "truncation",
    "data.micro_batch_size_per_gpu": "per_device_train_batch_size",
    "data.train_batch_size": "train_batch_size",
    "data.max_token_len_per_gpu": "max_token_len_per_gpu",
    "data.use_dynamic_bsz": "use_dynamic_bsz",
    "optim.lr": "learning_rate",
    "optim.weight_decay": "weight_decay",
    "optim.betas": "betas",
    "optim.clip_grad": "max_grad_norm",
    "optim.lr_warmup_steps_ratio": "warmup_steps",
    "optim.lr_scheduler": "lr_scheduler_type",
    "model.partial_pretrain": "model_name_or_path",
    "model.enable_gradient_checkpointing": "activation_checkpointing",
    "model.gradient_checkpointing": "activation_checkpointing",
    "model.use_flash_attention": "use_flash_attention",
    "model.use_liger": "use_liger",
    "model.lora_rank": "lora_rank",
    "model.lora_alpha": "lora_alpha",
    "model.lora_dropout": "lora_dropout",
    "model.target_modules": "target_modules",
    "model.trust_remote_code": "trust_remote_code",
    "model.merge_lora": "merge_lora",
    "trainer.total_epochs": "num_train_epochs",
    "trainer.total_training_steps": "max_steps",
    "trainer.save_freq": "save_steps",
    "trainer.test_freq": "eval_steps",
    "trainer.logger": "logger",
    "trainer.project_name": "project_name",
    "trainer.experiment_name": "run_name",
    "trainer.default_local_dir": "output_dir",
    "trainer.resume_from_checkpoint": "resume_from_checkpoint",
    "trainer.resume_ignore_mismatch": "resume_ignore_mismatch",
    "trainer.save_initial": "save_initial",
    "trainer.merge_lora": "merge_lora",
    "trainer.seed": "seed",
    "trainer.max_ckpt_to_keep": "max_ckpt_to_keep",
    "use_remove_padding": "use_remove_padding",
    "ulysses_sequence_parallel_size": "ulysses_sequence_parallel_size",
}

# The seed's environment variables (scripts/run_sft_*.sh) -> sftkit field. Applied only when set.
# NPROC_PER_NODE is read by the launcher shims (number of processes), not by the trainer.
ENV_VARS: dict[str, str] = {
    "MODEL_NAME": "model_name_or_path",
    "TRAIN_FILE": "train_files",
    "VAL_FILE": "val_files",
    "OUTPUT_DIR": "output_dir",
    "BATCH_SIZE": "per_device_train_batch_size",
    "LEARNING_RATE": "learning_rate",
    "EPOCHS": "num_train_epochs",
    "MAX_LENGTH": "max_length",
    "LORA_RANK": "lora_rank",
    "LORA_ALPHA": "lora_alpha",
}

# The seed's defaults for those variables: they belong to the scripts/run_sft_*.sh shims, where no recipe is named.
SEED_DEFAULTS: dict[str, str] = {
    "NPROC_PER_NODE": "1",
    "MODEL_NAME": "Qwen/Qwen2.5-0.5B-Instruct",
    "OUTPUT_DIR": "./sft_output",
    "BATCH_SIZE": "4",
    "LEARNING_RATE": "1e-5",
    "EPOCHS": "3",
    "MAX_LENGTH": "2048",
    "LORA_RANK": "16",
    "LORA_ALPHA": "32",
}

# verl's names for values that transformers spells otherwise.
VALUE_ALIASES: dict[str, dict[str, str]] = {"lr_scheduler_type": {"wsd": "warmup_stable_decay"}}

# One value -> several fields: `optim.betas=[0.9,0.95]` sets adam_beta1 and adam_beta2.
SPLIT_KEYS: dict[str, tuple[str, ...]] = {"betas": ("adam_beta1", "adam_beta2")}

# Accepted for verl compatibility, meaning nothing here; listed so they are not "unknown keys".
# (verl's model.enable_gradient_checkpointing etc. are mapped above; these are ignored with a note.)
IGNORED_KEYS: dict[str, str] = {
    "trainer.nnodes": "the launcher (accelerate/torchrun) sets the number of nodes",
    "trainer.n_gpus_per_node": "the launcher (accelerate/torchrun, NPROC_PER_NODE) sets the processes per node",
}
