"""Batching (SPEC §7): grouped order, token-budget batches, padding fraction, and padding-free (packed) loss."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import BatchSampler

from sftkit import tiny
from sftkit.training.batching import (
    GroupedSampler,
    TokenBudgetBatchSampler,
    chunks,
    grouped_order,
    padding_fraction,
    token_budget_batches,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sample_lengths() -> list[int]:
    """Token lengths of the bundled GSM8K sample (600 examples) with the tiny tokenizer, as the trainer builds them."""
    from sftkit.data.dataset import read_rows, tokenize
    from sftkit.data.labels import Encoder

    files = sorted(str(p) for p in (ROOT / "data" / "sample").glob("solutions_*.jsonl"))
    rows, _ = read_rows(files, "prompt", "generated_solution")
    columns, _ = tokenize(rows, Encoder(tiny.build_tokenizer()), None, "right")
    return columns["length"]


def random_lengths(n: int, seed: int, low: int = 5, high: int = 400) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(low, high) for _ in range(n)]


# ---- grouped order -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,global_batch", [(1, 4), (7, 4), (100, 8), (1000, 16), (257, 3)])
def test_grouped_order_is_a_permutation(n, global_batch):
    lengths = random_lengths(n, seed=n)
    for epoch in (0, 1):
        assert sorted(grouped_order(lengths, global_batch, seed=3, epoch=epoch)) == list(range(n))


def test_grouped_order_deterministic_and_differs_across_epochs_and_seeds():
    lengths = random_lengths(500, seed=1)
    a = grouped_order(lengths, 8, seed=42, epoch=0)
    assert a == grouped_order(list(lengths), 8, seed=42, epoch=0)
    assert a != grouped_order(lengths, 8, seed=42, epoch=1)
    assert a != grouped_order(lengths, 8, seed=43, epoch=0)


def test_grouped_sampler_follows_set_epoch():
    lengths = random_lengths(64, seed=2)
    sampler = GroupedSampler(lengths, global_batch=8, seed=5)
    assert len(sampler) == 64
    assert list(sampler) == grouped_order(lengths, 8, 5, 0) == list(sampler)
    sampler.set_epoch(3)
    assert list(sampler) == grouped_order(lengths, 8, 5, 3)


def steps_seen(lengths, seed, micro: int, world: int, accumulation: int, epoch: int = 0) -> list[set[int]]:
    """Examples of each optimizer step when GroupedSampler feeds an accelerate-sharded DataLoader: micro-batches
    dealt round-robin to `world` ranks (BatchSamplerShard), `accumulation` micro-batches per rank and step."""
    sampler = GroupedSampler(lengths, global_batch=micro * world * accumulation, seed=seed)
    sampler.set_epoch(epoch)
    per_rank = []
    for rank in range(world):
        batches = BatchSampler(sampler, batch_size=micro, drop_last=False)
        shard = BatchSamplerShard(batches, num_processes=world, process_index=rank, split_batches=False)
        per_rank.append(list(shard))
    n_steps = len(per_rank[0]) // accumulation
    return [
        {i for rank in per_rank for b in rank[s * accumulation : (s + 1) * accumulation] for i in b}
        for s in range(n_steps)
    ]


@pytest.mark.parametrize("epoch", [0, 1])
def test_same_examples_per_step_for_any_micro_batch_and_world_size(epoch):
    lengths = random_lengths(16 * 20, seed=4)
    reference = steps_seen(lengths, 11, micro=8, world=1, accumulation=2, epoch=epoch)  # W=1, GA=2
    assert len(reference) == 20 and all(len(s) == 16 for s in reference)
    assert steps_seen(lengths, 11, micro=8, world=2, accumulation=1, epoch=epoch) == reference  # W=2, GA=1
    assert steps_seen(lengths, 11, micro=4, world=2, accumulation=2, epoch=epoch) == reference  # W=2, GA=2
    assert steps_seen(lengths, 11, micro=16, world=1, accumulation=1, epoch=epoch) == reference  # W=1, GA=1
    assert set().union(*reference) == set(range(len(lengths)))


def test_grouping_reduces_padding_on_real_lengths(sample_lengths):
    n = len(sample_lengths)
    for seed in range(3):
        random_order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
        random_pad = padding_fraction(sample_lengths, chunks(random_order, 8))
        grouped_pad = padding_fraction(sample_lengths, chunks(grouped_order(sample_lengths, 16, seed, 0), 8))
        assert random_pad > 0.15  # GSM8K lengths padded to the longest of 8 random examples
        assert grouped_pad < 0.05 and grouped_pad < random_pad / 4


def test_steps_align_with_length_groups_when_data_does_not_divide(sample_lengths):
    assert len(sample_lengths) % 16 != 0
    for seed in range(3):
        steps = chunks(grouped_order(sample_lengths, 16, seed, 0), 16)
        for step in steps[:-1]:
            assert len(step) == 16
            assert [sample_lengths[i] for i in step] == sorted((sample_lengths[i] for i in step), reverse=True)


# ---- token budget --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [64, 512, 1500])
def test_token_budget_batches_respect_budget_and_cover_every_example(budget):
    lengths = random_lengths(3000, seed=budget, low=1, high=700)  # some longer than the smaller budgets
    batches = token_budget_batches(lengths, budget, seed=9)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        longest = max(lengths[i] for i in b)
        assert len(b) * longest <= budget or len(b) == 1, (b, longest)
    assert batches == token_budget_batches(lengths, budget, 9)
    assert batches != token_budget_batches(lengths, budget, 10)


def test_token_budget_sampler_same_batches_every_epoch_in_another_order():
    lengths = random_lengths(6000, seed=8)
    sampler = TokenBudgetBatchSampler(lengths, 8192, seed=1)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
        assert len(epochs[-1]) == len(sampler)  # the Trainer plans the schedule from len(): it must hold
        assert sorted(i for b in epochs[-1] for i in b) == list(range(len(lengths)))  # every example once
    assert epochs[0] != epochs[1] and sorted(map(tuple, epochs[0])) == sorted(map(tuple, epochs[1]))
    assert padding_fraction(lengths, epochs[0]) < 0.05


def test_token_budget_sampler_shards_evenly_without_repeats():
    lengths = random_lengths(500, seed=3)
    sampler = TokenBudgetBatchSampler(lengths, 1024, seed=2, multiple_of=3)
    assert len(sampler) % 3 == 0 and len(sampler) > len(sampler.batches) - 3
    seen = [i for b in sampler for i in b]
    assert len(seen) == len(set(seen))


def test_token_budget_long_example_goes_alone():
    lengths = [10, 300, 10, 10]
    batches = token_budget_batches(lengths, 100, seed=0)
    assert [1] in batches
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3]
    assert all(len(b) * max(lengths[i] for i in b) <= 100 for b in batches if b != [1])


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
def test_padding_free_training_runs_without_padding_and_keeps_the_loss(tmp_path):
    from _train_utils import losses, make_assets, train

    assets = make_assets(tmp_path / "assets")
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
def test_token_budget_training_bounds_every_micro_batch(tmp_path):
    from _train_utils import make_assets, train

    assets = make_assets(tmp_path / "assets")
    trainer = train(
        assets,
        tmp_path / "budget",
        max_steps=3,
        save_steps=0,
        eval_steps=0,
        val_files="[]",
        use_dynamic_bsz="true",
        max_token_len_per_gpu=1024,
    )
    loader = trainer.get_train_dataloader()
    shapes = [tuple(batch["input_ids"].shape) for _, batch in zip(range(20), loader)]
    assert all(rows * cols <= 1024 or rows == 1 for rows, cols in shapes)
    assert len({rows for rows, _ in shapes}) > 1  # the number of examples follows the lengths
    rows = [json.loads(line) for line in (tmp_path / "budget" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    assert all(r["padding_fraction"] < 0.1 for r in rows if "loss" in r)
