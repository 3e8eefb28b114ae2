"""Checkpoint size and save time on CPU: sftkit's atomic write-once save vs a raw torch.save of the same tensors.

    python benchmarks/ckpt_bench.py [--shape tiny|qwen2.5-0.5b] [--out DIR]

Builds the model (random weights, real architecture for qwen2.5-0.5b), takes one AdamW step so the optimizer has
its full state, then times (a) sftkit.checkpoint.write_checkpoint (model.pt + optimizer.pt + scheduler.pt +
train_state.pt into a temp folder, fsync, rename, `latest`) and (b) plain torch.save of the same two dicts.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from sftkit.checkpoint import layout as checkpoint
from sftkit.checkpoint import state as ckpt_state
from sftkit.tiny import build_model, build_tokenizer


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="qwen2.5-0.5b", choices=["tiny", "qwen2.5-0.5b", "qwen2.5-1.5b"])
    p.add_argument("--out", type=Path, default=None, help="where to write (default: a temp folder, removed)")
    args = p.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="ckpt-bench-"))
    model = build_model(build_tokenizer(), shape=None if args.shape == "tiny" else args.shape)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(0, 2000, (1, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    optim.step()
    n = sum(p.numel() for p in model.parameters())
    start = time.perf_counter()
    msd = ckpt_state.trained_state_dict(model, lora=False)
    osd = ckpt_state.gather_optimizer(model, optim)
    gather = time.perf_counter() - start
    start = time.perf_counter()
    path = checkpoint.write_checkpoint(
        out, "global_step_1", {"model.pt": msd, "optimizer.pt": osd, "scheduler.pt": {}, "train_state.pt": {"step": 1}}
    )
    ours = time.perf_counter() - start
    raw_dir = out / "raw"
    raw_dir.mkdir()
    start = time.perf_counter()
    torch.save(msd, raw_dir / "model.pt")
    torch.save(osd, raw_dir / "optimizer.pt")
    raw = time.perf_counter() - start
    print(
        f"{args.shape}: {n / 1e6:.1f}M parameters; checkpoint {du(path) / 2**20:.1f} MiB "
        f"(model.pt {(path / 'model.pt').stat().st_size / 2**20:.1f} MiB)"
    )
    print(
        f"  gather (state dicts on CPU): {gather:.3f} s; sftkit save (write + fsync + rename): {ours:.3f} s; "
        f"raw torch.save: {raw:.3f} s; ratio {ours / raw:.2f}x"
    )
    if args.out is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
