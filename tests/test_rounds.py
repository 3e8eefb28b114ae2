"""`sftkit rounds` (src/sftkit/rounds/): the recipe and its checks, stage publication, the report, and (extended)
whole runs on tiny assets: 2 rounds end to end, a rerun that does nothing, a changed recipe refused, a SIGTERM in
round 2's training then a rerun that continues exactly, `init: base` vs `previous`.

The extended runs use a tiny model first taught to answer every problem with "The answer is 1." (a few seconds of
training), so that rounds keep real correct solutions: problems whose gold answer is 1 are solved, the others not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from _files import write_jsonl
from _train_utils import ROOT, assert_same_state, model_pt, sftkit_process, train
from sftkit.errors import SftkitError
from sftkit.rounds import recipe as rounds_recipe
from sftkit.rounds import report, stages

SHIPPED = sorted((ROOT / "recipes").glob("rounds-*.yaml"))


def minimal(tmp_path: Path, **extra) -> Path:
    data = {"output_dir": str(tmp_path / "out"), "model": "m", "problems": "p.jsonl", "metadata_file": "m.jsonl",
            "eval_problems": "e.jsonl", "train": {"recipe": "recipes/tiny.yaml"}, **extra}  # fmt: skip
    path = tmp_path / "rounds.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# ---- the recipe --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_rounds_recipe_parses_and_names_hardware_and_launch(path):
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# Config for ")
    assert f"sftkit rounds --config recipes/{path.name}" in next(x for x in lines if x.startswith("# Launch:"))
    r = rounds_recipe.load(str(path), [])
    assert (ROOT / "recipes" / Path(r.train_recipe).name).is_file()
    for section in ("generate", "evaluate", "filter", "prepare"):  # every option is one its command parses
        argv, parsed = rounds_recipe.command_options(section, getattr(r, section))
        assert set(getattr(r, section)) <= set(parsed)


def test_overrides_reach_sections(tmp_path):
    r = rounds_recipe.load(str(minimal(tmp_path)), ["rounds=4", "generate.samples=8", "train.overrides.max_steps=9"])
    assert (r.rounds, r.generate, r.train_overrides) == (4, {"samples": 8}, {"max_steps": 9})
    argv, parsed = rounds_recipe.command_options("generate", r.generate)
    assert argv == ["--samples", "8"] and parsed["samples"] == 8 and parsed["max_new_tokens"] > 0


@pytest.mark.parametrize(
    "override, message",
    [
        ("rouns=2", "unknown rounds recipe key 'rouns'. Did you mean: rounds"),
        ("init=latest", "init: 'latest' is not one of base, previous"),
        ("rounds=0", "rounds: 0"),
        ("generate.temprature=1", "generate.temprature: no such option of sftkit eval. Did you mean: temperature"),
        ("generate.samples=two", "generate: .*invalid int value: 'two'"),
        ("prepare.output_dir=x", "prepare.output_dir: `sftkit rounds` sets this itself"),
        ("prepare.dedup=fuzzy", "prepare: .*invalid choice: 'fuzzy'"),
        ("filter.require_marker=1", "filter.require_marker: give true or false"),
        ("generate.samples=0", "generate: --samples 0: give 1 or more samples per problem"),
        ("evaluate.top_p=2", r"evaluate: --top-p 2.0: give a probability mass in \(0, 1\]"),
        ("prepare.max_per_prompt=0", "prepare: --max-per-prompt 0: keep 1 or more"),
        ("prepare.max_per_prompt=-1", "prepare: --max-per-prompt -1: keep 1 or more"),
        ("prepare.mix=[a.jsonl:0]", "prepare: --mix a.jsonl:0: give FILE_OR_GLOB:WEIGHT with a weight > 0"),
        ("filter.timeout=0", "filter: --timeout 0.0: the time limit per answer must be > 0"),
        ("train.overrides.output_dir=x", "train.overrides.output_dir: `sftkit rounds` sets output_dir itself"),
        ("train.overrides.data.train_files=[x]", "sets train_files itself"),
        ("train.overrides.max_stepz=1", "unknown config key 'max_stepz'"),
        ("train.overrides.num_train_epochs=abc", "train: recipes/tiny.yaml with train.overrides: .*invalid float"),
        ("train.overrides.per_device_train_batch_size=0", "train: .*per_device_train_batch_size.* must be >= 1"),
    ],
)
def test_recipe_mistakes_are_errors_before_any_work(tmp_path, sftkit, override, message):
    result = sftkit("rounds", "--config", minimal(tmp_path), override)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr
    assert not (tmp_path / "out").exists()


def test_training_is_resolved_for_the_accelerate_configs_processes(tmp_path, sftkit):
    """Sequence parallelism over 2 processes: an error with one process, accepted with cpu_ddp's 2 (the run then
    stops at the next check, its missing input files)."""
    config, sp = minimal(tmp_path), "train.overrides.ulysses_sequence_parallel_size=2"
    alone = sftkit("rounds", "--config", config, sp)
    assert alone.returncode == 2 and "divide the number of processes (1)" in alone.stderr
    two = sftkit("rounds", "--config", config, "--accelerate-config", "cpu_ddp", sp)
    assert two.returncode == 2 and "problems: p.jsonl is not a file" in two.stderr, two.stderr


def test_missing_input_file_is_an_error(tmp_path, sftkit):
    result = sftkit("rounds", "--config", minimal(tmp_path))
    assert result.returncode == 2 and "problems: p.jsonl is not a file" in result.stderr


# ---- stages and report -------------------------------------------------------------------------------------------
def test_stage_is_published_by_rename_with_its_record(tmp_path):
    stage = stages.Stage(1, "grade", tmp_path)
    assert stages.start(stage, {"a": 1}, keep_partial=False) == 0.0
    (stage.partial / "out.txt").write_text("x")
    assert stages.finished(stage) is None  # at work: not finished
    record = stages.publish(stage, {"a": 1}, {"round 1 generate": "id1"}, 2.5, {"correct": 3})
    assert not stage.partial.exists() and (stage.folder / "out.txt").read_text() == "x"
    assert stages.finished(stage) == record and record["result"] == {"correct": 3} and record["seconds"] == 2.5
    assert not (stage.folder / stages.PENDING).exists()


def test_unfinished_training_keeps_its_folder_and_time(tmp_path):
    stage = stages.Stage(2, "train", tmp_path)
    stages.start(stage, {"a": 1}, keep_partial=True)
    (stage.partial / "global_step_2").mkdir()
    stages.add_time(stage, 4.0)  # pre-empted after 4 s
    assert stages.start(stage, {"a": 1}, keep_partial=True) == 4.0
    assert (stage.partial / "global_step_2").is_dir()
    assert stages.start(stages.Stage(2, "grade", tmp_path), {}, keep_partial=False) == 0.0


def test_differences_leave_out_earlier_stages_fingerprints():
    old = {"generate.samples": 2, "input.train": "round_1/train aaa", "model": "m"}
    new = {"generate.samples": 4, "input.train": "round_1/train bbb", "model": "m", "on_empty": "stop"}
    assert stages.differences(old, new) == ["generate.samples: 2 -> 4", "on_empty: (not set) -> stop"]


def test_changed_content_of_mix_or_decontaminate_files_is_refused(tmp_path):
    """Like `problems`, the files of prepare.mix and prepare.decontaminate count by content (their globs expanded
    now): a finished data stage made from other content is refused with the difference; the same content moved is
    not a change."""
    from sftkit.rounds import command
    from sftkit.rounds.plan import Plan

    for name in ("p", "m", "e"):
        write_jsonl(tmp_path / f"{name}.jsonl", [{"id": "a", "prompt": "1+1?", "answer": "2"}])
    (tmp_path / "mix").mkdir()
    write_jsonl(tmp_path / "mix/a.jsonl", [{"prompt": "q", "generated_solution": "s"}])
    write_jsonl(tmp_path / "heldout.jsonl", [{"prompt": "what is 2+2?"}])
    curation = {"mix": [f"{tmp_path}/mix/*.jsonl:0.5"], "decontaminate": [str(tmp_path / "heldout.jsonl")]}
    config = minimal(tmp_path, problems=str(tmp_path / "p.jsonl"), metadata_file=str(tmp_path / "m.jsonl"),
                     eval_problems=str(tmp_path / "e.jsonl"), rounds=1, prepare=curation)  # fmt: skip

    def plan() -> Plan:
        return Plan(rounds_recipe.load(str(config), []))

    made = plan()
    stage = stages.Stage(1, "data", made.out)
    stages.start(stage, made.settings(stage), keep_partial=False)
    stages.publish(stage, made.settings(stage), {}, 1.0, {})
    (tmp_path / "mix/a.jsonl").rename(tmp_path / "mix/b.jsonl")  # the same content under another name
    assert stages.differences(stages.finished(stage)["settings"], plan().settings(stage)) == []
    write_jsonl(tmp_path / "mix/c.jsonl", [{"prompt": "q2", "generated_solution": "s2"}])  # the glob finds more
    write_jsonl(tmp_path / "heldout.jsonl", [{"prompt": "what is 3+3?"}])
    diff = stages.differences(stages.finished(stage)["settings"], plan().settings(stage))
    assert [d.split(":")[0] for d in diff] == ["prepare.decontaminate content", "prepare.mix content"]
    assert "(1 file)" in diff[1] and "(2 files)" in diff[1]
    with pytest.raises(SftkitError, match="round 1 data: prepare.mix content: "):
        command.check(plan())
    (tmp_path / "heldout.jsonl").unlink()  # a missing eval file: an error before any stage, not at the data stage
    with pytest.raises(SftkitError, match="prepare: --decontaminate: every evaluation file must exist"):
        command.check(plan())


def _unfinished_training(tmp_path: Path, checkpoint: bool):
    """A run whose round 1 training was started with max_steps 5 and failed (with or without a checkpoint), and
    the plan of the rerun with max_steps 8."""
    from sftkit.checkpoint.layout import REQUIRED
    from sftkit.rounds.plan import Plan

    for name in ("p", "m", "e"):
        write_jsonl(tmp_path / f"{name}.jsonl", [{"id": "a", "prompt": "1+1?", "answer": "2"}])
    config = minimal(tmp_path, problems=str(tmp_path / "p.jsonl"), metadata_file=str(tmp_path / "m.jsonl"),
                     eval_problems=str(tmp_path / "e.jsonl"), rounds=1)  # fmt: skip
    before = Plan(rounds_recipe.load(str(config), ["train.overrides.max_steps=5"]))
    stage = stages.Stage(1, "train", before.out)
    stages.start(stage, before.settings(stage), keep_partial=True)
    if checkpoint:
        (stage.partial / "global_step_2").mkdir()
        for name in REQUIRED:
            (stage.partial / "global_step_2" / name).write_bytes(b"")
    return Plan(rounds_recipe.load(str(config), ["train.overrides.max_steps=8"])), stage


def test_unfinished_training_without_checkpoint_starts_over_with_new_settings(tmp_path, capsys):
    from sftkit.rounds import command

    plan, stage = _unfinished_training(tmp_path, checkpoint=False)
    command.check(plan)
    assert not stage.partial.exists()  # the next start writes the new settings into a fresh folder
    out = capsys.readouterr().out
    assert "round 1 train: the unfinished training" in out and "max_steps: 5 -> 8" in out and "starts over" in out


def test_unfinished_training_with_checkpoint_is_refused_saying_how_to_start_over(tmp_path):
    from sftkit.rounds import command

    plan, stage = _unfinished_training(tmp_path, checkpoint=True)
    with pytest.raises(SftkitError) as error:
        command.check(plan)
    message = str(error.value)
    assert f"round 1 train (unfinished, in {stage.partial}): train.overrides.max_steps: 5 -> 8" in message
    assert f"remove {stage.partial} to start that round's training over" in message
    assert (stage.partial / "global_step_2").is_dir()


def test_stopped_training_names_how_to_continue_in_the_parents_words(monkeypatch, capsys):
    """A stopped training says how to resume it: `trainer.resume_from_checkpoint=auto`, or under `rounds` (which
    resumes it itself and sets SFTKIT_RESUME_HINT) the parent's words."""
    from types import SimpleNamespace

    from sftkit.training import finish

    monkeypatch.delenv(finish.RESUME_HINT, raising=False)
    finish._stopped(SimpleNamespace(), Path("out/global_step_3"), "at step 3")
    assert "global_step_3 is saved; run again with trainer.resume_from_checkpoint=auto" in capsys.readouterr().out
    monkeypatch.setenv(finish.RESUME_HINT, "rerun the same `sftkit rounds` command to continue")
    finish._stopped(SimpleNamespace(), Path("out/global_step_3"), "at step 3")
    assert capsys.readouterr().out.strip().endswith("is saved; rerun the same `sftkit rounds` command to continue")


