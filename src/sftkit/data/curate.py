"""Curation of rejection-sampled rows, decided on per-row hashes after `prepare`'s first pass (no text kept).

Per usable row: its prompt id, exact-text and normalised-text solution hashes (`normalize.solution_key`), its
source and whether its prompt is contaminated: 8+8+8+2+1 bytes, 27 MB for 10^6 rows. The steps, in this order:
1. decontaminate: drop the rows whose prompt shares an n-gram with an eval problem (`decontaminate.py`);
2. dedup (`exact` / `normalized`): keep the first row, in input order, of each (prompt, solution);
3. max per prompt K: keep K rows of each prompt, distinct solutions first (a solution's second copy only after
   every distinct one), then a seeded rank: RFT's "distinct reasoning paths", ReST-EM's cap;
4. mix: each source's rows times its weight (0.5 keeps half, 2 writes each row twice), the rows taken spread over
   the prompts (one solution of every prompt before a second of any), then a seeded rank.
Every choice is a seeded splitmix64 rank of fixed integers (`_mix`): the same seed gives the same rows anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEDUP = ("none", "exact", "normalized")


def mix64(x: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of each uint64 (seeded): a fixed pseudo-random rank, the same with every numpy and platform."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64((seed + 1) * 0x9E3779B97F4A7C15 % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def occurrence(keys: list[np.ndarray], order_key: np.ndarray) -> np.ndarray:
    """For each row: how many rows before it (by `order_key`) share all of `keys` (0 = the first of its group)."""
    n = len(order_key)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort([order_key, *reversed(keys)])
    sorted_keys = [k[order] for k in keys]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = np.any([k[1:] != k[:-1] for k in sorted_keys], axis=0)
    starts = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    result = np.empty(n, dtype=np.int64)
    result[order] = np.arange(n) - starts
    return result


@dataclass
class Rows:
    """The per-row columns of the usable rows, in input order."""

    prompt: np.ndarray  # uint64
    exact: np.ndarray  # uint64 hash of the solution text
    normal: np.ndarray  # uint64 hash of its normalised text
    source: np.ndarray  # uint16 index of its source
    tainted: np.ndarray  # bool: prompt shares an n-gram with an eval problem

    def __len__(self) -> int:
        return len(self.prompt)


def duplicates(rows: Rows, alive: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Mask of the rows (among `alive`) that repeat an earlier row's (prompt, solution)."""
    index = np.flatnonzero(alive)
    mask = np.zeros(len(rows), dtype=bool)
    mask[index] = occurrence([rows.prompt[index], hashes[index]], index) > 0
    return mask


def cap(rows: Rows, alive: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Mask of the rows (among `alive`) beyond the first `k` of their prompt, distinct solutions preferred."""
    index = np.flatnonzero(alive)
    copy = occurrence([rows.prompt[index], rows.normal[index]], index)
    rank = mix64(index.astype(np.uint64), seed)
    order_key = copy.astype(np.uint64) << np.uint64(40) | (rank >> np.uint64(24))  # copy first, then the rank
    position = occurrence([rows.prompt[index]], order_key)
    mask = np.zeros(len(rows), dtype=bool)
    mask[index] = position >= k
    return mask


def weigh(rows: Rows, alive: np.ndarray, weights: list[float], seed: int) -> np.ndarray:
    """Times each row is written: floor(weight) for every row of a source, plus one for round(fraction x rows) of
    them, spread over the prompts (see the module docstring)."""
    counts = alive.astype(np.int64)
    for source, weight in enumerate(weights):
        index = np.flatnonzero(alive & (rows.source == source))
        if weight == 1 or len(index) == 0:
            continue
        whole, extra = int(weight), int(round((weight - int(weight)) * len(index)))
        counts[index] = whole
        if extra:
            rank = mix64(index.astype(np.uint64) ^ np.uint64(source << 48), seed + 1)
            position = occurrence([rows.prompt[index]], rank)
            chosen = np.lexsort([rank, position])[:extra]
            counts[index[chosen]] += 1
    return counts


@dataclass
class Curated:
    counts: np.ndarray  # times each usable row is written (0 = dropped)
    steps: dict  # masks of the rows each step dropped: "decontaminated", "duplicates", "capped"
    duplicates_held: dict  # {"exact": n, "normalized": n} in the usable rows, whether dropped or not


def curate(rows: Rows, dedup: str, max_per_prompt: int | None, weights: list[float], seed: int) -> Curated:
    """The steps of the module docstring, in order; what each dropped is kept for the report."""
    everything = np.ones(len(rows), dtype=bool)
    held = {
        "exact": int(duplicates(rows, everything, rows.exact).sum()),
        "normalized": int(duplicates(rows, everything, rows.normal).sum()),
    }
    steps = {"decontaminated": rows.tainted.copy()}
    alive = ~rows.tainted
    steps["duplicates"] = np.zeros(len(rows), dtype=bool)
    if dedup != "none":
        steps["duplicates"] = duplicates(rows, alive, rows.exact if dedup == "exact" else rows.normal)
        alive &= ~steps["duplicates"]
    steps["capped"] = np.zeros(len(rows), dtype=bool)
    if max_per_prompt is not None:
        steps["capped"] = cap(rows, alive, max_per_prompt, seed)
        alive &= ~steps["capped"]
    return Curated(weigh(rows, alive, weights, seed), steps, held)
