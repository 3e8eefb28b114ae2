"""Build `real.jsonl` (unlabelled) from the MATH500 result reports of labrem/neus2026-labre (NOTICE.md).

Each report (`results/experiment_<model>_baseline_<mode>_*.md`) lists, per MATH500 problem, the problem, its gold
answer ("Ground Truth"), the model's full response, the answer the authors' script extracted and its verdict
("Is Correct", the source's own score). One row per response: {"id", "gold", "question", "solution", "model",
"source", "source_pred", "source_score", "part", "label" (and "why" where the label was decided by reading)}:
the labels come from `labels.jsonl` (how they were made: tests/assets/grading/README.md), the part from `part()`.

    python build_real.py /path/to/neus2026-labre.git   # rewrites real.jsonl.gz (deterministic)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

COMMIT = "7c1b7a3"  # the snapshot read (NOTICE.md has the full hash)
FILES = {
    "gemma2-2b/greedy": "results/experiment_gemma2-2b_baseline_greedy_260204_1607.md",
    "gemma2-9b/greedy": "results/experiment_gemma2-9b_baseline_greedy_260206_1156.md",
    "qwen2.5-math-7b/greedy": "results/experiment_qwen2.5-math-7b_baseline_greedy_260205_0001.md",
    "gemma2-2b/best-of-n": "results/experiment_gemma2-2b_baseline_best-of-n_260204_1918.md",
    "gemma2-9b/best-of-n": "results/experiment_gemma2-9b_baseline_best-of-n_260207_1151.md",
    "qwen2.5-math-7b/best-of-n": "results/experiment_qwen2.5-math-7b_baseline_best-of-n_260205_0841.md",
}
_ENTRY = re.compile(
    r"## Problem (?P<id>math_\d+)\n.*?  Problem Statement: (?P<question>.*?)\n  Ground Truth: (?P<gold>.*?)\n\n"
    r"## Response (?P=id)\n  Attempt: \d+\n  Answer: (?P<pred>.*?)\n  Is Correct: (?P<score>True|False)\n"
    r".*?--- LLM Response ---\n(?P<solution>.*?)\n--- End LLM Response ---",
    re.DOTALL,
)


def rows(repo: str, key: str, path: str) -> list[dict]:
    text = subprocess.run(["git", "--git-dir", repo, "show", f"{COMMIT}:{path}"], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    model, mode = key.split("/")
    out = []
    for m in _ENTRY.finditer(text):
        out.append({
            "id": f"{model}/{mode}/{m['id']}", "gold": m["gold"].strip(), "question": m["question"].strip(),
            "solution": m["solution"], "model": model, "source": f"labrem/neus2026-labre:{path}",
            "source_pred": m["pred"].strip(), "source_score": m["score"] == "True",
        })  # fmt: skip
    return out


def part(row_id: str) -> str:
    """`real_tune` or `real_heldout`, by problem (all models' solutions to a problem fall in one part); fixed before
    any grader miss was looked at."""
    problem = row_id.rsplit("/", 1)[1]
    return "real_tune" if hashlib.sha256(problem.encode()).digest()[0] % 2 == 0 else "real_heldout"


def main() -> None:
    here = Path(__file__).parent
    labels = {r["id"]: r for r in map(json.loads, open(here / "labels.jsonl", encoding="utf-8"))}
    lines = []
    for key, path in FILES.items():
        for row in rows(sys.argv[1], key, path):
            label = labels[row["id"]]
            why = {"why": label["why"]} if "why" in label else {}
            row |= {"part": part(row["id"]), "label": label["label"]} | why
            lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    with open(here / "real.jsonl.gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write("".join(lines).encode())


if __name__ == "__main__":
    main()
