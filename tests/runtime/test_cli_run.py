"""`trtsr run` on real images through ONNX Runtime with the shipped default graph."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import png
import pytest
from PIL import Image

DATA = Path(__file__).parents[1] / "data"


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "trtsr", "run", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Every sample upscaled once by the CLI into one folder."""
    folder = tmp_path_factory.mktemp("run")
    inputs = [DATA / n for n in ("0014.jpg", "00017_gray.png", "wolf_gray.jpg", "children-alpha.png",
                                 "tree_alpha_16bit.png")]
    proc = _run(*inputs, "-o", folder, "--format", "png")
    assert proc.returncode == 0, proc.stderr
    assert "upscaling x4 with onnxruntime-cpu" in proc.stderr
    return folder, proc


@pytest.mark.parametrize(
    ("name", "mode", "size"),
    [
        ("0014_x4.png", "RGB", (716, 716)),
        ("00017_gray_x4.png", "L", (2000, 1404)),
        ("wolf_gray_x4.png", "L", (944, 944)),
        ("children-alpha_x4.png", "RGBA", (2264, 1400)),
    ],
)
def test_modes_and_sizes(outputs, name, mode, size):
    with Image.open(outputs[0] / name) as img:
        assert img.mode == mode and img.size == size


def test_alpha_is_upscaled(outputs):
    with Image.open(outputs[0] / "children-alpha_x4.png") as out, Image.open(DATA / "children-alpha.png") as src:
        alpha = np.asarray(out)[:, :, 3].astype(float)
        expected = np.asarray(src.getchannel("A").resize(out.size, Image.Resampling.BICUBIC)).astype(float)
    assert np.abs(alpha - expected).mean() < 1.0


def test_16bit_stays_16bit(outputs):
    width, height, rows, info = png.Reader(filename=str(outputs[0] / "tree_alpha_16bit_x4.png")).asDirect()
    assert (width, height) == (1368, 1024) and info["bitdepth"] == 16 and info["alpha"]
    data = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
    assert (data % 257 != 0).any()


def test_one_line_per_file(outputs):
    lines = outputs[1].stdout.strip().splitlines()
    assert len(lines) == 5 and all(" -> " in line for line in lines)


def test_bad_file_fails_alone(tmp_path):
    shutil.copy(DATA / "0014.jpg", tmp_path / "good.jpg")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "empty.jpg").write_bytes(b"")
    proc = _run(tmp_path, "-o", tmp_path / "out")
    assert proc.returncode == 1
    assert (tmp_path / "out" / "good_x4.jpg").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good_x4.jpg"]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and any("bad.png" in e for e in errors) and any("empty.jpg" in e for e in errors)
    assert "Traceback" not in proc.stderr


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    shutil.copy(DATA / "0014.jpg", tmp_path / "a.jpg")
    (tmp_path / "a_x4.jpg").write_bytes(b"keep me")
    proc = _run(tmp_path / "a.jpg")
    assert proc.returncode == 0 and "exists" in proc.stderr
    assert (tmp_path / "a_x4.jpg").read_bytes() == b"keep me"
    proc = _run(tmp_path / "a.jpg", "--overwrite")
    assert proc.returncode == 0
    with Image.open(tmp_path / "a_x4.jpg") as img:
        assert img.size == (716, 716)


def test_input_is_never_overwritten(tmp_path):
    shutil.copy(DATA / "0014.jpg", tmp_path / "a.jpg")
    before = (tmp_path / "a.jpg").read_bytes()
    proc = _run(tmp_path / "a.jpg", "--suffix", "", "--overwrite")
    assert proc.returncode == 1 and "would replace the input" in proc.stderr
    assert (tmp_path / "a.jpg").read_bytes() == before


def test_glob_and_no_match(tmp_path):
    for name in ("x1.jpg", "x2.jpg"):
        shutil.copy(DATA / "0014.jpg", tmp_path / name)
    proc = _run(str(tmp_path / "x*.jpg"), "-o", tmp_path / "o", "--no-padcfg", "--format", "webp")
    if proc.returncode != 0 and "export" in proc.stderr:
        pytest.fail(proc.stderr)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["x1_x4.webp", "x2_x4.webp"]
    proc = _run(str(tmp_path / "nothing*.png"))
    assert proc.returncode == 1 and "no file matches" in proc.stderr


def test_python_api_gives_the_same_pixels_as_the_cli(tmp_path):
    from trtsr import Upscaler

    proc = _run(DATA / "0030.jpg", "-o", tmp_path / "cli.png")
    assert proc.returncode == 0, proc.stderr
    with Image.open(DATA / "0030.jpg") as img, Upscaler(backend="onnxruntime") as up:
        api = np.asarray(up.upscale(img.convert("RGB")))
    with Image.open(tmp_path / "cli.png") as cli:
        np.testing.assert_array_equal(np.asarray(cli), api)


def test_jpeg_output_of_rgba_is_flattened(tmp_path):
    proc = _run(DATA / "children-alpha.png", "-o", tmp_path / "flat.jpg")
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "flat.jpg") as img:
        assert img.mode == "RGB" and img.size == (2264, 1400)


def test_two_inputs_with_one_output_both_fail_before_any_work(tmp_path):
    """Same file name in two folders into one output folder, and a.jpg + a.png with --format png."""
    first, second, out_dir = tmp_path / "A", tmp_path / "B", tmp_path / "out"
    for folder in (first, second):
        folder.mkdir()
        shutil.copy(DATA / "0014.jpg", folder / "img.jpg")
    shutil.copy(DATA / "0030.jpg", tmp_path / "a.jpg")
    Image.open(DATA / "0014.jpg").save(tmp_path / "a.png")
    Image.open(DATA / "0030.jpg").crop((0, 0, 40, 32)).save(tmp_path / "other.jpg")
    proc = _run(first, second, tmp_path / "a.jpg", tmp_path / "a.png", tmp_path / "other.jpg", "-o", out_dir,
                "--format", "png")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 4 and all("would also be written from" in line for line in errors)
    assert "Traceback" not in proc.stderr
    # nothing of the clashing inputs was written; the input that clashes with none was upscaled
    assert sorted(p.name for p in out_dir.iterdir()) == ["other_x4.png"]
    assert "4 of 5 failed" in proc.stderr
