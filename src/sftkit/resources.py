"""Files shipped inside the package: the recipes and the accelerate configs (`recipes/` and `accelerate_configs/`
at the repository root link to them), found through importlib.resources so that an installed, non-editable sftkit
finds them too — never by counting parent folders from a source file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _folder(name: str) -> Path:
    # a wheel installs the package as plain files, so the resource is a real path (accelerate needs one)
    return Path(str(resources.files("sftkit") / name))


def recipes() -> Path:
    return _folder("recipes")


def accelerate_configs() -> Path:
    return _folder("accelerate_configs")


def accelerate_config(name: str) -> Path:
    return accelerate_configs() / f"{name}.yaml"


def shipped_recipe(path: str) -> Path | None:
    """`recipes/NAME.yaml` (or `NAME.yaml`, `NAME`) given where no such file exists: the shipped recipe, if any."""
    p = Path(path)
    if len(p.parts) > 2 or (len(p.parts) == 2 and p.parts[0] != "recipes"):
        return None
    candidate = recipes() / (p.name if p.suffix == ".yaml" else f"{p.name}.yaml")
    return candidate if candidate.is_file() else None
