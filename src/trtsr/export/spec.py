"""The export spec: the small JSON that travels beside an exported ONNX graph.

It tells the engine builder and the runtime what the graph is without opening
it: tensor names, layout, scale, precision, guidance and the size rules. No
torch or onnx import here: the runtime reads specs too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from trtsr.errors import TrtsrError
from trtsr.files import write_text_atomic

SPEC_VERSION = 1
PRECISIONS = ("fp32", "fp16", "bf16")
IO_TYPES = ("uint8", "float32")


def hash_onnx(onnx_path: str | Path, data_path: str | Path | None = None) -> str:
    """sha256 over the graph file followed by its external data file, if any."""
    digest = hashlib.sha256()
    for path in (onnx_path, data_path):
        if path is None:
            continue
        with open(path, "rb") as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()


def spec_path_for(onnx_path: str | Path) -> Path:
    """`model.onnx` -> `model.json`."""
    return Path(onnx_path).with_suffix(".json")


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """What an exported graph computes and accepts.

    Fields:
        model: model name (preset, `default`, or the checkpoint's name).
        scale: output size = scale x input size.
        precision: fp32, fp16 or bf16: the type of the UNet's weights and activations.
        guidance: PadCFG guidance w, or None for the batch-1 graph without PadCFG.
        io: uint8 (HWC, 0..255) or float32 (HWC, 0..255 unrounded) input and output.
        input_name / output_name: the graph's tensor names; both are (height, width, 3).
        alignment: the UNet's size multiple (the graph pads to it internally).
        extra_pixels: pixels the graph adds to each side length before aligning (8 with PadCFG).
        min_input_size: smallest input height/width the graph accepts.
        parameters: number of model parameters.
        onnx_file / onnx_data_file: file names, relative to the spec; data file only above 2 GB.
        onnx_sha256: hash over the graph file and its external data.
        opset: ONNX opset of the default domain.
        trtsr_version / torch_version: the software that exported it.
    """

    model: str
    scale: int
    precision: str
    guidance: float | None
    io: str
    input_name: str
    output_name: str
    alignment: int
    extra_pixels: int
    min_input_size: int
    parameters: int
    onnx_file: str
    onnx_sha256: str
    opset: int
    trtsr_version: str
    torch_version: str
    onnx_data_file: str | None = None
    spec_version: int = SPEC_VERSION

    def unet_size(self, output_size: int) -> int:
        """The side length the UNet actually runs at for an output side length."""
        extra = self.extra_pixels
        return ((output_size + extra + self.alignment - 1) // self.alignment) * self.alignment

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> Path:
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ExportSpec:
        path = Path(path)
        if not path.is_file():
            raise TrtsrError("export spec not found (it is written beside the ONNX by 'trtsr export')", path=path)
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TrtsrError(f"export spec is not valid JSON ({exc})", path=path) from None
        return cls.from_dict(data, path=path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, path: str | Path | None = None) -> ExportSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise TrtsrError(f"export spec lacks {', '.join(missing)}", path=path)
        spec = cls(**{k: v for k, v in data.items() if k in names})
        if spec.precision not in PRECISIONS:
            raise TrtsrError(f"export spec has unknown precision {spec.precision!r}", path=path)
        if spec.io not in IO_TYPES:
            raise TrtsrError(f"export spec has unknown io type {spec.io!r}", path=path)
        return spec
