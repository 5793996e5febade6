"""The ONNX Runtime session: an exported graph behind the `Session` protocol, on the CPU or through ONNX
Runtime's CUDA provider (onnxruntime-gpu)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trtsr.backends import OnnxRuntimeSettings
from trtsr.defaults import IoType
from trtsr.errors import MissingDependencyError, OutOfMemory, TrtsrError
from trtsr.sessions.base import SessionBase
from trtsr.sizes import SizeRequirements
from trtsr.spec import ExportSpec


class OnnxRuntimeSession(SessionBase):
    """An exported graph through ONNX Runtime (CUDA provider where installed and wanted, else CPU)."""

    def __init__(self, onnx_path: str | Path, settings: OnnxRuntimeSettings | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("running ONNX graphs", "base", package="onnxruntime") from None
        self.path = onnx_path = Path(onnx_path)
        self.settings = settings = settings or OnnxRuntimeSettings()
        self.spec = ExportSpec.for_graph(onnx_path)
        providers = ["CPUExecutionProvider"]
        if settings.cuda and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # the fp16 graph logs a warning per unfoldable node
        # ONNX Runtime's own defaults otherwise: none of subnormal flushing, no spinning, no arena or a lower graph
        # optimisation level ran faster on the 2-core CPU (benchmarks/ort_options.py, results/ort-options.json).
        if settings.threads:
            options.intra_op_num_threads = settings.threads
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
        self.cost = self.spec.graph_cost
        self.scale, self.io = self.spec.scale, IoType(self.spec.io)
        self.guidance, self.guidance_input = self.spec.guidance, self.spec.guidance_input
        self.sizes: SizeRequirements = self.spec.sizes

    def infer(self, picture: np.ndarray, w: float | None) -> np.ndarray:
        feed = {self.spec.input_name: picture}
        w_in = self.w_feed(w)
        if w_in is not None:
            feed[self.spec.guidance_input] = w_in
        try:
            return self._session.run(None, feed)[0]
        except Exception as exc:
            text = str(exc)
            if "alloc" in text.lower() or "memory" in text.lower():
                height, width = picture.shape[:2]
                raise OutOfMemory(f"ONNX Runtime ran out of memory at {width}x{height}") from None
            raise

    def close(self) -> None:
        self._session = None
