"""Recipe YAML -> environment variables -> overrides, into typed settings (docs/contracts.md §2). Nothing is derived
here.

Precedence, lowest to highest: recipe, the seed's environment variables that are set, command-line flags and
overrides. Overrides come as `--learning_rate 1e-5`, `--learning_rate=1e-5`, `learning_rate=1e-5` or verl's
`optim.lr=1e-5`. An unknown key is an error naming the key, where it came from, and the closest valid keys. A key
set twice in one recipe is an error naming both lines (YAML would silently keep the last).
The result, `Settings`, holds a typed value for every field and where each set value came from;
`sftkit.config.plan.derive` turns it into the run plan.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sftkit import resources
from sftkit.config.fields import CONFIG_CLASSES, DataArguments, ModelArguments
from sftkit.config.options import ALIASES, refusal
from sftkit.errors import SftkitError, closest
from sftkit.verl.keys import ENV_VARS, IGNORED_KEYS, SPLIT_KEYS, VALUE_ALIASES, VERL_KEYS

LIST_FIELDS = {"train_files", "val_files", "target_modules", "logger", "report_to"}
NULL = ("null", "none", "~", "")
NULL_MEANS = {"max_steps": -1}  # verl's `trainer.total_training_steps=null`: train by epochs


@dataclass(frozen=True)
class Settings:
    """Every field's typed value (defaults included) and, for the values the user set, where they came from."""

    values: dict[str, Any]
    sources: dict[str, str]

    def origin(self, name: str) -> str:
        return self.sources.get(name, "default")


def field_names() -> set[str]:
    return {f.name for cls in CONFIG_CLASSES for f in dataclasses.fields(cls)}


def _sectioned(key: str) -> str | None:
    """`data.cache_dir`, `model.lora_dropout`: any field of DataArguments / ModelArguments under verl's section."""
    section, _, name = key.partition(".")
    cls = {"data": DataArguments, "model": ModelArguments}.get(section)
    if cls is not None and name in {f.name for f in dataclasses.fields(cls)}:
        return name
    return None


def defaults() -> dict[str, Any]:
    """Every field's default value (SftkitConfig's where it redefines one of SFTConfig)."""
    out: dict[str, Any] = {}
    for cls in CONFIG_CLASSES:
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
    return out


def canonical(key: str, origin: str) -> str:
    """verl key or field name (dashes allowed) -> field name; unknown keys fail with suggestions."""
    if key in VERL_KEYS:
        return VERL_KEYS[key]
    if _sectioned(key):
        return _sectioned(key)
    name = key.replace("-", "_")
    if name in field_names() or name in SPLIT_KEYS or key in IGNORED_KEYS:
        return key if key in IGNORED_KEYS else name
    valid = sorted(field_names() | set(VERL_KEYS) | set(SPLIT_KEYS))
    raise SftkitError(
        f"unknown config key {key!r} ({origin}).{closest(key, valid)} See `sftkit train --help` for every key."
    )


def _recipe_path(path: str) -> Path:
    p = Path(path)
    if p.is_dir():
        found = sorted(x.name for x in p.glob("*.yaml"))
        raise SftkitError(
            f"--config {path} is a folder, not a recipe file. Name one of its recipes, e.g. "
            f"--config {p / (found[0] if found else 'tiny.yaml')}" + (f" ({', '.join(found)})" if found else "")
        )
    if not p.is_file():
        shipped = resources.shipped_recipe(path)
        if shipped is not None:  # e.g. `--config recipes/qwen1.5b.yaml` outside the repository
            print(f"note: no recipe {path} here: using the shipped {shipped}")
            return shipped
        names = sorted(x.stem for x in resources.recipes().glob("*.yaml") if not x.stem.startswith("rounds-"))
        raise SftkitError(f"recipe {path!r} not found. Shipped recipes (--config NAME): {', '.join(names)}.")
    return p


