"""Data at scale: rows/s and peak memory of `prepare`, `filter` and the training-set build, at 10^5 and 10^6 rows.

    python benchmarks/data_bench.py [--rows 100000 1000000] [--tokenizer qwen2.5|tiny] [--train-rows 200000]
                                    [--stages prepare curated filter build] [--workdir runs/data-bench]
                                    [--results benchmarks/RESULTS.md]

Rows are made from the bundled GSM8K sample (300 problems x 2 solutions), each solution varied (an opening line
with its row number, shuffled wording of the steps), so that every row is distinct and tokenized for real.
"prepare, curated" is `prepare` with every curation step on (normalised dedup, `--max-per-prompt 10`,
decontamination against 40 GSM8K test problems). Each stage runs in its own process (`python -m sftkit ...` or
the build in a fresh interpreter) and reports its wall time and peak resident memory — of itself and of its worker
processes (the build tokenizes on every core).
With --train-rows, a 1-step training on that many rows runs twice on the same data: cold (builds the cache) and
warm (opens it), whole process, with the tiny model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
OPENINGS = ["Let me work through this.", "Step by step:", "We compute carefully.", "Here is the reasoning."]
EVAL = ROOT / "tests" / "assets" / "curation" / "gsm8k_test_40.jsonl"
CURATION = ["--dedup", "normalized", "--max-per-prompt", "10", "--decontaminate", EVAL]
STAGES = ["prepare", "curated", "filter", "build"]

RUNNER = """
import json, resource, sys, time
start = time.perf_counter()
stage, args = sys.argv[1], sys.argv[2:]
if stage == "build":
    from sftkit.data.dataset import build_dataset
    from sftkit.data.labels import Encoder
    sys.path.insert(0, "tests")
    if args[1] == "qwen2.5":
        from real_tokenizers import qwen25 as make
    else:
        from sftkit.tiny import build_tokenizer as make
    split = build_dataset([args[0]], Encoder(make()), "prompt", "generated_solution", 2048, "right",
                          cache_dir=args[2], verbose=False)
    rows = len(split)
else:
    from sftkit.cli import main
    code = main([stage, *args])
    assert code == 0, code
    rows = None
self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print("STAGE " + json.dumps({"seconds": time.perf_counter() - start, "peak_mib": self_kib / 1024,
                             "workers_peak_mib": children_kib / 1024, "rows": rows}))
