"""Inherited TRL/transformers options turned into sftkit's meaning, or refused, before any expensive work.

`apply_inherited` reads the typed settings (config/parse.py) and changes the values where a transformers option has
an sftkit meaning (`save_strategy=no`, `eval_strategy=no`, `report_to`, `gradient_accumulation_steps` next to a
global batch); `check_upstream` asks transformers itself whether the optimizer, learning-rate schedule and
attention kernel it will build later can be built (a missing package or argument would otherwise fail only after
the data is tokenized and the model loaded). See config/options.py for the table of every option.
"""

from __future__ import annotations

from typing import Any

from sftkit.config.parse import precedence
from sftkit.errors import SftkitError

LOGGERS = {"console", "wandb", "tensorboard", "none"}
NEEDS_VALIDATION_METRICS = {"reduce_lr_on_plateau", "greedy"}  # schedules that step on validation metrics


def apply_inherited(v: dict[str, Any], s) -> None:
    """Mutates `v` (field -> value) from the settings `s` (for the origins of the values)."""
    _strategies(v, s)
    _loggers(v, s)
    if not 0 <= v["lora_dropout"] < 1:
        raise SftkitError(f"model.lora_dropout={v['lora_dropout']} ({s.origin('lora_dropout')}) must be in [0, 1)")
    for name in ("learning_rate", "weight_decay", "warmup_steps"):  # torch refuses them after the model loads
        if v[name] is not None and v[name] < 0:
            raise SftkitError(f"{name}={v[name]} ({s.origin(name)}) must be >= 0")
    if v["completion_only_loss"] is False:
        raise SftkitError(
            f"completion_only_loss=false ({s.origin('completion_only_loss')}): sftkit trains the response of each "
            "row and never the prompt (labels contract). To train on whole texts, put them in the response column "
            "with an empty-template model (no chat template): prompt + response + EOS."
        )
    if v["fp16"] and not accelerator():
        raise SftkitError(
            f"fp16=true ({s.origin('fp16')}) needs a GPU; on this machine training would run in fp32. Drop fp16 "
            "(or use dtype=bfloat16 for bf16 weights)."
        )
    if v["activation_offloading"] and not accelerator():
        raise SftkitError(
            f"activation_offloading=true ({s.origin('activation_offloading')}) needs a GPU: TRL moves activations "
            "to CPU memory over CUDA streams, and on a CPU they are there already. Drop it (or use "
            "model.enable_gradient_checkpointing=true to save activation memory)."
        )
    _check_compile_backend(v, s)


def _check_compile_backend(v: dict[str, Any], s) -> None:
    """The name Accelerate turns into its `DynamoBackend` when it builds the accelerator (after the model loads)."""
    from accelerate.utils import DynamoBackend

    backend = v["torch_compile_backend"]
    names = [m.value.lower() for m in DynamoBackend if m.value != "NO"]
    if backend is not None and str(backend).upper() not in DynamoBackend.__members__:
        raise SftkitError(
            f"torch_compile_backend={backend!r} ({s.origin('torch_compile_backend')}) is not a torch.compile backend "
            f"Accelerate knows; use one of: {', '.join(names)} (inductor is the default)"
        )


