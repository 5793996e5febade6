"""The model source: what a name or path is, resolved once (kind, scale, PadCFG and own w, sizes), and one line
for each thing it cannot be, before anything loads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from trtsr import defaults
from trtsr.errors import TrtsrError
from trtsr.guidance import Guidance
from trtsr.paths import default_weights, shipped_graphs
from trtsr.source import ModelSource, SourceKind, resolve_source


def _shipped(name: str) -> Path:
    return next(p for p in shipped_graphs() if p.name == name)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_default_model_runs_its_own_w_per_scale(scale):
    source = resolve_source(None, scale=scale)
    assert source == resolve_source("default", scale=scale)
    assert source.kind is SourceKind.DEFAULT and source.origin is SourceKind.DEFAULT
    assert source.scale == scale and source.own_w == defaults.DEFAULT_MODEL_GUIDANCE[scale]
    assert source.path == default_weights() and source.w_input and not source.random_weights
    assert source.stem == "default" and source.kind.is_gendr and not source.kind.is_file
    assert resolve_source("default").scale == defaults.SCALE


def test_a_preset_has_random_weights_and_the_papers_w():
    tiny = resolve_source("tiny", scale=2)
    assert tiny.kind is SourceKind.PRESET and tiny.random_weights and tiny.path is None
    assert tiny.own_w == defaults.GUIDANCE and tiny.identity() == {"model": "tiny"}
    assert tiny.warnings(1.8) == ["tiny has seeded random weights: the output is noise"]
    with pytest.raises(TrtsrError, match="seeded random weights, so its output is noise"):
        resolve_source("tiny", random_weights=False)


def test_a_trtsr_checkpoint_by_path_is_gendr_pix_weights_with_the_papers_w():
    source = resolve_source(str(default_weights()))
    assert source.kind is SourceKind.CHECKPOINT and source.own_w == defaults.GUIDANCE
    assert source.path == default_weights() and source.stem == default_weights().stem
    assert source.export_needs() == (("torch", "diffusers"), "export")


def test_a_folder_is_a_diffusers_unet(tmp_path):
    source = resolve_source(str(tmp_path), scale=2)
    assert source.kind is SourceKind.DIFFUSERS and source.scale == 2 and source.kind.is_gendr
    assert "folder_digest" in source.identity()


def test_a_named_model_brings_its_scale_and_no_padcfg():
    source = resolve_source("realesr-animevideov3")
    assert source.kind is SourceKind.NAMED and source.scale == 4 and source.own_w is None
    assert resolve_source("realesr-animevideov3", scale=2).scale == 2
    assert source.w(Guidance.OWN) is None and source.w(Guidance.OFF) is None
    assert source.export_needs() == (("torch", "spandrel"), "models")
    with pytest.raises(TrtsrError, match="realesrgan-x4plus upscales x4, not x2"):
        resolve_source("realesrgan-x4plus", scale=2)
    with pytest.raises(TrtsrError, match="is not a diffusion model and has no PadCFG guidance"):
        resolve_source("realesrgan-x4plus", guidance=Guidance.number(2.0))


@pytest.mark.skipif(importlib.util.find_spec("spandrel") is None, reason="the models extra reads checkpoints")
def test_a_checkpoint_spandrel_reads_is_loaded_once_for_its_scale(tmp_path):
    import torch

    from trtsr.models.external import import_spandrel

    import_spandrel()
    from spandrel.architectures.Compact import Compact

    path = tmp_path / "mine.pth"
    torch.manual_seed(0)
    torch.save(Compact(num_feat=8, num_conv=2, upscale=3).state_dict(), path)
    source = resolve_source(str(path))
    assert source.kind is SourceKind.SPANDREL and source.scale == 3 and source.own_w is None
    assert source.stem == "mine" and source.label == "mine.pth"
    with pytest.raises(TrtsrError, match="upscales x3, not x2"):
        resolve_source(str(path), scale=2)
    with pytest.raises(TrtsrError, match="mine.pth is not a diffusion model"):  # refused before it loads
        resolve_source(str(path), guidance=Guidance.number(2.0))


def test_a_graph_brings_its_own_scale_w_and_size_rules():
    source = resolve_source(str(_shipped("default-x3.onnx")))
    assert source.kind is SourceKind.GRAPH and source.origin is SourceKind.DEFAULT and source.what == "graph"
    assert source.scale == 3 and source.own_w == defaults.DEFAULT_MODEL_GUIDANCE[3] and source.w_input
    assert source.sizes is not None and source.sizes.scale == 3
    assert source.export_needs() == ((), "base") and not source.can_export()
    with pytest.raises(TrtsrError, match="upscales x3, not x4"):
        resolve_source(str(_shipped("default-x3.onnx")), scale=4)
    plain = resolve_source(str(_shipped("default-x3-nocfg.onnx")))
    assert plain.own_w is None and not plain.w_input


@pytest.mark.parametrize(("guidance", "graph", "runs"), [
    (Guidance.OWN, "default-x4.onnx", 2.2),
    (Guidance.number(3.0), "default-x4.onnx", 3.0),  # w is an input of the shipped graphs
    (Guidance.OFF, "default-x4-nocfg.onnx", None),
    (Guidance.OWN, "default-x4-nocfg.onnx", None),
])
def test_the_w_a_graph_runs(guidance, graph, runs):
    assert resolve_source(str(_shipped(graph))).w(guidance) == runs


@pytest.mark.parametrize(("guidance", "graph", "why"), [
    (Guidance.OFF, "default-x4.onnx", "has PadCFG"),
    (Guidance.number(2.0), "default-x4-nocfg.onnx", "has no PadCFG"),
])
def test_a_w_a_graph_cannot_run_names_the_file(guidance, graph, why):
    with pytest.raises(TrtsrError, match=why) as caught:
        resolve_source(str(_shipped(graph))).w(guidance)
    assert Path(caught.value.path).name == graph


def test_weights_run_any_w_or_none():
    source = resolve_source("default", scale=4)
    assert source.w(Guidance.OWN) == 2.2 and source.w(Guidance.OFF) is None
    assert source.w(Guidance.number(1.0)) is None and source.w(Guidance.number(4.0)) == 4.0
    assert source.warnings(4.0) and "above the range the default model was measured in" in source.warnings(4.0)[0]
    assert source.warnings(2.2) == []


@pytest.mark.parametrize(("model", "engine", "scale", "why"), [
    ("no-such-model", None, None, "no such model file or folder"),
    ("missing.onnx", None, None, "no such model file or folder"),
    (None, "missing.engine", None, "engine not found"),
    ("default", None, 5, "scale must be one of 1, 2, 3, 4, 8"),
])
def test_what_is_not_a_model_is_one_line(model, engine, scale, why):
    with pytest.raises(TrtsrError, match=why) as caught:
        resolve_source(model, engine, scale=scale)
    assert "\n" not in str(caught.value)


def test_a_file_that_is_no_graph_is_named(tmp_path):
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not a graph")
    with pytest.raises(TrtsrError, match="not an ONNX graph"):
        resolve_source(str(fake))


def test_every_kind_is_one_of_three_families():
    for kind in SourceKind:
        assert [kind.is_gendr, kind.is_external, kind.is_file].count(True) == 1, kind
    assert isinstance(resolve_source("default"), ModelSource)
