"""RFT-shaped benchmark data: k distinct solutions per problem, all behind the same prompt (issue 26).

Rejection sampling keeps several correct solutions per problem; no public file of such solutions is bundled, so
they are made from what the repository has, deterministically:
- `gsm8k-k{K}`: GSM8K problems (../shared/data/gsm8k/train.jsonl, else the bundled data/sample prompts), each
  with K distinct renderings of its reference solution: calculator annotations `<<48/2=24>>` kept or removed,
  times four final-answer styles (`#### 72`, `The answer is $\\boxed{72}$.`, ...). GSM8K-length answers.
- `math-k{K}`: the same problems as prompts (of MATH-problem length) with MATH-length answers: K distinct
  concatenations of four LaTeX solution bodies from the labelled competition-math grading sets
  (tests/assets/grading/*.jsonl, MATH-style prose and LaTeX), then a boxed answer: about 2.5x GSM8K's length.
Rows are written in problem order (as `prepare` writes them); the trainers shuffle.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
INSTRUCTION = "Solve the following math problem step by step. Put the final answer in \\boxed{}.\n\n"
ENDINGS = (
    "#### {a}",
    "The answer is $\\boxed{{{a}}}$.",
    "Therefore, the final answer is {a}.",
    "So we get \\boxed{{{a}}}.",
)
MATH_SETS = ("tune", "heldout", "fresh", "untouched")


def problems(n: int) -> list[tuple[str, str, str]]:
    """(prompt, reference solution body, final answer) of the first n GSM8K problems."""
    if GSM8K.is_file():
        raw = [json.loads(line) for line in GSM8K.read_text().splitlines()[:n] if line.strip()]
        out = []
        for r in raw:
            body, _, answer = r["answer"].rpartition("####")
            out.append((INSTRUCTION + r["question"], body.strip(), answer.strip()))
        return out
    rows = [json.loads(line) for line in (ROOT / "data" / "sample" / "solutions_0.jsonl").read_text().splitlines()]
    out = []
    for r in rows[:n]:
        body, _, tail = r["generated_solution"].rpartition("The answer is")
        out.append((r["prompt"], body.strip(), re.sub(r"[^0-9.\-]", "", tail) or "0"))
    return out


def gsm8k_variants(body: str, answer: str, k: int) -> list[str]:
    plain = re.sub(r"<<[^>]*>>", "", body)
    styles = [(b, e) for e in ENDINGS for b in (body, plain)]  # first 4 differ in annotations and ending
    texts = list(dict.fromkeys(f"{b}\n{e.format(a=answer)}" for b, e in styles))
    if len(texts) < k:  # no annotation in this solution: more ending styles
        texts += [f"{plain}\nHence the answer is {answer} (variant {i})." for i in range(k - len(texts))]
    return texts[:k]


def math_bodies() -> list[str]:
    folder = ROOT / "tests" / "assets" / "grading"
    rows = [json.loads(line) for name in MATH_SETS for line in (folder / f"{name}.jsonl").read_text().splitlines()]
    return [r["solution"] for r in rows if r.get("label")]


def math_variants(index: int, answer: str, k: int, bodies: list[str]) -> list[str]:
    n = len(bodies)
    out = []
    for j in range(k):
        parts = [bodies[(index * 7 + j * 131 + m * 37) % n] for m in range(4)]
        out.append("\n\n".join(parts) + f"\n\nThe answer is $\\boxed{{{answer}}}$.")
    return out


def rft_rows(kind: str, k: int, n_problems: int) -> list[dict]:
    bodies = math_bodies() if kind == "math" else []
    rows = []
    for i, (prompt, body, answer) in enumerate(problems(n_problems)):
        texts = gsm8k_variants(body, answer, k) if kind == "gsm8k" else math_variants(i, answer, k, bodies)
        rows += [{"prompt": prompt, "generated_solution": t} for t in texts]
    return rows


def write_rft(name: str, path: Path, n_problems: int) -> Path:
    """name `gsm8k-k4`, `math-k8`, ... -> JSONL with prompt/generated_solution."""
    kind, k = name.rsplit("-k", 1)
    rows = rft_rows(kind, int(k), n_problems)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
