"""How a graph's memory and work grow with its input, and the tile size that follows from them.

The exporter probes the network it traces (`trtsr.cost_probe`) and writes a `GraphCost` into the graph's
spec: activation bytes and floating-point operations as `c0 + c1 * p + c2 * p**2` in the input's pixel count p.
Convolutional networks are linear in p; self-attention over the whole picture adds the p**2 part.
`plan_tile` turns that into the tile side a run uses: of the whole picture and the tiles that fit the memory
budget, the one with the least work in all (tiles overlap; attention grows faster than the tile), the larger
where two are close. A convolutional network runs whole pictures up to the budget. A leaf module: no torch, no onnx.
"""

from __future__ import annotations

import dataclasses
import os

from trtsr.errors import TrtsrError
from trtsr.runtime.tiling import axis_spans

# ONNX Runtime's peak on the CPU over the probed (eager) activation bytes: measured 1.1-2.1x on
# realesr-animevideov3, realesrgan-x4plus(-anime) and the default model at 128-512 px inputs
# (`benchmarks/tile_memory.py`); it holds more buffers alive than eager torch does and keeps its arena.
ONNXRUNTIME_MEMORY_FACTOR = 2.5
# Activation memory a tiled or whole-picture run may use: this many GiB, at most half the memory available
# (TRTSR_TILE_MEMORY_GB overrides).
TILE_MEMORY_GB = 4.0
# Tile sides tried, in input pixels: multiples of this step.
TILE_STEP = 16
# Work a larger tile may add over the least (it sees more of the picture). The probed FLOPs track the default
# model's time on the 2-core CPU to within the noise of one run: at 1024 px, 96-pixel tiles (the least FLOPs)
# ran at 1.45 s/MP, 144-pixel tiles (+20 % FLOPs) at 1.80 (benchmarks/README.md). Small, so the plan keeps
# close to the least work.
WORK_SLACK = 0.10


@dataclasses.dataclass(frozen=True)
class GraphCost:
    """Activation bytes and FLOPs of one call as polynomials in the input's pixel count (see module doc)."""

    bytes: tuple[float, float, float]
    flops: tuple[float, float, float]
    probed_at: tuple[int, ...] = ()  # the input sides the probe ran

    @classmethod
    def from_dict(cls, data: dict) -> GraphCost:
        """From `to_dict`'s form; ValueError when it is not that."""
        memory, work = (tuple(float(v) for v in data[key]) for key in ("bytes", "flops"))
        if len(memory) != 3 or len(work) != 3 or min(memory + work) < 0:
            raise ValueError("a cost is three non-negative coefficients each for bytes and flops")
        return cls(memory, work, tuple(int(v) for v in data.get("probed_at", ())))

    def to_dict(self) -> dict:
        return {"bytes": list(self.bytes), "flops": list(self.flops), "probed_at": list(self.probed_at)}

    def peak_bytes(self, pixels: int) -> float:
        return _poly(self.bytes, pixels)

    def work(self, pixels: int) -> float:
        return _poly(self.flops, pixels)

    def plan_tile(self, height: int, width: int, overlap: int, budget_bytes: float, *,
                  memory_factor: float = ONNXRUNTIME_MEMORY_FACTOR, smallest: int = 64) -> int:
        """The tile side for a height x width picture (max(height, width): whole). Candidates are the whole picture
        and square tiles (multiples of TILE_STEP, at least `smallest`) whose memory fits the budget; of those
        within WORK_SLACK of the least work in all, the largest (it sees more of the picture). `smallest` when
        nothing fits."""
        longest = max(height, width)
        works: dict[int, float] = {}
        if memory_factor * self.peak_bytes(height * width) <= budget_bytes:
            works[longest] = self.work(height * width)
        start = -(-max(smallest, TILE_STEP) // TILE_STEP) * TILE_STEP
        for side in range(start, longest, TILE_STEP):
            if memory_factor * self.peak_bytes(side * side) > budget_bytes:
                break
            shared = max(0, min(overlap, side // 2))  # as plan_tiles clamps it
            rows, cols = axis_spans(height, side, shared), axis_spans(width, side, shared)
            # every tile along an axis has one size (tiling.plan_tiles): count x count tiles of one work each
            works[side] = len(rows) * len(cols) * self.work((rows[0][1] - rows[0][0]) * (cols[0][1] - cols[0][0]))
        if not works:
            return smallest
        least = min(works.values())
        return max(side for side, work in works.items() if work <= least * (1 + WORK_SLACK))


def _poly(coefficients: tuple[float, float, float], pixels: int) -> float:
    c0, c1, c2 = coefficients
    return c0 + c1 * pixels + c2 * pixels * pixels


def fit(sides: tuple[int, int, int], values: tuple[float, float, float]) -> tuple[float, float, float]:
    """c0, c1, c2 >= 0 through three (side*side, value) points: exact when the points allow, else the closest
    with the negative terms dropped (a constant overhead and edge padding bend small probes)."""
    p = [float(s * s) for s in sides]
    v = [float(x) for x in values]
    # divided differences
    d1 = (v[1] - v[0]) / (p[1] - p[0])
    d2 = (v[2] - v[1]) / (p[2] - p[1])
    c2 = (d2 - d1) / (p[2] - p[0])
    c1 = d1 - c2 * (p[0] + p[1])
    c0 = v[0] - c1 * p[0] - c2 * p[0] ** 2
    if c2 < 0:  # no growth beyond linear: the line through the two largest points
        c2, c1 = 0.0, d2
        c0 = v[2] - c1 * p[2]
    if c0 < 0:  # no fixed part: through the origin, never under the largest point
        c0, c1 = 0.0, max((v[2] - c2 * p[2] ** 2) / p[2], 0.0)
    return (c0, max(c1, 0.0), c2)


def memory_budget() -> float:
    """Bytes of activation memory one call may take (TILE_MEMORY_GB, at most half of what is available)."""
    given = os.environ.get("TRTSR_TILE_MEMORY_GB")
    if given:
        try:
            value = float(given)
        except ValueError:
            value = -1.0
        if not value > 0:
            raise TrtsrError(f"TRTSR_TILE_MEMORY_GB must be a number of GB above 0, got {given!r}")
        return value * 2**30
    budget = TILE_MEMORY_GB * 2**30
    available = _available_bytes()
    return budget if available is None else min(budget, available / 2)


def _available_bytes() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None
