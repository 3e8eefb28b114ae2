"""`sftkit train --help` without importing torch/transformers (4 s): the text is rendered from the config
dataclasses into `train_help.txt`, shipped with the package; tests/test_cli.py checks that it is current
(`python -m sftkit.config.help` rewrites it).
"""

from __future__ import annotations

import os
from pathlib import Path

HELP_FILE = Path(__file__).with_name("train_help.txt")
HEADER = """usage: sftkit train --config RECIPE [overrides...]

Overrides: `--learning_rate 1e-5`, `learning_rate=1e-5`, or verl's `optim.lr=1e-5`. Precedence, lowest to
highest: recipe -> environment (MODEL_NAME, TRAIN_FILE, VAL_FILE, OUTPUT_DIR, BATCH_SIZE, LEARNING_RATE, EPOCHS,
MAX_LENGTH, LORA_RANK, LORA_ALPHA) -> command line. Every key (field) follows; verl keys after it.
Exit codes: 0 done, 2 a user error (one message, no traceback), 75 pre-empted (SIGTERM/SIGUSR1: global_step_N was
saved; run again with trainer.resume_from_checkpoint=auto to continue).
"""


def render() -> str:
    """The full help, from the dataclasses (imports transformers)."""
    import argparse

    from sftkit.config.options import ALIASES, REFUSED
    from sftkit.config.parse import make_parser
    from sftkit.verl.keys import VERL_KEYS

    parser = make_parser()
    for action in parser._actions:  # the refused and aliased options are listed apart, below
        if action.dest in REFUSED or action.dest in ALIASES:
            action.help = argparse.SUPPRESS
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "119"  # the same text on every terminal
    try:
        options = parser.format_help()
    finally:
        if previous is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = previous
    keys = "\n".join(f"  {key:<40} -> {name}" for key, name in VERL_KEYS.items())
    aliases = "\n".join(
        f"  --{name:<38} -> {a.target}"
        + (f" ({', '.join(f'{k}={v}' for k, v in a.values.items())})" if a.values else "")
        for name, a in ALIASES.items()
    )
    refused = "\n".join(f"  --{name:<38} instead: {rule.instead}" for name, rule in sorted(REFUSED.items()))
    return (
        f"{HEADER}\n{options}\nverl keys:\n{keys}\n"
        f"\nTRL/transformers spellings, applied to the sftkit key:\n{aliases}\n"
        f"\nRefused (an error naming what to use instead; their defaults are accepted):\n{refused}\n"
    )


def text() -> str:
    return HELP_FILE.read_text() if HELP_FILE.is_file() else render()


if __name__ == "__main__":
    HELP_FILE.write_text(render())
    print(f"wrote {HELP_FILE}")
