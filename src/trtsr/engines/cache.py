"""The engine cache: an engine for (graph, settings, backend version, GPU) without a manual build.

Entries live in `paths.engines_dir()`:

    <key>.engine        the engine
    <key>.engine.json   its metadata
    <key>.lock          held while one process builds or checks that key; its mtime is the last use
    <key>.verified      the engine file's size, mtime and inode when its sha256 was last checked

The key hashes the graph's sha256, every field of BuildSettings, the backend
and its version, and the GPU. A build holds an exclusive file lock on its key,
so two processes never build the same engine at once: the second waits and
then finds the first one's engine. Engines are written to a temporary file and
renamed, so a killed build leaves no corrupt entry.

Engines of the full-size model are about 2 GB each, so the folder has a size
cap (`max_gb`, else $TRTSR_CACHE_MAX_GB, else defaults.ENGINE_CACHE_MAX_GB; 0
turns it off): after a build, the least recently used entries are removed until
the folder fits, never the one just built and never one whose lock another
process holds (while it builds or checks that entry). An engine another process
is running stays usable on Linux and macOS (its open file outlives the removal);
on Windows the removal fails and the entry is kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from trtsr.defaults import ENGINE_CACHE_MAX_GB
from trtsr.engines.backend import TensorRTModule, load_backend
from trtsr.engines.builder import BuildSettings, build_engine, load_spec_for
from trtsr.engines.metadata import EngineMetadata, LoadedEngine, file_stat, metadata_path_for, open_engine_file
from trtsr.errors import TrtsrError
from trtsr.files import file_lock, lock_is_held, size_text, write_text_atomic
from trtsr.gpu import detect_gpu
from trtsr.paths import cache_dir, engines_dir, writable_cache

log = logging.getLogger(__name__)


def cache_key(onnx_sha256: str, settings: BuildSettings, backend: TensorRTModule) -> str:
    gpu = detect_gpu()
    payload = {
        "onnx": onnx_sha256,
        "settings": dataclasses.asdict(dataclasses.replace(settings, backend=backend.name)),
        "backend": backend.name,
        "backend_version": backend.version,
        "gpu": gpu.to_dict() if gpu else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def cache_limit_bytes(max_gb: float | None = None) -> int | None:
    """The cap in bytes: the argument, else $TRTSR_CACHE_MAX_GB, else the default; None = no cap."""
    if max_gb is None:
        text = os.environ.get("TRTSR_CACHE_MAX_GB")
        try:
            max_gb = float(text) if text else ENGINE_CACHE_MAX_GB
        except ValueError:
            raise TrtsrError(f"TRTSR_CACHE_MAX_GB must be a number of GB, got {text!r}") from None
    if max_gb < 0:
        raise TrtsrError(f"the engine cache cap must be >= 0 GB (0 = no cap), got {max_gb:g}")
    return None if max_gb == 0 else int(max_gb * 1e9)


def _valid_entry(engine: Path, onnx_sha256: str, backend: TensorRTModule) -> LoadedEngine | None:
    """The entry's engine, read once and checked (metadata, size and sha256, and on a GPU whether it runs
    here), for the session to open without reading it again; None when it must be built. The sha256 is
    checked once per file: the entry records the file's size, mtime and inode then (`<key>.verified`), and
    while they hold the bytes are trusted."""
    meta_file = metadata_path_for(engine)
    if not engine.is_file() or not meta_file.is_file():
        return None
    try:
        meta = EngineMetadata.for_engine(engine)
    except TrtsrError:
        return None
    if meta.onnx_sha256 != onnx_sha256 or meta.backend != backend.name or meta.backend_version != backend.version:
        return None
    stamp = engine.with_suffix(".verified")
    try:
        recorded = json.loads(stamp.read_text())
        verified = tuple(recorded["stat"]) if recorded.get("engine_sha256") == meta.engine_sha256 else None
    except (OSError, ValueError, KeyError, TypeError):
        verified = None
    try:
        loaded = open_engine_file(engine, meta, verified_stat=verified)
        if not loaded.trusted:
            loaded.data  # read and hashed here, once: a corrupt entry is rebuilt, not handed over  # noqa: B018
    except TrtsrError:
        log.warning("cached engine %s is corrupt; rebuilding", engine)
        return None
    if verified is None:
        try:
            write_text_atomic(stamp, json.dumps({"engine_sha256": meta.engine_sha256, "stat": file_stat(engine)}))
        except OSError as exc:  # only slower next time
            log.info("engine cache: cannot record %s (%s)", stamp.name, exc.strerror or exc)
    if detect_gpu() is not None:
        ok, why = backend.engine_validity(loaded.data)
        if not ok:
            log.warning("cached engine %s cannot run here (%s); rebuilding", engine, why)
            return None
    return loaded


def _entry_files(engine: Path) -> list[Path]:
    return [engine, metadata_path_for(engine), engine.with_suffix(".verified")]


def _last_used(engine: Path) -> float:
    lock = engine.with_suffix(".lock")
    return (lock if lock.exists() else engine).stat().st_mtime


def evict(folder: Path, limit_bytes: int | None, *, keep: Path | None = None) -> list[Path]:
    """Remove least recently used entries until the folder's engines fit `limit_bytes`; returns the removed."""
    if limit_bytes is None or not folder.is_dir():
        return []
    entries = []
    for engine in folder.glob("*.engine"):
        try:
            size = sum(f.stat().st_size for f in _entry_files(engine) if f.exists())
            entries.append((_last_used(engine), engine, size))
        except FileNotFoundError:  # removed by another process meanwhile
            continue
    total = sum(size for _, _, size in entries)
    removed = []
    for _, engine, size in sorted(entries):
        if total <= limit_bytes:
            break
        if keep is not None and engine == keep:
            continue
        if lock_is_held(engine.with_suffix(".lock")):
            continue  # another process is building or checking it
        try:
            for file in _entry_files(engine):
                file.unlink(missing_ok=True)
        except OSError as exc:  # Windows: an engine another process has open cannot be removed
            log.info("engine cache: kept %s (%s)", engine.name, exc.strerror or exc)
            continue
        total -= size
        removed.append(engine)
        log.info("engine cache above its cap: removed %s (%.1f GB)", engine.name, size / 1e9)
    return removed


