"""The one-call GPU check: what the engine runtime does the first time it meets a GPU.

    python benchmarks/gpu/check.py OUT            # on the GPU machine (benchmarks/gpu/check.sh)
    python benchmarks/gpu/check.py OUT --dry-run  # the same stages on a CPU, at toy sizes (CI)

Stages, each recorded whatever happens (an exception becomes its exact message):
1. `environment`: GPU, driver, CUDA, Python packages, TensorRT backend and version.
2. `engine_probe`: build a TensorRT-RTX engine from the shipped default graph (x4, PadCFG,
   w as an input) for this GPU, load it, and run it at the minimum, optimum and maximum
   of its profile against ONNX Runtime on the same graph (PSNR, finite, not black). A
   refusal (a compute capability the backend does not support) is recorded word for word.
3. `engine_latency` (only when the probe ran): `trtsr.pipeline.bench` engine cases for
   the default model at each output size, with and without PadCFG.
4. `baselines`: PyTorch eager (bf16, fp16, SDPA) and torch.compile (bf16) for the default
   model and the full-size GenDR-Pix (random weights, the same compute), and ONNX Runtime,
   at the same sizes; a case that runs out of time or memory is recorded as skipped.
Writes OUT/gpu-check.json and OUT/gpu-check.png (latency bars, via trtsr.pipeline.bench).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

GPU_SIZES = ("1080p", "1440p", "4k", "8k")
DRY_SIZES = ("96x96", "160x128")
GPU_PROFILE = "640x360:1920x1080:3840x2160"  # output sizes: min, opt, max of the probe's engine
DRY_PROFILE = "64x64:128x128:256x256"
FULL_SIZE_LIMIT = "4k"  # the full-size model's largest timed size; 8K gets one pass at the end when time is left
# When the GPU refuses an engine built for it (`--cc current`), the probe also tries these ahead-of-time targets and
# records each answer: the backend's default set, and the nearest listed capability (sm89).
FALLBACK_TARGETS: tuple[tuple[str, ...], ...] = ((), ("sm89",))


def _guarded(record: dict[str, Any], key: str, work) -> Any:
    """Run `work()`; on failure store its exact message under record[key + '_error'] and return None."""
    try:
        return work()
    except Exception as exc:  # the check records every failure and goes on
        record[f"{key}_error"] = f"{type(exc).__name__}: {exc}"
        record[f"{key}_traceback"] = traceback.format_exc(limit=4)
        return None


def environment() -> dict[str, Any]:
    from trtsr.engines.backend import installed_backends, load_backend
    from trtsr.gpu import detect_gpu
    from trtsr.measure import environment as versions

    env: dict[str, Any] = {"python": sys.version.split()[0]}
    gpu = detect_gpu()
    env["gpu"] = gpu.to_dict() if gpu is not None else None
    try:
        env["nvidia_smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                           timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        env["nvidia_smi"] = f"not available ({type(exc).__name__})"
    env["backends"] = {}
    for name in installed_backends():
        backend = load_backend(name)
        env["backends"][name] = backend.version
    _guarded(env, "versions", lambda: env.update(versions()))
    try:
        import torch

        env["torch"] = {"version": torch.__version__, "cuda": torch.version.cuda,
                        "cuda_available": bool(torch.cuda.is_available())}
    except ImportError:
        env["torch"] = None
    return env


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _test_image(height: int, width: int) -> np.ndarray:
    """A real photograph from the package's test data when present, else smooth synthetic content, at this size."""
    from PIL import Image

    photo = Path(__file__).resolve().parents[2] / "tests" / "data" / "0030.jpg"
    if photo.is_file():
        with Image.open(photo) as img:
            return np.asarray(img.convert("RGB").resize((width, height), Image.Resampling.BICUBIC))
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)),
                     ((x + y) % 64) * 4], axis=-1).astype(np.uint8)


