"""Profiles named by output size, and the checks that run before any build."""

from __future__ import annotations

import dataclasses

import pytest

from trtsr.engines.profiles import DEFAULT_PROFILES, ShapeProfile, parse_profiles
from trtsr.errors import TrtsrError
from trtsr.sizes import SizeRequirements

SIZES = SizeRequirements(scale=4, multiple=64, padding=8)  # a x4 PadCFG graph: inputs from 15 pixels


def test_named_profile_maps_output_to_input():
    low, opt, high = ShapeProfile.parse("4k").input_shapes(SIZES)
    assert low == (15, 15, 3) and opt == (540, 960, 3) and high == (540, 960, 3)


def test_x3_scale_changes_the_inputs():
    sizes = dataclasses.replace(SIZES, scale=3)
    assert sizes.minimum == 19
    assert ShapeProfile.parse("1080p").input_shapes(sizes)[2] == (360, 640, 3)


def test_custom_profiles():
    assert ShapeProfile.parse("2048x1024").input_shapes(SIZES)[2] == (256, 512, 3)
    low, opt, high = ShapeProfile.parse("64x64:1024x768:2048x2048").input_shapes(SIZES)
    assert low == (16, 16, 3) and opt == (192, 256, 3) and high == (512, 512, 3)


def test_default_covers_1080p_to_8k():
    profiles = parse_profiles(None)
    assert tuple(p.name for p in profiles) == DEFAULT_PROFILES
    maxima = [p.input_shapes(SIZES)[2] for p in profiles]
    assert maxima[0] == (270, 480, 3) and maxima[-1] == (1080, 1920, 3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("32x32", "below the smallest output"),
        ("8x8:64x64:128x128", "below the smallest output"),
        ("40000x1000", "above the largest"),
        ("512x512:256x256:1024x1024", "min <= opt <= max"),
        ("huge", "WIDTHxHEIGHT"),
        ("1x2x3:4", "use a name"),
    ],
)
def test_bad_profiles_are_rejected(text, message):
    with pytest.raises(TrtsrError, match=message):
        parse_profiles([text])[0].input_shapes(SIZES)


def test_duplicate_profile():
    with pytest.raises(TrtsrError, match="given twice"):
        parse_profiles(["4k", "4K"])
