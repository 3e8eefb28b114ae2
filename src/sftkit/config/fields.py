"""Configuration: recipe YAML -> seed environment variables -> command-line overrides, resolved into one config.

Three dataclasses, every field with help text: `ModelArguments`, `DataArguments` and `SftkitConfig` (TRL's
`SFTConfig` plus our fields; TrainingArguments' fields are all available). The verl keys and the environment
variables are tables in `verl/keys.py`. Parsing goes through `transformers.HfArgumentParser`, like TRL's `TrlParser`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig


@dataclass
class ModelArguments:
    """What model to train and how to load it."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Local model folder or Hugging Face hub id (verl: model.partial_pretrain; env MODEL_NAME)."},
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": "Weights and compute precision: auto (bf16 mixed precision on GPUs that support it, fp32 "
            "elsewhere), float32, bfloat16.",
            "choices": ["auto", "float32", "bfloat16"],
        },
    )
    use_liger: bool = field(
        default=False,
        metadata={"help": "Liger kernels (fused RMSNorm/RoPE/SwiGLU/cross-entropy) on GPU; needs liger-kernel."},
    )
    use_flash_attention: bool = field(
        default=False,
        metadata={"help": "Use flash-attn 2 (attn_implementation=flash_attention_2); an error if not installed."},
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "Attention kernel (sdpa, eager, flex_attention, flash_attention_2). Default: sdpa."},
    )
    lora_rank: int = field(
        default=0,
        metadata={
            "help": "LoRA rank; 0 = full fine-tuning (verl: model.lora_rank; env LORA_RANK). "
            "Higher = more capacity and memory."
        },
    )
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha (env LORA_ALPHA); usually 2x rank."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA branch."})
    target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Modules LoRA adapts: 'all-linear' (default) or names such as q_proj v_proj."},
    )
    merge_lora: bool = field(
        default=False,
        metadata={"help": "LoRA: also write the merged model in global_step_final/huggingface/merged."},
    )


@dataclass
class DataArguments:
    """Where the examples come from and how they are cut and batched."""

    train_files: list[str] | None = field(
        default=None,
        metadata={"help": "Training Parquet/JSONL files or globs (verl: data.train_files; env TRAIN_FILE)."},
    )
    val_files: list[str] | None = field(
        default=None,
        metadata={"help": "Validation files (env VAL_FILE). Default: the training files, as in the seed."},
    )
    prompt_key: str = field(default="prompt", metadata={"help": "Column holding the prompt."})
    response_key: str = field(
        default="generated_solution",
        metadata={
            "help": "Column holding the response; a file with a 'response' column and none of this name "
            "is also accepted (logged)."
        },
    )
    truncation: str = field(
        default="right",
        metadata={
            "help": "Over-long examples: right = keep the prompt, cut the response (an example with no response "
            "token left is dropped and counted); left = cut the prompt's start; error = fail on the first one.",
            "choices": ["right", "left", "error"],
        },
    )
    train_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Global batch (verl: data.train_batch_size) = micro batch x processes x accumulation; "
            "gradient accumulation is derived from it. Default: micro batch x processes x "
            "gradient_accumulation_steps."
        },
    )
    max_token_len_per_gpu: int | None = field(
        default=None,
        metadata={
            "help": "Token budget per micro-batch and process (padding included; the sum of lengths when "
            "padding-free); with use_dynamic_bsz=true each step's train_batch_size sequences are cut into "
            "micro-batches by this budget instead of a fixed count."
        },
    )
    use_dynamic_bsz: bool = field(default=False, metadata={"help": "Token-budget micro-batches (see above)."})
    use_remove_padding: bool | None = field(
        default=None,
        metadata={
            "help": "Padding-free batches: sequences concatenated into one row, positions restarting per sequence, "
            "attention kept within each sequence. Default: on with flash attention (varlen kernel) and with "
            "sequence parallelism (required there), off otherwise (SDPA then needs a block mask, slower than "
            "length-grouped padded batches)."
        },
    )
    share_prompts: bool | None = field(
        default=None,
        metadata={
            "help": "Shared-prompt packing for rejection-sampled data: steps keep the solutions of one prompt "
            "together, and a micro-batch that holds several solutions of one prompt is computed as one prompt "
            "prefix + N continuations in a padding-free row (each attends to the prompt and causally to itself, "
            "with its own positions); any other micro-batch takes the plain path. Loss, denominator and gradients "
            "equal unshared training. Default: on where it applies (attn_implementation sdpa or flex_attention, "
            "no sequence parallelism, some prompt with several solutions in the training set; never slower in "
            "benchmarks/RESULTS.md); true: required (refused with flash attention or sequence parallelism); "
            "false: off."
        },
    )
    strict: bool = field(default=False, metadata={"help": "Any bad row (missing/empty prompt or response) is fatal."})
    cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder of the tokenized-examples cache (built once per data content, tokenizer, template and "
            "max_length; memory-mapped by every process and later run). Default: $SFTKIT_CACHE_DIR, else "
            "~/.cache/sftkit."
        },
    )
    metadata_file: str | None = field(
        default=None,
        metadata={
            "help": "Gold answers (JSONL of id + answer, as for `sftkit filter`) for eval_accuracy_samples when the "
            "validation rows have no gold_answer column."
        },
    )
    rebuild_cache: bool = field(
        default=False, metadata={"help": "Tokenize the data again even when the cache holds it."}
    )


