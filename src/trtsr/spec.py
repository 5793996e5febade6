"""The export spec: the small JSON that travels beside an exported ONNX graph.

It tells the engine builder and the runtime what the graph is without opening
it: tensor names, layout, scale, precision, guidance and the size rules. A leaf
module (no torch, no onnx): the exporter writes specs, the engine builder and
the runtime read them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from trtsr.defaults import IO_TYPES, MAX_INPUT_SIDE, PRECISIONS
from trtsr.errors import TrtsrError
from trtsr.records import JsonRecord, SizeRules

SPEC_VERSION = 1


def spec_path_for(onnx_path: str | Path) -> Path:
    """`model.onnx` -> `model.json`."""
    return Path(onnx_path).with_suffix(".json")


def check_graph_file(path: str | Path) -> None:
    """One line unless `path` is a file that holds an ONNX graph: a serialised ModelProto begins with its
    ir_version field (byte 0x08); an engine written under a graph's name begins with its backend's tag."""
    path = Path(path)
    if not path.is_file():
        raise TrtsrError("ONNX file not found", path=path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:1] != b"\x08":
        what = "a TensorRT engine" if head[1:4] == b"trt" else "something else"
        raise TrtsrError(f"not an ONNX graph: the file holds {what}", path=path)


def publish_graph(spec: ExportSpec, graph: Path, data: Path | None, output: Path) -> Path:
    """Move a finished graph (and its external data) from its work folder to `output` and write `spec` beside it:
    data first, graph second, spec last, each an atomic rename, so a spec never points at a graph that is not
    there. Returns the spec's path."""
    spec_tmp = graph.with_name(graph.name + ".spec.json")
    spec.save(spec_tmp)
    if data is not None:
        os.replace(data, output.with_name(spec.onnx_data_file))
    os.replace(graph, output)
    spec_path = spec_path_for(output)
    os.replace(spec_tmp, spec_path)
    return spec_path


@dataclasses.dataclass(frozen=True)
class ExportSpec(SizeRules, JsonRecord):
    """What an exported graph computes and accepts.

    Fields:
        model: model name (preset, `default`, or the checkpoint's name).
        scale: output size = scale x input size.
        precision: fp32, fp16 or bf16: the type of the UNet's weights and activations.
        guidance: PadCFG guidance w, or None for the batch-1 graph without PadCFG; with a guidance input,
            the default w a caller that gives none gets.
        guidance_input: the name of the graph's w input (float32, shape [1]), or None when w is baked in.
        io: uint8 (HWC, 0..255) or float32 (HWC, 0..255 unrounded) input and output.
        input_name / output_name: the graph's tensor names; both are (height, width, 3).
        alignment: the UNet's size multiple (the graph pads to it internally).
        extra_pixels: pixels the graph adds to each side length before aligning (8: the PadCFG branches' reflect pad,
            which the plain path shares since graph layout 2; 0 in older plain graphs).
        min_input_size: smallest input height/width the graph accepts.
        max_input_size: largest input height/width the graph accepts.
        (`sizes` gathers scale, alignment, extra_pixels and max_input_size as a SizeRequirements.)
        parameters: number of model parameters.
        onnx_file / onnx_data_file: file names, relative to the spec; data file only above 2 GB.
        onnx_sha256: hash over the graph file and its external data.
        opset: ONNX opset of the default domain.
        trtsr_version / torch_version: the software that exported it.
        architecture: the network's architecture as spandrel names it (ESRGAN, RealESRGAN Compact, SwinIR, ...)
            for a model other than GenDR-Pix; None for GenDR-Pix.
        quantization: None for a float graph; for a Q/DQ graph written by `trtsr calibrate`, what it did
            (precision int8/fp8/int8-weights, quantizer, method, samples, sizes, seed, images' sha256,
            excluded layers, quantised layer count, the source graph's file and sha256). `precision`
            is then the type of the layers left unquantised.
        cost: how the graph's activation memory and work grow with its input (`trtsr.cost.GraphCost` as a
            dict), probed when it was exported; None in graphs from before (they run in fixed tiles).
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
    max_input_size: int = MAX_INPUT_SIDE
    guidance_input: str | None = None
    architecture: str | None = None
    quantization: dict | None = None
    cost: dict | None = None
    spec_version: int = SPEC_VERSION

    what = "export spec"
    not_found_hint = " (it is written beside the ONNX by 'trtsr export')"

    @classmethod
    def for_graph(cls, onnx_path: str | Path) -> ExportSpec:
        """The spec beside `onnx_path`, once that file is checked to hold a graph (`check_graph_file`)."""
        check_graph_file(onnx_path)
        return cls.load(spec_path_for(onnx_path))

    def check(self, path: str | Path | None) -> None:
        if self.precision not in PRECISIONS:
            raise TrtsrError(f"export spec has unknown precision {self.precision!r}", path=path)
        if self.io not in IO_TYPES:
            raise TrtsrError(f"export spec has unknown io type {self.io!r}", path=path)
        if self.min_input_size < self.sizes.rule_minimum:
            raise TrtsrError(f"export spec's min_input_size {self.min_input_size} is below its alignment rule's "
                             f"({self.sizes.rule_minimum})", path=path)
        if self.cost is not None:
            try:
                _ = self.graph_cost  # parses the polynomials
            except (KeyError, TypeError, ValueError, AttributeError):
                raise TrtsrError("export spec's cost is not {bytes: [3 numbers], flops: [3 numbers]}",
                                 path=path) from None

    @property
    def graph_cost(self):
        """The `trtsr.cost.GraphCost` the exporter probed, or None (a graph from before it did)."""
        from trtsr.cost import GraphCost

        return None if self.cost is None else GraphCost.from_dict(self.cost)
