"""The Python API on ONNX Runtime: shapes, modes, tiling without seams, small inputs, no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trtsr.errors import TrtsrError
from trtsr.runtime import Upscaler, read_image

DATA = Path(__file__).parents[1] / "data"


def _crop(name, box):
    with Image.open(DATA / name) as img:
        return np.asarray(img.convert("RGB").crop(box))


def test_upscale_array_kinds(upscaler):
    rgb = _crop("0030.jpg", (0, 0, 40, 30))
    assert upscaler.upscale(rgb).shape == (120, 160, 3)
    gray = rgb[:, :, 0]
    assert upscaler.upscale(gray).shape == (120, 160)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])
    out = upscaler.upscale(rgba)
    assert out.shape == (120, 160, 4) and np.abs(out[:, :, 3].astype(int) - 200).max() <= 1
    deep = (rgb.astype(np.uint16) * 257)
    out16 = upscaler.upscale(deep)
    assert out16.dtype == np.uint16 and out16.shape == (120, 160, 3)


def test_pil_in_pil_out(upscaler):
    with Image.open(DATA / "0014.jpg") as img:
        out = upscaler.upscale(img.crop((0, 0, 30, 20)))
    assert isinstance(out, Image.Image) and out.size == (120, 80) and out.mode == "RGB"


def test_inputs_below_the_graph_minimum_are_padded(upscaler):
    tiny = _crop("0030.jpg", (50, 50, 58, 61))
    out = upscaler.upscale(tiny)
    assert out.shape == (44, 32, 3)


def test_backend_is_named(upscaler):
    assert upscaler.backend_name == "onnxruntime-cpu"


def test_tiled_model_run_agrees_with_the_whole_image():
    image = read_image(DATA / "ADE_val_00000114.jpg").rgb[:96, :120]
    with Upscaler("default", backend="onnxruntime", tile=256) as whole:
        reference = whole.upscale_picture(_pic(image)).rgb
    with Upscaler("default", backend="onnxruntime", tile=48, overlap=16) as tiled:
        result = tiled.upscale_picture(_pic(image)).rgb
    assert result.shape == reference.shape == (384, 480, 3)
    # GroupNorm statistics and self-attention span the whole input, so a tile sees less
    # context than the full image: the same picture, not the same numbers. (The exact
    # blending is checked with a local operator in test_tiling.py.)
    inner = np.s_[24:-24, 24:-24]
    assert np.corrcoef(result[inner].ravel(), reference[inner].ravel())[0, 1] > 0.7


def _pic(rgb):
    from trtsr.runtime.images import Picture

    return Picture(np.ascontiguousarray(rgb))


def test_tile_option_is_checked():
    with pytest.raises(TrtsrError, match="tile must be at least"):
        Upscaler("default", backend="onnxruntime", tile=4)


def test_unknown_backend():
    with pytest.raises(TrtsrError, match="unknown backend"):
        Upscaler("default", backend="cuda")


def test_engine_without_gpu_says_so(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"0")
    (tmp_path / "m.engine.json").write_text("{}")
    with pytest.raises(TrtsrError):
        Upscaler(engine=engine)


def test_runtime_imports_no_torch_onnx_or_diffusers():
    code = (
        "import sys, numpy as np\n"
        "import trtsr.runtime\n"
        "from trtsr import Upscaler\n"
        "with Upscaler('default', backend='onnxruntime') as up:\n"
        "    up.upscale(np.zeros((20, 20, 3), np.uint8))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'diffusers', 'onnxscript'))\n"
        "print('LOADED', bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout
