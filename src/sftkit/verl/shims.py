"""The seed's launch scripts (`scripts/run_sft_training.sh`, `scripts/run_sft_peft.sh`) on top of `sftkit train`.

Same environment variables and defaults as the seed's table (verl.keys.SEED_DEFAULTS), same trailing `key=value`
overrides. NPROC_PER_NODE > 1 launches through `accelerate launch` (FSDP2 for full fine-tuning, DDP for LoRA on
GPUs; 2+ CPU processes over gloo without GPUs).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from sftkit import resources
from sftkit.dist import user_errors
from sftkit.errors import SftkitError
from sftkit.supervise import run_training
from sftkit.verl.keys import SEED_DEFAULTS

USAGE = """usage: [ENV=value ...] bash scripts/run_sft_{training,peft}.sh [key=value ...]

Environment (seed defaults): NPROC_PER_NODE (1), MODEL_NAME (Qwen/Qwen2.5-0.5B-Instruct), TRAIN_FILE (required),
VAL_FILE (= TRAIN_FILE), OUTPUT_DIR (./sft_output), BATCH_SIZE (4, micro batch per GPU), LEARNING_RATE (1e-5),
EPOCHS (3), MAX_LENGTH (2048), LORA_RANK (16) and LORA_ALPHA (32) for run_sft_peft.sh only.
Overrides: verl keys such as trainer.logger=console data.max_length=4096 trainer.save_freq=500
(see `sftkit train --help`). Without a recipe, everything else takes sftkit's defaults."""


def launch_command(kind: str, nproc: int) -> list[str]:
    train = ["-m", "sftkit.train"]
    if nproc <= 1:
        return [sys.executable, *train]
    import torch

    name = ("fsdp4" if kind == "full" else "ddp") if torch.cuda.is_available() else "cpu_ddp"
    config = resources.accelerate_config(name)  # `sftkit launch`: accelerate launch, the exit code kept (75, 2, 3)
    return [sys.executable, "-m", "sftkit.launch", "--config_file", str(config), "--num_processes", str(nproc), *train]


@user_errors
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    kind, rest = argv[0], argv[1:]
    if any(a in ("-h", "--help") for a in rest):
        print(USAGE)
        return 0
    env = dict(os.environ)
    for key, value in SEED_DEFAULTS.items():
        env.setdefault(key, value)
    if not env.get("TRAIN_FILE"):
        raise SftkitError("TRAIN_FILE is required: TRAIN_FILE=data/sft/train.parquet bash scripts/run_sft_training.sh")
    env.setdefault("VAL_FILE", env["TRAIN_FILE"])
    if kind == "full":  # the seed's full script has no LoRA
        env.pop("LORA_RANK", None)
        env.pop("LORA_ALPHA", None)
    try:
        nproc = int(env["NPROC_PER_NODE"])
    except ValueError:
        raise SftkitError(
            f"NPROC_PER_NODE={env['NPROC_PER_NODE']!r} is not a number of processes; use e.g. NPROC_PER_NODE=8"
        ) from None
    if nproc < 1:
        raise SftkitError(f"NPROC_PER_NODE={nproc}: give 1 or more processes")
    cmd = launch_command(kind, nproc) + rest
    print("+ " + " ".join(cmd), flush=True)
    # supervised: a SIGTERM to the script stops every rank at the next step with a checkpoint and exit 75 (the
    # script exited 143 at once while the training went on, detached)
    stop = Path(tempfile.gettempdir()) / f"sftkit-shim-{os.getpid()}.stop"
    return run_training(cmd, stop, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