@dataclass
class SftkitConfig(SFTConfig):
    """TRL's SFTConfig plus sftkit's fields. Defaults that differ from TRL's follow the seed's workflow."""

    # Defaults changed from SFTConfig (the seed's values, or what a CPU demo needs).
    output_dir: str | None = field(default="./sft_output", metadata={"help": "Checkpoints, metrics.jsonl, loss.png."})
    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate (seed default 1e-5)."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Epochs (seed default 3)."})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "Micro batch per process (seed: 4)."})
    max_length: int | None = field(default=2048, metadata={"help": "Maximum tokens per example (seed: 2048)."})
    logging_steps: float = field(default=1, metadata={"help": "Log every N optimizer steps."})
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={"help": "Alias of activation_checkpointing (verl: model.enable_gradient_checkpointing)."},
    )
    activation_checkpointing: bool | None = field(
        default=False, metadata={"help": "Recompute activations in the backward pass (less memory, ~20%% slower)."}
    )
    bf16: bool | None = field(
        default=None, metadata={"help": "bf16 mixed precision. Default: on for GPUs that support it, off on CPU."}
    )
    save_steps: float = field(default=500, metadata={"help": "Save global_step_N every N steps (verl: save_freq)."})
    eval_steps: float | None = field(
        default=None, metadata={"help": "Validation loss every N steps and at the end (verl: test_freq)."}
    )
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Set through `logger`."})
    # sftkit's own fields.
    logger: list[str] = field(
        default_factory=lambda: ["wandb"],
        metadata={
            "help": "console, wandb, tensorboard (several allowed). The console always logs; wandb without "
            "credentials runs offline into the output folder and prints how to sync."
        },
    )
    project_name: str = field(default="sftkit", metadata={"help": "wandb project (verl: trainer.project_name)."})
    save_initial: bool = field(default=False, metadata={"help": "Also write global_step_0 before training."})
    max_ckpt_to_keep: int | None = field(
        default=None, metadata={"help": "Keep only the newest N numbered checkpoints (never global_step_final)."}
    )
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "A global_step_* folder to resume from, or `auto` (the newest complete one in output_dir; "
            "starts from scratch when there is none)."
        },
    )
    resume_ignore_mismatch: bool = field(
        default=False, metadata={"help": "Resume even if the checkpoint's run differs in model/data/batch/schedule."}
    )
    eval_accuracy_samples: int = field(
        default=0,
        metadata={
            "help": "Greedy generation on this many distinct validation problems at every validation and at the end, "
            "graded like `sftkit filter`: logs val_accuracy. 0 = off."
        },
    )
    eval_accuracy_max_new_tokens: int = field(
        default=512, metadata={"help": "Longest generation for val_accuracy (tokens)."}
    )
    nonfinite_step: str = field(
        default="stop",
        metadata={
            "help": "A step whose loss or gradient norm is NaN/inf: stop = the run ends before that optimizer step "
            "(exit 3; the earlier checkpoints stay, nothing non-finite is saved or exported); skip = that "
            "optimizer step is skipped (weights and optimizer state unchanged) and the run goes on, each skip "
            "printed and counted in metrics.jsonl (skipped_steps).",
            "choices": ["stop", "skip"],
        },
    )
    ulysses_sequence_parallel_size: int = field(
        default=1,
        metadata={
            "help": "Sequence parallel degree (verl): S ranks share each packed sequence (Ulysses all-to-all "
            "attention); needs padding-free batches. 1 = off."
        },
    )


CONFIG_CLASSES = (ModelArguments, DataArguments, SftkitConfig)
