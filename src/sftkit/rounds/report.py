"""`OUT/rounds.jsonl` (one line per finished round, from the stages' records) and `OUT/rounds.png` (held-out
accuracy and coverage against round). Both are rewritten, atomically, whenever a round finishes.

A line's keys: round; pass_at_1, pass_at_k, k (held-out problems, K samples each; pass_at_k null with one
sample), eval_problems; problems (training problems generated for), generated (solutions), correct, coverage
(share of the training problems with at least one correct solution), kept (rows after curation, train + val),
train_rows, val_rows, data_rounds (whose correct solutions were trained on); trained_rows (training examples),
trained_tokens (labelled tokens of those examples: one epoch), train_steps, train_loss and val_loss (the last
logged), init_model; seconds (wall time per stage). Round 0 (eval_base) has the held-out numbers only. A round
stopped by on_empty: stop (or with nothing to train on) has `stopped` and the numbers up to its grading.
"""

from __future__ import annotations

import json
from pathlib import Path

from sftkit.checkpoint.layout import write_atomic_text

STAGES = ("generate", "grade", "data", "train", "eval")


def _row(r: int, records: dict[tuple[int, str], dict]) -> dict:
    res = {name: records[(r, name)]["result"] for name in STAGES if (r, name) in records}
    row: dict = {"round": r}
    if "eval" in res:
        e = res["eval"]
        row.update(pass_at_1=e["pass_at_1"], pass_at_k=e["pass_at_k"], k=e["k"], eval_problems=e["problems"])
    if "generate" in res:
        row.update(problems=res["generate"]["problems"], generated=res["generate"]["solutions"])
    if "grade" in res:
        row.update(correct=res["grade"]["correct"], coverage=res["grade"]["coverage"])
    if "data" in res:
        d = res["data"]
        row.update(kept=d["kept"], train_rows=d["train_rows"], val_rows=d["val_rows"], data_rounds=d["rounds"])
    if "train" in res:
        t = res["train"]
        row.update(
            trained_rows=t["examples"],
            trained_tokens=t["trained_tokens"],
            train_steps=t["steps"],
            train_loss=t["train_loss"],
            val_loss=t["val_loss"],
            init_model=t["init_model"],
        )
    row["seconds"] = {name: records[(r, name)]["seconds"] for name in STAGES if (r, name) in records}
    return row


def rows(records: dict[tuple[int, str], dict], stopped: tuple[int, str] | None = None) -> list[dict]:
    """The finished rounds (held-out evaluation done), in order; then the stopped one, if any."""
    done = sorted(r for r, name in records if name == "eval")
    out = [_row(r, records) for r in done]
    if stopped is not None and stopped[0] not in done:
        out.append({**_row(stopped[0], records), "stopped": stopped[1]})
    return out


def write(out: Path, records: dict[tuple[int, str], dict], stopped: tuple[int, str] | None = None) -> list[dict]:
    lines = rows(records, stopped)
    write_atomic_text(out / "rounds.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    plot(lines, out / "rounds.png")
    return lines


def plot(lines: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label, style in (
        ("pass_at_1", "held-out pass@1", "o-"),
        ("pass_at_k", "held-out pass@k", "s--"),
        ("coverage", "coverage (training problems solved)", "^:"),
    ):
        points = [(line["round"], line[key]) for line in lines if line.get(key) is not None]
        if points:
            ax.plot(*zip(*points), style, label=label)
    ax.set_xlabel("round")
    ax.set_ylabel("share")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xticks(sorted({line["round"] for line in lines}) or [0])
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
