"""Low-quality inputs for training: a second-order blur/resize/noise/JPEG chain or plain bicubic.

All functions take and return float tensors (3, H, W) in [0, 1] and draw every random
choice from the `numpy.random.Generator` passed in, so a seed reproduces a sample.

`moderate` is one milder round (blur, downscale, noise, JPEG), closer to what a
photograph a user upscales has been through. The second-order chain follows the
Real-ESRGAN recipe in outline (two rounds of blur, random
resize, Gaussian or Poisson noise and JPEG, then the final resize to the LR size);
the ranges are in `DegradationSettings`. With probability `bicubic_prob` the whole
chain is replaced by an anti-aliased bicubic downscale, so the model also learns the
clean case that `trtsr run` sees most.
"""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

RESIZE_MODES = ("area", "bilinear", "bicubic")


@dataclasses.dataclass(frozen=True)
class DegradationSettings:
    bicubic_prob: float = 0.3
    # first round
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    resize_range: tuple[float, float] = (0.15, 1.5)
    gauss_sigma: tuple[float, float] = (1.0, 30.0)  # on the 0-255 scale
    poisson_scale: tuple[float, float] = (0.05, 3.0)
    jpeg_quality: tuple[int, int] = (30, 95)
    # second round
    blur2_prob: float = 0.8
    blur2_sigma: tuple[float, float] = (0.2, 1.5)
    resize2_range: tuple[float, float] = (0.3, 1.2)
    gauss2_sigma: tuple[float, float] = (1.0, 25.0)
    poisson2_scale: tuple[float, float] = (0.05, 2.5)
    jpeg2_quality: tuple[int, int] = (30, 95)
    gray_noise_prob: float = 0.4
    poisson_prob: float = 0.4


def gaussian_kernel(sigma_x: float, sigma_y: float, angle: float, size: int) -> torch.Tensor:
    """Normalised (size, size) anisotropic Gaussian rotated by `angle` radians."""
    r = (size - 1) / 2
    coords = torch.arange(size, dtype=torch.float64) - r
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * xx + s * yy, -s * xx + c * yy
    k = torch.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return (k / k.sum()).to(torch.float32)


