#!/usr/bin/env bash
# Set up, then the main job on real weights: compress, verify, restore (byte-identical) and
# print ratio and speed for the three reference models (MiniLM fp32 and its bf16 cast, Whisper
# tiny.en fp16); then `bigsmall run` two of them (MiniLM bf16, Whisper tiny.en) fully loaded and
# streamed layer by layer (same output bits, promise kept). Whisper hears a sentence spoken by
# espeak-ng if it is installed (optional), else a generated tone. Models: docs/corpus.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python benchmarks/demo.py "$@"
