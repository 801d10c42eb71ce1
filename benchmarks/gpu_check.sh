#!/usr/bin/env bash
# The prepared GPU check, for a bare copy of this checkout (nothing installed): a smoke launch of
# every kernel, the kernel correctness suites on CUDA, the user's GPU path at the released size,
# then the benchmark suites, in under 8 minutes by default (BUDGET_SECONDS, 420). Results go to
# OUT_DIR as they come (one .jsonl per stage, gpu_check.json after each stage); a short table last.
# Needs only what the lent GPU's image has (.ci/gpu-image-bare.txt lists what mmfast uses of it).
#   bash benchmarks/gpu_check.sh OUT_DIR [BUDGET_SECONDS]
set -uo pipefail
cd "$(dirname "$0")/.."
exec python3 benchmarks/gpu_check.py "$@"
