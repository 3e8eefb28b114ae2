"""`sftkit inspect --config RECIPE [overrides] [--examples K] [--json OUT.json]`: the dry run before GPU-hours.

No model weights are loaded and nothing trains. Prints the resolved config, rows and length quantiles (prompt,
response, total), what max_length truncates or drops, the padding fraction of the chosen batching against the
alternatives, steps, micro-batches and tokens per epoch (per-rank sequence length with sequence parallelism),
and examples rendered with the trained tokens marked — built by the same code the trainer uses (the same cached
examples, the same steps and micro-batches), so `--json` holds exactly the `input_ids`/`labels` it will see.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sftkit.data.labels import IGNORE
from sftkit.dist import user_errors
from sftkit.errors import SftkitError

if TYPE_CHECKING:  # heavy imports only where the dry run starts (`--help` stays instant)
    import numpy as np

    from sftkit.config.plan import RunPlan

GREEN, RESET = "\033[32m", "\033[0m"
CHOICES = {
    "random": "random (TRL default)",
    "grouped": "grouped by length (sftkit default)",
    "free": "padding-free (use_remove_padding)",
    "max_length": "padded to max_length (verl legacy)",
    "budget": "token budget (use_dynamic_bsz)",
}


def quantiles(values) -> dict[str, int]:
    """p50/p90/p99/max by the nearest-rank method (the smallest value with at least q% of values <= it)."""
    import numpy as np

    if len(values) == 0:
        return {}
    ordered = np.sort(np.asarray(values))
    rank = lambda q: int(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)])  # noqa: E731
    return {"p50": rank(50), "p90": rank(90), "p99": rank(99), "max": int(ordered[-1])}


def epoch_micro_batches(lengths: np.ndarray, plan: RunPlan, order: str, budget: int | None, free: bool):
    """Every micro-batch of epoch 0 on every rank, as the trainer cuts them: (per-step count, micro-batches)."""
    from sftkit.training import batching

    steps = batching.step_order(lengths, plan.global_batch, plan.train.seed, 0, order)
    counts, batches = [], []
    for step in steps:
        per_rank = []
        for r in range(plan.dp_size):
            mine = batching.share(step, r, plan.dp_size)
            parts = batching.micro_batches(lengths[mine].tolist(), plan.micro_batch, budget, free)
            per_rank.append([[int(mine[i]) for i in part] for part in parts])
        counts.append(max(len(p) for p in per_rank))
        batches += [b for parts in per_rank for b in parts]
    return counts, batches


def batching_report(lengths: np.ndarray, plan: RunPlan) -> dict:
    """Padding fraction of each batching on these lengths, with the micro batch (or token budget) of the plan."""
    import numpy as np

    from sftkit.training import batching

    micro, seed = plan.micro_batch, plan.train.seed
    random_order = np.random.default_rng(seed).permutation(len(lengths)).tolist()
    grouped = epoch_micro_batches(lengths, plan, "grouped", None, False)[1]
    lens = lengths.tolist()
    report = {
        CHOICES["random"]: batching.padding_fraction(lens, batching.chunks(random_order, micro)),
        CHOICES["grouped"]: batching.padding_fraction(lens, grouped),
        CHOICES["free"]: 0.0,
        CHOICES["max_length"]: 1 - lengths.sum() / (len(lengths) * (plan.cut_length or lengths.max())),
    }
    if plan.token_budget:
        _, budget = epoch_micro_batches(lengths, plan, "grouped", plan.token_budget, False)
        report[CHOICES["budget"]] = batching.padding_fraction(lens, budget)
    return report


def chosen_batching(plan: RunPlan) -> str:
    if plan.padding_free:
        return CHOICES["free"]
    return CHOICES["budget"] if plan.token_budget else CHOICES["grouped"]


def epoch_report(lengths: np.ndarray, trained: np.ndarray, plan: RunPlan) -> dict:
    counts, batches = epoch_micro_batches(lengths, plan, plan.order, plan.token_budget, plan.padding_free)
    out = {
        "steps": len(counts),
        "global_batch": plan.global_batch,
        "micro_batches_per_step": {"min": min(counts), "max": max(counts), "mean": sum(counts) / len(counts)},
        "tokens": int(lengths.sum()),
        "trained_tokens": int(trained.sum()),
    }
    if plan.sp_size > 1:  # each micro-batch is one packed row, padded to a multiple of S and cut in S
        rows = [-(-int(lengths[b].sum()) // plan.sp_size) for b in batches if b]
        out["sequence_parallel"] = {"sp_size": plan.sp_size, "tokens_per_rank": quantiles(rows)}
    return out


def render(tokenizer, input_ids: list[int], labels: list[int], colour: bool) -> str:
    """The example's text with trained tokens in green (terminal) or between [[ ]] (elsewhere)."""
    out, trained = [], False
    for tok, lab in zip(input_ids, labels):
        now = lab != IGNORE
        if now != trained:
            out.append((GREEN if now else RESET) if colour else ("[[" if now else "]]"))
            trained = now
        out.append(tokenizer.decode([tok]))
    if trained:
        out.append(RESET if colour else "]]")
    return "".join(out)


