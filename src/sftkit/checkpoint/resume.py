"""Which checkpoint a run resumes from, whether its run matches this one, and whose output folder this is
(docs/contracts.md §5).

Rank 0 decides and every rank follows: `choose` picks the checkpoint on rank 0, shares it, and checks that every
rank can read it (nodes without a shared file system would otherwise resume some ranks and start others fresh).
"""

from __future__ import annotations

import os
from pathlib import Path

from sftkit import dist
from sftkit.checkpoint import base_model
from sftkit.checkpoint.layout import find_latest, holds_checkpoints, is_complete, load_state, missing
from sftkit.errors import SftkitError

# What shapes the training. Not compared: output folder, logger, resume settings, world size and micro batch
# (a checkpoint resumes on any number of GPUs with the same global batch), the data files' names (their content
# is compared instead, see `data_difference`).
SHAPING_KEYS = (
    "model_name_or_path",
    "lora_rank",
    "lora_alpha",
    "target_modules",
    "prompt_key",
    "response_key",
    "max_length",
    "truncation",
    "global_batch",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "num_train_epochs",
    "max_steps",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "seed",
    # batching: another one puts other examples in each step, and the data position would point elsewhere
    "use_dynamic_bsz",
    "max_token_len_per_gpu",
    "use_remove_padding",
    "train_sampling_strategy",
    "prompt_groups",  # shared-prompt packing ran: each prompt's solutions drawn together (data.share_prompts)
    "optim",  # another optimizer's state does not load
    # what each step does with its gradient, and in which precision
    "max_grad_norm",
    "bf16",
    "fp16",
    "dtype",
    "adam_epsilon",
    "optim_args",
    "lr_scheduler_kwargs",
    "lora_dropout",
    "neftune_noise_alpha",
    "label_smoothing_factor",
    "data_seed",
)


def pick(setting: str | None, output_dir: str) -> Path | None:
    """`auto` -> newest complete checkpoint in output_dir (None if there is none); a path -> that checkpoint."""
    if not setting or str(setting).lower() in ("none", "null", "false", "disable"):
        return None
    if str(setting).lower() == "auto":
        found = find_latest(output_dir)
        if found is None:
            print(f"resume: no complete checkpoint in {output_dir}; starting from scratch")
        return found
    path = Path(setting)
    if not path.is_dir():
        raise SftkitError(
            f"trainer.resume_from_checkpoint={setting}: no such checkpoint folder. "
            "Use a global_step_* folder or `auto` (newest complete one in the output folder)."
        )
    if not is_complete(path):
        raise SftkitError(
            f"checkpoint {path} is incomplete (missing {', '.join(missing(path))}): it was interrupted while "
            "being written or copied. Use an earlier one, or trainer.resume_from_checkpoint=auto."
        )
    return path


def choose(setting: str | None, output_dir: str) -> tuple[Path | None, dict | None]:
    """Rank 0 picks the checkpoint; every rank must be able to read it. Returns (path, its train state)."""
    path = dist.on_main(lambda: pick(setting, output_dir))
    if path is None:
        return None, None

    def readable() -> dict:
        if not is_complete(path):
            raise SftkitError(
                f"rank 0 resumes from {path}, but this process cannot read it (no complete checkpoint there): "
                "put the output folder on a file system every node sees, or copy the checkpoint to each node."
            )
        return load_state(path)

    saved = dist.agree(readable)
    dist.print0(f"resuming from {path} (step {saved['global_step']})")
    return path, saved


def guard_output_dir(output_dir: str, resume_from: Path | None) -> None:
    """A new run never writes into a folder that holds another run's checkpoints (it would overwrite its
    global_step_final and prune its numbered ones)."""
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise SftkitError(f"output_dir {out} is a file; point trainer.default_local_dir (output_dir) at a folder.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".sftkit-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise SftkitError(
            f"output_dir {out} is not writable ({exc.strerror}); choose a folder you can write to "
            "(trainer.default_local_dir / OUTPUT_DIR)."
        ) from None
    theirs = [p for p in holds_checkpoints(out) if is_complete(p)]
    if not theirs or (resume_from is not None and resume_from.resolve().parent == out.resolve()):
        return
    names = ", ".join(p.name for p in theirs[:4]) + (", ..." if len(theirs) > 4 else "")
    raise SftkitError(
        f"output_dir {out} already holds checkpoints of a run ({names}); a new run there would overwrite its "
        "global_step_final and could prune the others. To continue that run: trainer.resume_from_checkpoint=auto. "
        "To start a new one: choose another folder (trainer.default_local_dir=... / OUTPUT_DIR)."
    )


def _same(key: str, saved, current) -> bool:
    if key == "model_name_or_path" and isinstance(saved, str) and isinstance(current, str):
        return os.path.normpath(saved) == os.path.normpath(current)  # "models/x/" is "models/x"
    return saved == current


def differences(saved: dict, current: dict, skip: tuple[str, ...] = ()) -> list[str]:
    """The shaping settings that differ. A key the checkpoint does not record (saved by an older sftkit) is not
    compared."""
    saved = {"prompt_groups": bool(saved.get("share_prompts")), **saved}  # before it was recorded: off unless asked
    hint = {"prompt_groups": " (shared-prompt packing: data.share_prompts=false or true picks it)"}
    return [
        f"  {k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}{hint.get(k, '')}"
        for k in SHAPING_KEYS
        if k in saved and k not in skip and not _same(k, saved.get(k), current.get(k))
    ]


def weights_difference(saved: str | None, model: str | None) -> tuple[str | None, bool]:
    """(a line when the base model's weights differ from the checkpoint's run, whether they are known to be the
    same). Unknown (no fingerprint recorded, or no local copy of the model): only the path is compared."""
    current = base_model.fingerprint(model)
    if saved is None or current is None:
        return None, False
    if saved == current:
        return None, True
    return (
        f"  base model weights: {model} holds other weights than the checkpoint's run was trained from "
        f"(fingerprint {saved[:12]} vs now {current[:12]}: rebuilt, re-downloaded or replaced?)"
    ), False


def data_difference(saved: dict | None, current: dict) -> str | None:
    """'training data changed: 48 -> 60 rows, content differs', or None when it is the same data made into the same
    examples."""
    if not saved:
        return None
    if saved.get("files_digest") == current["files_digest"]:
        if saved.get("key") in (None, current["key"]):
            return None
        return (
            "  training examples built differently from the same data (the tokenizer, its chat template, or "
            "sftkit's labels version changed)"
        )
    rows = f"{saved.get('rows')} -> {current['rows']} rows" if saved.get("rows") != current["rows"] else "same rows"
    return f"  training data changed: {rows}, content differs (a fingerprint of the files' content)"


def check_compatible(path: Path, saved: dict, current: dict, data: dict, ignore: bool) -> None:
    """Refuse a checkpoint from a run that differs in what shapes the training, unless told to ignore it."""
    weights, same_weights = weights_difference(saved.get("base_model"), current.get("model_name_or_path"))
    diffs = differences(saved.get("config", {}), current, skip=("model_name_or_path",) if same_weights else ())
    diffs[:0] = [line for line in (weights, data_difference(saved.get("data"), data)) if line]
    if diffs and not ignore:
        raise SftkitError(
            f"checkpoint {path} comes from a different run:\n"
            + "\n".join(diffs)
            + "\nResume with the same settings and data, start a new run in another folder, or set "
            "trainer.resume_ignore_mismatch=true to go on anyway."
        )
    if diffs:
        dist.print0("resume: ignoring differences from the checkpoint's run:\n" + "\n".join(diffs))
