"""Colour correction of an upscaled picture from its own input (`--color-fix`), numpy only.

A restoration network may shift colours or brightness over large areas (diffusion SR models are
known to; GAN upscalers less so). Both corrections keep the network's fine detail and take the
large-scale colour from the input, upscaled with bicubic to the output's size:

- `wavelet`: the output's high frequencies plus the input's low frequencies, split by an a-trous
  wavelet of `LEVELS` levels (a [1, 2, 1] / 4 kernel dilated by 1, 2, 4, ...; edges replicated).
- `adain`: each channel's mean and standard deviation moved to the input's.
"""

from __future__ import annotations

import numpy as np

from trtsr.errors import TrtsrError

COLOR_FIXES = ("wavelet", "adain")
LEVELS = 5


def check_color_fix(method: str | None) -> None:
    if method is not None and method not in COLOR_FIXES:
        raise TrtsrError(f"unknown colour fix {method!r}; use {' or '.join(COLOR_FIXES)}")


def low_frequencies(image: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """The a-trous wavelet's coarsest approximation of an (H, W, C) float image."""
    low = image.astype(np.float32, copy=True)
    for level in range(levels):
        step = 2**level
        for axis in (0, 1):
            size = low.shape[axis]
            index = np.arange(size)
            before = np.take(low, np.clip(index - step, 0, size - 1), axis=axis)
            after = np.take(low, np.clip(index + step, 0, size - 1), axis=axis)
            low = (before + 2.0 * low + after) * 0.25
    return low


def upscaled_reference(lr: np.ndarray, height: int, width: int) -> np.ndarray:
    """The input (H, W, C, 0..255) resized with bicubic to (height, width), as float32."""
    from trtsr.runtime.images import resize_plane

    return np.stack([resize_plane(lr[..., c], height, width) for c in range(lr.shape[2])], axis=-1)


def color_fix(output: np.ndarray, lr: np.ndarray, method: str) -> np.ndarray:
    """`output` (H, W, C float 0..255) with its colours taken from `lr`, its input, by `method`."""
    check_color_fix(method)
    reference = upscaled_reference(lr, output.shape[0], output.shape[1])
    if method == "adain":
        axes = (0, 1)
        mean_o, std_o = output.mean(axes), output.std(axes)
        mean_r, std_r = reference.mean(axes), reference.std(axes)
        fixed = (output - mean_o) / np.maximum(std_o, 1e-3) * std_r + mean_r
    else:
        fixed = output - low_frequencies(output) + low_frequencies(reference)
    return np.clip(fixed, 0.0, 255.0)
