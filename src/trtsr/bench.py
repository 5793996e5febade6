"""Benchmark harness: latency, peak memory and build time per backend, size and PadCFG mode.

Backends compared on the same machine in the same process:
    engine               the trtsr runtime on a TensorRT / TensorRT-RTX engine (GPU)
    onnxruntime          ONNX Runtime (CUDA provider where installed, else CPU)
    torch-eager-{fp32,fp16,bf16}   PyTorch eager with scaled-dot-product attention
    torch-compile-{fp16,bf16}      torch.compile of the same module (GPU)

Every case opens its session the way a run does (`trtsr.pipeline.request.open_session`). Latency is the
median over `repeats` runs after `warmup` runs of the session's `infer` on one whole image, host to host
(the session's I/O type in and out: uint8 for engines and torch on a GPU). Results are written as JSON
naming the device, the software versions and the command, plus a PNG chart.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import statistics
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from trtsr import defaults
from trtsr.backends import BackendSettings, EngineSettings, TorchPrecision, TorchSettings, member
from trtsr.defaults import Backend, RunBackend
from trtsr.errors import TrtsrError
from trtsr.files import write_text_atomic
from trtsr.gpu import detect_gpu
from trtsr.measure import environment, peak_rss_bytes, timed_runs

log = logging.getLogger(__name__)

class BenchCase(StrEnum):
    """What `trtsr bench -b` times: an engine (the installed TensorRT backend), ONNX Runtime, or the torch
    backend eager or compiled in one precision."""

    ENGINE = "engine"
    ONNXRUNTIME = Backend.ONNXRUNTIME.value
    TORCH_EAGER_FP32 = f"{Backend.TORCH}-eager-fp32"
    TORCH_EAGER_FP16 = f"{Backend.TORCH}-eager-fp16"
    TORCH_EAGER_BF16 = f"{Backend.TORCH}-eager-bf16"
    TORCH_COMPILE_FP16 = f"{Backend.TORCH}-compile-fp16"
    TORCH_COMPILE_BF16 = f"{Backend.TORCH}-compile-bf16"

    @property
    def torch_settings(self) -> TorchSettings | None:
        """The torch backend's settings for a torch case; None for the others."""
        parts = self.value.split("-")
        if parts[0] != Backend.TORCH:
            return None
        return TorchSettings(precision=parts[2], compile=parts[1] == "compile")


BACKENDS = tuple(BenchCase)
GPU_DEFAULT_BACKENDS = (BenchCase.ENGINE, BenchCase.TORCH_EAGER_BF16, BenchCase.TORCH_EAGER_FP16,
                        BenchCase.TORCH_COMPILE_BF16)
CPU_DEFAULT_BACKENDS = (BenchCase.ONNXRUNTIME, BenchCase.TORCH_EAGER_FP32)
GPU_DEFAULT_SIZES = ("1080p", "1440p", "4k", "8k")
CPU_DEFAULT_SIZES = ("256x256", "512x384")


@dataclasses.dataclass
class BenchResult:
    backend: str
    output_size: tuple[int, int]  # width, height
    padcfg: bool
    median_ms: float | None = None
    p10_ms: float | None = None
    p90_ms: float | None = None
    first_run_ms: float | None = None  # includes JIT / autotuning / compilation
    peak_memory_bytes: int | None = None
    # "gpu-device-used-high-water" (engine: the device's used memory, sampled), "gpu-torch-allocator-peak"
    # (torch.cuda.max_memory_allocated) or "host-rss-process-peak" (the process's peak resident memory)
    memory_kind: str | None = None
    build_seconds: float | None = None  # engine ahead-of-time build, or export
    repeats: int = 0
    skipped: str | None = None  # why it did not run


def parse_size(text: str) -> tuple[int, int]:
    from trtsr.engines.profiles import NAMED_SIZES, ShapeProfile

    key = text.strip().lower()
    if key in NAMED_SIZES:
        return NAMED_SIZES[key]
    profile = ShapeProfile.parse(key)
    return profile.max


