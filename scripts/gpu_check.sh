#!/usr/bin/env bash
# GPU validation in one go (< 8 minutes on one H100/H200): see scripts/gpu_check.py for what it checks.
#   bash scripts/gpu_check.sh            # on a GPU machine
#   bash scripts/gpu_check.sh --cpu      # dry run of the same code paths on CPU
# Packages the GPU machine lacks (trl, datasets, math-verify, liger-kernel, ...) install from wheels carried in
# .whl/ beside the repo, with no network: `pip download --no-deps -d .whl NAME==VERSION` on a machine with network.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}
fi
py=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$py" scripts/gpu_check.py "$@"
