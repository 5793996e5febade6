"""Where trtsr keeps what it caches, in one place.

    $TRTSR_CACHE_DIR, else the platform's user cache folder for trtsr
    (platformdirs: $XDG_CACHE_HOME/trtsr or ~/.cache/trtsr on Linux,
    %LOCALAPPDATA%\\trtsr\\Cache on Windows, ~/Library/Caches/trtsr on macOS)

        engines/<key>.engine(.json)         built engines and their metadata
        engines/<key>.lock                  held while one process builds that key
        onnx/<key>.onnx(.json)              graphs exported on demand
        timing-<backend>-<version>.cache    TensorRT timing cache (shared by builds)
        runtime-<gpu>-<backend>-<version>.cache   TensorRT-RTX runtime (JIT kernel) cache
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def cache_dir() -> Path:
    explicit = os.environ.get("TRTSR_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("trtsr", appauthor=False))


def writable_cache(folder: Path) -> Path:
    """`folder` (inside the cache) once it is known that it can be created and written: one line naming the cache
    and TRTSR_CACHE_DIR otherwise, before the export, conversion or build that would fill it."""
    from trtsr.errors import TrtsrError
    from trtsr.files import unwritable

    reason = unwritable(folder, folder=True)
    if reason is not None:
        raise TrtsrError(f"the trtsr cache cannot be written: {reason}; set TRTSR_CACHE_DIR to a writable folder",
                         path=folder)
    return folder


def engines_dir(root: Path | None = None) -> Path:
    return (root or cache_dir()) / "engines"


def exports_dir(root: Path | None = None) -> Path:
    return (root or cache_dir()) / "onnx"


def slug(text: str) -> str:
    """A file-name-safe lower-case form of a name or version."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def timing_cache_path(backend_name: str, backend_version: str, root: Path | None = None) -> Path:
    return (root or cache_dir()) / f"timing-{backend_name}-{slug(backend_version)}.cache"


def runtime_cache_path(backend_name: str, backend_version: str, gpu_name: str | None,
                       compute_capability: str | None, root: Path | None = None) -> Path:
    gpu = slug(f"{gpu_name}-sm{compute_capability}") if gpu_name else "nogpu"
    return (root or cache_dir()) / f"runtime-{gpu}-{backend_name}-{slug(backend_version)}.cache"


def lock_path_for(path: Path) -> Path:
    """The lock file that guards `path` (`x.cache` -> `x.cache.lock`)."""
    return path.with_name(path.name + ".lock")


def package_file(*parts: str) -> Path:
    """A file shipped inside the installed package (no import of the room it belongs to)."""
    from importlib import resources

    return Path(str(resources.files("trtsr").joinpath(*parts)))


def default_weights() -> Path:
    """The default model's weights (safetensors), for training and export."""
    return package_file("models", "weights", "default.safetensors")


def shipped_onnx() -> Path:
    """The default model's ready PadCFG graph (fp32, x4, float32 I/O, w as an input), for torch-free runs."""
    return package_file("assets", "default-x4.onnx")


def shipped_graphs() -> list[Path]:
    """Every graph of the default model that ships in the package: each scale (4, 3, 2), with PadCFG and without.

    They read their weights from one shared file beside them (`default.onnx.data`).
    """
    graphs = []
    for scale in (4, 3, 2):
        graphs += [package_file("assets", f"default-x{scale}{tail}.onnx") for tail in ("", "-nocfg")]
    return graphs
