"""Start-up cost of shared-prompt packing (training/shared_prompts.prompt_groups: a prompt id per training example)
on a 10^6-example cache: a synthetic examples.arrow of RFT-shaped examples (k solutions per prompt, GSM8K-length:
100 prompt tokens + 116 response tokens, the real Qwen2.5 median of 216), memory-mapped as training opens it.
Usage:
    python benchmarks/prompt_groups_bench.py [ROWS] [K] [FOLDER]
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from sftkit.data.labels import IGNORE
from sftkit.training.shared_prompts import prompt_groups


def write(path: Path, rows: int, k: int, prompt: int = 100, response: int = 116, batch: int = 10_000) -> None:
    rng = np.random.default_rng(0)
    ids_type = pa.list_(pa.int32())
    schema = pa.schema([("input_ids", ids_type), ("labels", ids_type), ("length", pa.int32())])
    tokens = prompt + response
    offsets = pa.array(np.arange(0, batch * tokens + 1, tokens, dtype=np.int32))
    masked = np.tile(np.r_[np.full(prompt, IGNORE), np.ones(response)].astype(np.int32), batch)
    with pa.ipc.new_stream(str(path), schema) as writer:
        for _ in range(0, rows, batch):
            prompts = rng.integers(0, 151_000, (batch // k, prompt), dtype=np.int32).repeat(k, axis=0)
            ids = np.concatenate([prompts, rng.integers(0, 151_000, (batch, response), dtype=np.int32)], axis=1)
            flat = ids.reshape(-1)
            labels = np.where(masked == IGNORE, IGNORE, flat)
            lists = [pa.ListArray.from_arrays(offsets, pa.array(a)) for a in (flat, labels)]
            n = pa.array(np.full(batch, tokens, dtype=np.int32))
            writer.write_batch(pa.record_batch([*lists, n], schema=schema))


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    folder = sys.argv[3] if len(sys.argv) > 3 else None
    from datasets import Dataset

    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        path = Path(tmp) / "examples.arrow"
        write(path, rows, k)
        dataset = Dataset.from_file(str(path), in_memory=False)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        groups = prompt_groups(dataset)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        distinct = len(np.unique(groups)) if groups is not None else rows
        size = path.stat().st_size / 2**20
        print(f"{rows:,} examples ({size:,.0f} MiB), k={k}: prompt_groups {seconds:.1f} s "
              f"({rows / seconds:,.0f} examples/s), {distinct:,} prompts; peak RSS {peak / 1024:,.0f} MiB "
              f"(before the call {before / 1024:,.0f} MiB)")  # fmt: skip


if __name__ == "__main__":
    main()
