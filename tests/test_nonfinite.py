"""A diverged run is never a success (training/nonfinite.py, docs/contracts.md §5): a non-finite loss or gradient norm
stops the run before its optimizer step (exit 3, no global_step_final, no export), or with nonfinite_step=skip skips
that step; metrics.jsonl stays valid JSON."""

from __future__ import annotations

import json

import pytest
import torch

from _train_utils import model_pt, overrides

pytestmark = pytest.mark.slow

# Adam's first step moves every weight by about the learning rate: 1e30 keeps them finite (a finite step 1,
# saved), and step 2's loss overflows; 1e38 overflows the weights themselves at step 1.
DIVERGE = dict(learning_rate=1e30, max_grad_norm=0, warmup_steps=0, lr_scheduler_type="constant")


def metrics(out) -> list[dict]:
    # json.loads refuses nothing here on purpose: NaN would parse; check the text has none
    text = (out / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    return [json.loads(line) for line in text.splitlines()]


def test_a_diverged_run_stops_with_exit_3_and_exports_nothing(assets, tmp_path, sftkit):
    out = tmp_path / "run"
    r = sftkit("train", *overrides(assets, out, max_steps=4, save_steps=1, eval_steps=0, **DIVERGE))
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr[-2000:]
    assert "diverged at step 2" in r.stderr and "global_step_1" in r.stderr and "optim.lr" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (out / "global_step_final").exists() and not (out / "global_step_2").exists()
    for tensor in model_pt(out / "global_step_1").values():  # what was saved is finite
        assert torch.isfinite(tensor).all()
    assert [row["step"] for row in metrics(out) if "loss" in row] == [1]


def test_weights_that_overflow_in_a_step_are_never_saved(assets, tmp_path, sftkit):
    out = tmp_path / "run"
    r = sftkit(
        "train", *overrides(assets, out, max_steps=4, save_steps=1, eval_steps=0, **{**DIVERGE, "learning_rate": 1e38})
    )
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr[-2000:]
    assert "NaN/inf" in r.stderr and "global_step_1 is not written" in r.stderr
    assert not list(out.glob("global_step_*")) and not list(out.glob(".tmp*"))


def test_skip_leaves_the_weights_of_a_non_finite_step_untouched(assets, tmp_path, sftkit):
    out = tmp_path / "run"
    args = overrides(assets, out, max_steps=3, save_steps=1, eval_steps=0, val_files="[]", nonfinite_step="skip",
                     **DIVERGE)  # fmt: skip
    r = sftkit("train", *args)
    # the last step's loss was not finite, with no validation to say otherwise: diverged (it exited 0, exported)
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr[-2000:]
    assert "the training loss at its last step (3) is not finite (2 optimizer steps were skipped)" in r.stderr
    assert "optimizer step skipped" in r.stdout and not (out / "global_step_final").exists()
    first, last = model_pt(out / "global_step_1"), model_pt(out / "global_step_2")
    for key in first:  # step 2 was skipped: its checkpoint holds step 1's weights
        torch.testing.assert_close(first[key], last[key], rtol=0, atol=0)
    rows = [row for row in metrics(out) if "loss" in row]
    assert rows[-1]["skipped_steps"] == 2
    # a skipped step's loss is null, not transformers' 0 or a stale average
    assert [row["loss"] is None for row in rows] == [False, True, True]


def test_a_final_validation_loss_that_is_not_finite_is_a_diverged_run(assets, tmp_path, sftkit):
    """Every step after the first skipped: the weights are finite, the model they make gives NaN (the run exited
    0 and exported it)."""
    out = tmp_path / "run"
    args = overrides(assets, out, max_steps=3, save_steps=1, eval_steps=0, nonfinite_step="skip", **DIVERGE)
    r = sftkit("train", *args)
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr[-2000:]
    assert "validation loss at its last step (3) is nan (2 optimizer steps were skipped)" in r.stderr
    assert "global_step_final is not written" in r.stderr and "last checkpoint is " in r.stderr
    assert not (out / "global_step_final").exists()
    assert [row["val_loss"] for row in metrics(out) if "val_loss" in row] == [None]


def test_nonfinite_step_takes_only_stop_or_skip():
    from sftkit.config.plan import plan_run
    from sftkit.errors import SftkitError

    with pytest.raises(SftkitError, match="nonfinite_step.*stop, skip"):
        plan_run(None, ["model_name_or_path=m", "train_files=[t]", "nonfinite_step=ignore"], environ={})
