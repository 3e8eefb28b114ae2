"""Data loaders of a run: one *step batch* per optimizer step and rank for training, even validation shards.

Why our own loaders instead of Trainer's (with Accelerate's sharding): Accelerate evens out the last batch of an
epoch by repeating examples on some ranks, and shards over every process, so (1) the last step of an epoch and the
validation loss changed with the number of processes, and (2) the ranks of a sequence-parallel group could not be
given the same examples. Here every rank reads exactly its share of each step (`batching.share`, over the
data-parallel ranks only) and a rank with nothing left runs a *filler*: a real example whose labels are all -100,
which adds nothing to the loss but keeps every rank's collectives in step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from sftkit.data.labels import IGNORE
from sftkit.training.batching import share, step_order, steps_per_epoch
from sftkit.training.preempt import ignore_in_worker

FILLER = -1  # index of the filler example in the samplers' output


@dataclass
class StepBatch:
    """One rank's examples of one optimizer step, uncollated: the trainer cuts them into micro-batches.
    (An opaque object: Trainer's input preparation passes it through untouched.)"""

    examples: list[dict]  # {"input_ids": [...], "labels": [...]}

    def __contains__(self, key) -> bool:  # Trainer asks `"input_ids" in inputs` (FLOP estimate): not a dict
        return False

    @property
    def trained_tokens(self) -> int:
        """Tokens whose next token is trained (the loss's denominator): labels after the first position."""
        return sum(sum(1 for x in ex["labels"][1:] if x != IGNORE) for ex in self.examples)


class Examples:
    """The tokenized dataset seen through lists of indices; FILLER gives the filler example."""

    def __init__(self, dataset):
        self.dataset = dataset
        first = dataset[0]
        self.filler = {"input_ids": list(first["input_ids"]), "labels": [IGNORE] * len(first["labels"])}

    def __len__(self) -> int:
        return len(self.dataset)

    def take(self, indices) -> list[dict]:
        real = [int(i) for i in indices if i != FILLER]
        rows = self.dataset[real] if real else {"input_ids": [], "labels": []}
        found = iter(zip(rows["input_ids"], rows["labels"]))
        out = []
        for i in indices:
            if i == FILLER:
                out.append(dict(self.filler))
            else:
                ids, labels = next(found)
                out.append({"input_ids": list(ids), "labels": list(labels)})
        return out

    def __getitems__(self, indices) -> StepBatch:  # DataLoader's batched fetch: one call per step
        return StepBatch(self.take(indices))

    def __getitem__(self, index):
        return self.take([index])[0]


class StepSampler(Sampler[list[int]]):
    """For one data-parallel rank: its share of every step of the epoch (world-size independent steps)."""

    def __init__(self, lengths: np.ndarray, global_batch: int, seed: int, order: str, dp_rank: int, dp_size: int,
                 groups: np.ndarray | None = None):  # fmt: skip
        self.lengths, self.global_batch, self.seed, self.order = lengths, global_batch, seed, order
        self.groups = groups  # a prompt id per example (data.share_prompts): its solutions drawn together
        self.dp_rank, self.dp_size, self.epoch = dp_rank, dp_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return steps_per_epoch(len(self.lengths), self.global_batch)  # transformers plans its schedule by it

    def __iter__(self) -> Iterator[list[int]]:
        for step in step_order(self.lengths, self.global_batch, self.seed, self.epoch, self.order, self.groups):
            yield share(step, self.dp_rank, self.dp_size).tolist()


class StepLoader(DataLoader):
    """A DataLoader that passes `set_epoch` to its step sampler (transformers calls it at each epoch)."""

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)


def train_loader(dataset, lengths, plan, dp_rank: int, groups: np.ndarray | None = None) -> StepLoader:
    t = plan.train
    seed = t.data_seed if t.data_seed is not None else t.seed  # transformers: data_seed, else seed, orders the data
    sampler = StepSampler(lengths, plan.global_batch, seed, plan.order, dp_rank, plan.dp_size, groups)
    workers = t.dataloader_num_workers
    return StepLoader(
        Examples(dataset),
        batch_sampler=sampler,
        collate_fn=_identity,
        num_workers=workers,
        pin_memory=t.dataloader_pin_memory and torch.cuda.is_available(),
        persistent_workers=t.dataloader_persistent_workers and workers > 0,
        prefetch_factor=t.dataloader_prefetch_factor if workers > 0 else None,
        multiprocessing_context=t.dataloader_multiprocessing_context if workers > 0 else None,
        worker_init_fn=ignore_in_worker,
    )


class EvalSampler(Sampler[list[int]]):
    """Validation examples dealt to the data-parallel ranks in turn, each rank's list padded with fillers to the
    same length, in batches of `batch_size`: every example counted exactly once, every rank the same batches."""

    def __init__(self, n: int, batch_size: int, dp_rank: int, dp_size: int):
        per_rank = -(-n // dp_size)
        mine = list(range(dp_rank, n, dp_size))
        self.indices = mine + [FILLER] * (per_rank - len(mine))
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for i in range(0, len(self.indices), self.batch_size):
            yield self.indices[i : i + self.batch_size]


def eval_loader(dataset, batch_size: int, dp_rank: int, dp_size: int, collate: Callable) -> DataLoader:
    sampler = EvalSampler(len(dataset), batch_size, dp_rank, dp_size)
    return DataLoader(Examples(dataset), batch_sampler=sampler, collate_fn=lambda step: collate(step.examples))


def _identity(batch):
    return batch
