"""The training losses (paper section 4.1 and A.1), on images (B, 3, H, W).

- `l1`: mean absolute difference, the reconstruction term against the target
  (teacher or ground truth); `charbonnier`: its smooth-at-zero variant.
- `fourier_mask` / `mfs_loss`: the masked Fourier-space loss of Eq. (2). The ortho-
  normalised FFT amplitudes of student and teacher are compared only on bands around
  the multiples of 1/8 of each axis (where the x8 pixel-shuffle grid puts its
  spikes), including the zero lines as the paper's index set does.
- `lattice_log_prominence` / `lattice_loss`: how far each x8 lattice frequency
  (k/8, l/8 cycles per pixel) stands out of the power spectrum around it, the quantity
  the held-out grid metric averages. The loss penalises the output's prominence where it
  exceeds the target's, with the neighbouring power held fixed, so it only pulls lattice
  peaks down. Measured on the first shipped student: its global 8x8 pattern matched
  bicubic's, yet its high-frequency lattice peaks stood 0.2 decades above its own weak
  neighbouring power, which Eq. (2) and losses on the residual's amplitude barely reach.
- `cell_pattern` / `cell_loss`: the error's mean 8x8 cell, averaged over the batch: the
  systematic per-phase error that, on smooth images, puts faint peaks on the lattice.
- `band_energy` / `texture_loss`: local detail. Each image's luma is split into two
  high-frequency bands (minus a Gaussian blur of sigma 1; that blur minus one of sigma
  2), and the RMS of each band over `window`-pixel windows (half-overlapping) is compared
  with the target's by L1. Only the amount of detail in a window is matched, not where its
  peaks fall, so a student too small to place the teacher's texture exactly is still
  pulled towards the teacher's level of it, where the pixel L1 alone pulls it towards a
  flat average.
- `highpass_loss`: L1 between the high-frequency residuals (image minus a Gaussian
  blur of sigma `sigma`, every channel) of student and target. The teacher is a
  fixed function of the input, so its detail can be learned pixel for pixel; this term
  gives that part of the L1 its own weight.
- `randpad`: Eq. (3), a reflect pad of (p, 8 - p) on each axis with p drawn from 0..7,
  so that the discriminator never sees the image on one fixed 8x8 phase.
- `generator_adversarial` / `discriminator_loss`: the non-saturating softplus losses of
  Eq. (4) over every logit map of a multi-level discriminator.
- `dists_distance`: the perceptual term. The paper uses DISTS, whose VGG weights
  cannot be fetched here; trtsr keeps the DISTS form (per-channel texture similarity
  of means and structure similarity of (co)variances, 1 minus their average) and
  computes it on the frozen Real-ESRGAN teacher's first trunk layers. Those layers are
  trained on natural images, ship with the teacher wheel, work offline, and are cheap
  at the depth used (conv_first plus one dense block).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trtsr.training.degrade import blur, gaussian_kernel

GRID = 8


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean()


CHARBONNIER_EPS = 1e-3


def charbonnier(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean of sqrt((a - b)^2 + eps^2): L1 away from zero, smooth at zero."""
    return ((a - b).pow(2) + CHARBONNIER_EPS**2).sqrt().mean()


def grid_bins(n: int, band: int, grid: int = GRID) -> torch.Tensor:
    """Boolean (n,) marking FFT bins within `band` (circular distance) of a multiple of n / grid."""
    centres = {round(k * n / grid) % n for k in range(grid + 1)}
    idx = torch.arange(n)
    hit = torch.zeros(n, dtype=torch.bool)
    for c in centres:
        dist = torch.minimum((idx - c).abs(), n - (idx - c).abs())
        hit |= dist <= band
    return hit


def fourier_mask(height: int, width: int, band: int = 1, grid: int = GRID) -> torch.Tensor:
    """(H, W) float mask of Eq. (2): ones on whole rows/columns at the grid frequencies."""
    rows = grid_bins(height, band, grid)
    cols = grid_bins(width, band, grid)
    return (rows[:, None] | cols[None, :]).to(torch.float32)