"""


def make_rows(n: int, path: Path) -> None:
    rows = [json.loads(line) for f in sorted(SAMPLE.glob("solutions_*.jsonl")) for line in f.read_text().splitlines()]
    with open(path, "w") as fh:
        for i in range(n):
            row = dict(rows[i % len(rows)])
            steps = row["generated_solution"].split("\n")
            body, last = steps[:-1], steps[-1]
            k = i // len(rows)
            if len(body) > 1 and k % 2:
                body = body[1:] + body[:1]
            opening = f"{OPENINGS[k % len(OPENINGS)]} (attempt {k})"
            row["generated_solution"] = "\n".join([opening, *body, last])
            fh.write(json.dumps(row) + "\n")


def stage(name: str, args: list[str], rows: int) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, name, *map(str, args)], capture_output=True, text=True, cwd=ROOT, env=env
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("STAGE ")), None)
    if out.returncode or line is None:
        sys.exit(f"{name} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    result = json.loads(line[6:])
    result["rows_per_second"] = rows / result["seconds"]
    return result


def train_once(rows_file: Path, model: Path, out: Path, cache: Path) -> dict:
    args = [f"model_name_or_path={model}", f"train_files=[{rows_file}]", "val_files=[]", f"output_dir={out}",
            "max_steps=1", "logger=console", "save_steps=0", "max_length=512", f"cache_dir={cache}"]  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUNNER, "train", *args], capture_output=True, text=True, cwd=ROOT)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("STAGE ")), None)
    if proc.returncode or line is None:
        sys.exit(f"train failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return {**json.loads(line[6:]), "wall": time.perf_counter() - start}


def bench_size(n: int, work: Path, tokenizer: str, stages: list[str]) -> list[tuple]:
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"rows-{n}.jsonl"
    make_rows(n, data)
    size_mb = data.stat().st_size / 1e6
    prepared, filtered = work / f"prepared-{n}", work / f"correct-{n}.parquet"
    results = []
    if "prepare" in stages:
        args = [data, "--output-dir", prepared, "--val-split", "0.01", "--overwrite"]
        results.append(("prepare", stage("prepare", args, n)))
    if "curated" in stages:  # every curation step on: normalised dedup, a cap, decontamination
        args = [data, "--output-dir", f"{prepared}-curated", "--val-split", "0.01", "--overwrite", *CURATION]
        results.append(("prepare, curated", stage("prepare", args, n)))
    if "filter" in stages:
        args = ["--solutions-file", data, "--metadata-file", SAMPLE / "metadata.jsonl", "--save-correct", filtered]
        results.append(("filter", stage("filter", [*args, "--overwrite"], n)))
    cache = work / f"cache-{n}"
    shutil.rmtree(cache, ignore_errors=True)
    if "build" in stages:
        results.append(("training-set build", stage("build", [data, tokenizer, cache], n)))
    print(
        f"{n} rows ({size_mb:.0f} MB JSONL): "
        + ", ".join(f"{s} {r['rows_per_second']:,.0f} rows/s" for s, r in results)
    )
    return [(n, size_mb, s, r) for s, r in results]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--tokenizer", choices=["qwen2.5", "tiny"], default="qwen2.5")
    p.add_argument("--train-rows", type=int, default=200_000, help="0 = skip the training start-up measure")
    p.add_argument("--workdir", type=Path, default=ROOT / "runs" / "data-bench")
    p.add_argument("--results", type=Path, default=None, help="append the table to this markdown file")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=STAGES, help="stages to run (default: all)")
    args = p.parse_args()
    rows = [r for n in args.rows for r in bench_size(n, args.workdir, args.tokenizer, args.stages)]
    lines = [
        f"## data_bench {time.strftime('%Y-%m-%d %H:%M')} — {platform.processor() or platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores",
        "",
        f"Rows from the bundled GSM8K sample, each solution varied; tokenizer {args.tokenizer}; max_length 2048. "
        f"Command: `python benchmarks/data_bench.py --rows {' '.join(map(str, args.rows))} --stages "
        f"{' '.join(args.stages)} --train-rows {args.train_rows}`. Curated: `{' '.join(map(str, CURATION))}`".replace(
            str(ROOT) + "/", ""
        ),
        "",
        "| rows | JSONL | stage | seconds | rows/s | peak RSS (process) | peak RSS (one worker) |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, size, name, r in rows:
        lines.append(f"| {n:,} | {size:.0f} MB | {name} | {r['seconds']:.1f} | {r['rows_per_second']:,.0f} | "
                     f"{r['peak_mib']:,.0f} MiB | {r['workers_peak_mib']:,.0f} MiB |")  # fmt: skip
    if args.train_rows:
        work = args.workdir
        data = work / f"rows-{args.train_rows}.jsonl"
        if not data.exists():
            make_rows(args.train_rows, data)
        model = work / "tiny-model"
        if not (model / "config.json").exists():
            subprocess.run([sys.executable, "-m", "sftkit", "tiny-model", str(model)], check=True, capture_output=True)
        cache = work / "train-cache"
        shutil.rmtree(cache, ignore_errors=True)
        cold = train_once(data, model, work / "train-out", cache)
        warm = train_once(data, model, work / "train-out", cache)
        lines += ["", f"1-step training on {args.train_rows:,} rows (tiny model, tiny tokenizer), whole process:", "",
                  "| run | wall s | peak RSS (process) | peak RSS (one worker) |", "|---|---|---|---|"]  # fmt: skip
        for name, r in (("cold (builds the cache)", cold), ("warm (opens the cache)", warm)):
            lines.append(f"| {name} | {r['wall']:.1f} | {r['peak_mib']:,.0f} MiB | {r['workers_peak_mib']:,.0f} MiB |")
        lines.append(f"\nwarm / cold wall time: {warm['wall'] / cold['wall']:.0%}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.results:
        with open(args.results, "a") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
