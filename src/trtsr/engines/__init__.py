"""ONNX -> TensorRT / TensorRT-RTX engines: backend adapter, profiles, builds, metadata, cache.

Names load on first use, so opening an engine (`engines.metadata`, `engines.backend`) never loads the
builder or the cache.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "TensorRTModule": "backend", "installed_backends": "backend", "load_backend": "backend",
    "BuildResult": "builder", "BuildSettings": "builder", "build_engine": "builder",
    "CachedEngine": "cache", "cached_engine": "cache",
    "EngineReport": "check", "check_engine": "check",
    "EngineMetadata": "metadata", "LoadedEngine": "metadata", "open_engine_file": "metadata",
    "metadata_path_for": "metadata",
    "DEFAULT_PROFILES": "profiles", "NAMED_SIZES": "profiles", "ShapeProfile": "profiles", "parse_profiles": "profiles",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
