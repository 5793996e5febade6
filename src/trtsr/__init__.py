"""trtsr: GenDR-Pix super-resolution, exported to ONNX and run through TensorRT."""

__version__ = "0.1.0"
