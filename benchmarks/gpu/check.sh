#!/usr/bin/env bash
# The one-call GPU check, on the GPU machine ../shared/gpu/README.md describes (device tool).
# Make the bundle with trtsr's pure-Python dependencies the machine lacks, then cut it into three carries
# (trtsr's own tree leaves too little of the 64 MiB a call may take for the two-part bundle):
#   EXTRA_WHEELS="filelock platformdirs rich pypng" ../shared/gpu/make-bundle
#   bash benchmarks/gpu/split-bundle.sh
#   1. carry .gpu/p1:  mkdir -p /root/gpu-stage && cp .gpu/p1/* /root/gpu-stage/ && nvidia-smi -L
#   2. carry .gpu/p2:  cp .gpu/p2/* /root/gpu-stage/
#   3. carry .gpu/p3:  bash .gpu/p3/install.sh && timeout -s INT 560 bash benchmarks/gpu/check.sh "$OUT"
# Writes OUT/gpu-check.json (after every stage) and OUT/gpu-check.png; commit them to benchmarks/results/ with
# the GPU named. About 8 minutes at most (--deadline bounds the whole check, --budget the latency stages).
set -euo pipefail
out="${1:?usage: benchmarks/gpu/check.sh OUT [--dry-run]}"
shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PYTHONPATH="/tmp/site:${here}/src${PYTHONPATH:+:$PYTHONPATH}"
export TRTSR_CACHE_DIR="${TRTSR_CACHE_DIR:-/tmp/trtsr-gpu-check-cache}"  # engines and graphs stay out of OUT
mkdir -p "$out"
"${PYTHON:-python3}" "$here/benchmarks/gpu/check.py" "$out" "$@" 2>&1 | tee "$out/gpu-check.log"
