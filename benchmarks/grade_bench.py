"""`sftkit filter` end to end (read, extract, grade, write): solutions per second on this machine's cores.

    python benchmarks/grade_bench.py [--n 20000] [--workers N] [--workload gsm8k|competition|both] [--rounds R]

Workloads, each N solutions in JSONL, graded by a fresh `python -m sftkit filter` process (start-up included):
- gsm8k: the bundled sample (data/sample/, 600 solutions of 300 problems) made N: each solution ends in one of
  four ways (its own `\\boxed{}` or `####`, "Answer: N", or two prose endings without a marker, so the
  concluding-statement route is exercised), and one in five states a wrong value (many distinct answers);
- competition: the labelled competition-math rows of tests/assets/grading/ (LaTeX gold answers, prose and marker
  endings, ~650 distinct (gold, answer) pairs), each behind ~1,000 characters of LaTeX reasoning, as long as
  real model solutions, made N.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
SETS = ROOT / "tests" / "assets" / "grading"
REASONING = (
    "We begin by writing the conditions as equations. Let $a$ and $b$ be the unknowns, so that $a + b = 12$ and "
    "$a - b = 4$. Adding the two equations gives $2a = 16$, hence $a = 8$ and $b = 4$.\n\n"
    "Next we check the constraint: \\[ a^2 + b^2 = 64 + 16 = 80, \\] which is less than $\\frac{100}{1}$, as "
    "required. The ratio is $\\frac{a}{b} = 2$, and the product is $ab = 32$.\n\n"
    "Now consider the general case. For any integer $n \\geq 1$ we have \\[ \\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}, "
    "\\] so the sum of the first $10$ terms is $55$ and the sum of the first $20$ terms is $210$. Substituting "
    "$n = 12$ gives $78$, which we use below. Finally, note that $\\sqrt{80} = 4\\sqrt{5} \\approx 8.94$.\n\n"
)
ENDINGS = [
    None,  # the solution's own ending (\boxed{} or ####)
    "\nAnswer: {a}",
    "\nTherefore, the answer to the question is {a}.",
    "\nSo, in total, we get $ {a} $.",
]


def gsm8k_rows(n: int, rng: random.Random) -> tuple[list[dict], list[dict]]:
    sample = [json.loads(line) for f in ("solutions_0.jsonl", "solutions_1.jsonl") for line in open(SAMPLE / f)]
    meta = [json.loads(line) for line in open(SAMPLE / "metadata.jsonl")]
    gold = {m["id"]: m["answer"] for m in meta}
    rows = []
    for i in range(n):
        row = dict(sample[i % len(sample)])
        ending = ENDINGS[(i // len(sample)) % len(ENDINGS)]
        value = int(float(gold[row["id"]])) + (rng.randint(1, 50) if rng.random() < 0.2 else 0)
        if ending:
            body = re.sub(r"\n?(?:#### .*|.*\\boxed\{.*)$", "", row["generated_solution"])
            row["generated_solution"] = body + ending.format(a=value)
        rows.append(row)
    return rows, meta


def competition_rows(n: int) -> tuple[list[dict], list[dict]]:
    labelled = [json.loads(line) for f in ("tune.jsonl", "heldout.jsonl") for line in open(SETS / f)]
    meta = [{"id": i, "answer": r["gold"]} for i, r in enumerate(labelled)]
    rows = [
        {"id": i % len(labelled), "prompt": f"problem {i % len(labelled)}", "generated_solution": REASONING + r}
        for i, r in ((i, labelled[i % len(labelled)]["solution"]) for i in range(n))
    ]
    return rows, meta


def run(name: str, rows: list[dict], meta: list[dict], workers: int | None, out: Path) -> dict:
    (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / f"{name}_meta.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    cmd = [sys.executable, "-m", "sftkit", "filter", "--solutions-file", str(out / f"{name}.jsonl")]
    cmd += ["--metadata-file", str(out / f"{name}_meta.jsonl"), "--save-correct", str(out / f"{name}.parquet")]
    cmd += ["--report-json", str(out / f"{name}_report.json")] + (["--workers", str(workers)] if workers else [])
    for old in (out / f"{name}.parquet", out / f"{name}_report.json"):  # a later round: outputs never overwrite
        old.unlink(missing_ok=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    report = json.loads((out / f"{name}_report.json").read_text())
    return {
        "workload": name,
        "solutions": len(rows),
        "seconds": round(wall, 2),
        "solutions_per_s": round(len(rows) / wall),
        "distinct_pairs": report["grading"]["distinct_answers"],
        "grading_s": report["grading"]["seconds"],
        "routes": report.get("answer_routes"),  # (absent before the prose route)
        "workers": report["grading"]["workers"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20_000, help="solutions per workload (default 20000)")
    p.add_argument("--workers", type=int, default=None, help="grading processes (default: all available cores)")
    p.add_argument("--workload", default="both", choices=["gsm8k", "competition", "both"])
    p.add_argument("--rounds", type=int, default=1, help="runs of each workload (the machine may be shared)")
    args = p.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores available: {cores}; load average {os.getloadavg()[0]:.1f}; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="grade-bench-") as tmp:
        out = Path(tmp)
        for _ in range(args.rounds):
            if args.workload in ("gsm8k", "both"):
                print(run("gsm8k", *gsm8k_rows(args.n, random.Random(0)), args.workers, out))
            if args.workload in ("competition", "both"):
                print(run("competition", *competition_rows(args.n), args.workers, out))


if __name__ == "__main__":
    main()
