"""The engine runtime's CPU-testable parts: I/O checked against metadata, failure messages, cleanup, cache lock.

TensorRT-RTX builds engines here but cannot deserialise them without a GPU driver, so the
engine side of the I/O check is a stand-in that answers the same five calls from a real
engine's recorded I/O; everything it is compared with is real (a real engine's metadata,
real TensorRT-RTX error messages, real files and processes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
from pathlib import Path

import pytest

from trtsr.errors import OutOfMemory, TrtsrError
from trtsr.runtime.engine_io import check_engine_io, execution_failure, make_error_capture, read_engine_io

trt = pytest.importorskip("tensorrt_rtx", reason="the rtx extra builds the engine these checks read")


@pytest.fixture(scope="module")
def engine_meta(tmp_path_factory):
    """A real engine of the default model's shipped x4 PadCFG graph (float32 I/O, w an input): nothing to export."""
    from trtsr.engines import BuildSettings, build_engine
    from trtsr.engines.metadata import EngineMetadata
    from trtsr.paths import shipped_onnx

    built = build_engine(shipped_onnx(), tmp_path_factory.mktemp("engine") / "t.engine",
                         BuildSettings(profiles=("64x64:128x128:256x256",), backend="tensorrt-rtx"))
    return EngineMetadata.for_engine(built.engine_path)


class StandInEngine:
    """Answers num_io_tensors / get_tensor_name / _mode / _dtype / _profile_shape like a deserialised engine."""

    def __init__(self, tensors: list[dict], profiles: list[list[tuple]]) -> None:
        self.tensors, self.profiles = tensors, profiles
        self.num_io_tensors = len(tensors)
        self.num_optimization_profiles = len(profiles)

    def _find(self, name):
        return next(t for t in self.tensors if t["name"] == name)

    def get_tensor_name(self, i):
        return self.tensors[i]["name"]

    def get_tensor_mode(self, name):
        return trt.TensorIOMode.INPUT if self._find(name)["mode"] == "input" else trt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return self._find(name)["dtype"]

    def get_tensor_profile_shape(self, name, index):
        if name == "guidance":
            return [(1,), (1,), (1,)]
        return self.profiles[index]


def _as_engine(meta, **changes) -> StandInEngine:
    dtypes = {"uint8": trt.DataType.UINT8, "float": trt.DataType.FLOAT, "float32": trt.DataType.FLOAT}
    tensors = [{"name": t["name"], "mode": t["mode"], "dtype": dtypes[t["dtype"]]} for t in meta.tensors]
    profiles = [list(p.input_range) for p in meta.profiles]
    for name, value in changes.items():
        if name == "profiles":
            profiles = value
        else:
            tensors = value(tensors)
    return StandInEngine(tensors, profiles)


def test_the_engine_io_that_matches_its_metadata_passes(engine_meta):
    io = read_engine_io(_as_engine(engine_meta))
    assert [(t.name, t.mode, t.dtype) for t in io] == [("lr", "input", "float32"), ("guidance", "input", "float32"),
                                                      ("hr", "output", "float32")]
    assert io[0].profiles == (((16, 16, 3), (32, 32, 3), (64, 64, 3)),)
    check_engine_io(io, engine_meta)


@pytest.mark.parametrize(("change", "expected"), [
    # a swapped engine: built for another profile than the JSON beside it records
    ({"profiles": [[(16, 16, 3), (64, 64, 3), (128, 128, 3)]]}, "profiles"),
    # another network's output name
    ({"tensors": lambda ts: [dict(t, name="out") if t["mode"] == "output" else t for t in ts]}, "outputs ['out']"),
    # a uint8-I/O engine under float32 metadata: the buffers would be read as the wrong type
    ({"tensors": lambda ts: [dict(t, dtype=trt.DataType.UINT8) if t["name"] == "lr" else t for t in ts]},
     "lr is uint8, metadata says float32"),
    # w built in (no guidance input) while the metadata promises one
    ({"tensors": lambda ts: [t for t in ts if t["name"] != "guidance"]}, "inputs ['lr']"),
], ids=["swapped-profile", "renamed-output", "dtype", "missing-guidance"])
def test_an_engine_that_differs_from_its_metadata_is_refused(engine_meta, change, expected):
    with pytest.raises(TrtsrError, match="does not match its metadata") as caught:
        check_engine_io(read_engine_io(_as_engine(engine_meta, **change)), engine_meta)
    message = str(caught.value)
    assert expected in message and "rebuild it with trtsr build" in message and "\n" not in message