def _summarise(result: BenchResult, first: float, times: list[float]) -> None:
    result.first_run_ms = round(first, 3)
    result.median_ms = round(statistics.median(times), 3)
    ordered = sorted(times)
    # Nearest-rank percentiles.
    result.p10_ms = round(ordered[max(0, math.ceil(0.1 * len(ordered)) - 1)], 3)
    result.p90_ms = round(ordered[math.ceil(0.9 * len(ordered)) - 1], 3)
    result.repeats = len(times)


def _lr_image(size: tuple[int, int], scale: int) -> np.ndarray:
    width, height = size
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height // scale, width // scale, 3), dtype=np.uint8)


def _request(model: str, backend: Backend, scale: int, padcfg: bool, settings: BackendSettings):
    from trtsr.pipeline.request import RunRequest

    # the paper's w either way: the cost does not depend on it
    return RunRequest(model=model, backend=RunBackend(backend), scale=scale,
                      guidance=defaults.GUIDANCE if padcfg else None, settings=settings)


def _timed_session(result: BenchResult, request, size, scale: int, warmup: int, repeats: int, say,
                   memory_kind: str) -> Any:
    """Open `request`'s session (`pipeline.request.open_session`, as every run does), time `infer` on one
    picture of `size`, host to host, and close it; returns the session (closed) for what it recorded."""
    from trtsr.pipeline.request import open_session

    session, _ = open_session(request, progress=say)
    try:
        if result.backend == BenchCase.ENGINE:
            result.backend = f"{BenchCase.ENGINE} ({session.backend_name})"
        elif result.backend == BenchCase.ONNXRUNTIME:  # which provider ran
            result.backend = session.backend_name
        lr = _lr_image(size, scale).astype(session.io_dtype)
        first, times = timed_runs(lambda: session.infer(lr, request.w), warmup, repeats)
    finally:
        session.close()
    _summarise(result, first, times)
    result.memory_kind = memory_kind
    return session


def bench_onnxruntime(model, size, padcfg, scale, warmup, repeats, say) -> BenchResult:
    result = BenchResult(BenchCase.ONNXRUNTIME, size, padcfg)
    request = _request(model, Backend.ONNXRUNTIME, scale, padcfg, BackendSettings())
    _timed_session(result, request, size, scale, warmup, repeats, say, "host-rss-process-peak")
    result.peak_memory_bytes = peak_rss_bytes()
    return result


def bench_engine(model, size, padcfg, scale, warmup, repeats, say) -> BenchResult:
    result = BenchResult(BenchCase.ENGINE, size, padcfg)
    if detect_gpu() is None:
        result.skipped = "no NVIDIA GPU"
        return result
    from trtsr.engines.backend import installed_backends
    from trtsr.measure import MemoryHighWater

    installed = installed_backends()
    if not installed:
        result.skipped = "no TensorRT backend is installed (trtsr[trt] or trtsr[rtx])"
        return result
    width, height = size
    # one profile, tuned at this size
    settings = BackendSettings(engine=EngineSettings(profiles=(f"{width}x{height}",)))
    request = _request(model, installed[0], scale, padcfg, settings)
    from trtsr.pipeline.request import choose

    choose(request)  # a backend that cannot run engines on this GPU is refused here, before any export or build
    # The device's used-memory high-water mark from before the session loads to after the last run:
    # engine weights, activations, I/O buffers and whatever TensorRT allocates on the way.
    with MemoryHighWater() as memory:
        session = _timed_session(result, request, size, scale, warmup, repeats, say, "gpu-device-used-high-water")
    result.build_seconds = session.metadata.build_seconds
    result.peak_memory_bytes = memory.peak_bytes
    return result


