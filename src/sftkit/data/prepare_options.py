"""`sftkit prepare`'s options: the parser (also read by `sftkit rounds` for its `prepare` section) and the checks
made before any file is read."""

from __future__ import annotations

import argparse

from sftkit.data import decontaminate
from sftkit.data.curate import DEDUP
from sftkit.errors import SftkitError

SUFFIXES = (".jsonl", ".json", ".parquet")


def parse_args(argv: list[str] | None, prog: str = "sftkit prepare") -> argparse.Namespace:
    args = build_parser(prog).parse_args(argv)
    check_args(args, _given(prog, argv))
    return args


def build_parser(prog: str = "sftkit prepare") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Merge JSONL (or Parquet) solution files, curate them (duplicates, solutions per problem, "
        "contamination, mixing) and split them into DIR/train.parquet and DIR/val.parquet, with every count in "
        "DIR/prepare_report.json. Bad rows are counted and shown with file:line, never dropped silently.",
        epilog="example: %(prog)s outputs/*.jsonl --output-dir data/sft --val-split 0.1 --dedup normalized "
        "--max-per-prompt 10 --decontaminate data/math_test.jsonl",
    )
    p.add_argument(
        "files", nargs="*", metavar="FILES", help="JSONL/Parquet files, globs or directories; all rows merged"
    )
    p.add_argument("--output-dir", required=True, metavar="DIR", help="folder for train.parquet and val.parquet")
    p.add_argument(
        "--val-split",
        type=float,
        metavar="FRACTION",
        default=0.1,
        help="fraction of the problems (or rows, with --split-by row) for validation, in [0, 1) (default: 0.1); "
        "0 writes everything to train and an empty val.parquet",
    )
    p.add_argument(
        "--prompt-key", default="prompt", metavar="KEY", help="field holding the prompt text (default: prompt)"
    )
    p.add_argument(
        "--response-key",
        default=None,
        metavar="KEY",
        help="field holding the response text (default: generated_solution, or response when the files have "
        "that and no generated_solution)",
    )
    p.add_argument(
        "--seed", type=int, default=42, metavar="N", help="seed of the split and of every curation choice; same "
        "seed, same files (default: 42)"
    )  # fmt: skip
    p.add_argument(
        "--split-by",
        choices=("prompt", "row"),
        default="prompt",
        help="prompt (default): all solutions of one problem land on the same side, so validation measures unseen "
        "problems; row: plain split of the rows (the seed's behaviour; problems leak into validation)",
    )
    _curation_options(p)
    p.add_argument("--strict", action="store_true", help="make any bad row or missing file fatal (exit code 2)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace train.parquet, val.parquet and prepare_report.json when "
        "DIR holds them already (an input among them is refused even so)"
    )  # fmt: skip
    return p


def _curation_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("curation (in this order: decontaminate, dedup, max per prompt, mix)")
    g.add_argument(
        "--dedup", choices=DEDUP, default="none", help="drop repeated solutions of one prompt: exact text, or "
        "normalized (case, whitespace, LaTeX spacing and delimiters, \\frac12 = \\frac{1}{2}); the first in input "
        "order is kept. The summary counts both kinds of duplicates even with none (default)"
    )  # fmt: skip
    g.add_argument(
        "--max-per-prompt", type=int, metavar="K", help="keep at most K solutions of each prompt: distinct "
        "solutions first, then a seeded choice (RFT / ReST-EM style)"
    )  # fmt: skip
    g.add_argument(
        "--decontaminate", nargs="+", metavar="EVAL", help="evaluation files (JSONL/Parquet, globs): drop rows "
        "whose prompt shares a word n-gram with one of their problems"
    )  # fmt: skip
    g.add_argument(
        "--decontaminate-ngram", type=int, default=decontaminate.NGRAM, metavar="N", help="n-gram length in "
        f"words, after lower-casing and dropping punctuation (default: {decontaminate.NGRAM}, as open-r1)"
    )  # fmt: skip
    g.add_argument(
        "--decontaminate-key", metavar="KEY", help="column of the eval files holding the problem (default: the "
        f"first of {', '.join(decontaminate.KEYS)} a row has)"
    )  # fmt: skip
    g.add_argument(
        "--mix", nargs="+", metavar="FILES:WEIGHT", help="more sources, each with a weight: its rows (after the "
        "steps above) times WEIGHT; 0.5 keeps half of them (spread over the prompts, seeded), 2 writes each "
        "twice. FILES are FILES as above, which count with weight 1"
    )  # fmt: skip


def _given(prog: str, argv: list[str] | None) -> set[str]:
    """The options given on the command line, not left at their defaults (parsed again with every default None)."""
    parser = build_parser(prog)
    parser.set_defaults(**{a.dest: None for a in parser._actions if a.dest != "help"})
    return {name for name, value in vars(parser.parse_args(argv)).items() if value is not None}


def check_args(args, given: set[str]) -> None:
    if not 0 <= args.val_split < 1:
        raise SftkitError(f"--val-split must be a fraction in [0, 1) (0.1 = 10%), got {args.val_split}")
    if args.max_per_prompt is not None and args.max_per_prompt < 1:
        raise SftkitError(f"--max-per-prompt {args.max_per_prompt}: keep 1 or more solutions per prompt")
    alone = [f"--decontaminate-{name}" for name in ("ngram", "key") if f"decontaminate_{name}" in given]
    if alone and not args.decontaminate:
        raise SftkitError(f"{' and '.join(alone)} without --decontaminate EVAL...: nothing would be checked")


def mix_source(spec: str) -> dict:
    """One `--mix FILE_OR_GLOB:WEIGHT` -> {name, weight, patterns}; a weight must be a number > 0."""
    pattern, sep, weight = spec.rpartition(":")
    try:
        value = float(weight) if sep else float("nan")
    except ValueError:
        value = float("nan")
    if not pattern or not value > 0 or value == float("inf"):
        raise SftkitError(f"--mix {spec}: give FILE_OR_GLOB:WEIGHT with a weight > 0, e.g. 'runs/round1/*.jsonl:0.5'")
    return {"name": pattern, "weight": value, "patterns": [pattern]}