@dataclasses.dataclass(frozen=True)
class CachedEngine:
    engine_path: Path
    metadata: EngineMetadata
    built: bool  # False when an existing entry was reused
    loaded: LoadedEngine | None = dataclasses.field(default=None, repr=False)  # a reused entry, read and checked


def cached_engine(
    onnx_path: str | Path,
    settings: BuildSettings = BuildSettings(),
    *,
    root: Path | None = None,
    max_gb: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> CachedEngine:
    """Return the cached engine for this graph and settings, building it first if needed.

    `root` is the cache folder (default: paths.cache_dir()); `max_gb` caps the engines in it.
    """
    onnx_path = Path(onnx_path)
    spec = load_spec_for(onnx_path)
    backend = load_backend(settings.backend)
    limit = cache_limit_bytes(max_gb)
    root = root or cache_dir()
    folder = engines_dir(root)
    key = cache_key(spec.onnx_sha256, settings, backend)
    writable_cache(folder)
    engine = folder / f"{key}.engine"
    lock = folder / f"{key}.lock"
    try:
        with file_lock(lock):
            os.utime(lock)  # the entry's last use, for eviction
            loaded = _valid_entry(engine, spec.onnx_sha256, backend)
            if loaded is not None:
                return CachedEngine(engine, loaded.metadata, built=False, loaded=loaded)
            if progress:
                progress(f"building an engine once into {folder}; later runs reuse it")
            result = build_engine(onnx_path, engine, dataclasses.replace(settings, backend=backend.name),
                                  cache_root=root, progress=progress)
            cached = CachedEngine(result.engine_path, result.metadata, built=True)
            if progress:
                progress(f"cached the engine: {size_text(result.metadata.engine_bytes)} in {folder}")
        evict(folder, limit, keep=engine)
        return cached
    except PermissionError as exc:
        raise TrtsrError(f"engine cache is not writable ({exc.strerror}); set TRTSR_CACHE_DIR", path=root) from None
