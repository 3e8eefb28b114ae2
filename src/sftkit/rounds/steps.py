"""The stages of a round, each the existing command writing into the stage's .partial folder; each returns the
numbers that `rounds.jsonl` reports.

    generate  sftkit eval  (the latest model on the training problems, K samples)  solutions.jsonl, report.json
    grade     sftkit filter (the round's solutions)                               correct.parquet, report.json
    data      sftkit prepare (this round's or every round's correct solutions, curated and split)
                                                                    train.parquet, val.parquet, prepare_report.json
    train     sftkit train  (child process; from the base model or the previous round's)  global_step_*, metrics
    eval      sftkit eval  (the round's final checkpoint on the held-out problems)  solutions.jsonl, report.json

Generation runs in this process on CPU, in a child process where there is a GPU (the training after it needs the
memory that vLLM or the model would otherwise keep).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from sftkit.errors import SftkitError
from sftkit.rounds import launch
from sftkit.rounds.plan import Plan
from sftkit.rounds.stages import Stage


class Stop(Exception):
    """The run ends here by policy (on_empty: stop, or no data at all): a message, not an error."""


def _command(module: str, argv: list[str], label: str, child: bool = False) -> None:
    if child:
        code = subprocess.run([sys.executable, "-m", module, *argv]).returncode
    else:
        code = importlib.import_module(module).main(argv)
    if code != 0:
        raise SftkitError(
            f"{label} failed (exit code {code}, message above). Finished stages are kept: fix the "
            "cause and rerun the same command.",
            exit_code=code,
        )


def _gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _eval(plan: Plan, stage: Stage, model: str, problems: str, metadata: str, section: str, seed: int | None):
    argv = [
        model,
        "--problems",
        problems,
        "--metadata-file",
        metadata,
        "--output",
        str(stage.partial / "solutions.jsonl"),
        "--report-json",
        str(stage.partial / "report.json"),
        *plan.options[section][0],
    ]
    if seed is not None:
        argv += ["--seed", str(seed)]  # the last --seed wins
    _command("sftkit.evaluation.command", argv, stage.label, child=_gpu())
    return json.loads((stage.partial / "report.json").read_text())


def generate(plan: Plan, stage: Stage) -> dict:
    r = stage.round
    rc = plan.recipe
    report = _eval(plan, stage, plan.generating_model(r), rc.problems, rc.metadata_file, "generate", plan.seed(r))
    return {
        "model": plan.generating_model(r),
        "problems": report["problems_read"]["problems"],
        "solutions": report["solutions"],
        "accuracy": report["accuracy"],
        "blank": report["empty_solutions"],
    }


def grade(plan: Plan, stage: Stage) -> dict:
    import pyarrow.parquet as pq

    generated = plan.record(stage.round, "generate")["result"]
    if generated.get("blank") == generated["solutions"]:  # `sftkit filter` would find no usable row: none is correct
        print(f"{stage.label}: every generated solution is blank: none is correct", flush=True)
        return {"correct": 0, "solved": 0, "coverage": 0.0}
    solutions = plan.folder(stage.round, "generate") / "solutions.jsonl"
    correct = stage.partial / "correct.parquet"
    argv = [
        "--solutions-file",
        str(solutions),
        "--metadata-file",
        plan.recipe.metadata_file,
        "--save-correct",
        str(correct),
        "--report-json",
        str(stage.partial / "report.json"),
        *plan.options["filter"][0],
    ]
    _command("sftkit.grading.filter", argv, stage.label)
    report = json.loads((stage.partial / "report.json").read_text())
    id_key = plan.options["filter"][1]["id_key"]
    solved = len(set(pq.read_table(correct, columns=[id_key]).column(id_key).to_pylist())) if report["correct"] else 0
    problems = generated["problems"]
    return {"correct": report["correct"], "solved": solved, "coverage": solved / problems if problems else 0.0}


def _data_rounds(plan: Plan, r: int) -> list[int]:
    """The rounds whose correct solutions round r trains on (train_on, on_empty); Stop when the policy says so."""
    rc = plan.recipe
    correct = {k: plan.record(k, "grade")["result"]["correct"] for k in range(1, r + 1)}
    if rc.train_on == "all":
        rounds = [k for k in range(1, r + 1) if correct[k]]
    else:
        rounds = [r] if correct[r] else [k for k in range(r - 1, 0, -1) if correct[k]][:1]
    if not correct[r]:
        generated = plan.record(r, "generate")["result"]["solutions"]
        if rc.on_empty == "stop":
            raise Stop(
                f"round {r}: no correct solution among the {generated} generated; on_empty: stop ends the "
                "run here (on_empty: previous_data trains on earlier rounds' data instead)"
            )
        print(
            f"round {r}: no correct solution among the {generated} generated; on_empty: previous_data: training "
            f"on {'the data of rounds ' + str(rounds) if rounds else 'no earlier round (none has any)'}"
            f"{' and prepare.mix' if plan.recipe.prepare.get('mix') else ''}",
            flush=True,
        )
    if not rounds and not plan.recipe.prepare.get("mix"):
        raise Stop(
            f"round {r}: nothing to train on: no correct solution in this round or an earlier one, and no "
            "prepare.mix source. A stronger base model, more samples or longer generations may help."
        )
    return rounds


def data(plan: Plan, stage: Stage) -> dict:
    rounds = _data_rounds(plan, stage.round)
    files = [str(plan.folder(k, "grade") / "correct.parquet") for k in rounds]
    _command(
        "sftkit.data.prepare", [*files, "--output-dir", str(stage.partial), *plan.options["prepare"][0]], stage.label
    )
    split = json.loads((stage.partial / "prepare_report.json").read_text())["split"]
    train_rows, val_rows = split["train"]["rows"], split["val"]["rows"]
    return {"rounds": rounds, "kept": train_rows + val_rows, "train_rows": train_rows, "val_rows": val_rows}


def _value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def train_argv(plan: Plan, stage: Stage) -> list[str]:
    """`sftkit train`'s arguments for the round: the recipe, train.overrides, then the keys `rounds` sets."""
    from sftkit.rounds.plan import train_recipe_path

    r, rc = stage.round, plan.recipe
    folder = plan.folder(r, "data")
    argv = ["--config", str(train_recipe_path(rc.train_recipe))]
    argv += [f"{k}={_value(v)}" for k, v in rc.train_overrides.items()]
    argv += [
        f"model_name_or_path={plan.init_model(r)}",
        f"train_files=[{folder / 'train.parquet'}]",
        f"val_files=[{folder / 'val.parquet'}]",
        f"output_dir={stage.partial}",
        "resume_from_checkpoint=auto",
    ]
    if plan.lora and rc.init == "previous":
        argv.append("merge_lora=true")  # the next round starts from huggingface/merged
    return argv


