#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite: unit, real-model and property tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -c "import bigsmall.native as n; print('decode kernels:', n.status())"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
# the full suite also runs the torch-layer tests on transformers 4.x (a thin second venv)
if [ $# -eq 0 ] && [ "${BIGSMALL_SKIP_TF4:-0}" != 1 ]; then
  bash scripts/test_tf4.sh
fi
# the numba reference kernels (what runs without a C compiler) on a slice of the suite
if [ $# -eq 0 ]; then
  BIGSMALL_NATIVE=0 .venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/test_roundtrip.py property_tests/test_codec_roundtrip.py
fi