def blur(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Per-channel convolution with reflect borders, of (C,H,W) or a batch (B,C,H,W)."""
    x = img if img.dim() == 4 else img[None]
    channels, pad = x.shape[1], kernel.shape[-1] // 2
    weight = kernel.to(x)[None, None].expand(channels, 1, -1, -1)
    out = F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), weight, groups=channels)
    return out if img.dim() == 4 else out[0]


def random_blur(img: torch.Tensor, rng: np.random.Generator, sigma: tuple[float, float]) -> torch.Tensor:
    size = int(rng.choice([7, 9, 11, 13, 15, 17, 19, 21]))
    size = min(size, 2 * (min(img.shape[-2:]) // 2) - 1)  # reflect padding needs pad < side
    if rng.random() < 0.5:
        sx = sy = float(rng.uniform(*sigma))
    else:
        sx, sy = float(rng.uniform(*sigma)), float(rng.uniform(*sigma))
    return blur(img, gaussian_kernel(sx, sy, float(rng.uniform(0, math.pi)), size))


def resize(img: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """`img` (3,H,W) or a batch (N,3,H,W) in [0,1] resized to `size`, anti-aliased (but "area"), clamped."""
    kwargs = {} if mode == "area" else {"align_corners": False, "antialias": True}
    batch = img if img.dim() == 4 else img[None]
    out = F.interpolate(batch, size=size, mode=mode, **kwargs).clamp(0.0, 1.0)
    return out if img.dim() == 4 else out[0]


def bicubic_down(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Anti-aliased bicubic downscale of (3,H,W) or (N,3,H,W) by an integer factor (sides must divide)."""
    h, w = img.shape[-2:]
    return resize(img, (h // scale, w // scale), "bicubic")


def add_noise(img: torch.Tensor, rng: np.random.Generator, gauss: tuple[float, float],
              poisson: tuple[float, float], gray_prob: float, poisson_prob: float) -> torch.Tensor:
    gray = rng.random() < gray_prob
    shape = (1, *img.shape[-2:]) if gray else img.shape
    if rng.random() < poisson_prob:
        scale = float(rng.uniform(*poisson))
        base = img.mean(0, keepdim=True) if gray else img
        vals = 10 ** (2 + rng.random() * 2)  # distinct intensity levels, as in Real-ESRGAN
        counts = rng.poisson(np.clip(base.numpy(), 0, 1) * vals) / vals
        noise = (torch.from_numpy(counts).float() - base) * scale
    else:
        sigma = float(rng.uniform(*gauss)) / 255.0
        noise = torch.from_numpy(rng.standard_normal(shape).astype(np.float32)) * sigma
    return (img + noise).clamp(0.0, 1.0)


def jpeg(img: torch.Tensor, quality: int) -> torch.Tensor:
    arr = (img.permute(1, 2, 0).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality))
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(out).permute(2, 0, 1).contiguous()


def _random_resize(img: torch.Tensor, rng: np.random.Generator, ranges: tuple[float, float],
                   floor: tuple[int, int]) -> torch.Tensor:
    kind = rng.choice(["up", "down", "keep"], p=[0.2, 0.7, 0.1])
    lo, hi = ranges
    factor = float(rng.uniform(1.0, hi)) if kind == "up" else float(rng.uniform(lo, 1.0)) if kind == "down" else 1.0
    h, w = img.shape[-2:]
    size = (max(int(h * factor), floor[0]), max(int(w * factor), floor[1]))
    return resize(img, size, str(rng.choice(RESIZE_MODES)))


def second_order(hr: torch.Tensor, scale: int, rng: np.random.Generator,
                 settings: DegradationSettings = DegradationSettings()) -> torch.Tensor:
    """The two-round chain; returns the LR image at exactly (H // scale, W // scale)."""
    s = settings
    h, w = hr.shape[-2:]
    target = (h // scale, w // scale)
    floor = (max(target[0] // 2, 8), max(target[1] // 2, 8))
    x = random_blur(hr, rng, s.blur_sigma)
    x = _random_resize(x, rng, s.resize_range, floor)
    x = add_noise(x, rng, s.gauss_sigma, s.poisson_scale, s.gray_noise_prob, s.poisson_prob)
    x = jpeg(x, int(rng.integers(s.jpeg_quality[0], s.jpeg_quality[1] + 1)))
    if rng.random() < s.blur2_prob:
        x = random_blur(x, rng, s.blur2_sigma)
    # The second resize is relative to the target, as in Real-ESRGAN.
    factor = float(rng.uniform(*s.resize2_range))
    x = resize(x, (max(int(target[0] * factor), 8), max(int(target[1] * factor), 8)), str(rng.choice(RESIZE_MODES)))
    x = add_noise(x, rng, s.gauss2_sigma, s.poisson2_scale, s.gray_noise_prob, s.poisson_prob)
    quality = int(rng.integers(s.jpeg2_quality[0], s.jpeg2_quality[1] + 1))
    mode = str(rng.choice(RESIZE_MODES))
    if rng.random() < 0.5:  # final resize then JPEG, or JPEG then final resize
        x = jpeg(resize(x, target, mode), quality)
    else:
        x = resize(jpeg(x, quality), target, mode)
    return x.clamp(0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class ModerateSettings:
    """One round, the damage a photograph picks up on its way to a user: mild blur, a downscale
    by a random method, some sensor noise, one JPEG. Each part is applied with its probability."""

    bicubic_prob: float = 0.3  # the clean case: an anti-aliased downscale only
    blur_prob: float = 0.8
    blur_sigma: tuple[float, float] = (0.2, 2.0)
    noise_prob: float = 0.8
    gauss_sigma: tuple[float, float] = (0.5, 12.0)  # on the 0-255 scale
    gray_noise_prob: float = 0.4
    jpeg_prob: float = 0.8
    jpeg_quality: tuple[int, int] = (55, 95)


def moderate(hr: torch.Tensor, scale: int, rng: np.random.Generator,
             settings: ModerateSettings = ModerateSettings()) -> torch.Tensor:
    """The one-round chain; returns the LR image at exactly (H // scale, W // scale)."""
    s = settings
    h, w = hr.shape[-2:]
    x = random_blur(hr, rng, s.blur_sigma) if rng.random() < s.blur_prob else hr
    x = resize(x, (h // scale, w // scale), str(rng.choice(RESIZE_MODES)))
    if rng.random() < s.noise_prob:
        sigma = float(rng.uniform(*s.gauss_sigma)) / 255.0
        shape = (1, *x.shape[-2:]) if rng.random() < s.gray_noise_prob else x.shape
        x = (x + torch.from_numpy(rng.standard_normal(shape).astype(np.float32)) * sigma).clamp(0.0, 1.0)
    if rng.random() < s.jpeg_prob:
        x = jpeg(x, int(rng.integers(s.jpeg_quality[0], s.jpeg_quality[1] + 1)))
    return x.clamp(0.0, 1.0)


# `TrainConfig.degradation` names one of these; `bicubic_prob` comes from the config.
PRESETS = {"real-esrgan": DegradationSettings, "moderate": ModerateSettings}


def degrade(hr: torch.Tensor, scale: int, rng: np.random.Generator,
            settings: DegradationSettings | ModerateSettings = DegradationSettings()) -> torch.Tensor:
    """Bicubic with probability `settings.bicubic_prob`, the settings' chain otherwise."""
    if scale not in (2, 3, 4):
        raise ValueError(f"scale must be 2, 3 or 4, got {scale}")
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"HR size {w}x{h} is not divisible by the scale {scale}")
    if rng.random() < settings.bicubic_prob:
        return bicubic_down(hr, scale)
    if isinstance(settings, ModerateSettings):
        return moderate(hr, scale, rng, settings)
    return second_order(hr, scale, rng, settings)


def realistic(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The fixed evaluation degradation: Gaussian blur sigma 1.2, bicubic down, noise sigma 5/255, JPEG 75."""
    x = blur(hr, gaussian_kernel(1.2, 1.2, 0.0, 9))
    x = bicubic_down(x, scale)
    gen = torch.Generator().manual_seed(0)
    x = (x + torch.randn(x.shape, generator=gen) * (5.0 / 255.0)).clamp(0.0, 1.0)
    return jpeg(x, 75)
