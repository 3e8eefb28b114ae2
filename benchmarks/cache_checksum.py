"""The examples cache's checksum (data/cache.py) on a 10^6-row cache: a synthetic examples.arrow with GSM8K-shaped
examples (216 tokens each, the real Qwen2.5 median), then the checksum's time warm (page cache) and, where the
machine lets us drop the page cache, cold. Compared with blake2b and with a plain read. Usage:
    python benchmarks/cache_checksum.py [ROWS] [FOLDER]
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from sftkit.data.cache import CHUNK, FILE, checksum


def write(path: Path, rows: int, tokens: int = 216, batch: int = 10_000) -> None:
    rng = np.random.default_rng(0)
    ids_type = pa.list_(pa.int32())
    schema = pa.schema(
        [("input_ids", ids_type), ("labels", ids_type), ("length", pa.int32()), ("trained", pa.int32())]
    )
    with pa.ipc.new_stream(str(path), schema) as writer:
        for _ in range(0, rows, batch):
            flat = pa.array(rng.integers(0, 151_000, batch * tokens, dtype=np.int32))
            offsets = pa.array(np.arange(0, batch * tokens + 1, tokens, dtype=np.int32))
            lists = pa.ListArray.from_arrays(offsets, flat)
            n = pa.array(np.full(batch, tokens, dtype=np.int32))
            writer.write_batch(pa.record_batch([lists, lists, n, n], schema=schema))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def blake2b(path: Path) -> None:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)


def read(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(CHUNK):
            pass


def drop_caches() -> bool:
    done = subprocess.run(["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], capture_output=True)
    return done.returncode == 0


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory(dir=sys.argv[2] if len(sys.argv) > 2 else None) as tmp:
        path = Path(tmp) / FILE
        write(path, rows)
        gb = path.stat().st_size / 1e9
        print(f"{rows} rows, {gb:.2f} GB")
        read(path)  # warm
        for name, fn in (("read only", read), ("xxh3_128 (sftkit)", lambda p: checksum(p)), ("blake2b", blake2b)):
            seconds = min(timed(lambda fn=fn: fn(path)) for _ in range(2))
            print(f"warm  {name:18s} {seconds:6.2f} s  {gb / seconds:5.2f} GB/s")
        if drop_caches():
            seconds = timed(lambda: checksum(path))
            print(f"cold  xxh3_128 (sftkit)  {seconds:6.2f} s  {gb / seconds:5.2f} GB/s")
        else:
            print("cold: cannot drop the page cache here")


if __name__ == "__main__":
    main()
