"""`Upscaler`: the Python API. Images in, upscaled images out, on a TensorRT engine or ONNX Runtime.

Its arguments make one `RunRequest` (checked once); `pipeline.request.open_session` picks the
backend, exports and builds through the caches where needed and opens the session; the Upscaler
adds tiling, small-input padding and the out-of-memory retry on top.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from trtsr import defaults
from trtsr.backends import BackendSettings, EngineSettings, OnnxRuntimeSettings, RuntimeSettings, TorchSettings
from trtsr.cost import ONNXRUNTIME_MEMORY_FACTOR, memory_budget
from trtsr.defaults import Backend, IoType, RunBackend
from trtsr.errors import OutOfMemory, TooLarge, TrtsrError
from trtsr.guidance import Guidance
from trtsr.pipeline.request import RunRequest, check_tiles, open_session
from trtsr.runtime.color import check_color_fix, color_fix
from trtsr.runtime.images import Picture, from_array, picture_from_pil, resize_plane, to_array
from trtsr.runtime.tiling import run_tiled
from trtsr.sessions.base import Session

log = logging.getLogger(__name__)


class Upscaler:
    """Upscale images with GenDR-Pix.

    Args:
        model: None or 'default' (the shipped model), 'tiny', 'gendr-pix', a named Real-ESRGAN model, a checkpoint,
            a diffusers folder, or an exported .onnx.
        engine: a built engine (MODEL.engine), instead of a model; needs an NVIDIA GPU.
        backend: 'auto' (an engine where a TensorRT backend runs on this GPU, else PyTorch on CUDA where
            installed, else ONNX Runtime), 'onnxruntime', 'torch', 'tensorrt' or 'tensorrt-rtx'.
            `backend` (a `trtsr.defaults.Backend`) and `backend_name` say which ran, `backend_reason` why
            (`trtsr.pipeline.choose`).
        scale, guidance: scale None (the default) is a graph's or engine's own, else 4; one it cannot do is
            refused. guidance None = no PadCFG; 'auto' (the default) is the model's own w: for the shipped default
            model 1.4 at x2, 1.8 at x3 and 2.2 at x4 (`defaults.DEFAULT_MODEL_GUIDANCE`), for other models 1.8,
            for a graph or engine the w it was exported with. A w a graph or engine cannot honour is refused.
        tile: input tile side for tiled runs; None = planned per picture: engines run whole pictures up to their
            largest profile; ONNX Runtime and torch on the CPU run whole pictures where the graph's probed memory
            fits the budget (`trtsr.cost`: 4 GB, at most half the free memory; TRTSR_TILE_MEMORY_GB), else
            the tile side with the least work (`tile_for(height, width)` says which).
        overlap: input pixels neighbouring tiles share, blended with a raised-cosine window; None follows the
            tile (16, or half a smaller tile). An overlap above half the tile in use is refused.
        profiles: engine profiles when `model` is turned into a cached engine (default 1080p, 4k, 8k).
        runtime: how an engine runs (`trtsr.backends.RuntimeSettings`: runtime cache, TensorRT-RTX kernel
            specialisation and CUDA graphs, activation memory per profile); None = the safe defaults.
        torch_settings: how the torch backend runs (`trtsr.backends.TorchSettings`: device, precision,
            torch.compile, attention kernel); None = CUDA in bf16, eager, PyTorch's attention.
        threads: ONNX Runtime's intra-op threads (None: its own choice).
        color_fix: None (the default), 'wavelet' or 'adain': each output takes its large-scale colour from its
            input (`trtsr.runtime.color`), for models whose colours drift.

    Thread safety: one Upscaler may be shared between threads; its calls run one at a time
    (one engine context and one set of buffers). For parallel work create one per thread.
    Use it as a context manager, or call `close()`, to free GPU memory and save caches.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        engine: str | Path | None = None,
        backend: RunBackend | str = RunBackend.AUTO,
        scale: int | None = None,
        guidance: Guidance | float | str | None = defaults.AUTO_GUIDANCE,
        tile: int | None = None,
        overlap: int | None = None,
        profiles: tuple[str, ...] | None = None,
        runtime: RuntimeSettings | None = None,
        torch_settings: TorchSettings | None = None,
        threads: int | None = None,
        color_fix: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        settings = BackendSettings(onnxruntime=OnnxRuntimeSettings(threads=threads),
                                   torch=torch_settings or TorchSettings(),
                                   engine=EngineSettings(profiles=profiles, runtime=runtime or RuntimeSettings()))
        request = RunRequest(model=model, engine=engine, backend=backend, scale=scale, guidance=guidance, tile=tile,
                             overlap=overlap, settings=settings, color_fix=color_fix)
        self._open(request, progress)

    @classmethod
    def from_request(cls, request: RunRequest, progress: Callable[[str], None] | None = None) -> Upscaler:
        """An Upscaler for a `RunRequest` (what `trtsr run`, `trtsr batch` and the Ray actor build)."""
        upscaler = cls.__new__(cls)
        upscaler._open(request, progress)
        return upscaler

    @classmethod
    def from_session(cls, session: Session, *, tile: int | None = None, overlap: int | None = None,
                     guidance: Guidance | float | str | None = defaults.AUTO_GUIDANCE,
                     color_fix: str | None = None) -> Upscaler:
        """An Upscaler around a session you opened (one of `trtsr.sessions`, or your own that follows the
        `trtsr.sessions.Session` protocol). `guidance` as for `Upscaler`: 'auto' runs the session's own w, None
        no PadCFG, a number that w (refused in one line where the session cannot run it)."""
        check_tiles(tile, overlap)
        check_color_fix(color_fix)
        w = Guidance.of(guidance).decide(session.guidance, optional=False,
                                         takes_input=session.guidance_input is not None,
                                         what=getattr(session, "what", "graph"))
        upscaler = cls.__new__(cls)
        upscaler.backend, upscaler.backend_reason = None, "a session was given"
        upscaler.color_fix = color_fix
        upscaler._attach(session, tile, overlap, w)
        return upscaler

    def _open(self, request: RunRequest, progress: Callable[[str], None] | None) -> None:
        for line in request.warnings():
            log.warning(line)
        self.color_fix = request.color_fix
        session, choice = open_session(request, progress)
        self.backend: Backend | None = choice.backend
        self.backend_reason: str = choice.reason
        try:
            self._attach(session, request.tile, request.overlap, request.w)
        except TrtsrError:
            session.close()  # opened here: freed here
            raise

    def _attach(self, session: Session, tile: int | None, overlap: int | None, w: float | None) -> None:
        """Take `session`, run at `w` (decided by whoever opened it; None: no PadCFG)."""
        self._lock = threading.Lock()
        self.tile = tile
        self._session = session
        fixed = self._fixed_tile()
        largest = defaults.MAX_OVERLAP if fixed is None else fixed // 2
        if overlap is not None and overlap > largest:
            raise TrtsrError(f"overlap {overlap} is more than half the {fixed}-pixel tiles this run uses "
                             f"({session.backend_name}); use an overlap of {largest} or less, or a larger tile "
                             "(--overlap, --tile)")
        self.overlap = min(defaults.OVERLAP, largest) if overlap is None else max(0, int(overlap))
        self._w = w
        self.backend_name: str = session.backend_name
        self.scale: int = session.scale

    @property
    def guidance(self) -> float | None:
        """The PadCFG w each picture runs with; None without PadCFG."""
        return self._w

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
        if isinstance(image, np.ndarray):
            return to_array(self.upscale_picture(from_array(image)))
        if hasattr(image, "__dlpack__"):
            return self.upscale_tensor(image)
        raise TrtsrError("upscale takes a numpy array, a PIL image, a Picture or a device array (DLPack), not "
                         f"{type(image).__name__}")

    def upscale_tensor(self, image):
        """Upscale an (H, W, 3) picture held as a device array (a torch tensor, a CuPy array: anything with
        `__dlpack__`), uint8 or floats in 0-255; the result is the same kind of array on the same device, uint8
        for uint8, else float32 in 0-255. Where the session runs on that device (torch on CUDA, an engine) and
        the picture fits one call, it never passes through host memory, and the result is ordered on torch's
        current CUDA stream rather than waited for. Otherwise (ONNX Runtime, tiles, a color fix) it goes the
        host way, tiled as `upscale` tiles."""
        from trtsr.runtime import dlpack

        torch, x = dlpack.as_torch(image)
        height, width = x.shape[:2]
        as_uint8 = x.dtype == torch.uint8
        session = self._session
        direct = getattr(session, "infer_tensor", None)
        smallest = session.sizes.minimum if session is not None else 0
        if (direct is not None and self.color_fix is None and min(height, width) >= smallest
                and (self._fits_engine(height, width) or self.tile_for(height, width) >= max(height, width))):
            try:
                with self._lock:
                    if self._session is None:
                        raise TrtsrError("this Upscaler is closed")
                    out = direct(x, self._w)
                return dlpack.like(image, dlpack.finish(torch, out, as_uint8=as_uint8))
            except (OutOfMemory, TooLarge) as exc:
                log.warning("%s; running %dx%d through host memory in tiles", exc, width, height)
        host = x.detach().to("cpu", torch.uint8 if as_uint8 else torch.float32).numpy()  # bf16 has no numpy
        if as_uint8:
            result = torch.from_numpy(to_array(self.upscale_picture(from_array(host))))
        else:
            rgb = np.ascontiguousarray(host, dtype=np.float32)
            result = torch.from_numpy(self.upscale_picture(Picture(rgb, None, False, 8, None)).rgb)
        return dlpack.like(image, result.to(x.device))

    def upscale_picture(self, picture: Picture, progress: Callable[[int, int], None] | None = None) -> Picture:
        """Upscale a Picture (`trtsr.runtime.read_image`); `progress(done, total)` follows its tiles."""
        with self._lock:
            if self._session is None:
                raise TrtsrError("this Upscaler is closed")
            rgb = self._upscale_rgb(picture.rgb, progress)
        if self.color_fix is not None:
            rgb = color_fix(rgb, picture.rgb, self.color_fix)
        alpha = None if picture.alpha is None else _resize_plane(picture.alpha, self.scale)
        return Picture(rgb, alpha, picture.grayscale, picture.bits, picture.icc_profile)

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
        if session.io == IoType.UINT8:
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
        out = self._session.infer(self._session_input(lr), self._w).astype(np.float32)
        return out[: height * self.scale, : width * self.scale]

    def _fits_engine(self, height: int, width: int) -> bool:
        max_input = self._session.max_input
        return max_input is not None and self.tile is None and height <= max_input[0] and width <= max_input[1]

    def _fixed_tile(self) -> int | None:
        """The tile side every picture uses, where one does: the one asked for, or an engine's (a GPU torch
        session's) largest input side; None where each picture's tile is planned."""
        if self.tile is not None:
            return self.tile
        max_input = self._session.max_input
        return None if max_input is None else min(max_input)

    def tile_for(self, height: int, width: int) -> int:
        """The tile side a height x width picture runs in (at least its longer side: whole). Planned from the
        session's cost; a graph exported before graphs carried one runs in fixed ONNXRUNTIME_TILE tiles."""
        fixed = self._fixed_tile()
        if fixed is not None:
            return fixed
        session = self._session
        cost = getattr(session, "cost", None)  # a session of the caller's own may not say
        if cost is None:
            return max(defaults.ONNXRUNTIME_TILE, 2 * self.overlap)
        return cost.plan_tile(height, width, self.overlap, memory_budget(),
                              memory_factor=getattr(session, "memory_factor", ONNXRUNTIME_MEMORY_FACTOR),
                              smallest=max(defaults.PLANNED_MIN_TILE, 2 * self.overlap))

    def _upscale_rgb(self, rgb: np.ndarray, progress) -> np.ndarray:
        """`rgb` upscaled, whole or in tiles, halving the tile after each out-of-memory."""
        height, width = rgb.shape[:2]
        tile = self.tile_for(height, width)
        fits_engine = self._fits_engine(height, width)
        failure = None
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


def _resize_plane(plane: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic resize of one float plane (alpha), done in 32-bit float to keep 16-bit depth."""
    height, width = plane.shape
    return np.clip(resize_plane(plane, height * scale, width * scale), 0.0, 255.0)
