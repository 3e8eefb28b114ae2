"""`sftkit inspect --config RECIPE [overrides] [--examples K] [--json OUT.json]`: the dry run before GPU-hours.

No model weights are loaded and nothing trains. Prints the resolved config, rows and length quantiles (prompt,
response, total), what max_length truncates or drops, the padding fraction of the chosen batching against the
alternatives, steps and tokens per epoch, and examples rendered with the trained tokens marked — built by the same
code the trainer uses, so `--json` holds exactly the `input_ids`/`labels` the trainer will see.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from sftkit.config.parse import Resolved, resolve
from sftkit.data.labels import IGNORE
from sftkit.errors import SftkitError, user_errors

GREEN, RESET = "\033[32m", "\033[0m"


def quantiles(values: list[int]) -> dict[str, int]:
    """p50/p90/p99/max by the nearest-rank method (the smallest value with at least q% of values <= it)."""
    if not values:
        return {}
    ordered = sorted(values)
    rank = lambda q: ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]  # noqa: E731
    return {"p50": rank(50), "p90": rank(90), "p99": rank(99), "max": ordered[-1]}


def batching_report(lengths: list[int], r: Resolved, budget_batches: list[list[int]] | None = None) -> dict:
    """Padding fraction of each batching on these lengths, with the micro batch of the config
    (and the token-budget micro-batches when use_dynamic_bsz is on)."""
    import torch

    from sftkit.training.batching import chunks, grouped_order, padding_fraction

    micro, seed = r.train.per_device_train_batch_size, r.train.seed
    random_order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed)).tolist()
    report = {
        "random (TRL default)": padding_fraction(lengths, chunks(random_order, micro)),
        "grouped by length (sftkit default)": padding_fraction(
            lengths, chunks(grouped_order(lengths, r.global_batch, seed, 0), micro)
        ),
        "padding-free (use_remove_padding)": 0.0,
        "padded to max_length (verl legacy)": 1 - sum(lengths) / (len(lengths) * (r.train.max_length or max(lengths))),
    }
    if budget_batches is not None:
        report["token budget (use_dynamic_bsz)"] = padding_fraction(lengths, budget_batches)
    return report


def chosen_batching(r: Resolved) -> str:
    if r.data.use_remove_padding:
        return "padding-free (use_remove_padding)"
    if r.data.use_dynamic_bsz:
        return "token budget (use_dynamic_bsz)"
    return "grouped by length (sftkit default)"


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


def build_report(r: Resolved, k: int) -> tuple[dict, object, object]:
    from sftkit.data.dataset import build_dataset
    from sftkit.data.labels import Encoder
    from sftkit.training import modeling

    modeling.check_model_path(r.model.model_name_or_path, r.train.trust_remote_code)
    tokenizer = modeling.load_tokenizer(r.model.model_name_or_path, r.train.trust_remote_code)
    d = r.data
    ds, rows, stats = build_dataset(
        d.train_files, Encoder(tokenizer), d.prompt_key, d.response_key, r.train.max_length, d.truncation, d.strict
    )
    lengths = ds["length"]
    trained = [sum(1 for x in labels if x != IGNORE) for labels in ds["labels"]]
    prompt = [n - t for n, t in zip(lengths, trained)]
    budget_batches = None
    if r.data.use_dynamic_bsz:  # the trainer's own sampler: steps = micro-batches / (processes x accumulation)
        from sftkit.training.batching import TokenBudgetBatchSampler

        sampler = TokenBudgetBatchSampler(lengths, r.data.max_token_len_per_gpu, r.train.seed, r.world_size)
        budget_batches = sampler.batches
        steps = math.ceil(len(sampler) / (r.world_size * r.train.gradient_accumulation_steps))
    else:
        steps = math.ceil(len(ds) / r.global_batch)
    report = {
        "config": r.to_dict(),
        "rows": {"read": rows.rows_read, "usable": rows.rows_ok, "bad": dict(rows.bad), "examples": len(ds)},
        "truncation": {
            "max_length": r.train.max_length,
            "mode": d.truncation,
            "truncated": stats.truncated,
            "dropped": stats.dropped,
        },
        "lengths": {"prompt": quantiles(prompt), "response": quantiles(trained), "total": quantiles(lengths)},
        "batching": {"chosen": chosen_batching(r), "padding_fraction": batching_report(lengths, r, budget_batches)},
        "epoch": {
            "steps": steps,
            "tokens": sum(lengths),
            "trained_tokens": sum(trained),
            "global_batch": r.global_batch,
        },
        "examples": [{"input_ids": ds[i]["input_ids"], "labels": ds[i]["labels"]} for i in range(min(k, len(ds)))],
    }
    return report, tokenizer, ds


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
    print(
        f"per epoch: {epoch['steps']} steps of {epoch['global_batch']} examples, {epoch['tokens']} tokens "
        f"({epoch['trained_tokens']} trained)"
    )
    for i, ex in enumerate(report["examples"]):
        legend = "trained tokens in green" if colour else "trained tokens between [[ ]]"
        print(f"\n--- example {i} ({len(ex['input_ids'])} tokens, {legend})")
        print(render(tokenizer, ex["input_ids"], ex["labels"], colour))


def parse(argv: list[str]) -> tuple[str | None, int, str | None, list[str]]:
    from sftkit.train import split_config

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
    recipe, k, out, rest = parse(argv)
    r = resolve(recipe, rest)
    from sftkit.train import show_config

    show_config(r)
    report, tokenizer, _ = build_report(r, k)
    print_report(report, tokenizer, colour=sys.stdout.isatty())
    if out:
        Path(out).write_text(json.dumps(report, indent=1, default=str))
        print(f"\nreport written to {out}")
    return 0
