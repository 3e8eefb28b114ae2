"""Which examples make each optimizer step, and how a step is cut into micro-batches (docs/contracts.md §2, §7).

- A *step* is `global_batch` examples (data.train_batch_size), the same examples whatever the number of
  processes or the micro batch: `step_order` fixes them per (seed, epoch). Padded batches draw steps as length
  groups by default (a seeded shuffle, then similar lengths grouped inside windows of `WINDOW` steps, steps in
  random order, a short last step last); padding-free batches draw a plain seeded shuffle.
- Each data-parallel rank takes an equal share of a step (`share`); the share is cut into micro-batches
  (`micro_batches`): a fixed number of examples, or by a token budget (use_dynamic_bsz): count x longest <= budget
  for padded batches, the sum of lengths for padding-free ones. All ranks then run the same number of
  micro-batches (`equalize`), which FSDP needs.
The loss never depends on any of this: it is the mean over the trained tokens of the whole step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

WINDOW = 32  # steps sorted together: larger = less padding, less randomness in batch composition


def steps_per_epoch(examples: int, global_batch: int) -> int:
    """Optimizer steps in one pass over the examples (the length of `step_order`'s list): a short last step is
    kept, no example left out (dataloader_drop_last is refused). The one count the plan, the loader and the
    Trainer's schedule share."""
    return -(-examples // global_batch)


def _perm(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


def _perm_by_group(groups: np.ndarray, seed: int) -> np.ndarray:
    """A seeded shuffle of the prompts, each prompt's examples together (data.share_prompts)."""
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[_perm(len(first), seed)] = np.arange(len(first))
    return np.lexsort((np.arange(len(groups)), rank[inverse]))


def step_order(
    lengths: np.ndarray, global_batch: int, seed: int, epoch: int, order: str, groups: np.ndarray | None = None
) -> list[np.ndarray]:
    """The epoch's steps, each an array of example indices (the last one may be short). `order`: "grouped" (length
    groups), "shuffled" (a seeded shuffle) or "sequential" (the files' order). `groups` (a prompt id per example,
    data.share_prompts): the shuffle moves whole prompts, and length groups sort prompts by their longest example,
    so the solutions of one prompt stay next to each other."""
    n = len(lengths)
    if order == "sequential":
        return [np.arange(i, min(i + global_batch, n)) for i in range(0, n, global_batch)]
    order_ = _perm(n, seed * 1_000_003 + epoch) if groups is None else _perm_by_group(groups, seed * 1_000_003 + epoch)
    if order == "shuffled":
        return [order_[i : i + global_batch] for i in range(0, n, global_batch)]
    window = WINDOW * global_batch
    steps = []
    for start in range(0, n, window):
        chunk = order_[start : start + window]
        chunk = chunk[np.argsort(-_sort_lengths(lengths[chunk], None if groups is None else groups[chunk]),
                                 kind="stable")]  # fmt: skip
        steps += [chunk[i : i + global_batch] for i in range(0, len(chunk), global_batch)]
    # Full steps in random order; a short one (n not a multiple of the batch) goes last, so every step stays
    # aligned with a length group.
    full = [s for s in steps if len(s) == global_batch]
    short = [s for s in steps if len(s) != global_batch]
    return [full[i] for i in _perm(len(full), seed * 1_000_003 + epoch + 7919)] + short


def _sort_lengths(lengths: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """The length each example is sorted by: its own, or its prompt's longest (a stable sort keeps prompts whole)."""
    if groups is None:
        return lengths
    _, inverse = np.unique(groups, return_inverse=True)
    longest = np.zeros(inverse.max() + 1, dtype=np.int64)
    np.maximum.at(longest, inverse, lengths)
    return longest[inverse]


def share(step: np.ndarray, dp_rank: int, dp_size: int) -> np.ndarray:
    """This data-parallel rank's examples of a step: a contiguous slice, so the length groups stay together.
    A short last step may leave a rank with none (it then runs a masked filler, see loader.py)."""
    bounds = np.linspace(0, len(step), dp_size + 1).round().astype(int)
    return step[bounds[dp_rank] : bounds[dp_rank + 1]]


def cost(lengths: Sequence[int], padding_free: bool) -> int:
    """Tokens a micro-batch computes: the sum (padding-free) or count x longest (padded)."""
    if not lengths:
        return 0
    return sum(lengths) if padding_free else len(lengths) * max(lengths)


def micro_batches(
    lengths: Sequence[int], micro_batch: int | None, budget: int | None, padding_free: bool, groups=None
) -> list[list[int]]:
    """Positions (0..len-1) of a rank's share cut into micro-batches: `micro_batch` at a time, or by the token
    `budget` (longest first; an example longer than the budget goes alone; with `groups`, a prompt id per
    position, prompts by their longest example, each prompt's examples together)."""
    positions = list(range(len(lengths)))
    if budget is None:
        return [positions[i : i + micro_batch] for i in range(0, len(positions), micro_batch)]
    key = _sort_lengths(np.asarray(lengths), None if groups is None else np.asarray(groups))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in sorted(positions, key=lambda i: -key[i]):
        if current and cost([lengths[j] for j in current + [i]], padding_free) > budget:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def equalize(batches: list[list[int]], count: int) -> list[list[int]]:
    """Exactly `count` micro-batches: the largest are split in two until there are enough; empty ones are added
    when there are fewer examples than micro-batches (they run a masked filler)."""
    batches = [list(b) for b in batches if b]
    while len(batches) < count and any(len(b) > 1 for b in batches):
        i = max(range(len(batches)), key=lambda j: len(batches[j]))
        half = len(batches[i]) // 2
        batches[i : i + 1] = [batches[i][:half], batches[i][half:]]
    return batches + [[] for _ in range(count - len(batches))]


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of computed tokens that are padding when each batch is padded to its longest example."""
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches if b)
    return 1 - real / padded if padded else 0.0


def chunks(order: Sequence[int], size: int) -> list[list[int]]:
    return [list(order[i : i + size]) for i in range(0, len(order), size)]


def budget_problem(lengths: np.ndarray, budget: int | None, sp_size: int = 1) -> tuple[str | None, str | None]:
    """(error, warning) for a token budget (use_dynamic_bsz) that examples do not fit: an example longer than the
    budget runs alone in its micro-batch, over the budget. None of them fitting is an error (the budget is
    meaningless: a unit mistake?); some not fitting, a warning (those micro-batches need more memory)."""
    if budget is None or not len(lengths):
        return None, None
    over = int((lengths > budget).sum())
    if not over:
        return None, None
    key = f"data.max_token_len_per_gpu={budget // sp_size}"
    what = f"{over} of {len(lengths)} training examples are longer than {key} (tokens per micro-batch and process"
    if over == len(lengths):
        return (
            f"every training example is longer than {key} (tokens per micro-batch and process; the shortest has "
            f"{int(lengths.min())} tokens): each micro-batch would be one example over the budget. Raise it above "
            f"the longest example ({int(lengths.max())} tokens) or drop data.use_dynamic_bsz."
        ), None
    return None, (
        f"warning: {what}; the longest has {int(lengths.max())}): each runs alone in a micro-batch, over the "
        "budget. Raise the budget or lower data.max_length."
    )
