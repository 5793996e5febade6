"""PyTorch GenDR-Pix -> ONNX with dynamic height and width.

The exported graph maps a low-resolution HWC image to the high-resolution one:
bicubic resize, normalisation, alignment padding, PadCFG, UNet, crop and
quantisation all happen inside it, so a runtime only moves pixels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from trtsr import defaults
from trtsr.cost_probe import probe_cost
from trtsr.defaults import IO_TYPES, PRECISIONS, SCALES
from trtsr.errors import TrtsrError
from trtsr.files import sha256_of
from trtsr.guidance import check_guidance
from trtsr.sizes import SizeRequirements
from trtsr.spec import ExportSpec, publish_graph

log = logging.getLogger(__name__)

INPUT_NAME = "lr"
OUTPUT_NAME = "hr"
GUIDANCE_NAME = "guidance"  # PadCFG graphs: w as a 1-element float32 input
# Above this many bytes of weights the graph keeps them in an external data file (protobuf's 2 GB cap).
EXTERNAL_DATA_THRESHOLD = 1_900_000_000
# Traced at a size that is no multiple of 2, 8 or 64, so no shape logic is specialised to it.
TRACE_SIZE = (37, 53)


def trace_size(minimum: int) -> tuple[int, int]:
    """The example input's sides: TRACE_SIZE, moved up together by a multiple of 64 where the graph's smallest
    input is larger (x1 takes 57 pixels a side), so the example is inside the dynamic range and still no
    multiple of 2, 8 or 64."""
    shift = -(-max(0, minimum + 1 - min(TRACE_SIZE)) // 64) * 64
    return TRACE_SIZE[0] + shift, TRACE_SIZE[1] + shift


@dataclasses.dataclass(frozen=True)
class ExportSettings:
    """Settings that change the exported graph.

    Fields:
        scale: upscaling factor (the input is bicubic-resized by it inside the graph).
        precision: fp16, bf16 or fp32 for the UNet's weights and activations.
        guidance: PadCFG guidance w (paper Eq. 7); None, or 1.0, exports the batch-1 graph without PadCFG.
        io: uint8 or float32 input/output tensors (HWC, 0..255).
        guidance_input: PadCFG graphs take w as a second input ("guidance", float32, shape [1]) so
            that one graph, and one engine, serve every w; `guidance` is then the default w that the
            spec records. False bakes `guidance` into the graph.
        opset: ONNX opset of the default domain. 23 (the default) writes attention as ONNX
            `Attention` nodes, which TensorRT and TensorRT-RTX turn into fused attention layers;
            older opsets spell it MatMul-Softmax-MatMul, whose N x N scores cannot be built for
            8K profiles (TensorRT rejects the tensor volume).
    """

    scale: int = defaults.SCALE
    precision: str = defaults.PRECISION
    guidance: float | None = defaults.GUIDANCE
    io: str = defaults.IO
    guidance_input: bool = True
    opset: int = defaults.OPSET

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise TrtsrError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}")
        if self.io not in IO_TYPES:
            raise TrtsrError(f"unknown io type {self.io!r}; use one of {', '.join(IO_TYPES)}")
        if self.scale not in SCALES:
            raise TrtsrError(f"scale must be one of {', '.join(map(str, SCALES))}, got {self.scale}")
        if self.guidance is not None and float(self.guidance) == 1.0:
            # w = 1 keeps only the positive pass: export the batch-1 graph, half the compute.
            object.__setattr__(self, "guidance", None)
        low, high = defaults.OPSETS
        if not low <= self.opset <= high:
            raise TrtsrError(f"opset must be {low} to {high}, got {self.opset}")
        check_guidance(self.guidance)
        if self.guidance is None:
            object.__setattr__(self, "guidance_input", False)  # no PadCFG, nothing to mix


@dataclasses.dataclass(frozen=True)
class ExportResult:
    onnx_path: Path
    spec_path: Path
    spec: ExportSpec
    seconds: float


def _torch_dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def export_onnx(
    model_source,
    output: str | Path,
    settings: ExportSettings = ExportSettings(),
    *,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a model (a `ModelSource` from `trtsr.source.resolve_source`, a `GenDRPix` or an `ExternalModel`) to
    `output` (+ spec JSON).

    Files appear only when everything succeeded; a failure leaves no partial output.
    """
    import time

    import torch

    from trtsr._version import __version__

    started = time.perf_counter()
    say = progress or (lambda message: log.info(message))
    output = Path(output)
    if output.suffix != ".onnx":
        raise TrtsrError("output file name must end in .onnx", path=output)
    if output.exists() and output.is_dir():
        raise TrtsrError("output is a folder; give a file name ending in .onnx", path=output)

    say("loading model")
    built = _module_for(model_source, settings)
    module, model_name, parameters, sizes = built.module, built.name, built.parameters, built.sizes
    module.eval()
    say("probing memory and work per pixel")
    cost = probe_cost(module, io=settings.io, guidance=settings.guidance if settings.guidance_input else None)

    in_dtype = torch.uint8 if settings.io == "uint8" else torch.float32
    example = torch.zeros(*trace_size(sizes.minimum), 3, dtype=in_dtype)
    args = (example, torch.tensor([float(settings.guidance)])) if settings.guidance_input else (example,)
    names = [INPUT_NAME, GUIDANCE_NAME] if settings.guidance_input else [INPUT_NAME]
    height = torch.export.Dim("lr_height", min=sizes.minimum, max=sizes.maximum)
    width = torch.export.Dim("lr_width", min=sizes.minimum, max=sizes.maximum)

    external = parameters * {"fp32": 4, "fp16": 2, "bf16": 2}[settings.precision] > EXTERNAL_DATA_THRESHOLD

    output.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{output.stem}.", dir=output.parent))
    try:
        say(f"tracing {parameters / 1e6:.1f} M parameters ({settings.precision}) and converting to ONNX")
        with torch.no_grad(), warnings.catch_warnings(), _quiet_exporter():
            warnings.simplefilter("ignore")
            # The alignment arithmetic yields guards that hold for every size in range but that the
            # symbolic solver cannot prove; deferring them keeps one graph for all sizes.
            dynamic = {"lr": {0: height, 1: width}}
            if settings.guidance_input:
                dynamic["guidance"] = None
            exported = torch.export.export(
                module, args, dynamic_shapes=dynamic, prefer_deferred_runtime_asserts_over_guards=True,
            )
            program = torch.onnx.export(
                exported, args, dynamo=True, input_names=names, output_names=[OUTPUT_NAME],
                opset_version=settings.opset, optimize=True, verbose=False,
            )
            del exported
        tmp_onnx = workdir / output.name
        say("writing ONNX" + (" with external data" if external else ""))
        program.save(str(tmp_onnx), external_data=external)
        del program
        # The exporter also moves weights out on its own above its threshold: look, do not assume.
        data_name = output.name + ".data" if (workdir / (output.name + ".data")).exists() else None
        stray = sorted(p.name for p in workdir.iterdir() if p.name not in (output.name, data_name))
        if stray:
            raise RuntimeError(f"exporter wrote unexpected files: {stray}")
        opset = _apply_fixes(tmp_onnx, settings, say)
        say("checking the graph")
        _check(tmp_onnx)
        tmp_data = workdir / data_name if data_name else None
        spec = ExportSpec(
            model=model_name, scale=settings.scale, precision=settings.precision, guidance=settings.guidance,
            io=settings.io, input_name=INPUT_NAME, output_name=OUTPUT_NAME,
            guidance_input=GUIDANCE_NAME if settings.guidance_input else None, alignment=sizes.multiple,
            extra_pixels=sizes.padding, min_input_size=sizes.minimum, max_input_size=sizes.maximum,
            parameters=parameters, onnx_file=output.name, onnx_data_file=data_name,
            onnx_sha256=sha256_of(tmp_onnx, tmp_data),
            opset=opset, trtsr_version=__version__, torch_version=torch.__version__, architecture=built.architecture,
            cost=cost.to_dict(),
        )
        spec_path = publish_graph(spec, tmp_onnx, tmp_data, output)
    except OSError as exc:
        raise TrtsrError(f"cannot write the export: {exc.strerror or exc}", path=output) from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return ExportResult(output, spec_path, spec, time.perf_counter() - started)


