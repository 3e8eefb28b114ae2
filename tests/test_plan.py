"""The run plan (config/plan.py): everything derived once from the resolved settings, refused before any work when
it cannot run as written, and the one configuration object the trainer, the console and the checkpoint share."""

from __future__ import annotations

import pytest

from sftkit.config.plan import plan_run
from sftkit.errors import SftkitError

BASE = ["model_name_or_path=m", "train_files=[t.parquet]"]


def test_average_tokens_across_devices_false_is_refused():
    """It used to divide the loss and the gradients by the world size."""
    with pytest.raises(SftkitError, match="average_tokens_across_devices=false .* number of GPUs"):
        plan_run(None, [*BASE, "average_tokens_across_devices=false"], environ={})


def test_zero_epochs_merge_lora_without_lora_and_negative_ranks_are_errors():
    with pytest.raises(SftkitError, match="total_epochs .* = 0.0 trains nothing"):
        plan_run(None, [*BASE, "trainer.total_epochs=0"], environ={})
    with pytest.raises(SftkitError, match="merge_lora=true .* full fine-tuning"):
        plan_run(None, [*BASE, "model.merge_lora=true"], environ={})
    with pytest.raises(SftkitError, match="lora_rank=-4 must be >= 0"):
        plan_run(None, [*BASE, "model.lora_rank=-4"], environ={})


@pytest.mark.slow
def test_printed_saved_and_trainer_config_are_the_plan_s(assets, tmp_path, capsys):
    from _train_utils import overrides
    from sftkit.checkpoint import layout
    from sftkit.train import run

    plan = plan_run(None, overrides(assets, tmp_path / "run", max_steps=2, save_steps=0, eval_steps=0), environ={})
    trainer = run(plan)
    printed = capsys.readouterr().out
    saved = layout.load_state(tmp_path / "run" / "global_step_final")["config"]
    assert trainer.plan is plan and trainer.args is plan.trainer_args
    assert saved == {**plan.to_dict(), "prompt_groups": trainer.share_prompts}  # + whether packing ran (data)
    for key, origin in plan.sources.items():
        assert f"  {key} = {plan.to_dict()[key]!r}   [{origin}]" in printed
    for name in ("learning_rate", "seed", "max_grad_norm", "weight_decay", "max_steps", "lr_scheduler_type"):
        assert getattr(trainer.args, name) == getattr(plan.train, name), name
    assert trainer.args.bf16 == plan.bf16 and saved["gradient_accumulation_steps"] == plan.grad_accum == 2
    assert saved["max_length"] == plan.cut_length == 256 and trainer.args.max_length is None  # examples already cut