def check_training(plan: Plan, accelerate: str | None) -> None:
    """The last round's training resolved now, as `sftkit train` resolves it before its work (sftkit.config.plan:
    types, ranges, batch sizes for the accelerate config's processes), with its model and data files still to be
    made: a bad value in train.overrides is an error before any stage runs, not when round 1's training starts."""
    from sftkit.config.plan import plan_run

    processes, precision = launch.accelerate_settings(accelerate)
    environ = {**os.environ, **({"ACCELERATE_MIXED_PRECISION": precision} if precision else {})}
    argv = train_argv(plan, Stage(plan.recipe.rounds, "train", plan.out))
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its notes are printed by the training itself
            plan_run(argv[1], argv[2:], environ=environ, world_size=processes)
    except SftkitError as exc:
        raise SftkitError(f"train: {plan.recipe.train_recipe} with train.overrides: {exc}") from None


def train(plan: Plan, stage: Stage, accelerate: str | None) -> dict:
    from sftkit.training.finish import RESUME_HINT

    argv = train_argv(plan, stage)
    print(f"{stage.label}: {' '.join(launch.train_command(accelerate))} {' '.join(argv)}", flush=True)
    hint = {RESUME_HINT: "rerun the same `sftkit rounds` command to continue"}  # rounds resumes it itself
    code = launch.run_training(
        launch.train_command(accelerate) + argv, stage.partial / ".stop", {**os.environ, **hint}
    )
    if code == launch.EXIT_PREEMPTED:
        raise launch.Preempted(f"{stage.label} was pre-empted (exit code 75)")
    if code != 0:
        raise SftkitError(
            f"{stage.label} failed (exit code {code}, message above). Its checkpoints are kept in "
            f"{stage.partial}: fix the cause and rerun the same command.",
            exit_code=code,
        )
    return {"init_model": plan.init_model(stage.round), **train_numbers(stage.partial)}


def train_numbers(folder: Path) -> dict:
    """Final train and validation loss (metrics.jsonl), steps, and the training examples and their trained
    (labelled) tokens, from the examples cache the run used (None where that cache is gone)."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    losses = [r["loss"] for r in rows if r.get("loss") is not None]
    val = [r["val_loss"] for r in rows if r.get("val_loss") is not None]
    from sftkit.checkpoint.layout import load_state

    state = load_state(folder / "global_step_final")
    identity = state.get("data") or {}
    return {
        "steps": state["global_step"],
        "train_loss": losses[-1] if losses else None,
        "val_loss": val[-1] if val else None,
        "examples": identity.get("examples"),
        "trained_tokens": _trained_tokens(state.get("config") or {}, identity.get("key")),
    }


def _trained_tokens(config: dict, key: str | None) -> int | None:
    from sftkit.data import cache

    path = cache.folder(config.get("cache_dir"), key) / cache.FILE if key else None
    if path is None or not path.is_file():
        return None
    from datasets import Dataset

    from sftkit.data.dataset import column

    return int(column(Dataset.from_file(str(path)), "trained").sum())


def evaluate(plan: Plan, stage: Stage) -> dict:
    r, rc = stage.round, plan.recipe
    model = rc.model if r == 0 else str(plan.folder(r, "train") / "global_step_final")
    report = _eval(plan, stage, model, rc.eval_problems, rc.eval_metadata, "evaluate", None)
    k = report["generation"]["samples"]
    at_k = report.get("pass_at_k", {}).get(str(k), {}).get("value", report["accuracy"]) if k > 1 else None
    return {
        "model": model,
        "problems": report["problems_read"]["problems"],
        "pass_at_1": report["accuracy"],
        "pass_at_k": at_k,
        "k": k,
    }
