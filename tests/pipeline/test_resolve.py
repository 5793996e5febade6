"""Model resolution: the shipped graph, on-demand exports keyed on the weights, and the engine's graph."""

from __future__ import annotations

import logging
import shutil

import pytest

from trtsr.errors import TrtsrError
from trtsr.paths import default_weights, shipped_onnx
from trtsr.pipeline import resolve
from trtsr.pipeline.resolve import GraphRequest, cached_export, export_key, resolve_onnx
from trtsr.source import ModelSource, SourceKind, resolve_source

TINY_PLAIN = GraphRequest(guidance=None)  # the batch-1 tiny graph exports in seconds


def test_the_default_model_at_every_guidance_is_a_shipped_graph():
    from trtsr.paths import shipped_graphs

    graphs = shipped_graphs()
    assert len(graphs) == 6 and graphs[0] == shipped_onnx()
    for scale, (padcfg, plain) in zip((4, 3, 2), (graphs[0:2], graphs[2:4], graphs[4:6]), strict=True):
        assert padcfg.name == f"default-x{scale}.onnx" and plain.name == f"default-x{scale}-nocfg.onnx"
        for w in (1.8, 1.2, 3.0):
            assert resolve_onnx(resolve_source("default", scale=scale), guidance=w) == padcfg
        assert resolve_onnx(resolve_source("default", scale=scale), guidance=None) == plain
        assert resolve_onnx(resolve_source("default", scale=scale), guidance=1.0) == plain


def test_the_export_key_follows_the_weights_and_the_version(tmp_path, monkeypatch):
    import trtsr.paths

    default = resolve_source("default")
    base = export_key(default, GraphRequest())
    assert export_key(resolve_source("default"), GraphRequest()) == base
    # new weights shipped by an upgrade
    other = tmp_path / "default.safetensors"
    shutil.copy(default_weights(), other)
    with open(other, "ab") as fh:
        fh.write(b"\0")
    monkeypatch.setattr(trtsr.paths, "default_weights", lambda: other)
    assert export_key(resolve_source("default"), GraphRequest()) != base
    monkeypatch.undo()
    # another trtsr version (the exporter or a preset's code may differ)
    monkeypatch.setattr(resolve, "__version__", "99.0")
    assert export_key(default, GraphRequest()) != base
    monkeypatch.undo()
    # every setting that changes the graph; with PadCFG w is an input, so its value does not
    for change in (dict(scale=2), dict(guidance=None), dict(precision="fp16"), dict(io="uint8"), dict(opset=20)):
        assert export_key(default, GraphRequest(**change)) != base, change
    assert export_key(default, GraphRequest(guidance=3.0)) == base


def test_a_checkpoint_file_is_keyed_on_its_bytes(tmp_path):
    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(b"first")
    source = ModelSource(SourceKind.CHECKPOINT, str(ckpt), ckpt, 4, str(ckpt), SourceKind.CHECKPOINT, 1.8, True)
    first = export_key(source, GraphRequest())
    ckpt.write_bytes(b"second")
    assert export_key(source, GraphRequest()) != first


@pytest.mark.slow
def test_cached_export_is_reused_and_invalidated(tmp_path, monkeypatch):
    first = cached_export(resolve_source("tiny"), TINY_PLAIN, root=tmp_path)
    stamp = first.stat().st_mtime_ns
    assert cached_export(resolve_source("tiny"), TINY_PLAIN, root=tmp_path) == first
    assert first.stat().st_mtime_ns == stamp  # a hit, not a new export

    # a hit needs a spec that reads and describes the request, not only a file that exists
    spec = first.with_suffix(".json")
    spec.write_text("{not json")
    again = cached_export(resolve_source("tiny"), TINY_PLAIN, root=tmp_path)
    assert again == first and first.stat().st_mtime_ns != stamp

    # an upgrade: the same model and settings export anew
    monkeypatch.setattr(resolve, "__version__", "99.0")
    upgraded = cached_export(resolve_source("tiny"), TINY_PLAIN, root=tmp_path)
    assert upgraded != first and upgraded.is_file()


def test_the_engine_graph_falls_back_to_the_shipped_graph_only_without_the_export_extra(monkeypatch, caplog):
    # a run-only install: no torch, no diffusers
    monkeypatch.setattr(ModelSource, "can_export", lambda self: False)
    monkeypatch.setattr(resolve, "cached_export", lambda *a, **k: pytest.fail("exported without the extra"))
    with caplog.at_level(logging.WARNING, logger="trtsr.pipeline.resolve"):
        graph = resolve.engine_graph(resolve_source("default"), guidance=1.8)
    assert graph == shipped_onnx()
    assert any("fp32 graph" in r.message and "'export' extra" in r.message for r in caplog.records)

    def broken(model, request, **kwargs):
        raise TrtsrError("the exporter failed for a reason that is not a missing extra")

    # with the extra, a failed export is an error
    monkeypatch.setattr(ModelSource, "can_export", lambda self: True)
    monkeypatch.setattr(resolve, "cached_export", broken)
    with pytest.raises(TrtsrError, match="not a missing extra"):
        resolve.engine_graph(resolve_source("default"), guidance=1.8)
