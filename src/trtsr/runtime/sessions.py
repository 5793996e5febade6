"""Sessions: one `infer(lr, guidance=None) -> hr` interface over ONNX Runtime and TensorRT engines.

`infer` takes a (H, W, 3) array in the graph's I/O type (uint8, or float32 in
[0, 255]) and returns the (sH, sW, 3) result. `guidance` is the PadCFG w for
graphs that take it as an input (None: the default the spec records); a graph
with w built in accepts only that w. A session runs one image at a
time; `Upscaler` adds locking, tiling and image handling on top.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from trtsr.errors import MissingDependencyError, OutOfMemory, TooLarge, TrtsrError
from trtsr.gpu import check_cuda, cudart, handle
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
        w = _guidance_value(self.spec.guidance, self.spec.guidance_input, guidance)
        if self.spec.guidance_input is not None:
            feed[self.spec.guidance_input] = w
        try:
            return self._session.run(None, feed)[0]
        except Exception as exc:
            text = str(exc)
            if "alloc" in text.lower() or "memory" in text.lower():
                raise OutOfMemory(f"ONNX Runtime ran out of memory at {lr.shape[1]}x{lr.shape[0]}") from None
            raise

    def close(self) -> None:
        self._session = None


class EngineSession:
    """A TensorRT / TensorRT-RTX engine with buffers allocated once for its largest profile.

    One execution context, one CUDA stream, pinned host buffers and device buffers
    sized for the largest profile; per image: copy in, execute, copy out, all
    asynchronous on the stream, one synchronisation at the end. The profile is
    chosen per input size (the smallest that holds it).
    """

    def __init__(self, engine_path: str | Path) -> None:
        from trtsr.engines.backend import load_backend
        from trtsr.engines.metadata import EngineMetadata
        from trtsr.gpu import detect_gpu
        from trtsr.paths import runtime_cache_path

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
        if backend.version != meta.backend_version:
            raise TrtsrError(f"built with {meta.backend} {meta.backend_version} but {backend.version} is installed; "
                             "rebuild it with trtsr build", path=engine_path)
        runtime_api = cudart()
        self._cudart = runtime_api
        self.backend_name = f"{backend.name} {backend.version}"
        runtime = backend.runtime()
        data = engine_path.read_bytes()
        self._engine = runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            raise TrtsrError(f"{backend.name} could not load the engine (built for another GPU or version?)",
                             path=engine_path)
        self._runtime = runtime
        self._runtime_cache_file = None
        self._context = self._create_context(
            backend, runtime_cache_path(backend.name, backend.version, gpu.name, gpu.compute_capability))
        self.scale, self.io = meta.scale, meta.io
        self.guidance, self.guidance_input = meta.guidance, meta.guidance_input
        self.sizes: SizeRequirements = meta.sizes
        self.max_input = max(((p["input_max"][0], p["input_max"][1]) for p in meta.profiles),
                             key=lambda hw: hw[0] * hw[1])
        self._stream = check_cuda(runtime_api.cudaStreamCreate())
        itemsize = 1 if meta.io == "uint8" else 4
        largest_in = max(p["input_max"][0] * p["input_max"][1] * 3 for p in meta.profiles) * itemsize
        largest_out = largest_in * meta.scale * meta.scale
        self._host_in = _PinnedBuffer(runtime_api, largest_in)
        self._host_out = _PinnedBuffer(runtime_api, largest_out)
        self._dev_in = check_cuda(runtime_api.cudaMalloc(largest_in))
        self._dev_out = check_cuda(runtime_api.cudaMalloc(largest_out))
        self._host_w = _PinnedBuffer(runtime_api, 4)  # the PadCFG w, for engines that take it as an input
        self._dev_w = check_cuda(runtime_api.cudaMalloc(4))
        self._profile = -1

    def _create_context(self, backend, cache_file: Path):
        engine = self._engine
        if backend.is_rtx and hasattr(engine, "create_runtime_config"):
            # TensorRT-RTX compiles kernels for this GPU at first run; keep them across processes.
            config = engine.create_runtime_config()
            cache = config.create_runtime_cache()
            if cache_file.is_file():
                try:
                    cache.deserialize(cache_file.read_bytes())
                except Exception as exc:  # a stale cache is only slower, never wrong
                    log.warning("ignoring runtime cache %s: %s", cache_file, exc)
            config.set_runtime_cache(cache)
            self._runtime_cache, self._runtime_cache_file, self._runtime_config = cache, cache_file, config
            return engine.create_execution_context(config)
        return engine.create_execution_context()

    @property
    def io_dtype(self):
        return np.uint8 if self.io == "uint8" else np.float32

    def infer(self, lr: np.ndarray, guidance: float | None = None) -> np.ndarray:
        cudart = self._cudart
        meta = self.metadata
        w = _guidance_value(meta.guidance, meta.guidance_input, guidance)
        height, width = lr.shape[:2]
        index = meta.profile_for(height, width)
        if index is None:
            raise TooLarge(f"{width}x{height} input fits no profile of this engine")
        stream = self._stream
        if index != self._profile:
            if not self._context.set_optimization_profile_async(index, handle(stream)):
                raise TrtsrError(f"cannot select profile {index}")
            self._profile = index
        self._context.set_input_shape(meta.input_name, (height, width, 3))
        lr = np.ascontiguousarray(lr, dtype=self.io_dtype)
        out_shape = (height * meta.scale, width * meta.scale, 3)
        host_in = self._host_in.view(lr.shape, self.io_dtype)
        host_in[...] = lr
        host_out = self._host_out.view(out_shape, self.io_dtype)
        kind_h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        kind_d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        check_cuda(cudart.cudaMemcpyAsync(self._dev_in, self._host_in.ptr, lr.nbytes, kind_h2d, stream))
        self._context.set_tensor_address(meta.input_name, handle(self._dev_in))
        if meta.guidance_input is not None:
            self._host_w.view((1,), np.float32)[...] = w
            check_cuda(cudart.cudaMemcpyAsync(self._dev_w, self._host_w.ptr, 4, kind_h2d, stream))
            self._context.set_tensor_address(meta.guidance_input, handle(self._dev_w))
        self._context.set_tensor_address(meta.output_name, handle(self._dev_out))
        if not self._context.execute_async_v3(handle(stream)):
            raise OutOfMemory(f"the engine failed at {width}x{height} (out of device memory?)")
        check_cuda(cudart.cudaMemcpyAsync(self._host_out.ptr, self._dev_out, host_out.nbytes, kind_d2h, stream))
        check_cuda(cudart.cudaStreamSynchronize(stream))
        return host_out.copy()

    def close(self) -> None:
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        if self._runtime_cache_file is not None:
            try:
                from trtsr.files import write_bytes_atomic

                write_bytes_atomic(self._runtime_cache_file, bytes(self._runtime_cache.serialize()))
            except Exception as exc:
                log.warning("could not save the runtime cache: %s", exc)
        for ptr in (getattr(self, "_dev_in", None), getattr(self, "_dev_out", None), getattr(self, "_dev_w", None)):
            if ptr is not None:
                cudart.cudaFree(ptr)
        for buf in (getattr(self, "_host_in", None), getattr(self, "_host_out", None), getattr(self, "_host_w", None)):
            if buf is not None:
                buf.free()
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)
        self._context = self._engine = None
        self._cudart = None


class _PinnedBuffer:
    """Page-locked host memory, so copies to and from the GPU run asynchronously at full speed."""

    def __init__(self, cudart, nbytes: int) -> None:
        self._cudart = cudart
        self.nbytes = nbytes
        self.ptr = check_cuda(cudart.cudaMallocHost(nbytes))
        import ctypes

        self._array = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(int(self.ptr)))

    def view(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        count = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self._array[:count].view(dtype).reshape(shape)

    def free(self) -> None:
        if self.ptr is not None:
            self._cudart.cudaFreeHost(self.ptr)
            self.ptr = None


def _guidance_value(default: float | None, input_name: str | None, asked: float | None) -> np.ndarray | None:
    """The w to feed a graph: `asked`, else the graph's default; refused when the graph cannot take it."""
    if asked is None or (default is not None and float(asked) == float(default)):
        return None if input_name is None else np.array([default], dtype=np.float32)
    if input_name is None:
        built_in = "no PadCFG" if default is None else f"PadCFG with w = {default:g} built in"
        raise TrtsrError(f"this graph has {built_in}; it cannot run with guidance {asked:g}")
    return np.array([asked], dtype=np.float32)