def _record(result: dict, seconds: float = 1.0) -> dict:
    return {"result": result, "seconds": seconds}


def test_report_lines_and_plot(tmp_path):
    records = {
        (0, "eval"): _record({"pass_at_1": 0.25, "pass_at_k": 0.5, "k": 2, "problems": 4}),
        (1, "generate"): _record({"problems": 8, "solutions": 16}),
        (1, "grade"): _record({"correct": 6, "coverage": 0.375}),
        (1, "data"): _record({"rounds": [1], "kept": 3, "train_rows": 2, "val_rows": 1}),
        (1, "train"): _record(
            {"examples": 2, "trained_tokens": 40, "steps": 4, "train_loss": 1.5, "val_loss": 2.0, "init_model": "m"},
            7.0,
        ),  # fmt: skip
        (1, "eval"): _record({"pass_at_1": 0.5, "pass_at_k": 0.75, "k": 2, "problems": 4}),
        (2, "generate"): _record({"problems": 8, "solutions": 16}),
        (2, "grade"): _record({"correct": 0, "coverage": 0.0}),
    }
    lines = report.write(tmp_path, records, stopped=(2, "no correct solution"))
    assert [json.loads(x) for x in (tmp_path / "rounds.jsonl").read_text().splitlines()] == lines
    assert [line["round"] for line in lines] == [0, 1, 2]
    assert lines[0] == {"round": 0, "pass_at_1": 0.25, "pass_at_k": 0.5, "k": 2, "eval_problems": 4,
                        "seconds": {"eval": 1.0}}  # fmt: skip
    one = lines[1]
    assert (one["coverage"], one["correct"], one["kept"], one["trained_rows"], one["trained_tokens"]) == (
        0.375, 6, 3, 2, 40)  # fmt: skip
    assert (one["train_loss"], one["val_loss"], one["seconds"]["train"]) == (1.5, 2.0, 7.0)
    assert lines[2]["stopped"] == "no correct solution" and "pass_at_1" not in lines[2]
    assert (tmp_path / "rounds.png").stat().st_size > 1000


