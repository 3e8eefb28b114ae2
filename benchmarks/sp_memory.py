"""Peak memory per rank against sequence length, without and with Ulysses sequence parallelism (CPU, gloo).

    python benchmarks/sp_memory.py [--lengths 2048 4096 8192] [--hidden 256 --layers 4]

For each length L, one packed row of L tokens (8 sequences) goes through forward and backward of a small Qwen2
model, in 1 process (sp=1) and in 2 processes (sp=2: each rank holds L/2 tokens). The number is the rise of the
process's peak resident memory (VmHWM, reset before each measure) over its memory before the step: the
activations, gradients and attention workspace of that step. Weights are the same in both and not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux)


def worker(lengths: list[int], hidden: int, layers: int) -> None:
    from types import SimpleNamespace

    import torch
    import torch.distributed as dist
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from sftkit.tiny import build_model, build_tokenizer
    from sftkit.training import ulysses

    sp = int(os.environ.get("WORLD_SIZE", "1"))
    if sp > 1:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = build_model(build_tokenizer(), hidden_size=hidden, layers=layers)
    model.config._attn_implementation = "sdpa"
    group = ulysses.setup(SimpleNamespace(sp_size=sp, attn_implementation="sdpa"), model) if sp > 1 else None
    if sp == 1 and os.environ.get("PER_DOCUMENT"):  # the same attention kernel as the sp path, without sp
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface

        def per_document(module, q, k, v, mask, dropout=0.0, scaling=None, **kw):
            return ulysses.causal_per_document(q, k, v, kw["cu_seq_lens_q"], 0.0, scaling), None

        AttentionInterface.register("per_document", per_document)
        AttentionMaskInterface.register("per_document", lambda *a, **k: None)
        model.set_attn_implementation("per_document")
    collate = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    rows = []
    for length in lengths:
        n = length // 8
        ids = [5 + i % 500 for i in range(n)]
        batch = collate([{"input_ids": ids, "labels": [-100] + ids[1:]}] * 8)
        part = group.slice(batch) if group else {**batch, "shift_labels": None}
        inputs = {k: v for k, v in part.items() if k not in ("labels", "shift_labels", "seq_idx")}
        labels = part["shift_labels"] if group else batch["labels"]
        model.zero_grad(set_to_none=False)
        before = rss_kib("VmRSS")
        reset_peak()
        start = time.perf_counter()
        with group.running() if group else torch.enable_grad():
            out = model(**inputs, labels=None if group else labels, use_cache=False)
            loss = (
                out.loss
                if not group
                else torch.nn.functional.cross_entropy(out.logits[0], labels[0], ignore_index=-100, reduction="sum")
            )
            loss.backward()
        seconds = time.perf_counter() - start
        peak = rss_kib("VmHWM")
        rows.append({"sp": sp, "length": length, "tokens_per_rank": inputs["input_ids"].shape[1],
                     "peak_mib": (peak - before) / 1024, "seconds": seconds})  # fmt: skip
    if sp == 1 or dist.get_rank() == 0:
        print("RESULT " + json.dumps(rows), flush=True)
    if sp > 1:
        dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[2048, 4096, 8192])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    common = ["--lengths", *map(str, args.lengths), "--hidden", str(args.hidden), "--layers", str(args.layers)]
    if args.worker:
        return worker(args.lengths, args.hidden, args.layers)
    torchrun = [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2"]
    runs = {"sp1": ([sys.executable], {}), "sp1-doc": ([sys.executable], {"PER_DOCUMENT": "1"}), "sp2": (torchrun, {})}
    results = {}
    for name, (launcher, extra) in runs.items():
        env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
        out = subprocess.run([*launcher, __file__, "--worker", *common], capture_output=True, text=True, env=env)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(out.stdout[-2000:] + out.stderr[-2000:])
        results[name] = json.loads(line[7:])
    print(f"model: hidden {args.hidden}, {args.layers} layers, fp32, one packed row of 8 sequences, fwd + bwd")
    head = ["tokens", "sp=1 (transformers' packed sdpa)", "sp=1 (per-sequence sdpa)", "sp=2, per rank", "ratio"]
    print("| " + " | ".join(head) + " |\n" + "|---" * len(head) + "|")
    for a, d, b in zip(results["sp1"], results["sp1-doc"], results["sp2"]):
        cells = [a["length"], *(f"{r['peak_mib']:.0f} MiB" for r in (a, d, b)), f"{b['peak_mib'] / d['peak_mib']:.2f}"]
        print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
