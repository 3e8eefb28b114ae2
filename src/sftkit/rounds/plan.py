"""What each stage of each round is made from: its `settings`, compared with a finished stage's to decide whether the
stage is still valid (rerun: skipped) or the recipe changed under it (refused, with the differences).

A stage's settings are the options of its command as that command parsed them (defaults included: writing a
default out changes nothing), the content of its input files (problems, gold answers, training recipe, the files
of `prepare.mix` and `prepare.decontaminate` as their globs expand now: moving a file changes nothing, editing it
does), the base model's folder (file names and sizes, config.json), and the fingerprints of the stages it reads
(`input.*`). Machine settings that do not change results (batch size of
generation, backend, grading workers, the accelerate config) are left out, so a run may continue on another machine.
A key is written only where it matters: `train_on` from round 2, `on_empty` in a round that had no correct
solution, `init` as the model the round actually starts from (round 1 starts from the base model either way).
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

from sftkit.errors import SftkitError
from sftkit.rounds import recipe as recipes
from sftkit.rounds.stages import INPUT, Stage, fingerprint

STAGES = ("generate", "grade", "data", "train", "eval")
MACHINE = {"batch_size", "backend", "workers"}  # options that change speed, not results


def content(path: str, key: str) -> str:
    from sftkit.data.fingerprint import files_digest

    p = Path(path)
    if not p.is_file():
        raise SftkitError(f"{key}: {path} is not a file; give the path of the {key.replace('_', ' ')}")
    return "content " + files_digest([p])[:16]


def files_content(patterns: list[str], skip_reports: bool = False) -> str:
    """The content of the files that `patterns` (files, globs, folders) name, expanded as `sftkit prepare` expands
    them (`skip_reports`: as it expands a --mix source, without the prepare_report.json a folder or glob finds)."""
    from sftkit.data.fingerprint import files_digest
    from sftkit.data.prepare import REPORT, SUFFIXES
    from sftkit.data.rows import RowReport, expand_inputs

    files = expand_inputs(patterns, RowReport(), SUFFIXES)
    files = [f for f in files if not (skip_reports and f.name == REPORT and str(f) not in patterns)]
    if not files:
        return "no file"
    return f"content {files_digest(files)[:16]} ({len(files)} file{'s' if len(files) > 1 else ''})"


def model_identity(path: str) -> str:
    """A local folder: its files' names and sizes and its config.json (cheap, unlike hashing the weights); a hub
    id: the id."""
    p = Path(path)
    if not p.is_dir():
        return f"hub id {path}"
    h = hashlib.blake2b(digest_size=8)
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        h.update(f"{f.relative_to(p)}:{f.stat().st_size}\n".encode())
    if (p / "config.json").is_file():
        h.update((p / "config.json").read_bytes())
    return f"folder {h.hexdigest()}"


def train_recipe_path(path: str) -> Path:
    from sftkit import resources

    p = Path(path)
    if p.is_file():
        return p
    shipped = resources.shipped_recipe(path)
    if shipped is None:
        raise SftkitError(f"train.recipe: {path} not found; give a training recipe, e.g. recipes/tiny.yaml")
    return shipped


class Plan:
    """The stages of a run in order, and the settings of each (`records` holds the finished ones' records, which
    the settings of later stages read: whether a round had correct solutions)."""

    def __init__(self, recipe: recipes.RoundsRecipe):
        self.recipe = recipe
        self.out = Path(recipe.output_dir)
        self.records: dict[tuple[int, str], dict] = {}
        self.options = {
            name: recipes.command_options(name, getattr(recipe, name))
            for name in ("generate", "evaluate", "filter", "prepare")
        }
        self._cache: dict[tuple[int, str], dict] = {}

    def stages(self) -> list[Stage]:
        first = [Stage(0, "eval", self.out)] if self.recipe.eval_base else []
        return first + [Stage(r, name, self.out) for r in range(1, self.recipe.rounds + 1) for name in STAGES]

    def record(self, r: int, name: str) -> dict | None:
        return self.records.get((r, name))

    # ---- inputs, checked once ------------------------------------------------------------------------------
    @cached_property
    def files(self) -> dict[str, str]:
        rc = self.recipe
        return {
            "problems": content(rc.problems, "problems"),
            "metadata": content(rc.metadata_file, "metadata_file"),
            "eval_problems": content(rc.eval_problems, "eval_problems"),
            "eval_metadata": content(rc.eval_metadata, "eval_metadata_file"),
            "train.recipe": content(str(train_recipe_path(rc.train_recipe)), "train.recipe"),
        }

    @cached_property
    def curation_files(self) -> dict[str, object]:
        """The content of the files that `prepare.mix` (one per source) and `prepare.decontaminate` name: data
        stages made from other content are out of date, as with `problems`."""
        prepare = self.options["prepare"][1]
        out: dict[str, object] = {}
        if prepare.get("mix"):
            out["prepare.mix content"] = [files_content([spec.rpartition(":")[0]], True) for spec in prepare["mix"]]
        if prepare.get("decontaminate"):
            from sftkit.data.decontaminate import eval_files
            from sftkit.data.prepare_options import SUFFIXES

            try:  # a missing eval file: an error now, not after the first round's generation
                eval_files(prepare["decontaminate"], SUFFIXES)
            except SftkitError as exc:
                raise SftkitError(f"prepare: {exc}") from None
            out["prepare.decontaminate content"] = files_content(list(prepare["decontaminate"]))
        return out

    @cached_property
    def base_model(self) -> str:
        return "base model " + model_identity(self.recipe.model)

    @cached_property
    def lora(self) -> bool:
        """The training recipe trains LoRA adapters (then `init: previous` starts from the merged model)."""
        from sftkit.config.parse import canonical, load_recipe

        values = {k: v for k, (v, _) in load_recipe(str(train_recipe_path(self.recipe.train_recipe))).items()}
        values.update({canonical(str(k), "train.overrides"): v for k, v in self.recipe.train_overrides.items()})
        return bool(values.get("lora_rank") or 0)

    def seed(self, r: int) -> int:
        return int(self.options["generate"][1]["seed"]) + r - 1

    def _options(self, section: str) -> dict:
        return {f"{section}.{k}": v for k, v in self.options[section][1].items() if k not in MACHINE}

    # ---- settings ------------------------------------------------------------------------------------------
    def fingerprint(self, r: int, name: str) -> str:
        return f"round_{r}/{name} {fingerprint(self.settings(Stage(r, name, self.out)))}"

    def upstream(self, stage: Stage) -> list[tuple[int, str]]:
        r, name = stage.round, stage.name
        if name == "generate":
            return [(r - 1, "train")] if r > 1 else []
        if name == "grade":
            return [(r, "generate")]
        if name == "data":
            return [(k, "grade") for k in range(1, r + 1)]
        if name == "train":
            return [(r, "data")] + ([(r - 1, "train")] if self.recipe.init == "previous" and r > 1 else [])
        return [(r, "train")] if r > 0 else []

    def settings(self, stage: Stage) -> dict:
        key = (stage.round, stage.name)
        if key in self._cache:
            return self._cache[key]
        settings = self._settings(stage)
        if stage.name != "data" or self.record(stage.round, "grade") is not None:  # on_empty is known from then on
            self._cache[key] = settings
        return settings

    def _settings(self, stage: Stage) -> dict:
        r, name, f = stage.round, stage.name, self.files
        inputs = {
            f"{INPUT}{n}" + (f".round_{k}" if n == "grade" else ""): self.fingerprint(k, n)
            for k, n in self.upstream(stage)
        }
        if name == "generate":
            model = self.base_model if r == 1 else f"round_{r - 1}/train/global_step_final"
            own = {**self._options("generate"), "generate.seed": self.seed(r)}
            return {"model": model, "problems": f["problems"], "metadata": f["metadata"], **own, **inputs}
        if name == "grade":
            return {"metadata": f["metadata"], **self._options("filter"), **inputs}
        if name == "data":
            out = {**self._options("prepare"), **self.curation_files, **inputs}
            if r > 1:
                out["train_on"] = self.recipe.train_on
            grade = self.record(r, "grade")
            if grade is not None and not grade["result"]["correct"]:
                out["on_empty"] = self.recipe.on_empty
            return out
        if name == "train":
            overrides = {f"train.overrides.{k}": v for k, v in self.recipe.train_overrides.items()}
            init = f"round_{r - 1}/train" + (" (merged)" if self.lora else "") if len(inputs) > 1 else self.base_model
            return {"init": init, "train.recipe": f["train.recipe"], **overrides, **inputs}
        model = {"model": self.base_model} if r == 0 else {}
        return {
            **model,
            "eval_problems": f["eval_problems"],
            "eval_metadata": f["eval_metadata"],
            **self._options("evaluate"),
            **inputs,
        }

    # ---- paths ---------------------------------------------------------------------------------------------
    def folder(self, r: int, name: str) -> Path:
        return Stage(r, name, self.out).folder

    def generating_model(self, r: int) -> str:
        return self.recipe.model if r <= 1 else str(self.folder(r - 1, "train") / "global_step_final")

    def init_model(self, r: int) -> str:
        if self.recipe.init == "base" or r == 1:
            return self.recipe.model
        export = self.folder(r - 1, "train") / "global_step_final" / "huggingface"
        return str(export / "merged" if self.lora else export)
