"""The `sftkit` command: registers the subcommands (one dict) and dispatches; nothing else.

Each subcommand is a module with `main(argv) -> int` that builds its own parser, imported only when used,
so `sftkit --help` stays fast.
"""

from __future__ import annotations

import importlib
import signal
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "tiny-model": (
        "sftkit.tiny",
        "build the small deterministic offline model (Qwen2-style) used by the demo and tests",
    ),
    "prepare": ("sftkit.data.prepare", "JSONL solutions -> train.parquet / val.parquet (split by prompt by default)"),
    "filter": ("sftkit.grading.filter", "keep only correct solutions (math-verify against the metadata answers)"),
    "inspect": ("sftkit.dry_run", "dry run: resolved config, lengths, padding, examples with trained tokens marked"),
    "train": ("sftkit.train", "fine-tune (full or LoRA) from a recipe with overrides"),
    "launch": (
        "sftkit.launch",
        "`accelerate launch` that keeps the training's exit code (75, 2, 3) and prints no traceback",
    ),
    "export": ("sftkit.checkpoint.export", "a global_step_* checkpoint -> Hugging Face model folder"),
    "eval": ("sftkit.evaluation.command", "generate and grade solutions of a checkpoint: accuracy, pass@k, next data"),
    "rounds": ("sftkit.rounds.command", "the bootstrapping loop, N rounds of eval/filter/prepare/train, resumable"),
}


def usage() -> str:
    lines = ["usage: sftkit COMMAND [options]   (sftkit COMMAND --help for the options)", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    if argv is None and hasattr(signal, "SIGPIPE"):  # `sftkit train --help | head`: exit quietly, no traceback
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from sftkit import __version__

        print(f"sftkit {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        from sftkit.errors import closest

        print(f"error: unknown command {name!r}.{closest(name, COMMANDS)}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
