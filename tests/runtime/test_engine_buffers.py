"""The engine session's buffers and stream: every result is its own input's, failures name their run, and
closing frees everything.

The engine itself is a stand-in here (its "execution" writes the input's bytes at the start of the output
and a per-run mark after them, on the stream), so the session's own stream and buffers are what is
checked: on the CPU through a host-memory stand-in for cuda-python's runtime, and on a real GPU (marked
`gpu`) through cuda-python, with a slow first step in each run so that a missing wait shows.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import types

import numpy as np
import pytest

from trtsr.errors import OutOfMemory, TrtsrError

SCALE = 2


@dataclasses.dataclass
class Err:
    value: int
    name: str = "cudaSuccess"

    def __int__(self):
        return self.value

    def __str__(self):
        return f"cudaError_t.{self.name}"


class HostCudart:
    """cuda-python's runtime over host memory: copies happen when asked (so streams are trivially ordered);
    what is taken, freed, recorded and waited for is real bookkeeping."""

    cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2,
                                           cudaMemcpyDeviceToDevice=3)

    def __init__(self, device_allocations_allowed: int | None = None) -> None:
        self.blocks: dict[int, ctypes.Array] = {}
        self.handles = 0
        self.device_allocations_allowed = device_allocations_allowed
        self.sync_error: str | None = None
        self.syncs = 0

    def _take(self, nbytes: int):
        block = (ctypes.c_uint8 * max(int(nbytes), 1))()
        self.blocks[ctypes.addressof(block)] = block
        return Err(0), ctypes.addressof(block)

    def cudaMalloc(self, nbytes):
        if self.device_allocations_allowed is not None:
            if self.device_allocations_allowed == 0:
                return Err(2, "cudaErrorMemoryAllocation"), None
            self.device_allocations_allowed -= 1
        return self._take(nbytes)

    def cudaMallocHost(self, nbytes):
        return self._take(nbytes)

    def _free(self, ptr):
        del self.blocks[int(ptr)]
        return Err(0)

    cudaFree = cudaFreeHost = _free

    def _handle(self, *args):
        self.handles += 1
        return Err(0), 1000 + self.handles

    cudaStreamCreate = _handle

    def cudaStreamDestroy(self, handle):
        return Err(0)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        ctypes.memmove(int(dst), int(src), int(nbytes))
        return Err(0)

    def cudaMemsetAsync(self, dst, value, nbytes, stream):
        ctypes.memset(int(dst), int(value), int(nbytes))
        return Err(0)

    def cudaStreamSynchronize(self, stream):
        self.syncs += 1
        return Err(0) if self.sync_error is None else Err(700, self.sync_error)


class StandInContext:
    """An execution context whose run writes the input's bytes at the start of the output and the run's mark
    after them, on the stream it is given; `slow` bytes are copied first, to make a run take time on a GPU."""

    def __init__(self, cudart, slow: tuple[int, int, int] | None = None) -> None:
        self.cudart, self.slow = cudart, slow
        self.shape = None
        self.addresses: dict[str, int] = {}
        self.runs = 0
        self.fail_next = False

    def set_optimization_profile_async(self, index, stream):
        return True

    def set_input_shape(self, name, shape):
        self.shape = tuple(shape)
        return True

    def set_tensor_address(self, name, address):
        self.addresses[name] = int(address)
        return True

    def execute_async_v3(self, stream):
        if self.fail_next:
            self.fail_next = False
            return False
        self.runs += 1
        cudart = self.cudart
        copy = cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        if self.slow is not None:
            dst, src, nbytes = self.slow
            _ok(cudart.cudaMemcpyAsync(dst, src, nbytes, copy, stream))
        in_bytes = int(np.prod(self.shape))
        out_bytes = in_bytes * SCALE * SCALE
        _ok(cudart.cudaMemcpyAsync(self.addresses["out"], self.addresses["in"], in_bytes, copy, stream))
        _ok(cudart.cudaMemsetAsync(self.addresses["out"] + in_bytes, mark(self.runs), out_bytes - in_bytes, stream))
        return True


def _ok(result) -> None:
    err = result[0] if isinstance(result, tuple) else result
    assert int(err) == 0, err


def mark(run: int) -> int:
    return 1 + run % 250


class Errors:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def take(self) -> list[str]:
        messages, self.messages = self.messages, []
        return messages


def session_over(cudart, context, max_side: int = 64):
    """An EngineSession around a stand-in context: the session's own infer, stream and buffers."""
    from trtsr.sessions.engine_session import EngineSession, allocate_io

    session = object.__new__(EngineSession)
    session.metadata = types.SimpleNamespace(
        guidance=None, guidance_input=None, scale=SCALE, input_name="in", output_name="out",
        profile_for=lambda h, w: 0 if max(h, w) <= max_side else None)
    session.io, session.scale, session.guidance, session.guidance_input = "uint8", SCALE, None, None
    session._cudart, session._context, session._errors, session._profile = cudart, context, Errors(), -1
    session._resources = contextlib.ExitStack()
    in_bytes = max_side * max_side * 3
    session._stream, session._buffers = allocate_io(cudart, in_bytes, in_bytes * SCALE * SCALE, session._resources)
    return session


