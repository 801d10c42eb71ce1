#!/usr/bin/env bash
# The prepared GPU check: kernel correctness tests on CUDA, then the benchmark suites, in about
# 7 minutes; one JSON into OUT_DIR and a short table last. Needs only what the lent H200 image has
# (torch, triton, pytest, pytest-benchmark, hypothesis, safetensors, einops, nvidia-ml-py).
#   bash benchmarks/gpu_check.sh OUT_DIR [BUDGET_SECONDS]
set -uo pipefail
cd "$(dirname "$0")/.."
exec python3 benchmarks/gpu_check.py "$@"
