"""Which NVIDIA GPU this machine has, without importing torch."""

from __future__ import annotations

import dataclasses
import functools
import shutil
import subprocess


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
