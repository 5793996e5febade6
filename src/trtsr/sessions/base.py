"""The protocol every session follows, and the little they share (`SessionBase`)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from trtsr.cost import ONNXRUNTIME_MEMORY_FACTOR, GraphCost
from trtsr.defaults import IoType
from trtsr.errors import TrtsrError
from trtsr.sizes import SizeRequirements


@runtime_checkable
class Session(Protocol):
    """One model, opened once, run one picture at a time (one thread at a time; `Upscaler` adds the lock,
    tiling and image handling).

    `infer(picture, w)` takes an (H, W, 3) array in the session's I/O type (`io`: uint8, or float32 in
    [0, 255]) and returns the (scale*H, scale*W, 3) result in that type. `w` is the PadCFG w, or None for no
    PadCFG: the run decided it once (`trtsr.guidance.Guidance.decide`) and the session only feeds it.
    `guidance` is the session's own w (None without PadCFG) and `guidance_input` the name of its w input
    (None where w is built in or there is none). `max_input` is the largest (height, width) one call takes
    whole, None where the caller plans tiles: from `cost` (`trtsr.cost.GraphCost`, how memory and work grow
    with the input) times `memory_factor` (the runtime's peak over the probed bytes), or in fixed
    `defaults.ONNXRUNTIME_TILE` tiles where `cost` is None.
    """

    scale: int
    io: IoType
    sizes: SizeRequirements
    max_input: tuple[int, int] | None
    cost: GraphCost | None
    memory_factor: float
    guidance: float | None
    guidance_input: str | None
    backend_name: str

    def infer(self, picture: np.ndarray, w: float | None) -> np.ndarray: ...

    def close(self) -> None: ...

    def __enter__(self) -> Session: ...

    def __exit__(self, *exc) -> None: ...


class SessionBase:
    """What the sessions share: the I/O dtype, feeding w, and use as a context manager. `what` names the kind of
    file it runs in messages."""

    what = "graph"
    cost: GraphCost | None = None
    memory_factor: float = ONNXRUNTIME_MEMORY_FACTOR

    scale: int
    io: IoType
    guidance: float | None
    guidance_input: str | None

    @property
    def io_dtype(self) -> type:
        return np.uint8 if self.io == IoType.UINT8 else np.float32

    def w_feed(self, w: float | None) -> np.ndarray | None:
        """`w` as the w input to feed (None where w is built in or there is no PadCFG). A w this session was not
        made for is one line: whoever opened it decided w for another model."""
        if self.guidance_input is not None and w is not None:
            return np.array([w], dtype=np.float32)
        if self.guidance_input is None and w == self.guidance:  # no PadCFG, or w built in: nothing to feed
            return None
        has = "no PadCFG" if self.guidance is None else f"PadCFG w {self.guidance:g}" + (
            " (an input)" if self.guidance_input else "")
        asked = "no PadCFG" if w is None else f"w {w:g}"
        raise TrtsrError(f"this session has {has}; it cannot run {asked}")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:  # each session frees what it holds
        raise NotImplementedError
