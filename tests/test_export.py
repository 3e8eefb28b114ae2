"""A checkpoint to a Hugging Face model folder (checkpoint/export.py): the export never costs the checkpoint, and
the exported model stops at the end-of-turn it was trained to write."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess

import pytest
import torch

from _train_utils import assert_same_state, model_pt, train
from sftkit.checkpoint import layout
from sftkit.checkpoint import state as ckpt_state
from sftkit.errors import SftkitError

pytestmark = pytest.mark.slow


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


@pytest.mark.slow
def test_export_never_replaces_a_run_or_other_files(finished_run, tmp_path):
    from sftkit.checkpoint import export

    ckpt = finished_run / "global_step_2"
    before = sorted(p.name for p in finished_run.iterdir())
    with pytest.raises(SftkitError, match="holds training checkpoints"):
        export.export_checkpoint(ckpt, finished_run)  # into the run folder: it used to rmtree every checkpoint
    assert sorted(p.name for p in finished_run.iterdir()) == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine")
    with pytest.raises(SftkitError, match="not empty and is not an earlier export"):
        export.export_checkpoint(ckpt, other)
    assert (other / "todo.txt").read_text() == "mine"
    target = tmp_path / "hf"
    export.export_checkpoint(ckpt, target)
    with pytest.raises(SftkitError, match="--overwrite"):
        export.export_checkpoint(ckpt, target)
    export.export_checkpoint(ckpt, target, overwrite=True)
    assert not list(tmp_path.glob(".tmp-*"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(SftkitError, match="is a file"):
        export.export_checkpoint(ckpt, tmp_path / "file")
    # safetensors writes 0600; an export is readable like the rest of the folder
    assert stat.S_IMODE((target / "model.safetensors").stat().st_mode) == 0o644
