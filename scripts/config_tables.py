"""The README's tables of config keys, generated from the dataclasses (their defaults and help texts) and the verl
key table, so that they cannot drift: `python scripts/config_tables.py --write` rewrites them between the
`<!-- config-tables -->` markers; tests/test_config.py checks that the README holds the current ones."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
START, END = "<!-- config-tables:start -->", "<!-- config-tables:end -->"
# TrainingArguments' own fields worth a row (all of them are accepted: `sftkit train --help`).
TRAINER_KEYS = [
    "output_dir", "per_device_train_batch_size", "num_train_epochs", "max_steps", "learning_rate",
    "lr_scheduler_type", "warmup_steps", "optim", "weight_decay", "adam_beta1", "adam_beta2", "max_grad_norm",
    "activation_checkpointing", "logging_steps", "run_name", "eval_steps", "per_device_eval_batch_size", "save_steps",
    "seed", "train_sampling_strategy", "dataset_num_proc", "max_length", "bf16",
]  # fmt: skip


def _row(f, verl: dict[str, list[str]]) -> str:
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    default = getattr(default, "value", default)
    help_ = " ".join(str(f.metadata.get("help", "")).split()).replace("|", "\\|")
    keys = ", ".join(f"`{k}`" for k in verl.get(f.name, []))
    return f"| `{f.name}` | `{default}` | {keys} | {help_} |"


def tables() -> str:
    from sftkit.config.fields import DataArguments, ModelArguments, SftkitConfig
    from sftkit.verl.keys import SPLIT_KEYS, VERL_KEYS

    verl: dict[str, list[str]] = {}
    for key, name in VERL_KEYS.items():
        for target in SPLIT_KEYS.get(name, (name,)):
            verl.setdefault(target, []).append(key)
    head = "| key | default | verl key | meaning |\n|---|---|---|---|"
    fields = {f.name: f for f in dataclasses.fields(SftkitConfig)}
    own = [f for f in dataclasses.fields(SftkitConfig) if f.name in SftkitConfig.__annotations__]
    trainer = [fields[k] for k in TRAINER_KEYS] + [f for f in own if f.name not in TRAINER_KEYS]
    parts = []
    for title, group in (("Model", dataclasses.fields(ModelArguments)), ("Data", dataclasses.fields(DataArguments)),
                         ("Trainer", [f for f in trainer if f.name != "report_to"])):  # fmt: skip
        parts.append(f"**{title}**\n\n{head}\n" + "\n".join(_row(f, verl) for f in group))
    return "\n\n".join(parts)


def block() -> str:
    return f"{START}\n{tables()}\n{END}"


def current(readme: str) -> str | None:
    found = re.search(re.escape(START) + r".*?" + re.escape(END), readme, flags=re.S)
    return found.group(0) if found else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true", help="rewrite the tables in README.md")
    args = p.parse_args()
    readme = ROOT / "README.md"
    if not args.write:
        print(block())
        return
    text = readme.read_text()
    old = current(text)
    if old is None:
        sys.exit(f"{readme}: no {START} ... {END} markers")
    readme.write_text(text.replace(old, block()))
    print(f"rewrote the config tables in {readme}")


if __name__ == "__main__":
    main()
