"""The JSON written beside every engine: what it is, what built it, for which GPU."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from trtsr.engines.profiles import ProfileShapes
from trtsr.errors import TrtsrError
from trtsr.files import sha256_of
from trtsr.records import JsonRecord
from trtsr.spec import ExportSpec

METADATA_VERSION = 2  # 2: the export spec embedded whole, typed profiles


def metadata_path_for(engine_path: str | Path) -> Path:
    """`model.engine` -> `model.engine.json`."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


@dataclasses.dataclass(frozen=True)
class EngineMetadata(JsonRecord):
    """Fields:
        backend / backend_version: which TensorRT built it (tensorrt or tensorrt-rtx).
        spec: the export spec of the graph it was built from, whole (model, scale, precision, guidance and
            its input, I/O type and tensor names, size rules, the graph's file and sha256, quantization).
            The names a run reads (scale, io, guidance, ...) are properties over it.
        tensors: I/O tensors as parsed: name, mode, dtype, shape (-1 = dynamic).
        profiles: per profile, input and output min/opt/max shapes (height, width, 3) (`ProfileShapes`).
        builder: settings that changed the build (optimisation level, compute capabilities, workspace).
        gpu: name, compute capability and driver of the GPU present at build time, or None (built without one).
        build_seconds, engine_sha256, engine_bytes, trtsr_version, created: the build itself.
    """

    backend: str
    backend_version: str
    spec: ExportSpec
    tensors: list[dict[str, Any]]
    profiles: list[ProfileShapes]
    builder: dict[str, Any]
    gpu: dict[str, Any] | None
    build_seconds: float
    engine_sha256: str
    engine_bytes: int
    trtsr_version: str
    created: str
    metadata_version: int = METADATA_VERSION

    what = "engine metadata"
    not_found_hint = " (trtsr build writes it beside the engine)"
    missing_hint = " (not written by this trtsr version's 'trtsr build'); rebuild the engine"

    @classmethod
    def from_dict(cls, data: Any, *, path: str | Path | None = None) -> EngineMetadata:
        if isinstance(data, dict) and isinstance(data.get("spec"), dict) and isinstance(data.get("profiles"), list):
            try:
                data = {**data, "spec": ExportSpec.from_dict(data["spec"], path=path),
                        "profiles": [ProfileShapes.from_dict(p) for p in data["profiles"]]}
            except (KeyError, TypeError, ValueError) as exc:
                raise TrtsrError(f"engine metadata has a malformed profile ({exc}){cls.missing_hint}",
                                 path=path) from None
        return super().from_dict(data, path=path)

    def check(self, path: str | Path | None) -> None:
        if not isinstance(self.spec, ExportSpec):
            raise TrtsrError(f"engine metadata's spec is not an export spec{self.missing_hint}", path=path)

    @classmethod
    def for_engine(cls, engine_path: str | Path) -> EngineMetadata:
        return cls.load(metadata_path_for(engine_path))

    # What a run reads, from the graph's spec.
    model = property(lambda self: self.spec.model)
    scale = property(lambda self: self.spec.scale)
    precision = property(lambda self: self.spec.precision)
    guidance = property(lambda self: self.spec.guidance)
    guidance_input = property(lambda self: self.spec.guidance_input)
    io = property(lambda self: self.spec.io)
    input_name = property(lambda self: self.spec.input_name)
    output_name = property(lambda self: self.spec.output_name)
    min_input_size = property(lambda self: self.spec.min_input_size)
    max_input_size = property(lambda self: self.spec.max_input_size)
    onnx_file = property(lambda self: self.spec.onnx_file)
    onnx_sha256 = property(lambda self: self.spec.onnx_sha256)
    sizes = property(lambda self: self.spec.sizes)

    @property
    def quantization(self) -> str | None:
        """int8, fp8 or int8-weights for an engine built from a `trtsr calibrate` graph, else None."""
        return None if self.spec.quantization is None else self.spec.quantization.get("precision")

    def matches_file(self, engine_path: str | Path) -> bool:
        """Whether the engine file is the one this metadata describes (size, then sha256)."""
        engine_path = Path(engine_path)
        return engine_path.stat().st_size == self.engine_bytes and sha256_of(engine_path) == self.engine_sha256

    def profile_for(self, height: int, width: int) -> int | None:
        """Index of the profile with the smallest max input that holds an input of this size."""
        fitting = [(p.input_max[0] * p.input_max[1], i) for i, p in enumerate(self.profiles) if p.holds(height, width)]
        return min(fitting)[1] if fitting else None


CORRUPT = ("the engine does not match its metadata (size or sha256 differ): it is corrupt or was replaced; "
           "rebuild it with trtsr build")


@dataclasses.dataclass(frozen=True)
class LoadedEngine:
    """An engine file that is there, with its metadata read and its size the one recorded (`open_engine_file`).

    `data` is its bytes, read once, when first asked for, and checked against the metadata's sha256 then,
    unless `trusted` (the engine cache checked this very file before and it has not changed since).
    """

    path: Path
    metadata: EngineMetadata
    trusted: bool = False
    _data: bytes | None = dataclasses.field(default=None, repr=False)

    @property
    def data(self) -> bytes:
        if self._data is None:
            data = self.path.read_bytes()
            meta = self.metadata
            if len(data) != meta.engine_bytes or not (self.trusted
                                                      or hashlib.sha256(data).hexdigest() == meta.engine_sha256):
                raise TrtsrError(CORRUPT, path=self.path)
            object.__setattr__(self, "_data", data)
        return self._data


def open_engine_file(engine_path: str | Path, metadata: EngineMetadata | None = None, *,
                     verified_stat: tuple[int, int, int] | None = None) -> LoadedEngine:
    """The engine file checked without reading it: there, its metadata read, its size the recorded one; one line
    naming the file otherwise. Its bytes are read and hashed when `data` is first asked for.

    `verified_stat` is the file's (size, mtime_ns, inode) when its sha256 was last checked (the engine cache
    records it): while the file still has them, its bytes are trusted without hashing them again.
    """
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise TrtsrError("engine not found", path=engine_path)
    meta = metadata or EngineMetadata.for_engine(engine_path)
    if engine_path.stat().st_size != meta.engine_bytes:
        raise TrtsrError(CORRUPT, path=engine_path)
    trusted = verified_stat is not None and file_stat(engine_path) == tuple(verified_stat)
    return LoadedEngine(engine_path, meta, trusted)


def file_stat(path: Path) -> tuple[int, int, int]:
    """(size, mtime_ns, inode): what changes when a file is rewritten or replaced."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ino
