"""From a model name to a graph or engine file, without importing torch unless an export is needed."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from trtsr.errors import MissingDependencyError, TrtsrError

log = logging.getLogger(__name__)

DEFAULT_GUIDANCE = 1.8
DEFAULT_SCALE = 4


def shipped_onnx() -> Path:
    """The default model's ready graph inside the package (fp32, x4, PadCFG 1.8, float32 I/O)."""
    return Path(str(resources.files("trtsr") / "assets" / "default-x4.onnx"))


def resolve_onnx(
    model: str,
    *,
    scale: int = DEFAULT_SCALE,
    guidance: float | None = DEFAULT_GUIDANCE,
    precision: str = "fp32",
    io: str = "float32",
    progress: Callable[[str], None] | None = None,
) -> Path:
    """A graph for `model` at these settings: the shipped one, an .onnx given by path, or a cached export."""
    from trtsr.export.spec import ExportSpec, spec_path_for

    if model.endswith(".onnx"):
        path = Path(model)
        if not path.is_file():
            raise TrtsrError("ONNX file not found", path=path)
        return path
    shipped = shipped_onnx()
    if model == "default" and shipped.is_file():
        spec = ExportSpec.load(spec_path_for(shipped))
        if (spec.scale, spec.guidance, spec.precision, spec.io) == (scale, guidance, precision, io):
            return shipped
    return _cached_export(model, scale=scale, guidance=guidance, precision=precision, io=io, progress=progress)


def _cached_export(model: str, *, scale, guidance, precision, io, progress) -> Path:
    from trtsr.engines.cache import cache_dir
    from trtsr.files import sha256_of

    source = Path(model)
    identity = {"model": model, "scale": scale, "guidance": guidance, "precision": precision, "io": io}
    if source.exists():
        identity["model"] = str(source.resolve())
        identity["sha256"] = sha256_of(source) if source.is_file() else _folder_digest(source)
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
    target = cache_dir() / "onnx" / f"{key}.onnx"
    if target.is_file() and target.with_suffix(".json").is_file():
        return target
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401

        from trtsr.export.onnx_export import ExportSettings, export_onnx
    except ImportError:
        raise MissingDependencyError(
            f"model {model!r} at x{scale}, guidance {guidance}, {precision} has no ready graph; exporting it",
            "export",
        ) from None
    if progress:
        progress(f"exporting {model} (x{scale}, {precision}) once; later runs reuse it")
    export_onnx(model, target, ExportSettings(scale=scale, precision=precision, guidance=guidance, io=io),
                progress=progress)
    return target


def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(folder)).encode())
        digest.update(str(file.stat().st_size).encode())
        digest.update(str(file.stat().st_mtime_ns).encode())
    return digest.hexdigest()
