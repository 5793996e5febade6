#!/usr/bin/env bash
# The one-call GPU check, on the GPU machine ../shared/gpu/README.md describes (device tool, two calls):
#   1. carry .gpu/a:  mkdir -p /root/gpu-stage && cp .gpu/a/* /root/gpu-stage/ && nvidia-smi -L
#   2. carry .gpu/b:  bash .gpu/b/install.sh && bash benchmarks/gpu/check.sh "$OUT"
# Make the bundle with trtsr's pure-Python dependencies the machine lacks:
#   EXTRA_WHEELS="filelock platformdirs rich pypng" ../shared/gpu/make-bundle
# Writes OUT/gpu-check.json and OUT/gpu-check.png (commit them to benchmarks/results/ with the GPU
# named); about 8 minutes at most (--budget bounds the latency stages).
set -euo pipefail
out="${1:?usage: benchmarks/gpu/check.sh OUT [--dry-run]}"
shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PYTHONPATH="/tmp/site:${here}/src${PYTHONPATH:+:$PYTHONPATH}"
export TRTSR_CACHE_DIR="${TRTSR_CACHE_DIR:-/tmp/trtsr-gpu-check-cache}"  # engines and graphs stay out of OUT
mkdir -p "$out"
"${PYTHON:-python3}" "$here/benchmarks/gpu/check.py" "$out" "$@" 2>&1 | tee "$out/gpu-check.log"
