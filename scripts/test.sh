#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite: unit, real-model and property tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
