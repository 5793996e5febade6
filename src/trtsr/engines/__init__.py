"""ONNX -> TensorRT / TensorRT-RTX engines: backend adapter, profiles, builds, metadata, cache."""

from trtsr.engines.backend import Backend, installed_backends, load_backend
from trtsr.engines.builder import BuildResult, BuildSettings, build_engine
from trtsr.engines.cache import CachedEngine, cached_engine
from trtsr.engines.check import EngineReport, check_engine
from trtsr.engines.metadata import EngineMetadata, metadata_path_for
from trtsr.engines.profiles import DEFAULT_PROFILES, NAMED_SIZES, ShapeProfile, parse_profiles

__all__ = [
    "DEFAULT_PROFILES", "NAMED_SIZES", "Backend", "BuildResult", "BuildSettings", "CachedEngine", "EngineMetadata",
    "EngineReport", "ShapeProfile", "build_engine", "cached_engine", "check_engine", "installed_backends",
    "load_backend", "metadata_path_for", "parse_profiles",
]
