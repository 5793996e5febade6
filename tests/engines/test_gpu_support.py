"""Which GPUs a backend's engines run on: a GPU the backend refuses is named in one line before any export,
build or load, and `auto` runs ONNX Runtime there instead.

The GPU identity is stated here (an H100, compute capability 9.0: the GPU on which TensorRT-RTX 1.7.1's
refusal was measured, benchmarks/results/gpu-check.json); the refusal itself on a real GPU is checked by
tests/runtime/test_cuda_gpu.py on the GPU machine.
"""

from __future__ import annotations

import pytest

from trtsr.engines import BuildSettings, build_engine, load_backend
from trtsr.engines.backend import TensorRTModule, usable_backends
from trtsr.errors import TrtsrError
from trtsr.gpu import GpuInfo

pytestmark = pytest.mark.slow  # engine builds, exports, Ray or training: the full tier only

H100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0", "13.0")
RTX_4090 = GpuInfo("NVIDIA GeForce RTX 4090", "8.9", "13.0")


@pytest.fixture()
def on_h100(monkeypatch):
    """trtsr sees an H100 (every module asks trtsr.gpu.detect_gpu, some through their own import)."""
    import trtsr.bench as bench
    import trtsr.engines.builder as builder
    import trtsr.gpu as gpu

    for module in (gpu, builder, bench):
        monkeypatch.setattr(module, "detect_gpu", lambda: H100)
    return H100


def test_rtx_lists_what_its_compute_capability_enum_names():
    rtx = load_backend("tensorrt-rtx")
    listed = rtx.runnable_capabilities()
    names = {m for m in dir(rtx.module.ComputeCapability) if m.startswith("SM") and m[2:].isdigit()}
    assert {f"SM{c.replace('.', '')}" for c in listed} == names
    assert "8.9" in listed and "12.0" in listed and "9.0" not in listed


@pytest.mark.parametrize(("capability", "runs"), [
    ("7.5", True), ("8.6", True), ("8.9", True), ("12.0", True), ("12.1", True), ("12.2", True),
    ("9.0", False), ("10.0", False), ("7.0", False),
])
def test_which_gpus_tensorrt_rtx_runs_on(capability, runs):
    rtx = load_backend("tensorrt-rtx")
    gpu = GpuInfo(f"a GPU of compute capability {capability}", capability)
    if runs:
        rtx.check_runs_on(gpu)
        assert usable_backends(gpu) == ["tensorrt-rtx"]
    else:
        with pytest.raises(TrtsrError) as caught:
            rtx.check_runs_on(gpu, "x.engine")
        message = str(caught.value)
        assert "\n" not in message and message.startswith("x.engine: tensorrt-rtx")
        assert f"compute capability {capability}" in message and "trtsr[trt]" in message
        assert usable_backends(gpu) == []


def test_full_tensorrt_leaves_the_verdict_to_its_own_load():
    # full TensorRT's API names no such list; the adapter is the same class, told it wraps full TensorRT
    backend = TensorRTModule("tensorrt", load_backend("tensorrt-rtx").module)
    assert backend.runnable_capabilities() is None
    backend.check_runs_on(H100)  # nothing to check against: not refused here
    assert TensorRTModule("tensorrt-rtx", backend.module).runnable_capabilities() is not None


def test_build_for_current_refuses_a_gpu_it_cannot_run_on_before_parsing(on_h100, exports, tmp_path, monkeypatch):
    def parse_onnx(*args, **kwargs):
        raise AssertionError("parsed the graph for an engine that could never load")

    monkeypatch.setattr(TensorRTModule, "parse_onnx", parse_onnx)
    graph = exports.get(precision="fp16")
    with pytest.raises(TrtsrError, match=r"does not run engines on this GPU \(NVIDIA H100 80GB HBM3, compute "
                                         r"capability 9\.0"):
        build_engine(graph.onnx_path, tmp_path / "x.engine",
                     BuildSettings(profiles=("256x256",), backend="tensorrt-rtx", compute_capabilities=("current",)))
    assert list(tmp_path.iterdir()) == []


def test_engine_session_refuses_before_reading_the_engine(exports, tmp_path, monkeypatch):
    from pathlib import Path

    import trtsr.gpu as gpu
    from trtsr.sessions.engine_session import EngineSession

    built = build_engine(exports.get(precision="fp16").onnx_path, tmp_path / "e.engine",
                         BuildSettings(profiles=("256x256",), backend="tensorrt-rtx", compute_capabilities=("sm86",)))
    monkeypatch.setattr(gpu, "detect_gpu", lambda: H100)
    read_bytes = Path.read_bytes

    def no_engine_read(self):
        if self == built.engine_path:
            raise AssertionError("read the engine for a GPU the backend refuses")
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", no_engine_read)
    with pytest.raises(TrtsrError, match="compute capability 9.0") as caught:
        EngineSession.open(built.engine_path)
    assert str(caught.value).startswith(str(built.engine_path))


def test_auto_runs_onnxruntime_on_a_gpu_no_backend_serves(on_h100, monkeypatch):
    """No TensorRT backend serves the GPU and torch has no CUDA here: ONNX Runtime runs, and the run says why."""
    import trtsr.pipeline.choose as choose
    import trtsr.pipeline.resolve as resolve
    import trtsr.pipeline.upscaler as upscaler

    monkeypatch.setattr(resolve, "engine_graph", lambda *a, **k: pytest.fail("exported for an engine"))
    monkeypatch.setattr(choose, "_torch_cuda", lambda: False)  # as on a machine with a CPU build of torch
    with upscaler.Upscaler("default") as up:
        assert up.backend_name.startswith("onnxruntime")
        assert "compute capability 9.0" in up.backend_reason and "ONNX Runtime runs on the" in up.backend_reason


def test_a_named_backend_that_cannot_serve_the_gpu_fails_before_export(on_h100, monkeypatch):
    import trtsr.pipeline.resolve as resolve
    import trtsr.pipeline.upscaler as upscaler

    monkeypatch.setattr(resolve, "engine_graph", lambda *a, **k: pytest.fail("exported for an engine"))
    with pytest.raises(TrtsrError, match="tensorrt-rtx .* does not run engines on this GPU"):
        upscaler.Upscaler("default", backend="tensorrt-rtx")


def test_bench_records_the_refusal_without_building(on_h100, monkeypatch):
    import trtsr.bench as bench
    import trtsr.pipeline.resolve as resolve

    monkeypatch.setattr(resolve, "engine_graph", lambda *a, **k: pytest.fail("exported for an engine"))
    result = bench.run_case("engine", "default", (256, 256), True, 4, 1, 1, lambda message: None)
    assert result.median_ms is None and "compute capability 9.0" in result.skipped


def test_info_says_the_gpu_is_refused_without_reading_the_engine(exports, tmp_path, monkeypatch):
    from pathlib import Path

    import trtsr.engines.check as check

    built = build_engine(exports.get(precision="fp16").onnx_path, tmp_path / "e.engine",
                         BuildSettings(profiles=("256x256",), backend="tensorrt-rtx", compute_capabilities=("sm86",)))
    monkeypatch.setattr(check, "detect_gpu", lambda: H100)
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read the engine") if self == built.engine_path
                        else read_bytes(self))
    report = check.check_engine(built.engine_path)
    assert report.runnable is False and report.activation_bytes is None
    assert report.verdict.startswith("cannot run here: tensorrt-rtx") and "compute capability 9.0" in report.verdict
