"""Checkpoints through the GPU machine's file limit: split a training checkpoint into parts, join them back.

Files a GPU visit brings back are limited in size, and a resumable training checkpoint (model, EMA,
optimiser, discriminator) is larger. `train.sh` splits `checkpoint.pt` into `checkpoint.pt.partNNN` files
beside a small index at `checkpoint.pt` after a visit, and joins them back before the next one resumes:

    python benchmarks/gpu/checkpoint_parts.py split RUN/checkpoint.pt [--part-mb 16]
    python benchmarks/gpu/checkpoint_parts.py join RUN/checkpoint.pt

Each file is written atomically, the index last, so a reader never sees an index whose parts are not all
there; joining checks the parts' sha256 against the index.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from trtsr.errors import TrtsrError
from trtsr.files import atomic_path

PART_BYTES = 16_000_000
INDEX_FORMAT = "trtsr-checkpoint-parts/1"


def split(path: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """`path` as numbered parts of at most `part_bytes` and an index at `path`; a file that fits is left whole.
    Returns the files that now hold it."""
    blob = path.read_bytes()
    if len(blob) <= part_bytes:
        return [path]
    names = []
    for index, offset in enumerate(range(0, len(blob), part_bytes)):
        part = path.with_name(f"{path.name}.part{index:03d}")
        with atomic_path(part) as tmp:
            tmp.write_bytes(blob[offset:offset + part_bytes])
        names.append(part.name)
    for stale in path.parent.glob(f"{path.name}.part*"):
        if stale.name not in names:
            stale.unlink()
    index = {"format": INDEX_FORMAT, "parts": names, "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(index) + "\n")
    return [*(path.parent / name for name in names), path]


def is_index(path: Path) -> bool:
    try:
        return json.loads(path.read_bytes()[:4096]).get("format") == INDEX_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def join(path: Path) -> Path:
    """The checkpoint whole again at `path` from the index there and its parts (parts removed); a whole
    checkpoint is left as it is."""
    if not is_index(path):
        return path
    index = json.loads(path.read_text())
    blob = b"".join((path.parent / name).read_bytes() for name in index["parts"])
    if hashlib.sha256(blob).hexdigest() != index["sha256"]:
        raise TrtsrError("the checkpoint's parts do not add up to what was saved (a part is missing or changed)",
                         path=path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(blob)
    for name in index["parts"]:
        (path.parent / name).unlink()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("split", "join"))
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--part-mb", type=float, default=PART_BYTES / 1e6)
    args = parser.parse_args()
    if args.action == "split":
        files = split(args.checkpoint, int(args.part_mb * 1e6))
        print(f"{args.checkpoint}: {len(files)} file(s)")
    else:
        join(args.checkpoint)
        print(f"{args.checkpoint}: whole")


if __name__ == "__main__":
    main()
