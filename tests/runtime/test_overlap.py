"""The engine session's queue: `submit` copies the next input on a copy stream while the current one runs,
through two sets of I/O buffers, and every result is its own input's.

The engine itself is a stand-in here (its "execution" writes the input's bytes at the start of the output
and a per-run mark after them, on the compute stream), so the session's own streams, events and buffers are
what is checked: on the CPU through a host-memory stand-in for cuda-python's runtime, and on a real GPU
(marked `gpu`) through cuda-python, with a slow first step in each run so that a missing wait shows.
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

    cudaEventDisableTiming = 2
    cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2,
                                           cudaMemcpyDeviceToDevice=3)

    def __init__(self, device_allocations_allowed: int | None = None) -> None:
        self.blocks: dict[int, ctypes.Array] = {}
        self.handles = 0
        self.device_allocations_allowed = device_allocations_allowed
        self.recorded: list[tuple[int, int]] = []  # (event, stream)
        self.waits: list[tuple[int, int]] = []  # (stream, event)
        self.sync_error: str | None = None

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

    cudaStreamCreate = cudaEventCreateWithFlags = _handle

    def cudaStreamDestroy(self, handle):
        return Err(0)

    cudaEventDestroy = cudaStreamDestroy

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        ctypes.memmove(int(dst), int(src), int(nbytes))
        return Err(0)

    def cudaMemsetAsync(self, dst, value, nbytes, stream):
        ctypes.memset(int(dst), int(value), int(nbytes))
        return Err(0)

    def cudaEventRecord(self, event, stream):
        self.recorded.append((event, stream))
        return Err(0)

    def cudaStreamWaitEvent(self, stream, event, flags):
        self.waits.append((stream, event))
        return Err(0)

    def cudaEventSynchronize(self, event):
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
    """An EngineSession around a stand-in context: the session's own submit, slots, streams and events."""
    from trtsr.runtime.sessions import EngineSession, allocate_io

    session = object.__new__(EngineSession)
    session.metadata = types.SimpleNamespace(
        guidance=None, guidance_input=None, scale=SCALE, input_name="in", output_name="out",
        profile_for=lambda h, w: 0 if max(h, w) <= max_side else None)
    session.io, session.scale = "uint8", SCALE
    session._cudart, session._context, session._errors, session._profile = cudart, context, Errors(), -1
    session._resources = contextlib.ExitStack()
    in_bytes = max_side * max_side * 3
    session._stream, session._copy_stream, first = allocate_io(cudart, in_bytes, in_bytes * SCALE * SCALE,
                                                               session._resources)
    session._slots, session._io_bytes = [first], (in_bytes, in_bytes * SCALE * SCALE)
    import collections

    session._in_flight = collections.deque()
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

def test_one_at_a_time_uses_one_set_of_buffers():
    cudart = HostCudart()
    session = session_over(cudart, StandInContext(cudart))
    for run, lr in enumerate(inputs(5, 64), start=1):
        check(session.infer(lr), lr, run)
    assert len(session._slots) == 1 and not session._in_flight
    session.close()
    assert cudart.blocks == {}


def test_queued_inputs_get_their_own_outputs_in_any_order_of_asking():
    cudart = HostCudart()
    session = session_over(cudart, StandInContext(cudart))
    lrs = inputs(7, 64)
    pending = [session.submit(lr) for lr in lrs]  # a third submit collects the oldest before reusing its slot
    assert len(session._slots) == 2 and len(session._in_flight) == 2
    for run in (7, 2, 5, 1, 3, 6, 4):  # every result is kept on its Pending, whatever the order of asking
        check(pending[run - 1].result(), lrs[run - 1], run)
    assert not session._in_flight and all(slot.pending is None for slot in session._slots)
    compute, copy = session._stream.handle, session._copy_stream.handle
    # each input's copy is recorded on the copy stream and waited for by the compute stream
    assert len(cudart.waits) == 7 and all(stream == compute for stream, _ in cudart.waits)
    copied = [event for event, stream in cudart.recorded if stream == copy]
    assert [event for _, event in cudart.waits] == copied
    session.close()
    assert cudart.blocks == {}


