"""The engine session on a real GPU: engine output against ONNX Runtime on the same graph.

Skipped where no NVIDIA GPU and cuda-python are present (CI); run on the lent GPU machine.
"""

from __future__ import annotations

import numpy as np
import pytest

from trtsr.gpu import detect_gpu

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu():
    info = detect_gpu()
    if info is None:
        pytest.skip("no NVIDIA GPU visible")
    pytest.importorskip("cuda.bindings", reason="cuda-python (the gpu extra) runs engines")
    from trtsr.engines.backend import usable_backends

    if not usable_backends(info):
        # e.g. TensorRT-RTX on an H100; tests/runtime/test_cuda_gpu.py checks that refusal against the library
        pytest.skip(f"no installed TensorRT backend runs engines on this GPU ({info.name}, "
                    f"compute capability {info.compute_capability})")
    return info


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_engine_matches_onnxruntime_across_profile_range(gpu, exports, real_rgb, tmp_path, precision):
    from trtsr.backends import OnnxRuntimeSettings
    from trtsr.engines import BuildSettings, build_engine
    from trtsr.engines.backend import usable_backends
    from trtsr.sessions.engine_session import EngineSession
    from trtsr.sessions.onnxruntime_session import OnnxRuntimeSession

    graph = exports.get(precision=precision, io="uint8")
    reference = OnnxRuntimeSession(exports.get(precision="fp32", io="uint8").onnx_path, OnnxRuntimeSettings(cuda=False))
    built = build_engine(graph.onnx_path, tmp_path / "e.engine",
                         BuildSettings(profiles=("256x256:512x512:1024x1024",),
                                       backend=usable_backends(gpu)[0]))
    session = EngineSession.open(built.engine_path)
    try:
        # Several sizes across the profile, not only its opt: dynamic engines have been seen to
        # give NaN or black output away from the tuned shape.
        for height, width in [(64, 64), (97, 130), (128, 128), (200, 256), (256, 256)]:
            lr = np.ascontiguousarray(np.resize(real_rgb, (height, width, 3)))
            got = session.infer(lr, session.guidance).astype(float)
            ref = reference.infer(lr, reference.guidance).astype(float)
            assert got.shape == ref.shape == (height * 4, width * 4, 3)
            assert got.std() > 5, f"flat output at {width}x{height}"
            psnr = 10 * np.log10(255.0**2 / max(np.mean((got - ref) ** 2), 1e-12))
            assert psnr > 30, f"{precision} engine vs fp32 ONNX Runtime: {psnr:.1f} dB at {width}x{height}"
    finally:
        session.close()


def test_info_reports_each_profiles_activation_memory(gpu, exports, tmp_path):
    from trtsr.engines import BuildSettings, build_engine
    from trtsr.engines.backend import usable_backends
    from trtsr.engines.check import check_engine

    built = build_engine(exports.get(precision="fp16", io="uint8").onnx_path, tmp_path / "two.engine",
                         BuildSettings(profiles=("256x256", "64x64:512x512:1024x1024"),
                                       backend=usable_backends(gpu)[0]))
    report = check_engine(built.engine_path)
    assert report.runnable, report.verdict
    small, large = report.activation_bytes
    assert 0 < small <= large
