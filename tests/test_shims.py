"""The seed's multi-GPU launch scripts (verl/shims.py) and the files the package ships (resources.py).

`NPROC_PER_NODE=2 bash scripts/run_sft_training.sh` (the seed's own multi-GPU example) launches through accelerate
with a config that is package data: it must run from the repository root, from any other folder, and from an
installed wheel (no source tree to count parent folders in).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from _train_utils import ROOT, free_port
from sftkit import resources
from sftkit.verl.shims import launch_command


def test_shipped_files_are_found_as_package_resources():
    assert resources.accelerate_config("cpu_ddp").is_file() and resources.accelerate_config("fsdp4").is_file()
    assert (resources.recipes() / "tiny.yaml").is_file()
    cmd = launch_command("full", 2)
    assert Path(cmd[cmd.index("--config_file") + 1]).is_file()


def test_a_recipe_named_outside_the_repository_is_the_shipped_one(tmp_path, monkeypatch, capsys):
    from sftkit.config.parse import load_recipe

    monkeypatch.chdir(tmp_path)
    assert load_recipe("recipes/qwen1.5b.yaml")["model_name_or_path"][0] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert "using the shipped" in capsys.readouterr().out


@pytest.mark.slow
def test_the_wheel_ships_recipes_and_accelerate_configs_and_the_shims_find_them(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(ROOT)], check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    wheel = next(tmp_path.glob("sftkit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("sftkit/recipes/tiny.yaml", "sftkit/recipes/qwen1.5b-lora.yaml",
                 "sftkit/accelerate_configs/fsdp4.yaml", "sftkit/accelerate_configs/cpu_ddp.yaml",
                 "sftkit/config/train_help.txt"):  # fmt: skip
        assert name in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "from sftkit.verl.shims import launch_command; c = launch_command('full', 2); "
        "print(c[c.index('--config_file') + 1])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(site)}, check=True).stdout.strip()  # fmt: skip
    assert Path(out).is_file() and Path(out).is_relative_to(site)


def run_shim(script: str, assets: dict, out: Path, cwd: Path, **env) -> subprocess.CompletedProcess:
    environ = {
        **os.environ,
        "NPROC_PER_NODE": "2",
        "MODEL_NAME": str(assets["model"]),
        "TRAIN_FILE": str(assets["train"]),
        "VAL_FILE": str(assets["val"]),
        "OUTPUT_DIR": str(out),
        "BATCH_SIZE": "2",
        "MAX_LENGTH": "128",
        "PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "MASTER_PORT": str(free_port()),
        **env,
    }
    args = ["trainer.total_training_steps=2", "trainer.logger=console", "trainer.save_freq=0", "trainer.test_freq=0"]
    return subprocess.run(["bash", str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                          env=environ, cwd=cwd, timeout=600)  # fmt: skip


@pytest.mark.extended
def test_seed_multi_process_full_finetuning_from_another_folder(assets, tmp_path):
    proc = run_shim("run_sft_training.sh", assets, tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "world_size: 2" in proc.stdout
    assert (tmp_path / "out" / "global_step_final" / "huggingface" / "config.json").is_file()


@pytest.mark.extended
def test_seed_multi_process_lora_from_the_repository_root(assets, tmp_path):
    proc = run_shim("run_sft_peft.sh", assets, tmp_path / "out", cwd=ROOT, LORA_RANK="4", LORA_ALPHA="8")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "world_size: 2" in proc.stdout and "LoRA rank 4 alpha 8" in proc.stdout
    assert (tmp_path / "out" / "global_step_final" / "huggingface" / "adapter_config.json").is_file()


def test_nproc_per_node_that_is_not_a_number():
    from sftkit.verl import shims

    env = {**os.environ, "TRAIN_FILE": "t.parquet", "NPROC_PER_NODE": "abc"}
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        assert shims.main(["full"]) == 2
    finally:
        os.environ.clear()
        os.environ.update(old)
