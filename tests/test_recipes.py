"""The shipped training recipes (recipes/*.yaml): the contract's set, each resolving as written on the hardware its
first line names, every key applied, and each opening with its hardware and launch command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sftkit.config.plan import plan_run as resolve
from sftkit.verl.keys import SPLIT_KEYS, VERL_KEYS

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p for p in (ROOT / "recipes").glob("*.yaml") if not p.stem.startswith("rounds-"))  # training


# ---- shipped recipes ---------------------------------------------------------------------------------------------
def recipe_world_size(path: Path) -> int:
    """The number of processes the recipe's opening comment names ('4 x 80 GB GPUs', '2 GPUs', '1 GPU', 'CPU')."""
    header = path.read_text().splitlines()[0]
    found = re.search(r"(\d+) x \d+ ?GB GPUs", header) or re.search(r"(\d+) GPUs?\b", header)
    return int(found.group(1)) if found else 1


def test_spec_recipes_are_shipped():
    names = {p.stem for p in RECIPES}
    for model in ("tiny", "qwen0.5b", "qwen1.5b", "llama3b"):
        assert model in names and f"{model}-lora" in names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_shipped_recipe_resolves(path):
    world = recipe_world_size(path)
    r = resolve(str(path), [], environ={}, world_size=world)
    data = yaml.safe_load(path.read_text())
    assert r.model.model_name_or_path == data["model_name_or_path"]
    assert r.data.train_files == data["train_files"]
    if "train_batch_size" in data:  # sized for the hardware it names
        assert r.global_batch == data["train_batch_size"]
    assert bool(r.model.lora_rank) == path.stem.endswith("-lora")
    applied = {VERL_KEYS.get(key, key) for key in data} - set(SPLIT_KEYS)
    assert applied <= set(r.sources)  # every key of the recipe is a known one and was applied
    # and the overrides of its comment apply on top of it
    r = resolve(str(path), ["data.max_length=4096", "optim.lr=1.0e-4", "trainer.logger=console"], {}, world)
    assert (r.train.max_length, r.train.learning_rate, r.train.logger) == (4096, 1e-4, ["console"])


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_opens_with_hardware_and_launch_command(path):
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# Config for ")
    launch = next((line for line in lines if line.startswith("# Launch:")), "")
    assert f"--config recipes/{path.name}" in launch
