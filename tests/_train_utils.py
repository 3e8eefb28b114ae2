"""Shared by the training/checkpoint tests: runs on the tiny assets (the session fixture `assets` of conftest.py),
launches and the real command in a process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sftkit.config.plan import plan_run
from sftkit.train import run

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHIM_VARS = ("MODEL_NAME", "TRAIN_FILE", "BATCH_SIZE")  # read by the seed launch shims: cleared for the CLI tests


def overrides(assets: dict, out: Path, **extra) -> list[str]:
    """A fast, deterministic CPU run: fp32, sequential-free defaults of the tiny recipe, console logging only."""
    base = {
        "model_name_or_path": assets["model"],
        "train_files": f"[{assets['train']}]",
        "val_files": f"[{assets['val']}]",
        "output_dir": out,
        "max_length": 256,
        "per_device_train_batch_size": 4,
        "train_batch_size": 8,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0.1,
        "max_steps": 6,
        "logging_steps": 1,
        "eval_steps": 3,
        "save_steps": 3,
        "seed": 7,
        "logger": "console",
        "per_device_eval_batch_size": 16,
        "dataloader_num_workers": 0,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def train(assets: dict, out: Path, callbacks=(), environ=None, **extra):
    return run(plan_run(None, overrides(assets, out, **extra), environ=environ or {}), callbacks=callbacks)


def losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def model_pt(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path / "model.pt", map_location="cpu", weights_only=True)


def assert_same_state(a: dict, b: dict, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=key)


def assert_same_run(straight: Path, resumed: Path, steps: int) -> None:
    """An interrupted and resumed run is the uninterrupted one: the same loss at every step, the same weights."""
    a, b = losses(straight), losses(resumed)
    assert sorted(a) == sorted(b) == list(range(1, steps + 1))
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-6), step
    assert_same_state(model_pt(straight / "global_step_final"), model_pt(resumed / "global_step_final"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(kind: str, args: list[str], nproc: int = 2, expect: int = 0, module: str = "sftkit.train", env=None):
    """Run a training as users launch it: `single` (python -m), `accelerate` (cpu_ddp.yaml) or `torchrun`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    port = ["--main_process_port" if kind == "accelerate" else "--master_port", str(free_port())]
    if kind == "accelerate":
        config = str(ROOT / "accelerate_configs/cpu_ddp.yaml")
        cmd = [str(BIN / "accelerate"), "launch", "--config_file", config, "--num_processes", str(nproc), *port]
    elif kind == "torchrun":
        cmd = [str(BIN / "torchrun"), "--nproc_per_node", str(nproc), *port]
    else:
        cmd = [sys.executable]
    cmd += ["-m", module, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def sftkit_process(*args, env=None, cwd=ROOT) -> subprocess.CompletedProcess:
    """The real `sftkit` command in its own process (exit code, no traceback on stderr), offline, without the
    launch-shim variables of the surrounding environment."""
    environ = {k: v for k, v in os.environ.items() if k not in SHIM_VARS}
    return subprocess.run([sys.executable, "-m", "sftkit", *map(str, args)], capture_output=True, text=True,
                          env={**environ, "HF_HUB_OFFLINE": "1", **(env or {})}, cwd=cwd, timeout=300)  # fmt: skip


def run_until_signalled(
    args: list[str], out: Path, sig: int, after_step: int, group: bool = False
) -> subprocess.CompletedProcess:
    """`python -m sftkit.train ARGS` in a real process, sent `sig` once metrics.jsonl shows `after_step`; with
    `group`, to its whole process group (what `scancel` and a terminal's Ctrl-C do), data loader workers included."""
    proc = subprocess.Popen([sys.executable, "-m", "sftkit.train", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                            start_new_session=group)  # fmt: skip
    metrics, deadline = out / "metrics.jsonl", time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        lines = metrics.read_text().splitlines()[:-1] if metrics.exists() else []  # the last may be half written
        if any(json.loads(x).get("step", 0) >= after_step for x in lines):
            os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
            break
        time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit code 2, one `error:` line naming each of `needles`, no traceback."""
    assert proc.returncode == 2, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr and proc.stderr.count("error:") == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)
