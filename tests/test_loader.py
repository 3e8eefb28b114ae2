"""`training/loader.py`: the plan's number of optimizer steps is the number of step batches the real training
loader yields, on every data-parallel rank, whatever the accumulation, token budget or share of a short last step
(one owner of the count: `training.batching.steps_per_epoch`)."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from sftkit.config.plan import plan_run
from sftkit.training.loader import FILLER, train_loader

BASE = ["model_name_or_path=m", "train_files=[t.parquet]"]


def examples(n: int) -> tuple[Dataset, np.ndarray]:
    lengths = np.array([3 + (i * 7) % 11 for i in range(n)])
    rows = {"input_ids": [list(range(k)) for k in lengths], "labels": [[-100] + list(range(1, k)) for k in lengths]}
    return Dataset.from_dict(rows), lengths


def steps_run(plan, n: int, epochs: int, groups: np.ndarray | None = None) -> int:
    """Optimizer steps the loaders give for `epochs` epochs; every rank must give the same number, and every
    example must be trained once per epoch."""
    dataset, lengths = examples(n)
    counts = []
    for epoch in range(epochs):
        seen, per_rank = [], []
        for rank in range(plan.dp_size):
            loader = train_loader(dataset, lengths, plan, rank, groups)
            loader.set_epoch(epoch)
            steps = list(loader.batch_sampler)
            assert len(loader) == len(steps)  # what transformers plans its schedule by
            per_rank.append(len(steps))
            seen += [i for step in steps for i in step if i != FILLER]
        assert len(set(per_rank)) == 1, per_rank
        assert sorted(seen) == list(range(n))
        counts.append(per_rank[0])
    return sum(counts)


@pytest.mark.parametrize(
    "world,overrides,n",
    [
        (1, ["data.micro_batch_size_per_gpu=2", "gradient_accumulation_steps=2"], 10),  # accumulation, short last
        (2, ["data.train_batch_size=4", "data.micro_batch_size_per_gpu=1"], 12),  # two ranks, whole steps
        (2, ["data.train_batch_size=8", "data.micro_batch_size_per_gpu=2"], 9),  # a last step of one example
        (2, ["data.train_batch_size=6", "data.use_dynamic_bsz=true", "data.max_token_len_per_gpu=40"], 13),
        (1, ["data.train_batch_size=16"], 5),  # fewer examples than one step
    ],
)
@pytest.mark.parametrize("epochs", [1, 2])
def test_the_plans_steps_are_the_steps_the_loader_gives(world, overrides, n, epochs):
    plan = plan_run(None, [*BASE, *overrides, f"trainer.total_epochs={epochs}"], environ={}, world_size=world)
    assert plan.total_steps(n) == steps_run(plan, n, epochs)


def test_the_plans_steps_hold_with_prompts_drawn_together():
    plan = plan_run(
        None,
        [*BASE, "data.train_batch_size=4", "data.micro_batch_size_per_gpu=1", "trainer.total_epochs=1"],
        environ={},
        world_size=2,
    )
    groups = np.repeat(np.arange(6), [1, 3, 2, 4, 1, 2])  # 13 solutions of 6 prompts
    assert plan.total_steps(13) == steps_run(plan, 13, 1, groups) == 4


def test_max_steps_overrides_the_epochs():
    plan = plan_run(None, [*BASE, "trainer.total_training_steps=7", "trainer.total_epochs=3"], environ={})
    assert plan.total_steps(1000) == 7