# ---- whole runs (extended) ---------------------------------------------------------------------------------------
GOLD = {f"p{i}": "1" if i < 6 else "2" for i in range(8)}  # the answering model solves p0..p5, never p6, p7
EVAL_GOLD = {"e0": "1", "e1": "1", "e2": "2", "e3": "2"}


def _prompt(i) -> str:
    return f"Tom has {i} apples and gets one more. How many?"


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict:
    """An answering model ("The answer is 1." to any problem), training and held-out problems with gold answers."""
    from sftkit import tiny
    from sftkit.data import prepare

    base = tmp_path_factory.mktemp("rounds-assets")
    rows = [{"id": i, "prompt": _prompt(100 + i), "generated_solution": "The answer is 1."} for i in range(64)]
    write_jsonl(base / "teach.jsonl", rows)
    assert prepare.main([str(base / "teach.jsonl"), "--output-dir", str(base / "teach"), "--val-split", "0.1"]) == 0
    model = tiny.write_tiny_model(base / "tiny")
    teach = {"model": model, "train": base / "teach/train.parquet", "val": base / "teach/val.parquet"}
    train(
        teach,
        base / "answering",
        max_steps=40,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        warmup_steps=0,
        save_steps=100,
        eval_steps=100,
        max_length=128,
    )
    write_jsonl(base / "problems.jsonl", [{"id": k, "prompt": _prompt(i)} for i, k in enumerate(GOLD)])
    write_jsonl(base / "metadata.jsonl", [{"id": k, "answer": v} for k, v in {**GOLD, **EVAL_GOLD}.items()])
    write_jsonl(base / "eval.jsonl", [{"id": k, "prompt": _prompt(50 + i)} for i, k in enumerate(EVAL_GOLD)])
    return {"model": base / "answering/global_step_final/huggingface", "dir": base}


