"""One run request, checked once, and the one function that turns it into a session.

`trtsr run`, `trtsr batch`, `Upscaler` and the Ray actor all build a `RunRequest`: the model or
engine, the backend, scale, guidance, profiles, runtime settings and tiles. Building it checks
everything that needs no model loaded, in this order, one line for the first problem: the
options' ranges, the model's name or file, and for a graph or engine given by path its own
scale and PadCFG (read from its spec or metadata, once). `open_session` then picks the
backend, exports and builds through the caches where needed, and opens the session.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trtsr import defaults
from trtsr.errors import MissingDependencyError, TrtsrError
from trtsr.guidance import Guidance
from trtsr.pipeline.choose import ENGINE_BACKENDS, BackendChoice, choose_backend
from trtsr.runtime.color import check_color_fix

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class GivenFile:
    """A graph or an engine given by path, as its spec or metadata describes it (read without loading it)."""

    what: str  # "graph" or "engine"
    path: Path
    scale: int
    guidance: float | None  # its PadCFG w; None without PadCFG
    takes_guidance: bool  # w is an input
    model: str  # the model it was made from

    @classmethod
    def read(cls, engine: Path | None, model: str) -> GivenFile | None:
        """The engine, or the model when it is an existing .onnx; None for a model name or checkpoint (a missing
        file is reported where the request checks it)."""
        if engine is not None and engine.is_file():
            from trtsr.engines.metadata import EngineMetadata

            meta = EngineMetadata.for_engine(engine)
            return cls("engine", engine, meta.scale, meta.guidance, meta.guidance_input is not None, meta.model)
        if engine is None and model.endswith(".onnx") and Path(model).is_file():
            from trtsr.spec import ExportSpec

            spec = ExportSpec.for_graph(model)
            return cls("graph", Path(model), spec.scale, spec.guidance, spec.guidance_input is not None, spec.model)
        return None


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """What a run asks for. Fields:

        model: 'default', 'tiny', 'gendr-pix', a named model (`trtsr.catalog.NAMED_MODELS`), a checkpoint (trtsr's
            GenDR-Pix .safetensors, or any file spandrel reads), a diffusers folder, or an exported .onnx.
        engine: a built engine; overrides `model` and needs an NVIDIA GPU.
        backend: auto, onnxruntime, torch, tensorrt or tensorrt-rtx (`trtsr.pipeline.choose`).
        scale: None = a graph's or engine's own, else defaults.SCALE; one it cannot do is refused.
        guidance: a `Guidance` (or what `Guidance.of` takes: 'auto', None = no PadCFG, a number).
        tile, overlap: input pixels; None = whole pictures where they fit / the tile's own overlap.
        profiles: engine profiles when the model is built into a cached engine (default 1080p, 4k, 8k).
        runtime: `trtsr.runtime.RuntimeSettings` for engines; torch_settings: `TorchSettings` for torch.
        threads: ONNX Runtime intra-op threads (None: its own choice); on_cpu: ONNX Runtime without CUDA.
        random_weights: allow the presets whose seeded random weights upscale to noise (the API does; the
            command line asks for --random-weights).
        color_fix: None, 'wavelet' or 'adain': take each output's large-scale colour from its input
            (`trtsr.runtime.color`).

    `given` is the graph or engine given by path, as read while checking; `model_scale` the scale a model other
    than GenDR-Pix upscales by (a named one's, or what its checkpoint says); `scale_out` the scale that runs.
    """

    model: str = "default"
    engine: Path | None = None
    backend: str = "auto"
    scale: int | None = None
    guidance: Guidance = Guidance.OWN
    tile: int | None = None
    overlap: int | None = None
    profiles: tuple[str, ...] | None = None
    runtime: Any = None
    torch_settings: Any = None
    threads: int | None = None
    on_cpu: bool = False
    random_weights: bool = True
    color_fix: str | None = None
    given: GivenFile | None = dataclasses.field(default=None, init=False, compare=False, repr=False)
    model_scale: int | None = dataclasses.field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        put = object.__setattr__.__get__(self)
        put("model", str(self.model))
        put("engine", None if self.engine is None else Path(self.engine))
        put("guidance", Guidance.of(self.guidance))
        self._check_options()
        if self.engine is not None:
            if self.backend in ("onnxruntime", "torch"):
                raise TrtsrError(f"--engine needs a TensorRT backend, not {self.backend}; for ONNX Runtime pass the "
                                 ".onnx as the model, for torch the model itself")
            if not self.engine.is_file():
                raise TrtsrError("engine not found", path=self.engine)
        else:
            check_model_name(self.model, random_weights=self.random_weights)
            put("model_scale", external_scale(self.model, self.scale, self.guidance))
        if self.backend == "torch" and self.model.endswith(".onnx") and self.engine is None:
            raise TrtsrError("the torch backend runs a model (default, a checkpoint or a diffusers folder), not an "
                             ".onnx graph; use the onnxruntime backend (-b onnxruntime) or an engine for the graph",
                             path=self.model)
        given = GivenFile.read(self.engine, self.model)
        put("given", given)
        if given is None:
            return
        if given.model in defaults.RANDOM_PRESETS and not self.random_weights:
            raise TrtsrError(f"this {given.what} was made from the {given.model!r} preset, whose seeded random "
                             "weights upscale to noise; allow random weights (--random-weights) to run it anyway",
                             path=given.path)
        if self.scale is not None and self.scale != given.scale:
            raise TrtsrError(f"this {given.what} upscales x{given.scale}, not x{self.scale}; use one made for "
                             f"x{self.scale}, or leave the scale to it (drop -s)", path=given.path)
        try:
            self.guidance.feed(given.guidance, given.takes_guidance, given.what)
        except TrtsrError as exc:
            raise TrtsrError(exc.reason, path=given.path) from None

    def _check_options(self) -> None:
        if self.backend not in defaults.RUN_BACKENDS:
            raise TrtsrError(f"unknown backend {self.backend!r}; use one of {', '.join(defaults.RUN_BACKENDS)}")
        if self.scale is not None and self.scale not in defaults.SCALES:
            raise TrtsrError(f"scale must be one of {', '.join(map(str, defaults.SCALES))}, got {self.scale}")
        check_tiles(self.tile, self.overlap)
        check_color_fix(self.color_fix)
        if getattr(self.torch_settings, "compile", False) and self.backend not in ("torch", "auto"):
            raise TrtsrError(f"--compile is for the torch backend, not {self.backend}")
        if self.threads is not None and self.threads < 1:
            raise TrtsrError(f"threads must be at least 1, got {self.threads}")

    @property
    def scale_out(self) -> int:
        """The scale this run upscales by."""
        if self.given is not None:
            return self.given.scale
        if self.model_scale is not None:
            return self.model_scale
        return defaults.SCALE if self.scale is None else self.scale

    @property
    def w(self) -> float | None:
        """The w a model name or checkpoint runs with (None: no PadCFG); a graph or engine runs its own unless
        the request names one."""
        if self.given is not None:
            return self.guidance.feed(self.given.guidance, self.given.takes_guidance) or self.given.guidance
        return self.guidance.for_model(self.model, self.scale_out)

    @property
    def session_guidance(self) -> Guidance:
        """What the opened session is held to: the asked guidance for a graph or engine given by path; the w the
        graph was resolved for (or no PadCFG) for a model name or checkpoint, whose graph may take w as an
        input with another default (a cached export first made for another w)."""
        if self.given is not None:
            return self.guidance
        w = self.w
        return Guidance.OFF if w is None else Guidance("w", float(w))

    def warnings(self) -> list[str]:
        """Lines a run of this request prints before it starts."""
        lines = []
        made_from = self.given.model if self.given is not None else self.model
        if self.engine is None:
            warning = self.guidance.warning(made_from)
            if warning:
                lines.append(warning)
        if made_from in defaults.RANDOM_PRESETS:
            lines.append(f"{made_from} has seeded random weights: the output is noise")
        return lines

    def on_graph(self, onnx: str | Path) -> RunRequest:
        """This request for the graph `onnx` it resolved to (ONNX Runtime), with the w it would have run."""
        return dataclasses.replace(self, model=str(onnx), engine=None, backend="onnxruntime", scale=None,
                                   guidance=self.session_guidance)


def check_tiles(tile: int | None, overlap: int | None) -> None:
    """Tile and overlap sizes, checked before anything is loaded."""
    if tile is not None and tile < defaults.MIN_TILE:
        raise TrtsrError(f"tile must be at least {defaults.MIN_TILE} input pixels, got {tile}")
    if overlap is None:
        return
    if overlap < 0:
        raise TrtsrError(f"overlap must be 0 or more input pixels, got {overlap}")
    largest = defaults.MAX_OVERLAP if tile is None else tile // 2
    if overlap > largest:
        where = f"half the {tile}-pixel tile" if tile is not None else "the largest overlap"
        raise TrtsrError(f"overlap {overlap} is more than {where} ({largest} input pixels)")


def external_scale(model: str, scale: int | None, guidance: Guidance) -> int | None:
    """For a model other than GenDR-Pix, the scale it runs at (a named model's from its table; a checkpoint's from
    the file, which is loaded and checked here, before any slow work), refusing guidance, which it has none of;
    None for GenDR-Pix."""
    from trtsr.catalog import NAMED_MODELS, is_external, named_scale

    if not is_external(model):
        return None
    name = NAMED_MODELS[model].name if model in NAMED_MODELS else Path(model).name
    if guidance.kind == "w":
        raise TrtsrError(f"{name} is not a diffusion model and has no PadCFG guidance; run it without guidance "
                         "(guidance=None; on the command line, drop -g)")
    if model in NAMED_MODELS:
        return named_scale(NAMED_MODELS[model], scale)
    try:
        from trtsr.models.external import load_external
    except ImportError:
        raise MissingDependencyError("a checkpoint other than GenDR-Pix (spandrel loads it)", "models") from None
    return load_external(model, scale).scale


def check_model_name(model: str, *, random_weights: bool = True) -> None:
    """A model is a known name, an existing file or folder; checked before any export or load.

    With `random_weights` False a preset with seeded random weights is refused: it upscales to noise.
    """
    if Path(model).exists():
        return
    if model in defaults.RANDOM_PRESETS and not random_weights:
        raise TrtsrError(f"the {model!r} preset has seeded random weights, so its output is noise (it exists for "
                         "export, engine and benchmark tests); allow random weights (--random-weights) to run it "
                         "anyway, or use the default model")
    from trtsr.catalog import NAMED_MODELS

    if model in defaults.MODEL_NAMES or model in NAMED_MODELS:
        return
    names = ", ".join([*defaults.MODEL_NAMES, *NAMED_MODELS])
    raise TrtsrError(f"no such model file or folder (names: {names})", path=model)


def choose(request: RunRequest) -> BackendChoice:
    """The backend for `request` ('engine' for an engine given by path); an .onnx graph runs on ONNX Runtime
    or an engine, never in torch. An engine backend that cannot run here is refused in one line."""
    if request.engine is not None:
        return BackendChoice("engine", "an engine was given")
    choice = choose_backend(request.backend)
    if choice.backend == "torch" and request.model.endswith(".onnx"):
        return BackendChoice("onnxruntime", f"{choice.reason.split(';')[0]}; an .onnx graph runs on ONNX Runtime")
    return choice


def open_session(request: RunRequest, progress: Callable[[str], None] | None = None) -> tuple[Any, str]:
    """(the session that serves `request`, why its backend), in one pass down: choose the backend (refused
    before any slow work where it cannot run), resolve or export the graph, then open the torch module, the
    graph in ONNX Runtime, or the cached engine (built once), whose file is read once."""
    from trtsr.gpu import detect_gpu
    from trtsr.pipeline.choose import onnxruntime_has_cuda
    from trtsr.pipeline.resolve import engine_graph, resolve_onnx

    say = progress or (lambda message: log.info(message))
    choice = choose(request)
    backend, model, scale, w = choice.backend, request.model, request.scale_out, request.w
    graph = None
    # engines, and ONNX Runtime's CUDA provider, take the fp16 graph with uint8 I/O (fp32 where it cannot be
    # exported); ONNX Runtime on the CPU the fp32 one
    on_gpu = backend in ENGINE_BACKENDS or (backend == "onnxruntime" and not request.on_cpu
                                             and detect_gpu() is not None and onnxruntime_has_cuda())
    if on_gpu:
        graph = engine_graph(model, scale=scale, guidance=w, progress=say)
    elif backend == "onnxruntime":
        graph = resolve_onnx(model, scale=scale, guidance=w, progress=say)
    if backend == "torch":
        try:
            from trtsr.models.torch_session import TorchSession
        except ImportError:
            raise MissingDependencyError("the torch backend", "export") from None
        return TorchSession(model, scale=scale, guidance=w, settings=request.torch_settings), choice.reason
    from trtsr.runtime.sessions import EngineSession, OnnxRuntimeSession

    if backend == "onnxruntime":
        return OnnxRuntimeSession(graph, use_cuda=not request.on_cpu, threads=request.threads), choice.reason
    engine = request.engine
    if engine is None:
        from trtsr.engines.builder import BuildSettings
        from trtsr.engines.cache import cached_engine

        cached = cached_engine(graph, BuildSettings(profiles=tuple(request.profiles or defaults.PROFILES),
                                                    backend=backend), progress=say)
        engine = cached.loaded or cached.engine_path  # a reused entry was read and checked once, there
    return EngineSession.open(engine, request.runtime), choice.reason
