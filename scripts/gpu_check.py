"""One prepared check of the GPU paths (run by scripts/gpu_check.sh; `--cpu` dry-runs the same code on CPU).

Environment report; tiny-model full and LoRA training under the FSDP config, one process per GPU (FSDP2 over all of
the card's GPUs; one GPU runs it as one process, unsharded, and its row says so); bf16; padding-free with
flash-attn (or flex attention); Liger if importable; a Qwen2.5-1.5B-shaped model with random weights for 30 steps
with and without activation checkpointing (tokens/s, MFU, peak memory); checkpoint save + resume + export on the
device. Prints a table last and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SFTKIT = [sys.executable, "-m", "sftkit"]  # no console script needed (PYTHONPATH=src on a bare GPU machine)
RUNS = ROOT / "runs" / "gpu_check"  # --workdir changes it
ROWS: list[dict] = []


def sh(cmd: list[str], timeout: int = 300) -> tuple[int, str]:
    print("+ " + " ".join(map(str, cmd)), flush=True)
    try:
        proc = subprocess.run(list(map(str, cmd)), cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, "timeout"
    out = proc.stdout + proc.stderr
    if proc.returncode:
        print(out[-3000:], flush=True)
    return proc.returncode, out


def metrics(out: Path, skip: int = 3) -> dict:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()] if out.exists() else []
    train = [r for r in rows if "loss" in r][skip:] or [r for r in rows if "loss" in r]
    if not train:
        return {}
    pick = lambda k: statistics.median(r[k] for r in train if k in r) if any(k in r for r in train) else None  # noqa: E731
    return {
        "tokens_per_second": pick("tokens_per_second"),
        "mfu": pick("mfu"),
        "peak_memory_gib": max((r.get("peak_memory_gib") or 0) for r in train) or None,
        "padding_fraction": pick("padding_fraction"),
        "last_loss": train[-1]["loss"],
    }


def record(name: str, rc: int, started: float, **numbers) -> None:
    status = "ok" if rc == 0 else ("skipped" if rc == -1 else f"FAILED ({rc})")
    ROWS.append({"check": name, "status": status, "seconds": round(time.time() - started, 1), **numbers})


def sharding(output: str) -> str | None:
    """What the run said it ran (`sharding: FSDP2 over 4 ranks`, `DDP over 2 ranks`, `none`): the row's label."""
    said = [line for line in output.splitlines() if line.startswith("sharding: ")]
    return said[-1].removeprefix("sharding: ").split(" — ")[0] if said else None


def train(name: str, recipe: str, args: list[str], launcher: list[str], timeout: int = 300) -> dict:
    out = RUNS / name
    started = time.time()
    rc, output = sh([*launcher, "--config", recipe, f"output_dir={out}", "trainer.logger=console", *args], timeout)
    numbers = metrics(out) if rc == 0 else {}
    record(name, rc, started, sharding=sharding(output), **numbers)
    return numbers


