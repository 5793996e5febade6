#!/usr/bin/env bash
# The one-call GPU check (benchmarks/gpu/check.py), on the GPU machine the device tool lends.
# That machine has PyTorch, onnxruntime, cuda-bindings, pytest and most of trtsr's dependencies; carry the few
# pure-Python wheels it lacks (diffusers, importlib_metadata, platformdirs, pypng) in .whl (benchmarks/README.md):
#   carry .whl:  bash benchmarks/gpu/check.sh "$OUT"
# TensorRT-RTX is not carried to a GPU it does not list (compute capability 9.0: H100, H200); the check then
# records why its engine probe was skipped. Writes OUT/gpu-check.{json,png,log} and OUT/gpu-tests.log.
set -euo pipefail
out="${1:?usage: benchmarks/gpu/check.sh OUT [--dry-run] [--deadline S]}"
shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
wheels="$here/${WHEELS:-.whl}"  # WHEELS=.whl-video for the --video call (PyAV beside the few the machine lacks)
if [ -d "$wheels" ] && [ "${1:-}" != "--dry-run" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$wheels"/*.whl
fi
export PYTHONPATH="/tmp/site:${here}/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export TRTSR_CACHE_DIR="${TRTSR_CACHE_DIR:-/tmp/trtsr-gpu-check-cache}"  # graphs and engines stay out of OUT
mkdir -p "$out"
cd "$here"
"${PYTHON:-python3}" "$here/benchmarks/gpu/check.py" "$out" "$@" 2>&1 | tee "$out/gpu-check.log"
