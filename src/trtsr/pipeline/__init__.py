"""Orchestration: which graph or engine serves a model, scale and guidance; exporting and building
on demand through the caches; the `Upscaler` that runs it.

The only room that combines export, engines and runtime.
"""

from trtsr.pipeline.resolve import GraphRequest, cached_export, engine_graph, resolve_onnx
from trtsr.pipeline.upscaler import Upscaler

__all__ = ["GraphRequest", "Upscaler", "cached_export", "engine_graph", "resolve_onnx"]
