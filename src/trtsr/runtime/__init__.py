"""Engine -> pixels. Imports neither torch, onnx nor diffusers: a run-only install needs numpy,
pillow, onnxruntime, and for engines cuda-python and a TensorRT."""

from trtsr.runtime.images import Picture, read_image, write_image
from trtsr.runtime.sessions import EngineSession, OnnxRuntimeSession
from trtsr.runtime.upscaler import Upscaler

__all__ = ["EngineSession", "OnnxRuntimeSession", "Picture", "Upscaler", "read_image", "write_image"]
