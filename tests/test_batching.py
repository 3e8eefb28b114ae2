"""Batching (docs/contracts.md §7): grouped order, token-budget batches, padding fraction, and padding-free (packed)
loss."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from sftkit import tiny
from sftkit.training.batching import (
    chunks,
    cost,
    equalize,
    micro_batches,
    padding_fraction,
    share,
    step_order,
)
from sftkit.training.loader import FILLER, EvalSampler, StepSampler

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sample_lengths() -> np.ndarray:
    """Token lengths of the bundled GSM8K sample (600 examples) with the tiny tokenizer, as the trainer builds them."""
    from sftkit.data.dataset import build_dataset
    from sftkit.data.labels import Encoder

    files = sorted(str(p) for p in (ROOT / "data" / "sample").glob("solutions_*.jsonl"))
    split = build_dataset(files, Encoder(tiny.build_tokenizer()), "prompt", "generated_solution", None, "right")
    return np.asarray(split.dataset["length"])


def random_lengths(n: int, seed: int, low: int = 5, high: int = 400) -> np.ndarray:
    rng = random.Random(seed)
    return np.array([rng.randint(low, high) for _ in range(n)])


def flat(steps) -> list[int]:
    return [int(i) for step in steps for i in step]


# ---- steps: which examples make each optimizer step --------------------------------------------------------------
@pytest.mark.parametrize("order", ["grouped", "shuffled", "sequential"])
@pytest.mark.parametrize("n,global_batch", [(1, 4), (7, 4), (100, 8), (1000, 16), (257, 3)])
def test_steps_cover_every_example_once(n, global_batch, order):
    lengths = random_lengths(n, seed=n)
    for epoch in (0, 1):
        steps = step_order(lengths, global_batch, seed=3, epoch=epoch, order=order)
        assert sorted(flat(steps)) == list(range(n))
        assert len(steps) == -(-n // global_batch)
        assert all(len(s) == global_batch for s in steps[:-1])  # only the last step may be short


def test_steps_deterministic_and_differ_across_epochs_and_seeds():
    lengths = random_lengths(500, seed=1)
    for order in ("grouped", "shuffled"):
        a = flat(step_order(lengths, 8, seed=42, epoch=0, order=order))
        assert a == flat(step_order(lengths.copy(), 8, seed=42, epoch=0, order=order))
        assert a != flat(step_order(lengths, 8, seed=42, epoch=1, order=order))
        assert a != flat(step_order(lengths, 8, seed=43, epoch=0, order=order))
    assert flat(step_order(lengths, 8, 42, 0, "sequential")) == list(range(500))


def steps_seen(lengths, seed, micro: int, dp: int, epoch: int = 0) -> list[set[int]]:
    """Examples of each optimizer step as the ranks see them: every rank's share of the step, cut into micro-batches
    of `micro` (the trainer's path: StepSampler -> micro_batches)."""
    per_rank = []
    for rank in range(dp):
        sampler = StepSampler(lengths, 16, seed, "grouped", rank, dp)
        sampler.set_epoch(epoch)
        per_rank.append([[share[i] for part in micro_batches(lengths[share].tolist(), micro, None, False)
                          for i in part] for share in sampler])  # fmt: skip
    return [set().union(*(rank[s] for rank in per_rank)) for s in range(len(per_rank[0]))]


@pytest.mark.parametrize("epoch", [0, 1])
def test_same_examples_per_step_for_any_micro_batch_and_world_size(epoch):
    lengths = random_lengths(16 * 20 + 5, seed=4)  # a short last step too
    reference = steps_seen(lengths, 11, micro=8, dp=1, epoch=epoch)
    assert len(reference) == 21 and all(len(s) == 16 for s in reference[:-1]) and len(reference[-1]) == 5
    for micro, dp in [(8, 2), (4, 2), (16, 1), (1, 4), (3, 3)]:
        assert steps_seen(lengths, 11, micro=micro, dp=dp, epoch=epoch) == reference, (micro, dp)
    assert set().union(*reference) == set(range(len(lengths)))


def test_shares_are_contiguous_and_may_be_empty_on_a_short_step():
    step = np.arange(10, 15)
    parts = [share(step, r, 4).tolist() for r in range(4)]
    assert [i for p in parts for i in p] == step.tolist()
    assert sorted(len(p) for p in parts) == [1, 1, 1, 2]
    assert [share(np.array([7]), r, 3).tolist() for r in range(3)] == [[], [7], []] or sum(
        len(share(np.array([7]), r, 3)) for r in range(3)
    ) == 1


def test_grouping_reduces_padding_on_real_lengths(sample_lengths):
    n = len(sample_lengths)
    for seed in range(3):
        random_order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
        random_pad = padding_fraction(sample_lengths, chunks(random_order, 8))
        grouped = [list(c) for s in step_order(sample_lengths, 16, seed, 0, "grouped") for c in chunks(s, 8)]
        grouped_pad = padding_fraction(sample_lengths, grouped)
        assert random_pad > 0.15  # GSM8K lengths padded to the longest of 8 random examples
        assert grouped_pad < 0.05 and grouped_pad < random_pad / 4


def test_steps_align_with_length_groups_when_data_does_not_divide(sample_lengths):
    assert len(sample_lengths) % 16 != 0
    for seed in range(3):
        steps = step_order(sample_lengths, 16, seed, 0, "grouped")
        assert len(steps[-1]) == len(sample_lengths) % 16  # the short step last
        for step in steps[:-1]:
            assert sample_lengths[step].tolist() == sorted(sample_lengths[step].tolist(), reverse=True)


# ---- micro-batches: how a rank's share of a step is cut ----------------------------------------------------------
def test_fixed_micro_batches_keep_the_order():
    assert micro_batches([5, 4, 3, 2, 1], 2, None, False) == [[0, 1], [2, 3], [4]]
    assert micro_batches([], 2, None, False) == []


@pytest.mark.parametrize("budget", [64, 512, 1500])
@pytest.mark.parametrize("free", [False, True])
def test_token_budget_micro_batches_respect_the_budget_and_cover_every_example(budget, free):
    lengths = random_lengths(300, seed=budget, low=1, high=700).tolist()  # some longer than the smaller budgets
    parts = micro_batches(lengths, 4, budget, free)
    assert sorted(i for b in parts for i in b) == list(range(len(lengths)))
    for b in parts:
        assert cost([lengths[i] for i in b], free) <= budget or len(b) == 1, b


def test_token_budget_long_example_goes_alone():
    lengths = [10, 300, 10, 10]
    parts = micro_batches(lengths, 4, 100, False)
    assert [1] in parts and sorted(i for b in parts for i in b) == [0, 1, 2, 3]
    assert cost([10, 10, 10], False) == 30 and cost([10, 300], False) == 600 and cost([10, 300], True) == 310


def test_equalize_splits_the_largest_then_adds_empty_ones():
    assert equalize([[0, 1, 2, 3], [4]], 3) == [[0, 1], [2, 3], [4]]
    assert equalize([[0], [1]], 4) == [[0], [1], [], []]
    assert equalize([], 2) == [[], []]
    assert equalize([[0, 1]], 1) == [[0, 1]]


# ---- samplers ----------------------------------------------------------------------------------------------------
def test_step_sampler_follows_set_epoch_and_has_one_item_per_step():
    lengths = random_lengths(70, seed=2)
    sampler = StepSampler(lengths, 16, 5, "grouped", 0, 1)
    assert len(sampler) == 5
    assert [list(s) for s in sampler] == [s.tolist() for s in step_order(lengths, 16, 5, 0, "grouped")]
    sampler.set_epoch(3)
    assert [list(s) for s in sampler] == [s.tolist() for s in step_order(lengths, 16, 5, 3, "grouped")]


@pytest.mark.parametrize("n,dp,batch", [(60, 4, 16), (7, 2, 2), (5, 8, 4), (1, 3, 1)])
def test_eval_sampler_counts_each_example_once_and_gives_every_rank_the_same_batches(n, dp, batch):
    per_rank = [list(EvalSampler(n, batch, r, dp)) for r in range(dp)]
    assert len({len(batches) for batches in per_rank}) == 1  # the same number of batches everywhere
    assert len({tuple(len(b) for b in batches) for batches in per_rank}) == 1
    real = [i for batches in per_rank for b in batches for i in b if i != FILLER]
    assert sorted(real) == list(range(n))  # no example twice (Accelerate's even batches repeated some)


# ---- padding fraction --------------------------------------------------------------------------------------------
def test_padding_fraction_by_hand():
    lengths = [2, 4, 3, 3, 5]
    # [2,4] -> 2x4 = 8 computed, 6 real; [3,3] -> 6 computed, 6 real; [5] -> 5/5. Padding 2 of 19.
    assert padding_fraction(lengths, [[0, 1], [2, 3], [4]]) == pytest.approx(2 / 19)
    assert padding_fraction(lengths, [[2, 3]]) == 0.0
    assert padding_fraction(lengths, []) == 0.0
    assert chunks([5, 4, 3, 2, 1], 2) == [[5, 4], [3, 2], [1]]


# ---- padding-free (packed) batches -------------------------------------------------------------------------------
def summed_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100, reduction="sum")


