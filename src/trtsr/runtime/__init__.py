"""Pictures and what surrounds a session: image I/O, tiling, colour correction, engine I/O checks.

Imports neither torch, onnx nor diffusers, nor the exporter or the engine builder and cache: a
run-only install needs numpy, pillow, onnxruntime, and for engines cuda-python and a TensorRT.
The sessions themselves are `trtsr.sessions`; which graph or engine serves a model is
`trtsr.pipeline`'s business.
"""

from trtsr.runtime.images import Picture, read_image, write_image
from trtsr.runtime.tiling import run_tiled

__all__ = ["Picture", "read_image", "run_tiled", "write_image"]
