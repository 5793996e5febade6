"""One run request: guidance as a value with three states, every cheap check in one place, one session."""

from __future__ import annotations

import numpy as np
import pytest

from trtsr.errors import TrtsrError
from trtsr.guidance import Guidance
from trtsr.paths import shipped_graphs
from trtsr.pipeline.request import RunRequest
from trtsr.pipeline.upscaler import Upscaler
from trtsr.source import SourceKind


def _shipped(name: str) -> str:
    return str(next(p for p in shipped_graphs() if p.name == name))


def test_the_command_line_parses_into_three_states():
    assert Guidance.parse(None, no_padcfg=False) == Guidance.OWN
    assert Guidance.parse(None, no_padcfg=True) == Guidance.OFF
    assert Guidance.parse(1.0, no_padcfg=False) == Guidance.OFF  # w = 1 is the positive pass alone
    assert Guidance.parse(1.0, no_padcfg=True) == Guidance.OFF
    assert Guidance.parse(2.5, no_padcfg=False) == Guidance("w", 2.5)
    with pytest.raises(TrtsrError, match="contradict"):
        Guidance.parse(2.5, no_padcfg=True)
    with pytest.raises(TrtsrError, match="at most 10"):
        Guidance.parse(11.0, no_padcfg=False)


def test_the_api_argument_means_the_same_everywhere():
    assert Guidance.of("auto") == Guidance.OWN and Guidance.of(None) == Guidance.OFF
    assert Guidance.of(2) == Guidance("w", 2.0) and Guidance.of(Guidance.OFF) is Guidance.OFF
    with pytest.raises(TrtsrError, match="guidance must be a number or 'auto'"):
        Guidance.of("sharp")


@pytest.mark.parametrize(("asked", "own", "optional", "takes_input", "runs"), [
    # a graph or an engine: its own w, or one it can take
    (Guidance.OWN, 1.8, False, True, 1.8), (Guidance.OWN, None, False, False, None),
    (Guidance.OFF, None, False, False, None), (Guidance("w", 1.8), 1.8, False, False, 1.8),
    (Guidance("w", 2.5), 1.8, False, True, 2.5),
    # weights, exported on demand: any w, or none
    (Guidance.OWN, 2.2, True, True, 2.2), (Guidance.OFF, 2.2, True, True, None),
    (Guidance("w", 3.0), 2.2, True, True, 3.0), (Guidance.OWN, None, True, False, None),
])
def test_the_w_a_model_runs_is_decided_in_one_place(asked, own, optional, takes_input, runs):
    assert asked.decide(own, optional=optional, takes_input=takes_input) == runs


@pytest.mark.parametrize(("asked", "own", "takes_input", "why"), [
    (Guidance.OFF, 1.8, True, "cannot run without PadCFG"),
    (Guidance("w", 2.5), None, False, "has no PadCFG"),
    (Guidance("w", 2.5), 1.8, False, "built in"),
])
def test_a_graph_that_cannot_honour_the_guidance_refuses(asked, own, takes_input, why):
    with pytest.raises(TrtsrError, match=why):
        asked.decide(own, optional=False, takes_input=takes_input, what="engine")


def test_no_padcfg_means_no_padcfg_for_a_model_name_and_for_its_graph_by_path():
    """guidance=None is 'no PadCFG' whether the model is named or its graph is given by path: the named model
    runs its batch-1 graph, the batch-1 graph by path runs the same pixels, and the PadCFG graph by path
    refuses in one line naming the file instead of running its own w."""
    rgb = np.random.default_rng(3).integers(0, 256, (24, 30, 3), dtype=np.uint8)
    with Upscaler("default", backend="onnxruntime", guidance=None) as named:
        plain = named.upscale(rgb)
    with Upscaler(_shipped("default-x4-nocfg.onnx"), guidance=None) as by_path:
        assert np.array_equal(by_path.upscale(rgb), plain)
    with pytest.raises(TrtsrError, match="cannot run without PadCFG") as caught:
        Upscaler(_shipped("default-x4.onnx"), guidance=None)
    assert caught.value.path is not None and str(caught.value.path).endswith("default-x4.onnx")


def test_the_default_models_own_w_reaches_its_shipped_graph_by_name_and_by_path():
    """'auto' for the default model at x4 is 2.2, the w its shipped graph records; a w given by name or by path
    replaces it."""
    rgb = np.random.default_rng(4).integers(0, 256, (24, 30, 3), dtype=np.uint8)
    with Upscaler("default", backend="onnxruntime") as own:
        ran = own.upscale(rgb)
    with Upscaler(_shipped("default-x4.onnx")) as recorded:
        assert recorded.guidance == 2.2 and np.array_equal(recorded.upscale(rgb), ran)
    with Upscaler(_shipped("default-x4.onnx"), guidance=1.8) as given:
        assert not np.array_equal(given.upscale(rgb), ran)


@pytest.mark.parametrize(("fields", "why"), [
    (dict(backend="cuda"), "backend must be one of auto, onnxruntime, torch, tensorrt, tensorrt-rtx, got 'cuda'"),
    (dict(scale=5), "scale must be one of"),
    (dict(tile=8), "tile must be at least"),
    (dict(tile=64, overlap=40), "more than half the 64-pixel tile"),
    (dict(model="no-such-model"), "no such model file or folder"),
    (dict(model="tiny", random_weights=False), "seeded random weights"),
    (dict(engine="missing.engine"), "engine not found"),
    (dict(engine="missing.engine", backend="onnxruntime"), "needs a TensorRT backend"),
    (dict(model=_shipped("default-x4.onnx"), backend="torch"), "torch backend runs a model"),
    (dict(model=_shipped("default-x4.onnx"), scale=2), "upscales x4, not x2"),
    (dict(model=_shipped("default-x4-nocfg.onnx"), guidance=2.0), "has no PadCFG"),
])
def test_every_cheap_check_is_one_line_when_the_request_is_built(fields, why):
    with pytest.raises(TrtsrError, match=why) as caught:
        RunRequest(**fields)
    assert "\n" not in str(caught.value)


def test_a_graph_given_by_path_brings_its_own_scale_and_w():
    request = RunRequest(model=_shipped("default-x3.onnx"))
    assert request.source.kind is SourceKind.GRAPH and request.source.what == "graph"
    assert request.scale_out == 3 and request.w == request.source.own_w
    named = RunRequest(model="default", scale=3)
    assert named.source.kind is SourceKind.DEFAULT and named.scale_out == 3 and named.w == 1.8
    assert RunRequest(model="default", guidance=None).w is None