def _strategies(v: dict[str, Any], s) -> None:
    save = _value(v["save_strategy"])
    if save == "no":
        if _wins(s, "save_strategy", "save_steps", bool(v["save_steps"])):
            v["save_steps"] = 0  # only global_step_final (callbacks.every(0) = never)
            s.sources["save_steps"] = f"{s.origin('save_strategy')}, as save_strategy=no"  # the printed origin
        else:  # a later save_steps=N: saving follows it, and the printed save_strategy says so
            v["save_strategy"] = "steps"
            s.sources["save_strategy"] = f"{s.origin('save_steps')}, as save_steps"
    elif save != "steps":
        raise SftkitError(
            f"save_strategy={save!r} ({s.origin('save_strategy')}) is not supported: sftkit saves global_step_N every "
            "save_steps=N optimizer steps (trainer.save_freq) and global_step_final at the end; use save_steps."
        )
    evaluate = _value(v["eval_strategy"])
    if evaluate == "epoch":
        raise SftkitError(
            f"eval_strategy='epoch' ({s.origin('eval_strategy')}) is not supported: validation runs every "
            "eval_steps=N optimizer steps (trainer.test_freq) and at the end; use eval_steps."
        )
    if evaluate == "no" and "eval_strategy" in s.sources:  # asked explicitly: no validation at all
        files = bool(v["val_files"]) and precedence(s.origin("val_files")) > precedence(s.origin("eval_strategy"))
        if _wins(s, "eval_strategy", "eval_steps", bool(v["eval_steps"])) and not files:
            v["val_files"], v["eval_steps"] = [], None
            for name in ("val_files", "eval_steps"):
                s.sources[name] = f"{s.origin('eval_strategy')}, as eval_strategy=no"
    if (
        v["lr_scheduler_type"] in NEEDS_VALIDATION_METRICS
        or _value(v["lr_scheduler_type"]) in NEEDS_VALIDATION_METRICS
    ):
        raise SftkitError(
            f"lr_scheduler_type={_value(v['lr_scheduler_type'])!r} ({s.origin('lr_scheduler_type')}) steps on "
            "validation metrics, which sftkit computes only every eval_steps; use cosine, linear, constant, "
            "cosine_with_min_lr (with lr_scheduler_kwargs) or warmup_stable_decay (optim.lr_scheduler=wsd)."
        )


def _loggers(v: dict[str, Any], s) -> None:
    """`report_to` (transformers) and `logger` (sftkit, verl's trainer.logger) are one setting; the console always
    logs. Both given and different is an error."""
    logger = [name.strip() for name in v["logger"]]
    if "report_to" in s.sources:
        report = v["report_to"] if isinstance(v["report_to"], list) else [v["report_to"]]
        report = [str(r).strip() for r in report if r is not None]
        asked = ["none"] if report in ([], ["none"]) else report
        if "logger" in s.sources and set(asked) - {"console"} != set(logger) - {"console"}:
            later = _later(s, "report_to", "logger")
            if later is None:
                raise SftkitError(
                    f"report_to={report} ({s.origin('report_to')}) and trainer.logger={logger} "
                    f"({s.origin('logger')}) say different things; they are one setting: keep trainer.logger."
                )
            if later == "logger":
                asked = logger
        if asked != logger:
            s.sources["logger"] = f"{s.origin('report_to')}, as report_to"  # the printed origin
        if "all" in asked:
            asked = ["wandb", "tensorboard"]
        logger = ["console", *[a for a in asked if a != "console"]] if asked != ["none"] else ["none"]
    unknown = set(logger) - LOGGERS
    if unknown:
        raise SftkitError(f"trainer.logger: unknown logger(s) {sorted(unknown)}; use {', '.join(sorted(LOGGERS))}")
    v["logger"] = logger


def check_accumulation(v: dict[str, Any], s, accum: int | None) -> None:
    """`gradient_accumulation_steps` set by the user must agree with the one derived from the global batch."""
    if "gradient_accumulation_steps" not in s.sources or "train_batch_size" not in s.sources:
        return
    asked = v["gradient_accumulation_steps"]
    if accum is None or asked != accum:
        derived = "none (token-budget micro-batches)" if accum is None else str(accum)
        raise SftkitError(
            f"gradient_accumulation_steps={asked} ({s.origin('gradient_accumulation_steps')}) contradicts "
            f"data.train_batch_size={v['train_batch_size']} ({s.origin('train_batch_size')}), from which sftkit "
            f"derives {derived}: the global batch decides the accumulation. Set data.train_batch_size = micro batch "
            f"x processes x {asked} instead (or drop gradient_accumulation_steps)."
        )


def check_upstream(train, s) -> None:
    """The optimizer, schedule and attention kernel as transformers will build them, checked now. Every rank
    finds the same problem (shared: printed once, by rank 0)."""
    try:
        _check_optimizer(train, s)
        _check_scheduler(train, s)
    except SftkitError as exc:
        raise SftkitError(str(exc), shared=True, exit_code=exc.exit_code) from None


