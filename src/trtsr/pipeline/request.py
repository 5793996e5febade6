"""One run request, checked once, and the one function that turns it into a session.

`trtsr run`, `trtsr batch`, `Upscaler` and the Ray actor all build a `RunRequest`: the model or
engine, the backend and its settings, scale, guidance and tiles. Building it checks everything
that needs no model loaded, in this order, one line for the first problem: the options' ranges,
then the model, resolved once (`trtsr.source.resolve_source`: its kind, scale, PadCFG and own w),
and the w the run uses, decided once. `open_session` then picks the backend, exports and builds
through the caches where needed, and opens the session.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from trtsr import defaults
from trtsr.backends import BackendSettings, member
from trtsr.defaults import Backend, RunBackend
from trtsr.errors import MissingDependencyError, TrtsrError
from trtsr.guidance import Guidance
from trtsr.pipeline.choose import BackendChoice, choose_backend
from trtsr.runtime.color import check_color_fix
from trtsr.sessions.base import Session
from trtsr.source import ModelSource, SourceKind, resolve_source

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """What a run asks for. Fields:

        model: None or 'default' (the shipped model), 'tiny', 'gendr-pix', a named model
            (`trtsr.catalog.NAMED_MODELS`), a checkpoint (trtsr's GenDR-Pix .safetensors, or any file spandrel
            reads), a diffusers folder, or an exported .onnx.
        engine: a built engine, instead of a model; needs an NVIDIA GPU.
        backend: auto, onnxruntime, torch, tensorrt or tensorrt-rtx (`RunBackend`; `trtsr.pipeline.choose`).
        scale: None = a graph's, engine's or checkpoint's own, else defaults.SCALE; one it cannot do is refused.
        guidance: a `Guidance` (or what `Guidance.of` takes: 'auto', None = no PadCFG, a number).
        tile, overlap: input pixels; None = whole pictures where they fit / the tile's own overlap.
        settings: how each backend runs (`trtsr.backends.BackendSettings`); the chosen one's apply.
        random_weights: allow the presets whose seeded random weights upscale to noise (the API does; the
            command line asks for --random-weights).
        color_fix: None, 'wavelet' or 'adain': take each output's large-scale colour from its input
            (`trtsr.runtime.color`).

    Resolved once, while checking: `source`, the model as `trtsr.source.ModelSource` (kind, scale, PadCFG,
    own w), and `w`, the PadCFG w every picture runs with (None: no PadCFG).
    """

    model: str | Path | None = None
    engine: Path | None = None
    backend: RunBackend = RunBackend.AUTO
    scale: int | None = None
    guidance: Guidance = Guidance.OWN
    tile: int | None = None
    overlap: int | None = None
    settings: BackendSettings = BackendSettings()
    random_weights: bool = True
    color_fix: str | None = None
    source: ModelSource = dataclasses.field(default=None, init=False, compare=False, repr=False)
    w: float | None = dataclasses.field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        put = object.__setattr__.__get__(self)
        put("engine", None if self.engine is None else Path(self.engine))
        put("guidance", Guidance.of(self.guidance))
        put("backend", member(RunBackend, self.backend, "backend"))
        self._check_options()
        if self.engine is not None:
            if self.model is not None:
                raise TrtsrError("give a model or an engine, not both: an engine holds its model")
            if self.backend.backend is not None and not self.backend.backend.runs_engines:
                raise TrtsrError(f"--engine needs a TensorRT backend, not {self.backend}; for ONNX Runtime pass the "
                                 ".onnx as the model, for torch the model itself")
        source = resolve_source(self.model, self.engine, scale=self.scale, guidance=self.guidance,
                                random_weights=self.random_weights)
        if self.backend is RunBackend.TORCH and source.kind is SourceKind.GRAPH:
            raise TrtsrError("the torch backend runs a model (default, a checkpoint or a diffusers folder), not an "
                             ".onnx graph; use the onnxruntime backend (-b onnxruntime) or an engine for the graph",
                             path=source.path)
        put("source", source)
        put("w", source.w(self.guidance))

    def _check_options(self) -> None:
        check_tiles(self.tile, self.overlap)
        check_color_fix(self.color_fix)
        if self.settings.torch.compile and self.backend not in (RunBackend.TORCH, RunBackend.AUTO):
            raise TrtsrError(f"--compile is for the torch backend, not {self.backend}")

    @property
    def scale_out(self) -> int:
        """The scale this run upscales by."""
        return self.source.scale

    def warnings(self) -> list[str]:
        """Lines a run of this request prints before it starts."""
        return self.source.warnings(self.w)

    def on_graph(self, onnx: str | Path) -> RunRequest:
        """This request for the graph `onnx` it resolved to (ONNX Runtime), with the w it runs."""
        guidance = Guidance.OFF if self.w is None else Guidance("w", float(self.w))
        return dataclasses.replace(self, model=str(onnx), engine=None, backend=RunBackend.ONNXRUNTIME, scale=None,
                                   guidance=guidance)


def check_tiles(tile: int | None, overlap: int | None) -> None:
    """Tile and overlap sizes, checked before anything is loaded."""
    if tile is not None and tile < defaults.MIN_TILE:
        raise TrtsrError(f"tile must be at least {defaults.MIN_TILE} input pixels, got {tile}")
    if tile is None:
        from trtsr.cost import memory_budget

        memory_budget()  # a TRTSR_TILE_MEMORY_GB that is no size is one line now, not after the model loads
    if overlap is None:
        return
    if overlap < 0:
        raise TrtsrError(f"overlap must be 0 or more input pixels, got {overlap}")
    largest = defaults.MAX_OVERLAP if tile is None else tile // 2
    if overlap > largest:
        where = f"half the {tile}-pixel tile" if tile is not None else "the largest overlap"
        raise TrtsrError(f"overlap {overlap} is more than {where} ({largest} input pixels)")


def choose(request: RunRequest) -> BackendChoice:
    """The backend for `request`: an engine runs on the backend that built it; an .onnx graph on ONNX Runtime
    or an engine, never in torch. An engine backend that cannot run here is refused in one line."""
    source = request.source
    if source.kind is SourceKind.ENGINE:
        return BackendChoice(source.built_with, "an engine was given", request.settings.engine)
    choice = choose_backend(request.backend, settings=request.settings)
    if choice.backend is Backend.TORCH and source.kind is SourceKind.GRAPH:
        return BackendChoice(Backend.ONNXRUNTIME, f"{choice.reason.split(';')[0]}; an .onnx graph runs on ONNX "
                             "Runtime", request.settings.onnxruntime)
    return choice


def open_session(request: RunRequest,
                 progress: Callable[[str], None] | None = None) -> tuple[Session, BackendChoice]:
    """(the session that serves `request`, the backend choice: which and why), in one pass down: choose the
    backend (refused before any slow work where it cannot run), resolve or export the graph, then open the torch
    module, the graph in ONNX Runtime, or the cached engine (built once), whose file is read once."""
    from trtsr.gpu import detect_gpu
    from trtsr.pipeline.choose import onnxruntime_has_cuda
    from trtsr.pipeline.resolve import engine_graph, resolve_onnx

    say = progress or (lambda message: log.info(message))
    choice = choose(request)
    source, w, settings = request.source, request.w, choice.settings
    if choice.backend is Backend.TORCH:
        try:
            from trtsr.sessions.torch_session import TorchSession
        except ImportError:
            raise MissingDependencyError("the torch backend", "export") from None
        return TorchSession(source, w=w, settings=settings), choice
    if choice.backend is Backend.ONNXRUNTIME:
        from trtsr.sessions.onnxruntime_session import OnnxRuntimeSession

        # ONNX Runtime's CUDA provider takes the fp16 graph with uint8 I/O, as engines do; its CPU the fp32 one
        on_gpu = settings.cuda and detect_gpu() is not None and onnxruntime_has_cuda()
        graph = (engine_graph if on_gpu else resolve_onnx)(source, guidance=w, progress=say)
        return OnnxRuntimeSession(graph, settings), choice
    from trtsr.sessions.engine_session import EngineSession

    engine = source.path
    if source.kind is not SourceKind.ENGINE:
        from trtsr.engines.builder import BuildSettings
        from trtsr.engines.cache import cached_engine

        graph = engine_graph(source, guidance=w, progress=say)
        cached = cached_engine(graph, BuildSettings(profiles=settings.profiles, backend=choice.backend),
                               progress=say)
        engine = cached.loaded or cached.engine_path  # a reused entry was read and checked once, there
    return EngineSession.open(engine, settings.runtime), choice
