"""`calibrate()`: an fp32 trtsr graph -> a Q/DQ graph and its spec, for `trtsr build` and ONNX Runtime.

int8 and fp8 go through NVIDIA's Model Optimizer (`modelopt.onnx.quantization`), whose Q/DQ
placement is the one TensorRT fuses, calibrated with ONNX Runtime on the CPU. int8-weights
(weight-only INT8 for TensorRT's GEMMs) is not a ModelOpt ONNX mode; trtsr writes it itself
(`graph.quantize_weights_int8`). Everything cheap is checked before calibration starts, the work
happens in a temporary folder beside the output, and the files appear only when all succeeded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import io
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trtsr.calibration import recipe
from trtsr.calibration.data import DEFAULT_SIZES, FeedReader, find_images, load_images, plan_crops
from trtsr.calibration.graph import (
    is_quantized,
    module_path,
    quantize_weights_int8,
    quantized_layers,
    rewrite_group_norms,
)
from trtsr.errors import MissingDependencyError, TrtsrError
from trtsr.files import sha256_of
from trtsr.spec import ExportSpec, publish_graph

log = logging.getLogger(__name__)

FLOAT_TYPES = ("fp16", "fp32")
EXTERNAL_DATA_BYTES = 1_800_000_000  # below protobuf's 2 GB limit, with room for the graph itself


@dataclasses.dataclass(frozen=True)
class CalibrationSettings:
    """precision: int8, fp8 or int8-weights. samples: calibration crops. sizes: crop (input) sizes, WxH.
    seed: crop positions and image order. float_type: precision of the layers left unquantised
    (fp16 for engines; fp32 keeps the source's). method: ModelOpt's calibrator (default per precision)."""

    precision: str = "int8"
    samples: int = recipe.DEFAULT_SAMPLES
    sizes: tuple[tuple[int, int], ...] = DEFAULT_SIZES
    seed: int = 0
    float_type: str = "fp16"
    method: str | None = None

    def check(self) -> None:
        if self.precision not in recipe.PRECISIONS:
            raise TrtsrError(f"unknown precision {self.precision!r}: choose {', '.join(recipe.PRECISIONS)}")
        if self.float_type not in FLOAT_TYPES:
            raise TrtsrError(f"unknown float type {self.float_type!r}: choose fp16 or fp32")
        if self.needs_data:
            if self.samples < recipe.MIN_SAMPLES:
                raise TrtsrError(f"too few calibration samples ({self.samples}): use at least {recipe.MIN_SAMPLES} "
                                 f"(NVIDIA recommends 32-128)")
            if self.samples > recipe.MAX_SAMPLES:
                raise TrtsrError(f"{self.samples} calibration samples is more than {recipe.MAX_SAMPLES}")
            if not self.sizes:
                raise TrtsrError("no calibration sizes")
        if self.method is not None and self.method not in ("entropy", "max"):
            raise TrtsrError(f"unknown calibration method {self.method!r}: choose entropy or max")

    @property
    def needs_data(self) -> bool:
        return self.precision != "int8-weights"

    @property
    def calibration_method(self) -> str:
        return self.method or recipe.METHODS[self.precision]


@dataclasses.dataclass(frozen=True)
class CalibrationResult:
    onnx_path: Path
    spec_path: Path
    spec: ExportSpec
    seconds: float


def _check_output(source: Path, output: Path, overwrite: bool) -> None:
    if output.suffix != ".onnx":
        raise TrtsrError("output file name must end in .onnx", path=output)
    if output.resolve() == source.resolve():
        raise TrtsrError("output would replace the source graph; give another name with -o", path=output)
    if output.is_dir():
        raise TrtsrError("output is a folder; give a file name ending in .onnx", path=output)
    if output.exists() and not overwrite:
        raise TrtsrError("output exists; pass --overwrite to replace it", path=output)
    parent = output.parent if str(output.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise TrtsrError("output folder is not writable", path=parent)


def _require_modelopt() -> str:
    for module in ("modelopt", "onnx_graphsurgeon"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(f"int8 and fp8 calibration ({module} is missing)", "calibrate")
    return importlib.metadata.version("nvidia-modelopt")


def default_output(source: Path, precision: str) -> Path:
    """MODEL-PRECISION.onnx in the current folder (the source may sit inside the installed package)."""
    return Path(f"{source.stem}-{precision}.onnx")


def shipped_source(name: str) -> Path | None:
    """'default' or 'default-x2/3/4': the shipped graph of the default model (x4 for 'default')."""
    match = re.fullmatch(r"default(?:-x([234]))?", name)
    if match is None:
        return None
    from trtsr.paths import package_file

    return package_file("assets", f"default-x{match.group(1) or 4}.onnx")


def check_source(source: Path) -> ExportSpec:
    """The source graph's spec, refused when it is already quantised or not fp32."""
    spec = ExportSpec.for_graph(source)
    if spec.quantization is not None:
        raise TrtsrError(f"graph is already quantised ({spec.quantization.get('precision')}); calibrate the fp32 "
                         "graph it came from", path=source)
    if spec.precision != "fp32":
        raise TrtsrError(f"graph is {spec.precision}; calibration needs the fp32 graph (trtsr export -p fp32)",
                         path=source)
    return spec


def calibrate(
    source: str | Path,
    images: str | Path | None,
    output: str | Path | None = None,
    settings: CalibrationSettings = CalibrationSettings(),
    *,
    overwrite: bool = False,
    verbose: bool = False,
    progress: Callable[[str], None] | None = None,
) -> CalibrationResult:
    """Quantise the trtsr graph `source` with calibration crops from the images under `images`."""
    started = time.perf_counter()
    say = progress or (lambda message: log.info(message))
    if not Path(source).exists() and shipped_source(str(source)) is not None:
        source = shipped_source(str(source))
    source = Path(source)
    settings.check()
    spec = check_source(source)
    output = Path(output) if output is not None else default_output(source, settings.precision)
    _check_output(source, output, overwrite)
    quantizer = "trtsr weight-only int8"
    if settings.needs_data:
        quantizer = f"nvidia-modelopt {_require_modelopt()}"
        if images is None:
            raise TrtsrError(f"{settings.precision} calibration needs images: pass --images FOLDER")
        paths = find_images(images)
        say(f"reading {len(paths)} calibration images")
        pictures = load_images(paths, spec.min_input_size)
        crops = plan_crops(pictures, list(settings.sizes), settings.samples, settings.seed)
    else:
        paths, pictures, crops = [], [], []
    if settings.float_type == "fp16" and importlib.util.find_spec("modelopt") is None:
        raise MissingDependencyError("fp16 conversion of the unquantised layers (modelopt is missing)", "calibrate")

    import onnx

    # The graph alone: large weights stay in the source's data file until something needs their values.
    model = onnx.load(str(source), load_external_data=False)
    if is_quantized(model):
        raise TrtsrError("graph already has Q/DQ nodes; calibrate the fp32 graph it came from", path=source)
    rewritten = rewrite_group_norms(model)
    excluded = _excluded_nodes(model, spec.architecture)

    output.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{output.stem}.", dir=output.parent))
    try:
        if settings.needs_data:
            prepared = _save_prepared(model, source, spec, workdir)
            weights_bytes = _weights_bytes(source, spec)
            del model  # a full-size fp32 graph is 3.5 GB; ModelOpt loads its own copy
            quantized = _modelopt(prepared, weights_bytes, spec, pictures, crops, settings, excluded, verbose, say)
        else:
            say("quantising the linear layers' weights to int8")
            from onnx.external_data_helper import load_external_data_for_model

            load_external_data_for_model(model, str(source.parent))
            quantize_weights_int8(model, set(excluded))
            quantized = _to_float16(model, workdir) if settings.float_type == "fp16" else model
        counts = quantized_layers(quantized)
        if counts["quantized"] == 0:
            raise TrtsrError("the recipe left no layer to quantise", path=source)
        external = quantized.ByteSize() > EXTERNAL_DATA_BYTES if _fits_protobuf(quantized) else True
        tmp_onnx = workdir / output.name
        data_name = output.name + ".data" if external else None
        say("writing the quantised graph")
        onnx.save(quantized, str(tmp_onnx), save_as_external_data=external, location=data_name)
        tmp_data = workdir / data_name if data_name else None
        quantization: dict[str, Any] = {
            "precision": settings.precision,
            "quantizer": quantizer,
            "method": settings.calibration_method,
            "float_type": settings.float_type,
            "samples": len(crops),
            "sizes": [f"{w}x{h}" for w, h in settings.sizes] if settings.needs_data else [],
            "seed": settings.seed,
            "images": [{"file": p.path.name, "sha256": p.sha256} for p in pictures],
            "excluded": excluded,
            "group_norms_rewritten": rewritten,
            "quantized_layers": counts["quantized"],
            "compute_layers": counts["compute_layers"],
            "source_onnx": source.name,
            "source_sha256": spec.onnx_sha256,
        }
        from trtsr._version import __version__

        new_spec = dataclasses.replace(
            spec, precision=settings.float_type, onnx_file=output.name, onnx_data_file=data_name,
            onnx_sha256=sha256_of(tmp_onnx, tmp_data), trtsr_version=__version__, quantization=quantization,
        )
        spec_path = publish_graph(new_spec, tmp_onnx, tmp_data, output)
    except OSError as exc:
        raise TrtsrError(f"cannot write the quantised graph: {exc.strerror or exc}", path=output) from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return CalibrationResult(output, spec_path, new_spec, time.perf_counter() - started)


def _fits_protobuf(model) -> bool:
    """Whether the model serialises as one protobuf (under 2 GB); protobuf refuses larger ones with EncodeError."""
    try:
        model.ByteSize()
        return True
    except Exception:  # google.protobuf.message.EncodeError (or ValueError in older protobuf)
        return False


def _excluded_nodes(model, architecture: str | None = None) -> dict[str, str]:
    """{node name: why} for every node the recipe keeps in float (nodes ModelOpt could quantise or not); for a
    model other than GenDR-Pix also its first and last compute layers (`recipe.FIRST_LAST`)."""
    excluded = {}
    for node in model.graph.node:
        rule = recipe.excluded_by(module_path(node), node.op_type, architecture)
        if rule is not None and node.op_type in ("Conv", "MatMul", "Gemm", "Attention", "ConvTranspose"):
            excluded[node.name] = rule.why
    if architecture is not None:
        compute = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm")
                   and n.name not in excluded]
        if compute:
            excluded[compute[0].name], excluded[compute[-1].name] = recipe.FIRST_LAST
    return excluded


