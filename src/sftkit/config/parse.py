"""Recipe YAML -> environment variables -> overrides, into one validated config (SPEC §2).

Precedence, lowest to highest: recipe, the seed's environment variables that are set, command-line flags and
overrides. Overrides come as `--learning_rate 1e-5`, `--learning_rate=1e-5`, `learning_rate=1e-5` or verl's
`optim.lr=1e-5`. An unknown key is an error naming the key, where it came from, and the closest valid keys.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sftkit.config.fields import CONFIG_CLASSES, DataArguments, ModelArguments, SftkitConfig
from sftkit.errors import SftkitError, closest
from sftkit.verl.keys import ENV_VARS, IGNORED_KEYS, SPLIT_KEYS, VALUE_ALIASES, VERL_KEYS

LIST_FIELDS = {"train_files", "val_files", "target_modules", "logger", "report_to"}


@dataclass
class Resolved:
    model: ModelArguments
    data: DataArguments
    train: SftkitConfig
    world_size: int
    sources: dict[str, str] = field(default_factory=dict)  # field -> where its value came from

    @property
    def global_batch(self) -> int:
        return self.train.per_device_train_batch_size * self.world_size * self.train.gradient_accumulation_steps

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration (what is printed at start and saved with every checkpoint)."""
        out: dict[str, Any] = {}
        for part in (self.model, self.data):
            out.update(dataclasses.asdict(part))
        out.update(self.train.to_dict())
        out.update(world_size=self.world_size, global_batch=self.global_batch)
        return out


def field_names() -> set[str]:
    return {f.name for cls in CONFIG_CLASSES for f in dataclasses.fields(cls)}


def canonical(key: str, origin: str) -> str:
    """verl key or field name (dashes allowed) -> field name; unknown keys fail with suggestions."""
    if key in VERL_KEYS:
        return VERL_KEYS[key]
    name = key.replace("-", "_")
    if name in field_names() or name in SPLIT_KEYS or key in IGNORED_KEYS:
        return key if key in IGNORED_KEYS else name
    valid = sorted(field_names() | set(VERL_KEYS) | set(SPLIT_KEYS))
    raise SftkitError(
        f"unknown config key {key!r} ({origin}).{closest(key, valid)} See `sftkit train --help` for every key."
    )


def load_recipe(path: str) -> dict[str, tuple[Any, str]]:
    """YAML recipe -> {field: (value, 'file:line')}; parse errors and unknown keys name the file and line."""
    if not os.path.isfile(path):
        recipes = sorted(p.stem for p in Path("recipes").glob("*.yaml")) if Path("recipes").is_dir() else []
        hint = f" Shipped recipes: {', '.join(recipes)}." if recipes else ""
        raise SftkitError(f"recipe {path!r} not found.{hint}")
    text = Path(path).read_text()
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SftkitError(f"recipe {path} does not parse: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SftkitError(f"recipe {path} must be a flat YAML mapping of key: value")
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value}
    out = {}
    for key, value in data.items():
        where = f"{path}:{lines.get(key, '?')}"
        out[canonical(str(key), f"recipe {where}")] = (value, where)
    return out


def from_env(environ=os.environ) -> dict[str, tuple[Any, str]]:
    return {ENV_VARS[k]: (environ[k], f"env {k}") for k in ENV_VARS if environ.get(k, "") != ""}


def parse_overrides(argv: list[str]) -> dict[str, tuple[Any, str]]:
    """`--key value`, `--key=value`, `key=value` and verl `a.b=value`; bare `--flag` means true."""
    out: dict[str, tuple[Any, str]] = {}
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
        out[canonical(key, f"command line {token!r}")] = (value, "command line")
        i += 1
    return out


NULL = ("null", "none", "~", "")
NULL_MEANS = {"max_steps": -1}  # verl's `trainer.total_training_steps=null`: train by epochs


