"""Reading and writing real-world images: orientation, modes, bit depth, alpha, ICC profiles.

An image travels through trtsr as a `Picture`: float32 RGB in [0, 255] (what the
network sees), an optional alpha plane, and what is needed to write it back the
way it came: grayscale or colour, 8 or 16 bits, ICC profile.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path

import numpy as np

from trtsr.defaults import QUALITY
from trtsr.errors import TrtsrError
from trtsr.files import atomic_path

log = logging.getLogger(__name__)

FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "tiff": "TIFF", "tif": "TIFF"}
# Pillow's own bomb guard trips at 2x this; anything above is refused with a clear message.
MAX_PIXELS = 178_956_970


@dataclasses.dataclass
class Picture:
    """rgb: (H, W, 3) float32 in [0, 255]; alpha: (H, W) float32 in [0, 255] or None."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    grayscale: bool = False
    bits: int = 8
    icc_profile: bytes | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


def from_array(array: np.ndarray) -> Picture:
    """A numpy image: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), uint8 or uint16."""
    if array.dtype not in (np.uint8, np.uint16):
        raise TrtsrError(f"image arrays must be uint8 or uint16, got {array.dtype}")
    if array.ndim >= 2 and 0 in array.shape[:2]:
        raise TrtsrError(f"the image is empty ({array.shape[1]}x{array.shape[0]} pixels)")
    bits = 16 if array.dtype == np.uint16 else 8
    data = array.astype(np.float32) / (257.0 if bits == 16 else 1.0)
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3 or data.shape[2] not in (1, 2, 3, 4):
        raise TrtsrError(f"image arrays must be HxW, HxWx1, HxWx3 or HxWx4, got shape {array.shape}")
    channels = data.shape[2]
    alpha = data[:, :, -1].copy() if channels in (2, 4) else None
    colour = data[:, :, :1] if channels in (1, 2) else data[:, :, :3]
    gray = colour.shape[2] == 1
    rgb = np.repeat(colour, 3, axis=2) if gray else colour
    return Picture(np.ascontiguousarray(rgb), alpha, gray, bits)


def to_array(picture: Picture) -> np.ndarray:
    """The inverse of `from_array`: same channel layout and dtype as went in."""
    colour = picture.rgb
    if picture.grayscale:
        colour = colour.mean(axis=2, keepdims=True)
    if picture.alpha is not None:
        colour = np.concatenate([colour, picture.alpha[:, :, None]], axis=2)
    if picture.bits == 16:
        out = np.clip(np.rint(colour * 257.0), 0, 65535).astype(np.uint16)
    else:
        out = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    return out[:, :, 0] if out.shape[2] == 1 else out


def resize_plane(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pillow's bicubic resize of one float plane to (height, width), in 32-bit float (keeps 16-bit depth)."""
    from PIL import Image

    resized = Image.fromarray(plane.astype(np.float32), mode="F").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.float32)


def read_image(path: str | Path) -> Picture:
    """Decode a file; every way it can fail is a one-line TrtsrError naming the file."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise TrtsrError("file not found", path=path)
    if path.is_dir():
        raise TrtsrError("is a folder, not an image", path=path)
    if path.stat().st_size == 0:
        raise TrtsrError("file is empty", path=path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise TrtsrError(f"image is {width}x{height}, more than the {MAX_PIXELS // 10**6} M pixels "
                                     "trtsr reads", path=path)
                img.load()
                frames = getattr(img, "n_frames", 1)
                if frames > 1:
                    log.warning("%s: animated, %d frames; upscaling frame 1 only", path, frames)
                icc = img.info.get("icc_profile")
                if img.format == "PNG" and img.mode in ("RGB", "RGBA") and _png_bit_depth(path) == 16:
                    picture = _read_png_16bit(path, img)
                    picture.icc_profile = icc
                    return picture
                img = ImageOps.exif_transpose(img)
                return picture_from_pil(img, icc, path)
    except TrtsrError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        detail = str(exc).split(",")[0]
        raise TrtsrError(f"image is too large to decode safely ({detail})", path=path) from None
    except UnidentifiedImageError:
        raise TrtsrError("not an image file trtsr can read (PNG, JPEG, WebP, TIFF, BMP, GIF)", path=path) from None
    except PermissionError:
        raise TrtsrError("cannot read the file: permission denied", path=path) from None
    except (OSError, SyntaxError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TrtsrError(f"cannot decode the image ({reason}); the file may be truncated or corrupt",
                         path=path) from None


def picture_from_pil(img, icc: bytes | None = None, path: Path | None = None) -> Picture:
    """A decoded PIL image as trtsr reads files: every mode to grey, RGB or RGBA (8 or 16 bits), the way the
    command line sees the same picture."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        array = np.asarray(img, dtype=np.uint16)
        picture = from_array(array)
    elif mode == "I":
        array = np.asarray(img)
        bits16 = array.max(initial=0) > 255
        picture = from_array(np.clip(array, 0, 65535).astype(np.uint16 if bits16 else np.uint8))
    elif mode in ("L", "LA", "RGB", "RGBA"):
        picture = from_array(np.asarray(img))
    elif mode == "1":
        picture = from_array(np.asarray(img.convert("L")))
    elif mode in ("P", "PA"):
        has_alpha = "transparency" in img.info or mode == "PA"
        picture = from_array(np.asarray(img.convert("RGBA" if has_alpha else "RGB")))
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "F", "RGBX", "RGBa", "La"):
        picture = from_array(np.asarray(img.convert("RGBA" if mode in ("RGBa", "La") else "RGB")))
        if mode == "CMYK":
            icc = None  # a CMYK profile does not describe the converted RGB pixels
    else:
        raise TrtsrError(f"unsupported image mode {mode}", path=path)
    picture.icc_profile = icc
    return picture


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as fh:
        head = fh.read(26)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return 8
    return head[24]