def build_report(plan: RunPlan, k: int) -> tuple[dict, object, object]:
    from sftkit.data.dataset import column
    from sftkit.data.training_data import load_data
    from sftkit.training import modeling

    modeling.check_model_path(plan.model.model_name_or_path, plan.train.trust_remote_code)
    tokenizer = modeling.load_tokenizer(plan.model.model_name_or_path, plan.train.trust_remote_code)
    split = load_data(plan, tokenizer).train
    lengths, trained = column(split.dataset, "length"), column(split.dataset, "trained")
    rows, stats = split.report, split.stats
    report = {
        "config": plan.to_dict(),
        "rows": {"read": rows.rows_read, "usable": rows.rows_ok, "bad": dict(rows.bad), "examples": len(split)},
        "truncation": {
            "max_length": plan.cut_length,
            "mode": plan.data.truncation,
            "truncated": stats.truncated,
            "dropped": stats.dropped,
        },  # fmt: skip
        "lengths": {
            "prompt": quantiles(lengths - trained),
            "response": quantiles(trained),
            "total": quantiles(lengths),
        },  # fmt: skip
        "batching": {"chosen": chosen_batching(plan), "padding_fraction": batching_report(lengths, plan)},
        "epoch": epoch_report(lengths, trained, plan),
        "examples": [
            {"input_ids": split.dataset[i]["input_ids"], "labels": split.dataset[i]["labels"]}
            for i in range(min(k, len(split)))
        ],
    }
    return report, tokenizer, split.dataset


def print_report(report: dict, tokenizer, colour: bool) -> None:
    rows, trunc, epoch = report["rows"], report["truncation"], report["epoch"]
    print(f"rows: {rows['read']} read, {rows['usable']} usable, bad: {rows['bad'] or 0}; examples: {rows['examples']}")
    print(
        f"max_length {trunc['max_length']} ({trunc['mode']}): {trunc['truncated']} truncated, "
        f"{trunc['dropped']} dropped (no response token left)"
    )
    print("token lengths      p50    p90    p99    max")
    for name, q in report["lengths"].items():
        print(f"  {name:<14}" + "".join(f"{q.get(k, 0):>7}" for k in ("p50", "p90", "p99", "max")))
    print(f"padding fraction (micro batch {report['config']['per_device_train_batch_size']}):")
    for name, value in report["batching"]["padding_fraction"].items():
        mark = "  <- chosen" if name == report["batching"]["chosen"] else ""
        print(f"  {name:<38} {value:6.1%}{mark}")
    m = epoch["micro_batches_per_step"]
    print(
        f"per epoch: {epoch['steps']} steps of {epoch['global_batch']} sequences, {epoch['tokens']} tokens "
        f"({epoch['trained_tokens']} trained); micro-batches per step and process: {m['min']} to {m['max']} "
        f"(mean {m['mean']:.1f})"
    )
    if "sequence_parallel" in epoch:
        sp = epoch["sequence_parallel"]
        q = sp["tokens_per_rank"]
        print(
            f"sequence parallel (sp={sp['sp_size']}): tokens per rank and micro-batch p50 {q['p50']}, max {q['max']}"
        )
    for i, ex in enumerate(report["examples"]):
        legend = "trained tokens in green" if colour else "trained tokens between [[ ]]"
        print(f"\n--- example {i} ({len(ex['input_ids'])} tokens, {legend})")
        print(render(tokenizer, ex["input_ids"], ex["labels"], colour))


def parse(argv: list[str]) -> tuple[str | None, int, str | None, list[str]]:
    from sftkit.config.recipe_arg import split_config

    recipe, rest = split_config(argv)
    k, out, left = 2, None, []
    it = iter(rest)
    for arg in it:
        if arg in ("--examples", "--json"):
            value = next(it, None)
            if value is None:
                raise SftkitError(f"{arg} needs a value")
            if arg == "--json":
                out = value
            elif not value.isdigit():
                raise SftkitError(f"--examples needs a whole number of examples to show, got {value!r}")
            else:
                k = int(value)
        else:
            left.append(arg)
    return recipe, k, out, left


@user_errors
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        print("options: --config RECIPE, --examples K (default 2), --json OUT.json, then any `sftkit train` override")
        return 0
    from sftkit.config.plan import plan_run

    recipe, k, out, rest = parse(argv)
    plan = plan_run(recipe, rest)
    from sftkit.config.show import show_config

    show_config(plan)
    report, tokenizer, _ = build_report(plan, k)
    print_report(report, tokenizer, colour=sys.stdout.isatty())
    if out:
        Path(out).write_text(json.dumps(report, indent=1, default=str))
        print(f"\nreport written to {out}")
    return 0
