"""The engine session: a TensorRT or TensorRT-RTX engine behind the `Session` protocol, and the CUDA
resources it owns (stream, pinned host memory, device memory), each freeing itself."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from trtsr.backends import RuntimeSettings
from trtsr.defaults import IoType
from trtsr.errors import OutOfMemory, TooLarge, TrtsrError
from trtsr.files import file_lock
from trtsr.gpu import check_cuda, cudart, handle
from trtsr.paths import lock_path_for
from trtsr.sessions.base import SessionBase
from trtsr.sizes import SizeRequirements

log = logging.getLogger(__name__)


class EngineSession(SessionBase):
    """A TensorRT / TensorRT-RTX engine with I/O buffers allocated once for its largest profile.

    Open one with `EngineSession.open(path)`: it checks the metadata, the file's size, the GPU and the
    backend, then reads the engine file once, checks its sha256 and deserialises those same bytes (the
    engine cache hands over what it already checked, `LoadedEngine`). Without a GPU the file is still
    read and checked first, so a corrupt engine is named as such. The session takes what is checked.

    `settings` (RuntimeSettings) chooses the runtime cache, TensorRT-RTX's kernel specialisation and
    CUDA-graph strategy, and whether activation memory follows the profile in use (the default) or
    is reserved for the largest.

    One execution context, one CUDA stream, pinned host buffers and device buffers sized for the
    largest profile; per image: copy in, execute, copy out, all asynchronous on the stream, one
    synchronisation at the end. The profile is chosen per input size (the smallest that holds it).
    The engine's own I/O (names, dtypes, profile shapes) is checked against the metadata before any
    buffer is sized. Every CUDA resource is owned by a small wrapper registered on an exit stack, so a
    start-up that fails halfway frees what it had taken. Every TensorRT call that can fail is checked
    and its failure names the call, the shape and the profile; only an allocation failure (from CUDA,
    or in TensorRT's reported errors) is `OutOfMemory`.
    """

    what = "engine"

    @classmethod
    def open(cls, engine, settings: RuntimeSettings | None = None) -> EngineSession:
        """A session for `engine`: a path, or the `LoadedEngine` the engine cache checked."""
        from trtsr.engines.backend import load_backend
        from trtsr.engines.metadata import LoadedEngine, open_engine_file
        from trtsr.gpu import detect_gpu

        loaded = engine if isinstance(engine, LoadedEngine) else open_engine_file(engine)
        meta, path = loaded.metadata, loaded.path
        gpu = detect_gpu()
        if gpu is None:
            if not loaded.trusted:
                loaded.data  # read and checked first: a broken file is the first thing to fix  # noqa: B018
            raise TrtsrError("engines run on an NVIDIA GPU and none is visible; run the .onnx graph on the "
                             "onnxruntime backend (-b onnxruntime) instead", path=path)
        backend = load_backend(meta.backend)
        backend.check_runs_on(gpu, path)  # before reading a file of up to gigabytes for a certain refusal
        if backend.version != meta.backend_version:
            raise TrtsrError(f"built with {meta.backend} {meta.backend_version} but {backend.version} is installed; "
                             "rebuild it with trtsr build", path=path)
        loaded.data  # read once (and checked, unless the cache trusts it) before any CUDA work  # noqa: B018
        return cls(loaded, backend, gpu, settings)

    def __init__(self, loaded, backend, gpu, settings: RuntimeSettings | None = None) -> None:
        """Takes a checked `LoadedEngine`, its loaded backend and the GPU; use `open`."""
        from trtsr.paths import runtime_cache_path
        from trtsr.runtime.engine_io import check_engine_io, make_error_capture, read_engine_io

        self._resources = contextlib.ExitStack()
        self.settings = settings = settings or RuntimeSettings()
        self.metadata = meta = loaded.metadata
        engine_path = loaded.path
        self.backend = backend
        runtime_api = cudart()
        self._cudart = runtime_api
        self.backend_name = f"{backend.name} {backend.version}"
        self._errors = make_error_capture(backend.module)
        runtime = backend.module.Runtime(self._errors)
        self._engine = runtime.deserialize_cuda_engine(loaded.data)
        if self._engine is None:
            why = self._last_error("built for another GPU or version?")
            raise TrtsrError(f"{backend.name} could not load the engine: {why}", path=engine_path)
        self._runtime = runtime
        try:
            check_engine_io(read_engine_io(self._engine), meta)
        except TrtsrError as exc:
            raise TrtsrError(exc.reason, path=engine_path) from None
        self.scale, self.io = meta.scale, IoType(meta.io)
        self.guidance, self.guidance_input = meta.guidance, meta.guidance_input
        self.sizes: SizeRequirements = meta.sizes
        self.max_input = max((p.input_max[:2] for p in meta.profiles), key=lambda hw: hw[0] * hw[1])
        itemsize = np.dtype(self.io_dtype).itemsize
        largest_in = max(p.input_max[0] * p.input_max[1] * 3 for p in meta.profiles) * itemsize
        largest_out = largest_in * meta.scale * meta.scale
        try:
            self._runtime_cache_file: Path | None = None
            cache_file = runtime_cache_path(backend.name, backend.version, gpu.name, gpu.compute_capability)
            self._context = self._create_context(backend, cache_file if settings.runtime_cache else None)
            self._stream, self._buffers = allocate_io(runtime_api, largest_in, largest_out, self._resources)
        except BaseException:
            self._resources.close()
            raise
        self._profile = -1

    def _last_error(self, fallback: str) -> str:
        errors = self._errors.take()
        return errors[-1] if errors else fallback

    def _create_context(self, backend, cache_file: Path | None):
        engine = self._engine
        trt = backend.module
        if backend.is_rtx and hasattr(engine, "create_runtime_config"):
            config = engine.create_runtime_config()
            self.settings.apply_rtx(trt, config)
            if cache_file is not None:
                # TensorRT-RTX compiles kernels for this GPU at first run; keep them across processes.
                cache = config.create_runtime_cache()
                if cache_file.is_file():
                    with file_lock(lock_path_for(cache_file)):
                        data = cache_file.read_bytes()
                    try:
                        cache.deserialize(data)
                    except Exception as exc:  # a stale cache is only slower, never wrong
                        log.warning("ignoring runtime cache %s: %s", cache_file, exc)
                config.set_runtime_cache(cache)
                self._runtime_cache, self._runtime_cache_file = cache, cache_file
            self._runtime_config = config
            context = engine.create_execution_context(config)
        else:
            # Full TensorRT: activation memory for the profile in use (or the largest, if asked) from the start.
            context = engine.create_execution_context(self.settings.allocation_strategy(trt))
        if context is None:
            raise TrtsrError(f"create_execution_context failed: {self._last_error('no message from TensorRT')}")
        return context

    def infer(self, picture: np.ndarray, w: float | None) -> np.ndarray:
        """Copy `lr` in, run the engine, copy the output back: one synchronisation per picture.

        The copies are small beside the run (at 4K, 1.5 MB in and 25 MB out against hundreds of
        milliseconds of engine time), so they are not overlapped with other pictures' runs; what
        overlaps a run is the host's decoding and encoding (`trtsr run` reads ahead, writes behind).
        """
        if self._cudart is None:
            raise TrtsrError("this engine session is closed")
        cudart = self._cudart
        w_in = self.w_feed(w)
        lr = picture
        height, width = lr.shape[:2]
        index = self._profile_for(height, width)  # before anything is copied
        lr = np.ascontiguousarray(lr, dtype=self.io_dtype)
        out_shape = (height * self.metadata.scale, width * self.metadata.scale, 3)
        io, stream = self._buffers, self._stream.handle
        io.host_in.view(lr.shape, self.io_dtype)[...] = lr
        check_cuda(cudart.cudaMemcpyAsync(io.dev_in.ptr, io.host_in.ptr, lr.nbytes,
                                          cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))
        where = self._launch(index, height, width, io.dev_in.ptr, io.dev_out.ptr, w_in, stream)
        out_bytes = int(np.prod(out_shape)) * np.dtype(self.io_dtype).itemsize
        check_cuda(cudart.cudaMemcpyAsync(io.host_out.ptr, io.dev_out.ptr, out_bytes,
                                          cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream))
        try:
            check_cuda(cudart.cudaStreamSynchronize(stream))
        except TrtsrError as exc:
            # the engine failed while it ran (CUDA reports it here): name the run
            kind = OutOfMemory if isinstance(exc, OutOfMemory) else TrtsrError
            raise kind(f"{exc.reason} (engine run {where})") from None
        return io.host_out.view(out_shape, self.io_dtype).copy()

    def infer_tensor(self, picture, w: float | None):
        """`infer` on a torch tensor (H, W, 3) on this session's GPU: the engine reads it and writes a new tensor
        on the same device, both where torch keeps them, on torch's current stream, with no host copy and no
        wait (a later use on that stream is ordered after the run). A tensor elsewhere (the CPU, another GPU)
        goes through host memory."""
        import torch

        if self._cudart is None:
            raise TrtsrError("this engine session is closed")
        from trtsr.runtime.dlpack import to_io

        io_dtype = torch.uint8 if self.io == IoType.UINT8 else torch.float32
        x = to_io(torch, picture.detach(), io_dtype)
        if x.device.type != "cuda" or x.device.index != torch.cuda.current_device():
            return torch.from_numpy(self.infer(x.cpu().numpy(), w)).to(picture.device)
        w_in = self.w_feed(w)
        x = x.contiguous()
        height, width = x.shape[:2]
        index = self._profile_for(height, width)
        out = torch.empty((height * self.metadata.scale, width * self.metadata.scale, 3), dtype=io_dtype,
                          device=x.device)
        stream = torch.cuda.current_stream(x.device).cuda_stream
        self._launch(index, height, width, x.data_ptr(), out.data_ptr(), w_in, stream)
        x.record_stream(torch.cuda.current_stream(x.device))  # kept until the run has read it
        return out

    def _profile_for(self, height: int, width: int) -> int:
        """The profile that runs this size; TooLarge where none holds it."""
        index = self.metadata.profile_for(height, width)
        if index is None:
            raise TooLarge(f"{width}x{height} input fits no profile of this engine")
        return index

    def _launch(self, index: int, height: int, width: int, in_ptr: int, out_ptr: int, w_in, stream) -> str:
        """Queue one run on `stream` on profile `index`, reading `in_ptr` and writing `out_ptr` (device addresses)
        at this size, w copied in first where the engine takes it; returns where it ran, for messages."""
        cudart, meta, context = self._cudart, self.metadata, self._context
        where = f"at {width}x{height} on profile {index}"
        io = self._buffers
        self._errors.take()  # only this call's messages explain its failure
        if meta.guidance_input is not None:
            io.host_w.view((1,), np.float32)[...] = w_in
            check_cuda(cudart.cudaMemcpyAsync(io.dev_w.ptr, io.host_w.ptr, 4,
                                              cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))
        if index != self._profile:
            self._profile = -1  # unknown until the call succeeds
            _expect(context.set_optimization_profile_async(index, stream), "set_optimization_profile_async",
                    where, self)
            self._profile = index
        _expect(context.set_input_shape(meta.input_name, (height, width, 3)), "set_input_shape", where, self)
        _expect(context.set_tensor_address(meta.input_name, handle(in_ptr)), "set_tensor_address", where, self)
        if meta.guidance_input is not None:
            _expect(context.set_tensor_address(meta.guidance_input, handle(io.dev_w.ptr)), "set_tensor_address",
                    where, self)
        _expect(context.set_tensor_address(meta.output_name, handle(out_ptr)), "set_tensor_address", where, self)
        if not context.execute_async_v3(stream):
            from trtsr.runtime.engine_io import execution_failure

            raise execution_failure(self._errors.take(), f"execute_async_v3 {where}")
        return where

    def close(self) -> None:
        if getattr(self, "_cudart", None) is None:
            return
        if getattr(self, "_runtime_cache_file", None) is not None:
            try:
                save_runtime_cache(self._runtime_cache, self._runtime_cache_file)
            except Exception as exc:
                log.warning("could not save the runtime cache: %s", exc)
        self._resources.close()
        self._context = self._engine = None
        self._cudart = None


class IoBuffers:
    """The I/O buffers of one engine session: pinned host and device memory for the input, the output and w,
    each piece owned by `stack`."""

    def __init__(self, cudart, in_bytes: int, out_bytes: int, stack: contextlib.ExitStack) -> None:
        own = stack.enter_context
        self.host_in, self.host_out = own(PinnedMemory(cudart, in_bytes)), own(PinnedMemory(cudart, out_bytes))
        self.dev_in, self.dev_out = own(DeviceMemory(cudart, in_bytes)), own(DeviceMemory(cudart, out_bytes))
        self.host_w, self.dev_w = own(PinnedMemory(cudart, 4)), own(DeviceMemory(cudart, 4))


def allocate_io(cudart, in_bytes: int, out_bytes: int, stack: contextlib.ExitStack) -> tuple:
    """(stream, I/O buffers), each piece owned by `stack`.

    A failure part-way (an allocation error) leaves what was taken on `stack`, whose close frees it.
    """
    return stack.enter_context(CudaStream(cudart)), IoBuffers(cudart, in_bytes, out_bytes, stack)


def save_runtime_cache(cache, path: Path) -> None:
    """Write a TensorRT-RTX runtime cache under the file's lock, atomically (never a torn file for a reader)."""
    from trtsr.files import write_bytes_atomic

    data = bytes(cache.serialize())
    with file_lock(lock_path_for(path)):
        write_bytes_atomic(path, data)


def _expect(ok, call: str, where: str, session: EngineSession) -> None:
    """A TensorRT call that reports failure by returning False: one line naming the call, shape and profile."""
    if not ok:
        raise TrtsrError(f"{call} failed {where}: {session._last_error('no message from TensorRT')}")


class CudaStream:
    """A CUDA stream that destroys itself (close, or the end of a `with`)."""

    def __init__(self, cudart) -> None:
        self._cudart = cudart
        self._stream = check_cuda(cudart.cudaStreamCreate())

    @property
    def handle(self) -> int:
        return handle(self._stream)

    def close(self) -> None:
        if self._stream is not None:
            self._cudart.cudaStreamDestroy(self._stream)
            self._stream = None

    def __enter__(self) -> CudaStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DeviceMemory:
    """Device memory that frees itself (close, or the end of a `with`)."""

    def __init__(self, cudart, nbytes: int) -> None:
        self._cudart = cudart
        self.nbytes = nbytes
        self.ptr = check_cuda(cudart.cudaMalloc(nbytes))

    def close(self) -> None:
        if self.ptr is not None:
            self._cudart.cudaFree(self.ptr)
            self.ptr = None

    def __enter__(self) -> DeviceMemory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PinnedMemory:
    """Page-locked host memory, so copies to and from the GPU run asynchronously at full speed; frees itself."""

    def __init__(self, cudart, nbytes: int) -> None:
        self._cudart = cudart
        self.nbytes = nbytes
        self.ptr = check_cuda(cudart.cudaMallocHost(nbytes))
        import ctypes

        self._array = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(int(self.ptr)))

    def view(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        count = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self._array[:count].view(dtype).reshape(shape)

    def close(self) -> None:
        if self.ptr is not None:
            self._array = None
            self._cudart.cudaFreeHost(self.ptr)
            self.ptr = None

    def __enter__(self) -> PinnedMemory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
