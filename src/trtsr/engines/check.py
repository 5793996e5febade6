"""Checks of a built engine against its metadata and this machine."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from trtsr.engines.backend import BACKENDS, load_backend
from trtsr.engines.metadata import EngineMetadata
from trtsr.errors import TrtsrError
from trtsr.gpu import detect_gpu


@dataclasses.dataclass(frozen=True)
class EngineReport:
    metadata: EngineMetadata
    runnable: bool
    verdict: str
    # each profile's activation memory in bytes, from the deserialised engine (None: not deserialisable here)
    activation_bytes: list[int] | None = None


def check_engine(engine_path: str | Path) -> EngineReport:
    """Read the engine's metadata, verify the file, and say whether this machine can run it."""
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise TrtsrError("engine not found", path=engine_path)
    meta = EngineMetadata.for_engine(engine_path)
    if not meta.matches_file(engine_path):
        return EngineReport(meta, False, "corrupt: the file does not match the sha256 in its metadata; rebuild it")
    if meta.backend not in BACKENDS:
        return EngineReport(meta, False, f"unknown backend {meta.backend!r} in metadata")
    try:
        backend = load_backend(meta.backend)
    except TrtsrError as exc:
        return EngineReport(meta, False, f"cannot run here: {exc}")
    if backend.version != meta.backend_version:
        return EngineReport(
            meta, False,
            f"cannot run here: built with {meta.backend} {meta.backend_version}, installed is {backend.version}; "
            "rebuild it",
        )
    gpu = detect_gpu()
    if gpu is None:
        return EngineReport(meta, False, "cannot run here: no NVIDIA GPU (the engine itself is intact)")
    try:
        backend.check_runs_on(gpu)
    except TrtsrError as exc:
        return EngineReport(meta, False, f"cannot run here: {exc.reason}")
    data = engine_path.read_bytes()
    ok, why = backend.engine_validity(data)
    where = f"{gpu.name} (sm {gpu.compute_capability})"
    activation = backend.activation_memory(data) if ok else None
    return EngineReport(meta, ok, f"{'runs' if ok else 'cannot run'} on {where}: {why}", activation)
