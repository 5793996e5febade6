"""Calibration samples: seeded low-resolution crops from a user's images, at several sizes.

A sample is a crop of one image, fed through the graph's own input (height x width x 3,
uint8 or float32 0..255 as the spec says, plus the PadCFG guidance at the graph's default
w). Images are read and checked before any slow work; which crops were taken is recorded
(seed, sizes, each image's sha256) so a calibration can be repeated.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from trtsr.defaults import IMAGE_SUFFIXES
from trtsr.errors import TrtsrError
from trtsr.files import sha256_of
from trtsr.runtime.images import read_image
from trtsr.spec import ExportSpec

# Input (low-resolution) crop sizes, width x height: a spread of shapes and sizes, kept small
# enough that a CPU calibrates the full-size model in minutes.
DEFAULT_SIZES = ((64, 64), (128, 96), (96, 128), (128, 128))
MAX_CROP_SIDE = 1024


@dataclasses.dataclass(frozen=True)
class CalibrationImage:
    path: Path
    rgb: np.ndarray  # (H, W, 3) float32 0..255
    sha256: str


@dataclasses.dataclass(frozen=True)
class Crop:
    image: int  # index into the image list
    x: int
    y: int
    width: int
    height: int


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' or 'N' (square) -> (width, height)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", text)
    if not match:
        raise TrtsrError(f"calibration size {text!r} is not WxH or N (input pixels, e.g. 128x96)")
    width = int(match.group(1))
    height = int(match.group(2) or match.group(1))
    if not (1 <= width <= MAX_CROP_SIDE and 1 <= height <= MAX_CROP_SIDE):
        raise TrtsrError(f"calibration size {text!r} must be 1 to {MAX_CROP_SIDE} pixels a side")
    return width, height


def find_images(folder: str | Path) -> list[Path]:
    """Every image under `folder` (recursively), sorted; one line when there is none."""
    folder = Path(folder)
    if not folder.exists():
        raise TrtsrError("calibration image folder does not exist", path=folder)
    if not folder.is_dir():
        raise TrtsrError("--images takes a folder of images", path=folder)
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise TrtsrError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the calibration folder", path=folder)
    return found


def load_images(paths: list[Path], min_side: int) -> list[CalibrationImage]:
    """Decode every image (each failure is one line naming the file) and check it can give a crop."""
    images = []
    for path in paths:
        picture = read_image(path)
        height, width = picture.rgb.shape[:2]
        if min(height, width) < min_side:
            raise TrtsrError(f"image is {width}x{height}, smaller than the graph's smallest input "
                             f"({min_side} pixels a side)", path=path)
        images.append(CalibrationImage(path, picture.rgb, sha256_of(path)))
    return images


def plan_crops(images: list[CalibrationImage], sizes: list[tuple[int, int]], samples: int, seed: int) -> list[Crop]:
    """`samples` crops: images and sizes taken in turn (every image and size is used), positions seeded.

    A crop larger than its image is cut to the image.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    crops = []
    for i in range(samples):
        index = int(order[i % len(images)])
        width, height = sizes[i % len(sizes)]
        rows, cols = images[index].rgb.shape[:2]
        width, height = min(width, cols), min(height, rows)
        x = int(rng.integers(0, cols - width + 1))
        y = int(rng.integers(0, rows - height + 1))
        crops.append(Crop(index, x, y, width, height))
    return crops


def make_feed(spec: ExportSpec, image: CalibrationImage, crop: Crop) -> dict[str, np.ndarray]:
    """The graph's inputs for one crop, exactly as the runtime feeds them."""
    pixels = image.rgb[crop.y:crop.y + crop.height, crop.x:crop.x + crop.width]
    if spec.io == "uint8":
        pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    feed = {spec.input_name: np.ascontiguousarray(pixels, dtype=np.uint8 if spec.io == "uint8" else np.float32)}
    if spec.guidance_input is not None:
        feed[spec.guidance_input] = np.array([spec.guidance], dtype=np.float32)
    return feed


class FeedReader:
    """ONNX Runtime's CalibrationDataReader protocol over planned crops (feeds built one at a time).

    `get_first` (a look at the first feed without using it up) is what ModelOpt calls for its test run.
    """

    def __init__(self, spec: ExportSpec, images: list[CalibrationImage], crops: list[Crop]) -> None:
        self.spec, self.images, self.crops = spec, images, crops
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self.crops):
            return None
        crop = self.crops[self._next]
        self._next += 1
        return make_feed(self.spec, self.images[crop.image], crop)

    def get_first(self) -> dict[str, np.ndarray]:
        crop = self.crops[0]
        return make_feed(self.spec, self.images[crop.image], crop)

    def rewind(self) -> None:
        self._next = 0

    def __len__(self) -> int:
        return len(self.crops)
