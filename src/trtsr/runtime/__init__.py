"""Graph or engine -> pixels, and nothing else: the engine session, the ONNX Runtime session,
tiling and image I/O.

Imports neither torch, onnx nor diffusers, nor the exporter or the engine builder and cache: a
run-only install needs numpy, pillow, onnxruntime, and for engines cuda-python and a TensorRT.
Which graph or engine serves a model is `trtsr.pipeline`'s business.
"""

from trtsr.runtime.images import Picture, read_image, write_image
from trtsr.runtime.sessions import EngineSession, OnnxRuntimeSession
from trtsr.runtime.settings import RuntimeSettings
from trtsr.runtime.tiling import run_tiled

__all__ = ["EngineSession", "OnnxRuntimeSession", "Picture", "RuntimeSettings", "read_image", "run_tiled",
           "write_image"]
