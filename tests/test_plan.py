"""The run plan (config/plan.py): everything derived once from the resolved settings, refused before any work when
it cannot run as written, and the one configuration object the trainer, the console and the checkpoint share."""

from __future__ import annotations

import pytest

from _plans import run
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
    from sftkit.config.show import shown

    for key, origin in plan.sources.items():
        assert f"  {key} = {shown(plan.to_dict()[key])!r}   [{origin}]" in printed
    for name in ("learning_rate", "seed", "max_grad_norm", "weight_decay", "max_steps", "lr_scheduler_type"):
        assert getattr(trainer.args, name) == getattr(plan.train, name), name
    assert trainer.args.bf16 == plan.bf16 and saved["gradient_accumulation_steps"] == plan.grad_accum == 2
    assert saved["max_length"] == plan.cut_length == 256 and trainer.args.max_length is None  # examples already cut


# ---- global batch ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "global_batch, micro, world, accumulation",
    [(16, 4, 1, 4), (16, 4, 2, 2), (16, 8, 2, 1), (64, 2, 4, 8), (4, 4, 1, 1)],
)
def test_gradient_accumulation_from_train_batch_size(global_batch, micro, world, accumulation):
    r = run(f"data.train_batch_size={global_batch}", f"data.micro_batch_size_per_gpu={micro}", world_size=world)
    assert r.train.gradient_accumulation_steps == accumulation
    assert r.world_size == world and r.global_batch == global_batch
    assert r.to_dict()["global_batch"] == global_batch and r.to_dict()["world_size"] == world


def test_world_size_from_environment():
    r = run("data.train_batch_size=16", "data.micro_batch_size_per_gpu=4", environ={"WORLD_SIZE": "2"})
    assert (r.world_size, r.train.gradient_accumulation_steps) == (2, 2)


def test_without_train_batch_size_the_accumulation_is_kept():
    r = run("data.micro_batch_size_per_gpu=4", "gradient_accumulation_steps=3", world_size=2)
    assert r.train.gradient_accumulation_steps == 3 and r.global_batch == 24


@pytest.mark.parametrize(
    "global_batch, micro, world",
    [(10, 4, 1), (12, 4, 2), (4, 4, 2), (6, 4, 1)],
)
def test_impossible_batch_combination_is_an_error(global_batch, micro, world):
    with pytest.raises(SftkitError, match=f"train_batch_size={global_batch}") as info:
        run(f"data.train_batch_size={global_batch}", f"data.micro_batch_size_per_gpu={micro}", world_size=world)
    assert f"({micro})" in str(info.value) and f"({world})" in str(info.value)


# ---- the run plan: derived once ------------------------------------------------------------------------------
def test_plan_is_frozen_and_derives_the_trainer_view():
    import dataclasses as dc

    plan = run("data.train_batch_size=16", "data.micro_batch_size_per_gpu=4", "data.max_length=300", world_size=2)
    with pytest.raises(dc.FrozenInstanceError):
        plan.global_batch = 8
    assert (plan.global_batch, plan.micro_batch, plan.grad_accum, plan.dp_size, plan.sp_size) == (16, 4, 2, 2, 1)
    assert plan.train.gradient_accumulation_steps == 2 and plan.train.max_length == 300  # what is printed and saved
    # the Trainer sees one step batch per optimizer step and examples already cut to length
    args = plan.trainer_args
    assert args.gradient_accumulation_steps == 1 and args.max_length is None
    assert args.save_strategy == "no" and args.eval_strategy == "no"  # saves and validation: our callbacks
    assert args.ddp_find_unused_parameters is False  # every parameter takes part: no extra autograd traversal
    assert plan.to_dict()["gradient_accumulation_steps"] == 2 and plan.to_dict()["max_length"] == 300


def test_precision_is_decided_once():
    assert run("dtype=float32", environ={"ACCELERATE_MIXED_PRECISION": "bf16"}).trainer_args.mixed_precision == "no"
    plan = run("dtype=bfloat16")
    assert plan.bf16 and plan.train.bf16 and plan.trainer_args.bf16 and plan.trainer_args.mixed_precision == "bf16"
    assert run().bf16 is False  # CPU: fp32


def test_step_order_follows_the_batching():
    assert run().order == "grouped"  # padded batches: length groups
    assert run("use_remove_padding=true").order == "shuffled"
    assert run("use_remove_padding=true", "train_sampling_strategy=group_by_length").order == "grouped"
    assert run("train_sampling_strategy=sequential").order == "sequential"


def test_logger_none_and_token_budget_with_sequence_parallelism():
    assert run("trainer.logger=none").train.report_to == []
    plan = run("data.use_dynamic_bsz=true", "data.max_token_len_per_gpu=4096", "ulysses_sequence_parallel_size=2",
               "data.train_batch_size=8", world_size=2)  # fmt: skip
    assert plan.token_budget == 8192  # as in verl: tokens per GPU after the split, a packed row holds sp times more
