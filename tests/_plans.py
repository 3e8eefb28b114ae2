"""`run(*overrides)`: a run plan from overrides with the two required settings and no environment from the test
machine (tests of config/parse.py, plan.py and the CLI's options)."""

from __future__ import annotations

from sftkit.config.parse import canonical
from sftkit.config.plan import RunPlan
from sftkit.config.plan import plan_run as resolve

BASE = ["model_name_or_path=some/model", "train_files=[train.parquet]"]  # the two settings resolve requires


def run(*overrides: str, environ: dict | None = None, world_size: int | None = None, recipe=None) -> RunPlan:
    """resolve() with the required settings, no environment from the test machine."""
    recipe = str(recipe) if recipe is not None else None
    base = BASE if recipe is None else []
    given = {canonical(o.lstrip("-").partition("=")[0], "test") for o in overrides if "=" in o or o[:2] == "--"}
    base = [b for b in base if canonical(b.partition("=")[0], "test") not in given]  # a key set twice is an error
    return resolve(recipe, [*base, *overrides], environ=environ or {}, world_size=world_size)
