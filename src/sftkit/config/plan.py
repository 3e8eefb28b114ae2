"""The run plan: (recipe, environment, overrides, world size) -> one frozen description of the run.

Every derived value is computed here, once: the data-parallel and sequence-parallel sizes, the global batch and
the micro-batches of a step, precision, attention kernel, padding-free batches, the length examples are cut to,
the validation files, the loggers. The dataset, the model loader, the trainer and the checkpoints all read the
same `RunPlan`; what is printed at start and saved in every checkpoint is `plan.to_dict()`.

Two views of the training arguments are built here, both once:
- `plan.train`: the resolved configuration the user sees (printed, saved, compared on resume);
- `plan.trainer_args`: how transformers' Trainer is driven. It sees one *step batch* per optimizer step
  (gradient_accumulation_steps=1; sftkit cuts the step into micro-batches, see training/trainer.py), examples already
  cut to length (max_length=None; TRL would otherwise refuse padding-free batches), and no save/eval schedule of
  its own (sftkit's callbacks save global_step_N and evaluate; see training/callbacks.py).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

from sftkit.config import checks
from sftkit.config.fields import DataArguments, ModelArguments, SftkitConfig
from sftkit.config.parse import Settings, parse
from sftkit.errors import SftkitError


@dataclass(frozen=True)
class RunPlan:
    model: ModelArguments
    data: DataArguments
    train: SftkitConfig  # the resolved training configuration (printed, saved)
    trainer_args: SftkitConfig  # the same, as transformers' Trainer is driven (see the module docstring)
    sources: dict[str, str]  # field -> where its value came from (recipe file:line, env VAR, command line)
    world_size: int
    sp_size: int  # ulysses_sequence_parallel_size: ranks that share one sequence
    global_batch: int  # sequences per optimizer step (all ranks)
    micro_batch: int  # sequences per micro-batch and rank (fixed micro-batches)
    grad_accum: int | None  # micro-batches per step and rank; None with token-budget micro-batches
    token_budget: int | None  # tokens per micro-batch and rank (use_dynamic_bsz)
    cut_length: int | None  # examples are cut to this many tokens (max_length)
    padding_free: bool
    order: str  # how steps are drawn: grouped (length groups), shuffled or sequential (training/batching.py)
    bf16: bool
    attn_implementation: str
    lora: bool

    @property
    def dp_size(self) -> int:
        """Data-parallel groups: the ranks of one group (sequence parallelism) see the same examples."""
        return self.world_size // self.sp_size

    def total_steps(self, examples: int) -> int:
        """Optimizer steps of the whole run on `examples` training examples: max_steps when set, else the epochs'
        steps (transformers' count: ceil(num_train_epochs x steps per epoch))."""
        from sftkit.training.batching import steps_per_epoch

        if self.train.max_steps and self.train.max_steps > 0:
            return self.train.max_steps
        return math.ceil(self.train.num_train_epochs * steps_per_epoch(examples, self.global_batch))

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration: printed at start, saved with every checkpoint, compared on resume."""
        out: dict[str, Any] = {}
        for part in (self.model, self.data):
            out.update(dataclasses.asdict(part))
        out.update(self.train.to_dict())
        out.update(
            world_size=self.world_size,
            dp_size=self.dp_size,
            sp_size=self.sp_size,
            global_batch=self.global_batch,
            gradient_accumulation_steps=self.grad_accum,
            max_length=self.cut_length,
            use_remove_padding=self.padding_free,
            attn_implementation=self.attn_implementation,
            bf16=self.bf16,
        )
        return out


def plan_run(recipe: str | None, argv: list[str], environ=os.environ, world_size: int | None = None) -> RunPlan:
    """The one entry point: recipe path + override tokens -> the run plan."""
    return derive(parse(recipe, argv, environ), world_size or int(environ.get("WORLD_SIZE", "1")), environ)


def _split(values: dict[str, Any], cls) -> dict[str, Any]:
    return {f.name: values[f.name] for f in dataclasses.fields(cls) if f.init and f.name in values}


def _build(cls, values: dict[str, Any]):
    try:
        return cls(**_split(values, cls))
    except (ValueError, TypeError) as exc:
        raise SftkitError(f"invalid configuration: {exc}") from None


def derive(s: Settings, world_size: int, environ=os.environ) -> RunPlan:
    """Settings + world size -> RunPlan. Each error names the keys and the fix."""
    v = dict(s.values)
    _required(v)
    checks.apply_inherited(v, s)
    sp = _sequence_parallel(v, s, world_size)
    micro, global_batch, accum, budget = _batch(v, s, world_size // sp)
    checks.check_accumulation(v, s, accum)
    if budget is not None:  # verl: max_token_len_per_gpu counts the tokens one GPU holds, 1/sp of a packed row
        budget *= sp
    bf16 = _precision(v, s, environ)
    attn = _attention(v)
    checks.check_attention_name(attn, s)
    padding_free = v["use_remove_padding"]
    if padding_free is None:  # padding-free where the kernel handles variable lengths (or sequence parallelism)
        padding_free = attn.startswith("flash_attention") or sp > 1
    from sftkit.training.shared_prompts import resolve

    v["share_prompts"] = resolve(v["share_prompts"], attn, sp, s.origin("share_prompts"))
    if not v["average_tokens_across_devices"]:
        raise SftkitError(
            f"average_tokens_across_devices=false ({s.origin('average_tokens_across_devices')}): sftkit's loss is the "
            "mean over the trained tokens of the whole step, all processes together (otherwise it would change with "
            "the number of GPUs). Drop the setting."
        )
    logger = set(v["logger"])
    max_length = v["max_length"]
    if max_length is not None and max_length < 2:
        raise SftkitError(
            f"data.max_length={max_length} ({s.origin('max_length')}) leaves no room for a prompt and a response "
            "token; use a length such as 2048."
        )
    v.update(
        val_files=v["val_files"] if v["val_files"] is not None else list(v["train_files"]),
        use_remove_padding=padding_free,
        gradient_accumulation_steps=accum or 1,
        bf16=bf16,
        use_cpu=v["use_cpu"] or not checks.accelerator(),
        report_to=sorted(logger & {"wandb", "tensorboard"}) or "none",
        activation_checkpointing=bool(
            v["gradient_checkpointing"] if v["gradient_checkpointing"] is not None else v["activation_checkpointing"]
        ),
        gradient_checkpointing=None,  # our alias, resolved above (transformers would warn that it is deprecated)
        # what runs, in transformers' words (training/callbacks.py runs both schedules)
        save_strategy="steps" if v["save_steps"] else "no",
        eval_strategy="steps" if v["eval_steps"] and v["val_files"] != [] else "no",
        # every parameter takes part (full and LoRA): True (the Trainer's default without activation
        # checkpointing) would cost an extra autograd traversal per step; an explicit setting is kept
        ddp_find_unused_parameters=v["ddp_find_unused_parameters"]
        if "ddp_find_unused_parameters" in s.sources
        else False,
    )
    model, data = _build(ModelArguments, v), _build(DataArguments, v)
    train = _build(SftkitConfig, v)
    checks.check_upstream(train, s)
    train.mixed_precision = "bf16" if bf16 else "fp16" if train.fp16 else "no"  # beats an accelerate config's
    trainer_args = _build(SftkitConfig, _trainer_values(v, padding_free))
    trainer_args.mixed_precision = train.mixed_precision
    return RunPlan(
        model=model,
        data=data,
        train=train,
        trainer_args=trainer_args,
        sources=dict(s.sources),
        world_size=world_size,
        sp_size=sp,
        global_batch=global_batch,
        micro_batch=micro,
        grad_accum=accum,
        token_budget=budget,
        cut_length=max_length,
        padding_free=padding_free,
        order=_order(v["train_sampling_strategy"], padding_free),
        bf16=bf16,
        attn_implementation=attn,
        lora=model.lora_rank > 0,
    )


def _trainer_values(v: dict[str, Any], padding_free: bool) -> dict[str, Any]:
    """The Trainer's view (module docstring): one step batch per optimizer step, examples already cut."""
    return {
        **v,
        "gradient_accumulation_steps": 1,
        "max_length": None,
        "padding_free": padding_free,
        "save_strategy": "no",
        "eval_strategy": "no",
        "dataset_kwargs": {"skip_prepare_dataset": True},  # examples are built by data/labels.py
        "remove_unused_columns": False,
        "disable_tqdm": True,  # the metrics callback draws the progress bar
    }


def _required(v: dict[str, Any]) -> None:
    if not v["model_name_or_path"]:
        raise SftkitError("no model: set model_name_or_path in the recipe, MODEL_NAME, or model.partial_pretrain=...")
    if not v["train_files"]:
        raise SftkitError("no training data: set train_files in the recipe, TRAIN_FILE, or data.train_files=...")
    if v["num_train_epochs"] is not None and v["num_train_epochs"] <= 0 and (v["max_steps"] or -1) <= 0:
        raise SftkitError(
            f"trainer.total_epochs (num_train_epochs) = {v['num_train_epochs']} trains nothing; use 1 or more "
            "epochs, or trainer.total_training_steps (max_steps) > 0."
        )
    for name in ("lora_rank", "lora_alpha"):
        if v[name] < 0:
            raise SftkitError(f"model.{name}={v[name]} must be >= 0 (0 = full fine-tuning for lora_rank)")
    if v["merge_lora"] and not v["lora_rank"]:
        raise SftkitError(
            "merge_lora=true asks to merge LoRA adapters, but this run is full fine-tuning (lora_rank=0): drop "
            "merge_lora, or set model.lora_rank to train adapters."
        )


def _sequence_parallel(v: dict[str, Any], s: Settings, world: int) -> int:
    sp = v["ulysses_sequence_parallel_size"]
    if sp < 1 or world % sp:
        raise SftkitError(
            f"ulysses_sequence_parallel_size={sp} ({s.origin('ulysses_sequence_parallel_size')}) must be >= 1 and "
            f"divide the number of processes ({world}): dp x sp = processes."
        )
    if sp > 1 and v["use_remove_padding"] is False:
        raise SftkitError(
            f"ulysses_sequence_parallel_size={sp} needs padding-free batches (each micro-batch is one concatenated "
            f"sequence split across {sp} ranks), but use_remove_padding=false ({s.origin('use_remove_padding')}). "
            "Set use_remove_padding=true, as in the seed's command."
        )
    return sp


def _batch(v: dict[str, Any], s: Settings, dp: int) -> tuple[int, int, int | None, int | None]:
    """(micro batch, global batch, micro-batches per step and rank or None, token budget or None)."""
    micro, given = v["per_device_train_batch_size"], v["train_batch_size"]
    if micro < 1:
        raise SftkitError(
            f"data.micro_batch_size_per_gpu (per_device_train_batch_size) = {micro} "
            f"({s.origin('per_device_train_batch_size')}) must be >= 1"
        )
    if given is not None and given < 1:
        raise SftkitError(
            f"data.train_batch_size={given} ({s.origin('train_batch_size')}) must be >= 1: it is the number of "
            "sequences per optimizer step, all processes together."
        )
    budget = v["max_token_len_per_gpu"]
    if v["use_dynamic_bsz"]:
        if not budget or budget < 1:
            raise SftkitError(
                "data.use_dynamic_bsz=true needs data.max_token_len_per_gpu (tokens per micro-batch and process, "
                "padding included), e.g. data.max_token_len_per_gpu=16384"
            )
        global_batch = given if given is not None else micro * dp * v["gradient_accumulation_steps"]
        if global_batch % dp:
            raise SftkitError(
                f"data.train_batch_size={global_batch} is not a multiple of the data-parallel processes ({dp}): "
                "each process takes an equal share of a step's sequences. Use a multiple of {dp}."
            )
        return micro, global_batch, None, budget
    if given is None:
        accum = v["gradient_accumulation_steps"]
        return micro, micro * dp * accum, accum, None
    per_step = micro * dp
    accum, rest = divmod(given, per_step)
    if rest or accum < 1:
        raise SftkitError(
            f"data.train_batch_size={given} is not a multiple of micro batch ({micro}) x data-parallel processes "
            f"({dp}) = {per_step}: gradient accumulation would not be a whole number. Use a train_batch_size that is "
            f"a multiple of {per_step}, or change the micro batch."
        )
    return micro, given, accum, None


def _order(strategy: str, padding_free: bool) -> str:
    """transformers' train_sampling_strategy: `random` (default) means length groups for padded batches (less
    padding, same loss) and a plain shuffle for padding-free ones (nothing to gain); `group_by_length` forces
    the groups, `sequential` keeps the files' order."""
    strategy = getattr(strategy, "value", strategy)
    if strategy == "sequential":
        return "sequential"
    return "grouped" if strategy == "group_by_length" or not padding_free else "shuffled"


def _precision(v: dict[str, Any], s: Settings, environ) -> bool:
    """bf16 mixed precision or not, decided once: an explicit dtype, else an explicit bf16, else the accelerate
    config's mixed_precision, else bf16 where the GPU supports it (fp32 elsewhere)."""
    import torch

    if v["dtype"] != "auto":
        return v["dtype"] == "bfloat16"
    if "bf16" in s.sources:
        return bool(v["bf16"])
    if environ.get("ACCELERATE_MIXED_PRECISION") in ("bf16", "no"):
        return environ["ACCELERATE_MIXED_PRECISION"] == "bf16" and checks.accelerator()
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported() and not v["fp16"]


def _attention(v: dict[str, Any]) -> str:
    if v["use_flash_attention"]:
        return "flash_attention_2"
    return v["attn_implementation"] or "sdpa"