def _read_png_16bit(path: Path, img) -> Picture:
    """Pillow reduces 16-bit RGB(A) PNGs to 8 bits; pypng reads the full depth."""
    import png

    width, height, rows, _ = png.Reader(filename=str(path)).asDirect()
    array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, -1)
    # Rare in PNGs, but an EXIF orientation applies to the full-depth pixels as to any others.
    return _orient(from_array(array), img.getexif().get(0x0112, 1))


def _orient(picture: Picture, orientation: int) -> Picture:
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
           7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1], 8: lambda a: np.swapaxes(a, 0, 1)[::-1]}
    op = ops.get(orientation)
    if op is None:
        return picture
    picture.rgb = np.ascontiguousarray(op(picture.rgb))
    if picture.alpha is not None:
        picture.alpha = np.ascontiguousarray(op(picture.alpha))
    return picture


def write_image(picture: Picture, path: str | Path, fmt: str | None = None, *, quality: int = QUALITY,
                overwrite: bool = True) -> Path:
    """Encode atomically: the file appears complete or not at all. With `overwrite` False a file that exists at
    the moment of the final rename is kept and FileExistsError raised (another process wrote it meanwhile)."""
    from PIL import Image

    path = Path(path)
    key = (fmt or path.suffix.lstrip(".")).lower()
    if key not in FORMATS:
        raise TrtsrError(f"unknown output format {key!r}; use one of png, jpg, webp, tiff", path=path)
    pil_format = FORMATS[key]
    picture = dataclasses.replace(picture)
    if pil_format == "JPEG" and picture.alpha is not None:
        # JPEG has no alpha: composite on white, as viewers show transparent areas.
        a = picture.alpha[:, :, None] / 255.0
        picture.rgb = picture.rgb * a + 255.0 * (1.0 - a)
        picture.alpha = None
    if picture.bits == 16 and pil_format != "PNG":
        picture.bits = 8  # only PNG is written with 16 bits per channel
    array = to_array(picture)
    with atomic_path(path, suffix=path.suffix or ".tmp", replace=overwrite) as tmp:
        if picture.bits == 16:
            import png

            planes = 1 if array.ndim == 2 else array.shape[2]
            writer = png.Writer(width=array.shape[1], height=array.shape[0], bitdepth=16,
                                greyscale=planes in (1, 2), alpha=planes in (2, 4))
            with open(tmp, "wb") as fh:
                writer.write(fh, array.reshape(array.shape[0], -1))
            if picture.icc_profile:
                _add_png_icc(tmp, picture.icc_profile)
        else:
            img = Image.fromarray(array)
            options = {"icc_profile": picture.icc_profile} if picture.icc_profile else {}
            if pil_format in ("JPEG", "WEBP"):
                options["quality"] = quality
            img.save(tmp, format=pil_format, **options)
    return path


def _add_png_icc(path: Path, profile: bytes) -> None:
    """Insert an iCCP chunk after IHDR (pypng writes none)."""
    import struct
    import zlib

    data = path.read_bytes()
    ihdr_end = 8 + 8 + 13 + 4
    body = b"icc\x00\x00" + zlib.compress(profile)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body) & 0xFFFFFFFF)
    path.write_bytes(data[:ihdr_end] + chunk + data[ihdr_end:])
