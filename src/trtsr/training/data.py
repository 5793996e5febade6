"""Training data: image lists with a fixed held-out split, and the cached sample bank."""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from trtsr.defaults import IMAGE_SUFFIXES
from trtsr.errors import TrtsrError
from trtsr.files import atomic_path
from trtsr.training.degrade import PRESETS, degrade
from trtsr.training.teacher import TEACHER_NAME, RRDBNet, teacher_upscale

BANK_VERSION = 4  # 3: each row draws from its own generator (seed, row); 4: teacher outputs per scale


def list_images(folders: list[str | Path]) -> list[Path]:
    """Every image under the folders (recursively), sorted, so the split is reproducible."""
    if not folders:
        raise TrtsrError("no training data: set 'data' in the config or pass --data FOLDER")
    found: list[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise TrtsrError("training data folder does not exist", path=folder)
        found += [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not found:
        raise TrtsrError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {', '.join(map(str, folders))}")
    return sorted(found)


def split_holdout(images: list[Path], every: int) -> tuple[list[Path], list[Path]]:
    """(train, held_out): every `every`-th image (0-based index % every == every - 1) is held out."""
    if every <= 0:
        return list(images), []
    held = [p for i, p in enumerate(images) if i % every == every - 1]
    train = [p for i, p in enumerate(images) if i % every != every - 1]
    return train, held


def load_rgb(path: Path) -> torch.Tensor:
    """(3,H,W) float in [0,1]; 8-bit RGB regardless of the file's mode."""
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise TrtsrError(f"cannot read training image ({exc})", path=path) from None
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def teacher_target(teacher: RRDBNet, lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Teacher output for (3,h,w) LR in [0,1] at the HR size (the x4 teacher is resized for x2/x3)."""
    device = next(teacher.parameters()).device
    out = teacher_upscale(teacher, lr[None].to(device))[0].cpu()
    if tuple(out.shape[-2:]) != tuple(size):
        out = F.interpolate(out[None], size=size, mode="bicubic", antialias=True)[0].clamp(0.0, 1.0)
    return out


def bank_key(images: list[Path], crop: int, scale: int | tuple[int, ...], size: int, seed: int, bicubic_prob: float,
             *, degradation: str = "real-esrgan", teacher_scales: tuple[int, ...] = ()) -> str:
    scales = [scale] if isinstance(scale, int) else list(scale)
    desc = json.dumps({"v": BANK_VERSION, "teacher": TEACHER_NAME if teacher_scales else None,
                       "teacher_scales": list(teacher_scales), "crop": crop,
                       "scales": scales, "size": size, "seed": seed, "bicubic_prob": bicubic_prob,
                       "degradation": degradation,
                       "images": [f"{p.name}:{p.stat().st_size}" for p in images]}, sort_keys=True)
    return hashlib.sha256(desc.encode()).hexdigest()[:16]


def lr_key(scale: int) -> str:
    """The bank entry holding the LR inputs at `scale`."""
    return f"lr_x{scale}"


def teacher_key(scale: int) -> str:
    """The bank entry holding the teacher's output for the LR inputs at `scale` (at the HR size)."""
    return f"teacher_x{scale}"


def _bank_rows(pictures: list[torch.Tensor], indices: range, *, crop: int, scales: tuple[int, ...], seed: int,
               settings, teacher: RRDBNet | None, teacher_scales: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    """The bank's rows `indices` as uint8 arrays. Row i draws from its own generator (seed, i), so a bank is the same
    whichever process makes which row."""
    n = len(indices)
    rows = {"hr": np.empty((n, 3, crop, crop), np.uint8)}
    for s in scales:
        rows[lr_key(s)] = np.empty((n, 3, crop // s, crop // s), np.uint8)
    teacher_scales = teacher_scales if teacher is not None else ()
    for s in teacher_scales:
        rows[teacher_key(s)] = np.empty((n, 3, crop, crop), np.uint8)
    to_u8 = lambda t: (t * 255.0).round().clamp(0, 255).to(torch.uint8)  # noqa: E731
    for j, i in enumerate(indices):
        rng = np.random.default_rng([seed, i])
        img = pictures[i % len(pictures)]
        h, w = img.shape[-2:]
        y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        hr = img[:, y:y + crop, x:x + crop]
        rows["hr"][j] = to_u8(hr).numpy()
        for s in scales:
            lr = to_u8(degrade(hr, s, rng, settings))  # the network sees 8-bit input
            rows[lr_key(s)][j] = lr.numpy()
            if s in teacher_scales:  # computed once per crop and scale, kept in the bank
                rows[teacher_key(s)][j] = to_u8(teacher_target(teacher, lr.float() / 255.0, (crop, crop))).numpy()
    return rows


_WORKER: dict = {}


def _worker_start(paths: list[str], crop: int, degradation: str, bicubic_prob: float) -> None:
    torch.set_num_threads(1)
    pictures = [load_rgb(Path(p)) for p in paths]
    _WORKER.update(pictures=[img for img in pictures if min(img.shape[-2:]) >= crop],
                   settings=PRESETS[degradation](bicubic_prob=bicubic_prob))


def _worker_rows(indices: range, crop: int, scales: tuple[int, ...], seed: int) -> dict[str, np.ndarray]:
    return _bank_rows(_WORKER["pictures"], indices, crop=crop, scales=scales, seed=seed,
                      settings=_WORKER["settings"], teacher=None)


def bank_workers(requested: int, size: int) -> int:
    """Processes that make a bank of `size` rows: `requested` (0: one per CPU core), at most one per 128 rows, since
    each starts by importing torch and reading every image."""
    wanted = requested if requested > 0 else (os.cpu_count() or 1)
    return max(1, min(wanted, size // 128))


def build_bank(images: list[Path], *, crop: int, scale: int | tuple[int, ...], size: int, seed: int,
               teacher: RRDBNet | None, bicubic_prob: float = 0.3, degradation: str = "real-esrgan",
               progress: Callable[[int, int], None] | None = None, workers: int = 1,
               teacher_scales: tuple[int, ...] | None = None) -> dict[str, torch.Tensor]:
    """`size` samples: random HR crops, their degraded LR at each scale and (with a teacher) its output, all uint8.

    Images are visited round-robin so every image contributes; a side shorter than
    `crop` is skipped. Each crop is degraded once per scale, independently. Returns
    {"hr": (N,3,c,c), "lr_x<s>": (N,3,c/s,c/s) per scale, "teacher_x<s>": (N,3,c,c)}: the teacher's output for
    the inputs at each of `teacher_scales` (default: the first scale), only when a teacher is given. Without a
    teacher, `workers` > 1 processes make the rows; the bank is the same for any number of them.
    """
    scales = (scale,) if isinstance(scale, int) else tuple(scale)
    if teacher_scales is None:
        teacher_scales = scales[:1]
    if not set(teacher_scales) <= set(scales):
        raise ValueError(f"teacher outputs asked at {list(teacher_scales)}, but the bank's scales are {list(scales)}")
    settings = PRESETS[degradation](bicubic_prob=bicubic_prob)
    pictures = [load_rgb(p) for p in images]  # every image read here first: an unreadable one is named at once
    usable = [img for img in pictures if min(img.shape[-2:]) >= crop]
    if not usable:
        raise TrtsrError(f"no training image is at least {crop}x{crop}; lower 'crop'")
    workers = 1 if teacher is not None else max(1, min(workers, size))
    chunk = max(1, min(64, -(-size // (4 * workers))))
    chunks = [range(start, min(start + chunk, size)) for start in range(0, size, chunk)]
    parts: list[dict[str, np.ndarray]] = []
    with contextlib.ExitStack() as stack:
        if workers == 1:
            made = (_bank_rows(usable, part, crop=crop, scales=scales, seed=seed, settings=settings, teacher=teacher,
                               teacher_scales=teacher_scales) for part in chunks)
        else:
            del pictures, usable
            context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch's threads
            pool = stack.enter_context(ProcessPoolExecutor(
                workers, mp_context=context, initializer=_worker_start,
                initargs=([str(p) for p in images], crop, degradation, bicubic_prob)))
            made = pool.map(_worker_rows, chunks, *[[v] * len(chunks) for v in (crop, scales, seed)])
        for rows in made:
            parts.append(rows)
            if progress is not None:
                progress(min(len(parts) * chunk, size), size)
    return {key: torch.from_numpy(np.concatenate([p[key] for p in parts])) for key in parts[0]}


def cached_bank(path: Path, **kwargs) -> dict[str, torch.Tensor]:
    """Load the bank from `path`, or build and save it there atomically."""
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # a truncated or foreign file: rebuild it
            path.unlink()
    bank = build_bank(**kwargs)
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(bank, tmp)
    return bank


def augment(batch: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """The same random flip and 90-degree turn applied to every tensor (N,3,H,W) in the list."""
    turns = int(torch.randint(0, 4, (1,), generator=generator))
    flip = bool(torch.randint(0, 2, (1,), generator=generator))
    out = []
    for t in batch:
        t = torch.rot90(t, turns, dims=(-2, -1))
        out.append(t.flip(-1) if flip else t)
    return out