def to_value(name: str, value: Any) -> Any:
    """Strings from env/CLI into the field's shape: lists from `[a,b]`, `a,b` or several words; null/None."""
    if value is None or (isinstance(value, str) and value.strip().lower() in NULL and name != "report_to"):
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
    if "dtype" in values and str(values["dtype"][0]) != "auto" and "bf16" not in values:
        # Precision is settled when TrainingArguments is built: an explicit dtype becomes bf16 before parsing.
        values["bf16"] = (str(values["dtype"][0]) == "bfloat16", values["dtype"][1])
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


def resolve(recipe: str | None, argv: list[str], environ=os.environ, world_size: int | None = None) -> Resolved:
    """The one entry point: recipe path + override tokens -> validated config with derived batch sizes."""
    values = merge(recipe, argv, environ)
    parser = make_parser()
    check_choices(parser, values)
    parser.set_defaults(**{k: to_value(k, v) for k, (v, _) in values.items()})
    for action in parser._actions:
        action.required = False
    try:
        model, data, train = parser.parse_args_into_dataclasses(args=[])
    except (ValueError, TypeError) as exc:
        raise SftkitError(f"invalid configuration: {exc}") from None
    sources = {k: origin for k, (_, origin) in values.items()}
    world = world_size or int(environ.get("WORLD_SIZE", "1"))
    resolved = Resolved(model, data, train, world, sources)
    validate(resolved)
    return resolved


def validate(r: Resolved) -> None:
    """Checks that need several fields; each error names the keys and the fix."""
    if not r.model.model_name_or_path:
        raise SftkitError("no model: set model_name_or_path in the recipe, MODEL_NAME, or model.partial_pretrain=...")
    if not r.data.train_files:
        raise SftkitError("no training data: set train_files in the recipe, TRAIN_FILE, or data.train_files=...")
    micro = r.train.per_device_train_batch_size
    if micro < 1:
        raise SftkitError(f"data.micro_batch_size_per_gpu (per_device_train_batch_size) must be >= 1, got {micro}")
    if r.data.train_batch_size is not None:
        per_step = micro * r.world_size
        accum, rest = divmod(r.data.train_batch_size, per_step)
        if rest or accum < 1:
            raise SftkitError(
                f"data.train_batch_size={r.data.train_batch_size} is not a multiple of micro batch ({micro}) x "
                f"processes ({r.world_size}) = {per_step}: gradient accumulation would not be a whole number. "
                f"Use a train_batch_size that is a multiple of {per_step}, or change the micro batch."
            )
        r.train.gradient_accumulation_steps = accum
    if r.data.use_dynamic_bsz and not r.data.max_token_len_per_gpu:
        raise SftkitError(
            "data.use_dynamic_bsz=true needs data.max_token_len_per_gpu (tokens per micro-batch, "
            "padding included), e.g. data.max_token_len_per_gpu=16384"
        )
    if r.model.dtype != "auto":  # wins over an accelerate config's mixed_precision (read from the environment)
        r.train.mixed_precision = "bf16" if r.model.dtype == "bfloat16" else "no"
    if r.data.use_remove_padding is None:  # padding-free where the kernel handles variable lengths
        attn = r.model.attn_implementation or ""
        r.data.use_remove_padding = r.model.use_flash_attention or attn.startswith("flash_attention")
    if r.data.val_files is None:
        r.data.val_files = list(r.data.train_files)
    if r.train.ulysses_sequence_parallel_size != 1:
        raise SftkitError(
            "ulysses_sequence_parallel_size > 1 is not supported by sftkit's trainer yet: for long sequences use "
            "FSDP (accelerate_configs/fsdp*.yaml) with activation checkpointing and use_remove_padding=true."
        )
    logger = {name.strip() for name in r.train.logger}
    unknown = logger - {"console", "wandb", "tensorboard", "none"}
    if unknown:
        raise SftkitError(f"trainer.logger: unknown logger(s) {sorted(unknown)}; use console, wandb, tensorboard")
    r.train.report_to = sorted(logger & {"wandb", "tensorboard"}) or "none"
