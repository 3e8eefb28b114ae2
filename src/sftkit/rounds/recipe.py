"""The rounds recipe: a YAML file (top-level keys + one section per stage command) and `key=value` overrides
(`rounds=3`, `generate.samples=8`, `train.overrides.max_steps=100`) -> a checked `RoundsRecipe`.

The sections `generate`, `evaluate` (options of `sftkit eval`), `filter` and `prepare` hold the options of those
commands under their long names (`max_new_tokens`, `max_per_prompt`, ...) and are parsed by the commands' own
parsers here, before any work: a misspelt, ill-typed or out-of-range option (ranges.py) fails now, and an option
the command gains later works without a change here. The options that `rounds` sets itself (inputs, outputs) are
refused.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from sftkit.errors import SftkitError, closest
from sftkit.rounds import ranges

CHOICES = {"init": ("base", "previous"), "train_on": ("current", "all"), "on_empty": ("previous_data", "stop")}
SECTIONS = ("generate", "evaluate", "filter", "prepare", "train")
# what `rounds` gives each command itself: inputs, outputs and --overwrite
RESERVED = {
    "generate": {"model", "problems", "metadata_file", "output", "report_json", "overwrite"},
    "filter": {"solutions_file", "metadata_file", "save_correct", "save_incorrect", "report_json", "overwrite"},
    "prepare": {"files", "output_dir", "overwrite"},
}
RESERVED["evaluate"] = RESERVED["generate"]
# training keys set by `rounds` in every round (checked in their canonical, sftkit spelling)
TRAIN_RESERVED = ("model_name_or_path", "train_files", "val_files", "output_dir", "resume_from_checkpoint")


@dataclass
class RoundsRecipe:
    """Every key of a rounds recipe (`sftkit rounds --help` prints this help)."""

    output_dir: str = field(metadata={"help": "the run's folder: round_N/ per round, rounds.jsonl, rounds.png"})
    model: str = field(metadata={"help": "base model: a Hugging Face folder or hub id (round 1 generates with it)"})
    problems: str = field(metadata={"help": "training problems (JSONL/Parquet with id and prompt), every round"})
    metadata_file: str = field(metadata={"help": "gold answers of the training problems (id, answer), as filter's"})
    eval_problems: str = field(metadata={"help": "held-out problems: each round's model is evaluated on them"})
    train: dict = field(metadata={"help": "recipe: the training recipe used in every round; overrides: {key: value}"})
    eval_metadata_file: str | None = field(
        default=None, metadata={"help": "gold answers of eval_problems (default: metadata_file)"}
    )
    rounds: int = field(default=3, metadata={"help": "number of rounds; raise it and rerun to add rounds"})
    init: str = field(
        default="base",
        metadata={
            "help": "base: each round fine-tunes the base model (ReST-EM); "
            "previous: the previous round's final checkpoint"
        },
    )
    train_on: str = field(
        default="current", metadata={"help": "current: this round's correct solutions; all: every round's so far"}
    )
    on_empty: str = field(
        default="previous_data",
        metadata={
            "help": "a round with no correct solution: "
            "previous_data (train on earlier rounds' data) or stop (end the run with a message)"
        },
    )
    eval_base: bool = field(
        default=True,
        metadata={
            "help": "round_0: evaluate the base model on eval_problems first (the starting point of rounds.png)"
        },
    )
    generate: dict = field(
        default_factory=dict,
        metadata={
            "help": "`sftkit eval` options to generate the "
            "training solutions (samples, temperature, max_new_tokens, limit, seed...); round N "
            "samples with seed + N - 1"
        },
    )
    evaluate: dict = field(
        default_factory=dict, metadata={"help": "`sftkit eval` options on eval_problems (samples > 1 gives pass@k)"}
    )
    filter: dict = field(
        default_factory=dict, metadata={"help": "`sftkit filter` options (require_marker, timeout...)"}
    )
    prepare: dict = field(
        default_factory=dict,
        metadata={
            "help": "`sftkit prepare` options: val_split, seed, "
            "and curation (dedup, max_per_prompt, decontaminate, mix...)"
        },
    )

    @property
    def train_recipe(self) -> str:
        return str(self.train["recipe"])

    @property
    def train_overrides(self) -> dict:
        return dict(self.train.get("overrides") or {})

    @property
    def eval_metadata(self) -> str:
        return self.eval_metadata_file or self.metadata_file


def help_text() -> str:
    lines = ["rounds recipe keys (YAML; override any with key=value, sections with section.key=value):"]
    for f in fields(RoundsRecipe):
        lines.append(f"  {f.name:<19}{f.metadata['help']}")
    return "\n".join(lines)


def _read(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        from sftkit import resources

        shipped = resources.shipped_recipe(path)
        if shipped is None:
            names = sorted(x.stem for x in resources.recipes().glob("rounds-*.yaml"))
            raise SftkitError(f"rounds recipe {path!r} not found. Shipped ones (--config NAME): {', '.join(names)}")
        print(f"note: no recipe {path} here: using the shipped {shipped}")
        p = shipped
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise SftkitError(f"rounds recipe {path} does not parse: {exc}") from None
    if not isinstance(data, dict):
        raise SftkitError(f"rounds recipe {path} must be a YAML mapping of key: value")
    return data


def _override(data: dict, item: str) -> None:
    """`a.b.c=value` (value parsed as YAML) set in the nested dict `data`."""
    key, sep, text = item.lstrip("-").partition("=")
    if not sep or not key:
        raise SftkitError(f"override {item!r}: write key=value, e.g. rounds=3 or generate.samples=8")
    *parents, last = key.replace("-", "_").split(".")
    if parents[:2] == ["train", "overrides"] and len(parents) > 2:  # a training key in verl's spelling: data.x
        parents, last = parents[:2], ".".join([*parents[2:], last])
    node = data
    for name in parents:
        node = node.setdefault(name, {})
        if not isinstance(node, dict):
            raise SftkitError(f"override {item!r}: {name} is not a section")
    node[last] = yaml.safe_load(text) if text else None


def load(path: str, overrides: list[str]) -> RoundsRecipe:
    """The recipe file, then the overrides, checked (`check`)."""
    data = _read(path)
    for item in overrides:
        _override(data, item)
    known = {f.name for f in fields(RoundsRecipe)}
    for key in data:
        if key not in known:
            raise SftkitError(f"unknown rounds recipe key {key!r}.{closest(key, known)} See `sftkit rounds --help`.")
    required = [f.name for f in fields(RoundsRecipe) if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise SftkitError(f"rounds recipe {path}: set {', '.join(missing)} (see `sftkit rounds --help`)")
    recipe = RoundsRecipe(**data)
    check(recipe)
    return recipe


def check(r: RoundsRecipe) -> None:
    for key, choices in CHOICES.items():
        if getattr(r, key) not in choices:
            raise SftkitError(f"{key}: {getattr(r, key)!r} is not one of {', '.join(choices)}")
    if not isinstance(r.rounds, int) or isinstance(r.rounds, bool) or r.rounds < 1:
        raise SftkitError(f"rounds: {r.rounds!r}: give the number of rounds, 1 or more")
    for name in SECTIONS:
        if not isinstance(getattr(r, name), dict):
            raise SftkitError(f"{name}: give a mapping of option: value (got {getattr(r, name)!r})")
    for name in ("generate", "evaluate", "filter", "prepare"):
        command_options(name, getattr(r, name))
    if "recipe" not in r.train:
        raise SftkitError("train.recipe: name the training recipe used in every round, e.g. recipes/tiny.yaml")
    extra = set(r.train) - {"recipe", "overrides"}
    if extra:
        raise SftkitError(f"train: unknown key(s) {', '.join(sorted(extra))}; train has recipe and overrides")
    _check_train_overrides(r.train.get("overrides") or {})


def _check_train_overrides(overrides) -> None:
    if not isinstance(overrides, dict):
        raise SftkitError("train.overrides: give a mapping of training key: value, e.g. {max_steps: 100}")
    from sftkit.config.parse import canonical

    for key in overrides:
        name = canonical(str(key), "rounds recipe train.overrides")
        if name in TRAIN_RESERVED:
            raise SftkitError(
                f"train.overrides.{key}: `sftkit rounds` sets {name} itself in every round (the round's model, "
                "data and folder); remove it"
            )


def _parser(section: str) -> argparse.ArgumentParser:
    if section in ("generate", "evaluate"):
        from sftkit.evaluation.options import build_parser
    elif section == "filter":
        from sftkit.grading.filter import build_parser
    else:
        from sftkit.data.prepare import build_parser
    return build_parser()


REQUIRED_DUMMIES = {  # the arguments `rounds` fills in, so that the parser accepts the section's options alone
    "generate": ["MODEL", "--problems", "P"],
    "evaluate": ["MODEL", "--problems", "P"],
    "filter": ["--solutions-file", "S", "--metadata-file", "M", "--save-correct", "C.parquet"],
    "prepare": ["--output-dir", "D"],
}


def command_options(section: str, options: dict) -> tuple[list[str], dict[str, Any]]:
    """A section's options -> (argv for the command, {option: value} as the command parsed them, defaults
    included). SftkitError for an unknown, reserved, ill-typed or out-of-range option, with the command's own
    message (ranges.py)."""
    parser = _parser(section)
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    argv: list[str] = []
    for key, value in options.items():
        dest = str(key).replace("-", "_")
        if dest in RESERVED[section]:
            raise SftkitError(f"{section}.{key}: `sftkit rounds` sets this itself (inputs and outputs); remove it")
        if dest not in actions:
            valid = sorted(set(actions) - RESERVED[section])
            raise SftkitError(f"{section}.{key}: no such option of {parser.prog}.{closest(dest, valid)}")
        flag = max(actions[dest].option_strings, key=len)
        if actions[dest].nargs == 0:  # a switch: true gives the flag, false leaves it out
            if not isinstance(value, bool):
                raise SftkitError(f"{section}.{key}: give true or false")
            argv += [flag] if value else []
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        elif value is not None:
            argv += [flag, str(value)]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            namespace = parser.parse_args(REQUIRED_DUMMIES[section] + argv)
    except SystemExit:
        message = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "invalid options"
        raise SftkitError(f"{section}: {message} (options {' '.join(argv)})") from None
    ranges.check(section, namespace, {str(key).replace("-", "_") for key in options})
    parsed = vars(namespace)
    return argv, {k: v for k, v in parsed.items() if k in actions and k not in RESERVED[section]}