def _check_optimizer(train, s) -> None:
    from transformers import Trainer

    try:
        Trainer.get_optimizer_cls_and_kwargs(train)
    except ImportError as exc:
        raise SftkitError(f"optim={_value(train.optim)!r} ({s.origin('optim')}): {_first_line(exc)}") from None
    except (ValueError, TypeError) as exc:
        if "model" in str(exc).lower():  # GaLore/Apollo/LOMO need the model: checked when it is built
            return
        args = f" optim_args={train.optim_args!r} ({s.origin('optim_args')}, key=value,key=value)" * bool(
            train.optim_args
        )
        raise SftkitError(f"optim={_value(train.optim)!r} ({s.origin('optim')}){args}: {_first_line(exc)}") from None
    unread = _unread_optim_args(train)
    if unread:
        optim = _value(train.optim)
        raise SftkitError(
            f"optim_args={train.optim_args!r} ({s.origin('optim_args')}): {', '.join(unread)} not read by "
            f"optim={optim!r} (transformers passes optim_args only to optimizers with settings of their own, and "
            "each reads its own keys: AdEMAMix, GaLore, Apollo, AnyPrecisionAdamW, schedule-free, SGD momentum/"
            "nesterov, ...). Drop or correct those keys; learning_rate and weight_decay are set with their own keys."
        )


def _unread_optim_args(train) -> list[str]:
    """The optim_args keys that change nothing in the optimizer transformers builds (a typo, or another
    optimizer's setting)."""
    if not train.optim_args:
        return []
    base = _optimizer_kwargs(train, None)
    pairs = [p for p in train.optim_args.replace(" ", "").split(",") if p]
    return [p.split("=")[0] for p in pairs if _optimizer_kwargs(train, p) == base]


def _optimizer_kwargs(train, optim_args: str | None) -> dict:
    """The optimizer's keyword arguments transformers builds from `train` with these optim_args."""
    from transformers import Trainer

    asked, train.optim_args = train.optim_args, optim_args
    try:
        return Trainer.get_optimizer_cls_and_kwargs(train)[1]
    finally:
        train.optim_args = asked


def _check_scheduler(train, s) -> None:
    import torch
    from transformers import get_scheduler

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    try:
        get_scheduler(
            train.lr_scheduler_type,
            optimizer,
            num_warmup_steps=1,
            num_training_steps=10,
            scheduler_specific_kwargs=train.lr_scheduler_kwargs or {},
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise SftkitError(
            f"lr_scheduler_type={_value(train.lr_scheduler_type)!r} ({s.origin('lr_scheduler_type')}) with "
            f"lr_scheduler_kwargs={train.lr_scheduler_kwargs or {}}: {_first_line(exc)} "
            "(e.g. cosine_with_min_lr needs lr_scheduler_kwargs='{\"min_lr_rate\": 0.1}')"
        ) from None


def check_attention_name(name: str, s) -> None:
    """A kernel name transformers knows (flash-attn's presence is checked with the model: training/modeling.py)."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    valid = ["eager", *ALL_ATTENTION_FUNCTIONS.valid_keys()]
    if name not in valid and "/" not in name:  # "org/kernel" names a hub kernel (transformers' kernels support)
        raise SftkitError(
            f"attn_implementation={name!r} ({s.origin('attn_implementation')}) is not an attention kernel; use one "
            f"of: {', '.join(sorted(set(valid)))}"
        )


def _wins(s, name: str, other: str, contradicts: bool) -> bool:
    """Whether setting `name` applies over `other` that says otherwise (`contradicts`): where `other` was not set,
    or set in an earlier source (recipe < environment < command line); both in the same source is an error."""
    if not contradicts or other not in s.sources:
        return True
    later = _later(s, name, other)
    if later is None:
        raise SftkitError(
            f"{name}={_value(s.values[name])!r} ({s.origin(name)}) and {other}={_value(s.values[other])!r} "
            f"({s.origin(other)}) contradict each other; keep one."
        )
    return later == name


def _later(s, a: str, b: str) -> str | None:
    """Of two settings that say different things about one thing, the one from the later source (recipe <
    environment < command line), or None when both come from the same kind of source."""
    rank_a, rank_b = precedence(s.origin(a)), precedence(s.origin(b))
    return None if rank_a == rank_b else a if rank_a > rank_b else b


def _value(x):
    return getattr(x, "value", x)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def accelerator() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
