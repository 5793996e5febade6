"""GPU and CUDA helpers, without importing torch: which GPU is here, cuda-python's runtime,
its error codes, and device memory use.

cuda-python returns `(error, value...)` tuples: `check_cuda` turns a failure into a
one-line error (an allocation failure into `OutOfMemory`, which the upscaler answers
with smaller tiles) and hands back the value.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import subprocess

from trtsr.errors import MissingDependencyError, OutOfMemory, TrtsrError


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "9.0"
    driver: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return dataclasses.asdict(self)


@functools.lru_cache(maxsize=1)
def detect_gpu() -> GpuInfo | None:
    """The first visible GPU, from cuda-python if installed, else nvidia-smi; None without one."""
    info = _from_cuda_python()
    return info if info is not None else _from_nvidia_smi()


def import_cudart():
    """cuda-python's runtime module (new or old package layout), or None when not installed."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python layout
        except ImportError:
            return None
    return cudart


def _from_cuda_python() -> GpuInfo | None:
    cudart = import_cudart()
    if cudart is None:
        return None
    try:
        err, count = cudart.cudaGetDeviceCount()
        if int(err) != 0 or count < 1:
            return None
        err, props = cudart.cudaGetDeviceProperties(0)
        if int(err) != 0:
            return None
        name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
        err, driver = cudart.cudaDriverGetVersion()
        return GpuInfo(name, f"{props.major}.{props.minor}", f"{driver // 1000}.{driver % 1000 // 10}")
    except Exception:  # no driver, broken install: no usable GPU
        return None


def _from_nvidia_smi() -> GpuInfo | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        text = subprocess.run(
            [exe, "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=15, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = text.strip().splitlines()[0] if text.strip() else ""
    parts = [p.strip() for p in first.split(",")]
    if len(parts) < 2:
        return None
    return GpuInfo(parts[0], parts[1], parts[2] if len(parts) > 2 else None)


def cudart():
    """cuda-python's runtime module; a one-line error naming the `gpu` extra when it is missing."""
    module = import_cudart()
    if module is None:
        raise MissingDependencyError("running engines", "gpu")
    return module


def check_cuda(result):
    """Raise on a failed cuda-python call (`OutOfMemory` for an allocation failure); return its value(s)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        name = str(err).split(".")[-1]
        if "MemoryAllocation" in name:
            raise OutOfMemory(f"CUDA out of memory ({name})")
        raise TrtsrError(f"CUDA error {name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def handle(value) -> int:
    """TensorRT takes streams and pointers as plain integers; cuda-python wraps some of them."""
    try:
        return int(value)
    except TypeError:
        return int(value.getPtr())


def device_memory_used() -> int:
    """Bytes in use on the current device, all processes (total minus free)."""
    runtime = cudart()
    free, total = check_cuda(runtime.cudaMemGetInfo())
    return int(total) - int(free)
