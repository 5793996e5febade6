"""The probed cost of a graph and the tile plan that follows from it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trtsr.cost import GraphCost, fit, memory_budget
from trtsr.errors import TrtsrError
from trtsr.runtime.tiling import plan_tiles


def test_fit_recovers_a_quadratic_and_drops_what_would_be_negative():
    sides = (128, 192, 256)
    exact = fit(sides, tuple(5e6 + 600.0 * s * s + 0.5 * (s * s) ** 2 for s in sides))
    assert exact == pytest.approx((5e6, 600.0, 0.5), rel=1e-6)
    # per-pixel cost that falls with size (a fixed overhead and edge padding): linear through the two largest
    falling = fit(sides, (100.0 * 128**2 * 1.3, 100.0 * 192**2 * 1.1, 100.0 * 256**2))
    assert falling[2] == 0 and min(falling) >= 0
    assert falling[0] + falling[1] * 256**2 == pytest.approx(100.0 * 256**2)
    # a line that would cross zero above the origin: through the origin, never under the largest point
    steep = fit(sides, (1.0 * 128**2, 3.0 * 192**2, 4.0 * 256**2))
    assert steep[0] == 0 and steep[1] * 256**2 + steep[2] * 256**4 >= 4.0 * 256**2 * (1 - 1e-9)


def test_a_picture_that_fits_runs_whole_and_one_that_does_not_runs_in_tiles_within_the_budget():
    conv = GraphCost(bytes=(0.0, 1000.0, 0.0), flops=(0.0, 1e6, 0.0))
    budget = 1000.0 * 300 * 300  # a 300x300 input fits with factor 1
    assert conv.plan_tile(300, 300, 16, budget, memory_factor=1.0) == 300
    assert conv.plan_tile(200, 450, 16, budget, memory_factor=1.0) == 450  # 90 000 pixels: whole
    side = conv.plan_tile(1000, 1000, 16, budget, memory_factor=1.0)
    assert 64 <= side < 1000 and 1000.0 * side * side <= budget
    # the factor counts: twice the memory per pixel, a smaller tile
    assert conv.plan_tile(1000, 1000, 16, budget, memory_factor=2.0) < side
    # nothing fits: the smallest tile
    assert conv.plan_tile(1000, 1000, 16, 10.0, memory_factor=1.0) == 64


def test_work_that_grows_with_the_square_of_the_tile_keeps_tiles_small_even_with_memory_to_spare():
    attention = GraphCost(bytes=(0.0, 1.0, 0.0), flops=(0.0, 1e3, 1.0))  # the p**2 term dominates above 1000 px
    side = attention.plan_tile(2048, 2048, 16, 1e12, memory_factor=1.0)
    assert 64 <= side <= 128  # not the whole picture, though it fits

    def total(tile):
        return sum(attention.work((y1 - y0) * (x1 - x0)) for y0, y1, x0, x1 in plan_tiles(2048, 2048, tile, 16))
    assert total(side) < total(512) / 4


def test_cost_reads_back_and_refuses_what_is_not_a_cost():
    cost = GraphCost((1.0, 2.0, 0.0), (3.0, 4.0, 5.0), (128, 192, 256))
    assert GraphCost.from_dict(json.loads(json.dumps(cost.to_dict()))) == cost
    for bad in ({"bytes": [1, 2], "flops": [1, 2, 3]}, {"bytes": [1, 2, -3], "flops": [1, 2, 3]}, {"flops": [1]}):
        with pytest.raises((ValueError, KeyError)):
            GraphCost.from_dict(bad)


def test_a_spec_with_a_broken_cost_is_one_line(tmp_path):
    from trtsr.paths import shipped_onnx
    from trtsr.spec import ExportSpec, spec_path_for

    data = json.loads(spec_path_for(shipped_onnx()).read_text())
    assert ExportSpec.from_dict(data).graph_cost is not None  # the shipped graphs carry theirs
    data["cost"] = {"bytes": "many"}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TrtsrError, match="cost is not"):
        ExportSpec.load(path)


def test_memory_budget_follows_the_environment(monkeypatch):
    monkeypatch.setenv("TRTSR_TILE_MEMORY_GB", "0.5")
    assert memory_budget() == 0.5 * 2**30
    monkeypatch.setenv("TRTSR_TILE_MEMORY_GB", "lots")
    with pytest.raises(TrtsrError, match="TRTSR_TILE_MEMORY_GB must be"):
        memory_budget()
    from trtsr.pipeline.request import RunRequest

    with pytest.raises(TrtsrError, match="TRTSR_TILE_MEMORY_GB must be"):  # before any model loads
        RunRequest(model="default", backend="onnxruntime")
    monkeypatch.delenv("TRTSR_TILE_MEMORY_GB")
    assert 0 < memory_budget() <= 4 * 2**30


def test_the_probe_counts_a_convolution_exactly_and_finds_attention_quadratic():
    import torch

    from trtsr.cost_probe import probe_cost

    class Conv(torch.nn.Module):  # (H, W, 3) float in, two 3x3 convolutions, (H, W, 3) out
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 3, 3, padding=1)

        def forward(self, x):
            return self.b(self.a(x.permute(2, 0, 1)[None]))[0].permute(1, 2, 0)

    class Attend(Conv):  # the same, with self-attention over every pixel between them
        def forward(self, x):
            h = self.a(x.permute(2, 0, 1)[None])
            n, c, height, width = h.shape
            tokens = h.flatten(2).transpose(1, 2)[:, None]
            h = torch.nn.functional.scaled_dot_product_attention(tokens, tokens, tokens)
            return self.b(h[:, 0].transpose(1, 2).reshape(n, c, height, width))[0].permute(1, 2, 0)

    conv = probe_cost(Conv().eval(), io="float32", guidance=None, sides=(16, 24, 32))
    per_pixel = 2 * 9 * (3 * 8 + 8 * 3)  # multiply-adds of both convolutions, per pixel
    assert conv.flops[2] == 0 and conv.flops[1] == pytest.approx(per_pixel, rel=1e-6)
    # its activations: the input, the 8-channel feature map and the output, float32, grow with the pixels only
    assert conv.bytes[2] == 0 and 8 * 4 <= conv.bytes[1] <= 3 * 8 * 4 + 2 * 3 * 4
    attend = probe_cost(Attend().eval(), io="float32", guidance=None, sides=(16, 24, 32))
    assert attend.flops[2] == pytest.approx(4 * 8, rel=1e-6)  # q.k and p.v: 2 x 2 x channels per pixel pair
    # the scores, one float32 per pixel pair, and the softmax beside them where torch takes its plain path
    assert 4 <= attend.bytes[2] <= 8
    # the module is left as it was: its parameters still want gradients
    module = Conv()
    probe_cost(module, io="float32", guidance=None, sides=(16, 24, 32))
    assert all(p.requires_grad for p in module.parameters())


def test_the_upscaler_plans_whole_pictures_and_tiles_from_the_shipped_graphs_cost(monkeypatch):
    from trtsr import Upscaler

    with Upscaler("default", backend="onnxruntime") as up:
        cost = up._session.cost
        assert up.tile_for(100, 80) == 100  # small: whole
        side = up.tile_for(2000, 3000)
        assert 64 <= side < 2000
        assert up._session.memory_factor * cost.peak_bytes(side * side) <= memory_budget()
        monkeypatch.setenv("TRTSR_TILE_MEMORY_GB", "0.01")  # 10 MB: the 100x80 picture no longer fits
        assert up.tile_for(100, 80) == 64
        rgb = np.random.default_rng(0).integers(0, 256, (80, 100, 3), dtype=np.uint8)
        seen = []
        infer = up._infer
        up._infer = lambda lr: seen.append(lr.shape[:2]) or infer(lr)
        assert up.upscale(rgb).shape == (320, 400, 3)
        assert len(seen) == 4 and all(max(hw) <= 64 for hw in seen)


def test_a_graph_without_a_cost_runs_in_fixed_tiles(tmp_path):
    import shutil

    from trtsr import Upscaler, defaults
    from trtsr.paths import shipped_onnx
    from trtsr.spec import ExportSpec, spec_path_for

    graph = shipped_onnx()
    spec = ExportSpec.load(spec_path_for(graph))
    copy = tmp_path / graph.name
    shutil.copy(graph, copy)
    shutil.copy(graph.with_name(spec.onnx_data_file), tmp_path / spec.onnx_data_file)
    data = spec.to_dict()
    data["cost"] = None
    spec_path_for(copy).write_text(json.dumps(data))
    with Upscaler(copy, backend="onnxruntime") as up:
        assert up._session.cost is None and up.tile_for(1000, 1000) == defaults.ONNXRUNTIME_TILE


def test_planned_tiles_are_at_least_twice_the_overlap(monkeypatch):
    from trtsr import Upscaler

    monkeypatch.setenv("TRTSR_TILE_MEMORY_GB", "0.01")  # nothing large fits: the smallest planned tile
    with Upscaler("default", backend="onnxruntime", overlap=100) as up:
        assert up.overlap == 100 and up.tile_for(1000, 1000) == 200


class _EngineLike:
    """A session that takes whole pictures up to 60 pixels a side, as an engine's largest profile does."""

    scale, io, max_input, guidance, guidance_input, backend_name = 4, "float32", (60, 60), None, None, "engine-like"

    def infer(self, lr, w):
        return np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1)

    def close(self):
        pass


def test_an_overlap_above_half_an_engines_largest_input_is_refused():
    from trtsr import Upscaler
    from trtsr.sizes import SizeRequirements

    session = _EngineLike()
    session.sizes = SizeRequirements.for_network(scale=4, multiple=1, minimum=1)
    with pytest.raises(TrtsrError, match="overlap 40 is more than half the 60-pixel tiles this run uses"):
        Upscaler.from_session(session, overlap=40)
    with Upscaler.from_session(session) as up:  # a session without a cost: its own largest input
        assert up.tile_for(100, 100) == 60 and up.upscale(np.zeros((70, 70, 3), np.uint8)).shape == (280, 280, 3)
