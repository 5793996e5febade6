"""Overlapping tiles blended with a smooth window, so huge images run in pieces without seams.

Tiles are planned on the low-resolution input. Each tile's output is weighted
by a raised-cosine ramp across the overlap on every side that touches another
tile (flat 1 on the image border), and the weighted sum is divided by the sum
of weights, so neighbouring tiles cross-fade and no step appears.

With `context` > 0 each tile is run on a box grown by that many input pixels on
every side (within the image) and its output cropped back to the tile, so the
network sees past the tile's edge before the blend.

One tiler serves the runtime (an (H, W, 3) image) and the training teacher (an
(H, W, batch, 3) stack): the first two axes are height and width, whatever
follows them is carried along.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def axis_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """The fewest tiles of at most `tile` pixels that cover `length` with >= `overlap` shared between neighbours,
    all of one size and evenly spaced: a side just over the tile is two tiles of about half, not two full ones."""
    if length <= tile:
        return [(0, length)]
    count = math.ceil((length - overlap) / (tile - overlap))
    size = math.ceil((length + (count - 1) * overlap) / count)  # <= tile; count * size covers length + overlaps
    starts = [index * (length - size) // (count - 1) for index in range(count)]
    return [(start, start + size) for start in starts]


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) boxes in input pixels covering the image; neighbours share >= `overlap` pixels."""
    if tile <= 0:
        raise ValueError("tile must be positive")
    overlap = max(0, min(overlap, tile // 2))
    return [(y0, y1, x0, x1) for y0, y1 in axis_spans(height, tile, overlap)
            for x0, x1 in axis_spans(width, tile, overlap)]


def _rising(fade: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)).astype(np.float32)


def _ramp(length: int, fade_before: int, fade_after: int) -> np.ndarray:
    """1 in the middle, a raised-cosine rise over `fade_before` and fall over `fade_after`."""
    weights = np.ones(length, dtype=np.float32)
    if fade_before > 0:
        weights[:fade_before] *= _rising(fade_before)
    if fade_after > 0:
        weights[length - fade_after:] *= _rising(fade_after)[::-1]
    return weights


def _fades(starts: list[int], ends: list[int]) -> list[tuple[int, int]]:
    """Per tile along one axis: how far the previous tile reaches in, how far back the next one starts."""
    return [
        (ends[i - 1] - starts[i] if i > 0 else 0, ends[i] - starts[i + 1] if i + 1 < len(starts) else 0)
        for i in range(len(starts))
    ]


def run_tiled(
    image: np.ndarray,
    infer: Callable[[np.ndarray], np.ndarray],
    *,
    scale: int,
    tile: int,
    overlap: int,
    context: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Upscale `image` (H, W, ...) tile by tile with `infer`; returns float32 (sH, sW, ...).

    `infer` maps an (h, w, ...) tile to (s*h, s*w, ...) with the same trailing axes.
    """
    height, width = image.shape[:2]
    trailing = image.shape[2:]
    boxes = plan_tiles(height, width, tile, overlap)
    rows = sorted({(y0, y1) for y0, y1, _, _ in boxes})
    cols = sorted({(x0, x1) for _, _, x0, x1 in boxes})
    # Fade only where a neighbour overlaps; the image border keeps full weight.
    row_fades = dict(zip(rows, _fades([r[0] for r in rows], [r[1] for r in rows]), strict=True))
    col_fades = dict(zip(cols, _fades([c[0] for c in cols], [c[1] for c in cols]), strict=True))
    out = np.zeros((height * scale, width * scale, *trailing), dtype=np.float32)
    total = np.zeros((height * scale, width * scale) + (1,) * len(trailing), dtype=np.float32)
    for index, (y0, y1, x0, x1) in enumerate(boxes):
        cy0, cx0 = max(0, y0 - context), max(0, x0 - context)
        cy1, cx1 = min(height, y1 + context), min(width, x1 + context)
        grown = infer(np.ascontiguousarray(image[cy0:cy1, cx0:cx1])).astype(np.float32)
        top_in, left_in = (y0 - cy0) * scale, (x0 - cx0) * scale
        result = grown[top_in:top_in + (y1 - y0) * scale, left_in:left_in + (x1 - x0) * scale]
        (top, bottom), (left, right) = row_fades[(y0, y1)], col_fades[(x0, x1)]
        wy = _ramp(result.shape[0], top * scale, bottom * scale)
        wx = _ramp(result.shape[1], left * scale, right * scale)
        window = (wy[:, None] * wx[None, :]).reshape(wy.shape + wx.shape + (1,) * len(trailing))
        out[y0 * scale:y1 * scale, x0 * scale:x1 * scale] += result * window
        total[y0 * scale:y1 * scale, x0 * scale:x1 * scale] += window
        if progress is not None:
            progress(index + 1, len(boxes))
    return out / np.maximum(total, 1e-8)