def main() -> None:
    global RUNS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu", action="store_true", help="dry run on CPU: the same code paths that need no CUDA")
    p.add_argument("--steps", type=int, default=30, help="steps of the 1.5B-shaped runs")
    p.add_argument("--workdir", type=Path, default=RUNS, help="where the runs go (default runs/gpu_check)")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md", help="table appended here")
    args = p.parse_args()
    RUNS = args.workdir.resolve()
    import torch

    gpu = torch.cuda.is_available() and not args.cpu
    device = torch.cuda.get_device_name() if gpu else "CPU (dry run)"
    flash, liger = (importlib.util.find_spec(m) is not None for m in ("flash_attn", "liger_kernel"))
    print(f"device: {device}; torch {torch.__version__} cuda {torch.version.cuda}; flash_attn={flash} liger={liger}")
    RUNS.mkdir(parents=True, exist_ok=True)
    # Its own model and data under the workdir: never touches the user's runs/ or data/sft/.
    sh([*SFTKIT, "tiny-model", RUNS / "tiny-model"])
    sample = sorted(str(x) for x in (ROOT / "data/sample").glob("solutions_*.jsonl"))
    sh([*SFTKIT, "prepare", *sample, "--output-dir", RUNS / "data", "--val-split", "0.1", "--overwrite"])
    paths = [
        f"model_name_or_path={RUNS / 'tiny-model'}",
        f"data.train_files=[{RUNS / 'data/train.parquet'}]",
        f"data.val_files=[{RUNS / 'data/val.parquet'}]",
    ]
    steps = [*paths, "trainer.total_training_steps=20", "trainer.save_freq=10"]
    gpus = torch.cuda.device_count() if gpu else 0
    # fsdp4.yaml with one process per GPU; the label says how many processes ran (the sharding column, what the
    # run itself said it ran: FSDP2 over N ranks, or none for one process).
    fsdp = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "accelerate_configs/fsdp4.yaml",
            "--num_processes", str(gpus), "-m", "sftkit.train"] if gpus else [*SFTKIT, "train"]  # fmt: skip
    how = f"fsdp4.yaml-{gpus}proc" if gpus else "1proc-cpu"
    train(f"tiny-full-{how}", "recipes/tiny.yaml", steps, fsdp)
    train(f"tiny-lora-{how}", "recipes/tiny-lora.yaml", steps, fsdp)
    single = [*SFTKIT, "train"]
    kernel = (
        ["model.use_flash_attention=true"]
        if flash and gpu
        else ["attn_implementation=" + ("flex_attention" if gpu else "sdpa")]
    )
    train("tiny-padding-free", "recipes/tiny.yaml", [*steps, "use_remove_padding=true", *kernel], single)
    if liger and gpu:
        train("tiny-liger", "recipes/tiny.yaml", [*steps, "model.use_liger=true"], single)
    else:
        record("tiny-liger", -1, time.time())
    shape = "qwen2.5-1.5b" if gpu else "tiny"
    big = RUNS / f"model-{shape}"
    sh([*SFTKIT, "tiny-model", big, "--shape", shape])
    n = args.steps if gpu else 4
    base = [
        *paths[1:],  # the data; the model is this one (a key set twice is refused)
        f"model_name_or_path={big}",
        f"trainer.total_training_steps={n}",
        "trainer.save_freq=100000",
        "data.max_length=1024",
        "data.micro_batch_size_per_gpu=8",
        "data.train_batch_size=8",
        "trainer.test_freq=0",
        *(["use_remove_padding=true", "model.use_flash_attention=true"] if flash and gpu else []),
    ]
    for ckpt in ("false", "true"):
        train(
            f"{shape}-act_ckpt_{ckpt}", "recipes/tiny.yaml", [*base, f"activation_checkpointing={ckpt}"], single, 600
        )
    # Checkpoint save + resume + export on the device.
    started = time.time()
    a, b = RUNS / "resume-a", RUNS / "resume-b"
    common = [
        "--config",
        "recipes/tiny.yaml",
        *paths,
        "trainer.total_training_steps=6",
        "trainer.save_freq=3",
        "trainer.logger=console",
        "trainer.test_freq=0",
    ]
    rc1, _ = sh([*single, *common, f"output_dir={a}"])
    rc2, _ = sh([*single, *common, f"output_dir={b}", f"trainer.resume_from_checkpoint={a}/global_step_3"])
    rc3, _ = sh(
        [
            sys.executable,
            "-c",
            "import sys; from transformers import AutoModelForCausalLM as M; "
            f"M.from_pretrained('{b}/global_step_final/huggingface')",
        ]
    )
    diff = None
    if not (rc1 or rc2):
        la = {
            r["step"]: r["loss"]
            for r in map(json.loads, (a / "metrics.jsonl").read_text().splitlines())
            if "loss" in r
        }
        lb = {
            r["step"]: r["loss"]
            for r in map(json.loads, (b / "metrics.jsonl").read_text().splitlines())
            if "loss" in r
        }
        diff = max(abs(la[s] - lb[s]) / abs(la[s]) for s in lb)
    record("save+resume+export", rc1 or rc2 or rc3, started, resume_max_rel_loss_diff=diff)
    report(device, torch, args.results)


def report(device: str, torch, results: Path) -> None:
    import transformers
    import trl

    keys = [
        "check",
        "status",
        "sharding",
        "seconds",
        "tokens_per_second",
        "mfu",
        "peak_memory_gib",
        "padding_fraction",
        "last_loss",
        "resume_max_rel_loss_diff",
    ]
    fmt = lambda v: "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = [
        f"\n### gpu_check {datetime.date.today()} — {device}",
        f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}; "
        "MFU = tokens/s x (6N + 12*L*H*S) / peak bf16 FLOP/s\n",
        "| " + " | ".join(keys) + " |",
        "|" + "---|" * len(keys),
    ]
    lines += ["| " + " | ".join(fmt(r.get(k)) for k in keys) + " |" for r in ROWS]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(results, "a") as fh:
        fh.write(text)
    if any(r["status"].startswith("FAILED") for r in ROWS):
        sys.exit(1)


if __name__ == "__main__":
    main()