def engine_probe(work: Path, profile: str, compute_capability: tuple[str, ...]) -> dict[str, Any]:
    from trtsr.engines.builder import BuildSettings, build_engine
    from trtsr.engines.profiles import ShapeProfile
    from trtsr.paths import shipped_onnx
    from trtsr.runtime.sessions import EngineSession, OnnxRuntimeSession
    from trtsr.spec import ExportSpec, spec_path_for

    probe: dict[str, Any] = {"graph": shipped_onnx().name, "profile": profile,
                             "compute_capability": list(compute_capability) or "backend default"}
    graph = shipped_onnx()
    spec = ExportSpec.load(spec_path_for(graph))
    started = time.perf_counter()
    built = _guarded(probe, "build", lambda: build_engine(
        graph, work / "probe.engine",
        BuildSettings(profiles=(profile,), backend="tensorrt-rtx", compute_capabilities=compute_capability)))
    probe["built"] = built is not None
    if built is None:
        return probe
    probe["build_seconds"] = round(time.perf_counter() - started, 2)
    probe["engine_bytes"] = built.engine_path.stat().st_size
    session = _guarded(probe, "load", lambda: EngineSession(built.engine_path))
    probe["loaded"] = session is not None
    if session is None:
        return probe
    reference = OnnxRuntimeSession(graph, use_cuda=False)
    runs = []
    try:
        shapes = ShapeProfile.parse(profile).input_shapes(spec.sizes)
        for label, shape in zip(("min", "opt", "max"), shapes, strict=True):
            height, width = shape[0], shape[1]
            lr = _test_image(height, width).astype(np.float32)
            row: dict[str, Any] = {"point": label, "input": [width, height]}
            got = _guarded(row, "engine", lambda lr=lr: session.infer(lr))
            if got is not None:
                ref = reference.infer(lr)
                row.update(psnr_vs_onnxruntime=round(_psnr(got, ref), 2), finite=bool(np.isfinite(got).all()),
                           std=round(float(np.std(got)), 2))
            runs.append(row)
    finally:
        session.close()
        reference.close()
    probe["runs"] = runs
    probe["ran"] = bool(runs) and all("psnr_vs_onnxruntime" in r for r in runs)
    return probe


def probe_attempts(work: Path, profile: str, first: tuple[str, ...], gpu: bool) -> dict[str, Any]:
    """The probe for `first`; on a GPU that refuses it, each fallback target too, until one runs."""
    probe = engine_probe(work, profile, first)
    if not gpu or probe.get("ran"):
        return probe
    probe["other_targets"] = []
    for index, targets in enumerate(FALLBACK_TARGETS):
        attempt = _guarded({}, "probe", lambda t=targets, i=index: engine_probe(work / f"attempt{i}", profile, t))
        if attempt is None:
            continue
        probe["other_targets"].append(attempt)
        if attempt.get("ran"):
            break
    return probe


def latency_cases(models: list[str], sizes: tuple[str, ...], backends: list[str], *, warmup: int, repeats: int,
                  budget_s: float, say, deadline: float | None = None) -> list[dict[str, Any]]:
    """`trtsr.pipeline.bench` cases in order; once the budget (or the check's deadline) is spent the rest are
    recorded as skipped."""
    from trtsr.pipeline.bench import parse_size, run_case

    rows = []
    deadline = min(time.monotonic() + budget_s, deadline if deadline is not None else float("inf"))
    for model in models:
        model_sizes = sizes
        if model == "gendr-pix" and FULL_SIZE_LIMIT in sizes:
            model_sizes = sizes[: sizes.index(FULL_SIZE_LIMIT) + 1]
        for backend in backends:
            # compiling the full-size UNet costs minutes per shape: one size only
            case_sizes = model_sizes[:1] if model == "gendr-pix" and backend.startswith("torch-compile") \
                else model_sizes
            if model == "gendr-pix" and backend == "onnxruntime":
                continue  # ONNX Runtime has no GPU provider on the check's machine: minutes per case on its CPU
            for padcfg in (True, False):
                for size in case_sizes:
                    if time.monotonic() > deadline:
                        rows.append({"model": model, "backend": backend, "size": size, "padcfg": padcfg,
                                     "skipped": "the check's time budget ran out"})
                        continue
                    say(f"{model} {backend} {size} {'PadCFG' if padcfg else 'no PadCFG'}")
                    result = run_case(backend, model, parse_size(size), padcfg, 4, warmup, repeats, say)
                    rows.append({"model": model, **dataclasses.asdict(result)})
    return rows


