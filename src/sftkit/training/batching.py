"""Batches that waste little compute on padding, and never change the loss (SPEC §7).

- `GroupedSampler` (default wherever batches are padded): a seeded shuffle, then examples of similar length
  grouped inside each window of `WINDOW` global batches; the order of the global batches is shuffled again.
  It depends only on (seed, epoch, global batch, lengths) — not on the micro batch or the number of processes —
  so a run resumed on another number of GPUs with the same global batch sees the same examples at every step.
  (transformers' LengthGroupedSampler groups by the per-process batch, which breaks that.)
- `TokenBudgetBatchSampler` (`use_dynamic_bsz=true`, `max_token_len_per_gpu`): micro-batches cut so that
  count x longest <= budget, so memory per micro-batch is bounded whatever the lengths; every example once per epoch.
- Padding-free batches are TRL's collator (`padding_free=True`), chosen by `use_remove_padding=true`.
The loss stays exact in all cases: it is the mean over the trained tokens of each optimizer step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

WINDOW = 32  # global batches sorted together: larger = less padding, less randomness in batch composition


def _perm(n: int, seed: int) -> list[int]:
    g = torch.Generator()
    g.manual_seed(seed)
    return torch.randperm(n, generator=g).tolist()


def grouped_order(lengths: Sequence[int], global_batch: int, seed: int, epoch: int) -> list[int]:
    """Indices for one epoch: shuffled, sorted by length inside windows, global batches in random order."""
    n = len(lengths)
    order = _perm(n, seed * 1_000_003 + epoch)
    window = WINDOW * global_batch
    batches = []
    for start in range(0, n, window):
        chunk = sorted(order[start : start + window], key=lambda i: -lengths[i])
        batches += [chunk[i : i + global_batch] for i in range(0, len(chunk), global_batch)]
    # Full global batches in random order; a short one (n not a multiple of the batch) goes last, so every step
    # stays aligned with a length group.
    full = [b for b in batches if len(b) == global_batch]
    short = [b for b in batches if len(b) != global_batch]
    shuffled = [full[i] for i in _perm(len(full), seed * 1_000_003 + epoch + 7919)] + short
    return [i for batch in shuffled for i in batch]


class GroupedSampler(Sampler[int]):
    def __init__(self, lengths: Sequence[int], global_batch: int, seed: int):
        self.lengths, self.global_batch, self.seed, self.epoch = list(lengths), global_batch, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        return iter(grouped_order(self.lengths, self.global_batch, self.seed, self.epoch))


def token_budget_batches(lengths: Sequence[int], budget: int, seed: int) -> list[list[int]]:
    """Micro-batches with count x longest <= budget (an example longer than the budget goes alone), cut once per
    run from a seeded shuffle sorted by length within windows: the same batches every epoch, so the number of
    steps per epoch is fixed (the Trainer plans the schedule from it); `TokenBudgetBatchSampler` reorders them."""
    order = _perm(len(lengths), seed * 1_000_003)
    window = WINDOW * 64
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        current: list[int] = []
        longest = 0
        for i in sorted(order[start : start + window], key=lambda i: -lengths[i]):
            if current and max(longest, lengths[i]) * (len(current) + 1) > budget:
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, lengths[i])
        if current:
            batches.append(current)
    return batches


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """The token-budget micro-batches in a seeded random order per epoch. With several processes the last
    `len % multiple_of` batches of each epoch's order are left out (a different few each epoch), so that
    Accelerate's sharding never pads by repeating batches: no example is trained twice in an epoch."""

    def __init__(self, lengths: Sequence[int], budget: int, seed: int, multiple_of: int = 1):
        self.batches = token_budget_batches(lengths, budget, seed)
        self.seed, self.epoch = seed, 0
        self.n = len(self.batches) - len(self.batches) % max(1, multiple_of)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[list[int]]:
        order = _perm(len(self.batches), self.seed * 1_000_003 + self.epoch + 7919)[: self.n]
        return iter(self.batches[i] for i in order)


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of computed tokens that are padding when each batch is padded to its longest example."""
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches if b)
    return 1 - real / padded if padded else 0.0


def chunks(order: Sequence[int], size: int) -> list[list[int]]:
    return [list(order[i : i + size]) for i in range(0, len(order), size)]