@pytest.mark.slow
def test_packed_loss_equals_per_sequence_loss(tmp_path):
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from sftkit.data.labels import IGNORE, Encoder

    tokenizer = tiny.build_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(tiny.write_tiny_model(tmp_path / "m")).eval()
    encoder = Encoder(tokenizer)
    pairs = [
        ("What is 2+2?", "4"),
        ("Name a colour.", "Blue, like the sky at noon."),
        ("Hi", "Hello! How can I help?"),
    ]
    features = [vars(encoder.encode(p, r)) for p, r in pairs]
    for f in features:
        f.pop("truncated")
        assert f["labels"][0] == IGNORE  # a prompt label starts each sequence: no loss across the boundary
    batch = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(features)
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    with torch.no_grad():
        separate = sum(
            summed_loss(
                model(input_ids=torch.tensor([f["input_ids"]]), use_cache=False).logits, torch.tensor([f["labels"]])
            )
            for f in features
        )
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        packed = summed_loss(model(**inputs, use_cache=False).logits, batch["labels"])
        unmasked = summed_loss(model(input_ids=batch["input_ids"], use_cache=False).logits, batch["labels"])
    torch.testing.assert_close(packed, separate, atol=1e-4, rtol=0)
    assert abs(unmasked - separate) > 1e-3  # without position ids the sequences see each other: the test can tell