def rounds_recipe_file(assets: dict, out: Path, **extra) -> Path:
    data = {
        "output_dir": str(out), "rounds": 2, "model": str(assets["model"]),
        "problems": str(assets["dir"] / "problems.jsonl"), "metadata_file": str(assets["dir"] / "metadata.jsonl"),
        "eval_problems": str(assets["dir"] / "eval.jsonl"), "init": "previous", "train_on": "all",
        "generate": {"samples": 2, "temperature": 0.7, "max_new_tokens": 16},
        "evaluate": {"samples": 2, "temperature": 0.7, "max_new_tokens": 16},
        "prepare": {"val_split": 0.25, "dedup": "normalized"},
        "train": {"recipe": str(ROOT / "recipes/tiny.yaml"), "overrides": {
            "max_length": 128, "per_device_train_batch_size": 4, "train_batch_size": 4, "max_steps": 12,
            "save_steps": 4, "eval_steps": 4, "save_initial": True, "max_ckpt_to_keep": 0, "learning_rate": 1e-3,
            "dataloader_num_workers": 0}},
        **extra,
    }  # fmt: skip
    path = out.with_name(out.name + ".yaml")
    path.write_text(yaml.safe_dump(data))
    return path


def run_rounds(config: Path, *overrides, expect: int = 0) -> subprocess.CompletedProcess:
    proc = sftkit_process("rounds", "--config", config, *overrides)
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def finished(assets, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rounds-run") / "out"
    run_rounds(rounds_recipe_file(assets, out))
    return out


def lines_of(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]


def snapshot(out: Path) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in out.rglob("*") if p.name != ".sftkit.lock"}  # the lock says who


