"""The stop contract until the last file is written (docs/contracts.md §5; training/preempt.py, finish.py,
callbacks.py): a signal during the final validation, save or export leaves a resumable run; a stop at a validation
step gives the same results as no stop; Ctrl-C and a SIGTERM to the whole process group (data loader workers
included) behave like SIGTERM to the main process. Signals are real: sent with os.kill to this process, or to a
child's process group."""

from __future__ import annotations

import json
import os
import signal

import pytest
from transformers import TrainerCallback

from _train_utils import (
    assert_same_run,
    assert_same_state,
    losses,
    model_pt,
    overrides,
    run_until_signalled,
    train,
)
from sftkit.checkpoint import layout

pytestmark = pytest.mark.slow


class SignalAt(TrainerCallback):
    """Sends `sig` to this process at a callback event (optionally only at a given step)."""

    def __init__(self, event: str, sig=signal.SIGTERM, step: int | None = None, presses: int = 1):
        self.event, self.sig, self.step, self.presses, self.done = event, sig, step, presses, False
        setattr(self, event, self._fire)

    def _fire(self, args, state, control, **kwargs):
        if not self.done and (self.step is None or state.global_step == self.step):
            self.done = True
            for _ in range(self.presses):
                os.kill(os.getpid(), self.sig)


def val_rows(out) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["val_loss"] for r in rows if "val_loss" in r}


SHORT = dict(max_steps=4, save_steps=0, eval_steps=0)


def test_sigterm_after_the_last_step_saves_it_and_auto_writes_the_final_checkpoint(assets, tmp_path, capsys):
    out = tmp_path / "run"
    trainer = train(assets, out, **SHORT, callbacks=[SignalAt("on_train_end")])
    assert trainer.preempted and layout.is_complete(out / "global_step_4")
    assert not (out / "global_step_final").exists()
    assert "stopped before the final validation" in capsys.readouterr().out
    train(assets, out, **SHORT, resume_from_checkpoint="auto")
    assert (out / "global_step_final" / "huggingface" / "config.json").is_file() and 4 in val_rows(out)


def test_sigterm_during_the_final_validation_keeps_the_final_checkpoint_and_auto_exports(assets, tmp_path, capsys):
    straight, out = tmp_path / "straight", tmp_path / "run"
    train(assets, straight, **SHORT)
    trainer = train(assets, out, **SHORT, callbacks=[SignalAt("on_evaluate")])  # fires inside the validation
    assert trainer.preempted and layout.is_complete(out / "global_step_final")
    assert not (out / "global_step_final" / layout.HF_DIR).exists()
    assert "stopped before the Hugging Face export" in capsys.readouterr().out
    train(assets, out, **SHORT, resume_from_checkpoint="auto")
    assert (out / "global_step_final" / layout.HF_DIR / "config.json").is_file()
    assert_same_state(model_pt(straight / "global_step_final"), model_pt(out / "global_step_final"), atol=0)
    assert val_rows(straight) == val_rows(out)


def test_a_stop_at_a_validation_step_gives_the_results_of_no_stop(assets, tmp_path):
    # NEFTune draws noise from the global RNG in every training forward, and a validation draws from it too (its
    # data loader's seed): skipping the stopped step's validation would change every later step.
    settings = dict(max_steps=6, save_steps=0, eval_steps=3, neftune_noise_alpha=5.0)
    straight, out = tmp_path / "straight", tmp_path / "run"
    train(assets, straight, **settings)
    trainer = train(assets, out, **settings, callbacks=[SignalAt("on_step_begin", step=2)])  # during step 3
    assert trainer.preempted and trainer.state.global_step == 3 and 3 in val_rows(out)
    train(assets, out, **settings, resume_from_checkpoint="auto")
    assert losses(out) == losses(straight) and val_rows(out) == val_rows(straight)
    assert_same_state(model_pt(straight / "global_step_final"), model_pt(out / "global_step_final"), atol=0)


