#!/usr/bin/env bash
# Set up, then the main job on real weights: compress, verify, restore (byte-identical) and
# print ratio and speed, for MiniLM (fp32 and its bf16 cast) and Whisper tiny.en (fp16); then
# `bigsmall run` each model fully loaded and streamed layer by layer (same output bits, promise kept).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python benchmarks/demo.py "$@"