@pytest.mark.extended
def test_two_rounds_end_to_end_layout_and_report(finished):
    for r in (1, 2):
        for name in ("generate", "grade", "data", "train", "eval"):
            record = json.loads((finished / f"round_{r}" / name / "stage.json").read_text())
            assert (record["round"], record["stage"]) == (r, name)
        assert not list((finished / f"round_{r}").glob("*.partial"))
        assert (finished / f"round_{r}/train/global_step_final/huggingface/config.json").is_file()
        assert (finished / f"round_{r}/data/train.parquet").is_file()
    assert (finished / "round_0/eval/report.json").is_file() and (finished / "rounds.png").is_file()
    lines = lines_of(finished)
    assert [line["round"] for line in lines] == [0, 1, 2]
    for r, line in enumerate(lines[1:], start=1):
        rows = [json.loads(x) for x in (finished / f"round_{r}/generate/solutions.jsonl").read_text().splitlines()]
        solved = {row["id"] for row in rows if row["correct"]}
        assert solved and solved <= {k for k, v in GOLD.items() if v == "1"}  # what the answering model can solve
        assert line["coverage"] == len(solved) / len(GOLD) and line["correct"] == sum(r["correct"] for r in rows)
        assert line["kept"] == line["train_rows"] + line["val_rows"] <= line["correct"]  # normalized dedup
        assert line["trained_rows"] == line["train_rows"] and line["trained_tokens"] > line["trained_rows"]
        metrics = [json.loads(x) for x in (finished / f"round_{r}/train/metrics.jsonl").read_text().splitlines()]
        assert line["train_loss"] == [m["loss"] for m in metrics if "loss" in m][-1]
        assert line["val_loss"] == [m["val_loss"] for m in metrics if "val_loss" in m][-1]
        held_out = json.loads((finished / f"round_{r}/eval/report.json").read_text())
        assert (line["pass_at_1"], line["pass_at_k"]) == (held_out["accuracy"], held_out["pass_at_k"]["2"]["value"])
        assert set(line["seconds"]) == {"generate", "grade", "data", "train", "eval"}
    assert lines[1]["data_rounds"] == [1] and lines[2]["data_rounds"] == [1, 2]  # train_on: all


@pytest.mark.extended
def test_rerun_of_a_finished_run_does_nothing(finished, assets):
    before = snapshot(finished)
    proc = run_rounds(rounds_recipe_file(assets, finished))
    assert "nothing to do" in proc.stdout and snapshot(finished) == before


@pytest.mark.extended
def test_changed_recipe_is_refused_with_the_differences(finished, assets):
    before = snapshot(finished)
    proc = run_rounds(rounds_recipe_file(assets, finished), "generate.samples=3", "prepare.dedup=none", expect=2)
    assert "round 1 generate: generate.samples: 2 -> 3" in proc.stderr
    assert "round 2 data: prepare.dedup: normalized -> none" in proc.stderr
    assert snapshot(finished) == before


