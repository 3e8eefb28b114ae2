"""Regenerate the bundled sample (data/sample/) from GSM8K (MIT licence, see data/sample/LICENSE-GSM8K).

Not needed at run time: the output is committed. Usage:
    python scripts/make_sample_data.py ../shared/data/gsm8k/train.jsonl data/sample

Writes the seed's JSONL format, two "generation runs" (solutions_0.jsonl, solutions_1.jsonl) with one solution per
problem each, so one problem has several solutions across files, as rejection sampling produces:
  {"id", "prompt", "generated_solution", "num_tokens"}
and metadata.jsonl ({"id", "answer", "question"}). About 10% of the solutions are deliberately wrong
(final answer changed), so `sftkit filter` has something to reject.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

N_PROBLEMS = 300
PROMPT = "Solve the following math problem step by step. Put the final answer in \\boxed{{}}.\n\n{question}"


def clean(answer: str) -> tuple[str, str]:
    """GSM8K answer -> (reasoning without calculator annotations, final answer)."""
    body, final = answer.split("####")
    body = re.sub(r"<<[^>]*>>", "", body).strip()
    return body, final.strip().replace(",", "")


def wrong(final: str, rng: random.Random) -> str:
    value = float(final)
    changed = value + rng.choice([1, 2, 10]) if rng.random() < 0.5 else value * 2 + 1
    return str(int(changed)) if changed == int(changed) else str(changed)


def main(src: str, out: str) -> None:
    rng = random.Random(0)
    rows = [json.loads(line) for line in Path(src).read_text().splitlines()[:N_PROBLEMS]]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta, runs = [], [[], []]
    for i, row in enumerate(rows):
        body, final = clean(row["answer"])
        meta.append({"id": i, "answer": final, "question": row["question"]})
        prompt = PROMPT.format(question=row["question"])
        for run, ending in enumerate(["The answer is $\\boxed{{{}}}$.", "#### {}"]):
            answer = wrong(final, rng) if rng.random() < 0.1 else final
            text = f"{body}\n{ending.format(answer)}"
            num_tokens = len(re.findall(r"\w+|[^\w\s]", text))
            runs[run].append({"id": i, "prompt": prompt, "generated_solution": text, "num_tokens": num_tokens})
    for run, solutions in enumerate(runs):
        (out_dir / f"solutions_{run}.jsonl").write_text("".join(json.dumps(s) + "\n" for s in solutions))
    (out_dir / "metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))


if __name__ == "__main__":
    main(*sys.argv[1:3])
