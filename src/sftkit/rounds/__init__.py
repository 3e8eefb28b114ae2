"""`sftkit rounds`: the bootstrapping loop (generate -> grade -> curate + split -> fine-tune -> evaluate, N rounds)
as one resumable command.

- `recipe.py`: the rounds recipe (YAML + `key=value` overrides) -> `RoundsRecipe`, checked before any work; the
  options of each stage's command (`sftkit eval`, `filter`, `prepare`) are passed through and parsed by that
  command's own parser, and its values checked by the command's own checks (`ranges.py`).
- `plan.py`: what each stage of each round depends on (settings, upstream stages, the content of the input files):
  the fingerprint that decides whether a finished stage is still valid.
- `stages.py`: a stage's folder, written as `NAME.partial/` and published by rename with its `stage.json`.
- `steps.py`: the five stages of a round, each the existing command (in this process; training in a child
  process, `launch.py`, so that its exit code 75 passes through and its memory is freed).
- `report.py`: `rounds.jsonl` (one line per finished round) and `rounds.png`.
- `command.py`: `main(argv)`.
"""
