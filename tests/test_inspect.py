"""`sftkit inspect` (docs/contracts.md §1): quantiles, padding report, rendering, the JSON report end to end, and its
errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from sftkit import dry_run as sinspect
from sftkit.config.plan import plan_run as resolve
from sftkit.data.labels import IGNORE
from sftkit.training.batching import chunks, micro_batches, padding_fraction

ROOT = Path(__file__).resolve().parents[1]


# ---- quantiles ---------------------------------------------------------------------------------------------------
def test_quantiles_nearest_rank():
    assert sinspect.quantiles([]) == {}
    assert sinspect.quantiles([7]) == {"p50": 7, "p90": 7, "p99": 7, "max": 7}
    # 1..10 shuffled: p50 = 5th smallest (ceil(5)), p90 = 9th, p99 = 10th (ceil(9.9))
    assert sinspect.quantiles([3, 10, 1, 8, 2, 9, 4, 7, 6, 5]) == {"p50": 5, "p90": 9, "p99": 10, "max": 10}
    # 4 values: p50 = 2nd (ceil(2)), p90 = 4th (ceil(3.6)); duplicates count
    assert sinspect.quantiles([100, 1, 1, 2]) == {"p50": 1, "p90": 100, "p99": 100, "max": 100}
    values = list(range(1, 201))  # p99 of 1..200 = 198th (ceil(198.0)), not 199
    assert sinspect.quantiles(values)["p99"] == 198 and sinspect.quantiles(values)["p90"] == 180


# ---- padding report ----------------------------------------------------------------------------------------------
def resolved(**extra):
    base = {"model_name_or_path": "unused", "train_files": "[unused.parquet]", "max_length": 10, "seed": 3}
    base.update(per_device_train_batch_size=2, train_batch_size=8)
    base.update(extra)
    return resolve(None, [f"{k}={v}" for k, v in base.items()], environ={})


def test_batching_report_by_hand():
    lengths = np.array([1, 2, 3, 4, 5, 6, 7, 8])  # 36 real tokens, one step of 8
    r = resolved(use_dynamic_bsz="true", max_token_len_per_gpu=16)
    report = sinspect.batching_report(lengths, r)
    # grouped: one step, sorted -> micro-batches [8,7] [6,5] [4,3] [2,1]: 16+12+8+4 = 40 computed
    assert report["grouped by length (sftkit default)"] == pytest.approx(1 - 36 / 40)
    # token budget 16: [8,7] (2x8=16), [6,5] (adding 4 -> 3x6=18 > 16), [4,3,2,1] (4x4=16): 16+12+16 = 44
    assert report["token budget (use_dynamic_bsz)"] == pytest.approx(1 - 36 / 44)
    assert micro_batches([8, 7, 6, 5, 4, 3, 2, 1], 2, 16, False) == [[0, 1], [2, 3], [4, 5, 6, 7]]
    assert report["padding-free (use_remove_padding)"] == 0.0
    assert report["padded to max_length (verl legacy)"] == pytest.approx(1 - 36 / 80)  # 8 x max_length 10
    # random: the seed's permutation in micro-batches of 2; never better than the sorted pairing
    perm = np.random.default_rng(3).permutation(8).tolist()
    assert report["random (TRL default)"] == pytest.approx(padding_fraction(lengths.tolist(), chunks(perm, 2)))
    assert report["random (TRL default)"] >= report["grouped by length (sftkit default)"]
    assert sinspect.chosen_batching(r) == "token budget (use_dynamic_bsz)"


def test_batching_report_equal_lengths_and_choice():
    r = resolved()
    report = sinspect.batching_report(np.array([5] * 6), r)
    assert report["random (TRL default)"] == report["grouped by length (sftkit default)"] == 0.0
    assert report["padded to max_length (verl legacy)"] == pytest.approx(0.5)
    assert "token budget (use_dynamic_bsz)" not in report
    assert sinspect.chosen_batching(r) == "grouped by length (sftkit default)"
    assert sinspect.chosen_batching(resolved(use_remove_padding="true")) == "padding-free (use_remove_padding)"


def test_epoch_report_counts_steps_and_micro_batches_per_process():
    lengths = np.array([10] * 20)
    trained = np.array([4] * 20)
    e = sinspect.epoch_report(lengths, trained, resolved(train_batch_size=8))
    assert e["steps"] == 3 and e["global_batch"] == 8  # 8 + 8 + 4
    assert e["micro_batches_per_step"] == {"min": 2, "max": 4, "mean": pytest.approx(10 / 3)}
    assert (e["tokens"], e["trained_tokens"]) == (200, 80)
    budget = sinspect.epoch_report(lengths, trained, resolved(use_dynamic_bsz="true", max_token_len_per_gpu=30))
    assert budget["steps"] == 3 and budget["micro_batches_per_step"]["max"] == 3  # 8 rows of 10 -> 3+3+2


# ---- rendering ---------------------------------------------------------------------------------------------------
def test_render_marks_trained_tokens():
    from sftkit.data.labels import Encoder
    from sftkit.tiny import build_tokenizer

    tok = build_tokenizer()
    ex = Encoder(tok).encode("What is 1+1?", "2")
    plain = sinspect.render(tok, ex.input_ids, ex.labels, colour=False)
    assert plain.count("[[") == plain.count("]]") == 1
    assert plain.endswith("[[2<|im_end|>]]")
    assert plain.replace("[[", "").replace("]]", "") == tok.decode(ex.input_ids)
    coloured = sinspect.render(tok, ex.input_ids, ex.labels, colour=True)
    assert coloured.endswith(sinspect.GREEN + "2<|im_end|>" + sinspect.RESET)
    assert sinspect.render(tok, [1, 2, 3], [1, IGNORE, 3], colour=False).count("[[") == 2


# ---- end to end --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recipe(assets, tmp_path_factory):
    base = tmp_path_factory.mktemp("inspect")
    path = base / "recipe.yaml"
    config = {
        "model_name_or_path": str(assets["model"]),
        "train_files": [str(assets["train"])],
        "val_files": [str(assets["val"])],
        "max_length": 256,
        "per_device_train_batch_size": 4,
        "train_batch_size": 8,
        "output_dir": str(base / "run"),
        "logger": ["console"],
        "seed": 42,
    }
    path.write_text("# test recipe\n" + yaml.safe_dump(config))
    return path, config


def sftkit_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_NAME", "TRAIN_FILE", "MAX_LENGTH")}
    cmd = [sys.executable, "-m", "sftkit.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.mark.slow
def test_inspect_json_matches_the_trainer_examples(recipe, tmp_path):
    from transformers import AutoTokenizer

    from sftkit.data.dataset import build_dataset
    from sftkit.data.labels import Encoder

    path, config = recipe
    out = tmp_path / "report.json"
    proc = sftkit_cli("inspect", "--config", path, "--examples", 2, "--json", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads(out.read_text())
    assert report["config"]["max_length"] == 256 and report["config"]["global_batch"] == 8
    assert report["config"]["world_size"] == 1
    assert len(report["examples"]) == 2

    tok = AutoTokenizer.from_pretrained(config["model_name_or_path"])
    ds = build_dataset(config["train_files"], Encoder(tok), "prompt", "generated_solution", 256, "right").dataset
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    for i, ex in enumerate(report["examples"]):
        assert set(ex) == {"input_ids", "labels"}
        assert ex["input_ids"] == ds[i]["input_ids"] and ex["labels"] == ds[i]["labels"]
        n_prompt = next(j for j, lab in enumerate(ex["labels"]) if lab != IGNORE)
        assert n_prompt > 0 and all(lab == IGNORE for lab in ex["labels"][:n_prompt])
        assert ex["labels"][n_prompt:] == ex["input_ids"][n_prompt:]
        assert ex["labels"][-1] == ex["input_ids"][-1] == im_end

    # the other sections, consistent with the data
    assert report["rows"]["examples"] == len(ds)
    assert report["lengths"]["total"]["max"] == max(ds["length"]) <= 256
    assert report["batching"]["chosen"] == "grouped by length (sftkit default)"
    assert report["epoch"]["steps"] == -(-len(ds) // 8)

    # stdout is a pipe, not a TTY: trained tokens between [[ ]], each example ending with the end-of-turn
    rendered = [line for line in proc.stdout.splitlines() if "[[" in line or line.endswith("]]")]
    assert proc.stdout.count("--- example") == 2
    ends = [line for line in rendered if line.endswith("]]")]
    assert len(ends) == 2 and all(line.endswith("<|im_end|>]]") for line in ends)
    assert "\033[" not in proc.stdout
    assert "padding fraction" in proc.stdout and "world_size: 1" in proc.stdout


def test_inspect_in_process_examples_and_overrides(recipe, tmp_path, capsys):
    path, _ = recipe
    out = tmp_path / "r.json"
    assert sinspect.main(["--config", str(path), "--examples", "1", "--json", str(out), "max_length=200"]) == 0
    report = json.loads(out.read_text())
    assert report["config"]["max_length"] == 200 and len(report["examples"]) == 1
    assert len(report["examples"][0]["input_ids"]) <= 200 and report["lengths"]["total"]["max"] == 200
    assert report["truncation"]["truncated"] + report["truncation"]["dropped"] > 0
    assert capsys.readouterr().out.rstrip().endswith(f"report written to {out}")


# ---- errors ------------------------------------------------------------------------------------------------------
def test_inspect_missing_recipe(tmp_path, capsys):
    assert sinspect.main(["--config", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "not found" in err and "Traceback" not in err


def test_inspect_option_without_value(capsys):
    assert sinspect.main(["--examples"]) == 2
    assert "--examples needs a value" in capsys.readouterr().err


def test_inspect_unknown_key(recipe, capsys):
    path, _ = recipe
    assert sinspect.main(["--config", str(path), "max_lenght=64"]) == 2
    err = capsys.readouterr().err
    assert "max_lenght" in err and "max_length" in err


def test_inspect_unknown_key_in_recipe(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_name_or_path: x\ntrain_files: [x.parquet]\nlearning_rat: 1.0e-5\n")
    assert sinspect.main(["--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "learning_rat" in err and f"{bad}:3" in err


@pytest.mark.slow
def test_inspect_cli_errors_exit_2(tmp_path):
    proc = sftkit_cli("inspect", "--config", tmp_path / "missing.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "missing.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_inspect_examples_not_a_number(capsys):
    assert sinspect.main(["--examples", "abc"]) == 2
    assert "--examples" in capsys.readouterr().err