def inputs(count: int, max_side: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [(max_side, max_side), (max_side // 2 + 3, max_side - 5), (7, max_side // 3), (max_side, 9)]
    return [rng.integers(0, 256, (*sizes[i % len(sizes)], 3), dtype=np.uint8) for i in range(count)]


def check(result: np.ndarray, lr: np.ndarray, run: int) -> None:
    assert result.shape == (lr.shape[0] * SCALE, lr.shape[1] * SCALE, 3)
    flat = result.reshape(-1)
    assert np.array_equal(flat[: lr.size], lr.reshape(-1)), f"run {run}: another input's output"
    assert (flat[lr.size:] == mark(run)).all(), f"run {run}: output read before the run wrote it"


# -- on the CPU ----------------------------------------------------------------------------------------

def test_every_result_is_its_own_inputs_and_closing_frees_everything():
    cudart = HostCudart()
    session = session_over(cudart, StandInContext(cudart))
    for run, lr in enumerate(inputs(5, 64), start=1):
        check(session.infer(lr, session.guidance), lr, run)
    assert cudart.syncs == 5  # one synchronisation per picture
    session.close()
    assert cudart.blocks == {}
    with pytest.raises(TrtsrError, match="closed"):
        session.infer(inputs(1, 64)[0], session.guidance)


def test_a_failed_run_names_its_call_shape_and_profile():
    cudart = HostCudart()
    context = StandInContext(cudart)
    session = session_over(cudart, context)
    lr = inputs(1, 64)[0]
    context.fail_next = True
    with pytest.raises(TrtsrError, match="execute_async_v3 at 64x64 on profile 0"):
        session.infer(lr, session.guidance)
    check(session.infer(lr, session.guidance), lr, 1)  # the session still works
    cudart.sync_error = "cudaErrorIllegalAddress"  # CUDA reports a failed run when the stream is waited for
    with pytest.raises(TrtsrError, match=r"cudaErrorIllegalAddress \(engine run at 64x64 on profile 0\)"):
        session.infer(lr, session.guidance)
    cudart.sync_error = "cudaErrorMemoryAllocation"
    with pytest.raises(OutOfMemory):  # still the upscaler's signal for smaller tiles
        session.infer(lr, session.guidance)
    cudart.sync_error = None
    session.close()
    assert cudart.blocks == {}


def test_an_input_too_large_for_every_profile_is_too_large():
    from trtsr.errors import TooLarge

    cudart = HostCudart()
    context = StandInContext(cudart)
    session = session_over(cudart, context)
    with pytest.raises(TooLarge):
        session.infer(np.zeros((65, 64, 3), np.uint8), session.guidance)
    assert context.runs == 0
    session.close()


def test_a_tensor_on_the_host_goes_the_host_way_and_comes_back_a_tensor():
    torch = pytest.importorskip("torch", reason="device arrays are torch tensors")
    cudart = HostCudart()
    session = session_over(cudart, StandInContext(cudart))
    lr = inputs(1, 64)[0]
    out = session.infer_tensor(torch.from_numpy(lr), session.guidance)  # a CPU tensor: not on this GPU
    assert isinstance(out, torch.Tensor) and out.device.type == "cpu"
    check(out.numpy(), lr, 1)
    session.close()


def test_profiles_switch_per_input_size():
    cudart = HostCudart()
    session = session_over(cudart, StandInContext(cudart))
    session.metadata.profile_for = lambda h, w: 0 if max(h, w) <= 32 else 1 if max(h, w) <= 64 else None
    small, large = inputs(3, 64)[2], inputs(1, 64)[0]  # 7x21 (profile 0) and 64x64 (profile 1)
    for run, lr in enumerate((small, large, small), start=1):
        check(session.infer(lr, session.guidance), lr, run)
        assert session._profile == (0 if lr is small else 1)
    session.close()


# -- on a GPU ------------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_runs_on_a_gpu_keep_every_output_its_own():
    from trtsr.gpu import detect_gpu

    if detect_gpu() is None:
        pytest.skip("no NVIDIA GPU visible")
    pytest.importorskip("cuda.bindings", reason="cuda-python (the gpu extra) runs engines")
    from trtsr.gpu import cudart as load
    from trtsr.sessions.engine_session import DeviceMemory

    cudart = load()
    side = 1024
    with DeviceMemory(cudart, 256 << 20) as a, DeviceMemory(cudart, 256 << 20) as b:
        # each run first copies 256 MB on the device: a read of the output before the run ends shows as a
        # wrong mark or another input's bytes
        context = StandInContext(cudart, slow=(b.ptr, a.ptr, 256 << 20))
        session = session_over(cudart, context, max_side=side)
        for run, lr in enumerate(inputs(12, side), start=1):
            check(session.infer(lr, session.guidance), lr, run)
        session.close()


# -- the job runner trtsr run uses ------------------------------------------------------------------------------------

class FailingSecond:
    """ONNX Runtime on the shipped graph, whose second picture fails as a GPU run can."""

    def __init__(self) -> None:
        from trtsr.paths import shipped_onnx
        from trtsr.sessions.onnxruntime_session import OnnxRuntimeSession

        self.inner = OnnxRuntimeSession(shipped_onnx())
        self.ran = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def infer(self, lr, w):
        self.ran += 1
        if self.ran == 2:
            raise TrtsrError("CUDA error cudaErrorLaunchFailure")
        return self.inner.infer(lr, w)


def test_trtsr_run_writes_every_output_and_a_failed_picture_fails_alone(real_rgb, tmp_path):
    from PIL import Image

    from trtsr.pipeline.jobs import run_jobs, sort_jobs
    from trtsr.pipeline.upscaler import Upscaler

    sources = []
    for index, (top, left) in enumerate([(0, 0), (30, 50), (60, 10)]):
        path = tmp_path / f"in{index}.png"
        Image.fromarray(real_rgb[top:top + 64, left:left + 80]).save(path)
        sources.append(path)
    jobs = [(src, tmp_path / "out" / f"{src.stem}_x4.png") for src in sources]
    (tmp_path / "out").mkdir()
    session = FailingSecond()
    with Upscaler.from_session(session) as upscaler:
        summary = run_jobs(upscaler, sort_jobs(jobs, overwrite=False))
    assert len(summary.failed) == 1 and len(summary.done) == 2 and session.ran == 3
    assert "cudaErrorLaunchFailure" in summary.failed[0].line
    assert not jobs[1][1].exists()  # nothing half-written for the failed one
    with Upscaler.from_session(FailingSecond().inner) as plain:
        for src, dst in (jobs[0], jobs[2]):
            with Image.open(src) as img:
                want = plain.upscale(np.asarray(img.convert("RGB")))
            with Image.open(dst) as img:
                assert np.array_equal(np.asarray(img), want)