def test_ctrl_c_stops_like_sigterm_and_a_second_one_aborts(assets, tmp_path):
    out = tmp_path / "run"
    trainer = train(assets, out, max_steps=6, save_steps=0, eval_steps=0,
                    callbacks=[SignalAt("on_step_begin", signal.SIGINT, step=1)])  # fmt: skip
    assert trainer.preempted and layout.is_complete(out / "global_step_2")
    with pytest.raises(KeyboardInterrupt):
        train(assets, tmp_path / "again", max_steps=6, save_steps=0, eval_steps=0,
              callbacks=[SignalAt("on_step_begin", signal.SIGINT, presses=2)])  # fmt: skip


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.extended)], ids=["SIGTERM", "SIGINT"]
)
def test_a_signal_to_the_whole_process_group_with_loader_workers_saves_and_exits_75(assets, tmp_path, sig):
    out = tmp_path / "run"
    args = overrides(assets, out, max_steps=40, save_steps=0, eval_steps=0, dataloader_num_workers=2)
    proc = run_until_signalled(args, out, sig, after_step=2, group=True)
    assert proc.returncode == 75, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "DataLoader worker" not in proc.stderr and "Traceback" not in proc.stderr
    saved = [p for p in out.glob("global_step_*") if p.name != "global_step_final"]
    assert len(saved) == 1 and layout.is_complete(saved[0])


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
    assert f"stopped at step {step} (pre-empted, exit code 75): {saved[0]} is saved" in proc.stdout
    assert max(losses(stopped)) == step  # logged up to the step it saved, nothing after
    train(assets, stopped, resume_from_checkpoint="auto", **settings)
    assert_same_run(straight, stopped, 24)


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


def test_resuming_a_finished_run_trains_nothing(assets, finished_run, capsys):
    """A SLURM requeue of a job that completed: it says so, trains no step 4/3, rewrites nothing."""
    before = (finished_run / "metrics.jsonl").read_text()
    final = layout.find_latest(finished_run)
    mtime = (final / "model.pt").stat().st_mtime_ns
    train(assets, finished_run, max_steps=3, save_steps=2, eval_steps=0, resume_from_checkpoint="auto")
    assert "done already" in capsys.readouterr().out
    assert (finished_run / "metrics.jsonl").read_text() == before and (final / "model.pt").stat().st_mtime_ns == mtime


ENCODE = {}  # the real encoder-worker function and the signal, for encode_and_signal (read in forked workers)


def encode_and_signal(batch):
    """An encoder worker's job that first signals its parent and itself (module level: the pool pickles it)."""
    os.kill(os.getppid(), ENCODE["sig"])
    os.kill(os.getpid(), ENCODE["sig"])
    return ENCODE["encode"](batch)


def signal_while_loading(monkeypatch, sig, from_worker: bool = False) -> None:
    """A real `sig` while the examples are built: to this process before its tokenization, or (from_worker) from a
    forked encoder worker to its parent and itself, as `scancel` signals the whole process group."""
    import sftkit.train as entry
    from sftkit.data import encode_pool

    if from_worker:
        ENCODE.update(sig=sig, encode=encode_pool._encode)
        monkeypatch.setattr(encode_pool, "_encode", encode_and_signal)
        return
    load = entry.load_data
    monkeypatch.setattr(entry, "load_data", lambda *a: (os.kill(os.getpid(), sig), load(*a))[1])


@pytest.mark.parametrize(
    "sig, from_worker",
    [
        (signal.SIGTERM, False),
        pytest.param(signal.SIGINT, False, marks=pytest.mark.extended),
        pytest.param(signal.SIGTERM, True, marks=pytest.mark.extended),
    ],
    ids=["SIGTERM", "Ctrl-C", "SIGTERM to the encoder workers too"],
)
def test_a_stop_before_training_ends_the_run_at_once_with_75_and_the_folder_stays_usable(
    assets, tmp_path, monkeypatch, capfd, sig, from_worker
):
    """Nothing can be saved before the first step: the run ends at once (a long tokenization would outlast the
    scheduler's grace period) with exit 75 and one line, no traceback; the lock is released and the cache left
    clean, so the same command then trains."""
    import sftkit.train as entry

    out = tmp_path / "run"
    signal_while_loading(monkeypatch, sig, from_worker)
    fresh = {"cache_dir": tmp_path / "cache"}  # the examples are built here, not found in an earlier test's cache
    args = overrides(assets, out, **SHORT, **fresh, **({"dataset_num_proc": 2} if from_worker else {}))
    assert entry.main(args) == 75
    err = capfd.readouterr().err
    said = f"{signal.Signals(sig).name} received before training started: nothing to save yet; run the same command"
    assert said in err and "Traceback" not in err, err[-3000:]
    assert not list(out.glob("global_step_*")) and not list((tmp_path / "cache").rglob("*.arrow"))
    monkeypatch.undo()
    assert entry.main(args) == 0
    assert layout.is_complete(out / "global_step_final")
