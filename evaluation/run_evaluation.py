#!/usr/bin/env python3
r"""The seed's `evaluation/run_evaluation.py`, now a thin wrapper over `sftkit filter` (same arguments).

    python evaluation/run_evaluation.py --solutions-file outputs/*.jsonl \
        --metadata-file data/metadata.jsonl --save-correct data/sft/correct_solutions.parquet

Grades every solution against the metadata answers with math-verify, prints accuracy and writes the correct
solutions to Parquet. See `sftkit filter --help` for every option. An existing output is replaced only with
`--overwrite` (the seed replaced it silently); an input file, never.
"""

import sys
from pathlib import Path

try:
    from sftkit.grading.filter import main
except ImportError:  # a checkout without `pip install -e .`: use its src/ folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from sftkit.grading.filter import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
