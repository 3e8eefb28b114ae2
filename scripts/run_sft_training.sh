#!/usr/bin/env bash
# Seed-compatible full fine-tuning launcher: same environment variables and key=value overrides as the seed's
# scripts/run_sft_training.sh (see `bash scripts/run_sft_training.sh --help`), running sftkit's trainer.
#   NPROC_PER_NODE=1 MODEL_NAME=Qwen/Qwen2.5-1.5B-Instruct TRAIN_FILE=data/sft/train.parquet \
#   VAL_FILE=data/sft/val.parquet OUTPUT_DIR=./checkpoints/sft_qwen_1.5b bash scripts/run_sft_training.sh trainer.logger=console
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$( [ -x "$here/.venv/bin/python" ] && echo "$here/.venv/bin/python" || echo python3 )}"
exec "$python" -m sftkit.verl.shims full "$@"