def bench_torch(model, size, padcfg, scale, warmup, repeats, say, *, precision: str, compile: bool) -> BenchResult:
    result = BenchResult(BenchCase(f"{Backend.TORCH}-{'compile' if compile else 'eager'}-{precision}"), size,
                         padcfg)
    try:
        import torch
    except ImportError:
        result.skipped = "torch is not installed (export extra)"
        return result
    cuda = torch.cuda.is_available()
    if not cuda and (precision != TorchPrecision.FP32 or compile):
        result.skipped = "needs a CUDA GPU"
        return result
    if cuda:
        # From before the weights load: the peak then counts weights and activations, as the engine's does.
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    settings = BackendSettings(torch=TorchSettings(precision=precision, compile=compile))
    request = _request(model, Backend.TORCH, scale, padcfg, settings)
    # The first timed call is the first call: it includes torch.compile's compilation and CUDA's warm-up.
    _timed_session(result, request, size, scale, warmup, repeats, say,
                   "gpu-torch-allocator-peak" if cuda else "host-rss-process-peak")
    if cuda:
        result.peak_memory_bytes = int(torch.cuda.max_memory_allocated() - base)
        torch.cuda.empty_cache()
    else:
        result.peak_memory_bytes = peak_rss_bytes()
    return result


def run_case(backend: BenchCase | str, model: str, size, padcfg: bool, scale: int, warmup: int, repeats: int,
             say: Callable[[str], None]) -> BenchResult:
    try:
        case = member(BenchCase, backend, "benchmark backend")
        if case is BenchCase.ENGINE:
            return bench_engine(model, size, padcfg, scale, warmup, repeats, say)
        if case is BenchCase.ONNXRUNTIME:
            return bench_onnxruntime(model, size, padcfg, scale, warmup, repeats, say)
        torch_settings = case.torch_settings
        return bench_torch(model, size, padcfg, scale, warmup, repeats, say,
                           precision=torch_settings.precision, compile=torch_settings.compile)
    except TrtsrError as exc:
        return BenchResult(backend, size, padcfg, skipped=str(exc))
    except Exception as exc:  # out of memory at 8K and the like: record it, go on with the rest
        if "out of memory" in str(exc).lower():
            _free_cuda()
        return BenchResult(backend, size, padcfg, skipped=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")


def _free_cuda() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def bench_folder(model: str, folder: Path, backend: RunBackend | str) -> dict[str, Any]:
    """End-to-end throughput of a run (decode, upscale, encode: the job runner `trtsr run` uses) over a folder of
    real images."""
    import tempfile

    from trtsr.defaults import IMAGE_SUFFIXES
    from trtsr.pipeline.jobs import run_jobs, sort_jobs
    from trtsr.pipeline.upscaler import Upscaler

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TrtsrError("folder has no images", path=folder)
    with Upscaler(model, backend=backend) as up, tempfile.TemporaryDirectory() as tmp:
        jobs = sort_jobs([(file, Path(tmp) / f"{file.stem}.png") for file in files], overwrite=False)
        started = time.perf_counter()
        summary = run_jobs(up, jobs)
        seconds = time.perf_counter() - started
        if summary.failed:
            raise TrtsrError(f"{len(summary.failed)} of {len(files)} images failed: {summary.failed[0].line}")
        pixels = sum(done.size_out[0] * done.size_out[1] for done in summary.done)
        return {"backend": up.backend_name, "images": len(files), "seconds": round(seconds, 3),
                "images_per_second": round(len(files) / seconds, 3),
                "output_megapixels_per_second": round(pixels / 1e6 / seconds, 3), "folder": str(folder)}


def run_benchmarks(
    *,
    model: str,
    sizes: list[str],
    backends: list[str],
    padcfg_modes: list[bool],
    scale: int = defaults.SCALE,
    warmup: int = 3,
    repeats: int = 10,
    images: Path | None = None,
    out_dir: Path,
    name: str = "bench",
    command: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Path, Path]:
    """Run every (backend, size, PadCFG) case; write NAME.json and NAME.png into out_dir."""
    say = progress or (lambda message: log.info(message))
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise TrtsrError(f"unknown benchmark backend(s) {', '.join(unknown)}; use {', '.join(BACKENDS)}")
    if repeats < 1 or warmup < 0:
        raise TrtsrError(f"repeats must be at least 1 and warmup at least 0, got {repeats} and {warmup}")
    parsed_sizes = [parse_size(s) for s in sizes]
    results: list[BenchResult] = []
    for padcfg in padcfg_modes:
        for size in parsed_sizes:
            for backend in backends:
                say(f"{backend} {size[0]}x{size[1]} {'PadCFG' if padcfg else 'no PadCFG'}")
                result = run_case(backend, model, size, padcfg, scale, warmup, repeats, say)
                results.append(result)
                if result.skipped:
                    say(f"  skipped: {result.skipped}")
                else:
                    say(f"  median {result.median_ms:.1f} ms")
    if all(r.skipped for r in results):
        # nothing measured: say why instead of writing a result with no figure in it
        reasons = sorted({f"{r.backend}: {r.skipped}" for r in results})
        raise TrtsrError(f"no benchmark case ran ({'; '.join(reasons)[:400]})")
    report = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(command or sys.argv),
        "model": model,
        "scale": scale,
        "warmup": warmup,
        "repeats": repeats,
        "timing": "median wall time of one whole image; engine and ONNX Runtime host to host (uint8), "
                  "PyTorch from a device tensor to the synchronised result; first_run_ms is the first call "
                  "(compilation and warm-up included)",
        **environment(),
        "results": [dataclasses.asdict(r) for r in results],
    }
    if images is not None:
        say(f"end-to-end run over {images}")
        report["end_to_end"] = bench_folder(model, images, RunBackend.AUTO)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{name}.json"
    png_path = out_dir / f"{name}.png"
    write_text_atomic(json_path, json.dumps(report, indent=2) + "\n")
    plot_results(report, png_path)
    return json_path, png_path


