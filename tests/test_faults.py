"""Bad input and faults (issue: what an adversarial sweep lost, trained on wrongly, or crashed on). Each case is a
real file, folder or process: nothing lost or overwritten, nothing trained on silently, one message and exit 2
instead of a traceback — before expensive work."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from _train_utils import ROOT, overrides, sftkit_process, train
from sftkit.checkpoint import export, layout
from sftkit.checkpoint.lock import RunLock
from sftkit.config.plan import plan_run
from sftkit.errors import SftkitError

BASE = ["model_name_or_path=m", "train_files=[t.parquet]"]


@pytest.fixture(scope="module")
def finished(assets, tmp_path_factory) -> Path:
    """A finished tiny run: global_step_2, global_step_final (+ huggingface/)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train(assets, out, max_steps=3, save_steps=2, eval_steps=0)
    return out


def assert_user_error(proc, *needles):
    assert proc.returncode == 2, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr and proc.stderr.count("error:") == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


# ---- lost or overwritten ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_export_never_replaces_a_run_or_other_files(finished, tmp_path):
    ckpt = finished / "global_step_2"
    before = sorted(p.name for p in finished.iterdir())
    with pytest.raises(SftkitError, match="holds training checkpoints"):
        export.export_checkpoint(ckpt, finished)  # into the run folder: it used to rmtree every checkpoint
    assert sorted(p.name for p in finished.iterdir()) == before
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


