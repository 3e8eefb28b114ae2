"""Silent failures that must not come back (the trust issue): resume across rounds, pre-emption, a failed export,
a finished run resumed, the end-of-turn among the exported EOS ids, and one configuration object end to end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from _train_utils import (
    assert_same_state,
    losses,
    model_pt,
    overrides,
    run_until_signalled,
    train,
)
from sftkit.checkpoint import layout
from sftkit.checkpoint import state as ckpt_state
from sftkit.errors import SftkitError

pytestmark = pytest.mark.slow


def subset(assets, path: Path, rows: int, changed: bool = False) -> Path:
    table = pq.read_table(assets["train"]).slice(0, rows)
    if changed:  # same row count, one solution edited
        data = table.to_pylist()
        data[0]["generated_solution"] += " Double-checked."
        import pyarrow as pa

        table = pa.Table.from_pylist(data, schema=table.schema)
    pq.write_table(table, path)
    return path


# ---- round 2 does not continue round 1 ---------------------------------------------------------------------------
def test_new_data_in_the_same_folder_is_refused_on_auto_resume(assets, tmp_path, capsys):
    """generate -> filter -> train loops pass resume=auto to survive pre-emption; round 2's data (same file name,
    other content) must not silently continue round 1's finished state."""
    data, out = tmp_path / "train.parquet", tmp_path / "run"
    common = dict(train_files=f"[{data}]", val_files="[]", max_steps=-1, num_train_epochs=1, save_steps=0,
                  eval_steps=0, resume_from_checkpoint="auto")  # fmt: skip
    subset(assets, data, 48)
    train(assets, out, **common)
    subset(assets, data, 60)
    with pytest.raises(SftkitError, match=r"training data changed: 48 -> 60 rows, content differs") as err:
        train(assets, out, **common)
    assert "resume_ignore_mismatch" in str(err.value) and "another folder" in str(err.value)
    subset(assets, data, 48, changed=True)
    with pytest.raises(SftkitError, match="training data changed: same rows, content differs"):
        train(assets, out, **common)
    capsys.readouterr()
    subset(assets, data, 48)  # round 1's data again: a finished run resumed trains nothing
    train(assets, out, **common)
    assert f"resuming from {out / 'global_step_final'} (step 6)" in capsys.readouterr().out


def test_data_fingerprint_is_in_train_state(assets, tmp_path):
    out = tmp_path / "run"
    train(assets, out, max_steps=2, save_steps=0, eval_steps=0)
    data = layout.load_state(out / "global_step_final")["data"]
    assert data["rows"] == 540 and len(data["files_digest"]) == 32 and data["examples"] == 540


# ---- pre-emption ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, pytest.param(signal.SIGUSR1, marks=pytest.mark.extended)], ids=["SIGTERM", "SIGUSR1"]
)
def test_preemption_saves_at_the_step_boundary_and_auto_resumes_exactly(assets, tmp_path, sig):
    settings = dict(max_steps=24, save_steps=100, eval_steps=0, learning_rate=1e-4)
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    train(assets, straight, **settings)
    proc = run_until_signalled(overrides(assets, stopped, **settings), stopped, sig, after_step=3)
    assert proc.returncode == 75, proc.stderr[-2000:]
    assert "received: stopping after this optimizer step" in proc.stderr
    saved = [p for p in stopped.glob("global_step_*")]
    assert len(saved) == 1 and saved[0].name != "global_step_final" and layout.is_complete(saved[0])
    step = layout.load_state(saved[0])["global_step"]
    assert 3 <= step < 24 and (stopped / "latest").read_text().strip() == saved[0].name
    assert max(losses(stopped)) == step  # logged up to the step it saved, nothing after
    train(assets, stopped, resume_from_checkpoint="auto", **settings)
    a, b = losses(straight), losses(stopped)
    assert sorted(a) == sorted(b) == list(range(1, 25))
    for s in a:
        assert b[s] == pytest.approx(a[s], abs=1e-6), s
    assert_same_state(model_pt(straight / "global_step_final"), model_pt(stopped / "global_step_final"))


