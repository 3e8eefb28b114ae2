"""The README's generated config-key tables (scripts/config_tables.py) are current, so a new or changed option
cannot leave them behind (`train --help`'s text file is checked in tests/test_cli.py)."""

from __future__ import annotations

import importlib.util

from _train_utils import ROOT


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_config_tables_are_current():
    tables = _script("config_tables")
    assert tables.current((ROOT / "README.md").read_text()) == tables.block(), (
        "README config tables are stale: python scripts/config_tables.py --write"
    )
