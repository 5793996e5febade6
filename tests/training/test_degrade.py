"""The degradation pipeline on a real photograph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trtsr.training import degrade as dg


def test_gaussian_kernel_is_normalised_and_oriented():
    k = dg.gaussian_kernel(2.0, 2.0, 0.0, 11)
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(k, k.T) and torch.allclose(k, k.flip(0))
    aniso = dg.gaussian_kernel(3.0, 0.5, 0.0, 15)  # wide along x, narrow along y
    assert float(aniso[7].sum()) > float(aniso[:, 7].sum())
    turned = dg.gaussian_kernel(3.0, 0.5, np.pi / 2, 15)
    assert torch.allclose(turned, aniso.T, atol=1e-6)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_degrade_gives_the_lr_size_in_range(photo, scale):
    hr = photo[:, :96, :120]
    rng = np.random.default_rng(0)
    for _ in range(6):
        lr = dg.degrade(hr, scale, rng)
        assert lr.shape == (3, 96 // scale, 120 // scale)
        assert float(lr.min()) >= 0.0 and float(lr.max()) <= 1.0


def test_degrade_is_reproducible_and_mixes_both_branches(photo):
    hr = photo[:, :96, :96]
    a = [dg.degrade(hr, 4, np.random.default_rng(7)) for _ in range(2)]
    assert torch.equal(a[0], a[1])
    clean = dg.bicubic_down(hr, 4)
    rng = np.random.default_rng(1)
    outs = [dg.degrade(hr, 4, rng, dg.DegradationSettings(bicubic_prob=0.5)) for _ in range(40)]
    same = sum(torch.equal(o, clean) for o in outs)
    assert 8 <= same <= 32  # both branches are drawn
    always = dg.degrade(hr, 4, rng, dg.DegradationSettings(bicubic_prob=1.0))
    assert torch.equal(always, clean)


def test_second_order_chain_blurs_and_adds_noise(photo):
    hr = photo[:, :128, :128]
    clean = dg.bicubic_down(hr, 4)
    rng = np.random.default_rng(3)
    diffs = [float((dg.second_order(hr, 4, rng) - clean).abs().mean()) for _ in range(10)]
    assert min(diffs) > 0.005  # every sample is visibly degraded
    assert max(diffs) < 0.5  # but still the same picture


def test_jpeg_round_trip_loses_a_little(photo):
    x = photo[:, :64, :64]
    y = dg.jpeg(x, 30)
    err = float((x - y).abs().mean())
    assert 0.002 < err < 0.1
    assert float((x - dg.jpeg(x, 95)).abs().mean()) < err


def test_realistic_is_fixed(photo):
    hr = photo[:, :64, :64]
    assert torch.equal(dg.realistic(hr, 4), dg.realistic(hr, 4))
    assert dg.realistic(hr, 4).shape == (3, 16, 16)


def test_bad_scale_or_size_is_refused(photo):
    with pytest.raises(ValueError, match="scale"):
        dg.degrade(photo[:, :64, :64], 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="divisible"):
        dg.degrade(photo[:, :65, :64], 4, np.random.default_rng(0))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_moderate_chain_is_milder_and_reproducible(photo, scale):
    hr = photo[:, :96, :120]
    settings = dg.ModerateSettings(bicubic_prob=0.0)
    a = dg.degrade(hr, scale, np.random.default_rng(3), settings)
    assert torch.equal(a, dg.degrade(hr, scale, np.random.default_rng(3), settings))
    assert a.shape == (3, 96 // scale, 120 // scale)
    clean = dg.bicubic_down(hr, scale)
    rng_m, rng_r = np.random.default_rng(5), np.random.default_rng(5)
    moderate = [float((dg.degrade(hr, scale, rng_m, settings) - clean).abs().mean()) for _ in range(12)]
    heavy = [float((dg.degrade(hr, scale, rng_r, dg.DegradationSettings(bicubic_prob=0.0)) - clean).abs().mean())
             for _ in range(12)]
    # every moderate sample is damaged, and on average less than by the second-order chain
    assert min(moderate) > 0 and sum(moderate) < sum(heavy)