def test_no_memory_for_a_second_set_means_no_overlap_not_a_failure():
    cudart = HostCudart(device_allocations_allowed=3)  # the first slot takes 3 device buffers
    session = session_over(cudart, StandInContext(cudart))
    lrs = inputs(3, 64)
    pending = [session.submit(lr) for lr in lrs]
    assert len(session._slots) == 1
    for run, (p, lr) in enumerate(zip(pending, lrs, strict=True), start=1):
        check(p.result(), lr, run)
    session.close()
    assert cudart.blocks == {}


def test_a_failed_run_frees_its_slot_and_a_late_error_names_its_run():
    cudart = HostCudart()
    context = StandInContext(cudart)
    session = session_over(cudart, context)
    lr = inputs(1, 64)[0]
    context.fail_next = True
    with pytest.raises(TrtsrError, match="execute_async_v3 at 64x64 on profile 0"):
        session.submit(lr)
    assert all(slot.pending is None for slot in session._slots)
    check(session.infer(lr), lr, 1)
    queued = session.submit(lr)
    cudart.sync_error = "cudaErrorIllegalAddress"  # CUDA reports a failed run when it is waited for
    with pytest.raises(TrtsrError, match=r"cudaErrorIllegalAddress \(engine run at 64x64 on profile 0\)"):
        queued.result()
    cudart.sync_error = "cudaErrorMemoryAllocation"
    with pytest.raises(OutOfMemory):  # still the upscaler's signal for smaller tiles
        session.submit(lr).result()
    cudart.sync_error = None
    assert not session._in_flight
    session.close()
    with pytest.raises(TrtsrError, match="closed"):
        session.submit(lr)


def test_closing_with_work_queued_frees_everything():
    cudart = HostCudart()
    session = session_over(cudart, StandInContext(cudart))
    for lr in inputs(2, 64):
        session.submit(lr)
    session.close()
    assert cudart.blocks == {}


def test_an_input_too_large_for_every_profile_takes_no_slot():
    from trtsr.errors import TooLarge

    cudart = HostCudart()
    session = session_over(cudart, StandInContext(cudart))
    with pytest.raises(TooLarge):
        session.submit(np.zeros((65, 64, 3), np.uint8))
    assert not session._in_flight
    session.close()


def test_a_profile_switch_waits_for_the_queued_runs_first():
    cudart = HostCudart()
    session = session_over(cudart, StandInContext(cudart))
    session.metadata.profile_for = lambda h, w: 0 if max(h, w) <= 32 else 1 if max(h, w) <= 64 else None
    small, large = inputs(3, 64)[2], inputs(1, 64)[0]  # 7x21 (profile 0) and 64x64 (profile 1)
    first = session.submit(small)
    second = session.submit(small)  # same profile: queued behind the first
    assert not first.ready and not second.ready
    third = session.submit(large)  # the switch (activation memory may move) waits for both
    assert first.ready and second.ready and not third.ready
    check(first.result(), small, 1), check(second.result(), small, 2), check(third.result(), large, 3)
    session.close()


# -- on a GPU ------------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_queued_runs_on_a_gpu_keep_every_output_its_own():
    from trtsr.gpu import detect_gpu

    if detect_gpu() is None:
        pytest.skip("no NVIDIA GPU visible")
    pytest.importorskip("cuda.bindings", reason="cuda-python (the gpu extra) runs engines")
    from trtsr.gpu import cudart as load
    from trtsr.runtime.sessions import DeviceMemory

    cudart = load()
    side = 1024
    with DeviceMemory(cudart, 256 << 20) as a, DeviceMemory(cudart, 256 << 20) as b:
        # each run first copies 256 MB on the device: a read of the output before the run, or a run that
        # does not wait for its input's copy, shows as a wrong mark or another input's bytes
        context = StandInContext(cudart, slow=(b.ptr, a.ptr, 256 << 20))
        session = session_over(cudart, context, max_side=side)
        lrs = inputs(24, side)
        pending = [session.submit(lr) for lr in lrs]
        assert len(session._slots) == 2
        for run, (p, lr) in enumerate(zip(pending, lrs, strict=True), start=1):
            check(p.result(), lr, run)
        session.close()


# -- the Upscaler over a session that queues -----------------------------------------------------------

