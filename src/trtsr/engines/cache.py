"""The engine cache: an engine for (graph, settings, backend version, GPU) without a manual build.

Layout of the cache folder ($TRTSR_CACHE_DIR, else $XDG_CACHE_HOME/trtsr, else ~/.cache/trtsr):

    engines/<key>.engine            the engine
    engines/<key>.engine.json       its metadata
    engines/<key>.lock              held while one process builds that key
    timing-<backend>-<version>.cache    TensorRT timing cache (shared by builds)
    runtime-<gpu>-<version>.cache       TensorRT-RTX runtime (JIT kernel) cache

The key hashes the graph's sha256, every field of BuildSettings, the backend
and its version, and the GPU. A build holds an exclusive file lock on its key,
so two processes never build the same engine at once: the second waits and
then finds the first one's engine. Engines are written to a temporary file and
renamed, so a killed build leaves no corrupt entry.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from trtsr.engines.backend import Backend, load_backend
from trtsr.engines.builder import BuildSettings, build_engine, load_spec_for
from trtsr.engines.gpu import detect_gpu
from trtsr.engines.metadata import EngineMetadata, metadata_path_for
from trtsr.errors import TrtsrError

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    explicit = os.environ.get("TRTSR_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "trtsr"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def timing_cache_path(backend: Backend, root: Path | None = None) -> Path:
    return (root or cache_dir()) / f"timing-{backend.name}-{_slug(backend.version)}.cache"


def runtime_cache_path(backend: Backend, root: Path | None = None) -> Path:
    gpu = detect_gpu()
    gpu_slug = _slug(f"{gpu.name}-sm{gpu.compute_capability}") if gpu else "nogpu"
    return (root or cache_dir()) / f"runtime-{gpu_slug}-{backend.name}-{_slug(backend.version)}.cache"


def cache_key(onnx_sha256: str, settings: BuildSettings, backend: Backend) -> str:
    gpu = detect_gpu()
    payload = {
        "onnx": onnx_sha256,
        "settings": dataclasses.asdict(dataclasses.replace(settings, backend=backend.name)),
        "backend": backend.name,
        "backend_version": backend.version,
        "gpu": gpu.to_dict() if gpu else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _valid_entry(engine: Path, onnx_sha256: str, backend: Backend) -> bool:
    meta_file = metadata_path_for(engine)
    if not engine.is_file() or not meta_file.is_file():
        return False
    try:
        meta = EngineMetadata.for_engine(engine)
    except TrtsrError:
        return False
    if meta.onnx_sha256 != onnx_sha256 or meta.backend != backend.name or meta.backend_version != backend.version:
        return False
    if not meta.matches_file(engine):
        log.warning("cached engine %s is corrupt; rebuilding", engine)
        return False
    if detect_gpu() is not None:
        ok, why = backend.engine_validity(engine.read_bytes())
        if not ok:
            log.warning("cached engine %s cannot run here (%s); rebuilding", engine, why)
            return False
    return True


@dataclasses.dataclass(frozen=True)
class CachedEngine:
    engine_path: Path
    metadata: EngineMetadata
    built: bool  # False when an existing entry was reused


def cached_engine(
    onnx_path: str | Path,
    settings: BuildSettings = BuildSettings(),
    *,
    root: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> CachedEngine:
    """Return the cached engine for this graph and settings, building it first if needed."""
    onnx_path = Path(onnx_path)
    spec = load_spec_for(onnx_path)
    backend = load_backend(settings.backend)
    root = root or cache_dir()
    folder = root / "engines"
    key = cache_key(spec.onnx_sha256, settings, backend)
    engine = folder / f"{key}.engine"
    try:
        with _locked(folder / f"{key}.lock"):
            if _valid_entry(engine, spec.onnx_sha256, backend):
                return CachedEngine(engine, EngineMetadata.for_engine(engine), built=False)
            result = build_engine(onnx_path, engine, dataclasses.replace(settings, backend=backend.name),
                                  progress=progress)
            return CachedEngine(result.engine_path, result.metadata, built=True)
    except PermissionError as exc:
        raise TrtsrError(f"engine cache is not writable ({exc.strerror}); set TRTSR_CACHE_DIR", path=root) from None
