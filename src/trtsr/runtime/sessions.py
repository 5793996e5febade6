"""Sessions: one `infer(lr, guidance=None) -> hr` interface over ONNX Runtime and TensorRT engines.

`infer` takes a (H, W, 3) array in the graph's I/O type (uint8, or float32 in
[0, 255]) and returns the (sH, sW, 3) result. `guidance` is the PadCFG w for
graphs that take it as an input (None: the default the spec records); a graph
with w built in accepts only that w. `submit(lr, guidance)` starts the same
work and returns a `Pending` whose `result()` waits for it: an engine session
copies the next input to the GPU on a second stream while the current one
runs (two sets of I/O buffers). One thread at a time uses a session; `Upscaler`
adds locking, tiling and image handling on top.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from pathlib import Path

import numpy as np

from trtsr.errors import MissingDependencyError, OutOfMemory, TooLarge, TrtsrError
from trtsr.files import file_lock
from trtsr.gpu import check_cuda, cudart, handle
from trtsr.paths import lock_path_for
from trtsr.runtime.settings import RuntimeSettings
from trtsr.sizes import SizeRequirements
from trtsr.spec import ExportSpec, spec_path_for

log = logging.getLogger(__name__)


class OnnxRuntimeSession:
    """An exported graph through ONNX Runtime (CUDA provider where installed and wanted, else CPU)."""

    def __init__(self, onnx_path: str | Path, *, use_cuda: bool = True, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("running ONNX graphs", "base", package="onnxruntime") from None
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise TrtsrError("ONNX file not found", path=onnx_path)
        self.spec = ExportSpec.load(spec_path_for(onnx_path))
        providers = ["CPUExecutionProvider"]
        if use_cuda and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # the fp16 graph logs a warning per unfoldable node
        if threads:
            options.intra_op_num_threads = threads
        if self.spec.quantization is not None:
            # ONNX Runtime's extended Q/DQ rewrites (1.32) fail on these opset-23 graphs: a propagated
            # QuantizeLinear gets an int8 output type with a uint8 zero point. Basic fusions are safe.
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        try:
            self._session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for bad graphs
            raise TrtsrError(f"ONNX Runtime cannot load the graph ({str(exc).splitlines()[0][:200]})",
                             path=onnx_path) from None
        self.provider = self._session.get_providers()[0]
        self.backend_name = "onnxruntime-cuda" if self.provider == "CUDAExecutionProvider" else "onnxruntime-cpu"
        self.max_input: tuple[int, int] | None = None
        self.scale, self.io = self.spec.scale, self.spec.io
        self.guidance, self.guidance_input = self.spec.guidance, self.spec.guidance_input
        self.sizes: SizeRequirements = self.spec.sizes

    @property
    def io_dtype(self):
        return np.uint8 if self.spec.io == "uint8" else np.float32

    def infer(self, lr: np.ndarray, guidance: float | None = None) -> np.ndarray:
        feed = {self.spec.input_name: lr}
        w = guidance_feed(self.spec.guidance, self.spec.guidance_input, guidance)
        if self.spec.guidance_input is not None:
            feed[self.spec.guidance_input] = w
        try:
            return self._session.run(None, feed)[0]
        except Exception as exc:
            text = str(exc)
            if "alloc" in text.lower() or "memory" in text.lower():
                raise OutOfMemory(f"ONNX Runtime ran out of memory at {lr.shape[1]}x{lr.shape[0]}") from None
            raise

    def submit(self, lr: np.ndarray, guidance: float | None = None) -> Pending:
        """`infer`, as a `Pending` that is already done (ONNX Runtime runs synchronously)."""
        return Pending.done(self.infer(lr, guidance))

    def close(self) -> None:
        self._session = None


class EngineSession:
    """A TensorRT / TensorRT-RTX engine with I/O buffers allocated once for its largest profile.

    `settings` (RuntimeSettings) chooses the runtime cache, TensorRT-RTX's kernel specialisation and
    CUDA-graph strategy, and whether activation memory follows the profile in use (the default) or
    is reserved for the largest.

    One execution context, one CUDA stream, pinned host buffers and device buffers
    sized for the largest profile; per image: copy in, execute, copy out, all
    asynchronous on the stream, one synchronisation at the end. The profile is
    chosen per input size (the smallest that holds it).

    Start-up checks the engine file against its metadata, then the engine's own I/O
    (names, dtypes, profile shapes) against the metadata before any buffer is sized.
    Every CUDA resource is owned by a small wrapper registered on an exit stack, so a
    start-up that fails halfway frees what it had taken. Every TensorRT call that can
    fail is checked and its failure names the call, the shape and the profile; only an
    allocation failure (from CUDA, or in TensorRT's reported errors) is `OutOfMemory`.
    """

    def __init__(self, engine_path: str | Path, settings: RuntimeSettings | None = None) -> None:
        from trtsr.engines.backend import load_backend
        from trtsr.engines.metadata import EngineMetadata
        from trtsr.gpu import detect_gpu
        from trtsr.paths import runtime_cache_path
        from trtsr.runtime.engine_io import check_engine_io, make_error_capture, read_engine_io

        self._resources = contextlib.ExitStack()
        self.settings = settings = settings or RuntimeSettings()
        engine_path = Path(engine_path)
        if not engine_path.is_file():
            raise TrtsrError("engine not found", path=engine_path)
        self.metadata = meta = EngineMetadata.for_engine(engine_path)
        if not meta.matches_file(engine_path):  # before the GPU check: a broken file is the first thing to fix
            raise TrtsrError("the engine does not match its metadata (size or sha256 differ): it is corrupt or "
                             "was replaced; rebuild it with trtsr build", path=engine_path)
        gpu = detect_gpu()
        if gpu is None:
            raise TrtsrError("engines run on an NVIDIA GPU and none is visible; use --backend onnxruntime "
                             "with the .onnx graph instead", path=engine_path)
        self.backend = backend = load_backend(meta.backend)
        backend.check_runs_on(gpu, engine_path)  # before reading a file of up to gigabytes for a certain refusal
        if backend.version != meta.backend_version:
            raise TrtsrError(f"built with {meta.backend} {meta.backend_version} but {backend.version} is installed; "
                             "rebuild it with trtsr build", path=engine_path)
        runtime_api = cudart()
        self._cudart = runtime_api
        self.backend_name = f"{backend.name} {backend.version}"
        self._errors = make_error_capture(backend.module)
        runtime = backend.module.Runtime(self._errors)
        self._engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self._engine is None:
            why = self._last_error("built for another GPU or version?")
            raise TrtsrError(f"{backend.name} could not load the engine: {why}", path=engine_path)
        self._runtime = runtime
        try:
            check_engine_io(read_engine_io(self._engine), meta)
        except TrtsrError as exc:
            raise TrtsrError(exc.reason, path=engine_path) from None
        self.scale, self.io = meta.scale, meta.io
        self.guidance, self.guidance_input = meta.guidance, meta.guidance_input
        self.sizes: SizeRequirements = meta.sizes
        self.max_input = max(((p["input_max"][0], p["input_max"][1]) for p in meta.profiles),
                             key=lambda hw: hw[0] * hw[1])
        itemsize = 1 if meta.io == "uint8" else 4
        largest_in = max(p["input_max"][0] * p["input_max"][1] * 3 for p in meta.profiles) * itemsize
        largest_out = largest_in * meta.scale * meta.scale
        try:
            self._runtime_cache_file: Path | None = None
            cache_file = runtime_cache_path(backend.name, backend.version, gpu.name, gpu.compute_capability)
            self._context = self._create_context(backend, cache_file if settings.runtime_cache else None)
            self._stream, self._copy_stream, first = allocate_io(runtime_api, largest_in, largest_out,
                                                                 self._resources)
            self._slots, self._io_bytes = [first], (largest_in, largest_out)
            self._in_flight: collections.deque[Pending] = collections.deque()  # oldest first
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

    @property
    def io_dtype(self):
        return np.uint8 if self.io == "uint8" else np.float32

    def infer(self, lr: np.ndarray, guidance: float | None = None) -> np.ndarray:
        return self.submit(lr, guidance).result()

    def submit(self, lr: np.ndarray, guidance: float | None = None) -> Pending:
        """Queue one input on the GPU and return at once; `result()` of what comes back waits for it.

        The input's copy to the device runs on a copy stream and the engine on the compute stream, which
        waits for that copy only; with two I/O slots the next input's copy overlaps this one's execution.
        A third submit waits for the oldest result (it is kept on its Pending) before reusing its slot.
        """
        if self._cudart is None:
            raise TrtsrError("this engine session is closed")
        cudart = self._cudart
        meta = self.metadata
        w = guidance_feed(meta.guidance, meta.guidance_input, guidance)
        height, width = lr.shape[:2]
        index = meta.profile_for(height, width)
        if index is None:
            raise TooLarge(f"{width}x{height} input fits no profile of this engine")
        where = f"at {width}x{height} on profile {index}"
        lr = np.ascontiguousarray(lr, dtype=self.io_dtype)
        out_shape = (height * meta.scale, width * meta.scale, 3)
        slot = self._free_slot()
        compute, copy = self._stream.handle, self._copy_stream.handle
        context = self._context
        self._errors.take()  # only this call's messages explain its failure
        kind_h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        kind_d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        slot.host_in.view(lr.shape, self.io_dtype)[...] = lr
        check_cuda(cudart.cudaMemcpyAsync(slot.dev_in.ptr, slot.host_in.ptr, lr.nbytes, kind_h2d, copy))
        if meta.guidance_input is not None:
            slot.host_w.view((1,), np.float32)[...] = w
            check_cuda(cudart.cudaMemcpyAsync(slot.dev_w.ptr, slot.host_w.ptr, 4, kind_h2d, copy))
        check_cuda(cudart.cudaEventRecord(slot.copied.handle, copy))
        check_cuda(cudart.cudaStreamWaitEvent(compute, slot.copied.handle, 0))
        if index != self._profile:
            # A profile switch may reallocate the context's activation memory (on-profile-change): let the
            # queued runs, which use it, finish first. Switches are rare (a new size class of input).
            for queued in list(self._in_flight):
                queued.collect()
            self._profile = -1  # unknown until the call succeeds
            _expect(context.set_optimization_profile_async(index, compute), "set_optimization_profile_async",
                    where, self)
            self._profile = index
        _expect(context.set_input_shape(meta.input_name, (height, width, 3)), "set_input_shape", where, self)
        _expect(context.set_tensor_address(meta.input_name, handle(slot.dev_in.ptr)), "set_tensor_address",
                where, self)
        if meta.guidance_input is not None:
            _expect(context.set_tensor_address(meta.guidance_input, handle(slot.dev_w.ptr)), "set_tensor_address",
                    where, self)
        _expect(context.set_tensor_address(meta.output_name, handle(slot.dev_out.ptr)), "set_tensor_address",
                where, self)
        if not context.execute_async_v3(compute):
            from trtsr.runtime.engine_io import execution_failure

            raise execution_failure(self._errors.take(), f"execute_async_v3 {where}")
        out_bytes = int(np.prod(out_shape)) * np.dtype(self.io_dtype).itemsize
        check_cuda(cudart.cudaMemcpyAsync(slot.host_out.ptr, slot.dev_out.ptr, out_bytes, kind_d2h, compute))
        check_cuda(cudart.cudaEventRecord(slot.done.handle, compute))
        pending = Pending(self, slot, out_shape, where)
        slot.pending = pending
        self._in_flight.append(pending)
        return pending

    def _free_slot(self) -> IoSlot:
        """A slot no queued work uses: an idle one, a second one (allocated once, on first need), or the
        oldest one once its result is collected."""
        for slot in self._slots:
            if slot.pending is None:
                return slot
        if len(self._slots) < IO_SLOTS:
            try:
                with contextlib.ExitStack() as taken:
                    slot = IoSlot(self._cudart, *self._io_bytes, taken)
                    self._resources.enter_context(taken.pop_all())
                self._slots.append(slot)
                return slot
            except OutOfMemory:
                log.info("no memory for a second set of I/O buffers; inputs will not overlap")
        oldest = self._in_flight[0]
        oldest.collect()
        return oldest.slot

    def _release(self, pending: Pending) -> None:
        pending.slot.pending = None
        with contextlib.suppress(ValueError):
            self._in_flight.remove(pending)

    def close(self) -> None:
        if getattr(self, "_cudart", None) is None:
            return
        if getattr(self, "_runtime_cache_file", None) is not None:
            try:
                save_runtime_cache(self._runtime_cache, self._runtime_cache_file)
            except Exception as exc:
                log.warning("could not save the runtime cache: %s", exc)
        for pending in list(getattr(self, "_in_flight", ())):
            with contextlib.suppress(Exception):  # results nobody asked for; the buffers are about to go
                pending.collect()
        self._resources.close()
        self._context = self._engine = None
        self._cudart = None


IO_SLOTS = 2  # sets of I/O buffers per engine session: the input in hand, and the next one's copy


class IoSlot:
    """One set of I/O buffers for one queued input: pinned host and device memory for the input, the output
    and w, and two events: `copied` (the input is on the device) and `done` (the output is back on the host).
    Each piece is owned by `stack`."""

    def __init__(self, cudart, in_bytes: int, out_bytes: int, stack: contextlib.ExitStack) -> None:
        own = stack.enter_context
        self.host_in, self.host_out = own(PinnedMemory(cudart, in_bytes)), own(PinnedMemory(cudart, out_bytes))
        self.dev_in, self.dev_out = own(DeviceMemory(cudart, in_bytes)), own(DeviceMemory(cudart, out_bytes))
        self.host_w, self.dev_w = own(PinnedMemory(cudart, 4)), own(DeviceMemory(cudart, 4))
        self.copied, self.done = own(CudaEvent(cudart)), own(CudaEvent(cudart))
        self.pending: Pending | None = None  # the queued work using this slot


def allocate_io(cudart, in_bytes: int, out_bytes: int, stack: contextlib.ExitStack) -> tuple:
    """(compute stream, copy stream, first I/O slot), each piece owned by `stack`.

    A failure part-way (an allocation error) leaves what was taken on `stack`, whose close frees it.
    """
    own = stack.enter_context
    return own(CudaStream(cudart)), own(CudaStream(cudart)), IoSlot(cudart, in_bytes, out_bytes, stack)


class Pending:
    """Work queued by `submit`; `result()` waits for it and returns the output (a copy of its own)."""

    def __init__(self, session: EngineSession | None, slot: IoSlot | None, shape: tuple[int, ...],
                 where: str = "") -> None:
        self.session, self.slot, self.shape, self.where = session, slot, shape, where
        self._value: np.ndarray | None = None
        self._error: BaseException | None = None

    @classmethod
    def done(cls, value: np.ndarray) -> Pending:
        pending = cls(None, None, value.shape)
        pending._value = value
        return pending

    @property
    def ready(self) -> bool:
        """The output (or the error) is here: `result()` will not wait."""
        return self._value is not None or self._error is not None

    def collect(self) -> None:
        """Wait for the output and keep it here, freeing the slot for the next input."""
        if self.ready:
            return
        session = self.session
        try:
            check_cuda(session._cudart.cudaEventSynchronize(self.slot.done.handle))
            self._value = self.slot.host_out.view(self.shape, session.io_dtype).copy()
        except TrtsrError as exc:
            # the engine failed after it was queued (CUDA reports it here); keep the message for result()
            kind = OutOfMemory if isinstance(exc, OutOfMemory) else TrtsrError
            self._error = kind(f"{exc.reason} (engine run {self.where})")
        finally:
            session._release(self)

    def result(self) -> np.ndarray:
        self.collect()
        if self._error is not None:
            raise self._error
        return self._value


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


class CudaEvent:
    """A CUDA event (no timing) that destroys itself."""

    def __init__(self, cudart) -> None:
        self._cudart = cudart
        self._event = check_cuda(cudart.cudaEventCreateWithFlags(cudart.cudaEventDisableTiming))

    @property
    def handle(self):
        return self._event

    def close(self) -> None:
        if self._event is not None:
            self._cudart.cudaEventDestroy(self._event)
            self._event = None

    def __enter__(self) -> CudaEvent:
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


def guidance_feed(default: float | None, input_name: str | None, asked: float | None) -> np.ndarray | None:
    """The w to feed a graph: `asked`, else the graph's default; refused when the graph cannot take it."""
    if asked is None or (default is not None and float(asked) == float(default)):
        return None if input_name is None else np.array([default], dtype=np.float32)
    if input_name is None:
        built_in = "no PadCFG" if default is None else f"PadCFG with w = {default:g} built in"
        raise TrtsrError(f"this graph has {built_in}; it cannot run with guidance {asked:g}")
    return np.array([asked], dtype=np.float32)