@dataclasses.dataclass
class _Module:
    module: object  # the torch module that is traced
    name: str
    parameters: int
    sizes: SizeRequirements
    architecture: str | None = None


def _module_for(model, settings: ExportSettings) -> _Module:
    """The image-to-image module for a model: a `ModelSource` (`trtsr.source.resolve_source`), a `GenDRPix`
    network, or an `ExternalModel` spandrel loaded."""
    from trtsr.source import ModelSource

    dtype = _torch_dtype(settings.precision)
    if isinstance(model, ModelSource) and model.kind.is_file:
        raise TrtsrError(f"this is an exported {model.what}; export a model (a name, checkpoint or folder)",
                         path=model.path)
    if isinstance(model, ModelSource) and model.kind.is_external:
        model = model.load_external()
    if type(model).__name__ == "ExternalModel":
        from trtsr.models.external import ExternalUpscaler

        if settings.guidance is not None:
            raise TrtsrError(f"{model.name} ({model.architecture}) has no PadCFG guidance; export it with "
                             "--no-padcfg (the default for it)")
        if settings.scale != model.scale:
            raise TrtsrError(f"{model.name} upscales x{model.scale}, not x{settings.scale}")
        model.check_precision(settings.precision)
        module = ExternalUpscaler(model, dtype, settings.io)
        module.network.to(dtype)
        sizes = SizeRequirements.for_network(scale=model.scale, multiple=model.multiple, minimum=model.minimum)
        return _Module(module, model.name, model.parameters, sizes, model.architecture)
    from trtsr.models import PixelUpscaler

    if isinstance(model, ModelSource):
        name, net = model.stem, model.load_gendr()
    else:
        name, net = model.config.name, model
    net = net.eval().to(dtype)
    module = PixelUpscaler(net, settings.scale, settings.guidance, dtype, settings.io,
                           guidance_input=settings.guidance_input)
    sizes = SizeRequirements.for_graph(scale=settings.scale, multiple=net.config.alignment)
    return _Module(module, name, sum(p.numel() for p in net.parameters()), sizes)


def _apply_fixes(path: Path, settings: ExportSettings, say: Callable[[str], None]) -> int:
    import onnx

    from trtsr.export.graph_fixes import fix_upsample_resizes, name_dynamic_dims, resize_in_float32

    model = onnx.load(str(path), load_external_data=False)
    fixed = fix_upsample_resizes(model)
    if settings.precision == "bf16":
        resize_in_float32(model)
    name_dynamic_dims(model)
    if fixed:
        say(f"gave {fixed} upsampling Resize nodes constant scales")
    onnx.save(model, str(path))
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _check(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=False)
    except onnx.checker.ValidationError as exc:
        raise RuntimeError(f"exported graph failed onnx.checker: {exc}") from exc


@contextlib.contextmanager
def _quiet_exporter():
    """The dynamo exporter prints progress lines of its own; keep the CLI's output ours."""
    import io
    from contextlib import redirect_stdout

    noisy = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = noisy.level
    noisy.setLevel(logging.ERROR)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        noisy.setLevel(level)
