"""Regenerate the real-model recipes in recipes/ (one flat YAML per model/method).

Usage: python scripts/make_recipes.py
"""

from pathlib import Path

RECIPES = [  # name, model, hardware, accelerate config, micro batch, global batch, lr, act. ckpt, lora rank
    (
        "qwen0.5b",
        "Qwen/Qwen2.5-0.5B-Instruct",
        "1 GPU with 24 GB or more (A10G/L4/RTX 4090 and up)",
        "single_gpu",
        8,
        64,
        "1.0e-5",
        "false",
        0,
    ),
    (
        "qwen0.5b-lora",
        "Qwen/Qwen2.5-0.5B-Instruct",
        "1 GPU with 16 GB or more",
        "single_gpu",
        8,
        64,
        "1.0e-4",
        "false",
        16,
    ),
    (
        "qwen1.5b",
        "Qwen/Qwen2.5-1.5B-Instruct",
        "1 node of 4 x 80 GB GPUs (H100/A100) with FSDP2; also fits one 80 GB GPU (ACCEL=single_gpu)",
        "fsdp4",
        4,
        64,
        "1.0e-5",
        "true",
        0,
    ),
    (
        "qwen1.5b-lora",
        "Qwen/Qwen2.5-1.5B-Instruct",
        "1 GPU with 24 GB or more (LoRA, activation checkpointing)",
        "single_gpu",
        4,
        64,
        "1.0e-4",
        "true",
        16,
    ),
    (
        "llama3b",
        "meta-llama/Llama-3.2-3B-Instruct",
        "1 node of 4 x 80 GB GPUs (H100/A100) with FSDP2, as in the seed's multi-GPU example",
        "fsdp4",
        2,
        64,
        "1.0e-5",
        "true",
        0,
    ),
    (
        "llama3b-lora",
        "meta-llama/Llama-3.2-3B-Instruct",
        "2 GPUs with 40 GB or more (DDP), as in the seed's LoRA example",
        "ddp",
        2,
        64,
        "1.0e-4",
        "true",
        16,
    ),
]


def recipe(name, model, hardware, accel, micro, global_batch, lr, ckpt, lora) -> str:
    base, target = (name[: -len("-lora")], "lora") if lora else (name, "train")
    gpus = 2 if accel == "ddp" else (1 if accel == "single_gpu" else 4)
    text = f"""# Config for {hardware}.
# Launch: accelerate launch --config_file accelerate_configs/{accel}.yaml -m sftkit.train --config recipes/{name}.yaml
#     or: make {target} RECIPE={base} ACCEL={accel}
# Override example: ... --config recipes/{name}.yaml data.max_length=4096 optim.lr={lr} trainer.logger=console
# Faster on GPU with flash-attn installed (pip install 'sftkit[gpu]'):
#   model.use_flash_attention=true use_remove_padding=true model.use_liger=true

# Model arguments
model_name_or_path: {model}
dtype: auto  # bf16 mixed precision on GPUs that support it, fp32 elsewhere
attn_implementation: sdpa
"""
    if lora:
        text += f"""
# LoRA arguments
lora_rank: {lora}  # higher = more capacity and memory
lora_alpha: {2 * lora}
lora_dropout: 0.05
target_modules: [all-linear]
merge_lora: false  # true: also write the merged model in global_step_final/huggingface/merged
"""
    text += f"""
# Data arguments
train_files: [data/sft/train.parquet]  # from `make prepare INPUT=... METADATA=...`
val_files: [data/sft/val.parquet]
prompt_key: prompt
response_key: generated_solution
max_length: 2048
truncation: right  # keep the prompt, cut the response

# SFT trainer config
per_device_train_batch_size: {micro}  # micro batch per GPU
train_batch_size: {global_batch}  # global: {micro} x {gpus} GPUs x {global_batch // (micro * gpus)} accumulation steps
learning_rate: {lr}
lr_scheduler_type: cosine
warmup_steps: 0.03  # a float < 1 is a ratio of the total steps
weight_decay: 0.0
max_grad_norm: 1.0
num_train_epochs: 3
activation_checkpointing: {ckpt}  # recompute activations: less memory, ~20% slower
seed: 42
logging_steps: 1
eval_steps: 100
save_steps: 500
max_ckpt_to_keep: 3
output_dir: checkpoints/{name}
logger: [wandb]  # offline into output_dir when there are no wandb credentials
project_name: sftkit
"""
    return text


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "recipes"
    for spec in RECIPES:
        (out / f"{spec[0]}.yaml").write_text(recipe(*spec))