def one_pass(model: str, backend: str, size: str, say) -> dict[str, Any]:
    """Does `size` run in one pass (PadCFG, no tiles)? One warm-up, two timed runs."""
    from trtsr.pipeline.bench import parse_size, run_case

    say(f"{model} {backend} {size} PadCFG, one pass")
    result = run_case(backend, model, parse_size(size), True, 4, 1, 2, say)
    return {"model": model, **dataclasses.asdict(result)}


def write_plot(report: dict[str, Any], path: Path) -> None:
    from trtsr.pipeline.bench import plot_results

    results = []
    for row in report.get("engine_latency", []) + report.get("baselines", []):
        if row.get("median_ms") is not None:
            results.append({**row, "backend": f"{row['model']} {row['backend']}"})
    one_pass = report.get("one_pass_8k") or {}
    if one_pass.get("median_ms") is not None:
        results.append({**one_pass, "backend": f"{one_pass['model']} {one_pass['backend']} 2 runs"})
    env = report.get("environment") or {}
    plot_results({**env, **report, "results": results, "model": "default and gendr-pix", "scale": 4}, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for gpu-check.json and gpu-check.png")
    parser.add_argument("--dry-run", action="store_true", help="CPU stand-in: toy sizes, ONNX Runtime and eager "
                                                                "fp32 baselines, the same stages and files")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds for the latency stages")
    parser.add_argument("--deadline", type=float, default=480.0,
                        help="seconds for the whole check; later cases are recorded as skipped")
    args = parser.parse_args(argv)
    say = lambda message: print(message, flush=True)  # noqa: E731
    args.out.mkdir(parents=True, exist_ok=True)
    # Engines and exported graphs stay out of OUT: only the report comes back from the GPU machine.
    work = Path(tempfile.mkdtemp(prefix="trtsr-gpu-check-"))
    deadline = time.monotonic() + args.deadline
    report: dict[str, Any] = {
        "what": "trtsr one-call GPU check (benchmarks/gpu/check.py)",
        "dry_run": args.dry_run,
        "command": " ".join([sys.executable, *sys.argv]),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    started = time.perf_counter()

    def save() -> None:
        # after every stage: a check stopped from outside still leaves what it measured
        report["seconds"] = round(time.perf_counter() - started, 1)
        (args.out / "gpu-check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")

    say("environment")
    report["environment"] = _guarded(report, "environment", environment)
    save()
    gpu = (report["environment"] or {}).get("gpu")
    say("engine probe")
    profile = DRY_PROFILE if args.dry_run else GPU_PROFILE
    cc = () if args.dry_run or gpu is None else ("current",)
    report["engine_probe"] = _guarded(report, "engine_probe",
                                      lambda: probe_attempts(work, profile, cc, gpu is not None and not args.dry_run))
    save()
    sizes = DRY_SIZES if args.dry_run else GPU_SIZES
    ran = bool((report["engine_probe"] or {}).get("ran"))
    if ran:
        say("engine latency")
        report["engine_latency"] = latency_cases(["default"], sizes, ["engine"], warmup=3, repeats=10,
                                                 budget_s=args.budget / 3, say=say, deadline=deadline)
        save()
    if args.dry_run:
        models, backends = ["default"], ["onnxruntime", "torch-eager-fp32"]
    else:
        # the full-size model first: it is what the targets are about
        models, backends = ["gendr-pix", "default"], ["torch-eager-bf16", "torch-eager-fp16", "torch-compile-bf16",
                                                      "onnxruntime"]
    say("baselines")
    report["warmup"], report["repeats"] = (1, 2) if args.dry_run else (2, 5)
    report["baselines"] = latency_cases(models, sizes, backends, warmup=report["warmup"], repeats=report["repeats"],
                                        budget_s=args.budget, say=say, deadline=deadline)
    save()
    if not args.dry_run and time.monotonic() < deadline - 60:
        report["one_pass_8k"] = _guarded(report, "one_pass_8k", lambda: one_pass("gendr-pix", "torch-eager-bf16",
                                                                                   "8k", say))
        save()
    _guarded(report, "plot", lambda: write_plot(report, args.out / "gpu-check.png"))
    save()
    shutil.rmtree(work, ignore_errors=True)
    say(f"wrote {args.out / 'gpu-check.json'} in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