def test_preempted_at_the_last_step_resumes_to_a_final_checkpoint_without_training(assets, tmp_path, capsys):
    from transformers import TrainerCallback

    class Preempt(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 3:  # during the last step
                os.kill(os.getpid(), signal.SIGTERM)

    out = tmp_path / "run"
    trainer = train(assets, out, max_steps=4, save_steps=0, eval_steps=0, callbacks=[Preempt()])
    assert trainer.preempted and layout.is_complete(out / "global_step_4")
    assert not (out / "global_step_final").exists()
    before = losses(out)
    capsys.readouterr()
    train(assets, out, max_steps=4, save_steps=0, eval_steps=0, resume_from_checkpoint="auto")
    assert "writing global_step_final, training nothing" in capsys.readouterr().out
    assert losses(out) == before  # no step 5
    assert layout.load_state(out / "global_step_final")["global_step"] == 4
    assert (out / "global_step_final" / "huggingface" / "config.json").is_file()
    train(assets, out, max_steps=4, save_steps=0, eval_steps=0, resume_from_checkpoint="auto")
    assert "done already" in capsys.readouterr().out and losses(out) == before


def test_stop_file_from_the_launcher_stops_at_the_step_boundary(assets, tmp_path, monkeypatch):
    """scripts/launch.slurm creates $SFTKIT_STOP_FILE on SLURM's early warning: no signal has to get through
    torchrun's agent."""
    from transformers import TrainerCallback

    stop = tmp_path / "stop"
    monkeypatch.setenv("SFTKIT_STOP_FILE", str(stop))

    class CreateAtTwo(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 2:
                stop.touch()

    out = tmp_path / "run"
    trainer = train(assets, out, max_steps=6, save_steps=0, eval_steps=0, callbacks=[CreateAtTwo()])
    assert trainer.preempted and trainer.state.global_step == 3 and layout.is_complete(out / "global_step_3")
    assert not (out / "global_step_final").exists()


# ---- the export never costs the checkpoint ---------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A real 160 MiB filesystem (tmpfs; root only)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}): needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_failed_export_on_a_full_disk_keeps_the_final_checkpoint(assets, tmp_path, small_disk):
    """The disk fills up during the run (another job, logs): the final core checkpoint still fits, its Hugging Face
    export does not. The core files stay, the message says so, and `sftkit export` redoes the export."""
    from transformers import TrainerCallback

    from sftkit.checkpoint.export import main as export_main
    from sftkit.tiny import write_tiny_model

    model = write_tiny_model(tmp_path / "model-4m", hidden_size=256, layers=4)  # a 16 MB fp32 export
    settings = dict(model_name_or_path=model, max_steps=2, save_steps=0, eval_steps=0, val_files="[]")
    reference = tmp_path / "reference"
    train(assets, reference, **settings)
    tensors = sum(ckpt_state.tensor_bytes(torch.load(reference / "global_step_final" / f, weights_only=True))
                  for f in ("model.pt", "optimizer.pt"))  # what the save's disk check counts  # fmt: skip

    class FillDisk(TrainerCallback):  # before the final save: room for the core checkpoint and its margin only
        def on_train_end(self, args, state, control, **kwargs):
            free = shutil.disk_usage(small_disk).free
            (small_disk / "ballast").write_bytes(b"\0" * (free - int(tensors * 1.05) - (9 << 20)))

    out = small_disk / "run"
    with pytest.raises(SftkitError) as err:
        train(assets, out, callbacks=[FillDisk()], **settings)
    message = str(err.value)
    assert "No space left on device" in message or "Errno 28" in message
    assert "complete and intact" in message and f"sftkit export {out / 'global_step_final'}" in message
    final = out / "global_step_final"
    assert layout.is_complete(final) and (out / "latest").read_text().strip() == "global_step_final"
    assert not (final / "huggingface").exists() and not list(final.glob(".tmp-*"))
    assert_same_state(model_pt(final), model_pt(reference / "global_step_final"))
    (small_disk / "ballast").unlink()
    assert export_main([str(final), "--output", str(final / "huggingface")]) == 0
    assert (final / "huggingface" / "model.safetensors").is_file()


# ---- the exported model stops at the trained end-of-turn ---------------------------------------------------------
def test_export_lists_the_end_of_turn_among_eos_ids_and_generation_stops_there(assets, tmp_path):
    from transformers import AutoModelForCausalLM, GenerationConfig, LogitsProcessor

    base = tmp_path / "base-model"
    shutil.copytree(assets["model"], base)
    GenerationConfig(eos_token_id=0, pad_token_id=0).save_pretrained(base)  # a base model: <|endoftext|> only
    out = tmp_path / "run"
    train(assets, out, model_name_or_path=base, max_steps=1, save_steps=0, eval_steps=0)
    exported = out / "global_step_final" / "huggingface"
    config = json.loads((exported / "generation_config.json").read_text())
    im_end = 2  # the tiny tokenizer's <|im_end|>
    assert sorted(config["eos_token_id"]) == [0, im_end]
    model = AutoModelForCausalLM.from_pretrained(exported).eval()

    class EndAtThree(LogitsProcessor):  # the model "says" <|im_end|> as its 3rd token
        def __call__(self, input_ids, scores):
            if input_ids.shape[1] == prompt.shape[1] + 2:
                scores[:] = -1e9
                scores[:, im_end] = 0
            return scores

    prompt = torch.tensor([[5, 6, 7]])
    generated = model.generate(prompt, max_new_tokens=10, do_sample=False, logits_processor=[EndAtThree()])
    assert generated.shape[1] == prompt.shape[1] + 3 and generated[0, -1] == im_end


# ---- one configuration object ------------------------------------------------------------------------------------
def test_printed_saved_and_trainer_config_are_the_plan_s(assets, tmp_path, capsys):
    from sftkit.config.plan import plan_run
    from sftkit.train import run

    plan = plan_run(None, overrides(assets, tmp_path / "run", max_steps=2, save_steps=0, eval_steps=0), environ={})
    trainer = run(plan)
    printed = capsys.readouterr().out
    saved = layout.load_state(tmp_path / "run" / "global_step_final")["config"]
    assert trainer.plan is plan and trainer.args is plan.trainer_args
    assert saved == plan.to_dict()
    for key, origin in plan.sources.items():
        assert f"  {key} = {plan.to_dict()[key]!r}   [{origin}]" in printed
    for name in ("learning_rate", "seed", "max_grad_norm", "weight_decay", "max_steps", "lr_scheduler_type"):
        assert getattr(trainer.args, name) == getattr(plan.train, name), name
    assert trainer.args.bf16 == plan.bf16 and saved["gradient_accumulation_steps"] == plan.grad_accum == 2
    assert saved["max_length"] == plan.cut_length == 256 and trainer.args.max_length is None  # examples already cut
