"""`--color-fix`: large-scale colour from the input, fine detail from the network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trtsr.errors import TrtsrError
from trtsr.runtime.color import color_fix, low_frequencies, upscaled_reference

DATA = Path(__file__).parents[1] / "data"


def load_rgb(name: str) -> np.ndarray:
    with Image.open(DATA / name) as img:
        return np.asarray(img.convert("RGB"))


def _drifted(lr: np.ndarray, scale: int):
    """A stand-in output: the bicubic upscale, its red channel 30 levels too bright, plus a fine checkerboard."""
    ref = upscaled_reference(lr.astype(np.float32), lr.shape[0] * scale, lr.shape[1] * scale)
    yy, xx = np.indices(ref.shape[:2])
    checker = np.where((yy + xx) % 2 == 0, 6.0, -6.0)[..., None].astype(np.float32)
    out = ref + checker
    out[..., 0] += 30.0
    return np.clip(out, 0, 255), ref, checker


@pytest.mark.parametrize("method", ["wavelet", "adain"])
def test_colour_drift_is_taken_back_and_detail_kept(method):
    lr = load_rgb("0030.jpg")[40:104, 50:130]
    out, ref, checker = _drifted(lr, 4)
    fixed = color_fix(out, lr, method)
    assert fixed.shape == out.shape
    drift_before = abs(float((out - ref)[..., 0].mean()))
    drift_after = abs(float((fixed - ref)[..., 0].mean()))
    assert drift_before > 10 and drift_after < 2.0  # (clipping at 255 eats part of the +30)
    # the checkerboard (the highest frequency there is) survives
    kept = float(((fixed - ref) * checker).mean()) / float((checker * checker).mean())
    assert kept > 0.8


def test_wavelet_low_frequencies_are_smooth_and_keep_the_mean():
    rng = np.random.default_rng(0)
    noise = rng.normal(128, 40, (96, 96, 3)).astype(np.float32)
    low = low_frequencies(noise)
    assert abs(float(low.mean()) - float(noise.mean())) < 1.0
    assert float(low.std()) < 0.1 * float(noise.std())


def test_unknown_fix_is_one_line():
    with pytest.raises(TrtsrError, match="unknown colour fix 'sepia'"):
        color_fix(np.zeros((8, 8, 3), np.float32), np.zeros((2, 2, 3), np.uint8), "sepia")


def test_the_upscaler_applies_it_to_a_real_picture(tmp_path):
    """The default model at x4 through ONNX Runtime: with the fix its large-scale colour sits closer to the input
    upscaled with bicubic than without (it can only move towards it)."""
    from trtsr.pipeline import Upscaler

    lr = load_rgb("0030.jpg")[:72, :72]
    with Upscaler(backend="onnxruntime") as plain, Upscaler(backend="onnxruntime", color_fix="wavelet") as fixed:
        a, b = plain.upscale(lr).astype(np.float32), fixed.upscale(lr).astype(np.float32)
    ref = np.asarray(Image.fromarray(lr).resize((288, 288), Image.Resampling.BICUBIC), dtype=np.float32)
    far = float(np.abs(low_frequencies(a) - low_frequencies(ref)).mean())
    near = float(np.abs(low_frequencies(b) - low_frequencies(ref)).mean())
    assert near < far and near < 1.5
    assert not np.array_equal(a, b)
