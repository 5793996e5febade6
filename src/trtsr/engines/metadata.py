"""The JSON written beside every engine: what it is, what built it, for which GPU."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from trtsr.errors import TrtsrError
from trtsr.files import sha256_of
from trtsr.records import JsonRecord, SizeRules

METADATA_VERSION = 1


def metadata_path_for(engine_path: str | Path) -> Path:
    """`model.engine` -> `model.engine.json`."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


@dataclasses.dataclass(frozen=True)
class EngineMetadata(SizeRules, JsonRecord):
    """Fields:
        backend / backend_version: which TensorRT built it (tensorrt or tensorrt-rtx).
        precision, scale, guidance, io: copied from the export spec (precision lives in the ONNX).
        quantization: int8, fp8 or int8-weights for an engine built from a `trtsr calibrate` graph, else None.
        guidance_input: the name of the engine's w input (float32, shape [1]), or None when w is built in.
        alignment, extra_pixels, min_input_size, max_input_size: the graph's size rules, from the spec
            (`sizes` gathers them as a SizeRequirements).
        input_name / output_name: the engine's I/O tensor names.
        tensors: I/O tensors as parsed: name, mode, dtype, shape (-1 = dynamic).
        profiles: per profile, input and output min/opt/max shapes (height, width, 3).
        onnx_sha256 / onnx_file: the graph it was built from.
        builder: settings that changed the build (optimisation level, compute capabilities, workspace).
        gpu: name, compute capability and driver of the GPU present at build time, or None (built without one).
        build_seconds, engine_sha256, engine_bytes, trtsr_version, created: the build itself.
    """

    backend: str
    backend_version: str
    precision: str
    scale: int
    guidance: float | None
    io: str
    input_name: str
    output_name: str
    alignment: int
    extra_pixels: int
    min_input_size: int
    max_input_size: int
    tensors: list[dict[str, Any]]
    profiles: list[dict[str, Any]]
    onnx_sha256: str
    onnx_file: str
    model: str
    builder: dict[str, Any]
    gpu: dict[str, Any] | None
    build_seconds: float
    engine_sha256: str
    engine_bytes: int
    trtsr_version: str
    created: str
    guidance_input: str | None = None
    quantization: str | None = None
    metadata_version: int = METADATA_VERSION

    what = "engine metadata"
    not_found_hint = " (trtsr build writes it beside the engine)"
    missing_hint = " (not written by this trtsr version's 'trtsr build'); rebuild the engine"

    @classmethod
    def for_engine(cls, engine_path: str | Path) -> EngineMetadata:
        return cls.load(metadata_path_for(engine_path))

    def matches_file(self, engine_path: str | Path) -> bool:
        """Whether the engine file is the one this metadata describes (size, then sha256)."""
        engine_path = Path(engine_path)
        return engine_path.stat().st_size == self.engine_bytes and sha256_of(engine_path) == self.engine_sha256

    def profile_for(self, height: int, width: int) -> int | None:
        """Index of the profile with the smallest max input that holds an input of this size."""
        fitting = [
            (p["input_max"][0] * p["input_max"][1], i)
            for i, p in enumerate(self.profiles)
            if p["input_min"][0] <= height <= p["input_max"][0] and p["input_min"][1] <= width <= p["input_max"][1]
        ]
        return min(fitting)[1] if fitting else None


CORRUPT = ("the engine does not match its metadata (size or sha256 differ): it is corrupt or was replaced; "
           "rebuild it with trtsr build")


@dataclasses.dataclass(frozen=True)
class LoadedEngine:
    """An engine file's bytes, read once and checked against its metadata (`load_engine_file`)."""

    path: Path
    metadata: EngineMetadata
    data: bytes = dataclasses.field(repr=False)


def load_engine_file(engine_path: str | Path, metadata: EngineMetadata | None = None) -> LoadedEngine:
    """Read the engine once and check it against its metadata: the size before reading, the sha256 of the
    bytes read. One line naming the file when it is missing or does not match."""
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise TrtsrError("engine not found", path=engine_path)
    meta = metadata or EngineMetadata.for_engine(engine_path)
    if engine_path.stat().st_size != meta.engine_bytes:
        raise TrtsrError(CORRUPT, path=engine_path)
    data = engine_path.read_bytes()
    if len(data) != meta.engine_bytes or hashlib.sha256(data).hexdigest() != meta.engine_sha256:
        raise TrtsrError(CORRUPT, path=engine_path)
    return LoadedEngine(engine_path, meta, data)
