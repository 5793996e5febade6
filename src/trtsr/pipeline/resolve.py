"""Which graph serves a model at a scale, guidance, precision and I/O type; which engine serves it on a GPU.

The default model's x4 PadCFG graph ships in the package and serves torch-free installs.
Every other combination is exported once into the cache (`paths.exports_dir()`), keyed on
what changes the graph: the model's weights (their sha256; the package version for the
seeded presets), every export setting, the trtsr version and the exporter's layout
(GRAPH_LAYOUT). A new release that ships new weights, or writes graphs differently, therefore
exports, and builds, anew instead of running the old graph.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from trtsr import defaults
from trtsr._version import __version__
from trtsr.errors import MissingDependencyError, TrtsrError
from trtsr.files import size_text
from trtsr.paths import exports_dir, shipped_graphs, writable_cache
from trtsr.source import ModelSource, SourceKind
from trtsr.spec import ExportSpec, spec_path_for

log = logging.getLogger(__name__)

@dataclasses.dataclass(frozen=True)
class GraphRequest:
    """What a run needs from a graph (the subset of export settings a run can ask for)."""

    scale: int = defaults.SCALE
    guidance: float | None = defaults.GUIDANCE
    precision: str = "fp32"
    io: str = "float32"
    opset: int = defaults.OPSET

    def __post_init__(self) -> None:
        if self.guidance is not None and float(self.guidance) == 1.0:
            object.__setattr__(self, "guidance", None)  # w = 1 is the batch-1 graph

    def matches(self, spec: ExportSpec) -> bool:
        """Whether a graph serves this request: a PadCFG graph that takes w as an input serves every w."""
        if (spec.scale, spec.precision, spec.io, spec.opset) != (self.scale, self.precision, self.io, self.opset):
            return False
        if self.guidance is None or spec.guidance is None:
            return self.guidance is None and spec.guidance is None
        return spec.guidance_input is not None or float(spec.guidance) == float(self.guidance)

    def key_settings(self) -> dict:
        """The settings that change the graph: with PadCFG, w is an input, so its value does not."""
        settings = dataclasses.asdict(self)
        if self.guidance is not None:
            settings["guidance"] = "input"
        return settings


def resolve_onnx(
    source: ModelSource,
    *,
    guidance: float | None = defaults.GUIDANCE,
    precision: str = "fp32",
    io: str = "float32",
    progress: Callable[[str], None] | None = None,
) -> Path:
    """A graph for `source` (`trtsr.source.resolve_source`) at its scale and these settings: the graph it is, the
    shipped one, or a cached export."""
    if source.kind is SourceKind.GRAPH:
        return source.path
    if source.kind is SourceKind.ENGINE:
        raise TrtsrError("an engine is not a graph; its graph is the .onnx it was built from", path=source.path)
    request = GraphRequest(scale=source.scale, guidance=guidance, precision=precision, io=io)
    return _shipped_graph(source, request) or cached_export(source, request, progress=progress)


# What the exporter writes, beyond the settings: 2 = the plain (no-PadCFG) path takes the positive branch's pad;
# 3 = the spec carries the graph's probed cost, which sizes its tiles; 4 = the picture keeps RIGHT_RESERVE
# pixels clear of the canvas's right edge.
GRAPH_LAYOUT = 4


def export_key(source: ModelSource, request: GraphRequest) -> str:
    identity = {**source.identity(), "settings": request.key_settings(), "trtsr": __version__,
                "layout": GRAPH_LAYOUT}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def _usable_export(target: Path, request: GraphRequest) -> bool:
    """A finished export: its spec reads, describes this request, and its files are there."""
    spec_file = spec_path_for(target)
    if not target.is_file() or not spec_file.is_file():
        return False
    try:
        spec = ExportSpec.load(spec_file)
    except TrtsrError:
        return False
    data = target.with_name(spec.onnx_data_file) if spec.onnx_data_file else None
    return request.matches(spec) and spec.onnx_file == target.name and (data is None or data.is_file())


def cached_export(source: ModelSource, request: GraphRequest, *, root: Path | None = None,
                  progress: Callable[[str], None] | None = None) -> Path:
    """The cached export of `source` for `request`, exporting it first when there is none."""
    target = exports_dir(root) / f"{export_key(source, request)}.onnx"
    if _usable_export(target, request):
        return target
    writable_cache(target.parent)
    _, extra = source.export_needs()
    try:
        import torch  # noqa: F401

        if source.kind.is_external:
            from trtsr.models.external import import_spandrel

            import_spandrel()
        else:
            from trtsr.models.torchvision_guard import guard

            guard()  # before diffusers, which imports torchvision whenever it is installed
            import diffusers  # noqa: F401
        from trtsr.export.onnx_export import ExportSettings, export_onnx
    except ImportError:
        pad = "no PadCFG" if request.guidance is None else f"guidance {request.guidance:g}"
        shipped = (" (the default model ships x2, x3 and x4 graphs with and without PadCFG, fp32; an engine's fp16 "
                   "graph, other scales and other models are exported)") if source.kind is SourceKind.DEFAULT else ""
        raise MissingDependencyError(
            f"model {source.name!r} at x{request.scale}, {pad}, {request.precision} has no ready graph{shipped}; "
            "exporting it", extra,
        ) from None
    if progress:
        progress(f"exporting {source.name} (x{request.scale}, {request.precision}) once into {target.parent}; "
                 "later runs reuse it")
    settings = ExportSettings(**dataclasses.asdict(request))
    result = export_onnx(source, target, settings, progress=progress)
    if progress:
        data = target.with_name(result.spec.onnx_data_file) if result.spec.onnx_data_file else None
        size = target.stat().st_size + (data.stat().st_size if data is not None else 0)
        progress(f"cached the {source.name} graph: {size_text(size)} in {target.parent}")
    return target


def engine_graph(source: ModelSource, *, guidance: float | None,
                 progress: Callable[[str], None] | None = None) -> Path:
    """The graph an engine for `source` is built from: fp16 with uint8 I/O where it can be exported.

    Without the export extra (a run-only install) the default model's shipped fp32 graph
    (float32 I/O) serves where no fp16 graph is ready, and a warning says so and why; every other
    failure is an error.
    """
    fp16 = GraphRequest(scale=source.scale, guidance=guidance, precision="fp16", io="uint8")
    if source.kind is SourceKind.SPANDREL and source.can_export() and not source.load_external().fp16:
        log.warning("building the engine from the fp32 graph: spandrel says %s does not run in fp16", source.label)
        fp16 = dataclasses.replace(fp16, precision="fp32")
    if not source.kind.is_file and not source.can_export() and _ready_graph(source, fp16) is None:
        log.warning("building the engine from the fp32 graph with float32 I/O (slower than fp16): the fp16 graph "
                    "of %s is exported, which needs the 'export' extra (pip install 'trtsr[export]')", source.name)
        fp16 = GraphRequest(scale=source.scale, guidance=guidance)
    return resolve_onnx(source, guidance=guidance, precision=fp16.precision, io=fp16.io, progress=progress)


def _shipped_graph(source: ModelSource, request: GraphRequest) -> Path | None:
    """The graph shipped in the package that serves `source` and `request`, if one does."""
    if source.kind is SourceKind.DEFAULT:
        for shipped in shipped_graphs():
            if shipped.is_file() and request.matches(ExportSpec.load(spec_path_for(shipped))):
                return shipped
    return None


def _ready_graph(source: ModelSource, request: GraphRequest, root: Path | None = None) -> Path | None:
    """A graph for `source` and `request` that needs no export: shipped, or already in the export cache."""
    shipped = _shipped_graph(source, request)
    if shipped is not None:
        return shipped
    try:
        target = exports_dir(root) / f"{export_key(source, request)}.onnx"
    except TrtsrError:
        return None
    return target if _usable_export(target, request) else None
