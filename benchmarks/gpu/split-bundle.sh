#!/usr/bin/env bash
# The GPU machine takes at most 64 MiB per call, working tree included. trtsr's tracked files are about
# 37 MB (the shipped default model is 27 MB), which leaves too little room for ../shared/gpu/make-bundle's
# .gpu/a (33 MB) and .gpu/b (35 MB). This re-cuts the same bundle into three carries of at most 25 MB:
#   .gpu/p1, .gpu/p2: parts of the xz-compressed TensorRT-RTX library, stashed in /root/gpu-stage;
#   .gpu/p3: the last part, the ONNX parser, the wheels (with pytest, for `pytest -m gpu`) and install.sh.
# Run from the project root after make-bundle (which fills its cache); then, each call right after the last:
#   carry .gpu/p1:  mkdir -p /root/gpu-stage && cp .gpu/p1/* /root/gpu-stage/ && nvidia-smi -L
#   carry .gpu/p2:  cp .gpu/p2/* /root/gpu-stage/
#   carry .gpu/p3:  bash .gpu/p3/install.sh && bash benchmarks/gpu/check.sh "$OUT"
set -euo pipefail
version="${RTX_VERSION:-1.7.1.116}"
cache="$HOME/.cache/trtsr-gpu-bundle/$version"
[ -f "$cache/libtensorrt_rtx.so.1.xz" ] && [ -d .gpu/b ] || {
  echo "run first: EXTRA_WHEELS=\"filelock platformdirs rich pypng\" ../shared/gpu/make-bundle" >&2; exit 2; }
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$cache/wheels" \
  pytest pluggy iniconfig packaging
rm -rf .gpu/p1 .gpu/p2 .gpu/p3
mkdir -p .gpu/p1 .gpu/p2 .gpu/p3
split -b 24M -d -a 2 "$cache/libtensorrt_rtx.so.1.xz" .gpu/p1/rtx.xz.part
[ -f .gpu/p1/rtx.xz.part02 ] && [ ! -f .gpu/p1/rtx.xz.part03 ] || { echo "expected three parts of 24 MB" >&2; exit 3; }
mv .gpu/p1/rtx.xz.part01 .gpu/p2/
mv .gpu/p1/rtx.xz.part02 .gpu/p3/
for file in .gpu/b/*; do
  case "$file" in *rtx.xz.part*) ;; *) cp "$file" .gpu/p3/ ;; esac
done
for wheel in pytest pluggy iniconfig packaging; do cp "$cache"/wheels/"$wheel"-*.whl .gpu/p3/; done
cat .gpu/p1/rtx.xz.part* .gpu/p2/rtx.xz.part* .gpu/p3/rtx.xz.part* | xz -t
du -sh .gpu/p1 .gpu/p2 .gpu/p3
