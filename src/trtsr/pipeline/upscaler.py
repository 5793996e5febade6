"""`Upscaler`: the Python API. Images in, upscaled images out, on a TensorRT engine or ONNX Runtime.

It picks (and if needed exports and builds) the graph or engine for a model through
`pipeline.resolve` and the engine cache, then runs it through a runtime session, with
tiling, small-input padding and the out-of-memory retry on top.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from trtsr import defaults
from trtsr.errors import MissingDependencyError, OutOfMemory, TooLarge, TrtsrError
from trtsr.gpu import detect_gpu
from trtsr.pipeline.choose import ENGINE_BACKENDS, BackendChoice, choose_backend, onnxruntime_has_cuda
from trtsr.pipeline.resolve import engine_graph, resolve_onnx
from trtsr.runtime.images import Picture, from_array, picture_from_pil, to_array
from trtsr.runtime.sessions import EngineSession, OnnxRuntimeSession
from trtsr.runtime.settings import RuntimeSettings
from trtsr.runtime.tiling import run_tiled

log = logging.getLogger(__name__)


class Upscaler:
    """Upscale images with GenDR-Pix.

    Args:
        model: 'default', 'tiny', 'gendr-pix', a checkpoint, a diffusers folder, or an exported .onnx.
        engine: a built engine (MODEL.engine); overrides `model` and needs an NVIDIA GPU.
        backend: 'auto' (an engine where a TensorRT backend runs on this GPU, else PyTorch on CUDA where
            installed, else ONNX Runtime), 'onnxruntime', 'torch', 'tensorrt' or 'tensorrt-rtx'.
            `backend_name` says which ran and `backend_reason` why (`trtsr.pipeline.choose`).
        scale, guidance: scale None (the default) is a graph's or engine's own, else 4; one it cannot do is
            refused. guidance None = no PadCFG; 'auto' (the default) is the model's own w: for the shipped default
            model 1.4 at x2, 1.8 at x3 and 2.2 at x4 (`defaults.DEFAULT_MODEL_GUIDANCE`), for other models 1.8,
            for a graph or engine the w it was exported with. A w a graph or engine cannot honour is refused.
        tile: input tile side for tiled runs; None = whole image when it fits (engines: the largest
            profile; ONNX Runtime: 128).
        overlap: input pixels neighbouring tiles share, blended with a raised-cosine window; None follows the
            tile (16, or half a smaller tile). An overlap above half the tile in use is refused.
        profiles: engine profiles when `model` is turned into a cached engine (default 1080p, 4k, 8k).
        runtime: how an engine runs (`trtsr.runtime.RuntimeSettings`: runtime cache, TensorRT-RTX kernel
            specialisation and CUDA graphs, activation memory per profile); None = the safe defaults.
        torch_settings: how the torch backend runs (`trtsr.models.torch_session.TorchSettings`: device,
            precision, torch.compile, attention kernel); None = CUDA in bf16, eager, PyTorch's attention.

    Thread safety: one Upscaler may be shared between threads; its calls run one at a time
    (one engine context and one set of buffers). For parallel work create one per thread.
    Use it as a context manager, or call `close()`, to free GPU memory and save caches.
    """

    def __init__(
        self,
        model: str | Path = "default",
        *,
        engine: str | Path | None = None,
        backend: str = "auto",
        scale: int | None = None,
        guidance: float | str | None = defaults.AUTO_GUIDANCE,
        tile: int | None = None,
        overlap: int | None = None,
        profiles: tuple[str, ...] | None = None,
        runtime: RuntimeSettings | None = None,
        torch_settings=None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        # A graph or an engine brings its own scale and w; a model name or checkpoint takes them from here.
        brings_own = engine is not None or str(model).endswith(".onnx")
        asked_scale = scale
        scale = defaults.SCALE if scale is None else scale
        if guidance == defaults.AUTO_GUIDANCE and not brings_own:
            guidance = defaults.guidance_for(str(model), scale)
        check_run_options(backend=backend, scale=scale, guidance=guidance, tile=tile, overlap=overlap)
        if engine is None:
            check_model_name(str(model))
        if engine is None and guidance != defaults.AUTO_GUIDANCE:
            warning = defaults.guidance_warning(str(model), guidance)
            if warning:
                log.warning(warning)
        if guidance not in (None, defaults.AUTO_GUIDANCE) and float(guidance) == 1.0:
            guidance = None  # w = 1 is the positive pass alone: the batch-1 graph
        say = progress or (lambda message: log.info(message))
        if engine is not None:
            if backend in ("onnxruntime", "torch"):
                raise TrtsrError(f"--engine needs a TensorRT backend, not {backend}; for ONNX Runtime pass the .onnx "
                                 "as the model, for torch the model itself")
            session = EngineSession(engine, runtime)
            self.backend_reason = "an engine was given"
        else:
            choice = self._choose(str(model), backend)
            self.backend_reason = choice.reason
            # what to export or pick (a graph given by path is taken as it is, and checked once open)
            wanted = None if guidance == defaults.AUTO_GUIDANCE else guidance
            if choice.backend in ENGINE_BACKENDS:
                session = self._engine_session(str(model), choice.backend, scale, wanted, profiles, say, runtime)
            elif choice.backend == "torch":
                try:
                    from trtsr.models.torch_session import TorchSession
                except ImportError:
                    raise MissingDependencyError("the torch backend", "export") from None
                session = TorchSession(str(model), scale=scale, guidance=wanted, settings=torch_settings)
            elif detect_gpu() is not None and onnxruntime_has_cuda():
                # the CUDA provider: the fp16 graph with uint8 I/O, as engines take (fp32 where it cannot be exported)
                session = OnnxRuntimeSession(engine_graph(str(model), scale=scale, guidance=wanted, progress=say))
            else:
                session = OnnxRuntimeSession(resolve_onnx(str(model), scale=scale, guidance=wanted, progress=say))
        made_from = _made_from(session, str(model))
        if made_from in defaults.RANDOM_PRESETS:
            log.warning("%s has seeded random weights: the output is noise", made_from)
        try:
            if asked_scale is not None and asked_scale != session.scale:
                what = "engine" if engine is not None else "graph"
                raise TrtsrError(f"this {what} upscales x{session.scale}, not x{asked_scale}; use one made for "
                                 f"x{asked_scale} or drop --scale")
            self._attach(session, tile, overlap, guidance)
        except TrtsrError:
            session.close()  # opened here: freed here
            raise

    @classmethod
    def from_session(cls, session, *, tile: int | None = None, overlap: int | None = None,
                     guidance: float | None = None) -> Upscaler:
        """An Upscaler around a session you opened (an EngineSession, an OnnxRuntimeSession, or one of your
        own with the same `infer`, `scale`, `io`, `sizes`, `max_input`, `backend_name` and `close`).
        `guidance` None runs the session's own default w."""
        check_run_options(tile=tile, overlap=overlap, guidance=guidance)
        upscaler = cls.__new__(cls)
        upscaler.backend_reason = "a session was given"
        upscaler._attach(session, tile, overlap, defaults.AUTO_GUIDANCE if guidance is None else guidance)
        return upscaler

    def _attach(self, session, tile: int | None, overlap: int | None, guidance: float | str | None) -> None:
        """Take `session`; `guidance` is 'auto' (the session's own w), None (no PadCFG) or a w it must honour."""
        self._lock = threading.Lock()
        self.tile = tile
        self._session = session
        largest = self._tile_size() // 2
        if overlap is not None and overlap > largest:
            raise TrtsrError(f"overlap {overlap} is more than half the {self._tile_size()}-pixel tiles this run uses "
                             f"({session.backend_name}); use --overlap {largest} or less, or a larger --tile")
        self.overlap = min(defaults.OVERLAP, largest) if overlap is None else max(0, int(overlap))
        what = "engine" if isinstance(session, EngineSession) else "graph"
        # None: the session's own w (or none, without PadCFG)
        self._guidance = honoured_guidance(getattr(session, "guidance", None),
                                           getattr(session, "guidance_input", None) is not None, guidance, what)
        self.backend_name: str = session.backend_name
        self.scale: int = session.scale

    @staticmethod
    def _choose(model: str, backend: str) -> BackendChoice:
        """The backend for `model`; an .onnx graph runs on ONNX Runtime or an engine, never in torch."""
        is_graph = model.endswith(".onnx")
        if backend == "torch" and is_graph:
            raise TrtsrError("the torch backend runs a model (default, a checkpoint or a diffusers folder), not an "
                             ".onnx graph; use -b onnxruntime or an engine for the graph", path=model)
        choice = choose_backend(backend)
        if choice.backend == "torch" and is_graph:
            return BackendChoice("onnxruntime", f"{choice.reason.split(';')[0]}; an .onnx graph runs on ONNX Runtime")
        return choice

    @staticmethod
    def _engine_session(model, backend, scale, guidance, profiles, say, runtime=None) -> EngineSession:
        from trtsr.engines.builder import BuildSettings
        from trtsr.engines.cache import cached_engine
        from trtsr.gpu import detect_gpu

        gpu = detect_gpu()
        if gpu is None:  # before any export or build: they would be for nothing
            raise TrtsrError(f"--backend {backend} runs engines on an NVIDIA GPU and none is visible; "
                             "use --backend onnxruntime")
        from trtsr.engines.backend import load_backend

        load_backend(backend).check_runs_on(gpu)
        onnx = engine_graph(model, scale=scale, guidance=guidance, progress=say)
        settings = BuildSettings(profiles=tuple(profiles or defaults.PROFILES), backend=backend)
        cached = cached_engine(onnx, settings, progress=say)
        return EngineSession(cached.engine_path, runtime)

    # -- public API ---------------------------------------------------------------------------------
    def upscale(self, image):
        """Upscale a numpy array (HxW, HxWx3 or HxWx4; uint8 or uint16), a PIL image, or the Picture
        `trtsr.runtime.read_image` returns; the same kind comes back."""
        if isinstance(image, Picture):
            return self.upscale_picture(image)
        try:
            from PIL import Image
        except ImportError:  # pillow is a base dependency; only arrays work without it
            Image = None
        if Image is not None and isinstance(image, Image.Image):
            if 0 in image.size:
                raise TrtsrError(f"the image is empty ({image.size[0]}x{image.size[1]} pixels)")
            # every mode as the command line reads it: CMYK and float pictures come back RGB, not RGBA
            result = to_array(self.upscale_picture(picture_from_pil(image, image.info.get("icc_profile"))))
            return Image.fromarray(result)
        if not isinstance(image, np.ndarray):
            raise TrtsrError(f"upscale takes a numpy array, a PIL image or a Picture, not {type(image).__name__}")
        return to_array(self.upscale_picture(from_array(image)))

    def upscale_picture(self, picture: Picture, progress: Callable[[int, int], None] | None = None) -> Picture:
        return self.start(picture, progress).result()

    def start(self, picture: Picture, progress: Callable[[int, int], None] | None = None) -> UpscaleJob:
        """Begin upscaling `picture`; `result()` of the job waits for it and returns the upscaled Picture.

        On an engine, a picture that runs whole is queued and this returns at once, so the next picture's
        copy to the GPU overlaps this one's run (start the next, then ask for this one's result). Tiled
        pictures, ONNX Runtime and sessions without `submit` are done before this returns.
        """
        with self._lock:
            if self._session is None:
                raise TrtsrError("this Upscaler is closed")
            rgb = picture.rgb
            queued, failure = self._queue_whole(rgb)
            if queued is None:
                return UpscaleJob(self, picture, progress, value=self._upscale_rgb(rgb, progress, failure))
            job = UpscaleJob(self, picture, progress, pending=queued)
            if getattr(queued, "ready", False):  # a session that ran it already (ONNX Runtime)
                self._collect(job)
            return job

    def _finish(self, job: UpscaleJob) -> Picture:
        picture = job.picture
        if job.value is None:
            with self._lock:
                if self._session is None:
                    raise TrtsrError("this Upscaler is closed")
                self._collect(job)
        alpha = None if picture.alpha is None else _resize_plane(picture.alpha, self.scale)
        return Picture(job.value, alpha, picture.grayscale, picture.bits, picture.icc_profile)

    def _collect(self, job: UpscaleJob) -> None:
        """The queued run's pixels onto the job (under the lock); out of memory there: tiles, as for any run."""
        height, width = job.picture.rgb.shape[:2]
        try:
            out = job.pending.result().astype(np.float32)[: height * self.scale, : width * self.scale]
            job.value = np.clip(out, 0.0, 255.0)
        except (OutOfMemory, TooLarge) as exc:
            job.value = self._upscale_rgb(job.picture.rgb, job.progress, whole_failed=exc)
        job.finished_at = time.perf_counter()

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    def __enter__(self) -> Upscaler:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------
    def _session_input(self, lr: np.ndarray) -> np.ndarray:
        """`lr` in the session's I/O type, edge-padded up to the graph's minimum size where below it (the
        result is cropped back)."""
        session = self._session
        if session.io == "uint8":
            lr = np.clip(np.rint(lr), 0, 255).astype(np.uint8)
        else:
            lr = lr.astype(np.float32, copy=False)
        height, width = lr.shape[:2]
        smallest = session.sizes.minimum
        if height < smallest or width < smallest:
            lr = np.pad(lr, ((0, max(0, smallest - height)), (0, max(0, smallest - width)), (0, 0)), mode="edge")
        return np.ascontiguousarray(lr)

    def _infer(self, lr: np.ndarray) -> np.ndarray:
        height, width = lr.shape[:2]
        out = self._session.infer(self._session_input(lr), guidance=self._guidance).astype(np.float32)
        return out[: height * self.scale, : width * self.scale]

    def _fits_engine(self, height: int, width: int) -> bool:
        max_input = self._session.max_input
        return max_input is not None and self.tile is None and height <= max_input[0] and width <= max_input[1]

    def _runs_whole(self, height: int, width: int) -> tuple[bool, int]:
        """(does the picture run in one piece, the tile size otherwise)."""
        tile = self._tile_size()
        return self._fits_engine(height, width) or (height <= tile and width <= tile), tile

    def _queue_whole(self, rgb: np.ndarray) -> tuple[object | None, Exception | None]:
        """(the session's Pending for `rgb` in one piece, None) or (None, why not): None when it runs tiled or
        the session cannot queue; the error when queueing the whole picture failed for memory or size."""
        submit = getattr(self._session, "submit", None)
        if submit is None or not self._runs_whole(*rgb.shape[:2])[0]:
            return None, None
        try:
            return submit(self._session_input(rgb), guidance=self._guidance), None
        except (OutOfMemory, TooLarge) as exc:
            return None, exc

    def _tile_size(self) -> int | None:
        if self.tile is not None:
            return self.tile
        max_input = self._session.max_input
        return defaults.ONNXRUNTIME_TILE if max_input is None else min(max_input)

    def _upscale_rgb(self, rgb: np.ndarray, progress, whole_failed: Exception | None = None) -> np.ndarray:
        """`rgb` upscaled, whole or in tiles, halving the tile after each out-of-memory; `whole_failed`: the
        whole picture already failed for memory (or fit no profile) when it was queued: start with tiles."""
        height, width = rgb.shape[:2]
        _, tile = self._runs_whole(height, width)
        fits_engine = self._fits_engine(height, width)
        failure = whole_failed
        while True:
            if failure is not None:
                current = max(height, width) if fits_engine else tile
                tile = max(current // 2, self._session.sizes.minimum * 2)
                if tile >= current or tile < 16:
                    raise TrtsrError(f"out of memory even at {current}-pixel tiles: {failure}") from None
                log.warning("%s; retrying with %d-pixel tiles", failure, tile)
                fits_engine, failure = False, None
            try:
                if fits_engine or (height <= tile and width <= tile):
                    out = self._infer(rgb)
                else:
                    out = run_tiled(rgb, self._infer, scale=self.scale, tile=tile,
                                    overlap=min(self.overlap, tile // 2), progress=progress)  # smaller after OOM
                return np.clip(out, 0.0, 255.0)
            except (OutOfMemory, TooLarge) as exc:
                failure = exc


class UpscaleJob:
    """One picture under way (`Upscaler.start`); `result()` waits for it and returns the upscaled Picture."""

    def __init__(self, upscaler: Upscaler, picture: Picture, progress, *, pending=None,
                 value: np.ndarray | None = None) -> None:
        self._upscaler, self.picture, self.progress = upscaler, picture, progress
        self.pending, self.value = pending, value
        # time.perf_counter() when the pixels were ready (None while queued)
        self.finished_at: float | None = None if value is None else time.perf_counter()

    @property
    def done(self) -> bool:
        """Finished inside `start` (tiled, ONNX Runtime, or a session that cannot queue)."""
        return self.value is not None

    def result(self) -> Picture:
        return self._upscaler._finish(self)


def _resize_plane(plane: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic resize of one float plane (alpha), done in 32-bit float to keep 16-bit depth."""
    from PIL import Image

    height, width = plane.shape
    resized = Image.fromarray(plane.astype(np.float32), mode="F").resize((width * scale, height * scale),
                                                                         Image.Resampling.BICUBIC)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 255.0)


def _made_from(session, model: str) -> str:
    """The model a session's graph or engine was made from (its spec or metadata says), else `model`."""
    for record in (getattr(session, "spec", None), getattr(session, "metadata", None)):
        if getattr(record, "model", None):
            return str(record.model)
    return model


def made_for(engine: Path | None, model: str) -> tuple[str, Path, int, float | None, bool, str] | None:
    """(what, path, scale, PadCFG w or None, takes w as an input, the model it was made from) of an engine or .onnx
    graph given by path, read from its metadata or spec without loading it; None for a model name or checkpoint
    (or a missing file, which is reported where it is opened)."""
    if engine is not None and engine.is_file():
        from trtsr.engines.metadata import EngineMetadata

        meta = EngineMetadata.for_engine(engine)
        return "engine", engine, meta.scale, meta.guidance, meta.guidance_input is not None, meta.model
    if engine is None and model.endswith(".onnx") and Path(model).is_file():
        from trtsr.spec import ExportSpec, spec_path_for

        spec = ExportSpec.load(spec_path_for(Path(model)))
        return "graph", Path(model), spec.scale, spec.guidance, spec.guidance_input is not None, spec.model
    return None


def check_given_model(engine: Path | None, model: str, *, scale: int | None, guidance: float | None,
                      no_padcfg: bool, random_weights: bool) -> tuple[int | None, float | str | None]:
    """What `trtsr run` and `trtsr batch` check before any work about the model they were given, and the
    (scale, guidance) a run asks for: a graph's or engine's own scale; -g, --no-padcfg or random weights it
    cannot honour refused in one line naming the file. `guidance` None means none given (its own w)."""
    if no_padcfg and guidance is not None and float(guidance) != 1.0:
        raise TrtsrError(f"--no-padcfg and -g {guidance:g} contradict each other; give one of them")
    asked = None if no_padcfg else (defaults.AUTO_GUIDANCE if guidance is None else guidance)
    made = made_for(engine, model)
    if made is None:
        return scale, asked
    what, path, built_scale, built_w, takes_w, source = made
    if source in defaults.RANDOM_PRESETS and not random_weights:
        raise TrtsrError(f"this {what} was made from the {source!r} preset, whose seeded random weights upscale to "
                         "noise; pass --random-weights to run it anyway", path=path)
    if scale is not None and scale != built_scale:
        raise TrtsrError(f"this {what} upscales x{built_scale}, not x{scale}; use one made for x{scale} or drop "
                         "--scale", path=path)
    try:
        honoured_guidance(built_w, takes_w, asked, what)
    except TrtsrError as exc:
        raise TrtsrError(exc.reason, path=path) from None
    return built_scale, asked


def honoured_guidance(built: float | None, takes_input: bool, asked: float | str | None, what: str = "graph"
                      ) -> float | None:
    """The w to pass a graph or engine for what the run `asked` ('auto': its own; None: no PadCFG; a number), or
    None for its own; one line when it cannot honour that (`built`: its PadCFG w, None without PadCFG;
    `takes_input`: w is an input, so every w runs)."""
    if asked == defaults.AUTO_GUIDANCE:
        return None
    if asked is not None and float(asked) == 1.0:
        asked = None  # w = 1 is the positive pass alone: no PadCFG
    if asked is None:
        if built is None:
            return None
        raise TrtsrError(f"this {what} has PadCFG (w = {built:g}{', an input' if takes_input else ''}); it cannot run "
                         "without PadCFG: use one exported with --no-padcfg, or drop --no-padcfg / -g 1")
    if built is None:
        raise TrtsrError(f"this {what} has no PadCFG; it cannot run with guidance {float(asked):g}: use one exported "
                         "with PadCFG, or drop -g")
    if float(asked) == float(built):
        return None
    if takes_input:
        return float(asked)
    raise TrtsrError(f"this {what} has PadCFG with w = {built:g} built in; it cannot run with guidance "
                     f"{float(asked):g}: export one that takes w as an input (the default), or drop -g")


def check_run_options(*, backend: str = "auto", scale: int = defaults.SCALE, guidance: float | str | None = None,
                      tile: int | None = None, overlap: int | None = None) -> None:
    """Every option of a run that can be checked without loading anything; one line for the first bad one."""
    if backend not in defaults.RUN_BACKENDS:
        raise TrtsrError(f"unknown backend {backend!r}; use one of {', '.join(defaults.RUN_BACKENDS)}")
    if scale not in defaults.SCALES:
        raise TrtsrError(f"scale must be one of {', '.join(map(str, defaults.SCALES))}, got {scale}")
    if guidance == defaults.AUTO_GUIDANCE:
        guidance = None  # the model's own w, checked when the model is known
    elif isinstance(guidance, str):
        raise TrtsrError(f"guidance must be a number or {defaults.AUTO_GUIDANCE!r}, got {guidance!r}")
    defaults.check_guidance(guidance)
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


def check_model_name(model: str, *, random_weights: bool = True) -> None:
    """A model is a known name, an existing file or folder; checked before any export or load.

    With `random_weights` False a preset with seeded random weights is refused: it upscales to noise.
    """
    if Path(model).exists():
        return
    if model in defaults.RANDOM_PRESETS and not random_weights:
        raise TrtsrError(f"the {model!r} preset has seeded random weights, so its output is noise (it exists for "
                         "export, engine and benchmark tests); pass --random-weights to run it anyway, or use "
                         "-m default")
    if model in defaults.MODEL_NAMES:
        return
    raise TrtsrError(f"no such model file or folder (names: {', '.join(defaults.MODEL_NAMES)})", path=model)
