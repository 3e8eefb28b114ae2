"""Loading the model and tokenizer for training: checks first (path, hub, flash-attn, Liger), then the weights."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from sftkit import dist
from sftkit.errors import SftkitError


def check_model_path(name: str, trust_remote_code: bool = False):
    """A local folder, or a hub id that is cached or reachable. Returns the model's config (cheap, no weights)."""
    from transformers import AutoConfig

    local = Path(name).expanduser()
    looks_local = name.startswith((".", "/", "~")) or local.exists() or name.count("/") != 1
    if looks_local and not local.is_dir():
        raise SftkitError(
            f"model path {name!r} does not exist. Build the offline demo model with "
            "`sftkit tiny-model runs/tiny-model`, or give a Hugging Face id such as Qwen/Qwen2.5-0.5B-Instruct."
        )
    if local.is_dir() and not (local / "config.json").is_file():  # transformers would go to the hub with the name
        raise SftkitError(
            f"model path {name!r} is a folder without a config.json, not a model: point model_name_or_path at the "
            "model's folder (where config.json and the weights are), or a checkpoint's global_step_N/huggingface."
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
    if not local.is_dir():
        problem = "the hub is offline (HF_HUB_OFFLINE=1)" if offline else hub_unreachable(name)
        if problem and not cached(name):
            raise missing_model(name, problem)
    try:
        return AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise missing_model(name, f"it could not be fetched ({str(exc).splitlines()[0]})") from None


def cached(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def hub_unreachable(name: str) -> str | None:
    """One quick request (transformers would retry for ~30 s before failing without network)."""
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(name, timeout=10)
    except Exception as exc:  # connection errors, 401/404: all mean "not loadable from here"
        return f"the hub did not give it ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    return None


def missing_model(name: str, why: str) -> SftkitError:
    return SftkitError(
        f"cannot load model {name!r}: no local folder of that name, not in the Hugging Face cache, and {why}. "
        "Download it where you have network (`huggingface-cli download NAME`) or point model_name_or_path at a "
        "local folder."
    )


def check_attention(kernel: str) -> None:
    """The plan's attention kernel (config/plan.py chose it) is installed."""
    if kernel == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise SftkitError(
            "model.use_flash_attention=true but flash-attn is not installed: "
            "`pip install 'sftkit[gpu]'` (needs a CUDA GPU), or drop the option to use SDPA."
        )


def check_liger(use_liger: bool) -> None:
    if not use_liger:
        return
    import torch

    if importlib.util.find_spec("liger_kernel") is None or not torch.cuda.is_available():
        raise SftkitError(
            "model.use_liger=true needs liger-kernel and a CUDA GPU (`pip install 'sftkit[gpu]'`); "
            "drop the option on CPU."
        )


def load_tokenizer(name: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    if tok.eos_token_id is None and not getattr(tok, "chat_template", None):
        raise SftkitError(
            f"the tokenizer of {name} has no EOS token and no chat template: the model could not "
            "learn to stop. Set tokenizer.eos_token (tokenizer_config.json) or use another tokenizer."
        )
    if tok.pad_token_id is None:
        if tok.eos_token_id is None:
            raise SftkitError(
                f"the tokenizer of {name} has neither a pad nor an EOS token; set pad_token in "
                "its tokenizer_config.json."
            )
        # Safe here: padding is masked by attention_mask and labels are -100 on padding (built in labels.py).
        tok.pad_token = tok.eos_token
        print(f"note: {name} has no pad token; padding with EOS ({tok.eos_token!r}), which is never trained")
    return tok


def check_inputs(plan) -> None:
    """Before any expensive work, on every rank: the model exists (and, for sequence parallelism, its heads
    divide), the kernels asked for are installed."""
    m, t = plan.model, plan.train
    config = check_model_path(m.model_name_or_path, t.trust_remote_code)
    check_attention(plan.attn_implementation)
    check_liger(m.use_liger)
    if plan.sp_size > 1:
        from sftkit.training.ulysses import check_heads

        check_heads(config, plan.sp_size)


def check_token_budget(plan, split) -> None:
    """After tokenizing, before the model: token-budget micro-batches (data.use_dynamic_bsz) that no example fits
    are an error, some examples over the budget a warning (training/batching.py)."""
    if plan.token_budget is None:
        return
    from sftkit.data.dataset import column
    from sftkit.training.batching import budget_problem

    error, warning = budget_problem(column(split.dataset, "length"), plan.token_budget, plan.sp_size)
    if error:
        raise SftkitError(error)
    if warning:
        dist.print0(warning)


def load_model(plan):
    import torch
    from transformers import AutoModelForCausalLM

    m = plan.model
    # fp32 master weights; bf16 runs as autocast mixed precision (Trainer/Accelerate), as verl does.
    model = AutoModelForCausalLM.from_pretrained(
        m.model_name_or_path,
        dtype=torch.float32,
        attn_implementation=plan.attn_implementation,
        trust_remote_code=plan.train.trust_remote_code,
    )
    if m.use_liger:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        # TRL's SFTTrainer replaces the LM head's forward with its own fused loss: keep Liger's out of it.
        _apply_liger_kernel_to_instance(model=model, fused_linear_cross_entropy=False, cross_entropy=False)
    return model


def check_target_modules(model, targets: list[str]) -> None:
    """Each LoRA target must name modules of this model (PEFT fails only when none match, with a traceback, and
    silently adapts nothing for a misspelt one among others)."""
    if targets == ["all-linear"]:
        return
    import torch

    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        leaves = sorted({n.rsplit(".", 1)[-1] for n in names})
        raise SftkitError(
            f"model.target_modules: {missing} match no linear layer of {model.config.model_type} (its linear layers: "
            f"{', '.join(leaves)}). Use some of those names, or all-linear."
        )


def lora_config(rank: int, alpha: int, dropout: float, target_modules: list[str]):
    from peft import LoraConfig

    targets = target_modules[0] if target_modules == ["all-linear"] else list(target_modules)
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM")
