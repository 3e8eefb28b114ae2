"""`sftkit rounds --config ROUNDS.yaml [key=value ...] [--accelerate-config NAME|PATH]`: N rounds of generate ->
grade -> curate + split -> fine-tune -> evaluate, resumable at stage granularity.

Before any work: the recipe is checked (recipe.py), every finished stage's settings are compared with what the
recipe gives now (plan.py) and a change that would invalidate one is refused with the differences; an unfinished
training started with other settings too when it has checkpoints (without one it starts over). The training of
every round is resolved too (`sftkit train`'s own checks), so that a bad value in train.overrides fails now.
Then each unfinished stage runs (steps.py) and is published (stages.py); `rounds.jsonl` / `rounds.png` are
rewritten after each round. A rerun of a finished run does nothing. A pre-emption (SIGTERM/SIGUSR1, or the
training's exit code 75) exits with 75: rerun the same command to continue.
"""

from __future__ import annotations

import argparse
import shutil
import time

from sftkit.dist import user_errors
from sftkit.errors import SftkitError
from sftkit.rounds import launch, recipe, report, stages, steps
from sftkit.rounds.plan import Plan
from sftkit.rounds.stages import Stage

EPILOG = """\
examples:
  sftkit rounds --config recipes/rounds-tiny.yaml                     (make rounds)
  sftkit rounds --config recipes/rounds-qwen1.5b.yaml --accelerate-config fsdp4 rounds=4 generate.samples=8

  Rerun the same command after a pre-emption (exit code 75) or a failure: finished stages are kept.

"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sftkit rounds",
        description="The bootstrapping loop as one resumable command: each round generates solutions to the "
        "training problems with the latest model (sftkit eval), keeps the correct ones (sftkit filter), curates "
        "and splits them (sftkit prepare), fine-tunes (sftkit train) and evaluates on held-out problems. "
        "OUT/round_N/ per round, OUT/rounds.jsonl (one line per finished round), OUT/rounds.png.",
        epilog=EPILOG + recipe.help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, metavar="ROUNDS.yaml", help="the rounds recipe")
    p.add_argument(
        "--accelerate-config",
        metavar="NAME|PATH",
        help="launch each training through accelerate with "
        "this config (a shipped name: single_gpu, ddp, fsdp4, ... or a file); default: one process",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="recipe overrides, e.g. rounds=4 init=previous generate.samples=8 train.overrides.max_steps=200",
    )
    return p


def check(plan: Plan) -> None:
    """Load the records of the finished stages; refuse when the recipe changed under one of them, or under an
    unfinished training that has checkpoints (resuming would mix settings). An unfinished training without one is
    started over with the new settings, as an unfinished generation or data stage is."""
    from sftkit.checkpoint.layout import find_latest  # imports torch: seconds

    problems, resumable, restart = [], [], []
    for stage in plan.stages():
        record = stages.finished(stage)
        if record is None:
            pending = stages.pending(stage) if stage.name == "train" else None
            diff = stages.differences(pending["settings"], plan.settings(stage)) if pending is not None else []
            if diff and find_latest(stage.partial) is None:
                restart.append((stage, diff))
            elif diff:
                problems += [f"{stage.label} (unfinished, in {stage.partial}): {d}" for d in diff]
                resumable.append(stage)
            continue
        problems += [f"{stage.label}: {d}" for d in stages.differences(record["settings"], plan.settings(stage))]
        for r, name in plan.upstream(stage):
            before = plan.record(r, name)
            if before is None or record["inputs"].get(f"round {r} {name}") != before["id"]:
                problems.append(f"{stage.label}: made from a round {r} {name} that was removed or redone since")
        plan.records[(stage.round, stage.name)] = record
    if problems:
        listed = "\n  ".join(problems)
        partial = "".join(
            f"\n{s.label} is unfinished and has checkpoints made with the old settings, which it would resume "
            f"from: remove {s.partial} to start that round's training over with the new ones."
            for s in resumable
        )
        raise SftkitError(
            f"the rounds recipe changed since these stages were made in {plan.out}:\n  {listed}\nRerun with the "
            "settings they were made with, use another output_dir, or remove those stages' folders (and the later "
            f"rounds') to redo them.{partial}"
        )
    for stage, diff in restart:
        print(f"{stage.label}: the unfinished training in {stage.partial} has no checkpoint yet and was started "
              f"with other settings ({'; '.join(diff)}): it starts over with the new ones", flush=True)  # fmt: skip
        shutil.rmtree(stage.partial)


def run_stage(plan: Plan, stage: Stage, accelerate: str | None) -> None:
    settings = plan.settings(stage)
    print(f"\n=== {stage.label} ===", flush=True)
    before = stages.start(stage, settings, keep_partial=stage.name == "train")
    begin = time.perf_counter()
    try:
        if stage.name == "train":
            result = steps.train(plan, stage, accelerate)
        else:
            with launch.stop_on_signals():
                result = getattr(steps, "evaluate" if stage.name == "eval" else stage.name)(plan, stage)
    except launch.Preempted:
        stages.add_time(stage, time.perf_counter() - begin)
        raise
    except steps.Stop:
        shutil.rmtree(stage.partial, ignore_errors=True)  # nothing was made: the stage has not begun
        raise
    inputs = {f"round {r} {n}": plan.record(r, n)["id"] for r, n in plan.upstream(stage)}
    seconds = before + time.perf_counter() - begin
    plan.records[(stage.round, stage.name)] = stages.publish(stage, settings, inputs, seconds, result)
    print(f"{stage.label}: done in {seconds:.1f} s -> {stage.folder}", flush=True)


def _lock(plan: Plan):
    from sftkit.checkpoint.lock import RunLock

    lock = RunLock(plan.out)
    try:
        lock.acquire()
    except SftkitError:
        raise SftkitError(
            f"another `sftkit rounds` (or training) is running in {plan.out}: wait for it to finish, "
            "stop it, or use another output_dir"
        ) from None
    return lock


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    plan = Plan(recipe.load(args.config, args.overrides))
    if args.accelerate_config:
        launch.train_command(args.accelerate_config)  # a missing config is an error now
    steps.check_training(plan, args.accelerate_config)  # a bad value in train.overrides is an error now
    plan.files, plan.base_model, plan.curation_files  # noqa: B018 (missing input files and recipe are errors now)
    plan.out.mkdir(parents=True, exist_ok=True)
    lock = _lock(plan)
    try:
        check(plan)
        todo = [s for s in plan.stages() if plan.record(s.round, s.name) is None]
        if not todo:
            print(f"all {plan.recipe.rounds} rounds are finished in {plan.out} (rounds.jsonl): nothing to do")
            return 0
        done = len(plan.stages()) - len(todo)
        print(f"{plan.out}: {done} stages finished, {len(todo)} to run; first: {todo[0].label}", flush=True)
        for stage in todo:
            try:
                run_stage(plan, stage, args.accelerate_config)
            except steps.Stop as stop:
                report.write(plan.out, plan.records, (stage.round, str(stop)))
                print(f"stopped: {stop}")
                return 0
            if stage.name == "eval":
                lines = report.write(plan.out, plan.records)
                print(f"round {stage.round}: {_summary(lines[-1])} -> {plan.out / 'rounds.jsonl'}", flush=True)
        print(f"all {plan.recipe.rounds} rounds finished: {plan.out / 'rounds.jsonl'}, {plan.out / 'rounds.png'}")
        return 0
    except (launch.Preempted, KeyboardInterrupt) as exc:
        print(f"\nstopped ({exc or 'interrupted'}): finished stages are kept; rerun the same command to continue")
        return launch.EXIT_PREEMPTED
    finally:
        lock.release()


def _summary(line: dict) -> str:
    parts = [f"held-out pass@1 {line['pass_at_1']:.1%}"]
    if line.get("pass_at_k") is not None:
        parts.append(f"pass@{line['k']} {line['pass_at_k']:.1%}")
    if "coverage" in line:
        parts.append(f"coverage {line['coverage']:.1%}, {line['correct']} correct, {line['trained_rows']} trained")
    return ", ".join(parts)