class QueueingSession:
    """ONNX Runtime on the shipped graph behind a `submit` that queues: the work runs when its result is asked
    for, as on a GPU, and `fail_whole` makes whole pictures run out of memory there."""

    def __init__(self, fail_whole: bool = False) -> None:
        from trtsr.paths import shipped_onnx
        from trtsr.runtime.sessions import OnnxRuntimeSession

        self.inner = OnnxRuntimeSession(shipped_onnx())
        self.fail_whole = fail_whole
        self.submitted, self.ran = [], []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def submit(self, lr, guidance=None):
        session, index = self, len(self.submitted)
        self.submitted.append(lr.shape)

        class Later:
            ready = False

            def result(self):
                if session.fail_whole:
                    raise OutOfMemory("CUDA out of memory (stand-in: the whole picture)")
                session.ran.append(index)
                return session.inner.infer(lr, guidance)

        return Later()


def test_the_upscaler_queues_whole_pictures_and_each_gets_its_own_result(real_rgb):
    from trtsr.pipeline.upscaler import Upscaler
    from trtsr.runtime.images import from_array

    rgb = real_rgb
    first, second = from_array(rgb[:90, :120].copy()), from_array(rgb[40:140, 60:130].copy())
    with Upscaler.from_session(QueueingSession().inner) as plain:  # the same graph and w, one at a time
        want = [plain.upscale_picture(first).rgb, plain.upscale_picture(second).rgb]
    session = QueueingSession()
    upscaler = Upscaler.from_session(session)
    jobs = [upscaler.start(first), upscaler.start(second)]
    assert not any(job.done for job in jobs) and session.submitted and session.ran == []  # both queued
    got = [jobs[1].result().rgb, jobs[0].result().rgb][::-1]
    assert session.ran == [1, 0]
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape and np.array_equal(a, b)
    upscaler.close()


def test_out_of_memory_when_a_queued_picture_runs_retries_it_in_tiles(real_rgb, caplog):
    import logging

    from trtsr import defaults
    from trtsr.pipeline.upscaler import Upscaler
    from trtsr.runtime.images import from_array

    whole = defaults.ONNXRUNTIME_TILE  # a picture this size runs in one piece, and is queued
    rgb = real_rgb[:whole, : whole - 10].copy()
    half = whole // 2
    with Upscaler.from_session(QueueingSession().inner, tile=half) as tiled:
        want = tiled.upscale_picture(from_array(rgb)).rgb
    upscaler = Upscaler.from_session(QueueingSession(fail_whole=True))
    with caplog.at_level(logging.WARNING, logger="trtsr.pipeline.upscaler"):
        got = upscaler.start(from_array(rgb)).result().rgb
    assert np.array_equal(got, want)
    assert any(f"retrying with {half}-pixel tiles" in r.getMessage() for r in caplog.records)
    upscaler.close()


def test_trtsr_run_keeps_one_picture_queued_and_writes_every_output(real_rgb, tmp_path):
    from PIL import Image

    from trtsr.cli.run_cmd import _run_jobs
    from trtsr.pipeline.upscaler import Upscaler

    sources = []
    for index, (top, left) in enumerate([(0, 0), (30, 50), (60, 10)]):
        path = tmp_path / f"in{index}.png"
        Image.fromarray(real_rgb[top:top + 64, left:left + 80]).save(path)
        sources.append(path)
    jobs = [(src, tmp_path / "out" / f"{src.stem}_x4.png") for src in sources]
    (tmp_path / "out").mkdir()
    session = QueueingSession()
    failing = session.submit

    def submit(lr, guidance=None):  # the second picture's run fails on the GPU, after it was queued
        later = failing(lr, guidance)
        if len(session.submitted) == 2:
            later.result = lambda: (_ for _ in ()).throw(TrtsrError("CUDA error cudaErrorLaunchFailure"))
        return later

    session.submit = submit
    with Upscaler.from_session(session) as upscaler:
        failed = _run_jobs(upscaler, jobs, overwrite=False)
    assert failed == 1 and session.ran == [0, 2]
    assert not jobs[1][1].exists()  # nothing half-written for the failed one
    with Upscaler.from_session(QueueingSession().inner) as plain:
        for src, dst in (jobs[0], jobs[2]):
            with Image.open(src) as img:
                want = plain.upscale(np.asarray(img.convert("RGB")))
            with Image.open(dst) as img:
                assert np.array_equal(np.asarray(img), want)
