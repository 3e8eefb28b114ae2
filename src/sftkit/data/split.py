"""A tokenized split (the memory-mapped examples and what building them reported): made by dataset.py, stored
and opened by cache.py, read by training, the dry run and resume."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sftkit.data.rows import RowReport


@dataclass
class TruncationStats:
    truncated: int = 0
    dropped: int = 0
    dropped_ids: list = field(default_factory=list)
    too_long: list | None = None  # [file:line, message] of the first over-long example with truncation=error


@dataclass
class Split:
    """One tokenized split: the memory-mapped examples and what building them reported."""

    dataset: object  # datasets.Dataset with input_ids, labels, length, trained
    report: RowReport
    stats: TruncationStats
    key: str  # examples_key: names the cache folder
    digest: str  # files_digest: the data's identity (recorded in train_state.pt)
    seconds: float | None  # build time; None when opened from the cache
    path: Path

    def __len__(self) -> int:
        return len(self.dataset)

    def identity(self) -> dict:
        return {"files_digest": self.digest, "rows": self.report.rows_ok, "examples": len(self), "key": self.key}
