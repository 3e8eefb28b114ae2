"""`sftkit export CHECKPOINT --output DIR [--merge-lora]`: any global_step_* -> a Hugging Face model folder.

Full fine-tuning: config + safetensors weights (in the base model's dtype) + tokenizer + generation config; loads
with AutoModelForCausalLM.from_pretrained and serves in vLLM. LoRA: the PEFT adapter folder; with --merge-lora
also the merged model in DIR/merged.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from sftkit.checkpoint.layout import MODEL, is_complete, load_state
from sftkit.errors import SftkitError, user_errors


def _base_dtype(config):
    import torch

    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def export_checkpoint(ckpt: str | Path, output: str | Path, merge_lora: bool = False) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    from sftkit.training.modeling import load_tokenizer, lora_config

    ckpt, output = Path(ckpt), Path(output)
    if not is_complete(ckpt):
        raise SftkitError(
            f"{ckpt} is not a complete global_step_* checkpoint (needs model.pt, optimizer.pt, "
            "scheduler.pt, train_state.pt)."
        )
    cfg = load_state(ckpt)["config"]
    base, trust = cfg["model_name_or_path"], cfg.get("trust_remote_code", False)
    state = torch.load(ckpt / MODEL, map_location="cpu", weights_only=True)
    tokenizer = load_tokenizer(base, trust)
    tmp = output.with_name(f".tmp-{output.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    if cfg.get("lora_rank", 0) > 0:
        from peft import get_peft_model

        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, trust_remote_code=trust)
        model = get_peft_model(
            model,
            lora_config(cfg["lora_rank"], cfg["lora_alpha"], cfg.get("lora_dropout", 0.0), cfg["target_modules"]),
        )
        missing = set(state) - set(model.state_dict())
        if missing:
            raise SftkitError(f"{ckpt}/model.pt has weights this adapter does not: {sorted(missing)[:3]}...")
        model.load_state_dict(state, strict=False)
        model.save_pretrained(tmp)
        if merge_lora:
            merged = model.merge_and_unload()
            merged.to(_base_dtype(AutoConfig.from_pretrained(base, trust_remote_code=trust)))
            merged.save_pretrained(tmp / "merged")
            tokenizer.save_pretrained(tmp / "merged")
    else:
        config = AutoConfig.from_pretrained(base, trust_remote_code=trust)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, trust_remote_code=trust)
        result = model.load_state_dict(state, strict=False)
        tied = getattr(model, "_tied_weights_keys", None) or {}
        missing = [k for k in result.missing_keys if k not in tied]
        if result.unexpected_keys or missing:
            raise SftkitError(
                f"{ckpt}/model.pt does not match {base}: missing {missing[:3]}, "
                f"unexpected {result.unexpected_keys[:3]}"
            )
        model.tie_weights()
        try:
            model.generation_config = GenerationConfig.from_pretrained(base)
        except OSError:
            pass
        model.to(_base_dtype(config)).save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if output.exists():
        shutil.rmtree(output)
    tmp.rename(output)
    return output


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sftkit export", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a global_step_* folder (global_step_500, global_step_final, ...)")
    p.add_argument("--output", required=True, help="folder to write the Hugging Face model (or LoRA adapter) to")
    p.add_argument(
        "--merge-lora", action="store_true", help="LoRA checkpoints: also write the merged model in OUTPUT/merged"
    )
    return p


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    out = export_checkpoint(args.checkpoint, args.output, args.merge_lora)
    print(f"exported {args.checkpoint} -> {out}")
    return 0