LOCK_HOLDER = """
import sys, time
from sftkit.checkpoint.lock import RunLock
lock = RunLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_training_in_the_same_folder_is_refused_and_a_killed_one_leaves_no_lock(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    try:
        with pytest.raises(SftkitError, match=rf"another training is running in {out} \(host .*pid {holder.pid}"):
            RunLock(out).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the operating system releases the lock
        holder.wait()
    lock = RunLock(out)
    lock.acquire()  # no stale lock
    lock.release()


@pytest.mark.slow
def test_resuming_a_finished_run_trains_nothing(assets, finished, capsys):
    """A SLURM requeue of a job that completed: it says so, trains no step 4/3, rewrites nothing."""
    before = (finished / "metrics.jsonl").read_text()
    final = layout.find_latest(finished)
    mtime = (final / "model.pt").stat().st_mtime_ns
    train(assets, finished, max_steps=3, save_steps=2, eval_steps=0, resume_from_checkpoint="auto")
    assert "done already" in capsys.readouterr().out
    assert (finished / "metrics.jsonl").read_text() == before and (final / "model.pt").stat().st_mtime_ns == mtime


# ---- trained on the wrong data, silently -----------------------------------------------------------------------
def test_a_prepared_folder_means_one_split(assets, tmp_path, capsys):
    from sftkit.data.dataset import build_dataset
    from sftkit.data.labels import Encoder
    from sftkit.tiny import build_tokenizer

    folder = assets["train"].parent  # prepare's output: train.parquet + val.parquet
    enc = Encoder(build_tokenizer())
    train_split = build_dataset([str(folder)], enc, "prompt", "generated_solution", 256, "right", name="train")
    val_split = build_dataset([str(folder)], enc, "prompt", "generated_solution", 256, "right", name="val")
    assert len(train_split) == pq.read_metadata(assets["train"]).num_rows == 540
    assert len(val_split) == pq.read_metadata(assets["val"]).num_rows == 60
    assert "is a prepared folder: train data" in capsys.readouterr().out


def test_zero_epochs_merge_lora_without_lora_and_negative_ranks_are_errors():
    with pytest.raises(SftkitError, match="total_epochs .* = 0.0 trains nothing"):
        plan_run(None, [*BASE, "trainer.total_epochs=0"], environ={})
    with pytest.raises(SftkitError, match="merge_lora=true .* full fine-tuning"):
        plan_run(None, [*BASE, "model.merge_lora=true"], environ={})
    with pytest.raises(SftkitError, match="lora_rank=-4 must be >= 0"):
        plan_run(None, [*BASE, "model.lora_rank=-4"], environ={})


def test_duplicate_recipe_keys_name_both_lines(tmp_path):
    recipe = tmp_path / "r.yaml"
    head = "model_name_or_path: m\ntrain_files: [t.parquet]\n"
    recipe.write_text(head + "learning_rate: 1.0e-5\nlearning_rate: 2.0e-5\n")
    with pytest.raises(SftkitError, match=r"'learning_rate' is set twice \(lines 3 and 4\)"):
        plan_run(str(recipe), [], environ={})
    recipe.write_text(head + "optim.lr: 1.0e-5\nlearning_rate: 2.0e-5\n")
    with pytest.raises(SftkitError, match=r"learning_rate is set twice .*:3 and .*:4"):
        plan_run(str(recipe), [], environ={})


def test_bom_is_skipped_and_invalid_utf8_is_a_counted_bad_row(tmp_path):
    from sftkit.data.rows import RowReport, iter_jsonl

    path = tmp_path / "rows.jsonl"
    good = [json.dumps({"prompt": f"p{i}", "generated_solution": "é"}).encode() for i in range(3)]
    path.write_bytes(b"\xef\xbb\xbf" + good[0] + b"\n" + b'{"prompt": "p\xff", "generated_solution": "x"}\n'
                     + good[1] + b"\n" + good[2] + b"\n")  # fmt: skip
    report = RowReport()
    rows = list(iter_jsonl([path], report))
    assert [line for _, line, _ in rows] == [1, 3, 4] and rows[0][2]["prompt"] == "p0"  # row 1 kept
    assert report.bad == {"invalid UTF-8": 1} and f"{path}:2" in str(report.examples[0])
    assert "0xff" in str(report.examples[0])


# ---- messages instead of tracebacks ----------------------------------------------------------------------------
def test_config_messages_name_what_the_user_set():
    with pytest.raises(SftkitError, match=r"train_batch_size=-16 \(command line\) must be >= 1"):
        plan_run(None, [*BASE, "data.train_batch_size=-16"], environ={})
    with pytest.raises(SftkitError, match=r"per_device_train_batch_size.*set by env BATCH_SIZE"):
        plan_run(None, BASE, environ={"BATCH_SIZE": "x"})
    with pytest.raises(SftkitError, match=r"max_length=0 \(env MAX_LENGTH\)"):
        plan_run(None, BASE, environ={"MAX_LENGTH": "0"})


def test_config_folder_instead_of_a_recipe(tmp_path):
    (tmp_path / "tiny.yaml").write_text("model_name_or_path: m\n")
    with pytest.raises(SftkitError, match=r"is a folder, not a recipe file.*tiny.yaml"):
        plan_run(str(tmp_path), [], environ={})


@pytest.mark.parametrize(
    "content, hint",
    [
        ("", "no rows"),
        ('[{"prompt": "p", "generated_solution": "r"}]\n', "no line is a JSON object"),
        ('{"prompt": 5, "generated_solution": "r"}\n', "non-text prompt or response"),
        ('{"question": "q", "answer": "a"}\n', "set data.prompt_key"),
    ],
)
def test_no_usable_row_says_why(tmp_path, content, hint):
    from sftkit.data.dataset import build_dataset
    from sftkit.data.labels import Encoder
    from sftkit.tiny import build_tokenizer

    path = tmp_path / "rows.jsonl"
    path.write_text(content)
    with pytest.raises(SftkitError, match="no usable row") as err:
        build_dataset([str(path)], Encoder(build_tokenizer()), "prompt", "generated_solution", 64, "right")
    assert hint in str(err.value)
    if hint != "set data.prompt_key":
        assert "prompt_key" not in str(err.value).split("\n")[0]


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
def test_damaged_checkpoint_files_get_a_message(assets, finished, tmp_path, sftkit):
    import shutil

    for name, damage in (("model.pt", lambda p: p.write_bytes(p.read_bytes()[:100])),
                         ("train_state.pt", lambda p: p.write_bytes(b"garbage"))):  # fmt: skip
        run = tmp_path / name
        shutil.copytree(finished, run)
        damage(run / "global_step_2" / name)
        proc = sftkit("train", *overrides(assets, tmp_path / f"out-{name}", max_steps=3,
                                          resume_from_checkpoint=run / "global_step_2"))  # fmt: skip
        assert_user_error(proc, f"global_step_2/{name}", "damaged")


@pytest.mark.slow
def test_lora_target_modules_that_match_nothing(assets, tmp_path, sftkit):
    proc = sftkit("train", *overrides(assets, tmp_path / "o", lora_rank=4, target_modules="[q_proj,qkv_proj]"))
    assert_user_error(proc, "['qkv_proj'] match no linear layer", "q_proj", "v_proj")


@pytest.mark.slow
def test_resume_ignore_mismatch_with_another_model_is_a_message(assets, finished, tmp_path, sftkit):
    from sftkit.tiny import write_tiny_model

    other = write_tiny_model(tmp_path / "wider", hidden_size=96)
    proc = sftkit("train", *overrides(assets, tmp_path / "o", model_name_or_path=other, max_steps=3,
                                      resume_from_checkpoint=finished / "global_step_2",
                                      resume_ignore_mismatch="true"))  # fmt: skip
    assert_user_error(proc, "do not fit this model")


@pytest.mark.slow
def test_model_path_with_a_trailing_slash_resumes(assets, tmp_path):
    out = tmp_path / "run"
    train(assets, out, max_steps=3, save_steps=2, eval_steps=0, val_files="[]")
    import shutil

    shutil.rmtree(out / "global_step_final")
    assets_slash = {**assets, "model": f"{assets['model']}/"}
    train(assets_slash, out, max_steps=3, save_steps=2, eval_steps=0, val_files="[]", resume_from_checkpoint="auto")
    assert layout.is_complete(out / "global_step_final")


def test_train_help_is_instant_and_current():
    from sftkit.config import help as train_help

    assert train_help.text() == train_help.render(), "run `python -m sftkit.config.help` to refresh train_help.txt"
    code = "import sys; from sftkit.cli import main; main(['train', '--help']); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("False")  # torch not even imported


@pytest.mark.slow
def test_log_files_get_plain_lines(assets, tmp_path):
    proc = sftkit_process("train", *overrides(assets, tmp_path / "o", max_steps=3, eval_steps=0, save_steps=0))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\r" not in proc.stdout and "\r" not in proc.stderr  # no progress-bar fragments
    assert "step 3/3" in proc.stdout


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


def test_an_unfinished_generation_is_a_bad_row_for_training(tmp_path):
    """`sftkit eval` marks a generation cut at max_new_tokens `"finished": false`: training it would append an
    end-of-turn the model never wrote."""
    from sftkit.data.dataset import build_dataset
    from sftkit.data.labels import Encoder
    from sftkit.tiny import build_tokenizer

    path = tmp_path / "round.jsonl"
    rows = [{"id": 1, "prompt": "p", "generated_solution": "done \\boxed{5}", "finished": True},
            {"id": 2, "prompt": "p", "generated_solution": "\\boxed{5} and so on and", "finished": False}]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    split = build_dataset([str(path)], Encoder(build_tokenizer()), "prompt", "generated_solution", 256, "right")
    assert len(split) == 1 and split.report.bad == {"unfinished generation": 1}
    assert f"{path}:2" in str(split.report.examples[0])
