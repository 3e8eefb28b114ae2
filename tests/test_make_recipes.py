"""`scripts/make_recipes.py`: the shipped real-model recipes are exactly its output (an edit by hand, or a change to
the script without rerunning it, fails here), and each says which script generates it."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "src" / "sftkit" / "recipes"


def test_the_generator_reproduces_the_shipped_recipes_byte_for_byte(tmp_path):
    generator = runpy.run_path(str(ROOT / "scripts" / "make_recipes.py"))
    written = generator["main"](tmp_path)
    assert len(written) == len(generator["RECIPES"]) >= 6
    for path in written:
        assert path.read_bytes() == (SHIPPED / path.name).read_bytes(), f"rerun scripts/make_recipes.py: {path.name}"
    marked = {p.name for p in SHIPPED.glob("*.yaml") if generator["GENERATED"] in p.read_text()}
    assert marked == {p.name for p in written}  # no stale generated recipe, none unmarked
    for path in written:
        lines = path.read_text().splitlines()
        assert lines[0].startswith("# Config for ") and lines[1] == generator["GENERATED"]
