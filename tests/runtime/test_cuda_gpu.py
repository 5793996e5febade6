"""trtsr's CUDA plumbing on a real GPU: pinned and device buffers, streams, the out-of-memory signal the
upscaler's smaller-tile retry depends on, the memory high-water mark, and the backend's verdict on this GPU
against the library's own.

Skipped where no NVIDIA GPU and cuda-python are present (CI); run on the lent GPU machine.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pytest

from trtsr.errors import OutOfMemory, TrtsrError
from trtsr.gpu import detect_gpu

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cudart():
    if detect_gpu() is None:
        pytest.skip("no NVIDIA GPU visible")
    pytest.importorskip("cuda.bindings", reason="cuda-python (the gpu extra) runs engines")
    from trtsr.gpu import cudart as load

    return load()


def test_pinned_and_device_buffers_round_trip_on_a_stream(cudart):
    from trtsr.gpu import check_cuda
    from trtsr.sessions.engine_session import allocate_io

    nbytes = 3 * 1023 * 517  # an odd size: no hidden alignment assumption
    with contextlib.ExitStack() as stack:
        stream, slot = allocate_io(cudart, nbytes, nbytes, stack)
        host_in, host_out, dev_in, dev_out = slot.host_in, slot.host_out, slot.dev_in, slot.dev_out
        sent = np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8)
        host_in.view((nbytes,), np.uint8)[...] = sent
        host_out.view((nbytes,), np.uint8)[...] = 0
        kinds = cudart.cudaMemcpyKind
        check_cuda(cudart.cudaMemcpyAsync(dev_in.ptr, host_in.ptr, nbytes, kinds.cudaMemcpyHostToDevice,
                                          stream.handle))
        check_cuda(cudart.cudaMemcpyAsync(dev_out.ptr, dev_in.ptr, nbytes, kinds.cudaMemcpyDeviceToDevice,
                                          stream.handle))
        check_cuda(cudart.cudaMemcpyAsync(host_out.ptr, dev_out.ptr, nbytes, kinds.cudaMemcpyDeviceToHost,
                                          stream.handle))
        check_cuda(cudart.cudaStreamSynchronize(stream.handle))
        assert np.array_equal(host_out.view((nbytes,), np.uint8), sent)
    assert dev_in.ptr is None and host_in.ptr is None and stream._stream is None  # freed by the stack


def test_an_allocation_too_large_is_out_of_memory_and_the_device_recovers(cudart):
    from trtsr.gpu import check_cuda
    from trtsr.sessions.engine_session import DeviceMemory

    _, total = check_cuda(cudart.cudaMemGetInfo())
    with pytest.raises(OutOfMemory, match="CUDA out of memory"):
        DeviceMemory(cudart, int(total) * 4)
    with DeviceMemory(cudart, 64 << 20) as memory:  # the failed request left nothing broken behind it
        assert memory.ptr is not None


def test_a_failed_call_that_is_not_memory_is_not_out_of_memory(cudart):
    from trtsr.gpu import check_cuda

    with pytest.raises(TrtsrError) as caught:
        check_cuda(cudart.cudaSetDevice(10_000))
    assert not isinstance(caught.value, OutOfMemory) and "CUDA error" in str(caught.value)


def test_the_high_water_mark_sees_an_allocation_that_is_already_gone(cudart):
    from trtsr.gpu import device_memory_used
    from trtsr.measure import MemoryHighWater
    from trtsr.sessions.engine_session import DeviceMemory

    size = 1 << 30
    with MemoryHighWater() as memory:
        with DeviceMemory(cudart, size):
            time.sleep(0.05)
    assert memory.peak_bytes >= size * 0.99
    assert device_memory_used() < memory.highest  # it was gone by the end, yet counted


def test_the_backend_verdict_on_this_gpu_matches_the_library(cudart, tmp_path):
    """Build the shipped graph for the backend's default targets here, then load it: trtsr refuses exactly
    when the library refuses, and says so first, in one line."""
    from trtsr.engines import BuildSettings, build_engine, load_backend
    from trtsr.paths import shipped_onnx
    from trtsr.runtime.engine_io import make_error_capture
    from trtsr.sessions.engine_session import EngineSession

    rtx = pytest.importorskip("tensorrt_rtx", reason="the verdict is TensorRT-RTX's (the rtx extra)")
    gpu = detect_gpu()
    backend = load_backend("tensorrt-rtx")
    built = build_engine(shipped_onnx(), tmp_path / "probe.engine",
                         BuildSettings(profiles=("256x256:512x512:1024x1024",), backend="tensorrt-rtx"))
    errors = make_error_capture(rtx)
    library = rtx.Runtime(errors).deserialize_cuda_engine(built.engine_path.read_bytes())
    try:
        backend.check_runs_on(gpu)
    except TrtsrError as exc:
        ours = str(exc)
        assert library is None, "trtsr refused a GPU the library runs on"
        theirs = " ".join(errors.take())
        assert f"compute capability {gpu.compute_capability}" in theirs, theirs
        with pytest.raises(TrtsrError) as caught:
            EngineSession.open(built.engine_path)
        assert ours in str(caught.value) and "\n" not in str(caught.value)
    else:
        assert library is not None, f"the library refused a GPU trtsr lists: {errors.take()}"
        session = EngineSession.open(built.engine_path)
        try:
            lr = np.full((64, 64, 3), 128, dtype=np.float32)
            out = session.infer(lr, session.guidance)
            assert out.shape == (256, 256, 3) and np.isfinite(out).all()
        finally:
            session.close()
