#!/usr/bin/env python3
"""Seed shim: `python scripts/convert_jsonl_to_parquet.py outputs/*.jsonl --output-dir data/sft` -> `sftkit prepare`.

Same arguments as the seed (`--prompt-key`, `--response-key` too), plus sftkit's (`--split-by`, `--seed`, `--strict`).
Note: the split is now by problem (prompt) by default; `--split-by row` gives the seed's plain row split. An earlier
split in --output-dir is replaced only with `--overwrite` (the seed replaced it silently); an input there, never.
"""

import sys
from pathlib import Path

try:
    from sftkit.data.prepare import main
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from sftkit.data.prepare import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:], prog=sys.argv[0]))
