"""The stop contract until the last file is written (training/preempt.py, finish.py, callbacks.py; SPEC §5):
a signal during the final validation, save or export leaves a resumable run; a stop at a validation step gives
the same results as no stop; Ctrl-C and a SIGTERM to the whole process group (data loader workers included)
behave like SIGTERM to the main process. Signals are real: sent with os.kill to this process, or to a child's
process group."""

from __future__ import annotations

import json
import os
import signal

import pytest
from transformers import TrainerCallback

from _train_utils import (
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
