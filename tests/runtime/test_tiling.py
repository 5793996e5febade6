"""Tiling: plans cover the image, and blended tiles of a local operator equal the whole-image result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trtsr.runtime.images import read_image
from trtsr.runtime.tiling import plan_tiles, run_tiled

DATA = Path(__file__).parents[1] / "data"


def _bicubic_x4(tile: np.ndarray) -> np.ndarray:
    """A real local upscaler: Pillow's bicubic, channel by channel, in float."""
    h, w = tile.shape[:2]
    planes = [np.asarray(Image.fromarray(tile[:, :, c].astype(np.float32), mode="F")
                         .resize((w * 4, h * 4), Image.Resampling.BICUBIC)) for c in range(3)]
    return np.stack(planes, axis=2)


@pytest.mark.parametrize(
    ("height", "width", "tile", "overlap"), [(100, 130, 40, 10), (64, 64, 64, 8), (33, 90, 32, 16)]
)
def test_plan_covers_every_pixel(height, width, tile, overlap):
    covered = np.zeros((height, width), dtype=int)
    boxes = plan_tiles(height, width, tile, overlap)
    for y0, y1, x0, x1 in boxes:
        assert y1 - y0 <= tile and x1 - x0 <= tile
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    rows = sorted({(y0, y1) for y0, y1, _, _ in boxes})
    for (_, end), (start, _) in zip(rows[:-1], rows[1:], strict=True):
        assert end - start >= min(overlap, tile // 2)  # neighbours share at least the overlap


@pytest.mark.parametrize(("side", "tile", "overlap", "tiles", "size"), [
    (179, 128, 16, 2, 98),    # just over the tile: two tiles of about half, not two full ones
    (128, 128, 16, 1, 128),   # fits: one tile
    (1000, 128, 16, 9, 126),  # many: all one size, evenly spaced
])
def test_tiles_cover_the_image_evenly(side, tile, overlap, tiles, size):
    boxes = plan_tiles(side, side, tile, overlap)
    sizes = {y1 - y0 for y0, y1, _, _ in boxes}
    assert len(boxes) == tiles * tiles and sizes == {size}


def test_tiled_equals_whole_image_away_from_borders():
    image = read_image(DATA / "ADE_val_00000114.jpg").rgb[:120, :150]
    whole = _bicubic_x4(image)
    tiled = run_tiled(image, _bicubic_x4, scale=4, tile=48, overlap=16)
    assert tiled.shape == whole.shape
    # Each tile is exact except within the kernel's reach of its own edge; the window
    # gives those edge pixels no weight where a neighbour covers them.
    np.testing.assert_allclose(tiled[16:-16, 16:-16], whole[16:-16, 16:-16], atol=0.35)


def test_overlap_removes_the_seam_that_plain_tiles_leave():
    image = read_image(DATA / "0030.jpg").rgb[:96, :192]
    whole = _bicubic_x4(image)
    joins = [x * 4 for x in (48, 96, 144)]

    def seam_error(result):
        return float(np.mean([np.abs(result[:, j - 2:j + 2] - whole[:, j - 2:j + 2]).mean() for j in joins]))

    plain = run_tiled(image, _bicubic_x4, scale=4, tile=48, overlap=0)
    blended = run_tiled(image, _bicubic_x4, scale=4, tile=64, overlap=16)
    assert seam_error(plain) > 0.5  # the negative control: hard joins do show
    assert seam_error(blended) < 0.1


def test_progress_reports_each_tile():
    seen = []
    run_tiled(np.zeros((50, 50, 3), np.float32), _bicubic_x4, scale=4, tile=32, overlap=8,
              progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_a_stack_of_images_tiles_like_each_image_alone():
    """The teacher tiles (H, W, batch, 3) stacks through the same tiler as the runtime's (H, W, 3) images."""
    image = read_image(DATA / "ADE_val_00000114.jpg").rgb[:70, :90].astype(np.float32)
    stack = np.stack([image, image[::-1, ::-1]], axis=2)  # (70, 90, 2, 3)

    def per_image(tile):
        return np.stack([_bicubic_x4(tile[:, :, b]) for b in range(tile.shape[2])], axis=2)

    tiled = run_tiled(stack, per_image, scale=4, tile=32, overlap=8)
    assert tiled.shape == (280, 360, 2, 3)
    for b in range(2):
        alone = run_tiled(stack[:, :, b], _bicubic_x4, scale=4, tile=32, overlap=8)
        np.testing.assert_allclose(tiled[:, :, b], alone, rtol=0, atol=1e-4)


def test_context_lets_each_tile_see_past_its_edge():
    """A blur's output near a tile edge depends on pixels beyond it: with enough context the tiles are exact."""
    image = read_image(DATA / "ADE_val_00000114.jpg").rgb[:90, :110].astype(np.float32)

    def blur_x4(tile):  # a 7x7 box mean (edge pixels repeated), then nearest x4
        padded = np.pad(tile, ((3, 3), (3, 3), (0, 0)), mode="edge")
        h, w = tile.shape[:2]
        box = sum(padded[dy:dy + h, dx:dx + w] for dy in range(7) for dx in range(7)) / 49.0
        return np.repeat(np.repeat(box, 4, 0), 4, 1)

    whole = blur_x4(image)
    plain = run_tiled(image, blur_x4, scale=4, tile=32, overlap=8)
    grown = run_tiled(image, blur_x4, scale=4, tile=32, overlap=8, context=3)
    assert np.abs(plain - whole).max() > 1.0  # the edges of plain tiles miss their neighbours' pixels
    np.testing.assert_allclose(grown, whole, rtol=0, atol=1e-3)