@pytest.mark.extended
def test_init_previous_starts_each_round_from_the_previous_rounds_weights(finished, assets):
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(assets["model"]).state_dict()
    first = model_pt(finished / "round_1/train/global_step_0")
    assert_same_state(first, {k: base[k] for k in first}, atol=0)
    assert_same_state(model_pt(finished / "round_2/train/global_step_0"),
                      model_pt(finished / "round_1/train/global_step_final"), atol=0)  # fmt: skip


@pytest.mark.extended
def test_init_base_starts_every_round_from_the_base_model(finished, assets, tmp_path):
    out = tmp_path / "out"
    for folder in ("round_0", "round_1"):  # round 1 is the same under both: kept, not redone
        shutil.copytree(finished / folder, out / folder)
    run_rounds(rounds_recipe_file(assets, out, init="base"))
    assert (out / "round_1/train/stage.json").read_text() == (finished / "round_1/train/stage.json").read_text()
    second = model_pt(out / "round_2/train/global_step_0")
    assert_same_state(second, model_pt(finished / "round_1/train/global_step_0"), atol=0)
    final = model_pt(finished / "round_1/train/global_step_final")
    assert any(not torch.equal(second[k], final[k]) for k in second)


@pytest.mark.extended
def test_sigterm_in_round_2_training_then_rerun_continues_exactly(finished, assets, tmp_path):
    out = tmp_path / "out"
    config = rounds_recipe_file(assets, out)
    metrics = out / "round_2/train.partial/metrics.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sftkit", "rounds", "--config", str(config)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and any('"loss"' in x for x in metrics.read_text().splitlines()[:-1]):
            proc.send_signal(signal.SIGTERM)  # to the rounds process only, as `kill PID` does
            break
        time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 75, stdout[-3000:] + stderr[-3000:]
    assert "is saved; rerun the same `sftkit rounds` command to continue" in stdout  # the training's own line
    assert "resume_from_checkpoint=auto to finish" not in stdout
    assert not (out / "round_2/train").exists()
    stopped_at = max(int(p.name.split("_")[-1]) for p in (out / "round_2/train.partial").glob("global_step_[0-9]*"))
    assert 0 < stopped_at < 12  # saved where it stopped, mid-training
    assert f"resuming from {out / 'round_2/train.partial'}/global_step_{stopped_at}" in run_rounds(config).stdout
    a, b = finished / "round_2/train", out / "round_2/train"
    assert_same_state(model_pt(a / "global_step_final"), model_pt(b / "global_step_final"), atol=0)
    assert (a / "metrics.jsonl").read_text().count('"loss"') == (b / "metrics.jsonl").read_text().count('"loss"')
    losses = [[json.loads(x).get("loss") for x in (f / "metrics.jsonl").read_text().splitlines()] for f in (a, b)]
    assert losses[0] == losses[1]
    strip = [{k: v for k, v in line.items() if k not in ("seconds", "init_model")} for line in lines_of(out)]
    assert strip == [
        {k: v for k, v in line.items() if k not in ("seconds", "init_model")} for line in lines_of(finished)
    ]


@pytest.mark.parametrize(
    "on_empty, message",
    [("stop", "on_empty: stop ends the run here"), ("previous_data", "nothing to train on")],
)
def test_round_without_correct_solution_is_reported_and_stops(tmp_path, sftkit, tiny_model_dir, sample_parquet,
                                                              on_empty, message):  # fmt: skip
    """The random tiny model solves nothing: the round is reported with `stopped`, nothing is trained, and a rerun
    stops the same way (a policy, not a failure: exit code 0)."""
    config = minimal(tmp_path, model=str(tiny_model_dir), problems=str(sample_parquet.val), eval_base=False,
                     metadata_file=str(ROOT / "data/sample/metadata.jsonl"), eval_problems=str(sample_parquet.val),
                     generate={"limit": 2, "max_new_tokens": 4}, on_empty=on_empty)  # fmt: skip
    out = tmp_path / "out"
    for _ in range(2):
        result = sftkit("rounds", "--config", config)
        assert result.returncode == 0 and message in result.stdout, result.stdout + result.stderr
        (line,) = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]
        assert (line["round"], line["correct"], line["generated"], line["coverage"]) == (1, 0, 2, 0.0)
        assert message in line["stopped"]
        assert sorted(p.name for p in (out / "round_1").iterdir()) == ["generate", "grade"]