def test_only_an_allocation_failure_is_out_of_memory():
    # Real TensorRT-RTX error messages, captured by the session's logger.
    capture = make_error_capture(trt)
    runtime = trt.Runtime(capture)
    assert runtime.deserialize_cuda_engine(b"not an engine" * 10) is None
    errors = capture.take()
    assert errors and capture.take() == []
    failure = execution_failure(errors, "execute_async_v3 at 64x64 on profile 0")
    assert type(failure) is TrtsrError and "execute_async_v3 at 64x64 on profile 0 failed" in str(failure)
    oom = execution_failure(["[executionContext.cpp::enqueueV3] Error Code 5: FAILED_ALLOCATION (cudaMalloc)"],
                            "execute_async_v3 at 4096x4096 on profile 1")
    assert isinstance(oom, OutOfMemory) and "4096x4096 on profile 1" in str(oom)
    assert isinstance(execution_failure(["CUDA error: out of memory"], "x"), OutOfMemory)
    assert type(execution_failure([], "x")) is TrtsrError


class _CountingCudart:
    """Stands in for cuda-python's runtime: real bookkeeping of what is taken and freed, failing on request."""

    @dataclasses.dataclass
    class Err:
        value: int

        def __int__(self):
            return self.value

        def __str__(self):
            return "cudaError_t.cudaErrorMemoryAllocation" if self.value else "cudaError_t.cudaSuccess"

    def __init__(self, fail_at: int) -> None:
        self.fail_at, self.calls, self.live = fail_at, 0, set()
        import ctypes

        self._blocks = []
        self._ctypes = ctypes

    def _take(self, nbytes: int):
        self.calls += 1
        if self.calls == self.fail_at:
            return self.Err(2), None
        block = (self._ctypes.c_uint8 * max(nbytes, 1))()
        self._blocks.append(block)
        ptr = self._ctypes.addressof(block)
        self.live.add(ptr)
        return self.Err(0), ptr

    cudaMalloc = cudaMallocHost = _take

    def cudaStreamCreate(self):
        return self._take(1)

    def _free(self, ptr):
        self.live.remove(ptr)
        return self.Err(0)

    cudaFree = cudaFreeHost = cudaStreamDestroy = _free


# allocate_io takes 7 things: the stream, then the I/O buffers (pinned in and out, device in and out, pinned and
# device w)
@pytest.mark.parametrize("fail_at", [1, 2, 4, 7])
def test_a_start_up_that_fails_halfway_frees_what_it_took(fail_at):
    from trtsr.sessions.engine_session import allocate_io

    cuda = _CountingCudart(fail_at)
    stack = contextlib.ExitStack()
    with pytest.raises(OutOfMemory, match="cudaErrorMemoryAllocation"):
        try:
            allocate_io(cuda, 1024, 16384, stack)
        finally:
            assert len(cuda.live) == fail_at - 1  # everything up to the failing call was taken...
            stack.close()
    assert cuda.live == set()  # ...and is freed
    ok = _CountingCudart(0)
    with contextlib.ExitStack() as owner:
        stream, buffers = allocate_io(ok, 1024, 16384, owner)
        assert len(ok.live) == 7 and stream.handle is not None
        assert buffers.host_out.view((64, 64, 3), "uint8").nbytes == 12288
    assert ok.live == set()


class _Payload:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self):
        return self.data


def _save_many(path: str, byte: int, times: int) -> None:
    from trtsr.sessions.engine_session import save_runtime_cache

    for i in range(times):
        save_runtime_cache(_Payload(bytes([byte]) * (200_000 + i)), Path(path))


def test_two_processes_saving_the_runtime_cache_never_leave_a_torn_file(tmp_path):
    from trtsr.files import file_lock
    from trtsr.paths import lock_path_for

    path = tmp_path / "runtime.cache"
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_save_many, args=(str(path), b, 40)) for b in (1, 2)]
    for w in writers:
        w.start()
    seen = set()
    while any(w.is_alive() for w in writers):
        if path.exists():
            with file_lock(lock_path_for(path)):
                data = path.read_bytes()
            assert len(set(data)) == 1 and len(data) >= 200_000  # one writer's whole payload, never a mix
            seen.add(data[0])
    for w in writers:
        w.join(timeout=60)
        assert w.exitcode == 0
    final = path.read_bytes()
    assert len(set(final)) == 1 and len(final) == 200_039
