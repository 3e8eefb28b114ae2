"""Checkpoints (docs/contracts.md §5): exact resume, refusal of another run's checkpoint, crashes and full disks
mid-save, pruning, global_step_0, export."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModelForCausalLM, TrainerCallback

from _train_utils import assert_same_run, assert_same_state, assert_user_error, losses, model_pt, overrides, train
from sftkit.checkpoint import export
from sftkit.checkpoint import layout as checkpoint
from sftkit.errors import SftkitError

pytestmark = pytest.mark.slow


class Crash(Exception):
    pass


class CrashAfterSave(TrainerCallback):
    """Simulates a pre-emption right after the checkpoint of `step` is written."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Crash


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_resume_gives_the_same_losses_and_weights(assets, tmp_path, lora):
    extra = {"lora_rank": 4, "lora_alpha": 8, "learning_rate": 1e-2} if lora else {}
    straight = tmp_path / "straight"
    train(assets, straight, **extra)
    resumed = tmp_path / "resumed"
    with pytest.raises(Crash):
        train(assets, resumed, callbacks=[CrashAfterSave(3)], **extra)
    assert (resumed / "latest").read_text().strip() == "global_step_3"
    train(assets, resumed, resume_from_checkpoint="auto", **extra)
    assert_same_run(straight, resumed, 6)
    optim_a = torch.load(straight / "global_step_final" / "optimizer.pt", weights_only=True)
    optim_b = torch.load(resumed / "global_step_final" / "optimizer.pt", weights_only=True)
    for key, state in optim_a["state"].items():
        torch.testing.assert_close(state["exp_avg_sq"], optim_b["state"][key]["exp_avg_sq"], atol=1e-9, rtol=0)


def test_resume_from_explicit_path_into_another_folder(assets, tmp_path):
    first = tmp_path / "first"
    with pytest.raises(Crash):
        train(assets, first, callbacks=[CrashAfterSave(3)])
    other = tmp_path / "other"
    train(assets, other, resume_from_checkpoint=first / "global_step_3")
    assert sorted(losses(other)) == [4, 5, 6]


def test_checkpoint_of_another_run_is_refused_with_the_differences(assets, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Crash):
        train(assets, out, callbacks=[CrashAfterSave(3)])
    with pytest.raises(SftkitError) as err:
        train(assets, out, resume_from_checkpoint="auto", max_length=128, learning_rate=5e-4)
    assert "max_length: checkpoint 256 vs now 128" in str(err.value)
    assert "learning_rate" in str(err.value) and "resume_ignore_mismatch" in str(err.value)
    # The output folder, logger and resume settings are not compared; with the flag it goes on.
    train(assets, out, resume_from_checkpoint="auto", max_length=128, resume_ignore_mismatch="true")
    assert checkpoint.load_state(out / "global_step_final")["global_step"] == 6


def test_resume_compares_the_base_weights_clipping_and_precision(assets, tmp_path):
    """A LoRA run whose base model was rebuilt at the same path (other weights), or resumed with another gradient
    clipping or precision, is another run; the same weights moved to another folder are not."""
    from sftkit.tiny import write_tiny_model

    base = shutil.copytree(assets["model"], tmp_path / "base")
    lora = {"model_name_or_path": base, "lora_rank": 4, "lora_alpha": 8}
    out = tmp_path / "run"
    with pytest.raises(Crash):
        train(assets, out, callbacks=[CrashAfterSave(3)], **lora)
    shutil.copytree(base, tmp_path / "moved")
    write_tiny_model(base, seed=1)
    with pytest.raises(SftkitError) as err:
        train(assets, out, resume_from_checkpoint="auto", max_grad_norm=0.5, bf16="true", **lora)
    message = str(err.value)
    assert f"base model weights: {base} holds other weights" in message
    assert "max_grad_norm: checkpoint 1.0 vs now 0.5" in message and "bf16: checkpoint False vs now True" in message
    moved = {**lora, "model_name_or_path": tmp_path / "moved"}
    train(assets, out, resume_from_checkpoint="auto", **moved)
    assert checkpoint.load_state(out / "global_step_final")["global_step"] == 6


def test_incomplete_checkpoint_is_refused(assets, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Crash):
        train(assets, out, callbacks=[CrashAfterSave(3)])
    (out / "global_step_3" / "optimizer.pt").unlink()
    with pytest.raises(SftkitError, match="incomplete .*optimizer.pt"):
        train(assets, out, resume_from_checkpoint=out / "global_step_3")