def _to_float16(model, workdir: Path):
    """The unquantised layers in fp16 (ModelOpt's converter; graph inputs and outputs keep their types)."""
    from modelopt.onnx.autocast.convert import convert_to_f16

    converted = convert_to_f16(model, low_precision_type="fp16", keep_io_types=True)
    # The converter re-infers the intermediate shapes and may give two tensors of different sizes one symbolic
    # dimension: after the default graphs' mirrored alignment pad (Gather), a Slice of the PadCFG pair (batch 1)
    # shared the pair's batch (2), and ONNX Runtime's buffer reuse failed on it. Runtimes infer their own.
    del converted.graph.value_info[:]
    return converted


def _weights_bytes(source: Path, spec: ExportSpec) -> int:
    data = source.with_name(spec.onnx_data_file) if spec.onnx_data_file else None
    return source.stat().st_size + (data.stat().st_size if data is not None and data.is_file() else 0)


def _save_prepared(model, source: Path, spec: ExportSpec, workdir: Path) -> Path:
    """The rewritten graph in `workdir`; its large weights stay in (a copy of) the source's data file, unloaded."""
    import onnx

    if spec.onnx_data_file:
        data = source.with_name(spec.onnx_data_file)
        if not data.is_file():
            raise TrtsrError(f"the graph's external data file {data.name} is missing", path=source)
        # A copy: onnx refuses external data behind a symbolic or a hard link.
        shutil.copyfile(data, workdir / spec.onnx_data_file)
    prepared = workdir / "prepared.onnx"
    onnx.save(model, str(prepared))
    return prepared


