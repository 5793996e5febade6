"""trtsr: GenDR-Pix super-resolution, exported to ONNX and run through TensorRT.

    import trtsr
    with trtsr.Upscaler() as up:           # the default model; engine on a GPU, else ONNX Runtime
        big = up.upscale(numpy_or_pil_image)
"""

from trtsr._version import __version__

__all__ = ["Guidance", "RunRequest", "Upscaler", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import trtsr` stays cheap and the CLI starts fast.
    if name == "Upscaler":
        from trtsr.pipeline.upscaler import Upscaler

        return Upscaler
    if name == "RunRequest":
        from trtsr.pipeline.request import RunRequest

        return RunRequest
    if name == "Guidance":
        from trtsr.guidance import Guidance

        return Guidance
    raise AttributeError(name)