def mfs_loss(student: torch.Tensor, teacher: torch.Tensor, band: int = 1) -> torch.Tensor:
    """Masked Fourier-space L1 between amplitude spectra, averaged over the masked bins."""
    h, w = student.shape[-2:]
    mask = fourier_mask(h, w, band).to(student.device)
    amp_s = torch.fft.fft2(student.float(), norm="ortho").abs()
    amp_t = torch.fft.fft2(teacher.float(), norm="ortho").abs()
    per_image = (mask * (amp_s - amp_t).abs()).sum(dim=(-2, -1)) / mask.sum()
    return per_image.mean()


SIDE_OFFSETS = (-3, -2, 2, 3)  # bins beside a lattice point, along each axis, that set its local level


def lattice_points(odd_only: bool = False, grid: int = GRID) -> list[tuple[int, int]]:
    """(k, l) of the lattice frequencies (k/grid, l/grid) but (0, 0); `odd_only` keeps k or l odd."""
    return [(k, m) for k in range(grid) for m in range(grid)
            if (k, m) != (0, 0) and (not odd_only or k % 2 or m % 2)]


def lattice_log_prominence(power: torch.Tensor, points: list[tuple[int, int]], *, detach_side: bool = False,
                           grid: int = GRID) -> torch.Tensor:
    """log(power at each lattice point / mean power of the bins 2-3 beside it) for power (..., H, W).

    Returns (..., len(points)); H and W should be multiples of `grid` so the points fall on bins.
    """
    h, w = power.shape[-2:]
    rows = torch.tensor([k * h // grid for k, _ in points], device=power.device)
    cols = torch.tensor([m * w // grid for _, m in points], device=power.device)
    peak = power[..., rows, cols]
    sides = [power[..., (rows + d) % h, cols] for d in SIDE_OFFSETS]
    sides += [power[..., rows, (cols + d) % w] for d in SIDE_OFFSETS]
    side = torch.stack(sides).mean(0)
    if detach_side:
        side = side.detach()
    return torch.log(peak) - torch.log(side)


def lattice_loss(student: torch.Tensor, target: torch.Tensor, grid: int = GRID) -> torch.Tensor:
    """Mean over images, channels and lattice points of relu(prominence(student) - prominence(target)), in nats.

    (B, C, H, W) with H, W multiples of `grid`; the student's neighbouring power is detached.
    """
    h, w = student.shape[-2:]
    if h % grid or w % grid:
        raise ValueError(f"image sides {h}x{w} must be multiples of {grid}")
    points = lattice_points(grid=grid)
    with torch.no_grad():
        reference = lattice_log_prominence(power_spectrum(target), points, grid=grid)
    prominence = lattice_log_prominence(power_spectrum(student), points, detach_side=True, grid=grid)
    return F.relu(prominence - reference).mean()


def cell_pattern(images: torch.Tensor, grid: int = GRID) -> torch.Tensor:
    """The mean `grid` x `grid` cell of (B, C, H, W) (sides multiples of `grid`), minus its own mean: (B, C, g, g)."""
    b, c, h, w = images.shape
    cells = images.reshape(b, c, h // grid, grid, w // grid, grid).mean(dim=(2, 4))
    return cells - cells.mean(dim=(-2, -1), keepdim=True)


def cell_loss(student: torch.Tensor, target: torch.Tensor, grid: int = GRID) -> torch.Tensor:
    """Mean absolute value of the error's cell pattern averaged over the batch, per colour.

    A pixel-shuffle network can add the same faint pattern to every cell of every image
    (a per-phase error that the pixel L1 hardly notices, a few hundredths of a grey level);
    on smooth images it is what stands out at the x8 lattice frequencies. Averaging the
    error's cell pattern over the batch keeps that systematic part and lets the image
    content of each crop average out.
    """
    h, w = student.shape[-2:]
    if h % grid or w % grid:
        raise ValueError(f"image sides {h}x{w} must be multiples of {grid}")
    return cell_pattern(student.float() - target.float(), grid).mean(0).abs().mean()


def power_spectrum(image: torch.Tensor, dtype: torch.dtype = torch.float32, eps: float = 1e-10) -> torch.Tensor:
    """|FFT|^2 over the last two axes of `image` with its mean removed, plus `eps` (keeps logs finite)."""
    image = image.to(dtype)
    return torch.fft.fft2(image - image.mean(dim=(-2, -1), keepdim=True)).abs().pow(2) + eps


LUMA = (0.299, 0.587, 0.114)
TEXTURE_SIGMAS = (1.0, 2.0)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of (B, C, H, W), truncated at ceil(3 sigma), with reflect borders."""
    return blur(images, gaussian_kernel(sigma, sigma, 0.0, 2 * math.ceil(3 * sigma) + 1))


def anchored(truth: torch.Tensor, teacher: torch.Tensor, sigma: float) -> torch.Tensor:
    """The teacher's image with its frequencies below a Gaussian blur of `sigma` taken from `truth` instead."""
    return gaussian_blur(truth, sigma) + teacher - gaussian_blur(teacher, sigma)


def band_energy(image: torch.Tensor, window: int = 16, sigmas: tuple[float, ...] = TEXTURE_SIGMAS) -> torch.Tensor:
    """RMS of each high-frequency band of the luma of (B, 3, H, W), per window: (B, len(sigmas), H', W').

    Band 0 is luma minus its blur at sigmas[0]; band i is the blur at sigmas[i-1] minus the
    blur at sigmas[i]. Windows are `window` pixels with a stride of half that.
    """
    luma = sum(w * image[:, i:i + 1] for i, w in enumerate(LUMA))
    bands, previous = [], luma
    for sigma in sigmas:
        blurred = gaussian_blur(luma, sigma)
        bands.append(previous - blurred)
        previous = blurred
    power = torch.cat(bands, dim=1).pow(2)
    return (F.avg_pool2d(power, window, stride=window // 2) + 1e-8).sqrt()


def texture_loss(student: torch.Tensor, target: torch.Tensor, window: int = 16) -> torch.Tensor:
    """L1 between the per-window band RMS (`band_energy`) of student and target, averaged."""
    with torch.no_grad():
        reference = band_energy(target.float(), window)
    return (band_energy(student.float(), window) - reference).abs().mean()


def highpass(images: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """What a Gaussian blur of `sigma` removes from (B, C, H, W)."""
    return images - gaussian_blur(images, sigma)


def highpass_loss(student: torch.Tensor, target: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """Mean absolute difference of the high-frequency residuals (`highpass`) of student and target."""
    with torch.no_grad():
        reference = highpass(target.float(), sigma)
    return (highpass(student.float(), sigma) - reference).abs().mean()


def randpad(image: torch.Tensor, generator: torch.Generator | None = None,
            pads: tuple[int, int] | None = None, grid: int = GRID) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad by (p_w, grid - p_w) horizontally and (p_h, grid - p_h) vertically; returns (image, (p_h, p_w))."""
    if pads is None:
        p_h, p_w = (int(v) for v in torch.randint(0, grid, (2,), generator=generator))
    else:
        p_h, p_w = pads
        if not (0 <= p_h < grid and 0 <= p_w < grid):
            raise ValueError(f"pads must lie in 0..{grid - 1}, got {pads}")
    return F.pad(image, (p_w, grid - p_w, p_h, grid - p_h), mode="reflect"), (p_h, p_w)


def generator_adversarial(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """softplus(-D(fake)), averaged per level and summed over levels."""
    return sum(F.softplus(-logit).mean() for logit in fake_logits)


def discriminator_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """softplus(-D(real)) + softplus(D(fake)), per level, summed over levels."""
    return sum(F.softplus(-r).mean() + F.softplus(f).mean() for r, f in zip(real_logits, fake_logits, strict=True))


DISTS_C1 = 1e-6
DISTS_C2 = 1e-6


def dists_distance(feats_x: list[torch.Tensor], feats_y: list[torch.Tensor]) -> torch.Tensor:
    """1 - mean over levels and channels of (texture + structure) / 2, DISTS-style with equal weights."""
    scores = []
    for fx, fy in zip(feats_x, feats_y, strict=True):
        fx, fy = fx.float(), fy.float()
        mx, my = fx.mean(dim=(-2, -1)), fy.mean(dim=(-2, -1))
        vx = ((fx - mx[..., None, None]) ** 2).mean(dim=(-2, -1))
        vy = ((fy - my[..., None, None]) ** 2).mean(dim=(-2, -1))
        cov = ((fx - mx[..., None, None]) * (fy - my[..., None, None])).mean(dim=(-2, -1))
        texture = (2 * mx * my + DISTS_C1) / (mx**2 + my**2 + DISTS_C1)
        structure = (2 * cov + DISTS_C2) / (vx + vy + DISTS_C2)
        scores.append(((texture + structure) / 2).mean(dim=-1))  # (B,)
    return (1.0 - torch.stack(scores).mean(0)).mean()
