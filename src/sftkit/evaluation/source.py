"""What `sftkit eval MODEL_OR_CHECKPOINT` loads: a Hugging Face folder or hub id, a PEFT adapter on its base model,
a `global_step_*` checkpoint, or a run folder (its newest complete checkpoint).

A checkpoint is used through its `huggingface/` folder (written at the end of training: the model for full
fine-tuning, the PEFT adapter for LoRA); a checkpoint without one (`global_step_500`) is exported on the fly into a
temporary folder, removed afterwards, by the same code as `sftkit export`; so is one whose `huggingface/` weights are
missing or truncated (the intact model.pt beside them is used, and the message says how to repair the export). An
incomplete checkpoint (an interrupted save) is refused before anything is loaded.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sftkit.checkpoint.layout import HF_DIR, STATE, find_latest, holds_checkpoints, is_complete, missing
from sftkit.errors import SftkitError

ADAPTER = "adapter_config.json"
GENERIC = {HF_DIR, "merged"}  # folder names that say nothing about the model, skipped in labels


@dataclass(frozen=True)
class ModelSource:
    model: str  # folder or hub id of a full model (the base model when `adapter` is set)
    adapter: str | None  # PEFT adapter folder applied on `model`
    tokenizer: str  # folder or hub id holding the tokenizer
    merged: str | None  # an already merged copy of model + adapter, when the checkpoint has one
    description: str  # for the printed report


def label_of(given: str | Path) -> str:
    """A short name for output files: runs/tiny/global_step_final -> tiny-global_step_final, Qwen/Qwen2.5-1.5B ->
    Qwen-Qwen2.5-1.5B."""
    path = Path(given).expanduser()
    if not path.exists():
        return str(given).strip("/").replace("/", "-") or "model"
    parts = [p for p in path.resolve().parts if p not in GENERIC and p != path.anchor][-2:]
    return "-".join(parts) or "model"


def _folder(path: Path, what: str) -> ModelSource:
    """A Hugging Face folder: a model (config.json) or a PEFT adapter (adapter_config.json) on its base model."""
    if (path / ADAPTER).is_file():
        base = json.loads((path / ADAPTER).read_text()).get("base_model_name_or_path")
        if not base:
            raise SftkitError(f"{path / ADAPTER} names no base model (base_model_name_or_path): set it to the model "
                              "the adapter was trained on.")  # fmt: skip
        _check_base(base, path)
        tokenizer = str(path) if (path / "tokenizer_config.json").is_file() else base
        merged = path / "merged"
        merged_ok = str(merged) if (merged / "config.json").is_file() else None
        return ModelSource(base, str(path), tokenizer, merged_ok, f"model: {what}, LoRA adapter {path} on {base}")
    if (path / "config.json").is_file():
        return ModelSource(
            str(path), None, str(path), None, f"model: {what}" + (f", {path}" if what != str(path) else "")
        )
    raise SftkitError(
        f"{path} is neither a Hugging Face model folder (config.json), a PEFT adapter (adapter_config.json), a "
        "global_step_* checkpoint nor a run folder with checkpoints. Give one of those."
    )


def _check_base(base: str, adapter: Path) -> None:
    from sftkit.training.modeling import check_model_path

    try:
        check_model_path(base)
    except SftkitError as exc:
        raise SftkitError(f"the base model of the LoRA adapter {adapter} cannot be loaded: {exc}") from None


def _checkpoint(path: Path, stack: ExitStack) -> ModelSource:
    if not is_complete(path):
        raise SftkitError(
            f"{path} is not a complete checkpoint ({', '.join(missing(path))} missing: a save that was interrupted?). "
            "Evaluate a complete one: the run folder's `latest` file names the newest."
        )
    hf = path / HF_DIR
    if (hf / ADAPTER).is_file() or (hf / "config.json").is_file():
        problem = export_damage(hf)
        if problem is None:
            return _folder(hf, f"checkpoint {path}")
        print(
            f"{hf} is damaged ({problem}): evaluating the checkpoint's own weights (model.pt), exported into a "
            f"temporary folder. To repair the export: sftkit export {path} --output {hf} --overwrite",
            flush=True,
        )
    else:
        print(f"{path} has no {HF_DIR}/ folder: exporting it into a temporary folder", flush=True)
    from sftkit.checkpoint.export import export_checkpoint

    out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sftkit-eval-"))) / "model"
    export_checkpoint(path, out)
    return _folder(out, f"checkpoint {path} (exported)")


def _safetensors_damage(file: Path) -> str | None:
    """Why a safetensors file cannot be loaded whole (missing, truncated, not safetensors), from its header: the
    file must end where its last tensor ends."""
    try:
        size = file.stat().st_size
        with open(file, "rb") as fh:
            length = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(length)) if 0 < length <= size - 8 else None
    except FileNotFoundError:
        return f"{file.name} is missing"
    except (OSError, ValueError) as exc:
        return f"{file.name} cannot be read ({exc})"
    if not isinstance(header, dict):
        return f"{file.name} is not a safetensors file"
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)]
    if size < 8 + length + max(ends, default=0):
        return f"{file.name} is truncated ({size} bytes, {8 + length + max(ends, default=0)} expected)"
    return None


def export_damage(hf: Path) -> str | None:
    """Why an exported folder's weights are missing or damaged, or None: every safetensors file it names
    (a sharded model's index) or holds must be whole."""
    if (hf / ADAPTER).is_file():
        files = [hf / "adapter_model.safetensors"]
    elif (hf / "model.safetensors.index.json").is_file():
        try:
            shards = json.loads((hf / "model.safetensors.index.json").read_text())["weight_map"].values()
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            return f"model.safetensors.index.json cannot be read ({exc})"
        files = [hf / name for name in sorted(set(shards))]
    elif (hf / "pytorch_model.bin").is_file():
        return None  # not written by sftkit; loaded as it is
    else:
        files = [hf / "model.safetensors"]
    return next(filter(None, map(_safetensors_damage, files)), None)


def resolve(given: str, stack: ExitStack) -> ModelSource:
    """The model behind MODEL_OR_CHECKPOINT; temporary folders live until `stack` closes."""
    path = Path(given).expanduser()
    if path.is_dir() and not (path / STATE).exists() and (holds_checkpoints(path) or (path / "latest").exists()):
        latest = find_latest(path)
        if latest is None:
            raise SftkitError(f"{path} is a run folder without a complete checkpoint: give a global_step_* folder.")
        print(f"{path} is a run folder: evaluating its newest complete checkpoint, {latest.name}", flush=True)
        path = latest
    if path.is_dir() and ((path / "config.json").is_file() or (path / ADAPTER).is_file()):
        problem = export_damage(path)
        if problem and (path.parent / STATE).exists():  # a checkpoint's export: its model.pt is beside it
            path = path.parent
        elif problem:
            raise SftkitError(f"{path}: {problem}; the model's weights are damaged. Copy or download it again.")
    if path.is_dir() and (path.name.startswith("global_step_") or (path / STATE).exists()):
        return _checkpoint(path, stack)
    if path.is_dir():
        return _folder(path, str(path))
    from sftkit.training.modeling import check_model_path

    check_model_path(given)  # a hub id (cached or reachable), else a clear "does not exist"
    return ModelSource(given, None, given, None, f"model: {given}")


def load_model(source: ModelSource, device: str | None = None):
    """The model for transformers generation, in eval mode: bf16 on a GPU that has it, fp32 on CPU; an adapter is
    merged into its base (the same function, faster to generate with). `device`: default the GPU if any."""
    import torch
    from transformers import AutoModelForCausalLM

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device != "cpu" and torch.cuda.is_bf16_supported()
    model = AutoModelForCausalLM.from_pretrained(source.model, dtype=torch.bfloat16 if bf16 else torch.float32)
    if source.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.adapter).merge_and_unload()
    return model.to(device).eval()


def merged_folder(source: ModelSource, stack: ExitStack) -> str:
    """A folder with the full model (for vLLM): the model itself, the checkpoint's merged copy, or a merge written
    into a temporary folder."""
    if not source.adapter:
        return source.model
    if source.merged:
        return source.merged
    from sftkit.training.modeling import load_tokenizer

    out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sftkit-eval-merged-")))
    print(f"merging the LoRA adapter into its base model in {out}", flush=True)
    load_model(source, device="cpu").save_pretrained(out)  # on CPU: the GPU's memory is vLLM's
    load_tokenizer(source.tokenizer).save_pretrained(out)
    return str(out)