def test_pruning_keeps_newest_and_final_and_save_initial(assets, tmp_path):
    out = tmp_path / "run"
    train(assets, out, max_steps=8, save_steps=2, max_ckpt_to_keep=2, save_initial="true")
    names = sorted(p.name for p in out.glob("global_step_*"))
    # 0, 2 pruned after newer ones; the last step is written once, as global_step_final
    assert names == ["global_step_4", "global_step_6", "global_step_final"]
    assert not list(out.glob(".tmp-*"))


def test_save_initial_writes_step_zero(assets, tmp_path):
    out = tmp_path / "run"
    train(assets, out, max_steps=2, save_steps=0, save_initial="true")
    state = checkpoint.load_state(out / "global_step_0")
    assert state["global_step"] == 0
    initial = AutoModelForCausalLM.from_pretrained(assets["model"]).state_dict()
    saved = model_pt(out / "global_step_0")
    torch.testing.assert_close(saved["model.embed_tokens.weight"], initial["model.embed_tokens.weight"])


def test_full_disk_gives_a_clear_error_and_keeps_earlier_checkpoints(assets, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = shutil.disk_usage

    def fake_usage(path):
        usage = real(path)
        full = (out / "global_step_3").exists()
        return usage._replace(free=1024 if full else usage.free)

    monkeypatch.setattr(shutil, "disk_usage", fake_usage)
    with pytest.raises(SftkitError, match="not enough disk space"):
        train(assets, out)
    assert checkpoint.is_complete(out / "global_step_3")
    assert (out / "latest").read_text().strip() == "global_step_3"
    assert not (out / "global_step_6").exists() and not list(out.glob(".tmp-*"))


def test_write_error_mid_save_removes_the_partial_folder(tmp_path, monkeypatch):
    checkpoint.write_checkpoint(
        tmp_path,
        "global_step_1",
        {"model.pt": {"w": torch.ones(2)}, "optimizer.pt": {}, "scheduler.pt": {}, "train_state.pt": {}},
    )
    calls = []

    def failing(obj, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        torch.save(obj, path)

    monkeypatch.setattr(checkpoint, "_fsync_save", failing)
    with pytest.raises(SftkitError, match="No space left on device.*Earlier checkpoints are intact"):
        checkpoint.write_checkpoint(tmp_path, "global_step_2", {"model.pt": {}, "optimizer.pt": {}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["global_step_1", "latest"]
    assert (tmp_path / "latest").read_text().strip() == "global_step_1"


KILLER = textwrap.dedent("""
    import os, signal, sys
    from sftkit.checkpoint import layout as checkpoint
    target, point = int(sys.argv[1]), sys.argv[2]
    real_save, real_text = checkpoint._fsync_save, checkpoint.write_atomic_text
    calls = {"n": 0}
    def die():
        os.kill(os.getpid(), signal.SIGKILL)
    def save(obj, path):
        if path.parent.name == f".tmp-global_step_{target}":
            calls["n"] += 1
            if point == f"file{calls['n']}":
                real_save(obj, path) if calls["n"] > 1 else None
                die()
        real_save(obj, path)
    def text(path, content):
        if point == "before-latest" and content.strip() == f"global_step_{target}":
            die()
        real_text(path, content)
    checkpoint._fsync_save, checkpoint.write_atomic_text = save, text
    from sftkit.train import main
    sys.exit(main(sys.argv[3:]))
""")


@pytest.mark.parametrize(
    "point", ["file1", pytest.param("file2", marks=pytest.mark.extended),
              pytest.param("file4", marks=pytest.mark.extended),
              pytest.param("before-latest", marks=pytest.mark.extended)],
)  # fmt: skip
def test_sigkill_during_a_save_leaves_earlier_checkpoints_and_resume_continues(assets, tmp_path, point):
    out = tmp_path / "run"
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    args = overrides(assets, out, max_steps=6, save_steps=2, eval_steps=0)
    proc = subprocess.run(
        [sys.executable, str(script), "4", point, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert checkpoint.is_complete(out / "global_step_2")
    done = checkpoint.is_complete(out / "global_step_4")  # killed after the rename: complete, `latest` still 2
    assert done == (point == "before-latest")
    assert not (out / "global_step_4").exists() or done
    assert checkpoint.find_latest(out).name == ("global_step_4" if done else "global_step_2")
    train(assets, out, max_steps=6, save_steps=2, eval_steps=0, resume_from_checkpoint="auto")
    assert checkpoint.load_state(out / "global_step_final")["global_step"] == 6


def test_export_cli_of_a_numbered_checkpoint(assets, tmp_path):
    out = tmp_path / "run"
    train(assets, out, max_steps=3, save_steps=2, eval_steps=0)
    target = tmp_path / "hf"
    assert export.main([str(out / "global_step_2"), "--output", str(target)]) == 0
    model = AutoModelForCausalLM.from_pretrained(target)
    assert_same_state(
        {k: v for k, v in model.state_dict().items() if k in model_pt(out / "global_step_2")},
        model_pt(out / "global_step_2"),
    )
    assert export.main([str(tmp_path / "nope"), "--output", str(target)]) == 2


def small_train_file(assets, tmp_path, rows: int = 40):
    import pyarrow.parquet as pq

    path = tmp_path / "small.parquet"
    pq.write_table(pq.read_table(assets["train"]).slice(0, rows), path)
    return path


def test_resume_in_a_later_epoch_replays_nothing(assets, tmp_path):
    """40 examples, global batch 8: 5 steps an epoch; crash in epoch 2 and resume: the same losses as straight."""
    extra = {
        "train_files": f"[{small_train_file(assets, tmp_path)}]",
        "max_steps": -1,
        "num_train_epochs": 2,
        "save_steps": 7,
        "eval_steps": 0,
    }
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(assets, straight, **extra)
    with pytest.raises(Crash):
        train(assets, resumed, callbacks=[CrashAfterSave(7)], **extra)
    train(assets, resumed, resume_from_checkpoint="auto", **extra)
    a, b = losses(straight), losses(resumed)
    assert sorted(a) == sorted(b) == list(range(1, 11))
    for step in a:
        assert a[step] == pytest.approx(b[step], abs=1e-6), step


def test_save_initial_does_not_change_the_run(assets, tmp_path):
    plain, initial = tmp_path / "plain", tmp_path / "initial"
    train(assets, plain, max_steps=3, save_steps=0, eval_steps=0)
    train(assets, initial, max_steps=3, save_steps=0, eval_steps=0, save_initial="true")
    assert losses(plain) == pytest.approx(losses(initial), abs=1e-7)
    assert torch.load(initial / "global_step_0" / "optimizer.pt", weights_only=True) == {}


def test_a_new_run_never_overwrites_another_run_s_checkpoints(assets, tmp_path):
    """A run started (no resume) in a folder that holds another run's checkpoints is refused before training,
    naming the folder and the two ways out; the old run's files are untouched."""
    out = tmp_path / "run"
    train(assets, out, max_steps=4, save_steps=2, eval_steps=0)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("global_step_*/*.pt")}
    metrics = (out / "metrics.jsonl").read_text()
    with pytest.raises(SftkitError) as err:
        train(assets, out, max_steps=6, save_steps=2, eval_steps=0, max_ckpt_to_keep=1)
    message = str(err.value)
    assert str(out) in message and "global_step_2" in message and "global_step_final" in message
    assert "resume_from_checkpoint=auto" in message and "another folder" in message
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("global_step_*/*.pt")} == before
    assert (out / "metrics.jsonl").read_text() == metrics
    # resuming another run's checkpoint into this folder is refused too; into a new folder it is allowed
    other = tmp_path / "other"
    train(assets, other, max_steps=2, save_steps=0, eval_steps=0)
    with pytest.raises(SftkitError, match="already holds checkpoints"):
        train(assets, out, max_steps=4, save_steps=2, eval_steps=0, resume_from_checkpoint=other / "global_step_final")


def test_interrupted_overwrite_of_the_final_checkpoint_is_recovered(tmp_path):
    files = {
        "model.pt": {},
        "optimizer.pt": {},
        "scheduler.pt": {},
        "train_state.pt": {"saved_at": 1.0},
        "trainer_state.json": "{}",
    }
    checkpoint.write_checkpoint(tmp_path, "global_step_final", files)
    os.rename(tmp_path / "global_step_final", tmp_path / ".old-global_step_final")  # crash between the renames
    assert checkpoint.find_latest(tmp_path).name == ".old-global_step_final"


def test_damaged_checkpoint_files_get_a_message(assets, finished_run, tmp_path, sftkit):
    for name, damage in (("model.pt", lambda p: p.write_bytes(p.read_bytes()[:100])),
                         ("train_state.pt", lambda p: p.write_bytes(b"garbage"))):  # fmt: skip
        run = tmp_path / name
        shutil.copytree(finished_run, run)
        damage(run / "global_step_2" / name)
        proc = sftkit("train", *overrides(assets, tmp_path / f"out-{name}", max_steps=3,
                                          resume_from_checkpoint=run / "global_step_2"))  # fmt: skip
        assert_user_error(proc, f"global_step_2/{name}", "damaged")
