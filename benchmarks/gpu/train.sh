#!/usr/bin/env bash
# The default model's training visit on the GPU machine: a fixed wall-clock budget in bf16, checkpoints (split into
# files of at most 16 MB by checkpoint_parts.py, joined back before a resume) and the log written to OUT; a visit starts from the weights .gpu-train/resume brings (the last
# visit's model.safetensors, fresh optimiser), or resumes exactly from OUT/run/checkpoint.pt where that exists.
#   python benchmarks/gpu/train_prep.py -d ../shared/data/train [--resume runs/detail]   # here, first
#   carry .gpu-train:  bash benchmarks/gpu/train.sh "$OUT" [MINUTES]                    # there (default 9)
# The same script runs on a CPU (DEVICE=cpu), in the background, where no GPU is lent:
#   DEVICE=cpu nohup bash benchmarks/gpu/train.sh runs/detail 60 > runs/detail.log 2>&1 &
# COMPILE=reduce-overhead (or default) compiles the step; `check.sh OUT --train-speed` measures which mode is fastest.
# On CUDA a step takes a larger batch from a larger bank (BATCH, BANK_SIZE; the bank is made by one process per
# core) and checkpoints less often. RUN_DIR keeps the run (the resumable checkpoint is ~60 MB) outside OUT, where a
# visit's files must come back: OUT then gets the EMA model, its config and the log.
set -euo pipefail
out="${1:?usage: benchmarks/gpu/train.sh OUT [MINUTES]}"
minutes="${2:-9}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
carry="$here/.gpu-train"
[ -d "$carry/data" ] || { echo "no $carry/data: run benchmarks/gpu/train_prep.py first" >&2; exit 2; }
if [ -d "$carry/whl" ] && ! python3 -c "import diffusers, platformdirs, png" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$carry"/whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="${here}/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
mkdir -p "$out"
run="${RUN_DIR:-$out/run}"
resume=()
recipe="${CONFIG:-detail}"  # a config in src/trtsr/training/configs: detail (fine-tunes the shipped weights), distill
init=""
[ "$recipe" = detail ] && init="default"
if [ -f "$run/checkpoint.pt" ]; then
  python3 "$here/benchmarks/gpu/checkpoint_parts.py" join "$run/checkpoint.pt"
  resume=(--resume)
fi
[ -f "$carry/resume/model.safetensors" ] && init="$carry/resume/model.safetensors"
config="$out/$recipe-${DEVICE:-cuda}.toml"
{
  # the photos are the training split already (train_prep.py kept the held-out ones back): hold none out again
  if [ "${DEVICE:-cuda}" = cuda ]; then
    gpu=(-e "s|^batch = .*|batch = ${BATCH:-64}|" -e "s|^bank_size = .*|bank_size = ${BANK_SIZE:-16000}|"
         -e "s|^checkpoint_every = .*|checkpoint_every = 2000|" -e "s|^log_every = .*|log_every = 100|")
  else
    gpu=()
  fi
  keep=()
  [ -n "$init" ] && keep=(-e "s|^init = .*|init = \"$init\"|")  # else the recipe's own init (a preset)
  sed "${keep[@]}" -e "s|^holdout_every = .*|holdout_every = 0|" "${gpu[@]}" \
    "$here/src/trtsr/training/configs/$recipe.toml"
  echo "teacher_weights = \"$carry/teacher-trunk.safetensors\""
  echo "bank_dir = \"${BANK_DIR:-/tmp/trtsr-bank}\""  # the sample bank (hundreds of MB) stays out of OUT
  echo "device = \"${DEVICE:-cuda}\""
  echo "compile = \"${COMPILE:-}\""  # torch.compile mode for the step (e.g. reduce-overhead); empty: eager
} > "$config"
{
  date -u +"start %Y-%m-%dT%H:%M:%SZ"
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))"
  python3 -m trtsr train -c "$config" -d "$carry/data" -o "$run" --minutes "$minutes" "${resume[@]}"
  date -u +"end %Y-%m-%dT%H:%M:%SZ"
} 2>&1 | tee -a "$out/train.log"
[ -f "$run/checkpoint.pt" ] && python3 "$here/benchmarks/gpu/checkpoint_parts.py" split "$run/checkpoint.pt"
ls -l "$run" | tee -a "$out/train.log"
if [ "$run" != "$out/run" ]; then
  mkdir -p "$out/run" && cp "$run/model.safetensors" "$run/config.json" "$out/run/"
fi
