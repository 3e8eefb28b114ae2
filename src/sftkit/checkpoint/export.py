"""`sftkit export CHECKPOINT --output DIR [--merge-lora]`: any global_step_* -> a Hugging Face model folder.

Full fine-tuning: config + safetensors weights (in the base model's dtype) + tokenizer + generation config; loads
with AutoModelForCausalLM.from_pretrained and serves in vLLM. LoRA: the PEFT adapter folder; with --merge-lora
also the merged model in DIR/merged. The generation config lists the end-of-turn token the model was trained to
end its answers with among its EOS ids, so that generation stops there even for base models (whose own config
names only `<|endoftext|>`).

The folder is written next to DIR as `.tmp-DIR` and renamed into place. DIR may not hold anything but an earlier
export (use another folder, or --overwrite for that case), and never a run's checkpoints.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from sftkit.checkpoint.layout import MODEL, REQUIRED, holds_checkpoints, is_complete
from sftkit.dist import user_errors
from sftkit.errors import SftkitError
from sftkit.outputs import refuse_inputs

EXPORT_MARKERS = ("config.json", "adapter_config.json")  # what makes a folder "an earlier export"


def _base_dtype(config):
    import torch

    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def check_output(output: Path, overwrite: bool) -> None:
    """Before any work: DIR must be new, empty, or (with --overwrite) an earlier export; never checkpoints."""
    if output.exists() and not output.is_dir():
        raise SftkitError(f"--output {output} is a file; give a folder to write the model into.")
    if not output.is_dir() or not any(output.iterdir()):
        parent = output.parent if output.parent != Path("") else Path(".")
        if parent.exists() and not parent.is_dir():
            raise SftkitError(f"--output {output}: {parent} is a file, not a folder.")
        return
    if holds_checkpoints(output) or (output / "latest").exists():
        raise SftkitError(
            f"--output {output} holds training checkpoints (global_step_*): exporting there would replace them. "
            "Export into another folder, e.g. --output exports/my-model."
        )
    if not any((output / marker).is_file() for marker in EXPORT_MARKERS):
        raise SftkitError(
            f"--output {output} is not empty and is not an earlier export ({', '.join(sorted(os.listdir(output))[:5])}"
            "...): choose an empty or new folder."
        )
    if not overwrite:
        raise SftkitError(f"--output {output} already holds an exported model; add --overwrite to replace it.")


def export_checkpoint(ckpt: str | Path, output: str | Path, merge_lora: bool = False, overwrite: bool = False) -> Path:
    from sftkit.checkpoint.layout import load_state

    ckpt, output = Path(ckpt), Path(output)
    if not is_complete(ckpt):
        raise SftkitError(f"{ckpt} is not a complete global_step_* checkpoint (needs {', '.join(REQUIRED)}).")
    refuse_inputs(output, "--output", [ckpt])  # the one convention of every command (sftkit.outputs)
    check_output(output, overwrite)
    cfg = load_state(ckpt)["config"]
    tmp = output.with_name(f".tmp-{output.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if cfg.get("lora_rank", 0) > 0:
            _export_lora(ckpt, cfg, tmp, merge_lora)
        else:
            _export_full(ckpt, cfg, tmp)
        _public_files(tmp)
        if output.exists():
            shutil.rmtree(output)
        tmp.rename(output)
    except SftkitError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as exc:  # a full disk: OSError from torch, SafetensorError from safetensors
        shutil.rmtree(tmp, ignore_errors=True)
        raise SftkitError(f"could not write the export {output}: {type(exc).__name__}: {exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output


def _load_weights(ckpt: Path) -> dict:
    from sftkit.checkpoint.layout import read

    return read(ckpt / MODEL, "model weights", weights_only=True)


def _export_full(ckpt: Path, cfg: dict, tmp: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from sftkit.training.modeling import load_tokenizer

    base, trust = cfg["model_name_or_path"], cfg.get("trust_remote_code", False)
    config = AutoConfig.from_pretrained(base, trust_remote_code=trust)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, trust_remote_code=trust)
    result = model.load_state_dict(_load_weights(ckpt), strict=False)
    tied = getattr(model, "_tied_weights_keys", None) or {}
    missing = [k for k in result.missing_keys if k not in tied]
    if result.unexpected_keys or missing:
        raise SftkitError(
            f"{ckpt}/model.pt does not match {base}: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}"
        )
    model.tie_weights()
    tokenizer = load_tokenizer(base, trust)
    model.generation_config = generation_config(base, tokenizer)
    model.to(_base_dtype(config)).save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)


def _export_lora(ckpt: Path, cfg: dict, tmp: Path, merge_lora: bool) -> None:
    import torch
    from peft import get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from sftkit.training.modeling import load_tokenizer, lora_config

    base, trust = cfg["model_name_or_path"], cfg.get("trust_remote_code", False)
    state = _load_weights(ckpt)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, trust_remote_code=trust)
    model = get_peft_model(
        model, lora_config(cfg["lora_rank"], cfg["lora_alpha"], cfg.get("lora_dropout", 0.0), cfg["target_modules"])
    )
    missing = set(state) - set(model.state_dict())
    if missing:
        raise SftkitError(f"{ckpt}/model.pt has weights this adapter does not: {sorted(missing)[:3]}...")
    model.load_state_dict(state, strict=False)
    model.save_pretrained(tmp)
    tokenizer = load_tokenizer(base, trust)
    tokenizer.save_pretrained(tmp)
    if merge_lora:
        merged = model.merge_and_unload()
        merged.generation_config = generation_config(base, tokenizer)
        merged.to(_base_dtype(AutoConfig.from_pretrained(base, trust_remote_code=trust)))
        merged.save_pretrained(tmp / "merged")
        tokenizer.save_pretrained(tmp / "merged")


def generation_config(base: str, tokenizer):
    """The base model's generation config, with the trained end-of-turn token among its EOS ids."""
    from transformers import GenerationConfig

    from sftkit.data.labels import Encoder

    try:
        config = GenerationConfig.from_pretrained(base)
    except OSError:
        config = GenerationConfig()
    eos = config.eos_token_id
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    for token in Encoder(tokenizer).stop_ids:
        if token not in eos:
            eos.append(token)
    config.eos_token_id = eos
    if config.pad_token_id is None and tokenizer.pad_token_id is not None:
        config.pad_token_id = tokenizer.pad_token_id
    return config


def _public_files(folder: Path) -> None:
    """Readable by everyone like the rest of the folder (safetensors writes its file with mode 0600)."""
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o644)


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sftkit export", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a global_step_* folder (global_step_500, global_step_final, ...)")
    p.add_argument(
        "--output",
        required=True,
        help="new or empty folder to write the Hugging Face model (or LoRA adapter) to; never a run's folder",
    )
    p.add_argument(
        "--merge-lora", action="store_true", help="LoRA checkpoints: also write the merged model in OUTPUT/merged"
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT when it holds an earlier export")
    return p


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    out = export_checkpoint(args.checkpoint, args.output, args.merge_lora, args.overwrite)
    print(f"exported {args.checkpoint} -> {out}")
    return 0
