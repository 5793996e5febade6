"""Measuring on this machine: what the device and software are, and timed repeats of a call.

A leaf module: the benchmark harness and the training evaluation both read it.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from trtsr._version import __version__
from trtsr.gpu import detect_gpu


def environment() -> dict[str, Any]:
    versions: dict[str, str | None] = {"trtsr": __version__, "python": platform.python_version(),
                                       "numpy": np.__version__}
    for name, module in (("torch", "torch"), ("onnxruntime", "onnxruntime"), ("tensorrt", "tensorrt"),
                         ("tensorrt_rtx", "tensorrt_rtx"), ("diffusers", "diffusers")):
        try:
            versions[name] = __import__(module).__version__
        except Exception:
            versions[name] = None
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
