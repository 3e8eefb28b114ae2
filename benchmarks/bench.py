"""`make bench`: sftkit against plain TRL `SFTTrainer` (its defaults), same model, data, batch and steps
(docs/contracts.md §7).

Runs are interleaved A/B/A/B (each in a fresh process, see bench_worker.py) and compared as ratios sftkit/TRL:
trained (real, non-padding) tokens per second over the steps after the first, padding fraction, peak memory (RSS
on CPU, torch.cuda.max_memory_allocated on GPU), on GPU also MFU. A loss check puts the same examples through
both pipelines' labels with the same initial weights. Results are appended to benchmarks/RESULTS.md.

CPU (default): the tiny offline model (runs/tiny-model), recipes/tiny.yaml settings, fp32.
GPU: a random-weights model shaped like Qwen2.5-0.5B (`--model-shape 1.5b`: Qwen2.5-1.5B) built from its config
numbers (no hub), bf16 autocast in both; the tokenizer is the tiny one (lengths differ from real Qwen's).
MFU = flops_per_token x tokens/s / peak, with flops_per_token = 6N + 12·L·H·S (N parameters, L layers, H hidden,
S the token-weighted mean sequence length; sftkit.metrics.flops_per_token) — counted on real tokens only.

    python benchmarks/bench.py [--steps 30] [--batch 8] [--rounds 2] [--data sample gsm8k] [--dry-run]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
INSTRUCTION = "Solve the following math problem step by step. Put the final answer in \\boxed{}.\n\n"
# Qwen2.5 configs (config.json on the hub), written out so that nothing is downloaded.
SHAPES = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12),
}
QWEN_COMMON = dict(
    vocab_size=151936,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    rope_theta=1e6,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)


# Each variant: which worker runs it and what it changes. TRL's best configuration is whichever TRL row is fastest:
# `group_by_length` (length-grouped batches, transformers' sampler) or packing (BFD into max_length rows,
# padding-free). Every ratio is taken to that row.
VARIANTS = {
    "sftkit": ("sftkit", {}),  # defaults: shared prompts where a prompt repeats in a micro-batch
    "sftkit-unshared": ("sftkit", {"sftkit_overrides": {"share_prompts": "false"}}),
    "trl": ("trl", {}),
    "trl-group_by_length": ("trl", {"trl_config": {"train_sampling_strategy": "group_by_length"}}),
    "trl-packing": ("trl", {"trl_config": {"packing": True, "packing_strategy": "bfd"}}),
}
DEFAULT_VARIANTS = ["sftkit", "sftkit-unshared", "trl", "trl-group_by_length", "trl-packing"]
RFT = ["gsm8k-k4", "gsm8k-k8", "math-k4", "math-k8"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=30, help="optimizer steps per run (default 30; the first is warmup)")
    p.add_argument("--batch", type=int, default=8, help="batch per step in both (default 8, no accumulation)")
    p.add_argument("--rounds", type=int, default=3, help="A/B rounds per dataset, order alternating (default 3)")
    p.add_argument("--max-length", type=int, default=512, help="max tokens per example in both (default 512)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate in both (tiny recipe: 1e-3)")
    p.add_argument("--gsm8k-rows", type=int, default=2000, help="rows of the GSM8K train slice (default 2000)")
    p.add_argument(
        "--data",
        nargs="+",
        default=["sample", "gsm8k"],
        choices=["sample", "gsm8k", *RFT],
        help="sample: data/sample (bundled GSM8K solutions); gsm8k: ../shared/data/gsm8k/train.jsonl, if present; "
        "gsm8k-kK / math-kK: RFT-shaped, K distinct solutions per problem (benchmarks/rft_data.py)",
    )
    p.add_argument("--problems", type=int, default=500, help="problems of the RFT-shaped sets (default 500)")
    p.add_argument(
        "--epoch",
        action="store_true",
        help="each run trains one whole epoch of each dataset (--steps ignored) and is timed from its first step: "
        "every trainer then covers the same examples (TRL's group_by_length puts its longest batches first, so a "
        "short run favours it)",
    )
    p.add_argument(
        "--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS), help="trainer configurations"
    )
    p.add_argument(
        "--once",
        nargs="*",
        default=[],
        choices=list(VARIANTS),
        help="variants run in the first round only (references far from the others, e.g. TRL's defaults, or packing "
        "on CPU): keeps `make bench` short",
    )
    p.add_argument(
        "--model-shape",
        choices=["tiny", "0.5b", "1.5b"],
        default=None,
        help="tiny (runs/tiny-model; default on CPU) or a random Qwen2.5-shaped model (default 0.5b on GPU)",
    )
    p.add_argument("--model", default=str(ROOT / "runs" / "tiny-model"), help="the tiny model folder")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "RESULTS.md"), help="markdown file to append to")
    p.add_argument("--skip-loss-check", action="store_true", help="no loss check (it is per dataset, not per run)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (model size, FLOPs/token), run nothing")
    return p.parse_args(argv)


def write_datasets(names: list[str], work: Path, gsm8k_rows: int, problems: int = 500) -> dict[str, Path]:
    """Each dataset as JSONL with `prompt` and `generated_solution` (what both pipelines read)."""
    from rft_data import write_rft

    out = {}
    for name in names:
        if name in RFT:
            out[name] = write_rft(name, work / f"{name}.jsonl", problems)
            continue
        if name == "sample":
            rows = [
                json.loads(line)
                for f in sorted((ROOT / "data" / "sample").glob("solutions_*.jsonl"))
                for line in f.read_text().splitlines()
                if line.strip()
            ]
        elif GSM8K.is_file():
            raw = [json.loads(line) for line in GSM8K.read_text().splitlines()[:gsm8k_rows] if line.strip()]
            rows = [{"prompt": INSTRUCTION + r["question"], "generated_solution": r["answer"]} for r in raw]
        else:
            print(f"note: {GSM8K} not found, skipping the GSM8K slice")
            continue
        out[name] = work / f"{name}.jsonl"
        out[name].write_text(
            "".join(json.dumps({k: r[k] for k in ("prompt", "generated_solution")}) + "\n" for r in rows)
        )
    return out


def model_config(shape: str):
    from transformers import Qwen2Config

    from sftkit.tiny import build_tokenizer

    tok = build_tokenizer()
    cfg = Qwen2Config(**QWEN_COMMON, **SHAPES[shape], eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return cfg, tok


def count_params(shape: str) -> tuple[int, object]:
    import torch
    from transformers import Qwen2ForCausalLM

    cfg, _ = model_config(shape)
    with torch.device("meta"):
        model = Qwen2ForCausalLM(cfg)
    return sum(p.numel() for p in model.parameters()), cfg


def build_shaped_model(shape: str, out: Path) -> Path:
    """Random weights (seed 0), fp32 on disk: both trainers then run fp32 master weights + bf16 autocast."""
    import torch
    from transformers import Qwen2ForCausalLM

    cfg, tok = model_config(shape)
    torch.manual_seed(0)
    Qwen2ForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def run_worker(kind: str, spec: dict, work: Path, tag: str) -> dict:
    spec_path, out_path, log = work / f"{tag}.spec.json", work / f"{tag}.json", work / f"{tag}.log"
    spec_path.write_text(json.dumps({**spec, "work": str(work / tag)}))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_worker.py"), kind, str(spec_path), str(out_path)]
    with open(log, "w") as fh:
        proc = subprocess.run(
            cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=work, env={**os.environ, "WANDB_MODE": "disabled"}
        )
    if proc.returncode != 0:
        sys.exit(f"{kind} run failed (exit {proc.returncode}); last lines of {log}:\n" + log.read_text()[-3000:])
    return json.loads(out_path.read_text())


def median(xs: list[float]) -> float:
    s = sorted(xs)
    return (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (GPU), {os.cpu_count()} CPU cores"
    model = platform.processor() or "unknown CPU"
    info = Path("/proc/cpuinfo")
    if info.is_file():
        model = next(
            (ln.split(":", 1)[1].strip() for ln in info.read_text().splitlines() if "model name" in ln), model
        )
    return f"{model}, {len(os.sched_getaffinity(0))} cores available ({os.cpu_count()} total)"


def summarize(name: str, runs: dict[str, list[dict]], gpu: bool, n_params: int, cfg, peak) -> list[list[str]]:
    """One row per variant: trained tokens/s (median, range), padding, computed tokens per trained token, peak
    memory, [MFU], and the ratio of trained tokens/s to the best TRL row."""
    from sftkit.training.metrics import flops_per_token

    summary = {}
    for kind, rs in runs.items():
        tps = [r["trained_tokens_per_second"] for r in rs]
        row = {
            "tok/s": median(tps),
            "range": f"{min(tps):,.0f}-{max(tps):,.0f}",
            "pad": median([r["padding_fraction"] for r in rs]),
            "cpt": median([r["computed_per_trained"] for r in rs]),
            "mem": max(r["peak_memory"] for r in rs),
        }
        if gpu and peak:  # MFU on real (computed, non-padding) tokens
            s = median([r["mean_attended"] for r in rs])
            real = median([r["tokens_per_second"] for r in rs])
            row["mfu"] = flops_per_token(n_params, cfg.num_hidden_layers, cfg.hidden_size, s) * real / peak
        summary[kind] = row
    trl_rows = [k for k in summary if k.startswith("trl")]
    best = max(trl_rows, key=lambda k: summary[k]["tok/s"]) if trl_rows else None
    rows = []
    for kind, row in summary.items():
        cells = [name, kind + (" (best TRL)" if kind == best else ""), f"{row['tok/s']:,.0f} ({row['range']})"]
        cells += [
            f"{row['pad']:.1%}",
            f"{row['cpt']:.2f}",
            f"{row['mem']:.2f} GiB" if gpu else f"{row['mem']:,.0f} MiB",
        ]
        cells += [f"{row['tok/s'] / summary[best]['tok/s']:.2f}x" if best else "-"]
        rows.append(cells + ([f"{row['mfu']:.1%}"] if "mfu" in row else []))
    return rows


def loss_line(name: str, lc: dict, batch: int) -> str:
    ours, theirs = lc["sftkit_trained_tokens"], lc["trl_trained_tokens"]
    return (
        f"- {name}: loss on the same first {batch} examples, same initial weights: sftkit {lc['sftkit_loss']:.4f} "
        f"over {ours} trained tokens, TRL {lc['trl_loss']:.4f} over {theirs} ({theirs - ours:+d}: TRL also trains "
        f"{lc['trl_extra_tokens']} after <|im_end|>); per-token losses on the shared tokens agree to "
        f"{lc['max_abs_diff_shared_tokens']:.1e}"
    )


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from sftkit.training.metrics import peak_flops

    gpu = torch.cuda.is_available()
    shape = args.model_shape or ("0.5b" if gpu else "tiny")
    n_params, cfg = count_params(shape) if shape != "tiny" else (None, None)
    if args.dry_run:
        from sftkit.training.metrics import flops_per_token

        print(
            f"plan: model {shape}, device {'GPU' if gpu else 'CPU'}, data {args.data}, {args.rounds} rounds x "
            f"{args.steps} steps x batch {args.batch}, max_length {args.max_length}"
        )
        if cfg is not None:
            fpt = flops_per_token(n_params, cfg.num_hidden_layers, cfg.hidden_size, 256)
            print(
                f"  {n_params / 1e6:.0f}M parameters; FLOPs/token at S=256: 6N + 12·L·H·S = {fpt:.3e}; "
                f"peak {peak_flops() or 'unknown (no GPU)'}"
            )
        return 0
    with tempfile.TemporaryDirectory(prefix="sftkit-bench-") as tmp:
        work = Path(tmp)
        model = str(build_shaped_model(shape, work / f"model-{shape}") if shape != "tiny" else Path(args.model))
        if not Path(model, "config.json").is_file():
            sys.exit(f"no model at {model}: build it with `sftkit tiny-model {model}` (make tiny)")
        base = dict(model=model, steps=args.steps, batch=args.batch, max_length=args.max_length, lr=args.lr, seed=42)
        rows, checks = [], []
        for name, path in write_datasets(args.data, work, args.gsm8k_rows, args.problems).items():
            spec = {**base, "data": str(path)}
            if args.epoch:
                n_rows = sum(1 for line in path.read_text().splitlines() if line.strip())
                spec.update(steps=-(-n_rows // args.batch), from_start=True)
            runs: dict[str, list] = {v: [] for v in args.variants}
            for rnd in range(args.rounds):  # interleaved, the order reversed every other round
                for variant in args.variants if rnd % 2 == 0 else args.variants[::-1]:
                    if rnd and variant in args.once:
                        continue
                    kind, extra = VARIANTS[variant]
                    result = run_worker(kind, {**spec, **extra}, work, f"{name}-{variant}-{rnd}")
                    print(
                        f"  {name} round {rnd + 1} {variant}: {result['trained_tokens_per_second']:,.0f} trained "
                        f"tok/s, padding {result['padding_fraction']:.1%}, "
                        f"{result['computed_per_trained']:.2f} computed/trained",
                        flush=True,
                    )
                    runs[variant].append(result)
                    n_params = n_params or result["n_params"]
            rows += summarize(name, runs, gpu, n_params, cfg, peak_flops())
            if not args.skip_loss_check:
                lc = run_worker("loss", spec, work, f"{name}-loss")
                checks.append(loss_line(name, lc, args.batch))
    header = ["data", "trainer", "trained tok/s, median (range)", "padding", "computed/trained"]
    header += ["peak " + ("GPU mem" if gpu else "RSS"), "vs best TRL"]
    header += ["MFU"] if gpu else []
    text = table(header, rows)
    print("\n" + text + "\n" + "\n".join(checks))
    versions = ", ".join(f"{p} {version(p)}" for p in ("torch", "transformers", "trl", "sftkit"))
    section = (
        f"\n## {datetime.datetime.now():%Y-%m-%d %H:%M} — {machine()}\n\n{versions}. Model: {shape} "
        f"({n_params / 1e6:.1f}M parameters), {'bf16 autocast' if gpu else 'fp32'}; "
        + f"{args.rounds} interleaved rounds x "
        + ("one epoch" if args.epoch else f"{args.steps} steps")
        + f" x batch {args.batch}, max_length {args.max_length}; "
        + ("tokens/s over all steps. " if args.epoch else f"tokens/s over steps 2-{args.steps}. ")
        + (f"Round 1 only: {', '.join(args.once)}. " if args.once else "")
        + "sftkit: its defaults (`sftkit`: shared prompts where a prompt repeats in a micro-batch), "
        "`share_prompts=false` (`sftkit-unshared`). "
        "TRL: SFTTrainer on a conversational prompt-completion dataset, defaults (`trl`), "
        "`train_sampling_strategy=group_by_length`, `packing=True` (BFD, padding-free). "
        f"Command: `{' '.join(['python benchmarks/bench.py', *(argv if argv is not None else sys.argv[1:])])}`\n\n"
        + text
        + "\n\n"
        + "\n".join(checks)
        + "\n"
    )
    results = Path(args.results)
    if not results.exists():
        results.write_text("# Benchmark results (appended by `make bench`; timings vary ±30% run to run)\n")
    with open(results, "a") as fh:
        fh.write(section)
    print(f"\nappended to {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
