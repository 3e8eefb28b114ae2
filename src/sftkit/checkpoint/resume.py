"""Which checkpoint to resume from, and whether its run matches this one (SPEC §5)."""

from __future__ import annotations

from pathlib import Path

from sftkit.checkpoint.layout import REQUIRED, find_latest, is_complete, load_state
from sftkit.errors import SftkitError

# What shapes the training. Not compared: output folder, logger, resume settings, world size and micro batch
# (a checkpoint resumes on any number of GPUs with the same global batch).
SHAPING_KEYS = (
    "model_name_or_path",
    "lora_rank",
    "lora_alpha",
    "target_modules",
    "train_files",
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
        missing = [f for f in REQUIRED if not (path / f).is_file()]
        raise SftkitError(
            f"checkpoint {path} is incomplete (missing {', '.join(missing)}): it was interrupted while "
            "being written or copied. Use an earlier one, or trainer.resume_from_checkpoint=auto."
        )
    return path


def differences(saved: dict, current: dict) -> list[str]:
    return [
        f"  {k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}"
        for k in SHAPING_KEYS
        if saved.get(k) != current.get(k)
    ]


def check_compatible(path: Path, current: dict, ignore: bool) -> dict:
    """Refuse a checkpoint from a run that differs in what shapes the training, unless told to ignore it."""
    state = load_state(path)
    diffs = differences(state.get("config", {}), current)
    if diffs and not ignore:
        raise SftkitError(
            f"checkpoint {path} comes from a different run:\n"
            + "\n".join(diffs)
            + "\nResume with the same settings, or set trainer.resume_ignore_mismatch=true to go on anyway."
        )
    if diffs:
        print("resume: ignoring differences from the checkpoint's run:\n" + "\n".join(diffs))
    return state