@pytest.mark.slow
def test_padding_free_training_runs_without_padding_and_keeps_the_loss(assets, tmp_path):
    from _train_utils import losses, train

    common = dict(max_steps=2, save_steps=0, eval_steps=0, val_files="[]")
    # Same example order in both runs (sftkit's grouped sampler), so steps see the same examples.
    packed = train(
        assets, tmp_path / "packed", use_remove_padding="true", train_sampling_strategy="group_by_length", **common
    )
    assert packed.args.padding_free
    rows = [json.loads(line) for line in (tmp_path / "packed" / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2]
    assert all(r["padding_fraction"] == 0 and r["tokens_per_second"] > 0 for r in train_rows)
    padded = train(assets, tmp_path / "padded", **common)
    assert not padded.args.padding_free
    a, b = losses(tmp_path / "packed"), losses(tmp_path / "padded")
    assert a.keys() == b.keys() == {1, 2}
    for step in a:
        assert a[step] == pytest.approx(b[step], abs=1e-4), step


@pytest.mark.slow
def test_token_budget_steps_keep_the_global_batch_and_bound_every_micro_batch(assets, tmp_path):
    """use_dynamic_bsz: train_batch_size sequences per optimizer step (as in verl), cut into micro-batches of at
    most max_token_len_per_gpu tokens (padding included); the number of micro-batches per step follows the lengths."""
    from _train_utils import train
    from sftkit.training.trainer import SftkitTrainer

    seen: list[tuple[int, ...]] = []
    sequences_per_step: list[int] = []
    original_collate, original_step = SftkitTrainer.collate, SftkitTrainer.training_step

    def collate(self, examples):
        batch = original_collate(self, examples)
        seen.append(tuple(batch["input_ids"].shape))
        return batch

    def training_step(self, model, inputs, num_items_in_batch=None):
        sequences_per_step.append(len(inputs.examples))
        return original_step(self, model, inputs, num_items_in_batch)

    SftkitTrainer.collate, SftkitTrainer.training_step = collate, training_step
    try:
        trainer = train(
            assets, tmp_path / "budget", max_steps=4, save_steps=0, eval_steps=0, val_files="[]",
            use_dynamic_bsz="true", max_token_len_per_gpu=1000, train_batch_size=16,
            share_prompts="false",  # padded micro-batches (the sample's 2 solutions per prompt would be packed)
        )  # fmt: skip
    finally:
        SftkitTrainer.collate, SftkitTrainer.training_step = original_collate, original_step
    assert sequences_per_step == [16, 16, 16, 16]
    assert all(rows * cols <= 1000 or rows == 1 for rows, cols in seen)
    assert len(seen) > 4 and len({rows for rows, _ in seen}) > 1  # several micro-batches, sized by the lengths
    assert trainer.state.max_steps == 4
    rows = [json.loads(line) for line in (tmp_path / "budget" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert all(r["padding_fraction"] < 0.1 for r in rows if "loss" in r)


@pytest.mark.slow
def test_token_budget_epoch_has_train_batch_size_steps(assets, tmp_path):
    """96 rows at train_batch_size=16: 6 steps per epoch whatever the budget (the trust issue saw 10)."""
    import pyarrow.parquet as pq

    from _train_utils import train

    table = pq.read_table(assets["train"]).slice(0, 96)
    pq.write_table(table, tmp_path / "96.parquet")
    trainer = train(
        assets, tmp_path / "epoch", train_files=f"[{tmp_path / '96.parquet'}]", val_files="[]", max_steps=-1,
        num_train_epochs=1, save_steps=0, eval_steps=0, use_dynamic_bsz="true", max_token_len_per_gpu=1024,
        train_batch_size=16,
    )  # fmt: skip
    assert trainer.state.global_step == 6
