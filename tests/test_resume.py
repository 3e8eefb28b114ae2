"""Which checkpoint a run resumes from and whether its run matches this one (checkpoint/resume.py): another run's
data, examples built another way or another model are refused with the differences listed; the output folder is
checked before any work."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _train_utils import assert_user_error, overrides, train
from sftkit.checkpoint import layout, resume
from sftkit.errors import SftkitError


def test_resume_refuses_examples_built_another_way(tmp_path):
    """Same files, examples built with another chat template / tokenizer / labels version: refused."""
    saved = {"config": {}, "data": {"files_digest": "f", "rows": 540, "examples": 540, "key": "examples-key-A"}}
    now = {"files_digest": "f", "rows": 540, "examples": 540, "key": "examples-key-B"}  # same files, other template
    with pytest.raises(SftkitError):
        resume.check_compatible(tmp_path, saved, {}, now, ignore=False)


def subset(assets, path: Path, rows: int, changed: bool = False) -> Path:
    """The first `rows` training rows written to `path` (with `changed`, one solution edited)."""
    table = pq.read_table(assets["train"]).slice(0, rows)
    if changed:  # same row count, one solution edited
        data = table.to_pylist()
        data[0]["generated_solution"] += " Double-checked."
        table = pa.Table.from_pylist(data, schema=table.schema)
    pq.write_table(table, path)
    return path


@pytest.mark.slow
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


@pytest.mark.slow
def test_data_fingerprint_is_in_train_state(assets, tmp_path):
    out = tmp_path / "run"
    train(assets, out, max_steps=2, save_steps=0, eval_steps=0)
    data = layout.load_state(out / "global_step_final")["data"]
    assert data["rows"] == 540 and len(data["files_digest"]) == 32 and data["examples"] == 540


@pytest.mark.slow
def test_output_dir_that_is_a_file_or_unwritable_fails_before_loading_anything(assets, tmp_path, sftkit):
    (tmp_path / "file").write_text("x")
    start = time.perf_counter()
    proc = sftkit("train", *overrides(assets, tmp_path / "file"))
    assert_user_error(proc, "is a file")
    assert "Loading weights" not in proc.stderr and "data: tokenized" not in proc.stdout  # before expensive work
    assert time.perf_counter() - start < 60
    proc = sftkit("train", *overrides(assets, tmp_path / "file" / "below"))
    assert_user_error(proc, "not writable")


@pytest.mark.slow
def test_resume_ignore_mismatch_with_another_model_is_a_message(assets, finished_run, tmp_path, sftkit):
    from sftkit.tiny import write_tiny_model

    other = write_tiny_model(tmp_path / "wider", hidden_size=96)
    proc = sftkit("train", *overrides(assets, tmp_path / "o", model_name_or_path=other, max_steps=3,
                                      resume_from_checkpoint=finished_run / "global_step_2",
                                      resume_ignore_mismatch="true"))  # fmt: skip
    assert_user_error(proc, "do not fit this model")


@pytest.mark.slow
def test_model_path_with_a_trailing_slash_resumes(assets, tmp_path):
    out = tmp_path / "run"
    train(assets, out, max_steps=3, save_steps=2, eval_steps=0, val_files="[]")
    shutil.rmtree(out / "global_step_final")
    assets_slash = {**assets, "model": f"{assets['model']}/"}
    train(assets_slash, out, max_steps=3, save_steps=2, eval_steps=0, val_files="[]", resume_from_checkpoint="auto")
    assert layout.is_complete(out / "global_step_final")


def test_shared_prompt_packing_is_compared_on_resume_and_old_checkpoints_count_as_without_it():
    """It decides which examples share a step, so switching it on resume would resume another run; a checkpoint
    saved before it was recorded ran without it unless data.share_prompts=true was asked."""
    now = {"prompt_groups": True, "share_prompts": True}
    assert any("prompt_groups: checkpoint False vs now True" in d for d in resume.differences({}, now))
    assert any("data.share_prompts" in d for d in resume.differences({"share_prompts": None}, now))
    assert not resume.differences({"share_prompts": True}, now)
    assert not resume.differences({"share_prompts": None}, {"prompt_groups": False, "share_prompts": True})


def test_a_run_with_shared_prompts_is_not_resumed_without_them(assets, finished_run, tmp_path, sftkit):
    """The bundled sample holds 2 solutions per prompt: the finished run (defaults) packed shared prompts."""
    assert layout.load_state(finished_run / "global_step_2")["config"]["prompt_groups"] is True
    proc = sftkit("train", *overrides(assets, tmp_path / "o", max_steps=3, share_prompts="false",
                                      resume_from_checkpoint=finished_run / "global_step_2"))  # fmt: skip
    assert_user_error(proc, "prompt_groups: checkpoint True vs now False")
