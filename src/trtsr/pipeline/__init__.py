"""Orchestration: one run request (`RunRequest`), which graph or engine serves it, exporting and
building on demand through the caches, the session that runs it (`open_session`), the `Upscaler`,
and the job runner (`jobs`).

The only room that combines export, engines and sessions.
"""

from trtsr.pipeline.request import RunRequest, open_session
from trtsr.pipeline.resolve import GraphRequest, cached_export, engine_graph, resolve_onnx
from trtsr.pipeline.upscaler import Upscaler

__all__ = ["GraphRequest", "RunRequest", "Upscaler", "cached_export", "engine_graph", "open_session", "resolve_onnx"]
