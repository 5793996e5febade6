"""The pixel-space network: PadCFG (Eq. 7), alignment to any size, the one-step parameterisations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trtsr.models import TINY, GenDRPix, ModelConfig, PixelUpscaler, build_preset
from trtsr.models.pixel import mirror_pad
from trtsr.sizes import RIGHT_RESERVE, aligned_width


@pytest.fixture(scope="module")
def tiny() -> GenDRPix:
    return build_preset("tiny").eval()


def test_presets_have_the_documented_sizes():
    full = ModelConfig(name="gendr-pix")
    assert full.in_channels == 192 and full.alignment == 64
    tiny = build_preset("tiny")
    params = sum(p.numel() for p in tiny.unet.parameters())
    assert 1_000_000 < params < 5_000_000
    assert tiny.unet.conv_in.in_channels == 192 and tiny.unet.conv_out.out_channels == 192


def test_build_preset_is_reproducible():
    a, b = build_preset("tiny"), build_preset("tiny")
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name



@pytest.mark.parametrize("shape", [(60, 61), (64, 64), (120, 56), (97, 130)])
def test_restore_keeps_any_size(tiny, shape):
    x = torch.rand(1, 3, *shape) * 2 - 1
    with torch.no_grad():
        assert tiny.restore(x, 1.8).shape == x.shape
        assert tiny.restore(x, None).shape == x.shape


def test_padcfg_is_equation_7(tiny):
    """y = w * G(pad(x,[4,4,4,4]), c_pos) + (1 - w) * G(pad(x,[3,5,3,5]), c_neg), cropped by 4."""
    x = torch.rand(1, 3, 56, 120) * 2 - 1  # 56 + 8 and 120 + 8 are multiples of 64: no alignment pad
    w = 1.8
    with torch.no_grad():
        pos = tiny.predict(F.pad(x, (4, 4, 4, 4), mode="reflect"), tiny.prompt_embeds[0:1])
        neg = tiny.predict(F.pad(x, (3, 5, 3, 5), mode="reflect"), tiny.prompt_embeds[1:2])
        expected = (w * pos + (1 - w) * neg)[..., 4:-4, 4:-4]
        got = tiny.restore(x, w, reserve=0)
    # Batch 2 and batch 1 runs round differently; float32 noise only.
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_guidance_one_is_the_positive_branch(tiny):
    x = torch.rand(1, 3, 56, 56) * 2 - 1
    with torch.no_grad():
        pos = tiny.predict(F.pad(x, (4, 4, 4, 4), mode="reflect"), tiny.prompt_embeds[0:1])[..., 4:-4, 4:-4]
        torch.testing.assert_close(tiny.restore(x, 1.0, reserve=0), pos, atol=1e-4, rtol=1e-4)


def test_the_picture_keeps_clear_of_the_canvas_right_edge_in_its_own_mirror_image(tiny):
    """56 x 120 needs no alignment pad, but the right reserve adds a 64-px column, filled with the picture's
    mirror image (edge pixel repeated), before PadCFG's reflect pad."""
    x = torch.rand(1, 3, 56, 120) * 2 - 1
    assert RIGHT_RESERVE == 28 and aligned_width(120, 64, 8) == 184
    mirrored = torch.cat([x, x.flip(-1)[..., :64]], dim=-1)  # columns 120..183 are 119, 118, ... 56
    with torch.no_grad():
        pos = tiny.predict(F.pad(mirrored, (4, 4, 4, 4), mode="reflect"), tiny.prompt_embeds[0:1])
        torch.testing.assert_close(tiny.restore(x, 1.0), pos[..., 4:-4, 4:124], atol=1e-4, rtol=1e-4)


def test_mirror_pad_folds_back_and_forth_past_a_narrow_picture():
    x = torch.arange(3.0).view(1, 1, 1, 3)
    assert mirror_pad(x, 1, 8).tolist() == [[[[0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1]] * 2]]


class _ConstantUNet(torch.nn.Module):
    """Stands in for the UNet to pin down the x0 formulas; returns a fixed prediction."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value
        self.time_proj = torch.nn.Identity()

    def forward(self, z, t, encoder_hidden_states, return_dict=False):
        return (torch.full_like(z, self.value),)


@pytest.mark.parametrize(
    ("prediction_type", "expected"),
    [
        ("epsilon", lambda z, o: (z - math.sqrt(0.5) * o) / math.sqrt(0.5)),
        ("v_prediction", lambda z, o: math.sqrt(0.5) * z - math.sqrt(0.5) * o),
        ("sample", lambda z, o: torch.full_like(z, o)),
    ],
)
def test_one_step_parameterisation(prediction_type, expected):
    config = ModelConfig(**{**TINY.to_dict(), "prediction_type": prediction_type})
    model = GenDRPix(config, unet=_ConstantUNet(0.25))
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    got = model.predict(x, model.prompt_embeds[0:1])
    torch.testing.assert_close(got, expected(x, 0.25))


def test_upscaler_maps_uint8_hwc_to_uint8_hwc(tiny):
    module = PixelUpscaler(tiny, scale=4, guidance=1.8)
    lr = torch.randint(0, 256, (17, 23, 3), dtype=torch.uint8)
    with torch.no_grad():
        hr = module(lr)
    assert hr.dtype == torch.uint8 and hr.shape == (68, 92, 3)


def test_unknown_prediction_type_is_rejected():
    from trtsr.errors import TrtsrError

    with pytest.raises(TrtsrError, match="prediction_type"):
        ModelConfig(name="x", prediction_type="flow")
