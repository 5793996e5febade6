"""Real-world image files: modes, depth, alpha, orientation, profiles, and broken files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import png
import pytest
from PIL import Image

from trtsr.errors import TrtsrError
from trtsr.runtime.images import read_image, write_image

DATA = Path(__file__).parents[1] / "data"


def test_grayscale_stays_grayscale(tmp_path):
    pic = read_image(DATA / "wolf_gray.jpg")
    assert pic.grayscale and pic.alpha is None and pic.bits == 8
    write_image(pic, tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as img:
        assert img.mode == "L" and img.size == (236, 236)


def test_rgba_keeps_alpha(tmp_path):
    pic = read_image(DATA / "children-alpha.png")
    assert pic.alpha is not None and pic.alpha.min() < 255
    write_image(pic, tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as img, Image.open(DATA / "children-alpha.png") as src:
        assert img.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(img), np.asarray(src))


def test_16bit_png_keeps_full_depth(tmp_path):
    pic = read_image(DATA / "tree_alpha_16bit.png")
    assert pic.bits == 16 and pic.alpha is not None and pic.icc_profile
    write_image(pic, tmp_path / "d.png")
    w, h, rows, info = png.Reader(filename=str(tmp_path / "d.png")).asDirect()
    written = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(h, w, 4)
    w0, h0, rows0, _ = png.Reader(filename=str(DATA / "tree_alpha_16bit.png")).asDirect()
    source = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows0]).reshape(h0, w0, 4)
    assert info["bitdepth"] == 16
    np.testing.assert_array_equal(written, source)
    assert (source % 257 != 0).any(), "the sample really uses 16 bits"
    with Image.open(tmp_path / "d.png") as img:
        assert img.info.get("icc_profile") == pic.icc_profile


def test_icc_profile_is_kept(tmp_path):
    pic = read_image(DATA / "wolf_gray.jpg")
    assert pic.icc_profile
    write_image(pic, tmp_path / "p.jpg")
    with Image.open(tmp_path / "p.jpg") as img:
        assert img.info.get("icc_profile") == pic.icc_profile


def test_exif_orientation_is_applied(tmp_path):
    with Image.open(DATA / "ADE_val_00000114.jpg") as src:
        img = src.crop((0, 0, 200, 120))
        exif = img.getexif()
        exif[0x0112] = 6  # rotate 90 degrees clockwise to display
        img.save(tmp_path / "o.jpg", exif=exif.tobytes())
    pic = read_image(tmp_path / "o.jpg")
    assert pic.size == (120, 200)


@pytest.mark.parametrize("mode", ["P", "CMYK"])
def test_palette_and_cmyk_become_rgb(tmp_path, mode):
    with Image.open(DATA / "0030.jpg") as src:
        src.convert(mode).save(tmp_path / f"m.{'png' if mode == 'P' else 'tif'}")
    pic = read_image(tmp_path / f"m.{'png' if mode == 'P' else 'tif'}")
    assert pic.rgb.shape == (220, 220, 3) and not pic.grayscale and pic.alpha is None


def _huge_png(path: Path) -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("missing.png", None, "file not found"),
        ("empty.png", lambda p: p.write_bytes(b""), "file is empty"),
        ("corrupt.png", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x13" * 200), "cannot decode|not an image"),
        ("truncated.jpg", lambda p: p.write_bytes((DATA / "0030.jpg").read_bytes()[:3000]), "truncated or corrupt"),
        ("huge.png", _huge_png, "too large.*10000000000 pixels"),
        ("notes.png", lambda p: p.write_text("just some text"), "not an image file"),
    ],
)
def test_broken_files_give_one_line_errors(tmp_path, name, make, message):
    path = tmp_path / name
    if make is not None:
        make(path)
    with pytest.raises(TrtsrError, match=message) as err:
        read_image(path)
    text = str(err.value)
    assert name in text and "\n" not in text


def test_failed_write_leaves_nothing(tmp_path):
    pic = read_image(DATA / "0014.jpg")
    with pytest.raises(TrtsrError, match="unknown output format"):
        write_image(pic, tmp_path / "x.bmpx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("orientation", range(1, 9))
def test_full_depth_orientation_matches_pillow(orientation):
    from PIL import ImageOps

    from trtsr.runtime.images import Picture, _orient

    with Image.open(DATA / "0014.jpg") as src:
        img = src.convert("RGB").crop((0, 0, 30, 20))
    exif = img.getexif()
    exif[0x0112] = orientation
    img.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(img)).astype(np.float32)
    got = _orient(Picture(np.asarray(img).astype(np.float32)), orientation).rgb
    np.testing.assert_array_equal(got, expected)