def _modelopt(prepared: Path, weights_bytes: int, spec: ExportSpec, pictures, crops, settings: CalibrationSettings,
              excluded: dict[str, str], verbose: bool, say: Callable[[str], None]):
    import onnx
    import onnxruntime as ort

    _quiet_libraries(verbose)
    from modelopt.onnx.quantization import quantize

    workdir = prepared.parent
    too_big = weights_bytes > EXTERNAL_DATA_BYTES
    out = workdir / "quantized.onnx"
    ort.set_default_logger_severity(0 if verbose else 3)
    say(f"calibrating {settings.precision} on {len(crops)} crops ({settings.calibration_method}, ONNX Runtime CPU)")
    quiet = contextlib.nullcontext() if verbose else _swallow_output()
    try:
        with quiet:
            quantize(
                str(prepared), quantize_mode=settings.precision,
                calibration_data_reader=FeedReader(spec, pictures, crops),
                calibration_method=settings.calibration_method, calibration_eps=["cpu"],
                nodes_to_exclude=[f"^{re.escape(name)}$" for name in excluded],
                high_precision_dtype=settings.float_type, use_external_data_format=too_big,
                # Large graphs calibrate node by node: slower, but within a workstation's memory.
                calibrate_per_node=too_big,
                output_path=str(out), log_level="INFO" if verbose else "CRITICAL",
            )
    except TrtsrError:
        raise
    except Exception as exc:  # ModelOpt and ONNX Runtime raise their own types
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise TrtsrError(f"ModelOpt could not quantise the graph ({type(exc).__name__}: {first}); "
                         "run with -v for its log") from None
    return onnx.load(str(out))


@contextlib.contextmanager
def _swallow_output():
    """ONNX Runtime's calibrators print progress and tqdm bars; without -v they go nowhere."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def _quiet_libraries(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.CRITICAL
    for name in ("modelopt", "modelopt.onnx", "onnxruntime"):
        logging.getLogger(name).setLevel(level)
