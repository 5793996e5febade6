"""Held-out evaluation of an upscaler against bicubic and the teacher.

Metrics, all on the luma channel (BT.601 Y of 8-bit RGB) with `scale` pixels cut from
each border, averaged over images:

- `psnr_y`: PSNR in dB on the 0-255 scale.
- `ssim_y`: SSIM with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03.
- `detail`: high-frequency energy relative to ground truth, sum((Y - blur_2(Y))^2)
  over the same sum for the ground truth; 1 matches the ground truth's detail,
  bicubic sits well below 1, over-sharpening above.
- `grid`: strength of x8 grid artefacts relative to ground truth. On the power
  spectrum of Y (mean removed), each x8 lattice frequency (k/8, l/8 cycles per
  pixel with k or l odd) is divided by the mean power 2-3 bins beside it; the
  geometric mean of those prominences for the output over that for the ground truth.
  About 1 means no grid beyond what the image itself has; a visible x8 grid
  gives well above 1.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from trtsr.training.degrade import bicubic_down, realistic
from trtsr.training.losses import lattice_log_prominence, lattice_points, power_spectrum

DEGRADATIONS: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "bicubic": bicubic_down,
    "realistic": realistic,  # blur 1.2 + bicubic + noise 5/255 + JPEG 75
}


def to_y(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma on the 0-255 scale of (3,H,W) RGB in [0,1]."""
    r, g, b = rgb[0], rgb[1], rgb[2]
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _gauss_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """SSIM of two (H,W) images on the 0-255 scale (valid-window mean)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    w = _gauss_window()
    x, y = a.double()[None, None], b.double()[None, None]
    mx, my = F.conv2d(x, w), F.conv2d(y, w)
    sxx = F.conv2d(x * x, w) - mx**2
    syy = F.conv2d(y * y, w) - my**2
    sxy = F.conv2d(x * y, w) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(s.mean())


def _blur2(y: torch.Tensor) -> torch.Tensor:
    w = _gauss_window(13, 2.0)
    return F.conv2d(F.pad(y.double()[None, None], (6, 6, 6, 6), mode="reflect"), w)[0, 0]


def high_frequency_energy(y: torch.Tensor) -> float:
    return float(((y.double() - _blur2(y)) ** 2).sum())


def grid_strength(y: torch.Tensor) -> float:
    """Power at the x8 lattice frequencies over the power beside them, for (H, W) with sides multiples of 8.

    An 8x8-periodic pattern puts all its power on the lattice (k H/8, l W/8); the
    points with k or l odd are used (even ones coincide with coarser periods); each
    is divided by the mean of the bins 2 and 3 away along both axes, and the
    geometric mean of those 48 prominences is returned (about 1 for a natural image).
    """
    power = power_spectrum(y, torch.float64, eps=1e-12)
    return float(torch.exp(lattice_log_prominence(power, lattice_points(odd_only=True)).mean()))


@dataclasses.dataclass
class ImageScores:
    psnr_y: float
    ssim_y: float
    detail: float
    grid: float


def score(output: torch.Tensor, truth: torch.Tensor, border: int) -> ImageScores:
    """Scores of (3,H,W) output vs ground truth in [0,1], after quantising to 8 bits like a saved file."""
    q = lambda t: (t.clamp(0, 1) * 255).round() / 255  # noqa: E731
    yo, yt = to_y(q(output)), to_y(q(truth))
    if border:
        yo, yt = yo[border:-border, border:-border], yt[border:-border, border:-border]
    h, w = (yo.shape[0] // 8) * 8, (yo.shape[1] // 8) * 8
    yo, yt = yo[:h, :w], yt[:h, :w]
    return ImageScores(psnr(yo, yt), ssim(yo, yt), high_frequency_energy(yo) / high_frequency_energy(yt),
                       grid_strength(yo) / grid_strength(yt))


def prepare_truth(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop (3,H,W) so that both sides divide by 8 * scale (whole LR pixels and whole x8 cells)."""
    m = 8 * scale
    h, w = image.shape[-2:]
    return image[:, : h - h % m, : w - w % m]


