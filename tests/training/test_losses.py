"""Each training loss on inputs whose value is known in closed form."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trtsr.training import losses


def test_l1_is_the_mean_absolute_difference():
    a = torch.zeros(2, 3, 8, 8)
    b = torch.full((2, 3, 8, 8), 0.5)
    b[0, 0, 0, 0] = 4.5
    assert float(losses.l1(a, b)) == pytest.approx((0.5 * (2 * 3 * 64 - 1) + 4.5) / (2 * 3 * 64))


def test_grid_bins_mark_multiples_of_an_eighth_with_their_band():
    bins = losses.grid_bins(64, band=1)
    expected = {(8 * k + d) % 64 for k in range(8) for d in (-1, 0, 1)}
    assert set(torch.nonzero(bins).flatten().tolist()) == expected
    assert set(torch.nonzero(losses.grid_bins(64, band=0)).flatten().tolist()) == set(range(0, 64, 8))


def test_fourier_mask_is_whole_rows_and_columns():
    mask = losses.fourier_mask(64, 48, band=1)
    assert mask.shape == (64, 48)
    rows, cols = losses.grid_bins(64, 1), losses.grid_bins(48, 1)
    assert torch.equal(mask.bool(), rows[:, None] | cols[None, :])
    assert float(mask.sum()) == 24 * 48 + 24 * 64 - 24 * 24


def _wave(u: int, v: int, amplitude: float, size: int = 64) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                          indexing="ij")
    wave = amplitude * torch.cos(2 * math.pi * (u * y + v * x) / size)
    return wave.float().expand(1, 3, size, size).clone()


def test_mfs_loss_of_a_wave_on_the_grid_has_its_closed_form_value():
    # cos at (8, 3) has two FFT bins of magnitude a*sqrt(HW)/2 (ortho norm), both on masked row 8 / 56.
    a = 0.25
    got = float(losses.mfs_loss(_wave(8, 3, a), torch.zeros(1, 3, 64, 64), band=1))
    assert got == pytest.approx(2 * (a * 64 / 2) / 2496, rel=1e-4)


def test_mfs_loss_ignores_differences_off_the_grid():
    off = float(losses.mfs_loss(_wave(3, 3, 0.5), torch.zeros(1, 3, 64, 64), band=1))
    assert off == pytest.approx(0.0, abs=1e-6)
    # and only amplitudes count: a shifted copy of the same image costs nothing
    img = torch.rand(1, 3, 64, 64)
    assert float(losses.mfs_loss(torch.roll(img, (8, 16), dims=(2, 3)), img)) == pytest.approx(0.0, abs=1e-5)


def test_lattice_points_are_the_x8_frequencies_but_dc():
    assert len(losses.lattice_points()) == 63 and (0, 0) not in losses.lattice_points()
    odd = losses.lattice_points(odd_only=True)
    assert len(odd) == 48 and (1, 0) in odd and (2, 4) not in odd


def test_lattice_log_prominence_known_values():
    # flat power 1 except 5 at the lattice bin (kH/8, lW/8) = (24, 40) and 2 at one bin beside it
    power = torch.ones(64, 64)
    power[24, 40] = 5.0
    power[26, 40] = 2.0
    got = losses.lattice_log_prominence(power, [(3, 5), (1, 1)])
    torch.testing.assert_close(got, torch.tensor([math.log(5.0 / (9.0 / 8.0)), 0.0]))


def test_lattice_loss_is_zero_on_the_target_and_grows_with_an_x8_grid():
    img = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    assert float(losses.lattice_loss(img, img)) == 0.0
    # a faint 8x8-periodic pattern puts power exactly on the lattice bins
    cell = torch.rand(8, 8, generator=torch.Generator().manual_seed(2)) * 0.05
    faint = float(losses.lattice_loss(img + cell.repeat(8, 8), img))
    strong = float(losses.lattice_loss(img + 4 * cell.repeat(8, 8), img))
    assert 0.0 < faint < strong
    # the loss only pulls lattice peaks down: an output without the target's grid costs nothing
    smooth = _wave(3, 5, 0.3)
    assert float(losses.lattice_loss(smooth, smooth + cell.repeat(8, 8))) == 0.0
    assert float(losses.lattice_loss(smooth + cell.repeat(8, 8), smooth)) > 5.0
    # nothing at the lattice bins (a wave at 3 cycles over 64 px) costs nothing either
    assert float(losses.lattice_loss(img + _wave(3, 5, 0.3), img)) == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="multiples of 8"):
        losses.lattice_loss(torch.zeros(1, 1, 60, 64), torch.zeros(1, 1, 60, 64))


def test_lattice_loss_pulls_only_the_lattice_peaks_down():
    img = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(4))
    noisy = (img + 0.05 * torch.rand(8, 8, generator=torch.Generator().manual_seed(5)).repeat(8, 8)).requires_grad_()
    losses.lattice_loss(noisy, img).backward()
    with torch.no_grad():
        stepped = noisy - 0.02 * noisy.grad / noisy.grad.abs().max()
    assert float(losses.lattice_loss(stepped, img)) < float(losses.lattice_loss(noisy.detach(), img))


def _gain(sigma: float, f: float) -> float:
    """Response at f cycles/px of the normalised, truncated (radius ceil(3 sigma)) sampled Gaussian."""
    taps = range(-math.ceil(3 * sigma), math.ceil(3 * sigma) + 1)
    w = [math.exp(-(k * k) / (2 * sigma**2)) for k in taps]
    return sum(wk * math.cos(2 * math.pi * f * k) for wk, k in zip(w, taps, strict=True)) / sum(w)


def test_band_energy_of_a_wave_has_its_closed_form_value():
    # Grey stripes of period 4 px along the rows, amplitude 0.5: inside the image each
    # band is the wave times the difference of the two blurs' gains, RMS amplitude/sqrt(2).
    rows = torch.arange(96, dtype=torch.float64)
    wave = 0.5 * torch.cos(2 * math.pi * rows / 4)[:, None].expand(96, 96)
    img = wave.expand(1, 3, 96, 96).contiguous()
    e = losses.band_energy(img, window=16)
    assert e.shape == (1, 2, 11, 11)
    g1, g2 = _gain(1.0, 0.25), _gain(2.0, 0.25)
    inner = e[0, :, 2:-2, 2:-2]  # windows clear of the reflect borders (6 px for sigma 2 + sigma 1)
    assert inner[0].flatten().tolist() == pytest.approx([0.5 * (1 - g1) / math.sqrt(2)] * 49, rel=1e-6)
    assert inner[1].flatten().tolist() == pytest.approx([0.5 * (g1 - g2) / math.sqrt(2)] * 49, rel=1e-5)
    # a flat image has no detail: only the 1e-8 floor under the square root is left
    assert float(losses.band_energy(torch.full((1, 3, 64, 64), 0.3)).max()) < 1e-3
    assert float(losses.band_energy(torch.zeros(1, 3, 32, 32)).max()) == pytest.approx(1e-4)


def test_texture_loss_matches_the_amount_of_detail_not_its_position():
    img = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(6)) * 2 - 1
    assert float(losses.texture_loss(img, img)) == pytest.approx(0.0, abs=1e-7)
    # the same texture shifted by 1 px costs (almost) nothing; L1 would charge it in full
    shifted = torch.roll(img, 1, dims=-1)
    assert float(losses.texture_loss(shifted, img)) < 0.02 * float(losses.band_energy(img).mean())
    assert float(losses.l1(shifted, img)) > 0.5
    # half the contrast: half the band RMS is missing everywhere (up to the 1e-8 floor)
    half = float(losses.texture_loss(0.5 * img, img))
    assert half == pytest.approx(0.5 * float(losses.band_energy(img).mean()), rel=1e-3)
    # a blurred image gains detail under one gradient step
    soft = losses.gaussian_blur(img, 1.5).requires_grad_()
    losses.texture_loss(soft, img).backward()
    with torch.no_grad():
        stepped = soft - 0.05 * soft.grad / soft.grad.abs().max()
    assert float(losses.band_energy(stepped).mean()) > float(losses.band_energy(soft.detach()).mean())


def test_randpad_pads_reflect_with_the_drawn_offsets():
    img = torch.rand(2, 3, 24, 32)
    padded, (ph, pw) = losses.randpad(img, pads=(3, 6))
    assert (ph, pw) == (3, 6)
    assert padded.shape == (2, 3, 32, 40)
    assert torch.equal(padded[..., 3:27, 6:38], img)
    assert torch.equal(padded, F.pad(img, (6, 2, 3, 5), mode="reflect"))


def test_randpad_draws_every_offset_and_is_seeded():
    gen = torch.Generator().manual_seed(0)
    seen = {losses.randpad(torch.rand(1, 1, 16, 16), gen)[1] for _ in range(400)}
    assert {p for p, _ in seen} == set(range(8)) and {p for _, p in seen} == set(range(8))
    a = losses.randpad(torch.rand(1, 1, 16, 16), torch.Generator().manual_seed(5))[1]
    b = losses.randpad(torch.rand(1, 1, 16, 16), torch.Generator().manual_seed(5))[1]
    assert a == b
    with pytest.raises(ValueError):
        losses.randpad(torch.rand(1, 1, 16, 16), pads=(8, 0))


def test_adversarial_losses_at_known_logits():
    zeros = [torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 2, 2)]
    assert float(losses.generator_adversarial(zeros)) == pytest.approx(2 * math.log(2))
    assert float(losses.discriminator_loss(zeros, zeros)) == pytest.approx(4 * math.log(2))
    ones = [torch.ones(1, 1, 3, 3)]
    assert float(losses.generator_adversarial(ones)) == pytest.approx(math.log1p(math.exp(-1)))
    assert float(losses.discriminator_loss(ones, ones)) == pytest.approx(math.log1p(math.exp(-1))
                                                                          + math.log1p(math.exp(1)))


def test_dists_distance_known_values():
    feats = [torch.rand(2, 4, 8, 8), torch.rand(2, 6, 4, 4)]
    assert float(losses.dists_distance(feats, feats)) == pytest.approx(0.0, abs=1e-6)
    # constant maps: structure term is c2/c2 = 1, texture (2ab + c1) / (a^2 + b^2 + c1)
    a, b = 0.5, 0.25
    fx, fy = [torch.full((1, 3, 5, 5), a)], [torch.full((1, 3, 5, 5), b)]
    texture = (2 * a * b + losses.DISTS_C1) / (a * a + b * b + losses.DISTS_C1)
    assert float(losses.dists_distance(fx, fy)) == pytest.approx(1 - (texture + 1) / 2, rel=1e-5)
    # anti-correlated maps with equal statistics: structure term -1, texture 1
    x = torch.randn(1, 1, 16, 16)
    got = float(losses.dists_distance([x - x.mean()], [-(x - x.mean())]))
    assert got == pytest.approx(1.0, abs=1e-3)


def test_highpass_loss_reads_only_what_the_blur_removes():
    img = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(8)) * 2 - 1
    assert float(losses.highpass_loss(img, img)) == 0.0
    # a constant offset and a flat image have no high frequencies
    assert float(losses.highpass_loss(img + 0.3, img)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.highpass(torch.full((1, 3, 32, 32), 0.7)).abs().max()) < 1e-6
    # half the contrast misses half of the residual, pixel for pixel
    expected = 0.5 * float(losses.highpass(img).abs().mean())
    assert float(losses.highpass_loss(0.5 * img, img)) == pytest.approx(expected, rel=1e-5)
    # position matters, unlike texture_loss: a 1-px shift of noise costs over 70% of what no detail costs
    shifted = torch.roll(img, 1, dims=-1)
    assert float(losses.highpass_loss(shifted, img)) > 0.7 * float(losses.highpass(img).abs().mean())
    # a wider blur removes more, so the same image has a larger residual
    assert float(losses.highpass(img, 4.0).abs().mean()) > float(losses.highpass(img, 1.0).abs().mean())
    # gradient reaches the student only
    soft = losses.gaussian_blur(img, 1.5).requires_grad_()
    target = img.clone().requires_grad_()
    losses.highpass_loss(soft, target).backward()
    assert soft.grad is not None and float(soft.grad.abs().sum()) > 0 and target.grad is None


def test_cell_loss_sees_a_pattern_repeated_in_every_cell_not_the_content(photo):
    target = photo[None, :, :96, :128] * 2 - 1
    pattern = torch.zeros(1, 3, 8, 8)
    pattern[..., ::2, ::2] = 0.01  # a faint fixed 8x8 pattern, about 0.6 grey levels
    tiled = pattern.repeat(1, 1, 12, 16)
    assert float(losses.cell_loss(target, target)) == 0.0
    with_pattern = float(losses.cell_loss(target + tiled, target))
    assert with_pattern == pytest.approx(float((pattern - pattern.mean()).abs().mean()), rel=1e-4)
    # an error of the same size that is not cell-periodic (independent per pixel) scores far less
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    noise = noise * (0.01 / float(noise.abs().mean()))
    assert float(losses.cell_loss(target + noise, target)) < 0.2 * with_pattern
    with pytest.raises(ValueError, match="multiples of 8"):
        losses.cell_loss(target[..., :90], target[..., :90])