def plot_results(report: dict[str, Any], path: Path) -> None:
    """A horizontal bar chart of median latency per case, with the device and versions in the title."""
    from PIL import Image

    from trtsr.files import atomic_path
    from trtsr.measure import chart_draw

    rows = [r for r in report["results"] if r["median_ms"] is not None]
    skipped = [r for r in report["results"] if r["median_ms"] is None]
    row_h, left, width = 22, 380, 1100
    height = 90 + row_h * (len(rows) + len(skipped)) + 20
    img = Image.new("RGB", (width, height), "white")
    draw = chart_draw(img)
    device = report["device"]["name"]
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v)
    draw.text((10, 8), f"trtsr benchmark: {report['model']} x{report['scale']} on {device}", fill="black")
    draw.text((10, 26), versions[:170], fill="gray")
    draw.text((10, 44), f"median latency (ms) over {report['repeats']} runs after {report['warmup']} warm-up",
              fill="gray")
    longest = max([r["median_ms"] for r in rows], default=1.0)
    palette = {BenchCase.ENGINE: (46, 125, 50), BenchCase.ONNXRUNTIME: (21, 101, 192),
               f"{Backend.TORCH}-eager": (230, 81, 0), f"{Backend.TORCH}-compile": (142, 36, 170)}
    y = 70
    for r in rows:
        label = f"{r['backend']}  {r['output_size'][0]}x{r['output_size'][1]}  {'PadCFG' if r['padcfg'] else 'noCFG'}"
        colour = next((c for k, c in palette.items() if r["backend"].startswith(k)), (90, 90, 90))
        bar = int((width - left - 120) * r["median_ms"] / longest)
        draw.text((10, y + 4), label[:60], fill="black")
        draw.rectangle([left, y + 3, left + max(bar, 1), y + row_h - 3], fill=colour)
        draw.text((left + bar + 6, y + 4), f"{r['median_ms']:.1f}", fill="black")
        y += row_h
    for r in skipped:
        label = f"{r['backend']}  {r['output_size'][0]}x{r['output_size'][1]}  {'PadCFG' if r['padcfg'] else 'noCFG'}"
        draw.text((10, y + 4), f"{label[:60]}   not run: {str(r['skipped'])[:90]}", fill=(150, 150, 150))
        y += row_h
    with atomic_path(path, suffix=".png") as tmp:
        img.save(tmp, format="PNG")
