"""The size rules, computed in one place and carried by specs and engine metadata."""

from __future__ import annotations

import pytest

from trtsr.defaults import MAX_INPUT_SIDE
from trtsr.paths import shipped_onnx
from trtsr.sizes import PADCFG_PADDING, SizeRequirements, aligned_side
from trtsr.spec import ExportSpec, spec_path_for


@pytest.mark.parametrize(("size", "extra", "expected"), [(56, 8, 56), (57, 8, 120), (64, 0, 64), (65, 0, 128)])
def test_aligned_side(size, extra, expected):
    assert aligned_side(size, 64, extra) == expected
    assert (aligned_side(size, 64, extra) + extra) % 64 == 0


@pytest.mark.parametrize(("scale", "minimum"), [(4, 15), (2, 29), (3, 19), (8, 8), (1, 57)])
def test_minimum_input_keeps_the_lowest_unet_level_two_wide(scale, minimum):
    sizes = SizeRequirements.for_graph(scale=scale, multiple=64)
    assert sizes.minimum == minimum
    # at the minimum the UNet's side is two multiples (its lowest level is 2 wide); one pixel less, one multiple
    unet_side = sizes.aligned(sizes.minimum * scale) + sizes.padding
    assert unet_side >= 2 * 64
    assert sizes.aligned((sizes.minimum - 1) * scale) + sizes.padding == 64


def test_accepts_spans_minimum_to_maximum():
    sizes = SizeRequirements.for_graph(scale=4, multiple=64)
    assert sizes.padding == PADCFG_PADDING and sizes.maximum == MAX_INPUT_SIDE
    assert sizes.accepts(15, MAX_INPUT_SIDE) and not sizes.accepts(14, 100) and not sizes.accepts(100, 8193)


def test_the_shipped_spec_carries_the_same_rules():
    spec = ExportSpec.load(spec_path_for(shipped_onnx()))
    rule = SizeRequirements.for_graph(scale=4, multiple=64)
    assert (spec.scale, spec.alignment, spec.extra_pixels, spec.max_input_size) == (
        rule.scale, rule.multiple, rule.padding, rule.maximum)
    assert spec.min_input_size == spec.sizes.minimum == rule.minimum


def test_a_spec_whose_minimum_is_below_its_rule_is_refused(tmp_path):
    from trtsr.errors import TrtsrError

    data = ExportSpec.load(spec_path_for(shipped_onnx())).to_dict()
    data["min_input_size"] = 3
    with pytest.raises(TrtsrError, match="below its alignment rule"):
        ExportSpec.from_dict(data)
    data["min_input_size"] = 40  # a network may take less than its rule allows: then the spec's floor holds
    assert ExportSpec.from_dict(data).sizes.minimum == 40


def test_a_network_other_than_gendr_pix_aligns_in_input_pixels():
    sizes = SizeRequirements.for_network(scale=2, multiple=8, minimum=11)
    assert (sizes.multiple, sizes.padding) == (16, 0)  # output pixels, no PadCFG pad
    assert sizes.rule_minimum == 9 and sizes.minimum == 11
    assert sizes.aligned(20) == 32
