"""docs/contracts.md §8: every user mistake -> one clear message naming the file/key/row and the fix, exit code 2, no
traceback, before any expensive work. Also the seed launch shims and the loggers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _train_utils import ROOT, overrides, sftkit_process

pytestmark = pytest.mark.slow


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.startswith("error: ") or "\nerror: " in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr[-2000:])


def test_missing_data_file_in_a_real_process(assets, tmp_path):
    proc = sftkit_process("train", *overrides(assets, tmp_path / "o", train_files=f"[{tmp_path / 'nope.parquet'}]"))
    assert_user_error(proc, "nope.parquet", "file not found")


def test_missing_column_lists_the_columns_found(assets, tmp_path, sftkit):
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"question": ["q"], "generated_solution": ["a"]}), bad)
    proc = sftkit("train", *overrides(assets, tmp_path / "o", train_files=f"[{bad}]"))
    assert_user_error(proc, "no column 'prompt'", "columns found: question, generated_solution", "data.prompt_key")


def test_unknown_key_names_the_closest(assets, tmp_path, sftkit):
    proc = sftkit("train", *overrides(assets, tmp_path / "o"), "optim.lrr=1")
    assert_user_error(proc, "unknown config key 'optim.lrr'", "optim.lr")


def test_impossible_batch_sizes(assets, tmp_path, sftkit):
    proc = sftkit("train", *overrides(assets, tmp_path / "o", train_batch_size=10))
    assert_user_error(proc, "data.train_batch_size=10", "multiple of 4")


def test_recipe_that_does_not_parse(tmp_path, sftkit):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model_name_or_path: [unclosed\n")
    assert_user_error(sftkit("train", "--config", recipe), f"recipe {recipe} does not parse")
    recipe.write_text("model_name_or_path: x\nlearnin_rate: 1e-5\n")
    assert_user_error(sftkit("train", "--config", recipe), f"{recipe}:2", "learning_rate")
    assert_user_error(sftkit("train", "--config", tmp_path / "missing.yaml"), "not found")


def test_model_path_that_does_not_exist(assets, tmp_path, sftkit):
    proc = sftkit("train", *overrides(assets, tmp_path / "o", model_name_or_path=tmp_path / "no-model"))
    assert_user_error(proc, "does not exist", "sftkit tiny-model")
    proc = sftkit("train", *overrides(assets, tmp_path / "o", model_name_or_path="someorg/not-cached-model"))
    assert_user_error(proc, "someorg/not-cached-model", "offline")
    (tmp_path / "not-a-model").mkdir()  # exists, no config.json: was "no local folder of that name"
    proc = sftkit("train", *overrides(assets, tmp_path / "o", model_name_or_path=tmp_path / "not-a-model"))
    assert_user_error(proc, "is a folder without a config.json")


def test_flash_attention_requested_but_missing(assets, tmp_path, sftkit):
    proc = sftkit("train", *overrides(assets, tmp_path / "o"), "model.use_flash_attention=true")
    assert_user_error(proc, "flash-attn is not installed")


def test_value_of_the_wrong_type_and_unsupported_options(assets, tmp_path, sftkit):
    assert_user_error(sftkit("train", *overrides(assets, tmp_path / "o"), "data.max_length=long"), "max_length")
    assert_user_error(
        sftkit("train", *overrides(assets, tmp_path / "o"), "ulysses_sequence_parallel_size=2"),
        "divide the number of processes (1)",
    )
    assert_user_error(
        sftkit("train", *overrides(assets, tmp_path / "o"), "data.use_dynamic_bsz=true"), "max_token_len_per_gpu"
    )


def test_tokenizer_without_eos_or_template(assets, tmp_path, sftkit):
    from sftkit.tiny import write_tiny_model

    model = write_tiny_model(tmp_path / "m", template="none")
    cfg = json.loads((model / "tokenizer_config.json").read_text())
    cfg["eos_token"] = None
    cfg["pad_token"] = None
    (model / "tokenizer_config.json").write_text(json.dumps(cfg))
    proc = sftkit("train", *overrides(assets, tmp_path / "o", model_name_or_path=model))
    assert_user_error(proc, "no EOS token and no chat template")


@pytest.mark.extended  # real subprocess runs, ~10 s (default suite budget)
def test_seed_shim_with_environment_variables(assets, tmp_path):
    out = tmp_path / "shim"
    env = {
        **os.environ,
        "MODEL_NAME": str(assets["model"]),
        "TRAIN_FILE": str(assets["train"]),
        "VAL_FILE": str(assets["val"]),
        "OUTPUT_DIR": str(out),
        "BATCH_SIZE": "4",
        "LEARNING_RATE": "1e-3",
        "MAX_LENGTH": "256",
        "PYTHON": sys.executable,
        "LORA_RANK": "4",
        "LORA_ALPHA": "8",
    }
    proc = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts/run_sft_peft.sh"),
            "trainer.total_training_steps=2",
            "trainer.logger=console",
            "trainer.save_freq=0",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "LoRA rank 4 alpha 8" in proc.stdout and "micro-batches per process: 4 x 1" in proc.stdout
    assert "max_length = 256   [env MAX_LENGTH]" in proc.stdout
    assert (out / "global_step_final" / "huggingface" / "adapter_config.json").is_file()
    # The full-fine-tuning shim ignores LORA_* (as the seed's script does) and requires TRAIN_FILE.
    env.pop("TRAIN_FILE")
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/run_sft_training.sh")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2 and "TRAIN_FILE is required" in proc.stderr


@pytest.mark.extended  # real subprocess runs, ~10 s (default suite budget)
def test_wandb_without_credentials_runs_offline_and_tensorboard(assets, tmp_path):
    sftkit = sftkit_process
    out = tmp_path / "wb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB")}
    env.update(HOME=str(tmp_path), WANDB_SILENT="true")
    proc = sftkit(
        "train",
        *overrides(assets, out, max_steps=2, save_steps=0, eval_steps=0, logger="[wandb,tensorboard]"),
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "logging offline" in proc.stdout and "wandb sync" in proc.stdout
    assert list((out / "wandb").glob("offline-run-*"))
    assert list(out.rglob("events.out.tfevents.*"))