def evaluate_methods(images: list[Path], methods: dict[str, Callable[[torch.Tensor], torch.Tensor]], scale: int,
                     *, progress: Callable[[str], None] | None = None,
                     keep: Callable[[str, str, str, torch.Tensor], None] | None = None) -> dict[str, Any]:
    """Mean scores per degradation and method; `methods` map LR (3,h,w) in [0,1] to (3,h*s,w*s)."""
    from trtsr.training.data import load_rgb

    table: dict[str, dict[str, dict[str, float]]] = {}
    for deg_name, degrade in DEGRADATIONS.items():
        per_method: dict[str, list[ImageScores]] = {name: [] for name in methods}
        for path in images:
            truth = prepare_truth(load_rgb(path), scale)
            lr = (degrade(truth, scale) * 255).round() / 255  # 8-bit input, as a file would be
            for name, method in methods.items():
                if progress:
                    progress(f"{deg_name}: {path.name}: {name}")
                out = method(lr)
                per_method[name].append(score(out, truth, scale))
                if keep:
                    keep(deg_name, path.name, name, out)
        table[deg_name] = {
            name: {f: statistics.fmean(getattr(s, f) for s in scores) for f in ("psnr_y", "ssim_y", "detail", "grid")}
            for name, scores in per_method.items()
        }
    return table


def pillow_bicubic(lr: torch.Tensor, scale: int, method: str = "BICUBIC") -> torch.Tensor:
    """Pillow's BICUBIC (or `method`: LANCZOS) upscale of (3,h,w) in [0,1] (8-bit, as users compare with):
    (3, h*scale, w*scale)."""
    from PIL import Image

    arr = (lr.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    h, w = arr.shape[:2]
    up = np.asarray(Image.fromarray(arr).resize((w * scale, h * scale), getattr(Image.Resampling, method)))
    return torch.from_numpy(up.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()


def count_flops(module: torch.nn.Module, example: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    # Not under no_grad: FlopCounterMode's module tracker wants grad_fns on tensors that require grad,
    # so gradients are switched off on the parameters instead.
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        with FlopCounterMode(display=False) as counter:
            module(example)
    finally:
        for p in params:
            p.requires_grad_(True)
    return int(counter.get_total_flops())


def cpu_latency(run: Callable[[], Any], repeats: int = 3) -> float:
    """Median seconds of `repeats` runs after one warm-up run."""
    from trtsr.measure import timed_runs

    _, times_ms = timed_runs(run, warmup=1, repeats=repeats)
    return statistics.median(times_ms) / 1000.0


def write_report(report: dict[str, Any], path: Path) -> None:
    from trtsr.files import write_text_atomic

    write_text_atomic(path, json.dumps(report, indent=2, sort_keys=False) + "\n")


def markdown_table(report: dict[str, Any]) -> str:
    """The README table: one row per degradation and method."""
    lines = ["| input | method | Y-PSNR dB | SSIM | detail (1 = GT) | x8 grid (1 = GT) | params | GFLOP/MP | "
             "CPU s/MP |", "|---|---|---|---|---|---|---|---|---|"]
    costs = report["costs"]
    for deg, methods in report["quality"].items():
        for name, s in methods.items():
            c = costs.get(name, {})
            params = f"{c['params'] / 1e6:.1f} M" if c.get("params") else "-"
            flops = f"{c['gflop_per_mp']:.0f}" if c.get("gflop_per_mp") is not None else "-"
            lat = f"{c['cpu_s_per_mp']:.2f}" if c.get("cpu_s_per_mp") is not None else "-"
            lines.append(f"| {deg} | {name} | {s['psnr_y']:.2f} | {s['ssim_y']:.4f} | {s['detail']:.2f} | "
                         f"{s['grid']:.2f} | {params} | {flops} | {lat} |")
    return "\n".join(lines)


def montage(tiles: list[tuple[str, np.ndarray]], path: Path, columns: int) -> None:
    """Labelled grid of same-size uint8 HWC crops, saved as PNG."""
    from PIL import Image

    from trtsr.files import atomic_path
    from trtsr.measure import chart_draw

    th, tw = tiles[0][1].shape[:2]
    rows = math.ceil(len(tiles) / columns)
    sheet = Image.new("RGB", (columns * tw, rows * (th + 16)), "white")
    draw = chart_draw(sheet)
    for i, (label, arr) in enumerate(tiles):
        x, y = (i % columns) * tw, (i // columns) * (th + 16)
        draw.text((x + 2, y + 2), label[:40], fill="black")
        sheet.paste(Image.fromarray(arr), (x, y + 16))
    with atomic_path(path, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG")