def load_recipe(path: str) -> dict[str, tuple[Any, str]]:
    """YAML recipe -> {field: (value, 'file:line')}; parse errors, duplicate and unknown keys name file and line."""
    text = _recipe_path(path).read_text()
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SftkitError(f"recipe {path} does not parse: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SftkitError(f"recipe {path} must be a flat YAML mapping of key: value")
    lines: dict[str, int] = {}
    for key_node, _ in node.value:
        line = key_node.start_mark.line + 1
        if key_node.value in lines:
            raise SftkitError(
                f"recipe {path}: key {key_node.value!r} is set twice (lines {lines[key_node.value]} and {line}); "
                "YAML would silently keep the last. Keep one."
            )
        lines[key_node.value] = line
    out: dict[str, tuple[Any, str]] = {}
    for key, value in data.items():
        where = f"{path}:{lines.get(key, '?')}"
        name = canonical(str(key), f"recipe {where}")
        if name in out and name not in IGNORED_KEYS:
            raise SftkitError(
                f"recipe {path}: {name} is set twice ({out[name][1]} and {where}, e.g. as a verl key and as a "
                "field). Keep one."
            )
        out[name] = (value, where)
    return out


def from_env(environ=os.environ) -> dict[str, tuple[Any, str]]:
    return {ENV_VARS[k]: (environ[k], f"env {k}") for k in ENV_VARS if environ.get(k, "") != ""}


def parse_overrides(argv: list[str]) -> dict[str, tuple[Any, str]]:
    """`--key value`, `--key=value`, `key=value` and verl `a.b=value`; bare `--flag` means true."""
    out: dict[str, tuple[Any, str]] = {}
    tokens: dict[str, str] = {}  # field -> the token that set it (a key given twice is an error, as in a recipe)
    i = 0
    while i < len(argv):
        token = argv[i]
        if token.startswith("--"):
            key, eq, value = token[2:].partition("=")
            if not eq:
                values = []
                while i + 1 < len(argv) and not argv[i + 1].startswith("--") and "=" not in argv[i + 1]:
                    values.append(argv[i + 1])
                    i += 1
                value = values if len(values) > 1 else (values[0] if values else "true")
        elif "=" in token:
            key, _, value = token.partition("=")
        else:
            raise SftkitError(f"cannot read the argument {token!r}: use `key=value` or `--key value`")
        name = canonical(key, f"command line {token!r}")
        if name in tokens and name not in IGNORED_KEYS:
            raise SftkitError(f"{name} is set twice on the command line ({tokens[name]!r} and {token!r}); keep one.")
        out[name], tokens[name] = (value, "command line"), token
        i += 1
    return out


def precedence(origin: str) -> int:
    """Where a value came from, ranked as values override each other: recipe < environment < command line."""
    return 2 if origin.startswith("command line") else 1 if origin.startswith("env ") else 0


def resolve_aliases(values: dict[str, tuple[Any, str]]) -> None:
    """TRL/transformers spellings with an sftkit meaning (config/options.py ALIASES) move to the sftkit field. Set
    under both names, the one from the later source wins (a TRL spelling on the command line overrides the recipe's
    sftkit key); both in the same source is an error."""
    for name, alias in ALIASES.items():
        if name not in values:
            continue
        raw, origin = values.pop(name)
        value = raw
        if alias.values is not None:
            if str(raw) not in alias.values:
                raise SftkitError(f"{name}={raw!r} ({origin}) is not one of: {', '.join(alias.values)}")
            value = alias.values[str(raw)]
        if alias.target in values and str(values[alias.target][0]).lower() != str(value).lower():
            other, where = values[alias.target]
            if precedence(where) > precedence(origin):
                continue
            if precedence(where) == precedence(origin):
                raise SftkitError(
                    f"{name}={raw!r} ({origin}) and {alias.target}={other!r} ({where}) are one setting in sftkit "
                    f"({alias.target}); keep one."
                )
        values[alias.target] = (value, f"{origin}, as {name}")


def to_value(name: str, value: Any) -> Any:
    """Strings from env/CLI into the field's shape: lists from `[a,b]`, `a,b` or several words; null/None."""
    if value is None or (
        isinstance(value, str) and value.strip().lower() in NULL and name not in ("report_to", "logger")
    ):
        return NULL_MEANS.get(name)
    if name in LIST_FIELDS or name in SPLIT_KEYS:
        if isinstance(value, str):
            text = value.strip()
            value = yaml.safe_load(text) if text.startswith("[") else [v for v in text.split(",") if v]
        return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
    if isinstance(value, list):
        return " ".join(map(str, value))
    return value


def make_parser():
    from transformers import HfArgumentParser

    parser = HfArgumentParser(CONFIG_CLASSES, prog="sftkit train")

    def error(message: str):
        raise SftkitError(f"bad config value: {message}")

    parser.error = error
    return parser


def merge(recipe: str | None, argv: list[str], environ=os.environ) -> dict[str, tuple[Any, str]]:
    values = load_recipe(recipe) if recipe else {}
    values.update(from_env(environ))
    values.update(parse_overrides(argv))
    for key in [k for k in values if k in IGNORED_KEYS]:
        print(f"note: {key} is ignored: {IGNORED_KEYS[key]}")
        del values[key]
    for key, targets in SPLIT_KEYS.items():
        if key in values:
            parts, origin = values.pop(key)
            parts = to_value(key, parts)
            if len(parts) != len(targets):
                raise SftkitError(f"{key} ({origin}) needs {len(targets)} values, e.g. [0.9,0.95]; got {parts}")
            values.update({t: (p, origin) for t, p in zip(targets, parts)})
    for key, aliases in VALUE_ALIASES.items():
        if key in values and str(values[key][0]) in aliases:
            values[key] = (aliases[str(values[key][0])], values[key][1])
    resolve_aliases(values)
    return values


def check_choices(parser, values: dict[str, tuple[Any, str]]) -> None:
    """argparse checks `choices` only for command-line strings, never for defaults, and our values arrive as
    defaults: check them here, naming the key, where it came from and the valid values."""
    for action in parser._actions:
        if action.choices is None or action.dest not in values or isinstance(values[action.dest][0], list):
            continue
        value, origin = values[action.dest]
        valid = [str(getattr(c, "value", c)) for c in action.choices]
        if str(value) not in valid:
            raise SftkitError(f"{action.dest}={value!r} ({origin}) is not one of: {', '.join(valid)}")


def _name_the_origin(message: str, values: dict[str, tuple[Any, str]]) -> str:
    """argparse names `--per_device_train_batch_size`; say where the user set it (e.g. `env BATCH_SIZE`)."""
    import re

    for name, (_, origin) in values.items():
        if re.search(rf"--{re.escape(name)}\b", message):
            return f"{message} (set by {origin})"
    return message


def parse(recipe: str | None, argv: list[str], environ=os.environ) -> Settings:
    """Recipe path + override tokens -> typed value of every field, and where the set ones came from."""
    values = merge(recipe, argv, environ)
    parser = make_parser()
    check_choices(parser, values)
    parser.set_defaults(**{k: to_value(k, v) for k, (v, _) in values.items()})
    for action in parser._actions:
        action.required = False
    try:
        namespace, _ = parser.parse_known_args(args=[])
    except SftkitError as exc:
        raise SftkitError(_name_the_origin(str(exc), values)) from None
    typed, default = vars(namespace), defaults()
    for name, (_, origin) in values.items():
        message = refusal(name, typed[name], default.get(name))
        if message:
            raise SftkitError(f"{message} (set by {origin})")
    return Settings(values=typed, sources={k: origin for k, (_, origin) in values.items()})
