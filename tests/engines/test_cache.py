"""The engine cache: reuse, rebuild on change, one build under concurrency, no corrupt entries."""

from __future__ import annotations

import multiprocessing
import shutil

from trtsr.engines import BuildSettings, cached_engine
from trtsr.export.onnx_export import ExportSettings, export_onnx

FAST = ("sm86",)  # one ahead-of-time target keeps CPU builds short

SETTINGS = BuildSettings(profiles=("720p", "1080p"), backend="tensorrt-rtx", compute_capabilities=FAST)


def test_second_call_reuses_the_engine(tiny_fp16, tmp_path):
    first = cached_engine(tiny_fp16.onnx_path, SETTINGS, root=tmp_path)
    mtime = first.engine_path.stat().st_mtime_ns
    second = cached_engine(tiny_fp16.onnx_path, SETTINGS, root=tmp_path)
    assert first.built and not second.built
    assert second.engine_path == first.engine_path and second.engine_path.stat().st_mtime_ns == mtime
    assert second.metadata == first.metadata
    assert len(list((tmp_path / "engines").glob("*.engine"))) == 1


def test_other_settings_get_another_engine(tiny_fp16, tmp_path):
    a = cached_engine(tiny_fp16.onnx_path, SETTINGS, root=tmp_path)
    b = cached_engine(tiny_fp16.onnx_path, BuildSettings(profiles=("720p",), backend="tensorrt-rtx",
                                                         compute_capabilities=FAST), root=tmp_path)
    assert a.engine_path != b.engine_path and b.built


def test_changed_onnx_rebuilds(tmp_path):
    onnx = tmp_path / "m.onnx"
    export_onnx("tiny", onnx, ExportSettings(precision="fp16", guidance=None))
    first = cached_engine(onnx, SETTINGS, root=tmp_path / "cache")
    export_onnx("tiny", onnx, ExportSettings(precision="fp16", guidance=1.5))  # same path, new graph
    second = cached_engine(onnx, SETTINGS, root=tmp_path / "cache")
    assert second.built and second.engine_path != first.engine_path
    assert second.metadata.guidance == 1.5 and first.metadata.guidance is None


def test_corrupt_entry_is_rebuilt(tiny_fp16, tmp_path):
    first = cached_engine(tiny_fp16.onnx_path, SETTINGS, root=tmp_path)
    first.engine_path.write_bytes(first.engine_path.read_bytes()[:-100])  # a truncated engine
    again = cached_engine(tiny_fp16.onnx_path, SETTINGS, root=tmp_path)
    assert again.built and again.engine_path.stat().st_size == first.metadata.engine_bytes


def _build_in_process(args):
    onnx, root = args
    return cached_engine(onnx, SETTINGS, root=root).built


def test_concurrent_builds_of_one_key_build_once(tiny_fp16, tmp_path):
    onnx = tmp_path / "m.onnx"
    shutil.copy(tiny_fp16.onnx_path, onnx)
    shutil.copy(tiny_fp16.spec_path, tmp_path / "m.json")
    root = tmp_path / "cache"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        built = pool.map(_build_in_process, [(onnx, root), (onnx, root)])
    assert sorted(built) == [False, True]
    entries = sorted(p.name for p in (root / "engines").iterdir())
    assert len([e for e in entries if e.endswith(".engine")]) == 1
    assert not [e for e in entries if e.startswith(".")], f"temporary files left: {entries}"
