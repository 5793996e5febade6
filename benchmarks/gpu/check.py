"""The one-call GPU check: everything trtsr measures the first time it meets a GPU, in one command.

    python benchmarks/gpu/check.py OUT            # on the GPU machine (benchmarks/gpu/check.sh)
    python benchmarks/gpu/check.py OUT --dry-run  # the same stages on a CPU, at toy sizes (CI)

Stages, in order of what matters most, each recorded whatever happens (an exception becomes its exact
message) and the JSON rewritten after each, so a check stopped from outside keeps what it measured:
1. `environment`: GPU, driver, CUDA, cuDNN, package versions, SDPA kernels torch has.
1a. `architectures`: the networks people run through `-b torch`, bf16, eager (then RRDB compiled, the target),
   at 512->2048 and 1080p->4K: frames per second and peak memory. Real-ESRGAN x4plus (RRDB) and animevideov3
   (Compact) and a SwinIR (classical x4), each built by spandrel with seeded weights: the compute and memory of the real
   networks, without carrying their weights.
1b. `mixed_sizes`: the default model at its w, first call at each new picture size against a warm call, then
   `trtsr run`'s loop over a folder of mixed sizes against a folder of one size (pictures per second).
1c. `dlpack`: a 4K frame already on the GPU through `Upscaler.upscale_tensor` (no host copies) against the same
   frame as a numpy array through `Upscaler.upscale`, default model, ms per frame.
2. `engine_probe`: a TensorRT-RTX engine of the shipped graph built, loaded and run against ONNX Runtime,
   only where TensorRT-RTX is installed and lists this GPU (on an H100/H200 it is skipped with the reason).
3. `gpu_tests`: `pytest -m gpu` on the GPU test files (log in OUT/gpu-tests.log).
4. `trtsr_run`: `trtsr run -b auto` end to end on the real pictures in tests/data (grey, alpha, 16-bit),
   whole and tiled; outputs checked (size, bit depth, alpha, grey kept) and a photo against ONNX Runtime.
5. `attention`: the full-size model (random weights) at 4K with PadCFG, eager, per SDPA kernel (PyTorch's
   own choice, flash, cuDNN, memory-efficient), the kernel names PyTorch's choice ran, and the peak with
   the feed-forward chunked; the fastest kernel serves every later stage.
6. `folder`: `trtsr run`'s own loop (decode ahead, encode behind) over a folder of photos upscaled to 4K by
   the full-size model, against the bare model's time for the same pictures.
7. `compiled`: torch.compile of the full-size model at 4K with PadCFG (the target case), then of the
   default model at 4K.
8. `latency`: both models, eager, at 1080p, 4K and 8K output, with and without PadCFG (8K last).
`--finetune` (a second call) runs only `trtsr finetune` of the full-size model for 200 steps in bf16 and its
`--resume` to 250: steps per second, peak memory, and the step it resumed at.
`--levers` (a later call) runs only the 4K PadCFG levers (`levers.py`: FP8 feed-forward, flex self-attention,
a CUDA graph, compiled with CUDA graphs), each against plain eager. `--video` (its own call, PyAV carried in
`.whl-video`) runs only 1080p -> 4K video end to end against the model alone. `--train-speed` (its own call) runs
only the default model's training steps (distill recipe, small preset, batch 64) eager and compiled: steps per
second, with every step between two reads run under CUDA's sync debug mode "error" (a host wait fails the case).
Writes OUT/gpu-check.json, OUT/gpu-check.png (latency bars) and OUT/gpu-check.log (check.sh).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
GPU_SIZES = {"1080p": (1920, 1080), "4k": (3840, 2160), "8k": (7680, 4320)}
DRY_SIZES = {"1080p": (96, 64), "4k": (160, 96), "8k": (192, 128)}
GPU_PROFILE = "640x360:1920x1080:3840x2160"  # output sizes: min, opt, max of the probe's engine
DRY_PROFILE = "64x64:128x128:256x256"
# tests/engines needs TensorRT-RTX to collect; it joins where the check's machine has it (an RTX card).
GPU_TEST_FILES = ("tests/sessions/test_torch_session.py", "tests/pipeline/test_choose.py",
                  "tests/runtime/test_cuda_gpu.py", "tests/runtime/test_overlap.py")
PACKAGES = ("torch", "triton", "diffusers", "onnxruntime", "onnxruntime-gpu", "numpy", "pillow", "cuda-bindings",
            "tensorrt", "tensorrt-rtx-cu12")
KERNELS = ("auto", "flash", "cudnn", "efficient")
FOLDER_PICTURES = 8


def guarded(record: dict[str, Any], key: str, work) -> Any:
    """Run `work()`; on failure store its exact message under record[key + '_error'] and return None."""
    try:
        return work()
    except Exception as exc:  # the check records every failure and goes on
        record[f"{key}_error"] = f"{type(exc).__name__}: {str(exc)[:2000]}"
        record[f"{key}_traceback"] = traceback.format_exc(limit=6)[-3000:]
        return None


def environment() -> dict[str, Any]:
    from trtsr.gpu import detect_gpu

    env: dict[str, Any] = {"python": sys.version.split()[0]}
    gpu = detect_gpu()
    env["gpu"] = gpu.to_dict() if gpu is not None else None
    try:
        env["nvidia_smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                           timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        env["nvidia_smi"] = f"not available ({type(exc).__name__})"
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    env["versions"] = versions
    try:
        import torch

        info: dict[str, Any] = {"version": torch.__version__, "cuda": torch.version.cuda,
                                "cuda_available": bool(torch.cuda.is_available())}
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info.update(device=props.name, multiprocessors=props.multi_processor_count,
                        memory_gib=round(props.total_memory / 2**30, 1), bf16=torch.cuda.is_bf16_supported(),
                        cudnn=torch.backends.cudnn.version(),
                        flash_sdpa=torch.backends.cuda.is_flash_attention_available())
            try:
                from torch.nn.attention import list_flash_attention_impls

                info["flash_attention_impls"] = list(list_flash_attention_impls())
            except ImportError:
                info["flash_attention_impls"] = "not in this torch"
        env["torch"] = info
    except ImportError:
        env["torch"] = None
    return env


def engine_probe(work: Path, profile: str, dry_run: bool) -> dict[str, Any]:
    """TensorRT-RTX on this GPU, where it is installed and lists the GPU; else the reason it was skipped."""
    from trtsr.engines.backend import installed_backends, load_backend
    from trtsr.errors import TrtsrError
    from trtsr.gpu import detect_gpu

    if "tensorrt-rtx" not in installed_backends():
        return {"skipped": "TensorRT-RTX is not installed here"}
    gpu = detect_gpu()
    if gpu is not None:
        try:
            load_backend("tensorrt-rtx").check_runs_on(gpu)
        except TrtsrError as exc:
            return {"skipped": exc.reason}
    from trtsr.backends import OnnxRuntimeSettings
    from trtsr.engines.builder import BuildSettings, build_engine
    from trtsr.engines.profiles import ShapeProfile
    from trtsr.paths import shipped_onnx
    from trtsr.sessions.engine_session import EngineSession
    from trtsr.sessions.onnxruntime_session import OnnxRuntimeSession
    from trtsr.spec import ExportSpec, spec_path_for

    graph = shipped_onnx()
    probe: dict[str, Any] = {"graph": graph.name, "profile": profile}
    started = time.perf_counter()
    cc = () if dry_run or gpu is None else ("current",)
    built = guarded(probe, "build", lambda: build_engine(
        graph, work / "probe.engine", BuildSettings(profiles=(profile,), backend="tensorrt-rtx",
                                                    compute_capabilities=cc)))
    probe["built"] = built is not None
    if built is None:
        return probe
    probe["build_seconds"] = round(time.perf_counter() - started, 2)
    probe["engine_bytes"] = built.engine_path.stat().st_size
    session = guarded(probe, "load", lambda: EngineSession.open(built.engine_path))
    probe["loaded"] = session is not None
    if session is None:
        return probe
    reference = OnnxRuntimeSession(graph, OnnxRuntimeSettings(cuda=False))
    spec = ExportSpec.load(spec_path_for(graph))
    runs = []
    try:
        for label, shape in zip(("min", "opt", "max"), ShapeProfile.parse(profile).input_shapes(spec.sizes),
                                strict=True):
            lr = photo(shape[0], shape[1]).astype(np.float32)
            row: dict[str, Any] = {"point": label, "input": [shape[1], shape[0]]}
            got = guarded(row, "engine", lambda lr=lr: session.infer(lr, session.guidance))
            if got is not None:
                row["psnr_vs_onnxruntime"] = round(psnr(got, reference.infer(lr, reference.guidance)), 2)
            runs.append(row)
    finally:
        session.close()
        reference.close()
    probe["runs"] = runs
    return probe


def gpu_tests(out: Path, timeout: float) -> dict[str, Any]:
    files = [f for f in GPU_TEST_FILES if (ROOT / f).is_file()]
    if importlib.util.find_spec("tensorrt_rtx") is not None:
        files.append("tests/engines/test_gpu_support.py")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "gpu", "-q", "-rs", *files]
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    (out / "gpu-tests.log").write_text(proc.stdout + proc.stderr)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return {"command": " ".join(command[1:]), "exit_code": proc.returncode, "summary": lines[-1] if lines else "",
            "seconds": round(time.perf_counter() - started, 1)}


def trtsr_run(work: Path, dry_run: bool) -> dict[str, Any]:
    """`trtsr run -b auto` on the test pictures (whole, then one tiled), each output checked against its input."""
    from trtsr.runtime.images import read_image

    inputs = sorted(p for p in DATA.iterdir() if p.suffix.lower() in (".png", ".jpg"))
    record: dict[str, Any] = {"inputs": [p.name for p in inputs]}
    runs = {"whole": [], "tiled": ["--tile", "96", "--overlap", "16"]}
    for label, extra in runs.items():
        folder = work / f"run-{label}"
        chosen = inputs if label == "whole" else inputs[:2]
        backend = "torch" if dry_run else "auto"  # on a CPU, torch stands in for what auto picks on the GPU
        command = [sys.executable, "-m", "trtsr", "run", *map(str, chosen), "-o", f"{folder}/", "-b", backend,
                   *extra]
        started = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, timeout=240)
        entry: dict[str, Any] = {"command": " ".join(command[3:]), "exit_code": proc.returncode,
                                 "seconds": round(time.perf_counter() - started, 1),
                                 "stdout": proc.stdout[-3000:], "stderr": proc.stderr[-3000:]}
        checks = []
        for source in chosen:
            target = folder / f"{source.stem}_x4{source.suffix}"
            row: dict[str, Any] = {"input": source.name, "written": target.is_file()}
            if target.is_file():
                before, after = read_image(source), read_image(target)
                row.update(size_x4=after.size == (before.size[0] * 4, before.size[1] * 4),
                           bits_kept=after.bits == before.bits, grey_kept=after.grayscale == before.grayscale,
                           alpha_kept=(after.alpha is None) == (before.alpha is None))
            checks.append(row)
        entry["outputs"] = checks
        entry["all_good"] = proc.returncode == 0 and all(
            r["written"] and r["size_x4"] and r["bits_kept"] and r["grey_kept"] and r["alpha_kept"] for r in checks)
        record[label] = entry
    # The same photo through ONNX Runtime (fp32, CPU) against what the run wrote.
    from trtsr.pipeline.upscaler import Upscaler

    source = DATA / "0030.jpg"
    written = work / "run-whole" / "0030_x4.jpg"
    if written.is_file():
        with Upscaler("default", backend="onnxruntime", tile=4096) as reference:
            expected = reference.upscale_picture(read_image(source)).rgb
        got = read_image(written).rgb
        record["photo_psnr_vs_onnxruntime_fp32"] = round(psnr(got, np.clip(np.rint(expected), 0, 255)), 2)
        record["photo_note"] = "the run's JPEG output (quality 95) against ONNX Runtime's unrounded fp32 pixels"
    return record


def photo(height: int, width: int, index: int = 0) -> np.ndarray:
    """A real photograph from tests/data, resized to this size."""
    from PIL import Image

    names = ("0030.jpg", "0014.jpg", "ADE_val_00000114.jpg", "wolf_gray.jpg")
    with Image.open(DATA / names[index % len(names)]) as img:
        return np.asarray(img.convert("RGB").resize((width, height), Image.Resampling.BICUBIC))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


class Bench:
    """Times sessions' modules on device tensors, with the allocator's peak (weights included)."""

    def __init__(self, dry_run: bool) -> None:
        import torch

        self.torch = torch
        self.cuda = torch.cuda.is_available()
        self.dry_run = dry_run

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def case(self, session, size: tuple[int, int], *, warmup: int, repeats: int) -> dict[str, Any]:
        torch = self.torch
        width, height = size
        scale = session.scale
        lr = photo(height // scale, width // scale)
        x = torch.from_numpy(lr.astype(session.io_dtype)).to(session.device)
        w = None if session.guidance is None else torch.tensor([session.guidance], dtype=torch.float32,
                                                                device=session.device)
        args = (x,) if w is None else (x, w)
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

        def run():
            with torch.inference_mode(), session._attention():
                session._module(*args)

        started = time.perf_counter()
        run()
        self.sync()
        first = (time.perf_counter() - started) * 1000
        for _ in range(max(0, warmup - 1)):
            run()
        self.sync()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            run()
            self.sync()
            times.append((time.perf_counter() - started) * 1000)
        row = {"output": [width, height], "padcfg": session.guidance is not None, "first_ms": round(first, 1),
               "median_ms": round(statistics.median(times), 2), "min_ms": round(min(times), 2),
               "max_ms": round(max(times), 2), "repeats": repeats}
        if self.cuda:
            row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
            row["peak_kind"] = "torch.cuda.max_memory_allocated, weights included"
        return row

    def host_to_host(self, session, size: tuple[int, int], repeats: int) -> float:
        """session.infer (numpy in, numpy out): what the upscaler sees, copies included; median ms."""
        width, height = size
        lr = photo(height // session.scale, width // session.scale)
        session.infer(lr, session.guidance)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            session.infer(lr, session.guidance)
            times.append((time.perf_counter() - started) * 1000)
        return round(statistics.median(times), 2)


def attention_kernels_used(session, size: tuple[int, int]) -> list[str]:
    """Names of the CUDA kernels whose names say attention, in one profiled run of `session`."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    width, height = size
    lr = torch.from_numpy(photo(height // session.scale, width // session.scale).astype(session.io_dtype))
    x = lr.to(session.device)
    w = torch.tensor([session.guidance], dtype=torch.float32, device=session.device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof, torch.inference_mode(), session._attention():
        session._module(x, w)
        torch.cuda.synchronize()
    names = {event.key for event in prof.key_averages()}
    words = ("flash", "fmha", "attention", "attn", "cudnn", "sdpa", "mem_eff")
    return sorted(name[:160] for name in names if any(word in name.lower() for word in words))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for gpu-check.json, gpu-check.png and gpu-tests.log")
    parser.add_argument("--dry-run", action="store_true", help="CPU stand-in: toy sizes, fp32, the same stages")
    parser.add_argument("--deadline", type=float, default=480.0,
                        help="seconds for the whole check; later cases are recorded as skipped")
    parser.add_argument("--followup", action="store_true",
                        help="only the layout and memory follow-up at the target case (after a first check)")
    parser.add_argument("--levers", action="store_true",
                        help="only the 4K PadCFG levers (FP8 feed-forward, flex attention, CUDA graphs; a later call)")
    parser.add_argument("--video", action="store_true",
                        help="only the video stage: 1080p -> 4K end to end against the model alone (needs PyAV)")
    parser.add_argument("--train-speed", action="store_true",
                        help="only the default model's training step at batch 64, eager and compiled, no host waits")
    parser.add_argument("--finetune", action="store_true",
                        help="only `trtsr finetune` of the full-size model, then its resume (a second call)")
    args = parser.parse_args(argv)
    say = lambda message: print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)  # noqa: E731
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="trtsr-gpu-check-"))  # engines, graphs and pictures stay out of OUT
    started = time.perf_counter()
    deadline = time.monotonic() + args.deadline
    report: dict[str, Any] = {
        "what": "trtsr one-call GPU check (benchmarks/gpu/check.py)", "dry_run": args.dry_run,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }

    def save() -> None:
        report["seconds"] = round(time.perf_counter() - started, 1)
        (args.out / "gpu-check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")

    def left() -> float:
        return deadline - time.monotonic()

    say("environment")
    report["environment"] = guarded(report, "environment", environment)
    save()
    single = {  # calls of their own: each runs one stage, records it and prints it
        "followup": lambda: followup(args, save, report, say, left),
        "levers": lambda: levers(args, save, report, say, left),
        "video": lambda: report.update(video=video(args, work, left)),
        "finetune": lambda: report.update(finetune=finetune(args, work, left)),
        "train_speed": lambda: report.update(train_speed=train_speed(args, work, left)),
    }
    for name, stage in single.items():
        if getattr(args, name):
            say(name)
            guarded(report, name, stage)
            save()
            print(json.dumps(report.get(name), indent=1), flush=True)
            return 0
    for stage, measure in (("architectures", architectures), ("mixed_sizes", mixed_sizes), ("dlpack", dlpack)):
        say(stage)
        guarded(report, stage, lambda measure=measure: measure(report, args, work, save, say, left))
        save()
    say("engine probe")
    report["engine_probe"] = guarded(report, "engine_probe", lambda: engine_probe(
        work, DRY_PROFILE if args.dry_run else GPU_PROFILE, args.dry_run))
    save()
    if not args.dry_run:
        say("gpu tests")
        report["gpu_tests"] = guarded(report, "gpu_tests", lambda: gpu_tests(args.out, timeout=150))
        save()
    say("trtsr run")
    report["trtsr_run"] = guarded(report, "trtsr_run", lambda: trtsr_run(work, args.dry_run))
    save()
    guarded(report, "models", lambda: measure_models(report, args, work, save, say, left))
    save()
    guarded(report, "plot", lambda: write_plot(report, args.out / "gpu-check.png"))
    save()
    shutil.rmtree(work, ignore_errors=True)
    say(f"wrote {args.out / 'gpu-check.json'}")
    print(summary(report), flush=True)
    return 0


# Architectures people run, as spandrel builds them: (label, constructor arguments), seeded. Real sizes on the
# GPU; the dry run keeps the families at toy widths.
ARCHITECTURES = {
    "RRDB (realesrgan-x4plus)": ("ESRGAN.ESRGAN", dict(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4)),
    "Compact (realesr-animevideov3)": ("Compact.Compact",
                                       dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4,
                                            act_type="prelu")),
    "SwinIR (classical x4)": ("SwinIR.SwinIR", dict(upscale=4, img_size=64, window_size=8, img_range=1.0,
                                                    depths=[6] * 6, embed_dim=180, num_heads=[6] * 6, mlp_ratio=2,
                                                    upsampler="pixelshuffle", resi_connection="1conv")),
}
DRY_ARCHITECTURES = {
    "RRDB (realesrgan-x4plus)": ("ESRGAN.ESRGAN", dict(in_nc=3, out_nc=3, num_filters=16, num_blocks=2, scale=4)),
    "Compact (realesr-animevideov3)": ("Compact.Compact",
                                       dict(num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=4, upscale=4,
                                            act_type="prelu")),
    "SwinIR (classical x4)": ("SwinIR.SwinIR", dict(upscale=4, img_size=32, window_size=8, img_range=1.0,
                                                    depths=[2], embed_dim=12, num_heads=[2], mlp_ratio=2,
                                                    upsampler="pixelshuffle", resi_connection="1conv")),
}
ARCH_SIZES = {"512->2048": (2048, 2048), "1080p->4k": (3840, 2160)}
COMPILED = ("RRDB (realesrgan-x4plus)",)  # the 15 fps target; the others compile in a later check
DRY_ARCH_SIZES = {"64->256": (256, 256), "96x54->384x216": (384, 216)}
# Output sizes of the mixed folder (x4 of photos people take and scan), and the size of the same-size folder.
MIXED_SIZES = [(1920, 1280), (2560, 1704), (3200, 2132), (1600, 2400), (4000, 2668), (2400, 1800), (1280, 960),
               (3840, 2160)]
DRY_MIXED_SIZES = [(96, 64), (128, 84), (160, 104), (80, 120), (192, 128), (120, 88), (64, 48), (176, 96)]


def seeded_checkpoint(work: Path, label: str, spec: tuple[str, dict]) -> Path:
    """A .pth of the architecture `spec` names (spandrel's module.Class and its arguments), seeded weights."""
    import importlib

    import torch

    from trtsr.models.external import import_spandrel

    import_spandrel()
    module_name, cls_name = spec[0].rsplit(".", 1)
    cls = getattr(importlib.import_module(f"spandrel.architectures.{module_name}"), cls_name)
    torch.manual_seed(0)
    net = cls(**spec[1])
    path = work / (label.split()[0].lower() + ".pth")
    torch.save(net.state_dict(), path)
    return path


def architectures(report, args, work: Path, save, say, left) -> None:
    from trtsr.sessions.torch_session import TorchSession, TorchSettings
    from trtsr.source import resolve_source

    bench = Bench(args.dry_run)
    specs = DRY_ARCHITECTURES if args.dry_run else ARCHITECTURES
    sizes = DRY_ARCH_SIZES if args.dry_run else ARCH_SIZES
    warm, reps = (1, 2) if args.dry_run else (3, 10)
    rows: list[dict[str, Any]] = []
    report["architectures"] = {"weights": "seeded (spandrel's constructors): the real networks' compute and memory",
                               "precision": "bf16 on CUDA (fp32 on the CPU dry run)", "rows": rows}
    for mode in ("eager", "compiled"):
        for label, spec in specs.items():
            if mode == "compiled" and not bench.cuda:
                rows.append({"model": label, "mode": mode, "skipped": "torch.compile is for CUDA"})
                continue
            if mode == "compiled" and label not in COMPILED:
                rows.append({"model": label, "mode": mode, "skipped": "compiled in a later check: one compile per "
                                                                       "size takes minutes, the RRDB target first"})
                continue
            if left() < (150 if mode == "compiled" else 40):
                rows.append({"model": label, "mode": mode, "skipped": "the check's time ran out"})
                continue
            say(f"architectures {label} {mode}")
            source = resolve_source(str(seeded_checkpoint(work, label, spec)), None)
            architecture = source.load_external().architecture  # as spandrel detected it
            session = TorchSession(source, w=None, settings=TorchSettings(compile=mode == "compiled"))
            try:
                for size_name, size in sizes.items():
                    row = guarded({}, "case", lambda size=size, session=session: bench.case(
                        session, size, warmup=warm, repeats=reps)) or {}
                    if row.get("median_ms"):
                        row["fps"] = round(1000 / row["median_ms"], 2)
                    rows.append({"model": label, "architecture": architecture, "mode": mode, "size": size_name,
                                 "session": session.backend_name, **(row or {"skipped": "failed"})})
                    save()
            finally:
                session.close()
                if mode == "compiled":
                    import torch

                    torch._dynamo.reset()


def mixed_sizes(report, args, work: Path, save, say, left) -> None:
    """First call at each new size against a warm one, then the folder loop: mixed sizes against one size."""
    from PIL import Image

    from trtsr import defaults
    from trtsr.pipeline.jobs import run_jobs, sort_jobs
    from trtsr.pipeline.upscaler import Upscaler
    from trtsr.sessions.torch_session import TorchSession, TorchSettings
    from trtsr.source import resolve_source

    bench = Bench(args.dry_run)
    sizes = DRY_MIXED_SIZES if args.dry_run else MIXED_SIZES
    record: dict[str, Any] = {"model": "default", "guidance": defaults.DEFAULT_MODEL_GUIDANCE[4], "sizes": []}
    report["mixed_sizes"] = record
    session = TorchSession(resolve_source("default", None), w=defaults.DEFAULT_MODEL_GUIDANCE[4],
                           settings=TorchSettings())
    record["session"] = session.backend_name
    try:
        for size in sizes:
            if left() < 60:
                record["sizes"].append({"output": list(size), "skipped": "the check's time ran out"})
                continue
            row = guarded({}, "case", lambda size=size: bench.case(session, size, warmup=2, repeats=3)) or {}
            if row.get("median_ms"):
                row["first_over_warm"] = round(row["first_ms"] / row["median_ms"], 2)
            record["sizes"].append(row or {"output": list(size), "skipped": "failed"})
            save()
        upscaler = Upscaler.from_session(session)
        upscaler.tile_for(64, 64)  # one-time costs (the CPU's cost probe) stay out of the folders' times

        def folder(name: str, outputs: list[tuple[int, int]]) -> dict[str, Any]:
            source_dir, out_dir = work / f"{name}-in", work / f"{name}-out"
            source_dir.mkdir(exist_ok=True)
            out_dir.mkdir(exist_ok=True)
            jobs = []
            for index, (width, height) in enumerate(outputs):
                source = source_dir / f"p{index}.jpg"
                Image.fromarray(photo(height // 4, width // 4, index)).save(source, quality=95)
                jobs.append((source, out_dir / source.name))
            started = time.perf_counter()
            failed = len(run_jobs(upscaler, sort_jobs(jobs, overwrite=True), overwrite=True).failed)
            seconds = time.perf_counter() - started
            megapixels = sum(w * h for w, h in outputs) / 1e6
            return {"pictures": len(outputs), "failed": failed, "seconds": round(seconds, 3),
                    "pictures_per_s": round(len(outputs) / seconds, 3),
                    "output_mp_per_s": round(megapixels / seconds, 3)}

        if left() > 90:
            say("mixed folder")
            record["mixed_folder"] = folder("mixed", sizes)  # sizes seen above: warm plans where they are kept
            record["fresh_mixed_folder"] = folder("fresh", [(w + 64, h + 32) for w, h in sizes])  # sizes never seen
            middle = sizes[len(sizes) // 2]
            record["same_size_folder"] = folder("same", [middle] * len(sizes))
            record["fresh_over_same_mp_per_s"] = round(record["fresh_mixed_folder"]["output_mp_per_s"]
                                                       / record["same_size_folder"]["output_mp_per_s"], 3)
    finally:
        session.close()


def dlpack(report, args, work: Path, save, say, left) -> None:
    """A frame on the device through upscale_tensor against the same frame through host memory."""
    import torch

    from trtsr import defaults
    from trtsr.pipeline.upscaler import Upscaler
    from trtsr.sessions.torch_session import TorchSession, TorchSettings
    from trtsr.source import resolve_source

    width, height = (DRY_SIZES if args.dry_run else GPU_SIZES)["4k"]
    session = TorchSession(resolve_source("default", None), w=defaults.DEFAULT_MODEL_GUIDANCE[4],
                           settings=TorchSettings())
    upscaler = Upscaler.from_session(session)
    frame = photo(height // 4, width // 4)
    device = session.device
    tensor = torch.from_numpy(frame).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    record: dict[str, Any] = {"model": "default", "output": [width, height], "session": session.backend_name}
    report["dlpack"] = record
    try:
        from trtsr.measure import timed_runs

        def timed(run) -> float:
            return round(statistics.median(timed_runs(run, warmup=1, repeats=5, sync=sync)[1]), 2)

        record["host_ms"] = timed(lambda: upscaler.upscale(frame))  # numpy in, numpy out
        record["device_ms"] = timed(lambda: upscaler.upscale_tensor(tensor))  # device in, device out
        out = upscaler.upscale_tensor(tensor)
        record["device_result"] = {"type": type(out).__name__, "device": str(out.device), "dtype": str(out.dtype),
                                   "shape": list(out.shape)}
        host = upscaler.upscale(frame).astype(np.int16)
        record["max_level_difference"] = int(np.abs(out.cpu().numpy().astype(np.int16) - host).max())
        record["saved_ms_per_frame"] = round(record["host_ms"] - record["device_ms"], 2)
    finally:
        session.close()


def finetune(args, work: Path, left) -> dict[str, Any]:
    """`trtsr finetune` as a user runs it: the full-size model (seeded weights: the real compute) on the test
    photos in bf16 for a few hundred steps, then `--resume` for more; steps per second and peak GPU memory
    as the command prints them, and that the resume went on from where the first run stopped."""
    import re

    model, steps, more = ("tiny", 4, 6) if args.dry_run else ("gendr-pix", 200, 250)
    config = work / "finetune.toml"
    config.write_text("\n".join([
        'target = "truth"', 'degradation = "moderate"', "scale = 4", "scales = [4]",
        f"crop = {120 if args.dry_run else 248}",  # crop + 8 a multiple of 64: no alignment pad
        f"batch = {2 if args.dry_run else 4}", f"bank_size = {8 if args.dry_run else 64}", "holdout_every = 0",
        "lr = 1e-5", "adv_start = 1000000", "perceptual_weight = 0.0", f"checkpoint_every = {more}",
        "log_every = 50", f'bank_dir = "{work / "finetune-bank"}"', f'device = "{"cpu" if args.dry_run else "cuda"}"',
    ]) + "\n")
    run_dir = work / "finetune-run"
    record: dict[str, Any] = {"model": model, "config": config.read_text().splitlines(), "runs": []}
    for label, extra, until in (("first", [], steps), ("resume", ["--resume"], more)):
        if left() < 60:
            record["runs"].append({"run": label, "skipped": "the check's time ran out"})
            break
        command = [sys.executable, "-m", "trtsr", "finetune", model, "-c", str(config), "-d", str(DATA), "-o",
                   str(run_dir), "--steps", str(until), "--minutes", f"{max(1.0, (left() - 30) / 60):.1f}", *extra]
        started = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, timeout=max(60, left() - 10))
        row: dict[str, Any] = {"run": label, "command": " ".join(command[3:]), "exit_code": proc.returncode,
                               "seconds": round(time.perf_counter() - started, 1), "stdout": proc.stdout[-1500:],
                               "stderr": proc.stderr[-1500:]}
        pace = re.search(r"to step (\d+) on (\S+); (\d+) steps in (\d+) s \(([\d.]+)/s\)"
                         r"(?:, peak GPU memory ([\d.]+) GiB)?", proc.stdout.replace("\n", " "))
        if pace:
            row.update(step=int(pace[1]), device=pace[2], steps=int(pace[3]), steps_per_s=float(pace[5]),
                       peak_gib=float(pace[6]) if pace[6] else None)
        resumed = re.search(r"resumed at step (\d+)", proc.stdout + proc.stderr)  # the console says it
        if resumed:
            row["resumed_at"] = int(resumed[1])
        record["runs"].append(row)
        if proc.returncode != 0:
            break
    return record


TRAIN_MODES = ("", "default", "reduce-overhead")  # eager, then torch.compile without and with CUDA graphs


def train_speed(args, work: Path, left) -> dict[str, Any]:
    """The default model's training steps as the distill recipe runs them on a GPU (small preset, x2/x3/x4, crop 120,
    batch 64, bf16 autocast, the bank on the device), per compile mode: steps per second over steps that are never
    read back, under `torch.cuda.set_sync_debug_mode("error")`, so a host wait inside a step fails that mode with its
    message. The bank's rows come from the test photos; its teacher rows hold the HR crops (the teacher's pixels
    do not change a step's compute, and its 33 MB stay off the visit)."""
    import dataclasses

    import torch

    from trtsr.training.config import TrainConfig
    from trtsr.training.data import build_bank, list_images, teacher_key
    from trtsr.training.loop import StepLosses, Trainer
    from trtsr.training.teacher import RRDBNet

    cuda = torch.cuda.is_available() and not args.dry_run
    batch, rows, warm, timed = (64, 512, 60, 200) if cuda else (2, 8, 2, 3)
    recipe = ROOT / "src" / "trtsr" / "training" / "configs" / "distill.toml"
    base = TrainConfig.from_toml(recipe, batch=batch, device="cuda" if cuda else "cpu", holdout_every=0,
                                 data=[str(DATA)])
    bank = build_bank(list_images([DATA]), crop=base.crop, scale=base.train_scales, size=rows, seed=0, teacher=None,
                      degradation=base.degradation, workers=8 if cuda else 1)
    for scale in base.teacher_scales:
        bank[teacher_key(scale)] = bank["hr"].clone()
    record: dict[str, Any] = {"recipe": str(recipe.relative_to(ROOT)), "batch": batch, "crop": base.crop,
                              "scales": list(base.train_scales), "bank_rows": rows, "timed_steps": timed,
                              "target_steps_per_s": 40, "modes": []}
    for mode in TRAIN_MODES:
        row: dict[str, Any] = {"compile": mode or "eager"}
        record["modes"].append(row)
        if mode and not cuda:
            row["skipped"] = "torch.compile is timed on CUDA"
            continue
        if left() < 90:
            row["skipped"] = "the check's time ran out"
            continue
        trainer = Trainer(dataclasses.replace(base, compile=mode), work / f"train-{mode or 'eager'}",
                          teacher=RRDBNet(feat=8, grow=4, blocks=1))
        trainer.bank = {k: v.to(trainer.device) for k, v in bank.items()}
        started = time.perf_counter()
        for _ in range(warm):  # every scale and branch compiled (or warmed) before the clock starts
            trainer.train_step()
        row["warm_up_s"] = round(time.perf_counter() - started, 1)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.set_sync_debug_mode("error")
        try:
            started = time.perf_counter()
            for _ in range(timed):
                values = trainer.advance()
            if cuda:
                torch.cuda.set_sync_debug_mode("default")
            last = StepLosses.read(values)
            trainer.check_finite()
            seconds = time.perf_counter() - started
        except RuntimeError as exc:  # the sync debug mode's error names the operation that waited
            row["host_wait"] = str(exc).splitlines()[0][:300]
            continue
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode("default")
        row.update(steps_per_s=round(timed / seconds, 2), seconds=round(seconds, 2), last_total=round(last.total, 4),
                   host_waits="none (sync debug mode 'error' raised nothing)" if cuda else "not checked on the CPU")
        if cuda:
            row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return record


def video(args, work: Path, left) -> dict[str, Any]:
    """1080p -> 4K (x2) with the default model at its w through `-b torch`: `upscale_video` end to end (decode
    ahead, encode behind, h264 crf 18) against the model alone on a frame of the same size (the bare module on
    device tensors, and the host-to-host session call), both after a warm-up frame. The clip: a photograph panned
    a pixel a frame, h264."""
    from fractions import Fraction

    from trtsr.pipeline.upscaler import Upscaler
    from trtsr.pipeline.video import VideoSettings, require_av, upscale_video

    av = require_av()
    width, height, frames, fps = (96, 64, 6, 12) if args.dry_run else (1920, 1080, 72, 24)
    scene = photo(height + frames, width + frames, 2)
    clip, target = work / "clip.mp4", work / "clip_x2.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            pixels = np.ascontiguousarray(scene[index:index + height, index:index + width])
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    record: dict[str, Any] = {"input": [width, height], "output": [2 * width, 2 * height], "frames": frames,
                              "model": "default", "scale": 2, "pyav": av.__version__}
    with Upscaler("default", backend="torch", scale=2) as up:
        session = up._session
        record["backend"] = up.backend_name
        record["w"] = session.guidance
        bench = Bench(args.dry_run)
        bare = bench.case(session, (2 * width, 2 * height), warmup=2, repeats=3 if args.dry_run else 10)
        record["model_alone"] = bare
        record["host_to_host_median_ms"] = bench.host_to_host(session, (2 * width, 2 * height), 3)
        if left() < 60:
            record["end_to_end"] = {"skipped": "the check's time ran out"}
            return record
        up.upscale(np.ascontiguousarray(scene[:height, :width]))  # warm like the model alone: plans, kernels
        done = upscale_video(up, clip, target, VideoSettings(crf=18), overwrite=True)
    model_fps = 1000.0 / bare["median_ms"]
    record["end_to_end"] = {"frames": done.frames, "seconds": round(done.seconds, 3), "fps": round(done.fps, 2),
                            "size_out": list(done.size_out), "skipped_packets": len(done.skipped),
                            "written_bytes": target.stat().st_size if target.is_file() else 0}
    record["model_alone_fps"] = round(model_fps, 2)
    record["end_to_end_vs_model"] = round(done.fps / model_fps, 3)
    return record


def measure_models(report, args, work: Path, save, say, left) -> None:
    import torch

    from trtsr import defaults
    from trtsr.models import build_preset, load_model
    from trtsr.sessions.torch_session import TorchSession, TorchSettings

    bench = Bench(args.dry_run)
    sizes = DRY_SIZES if args.dry_run else GPU_SIZES
    big = "tiny" if args.dry_run else "gendr-pix"  # the full-size model: random weights, the real compute
    warm, reps = (1, 2) if args.dry_run else (2, 5)
    say(f"building {big}")
    t0 = time.perf_counter()
    net = build_preset(big)
    report["full_size_build_seconds"] = round(time.perf_counter() - t0, 1)
    kernels = ("auto",) if args.dry_run else KERNELS
    four_k = sizes["4k"]

    def session(model, guidance, **settings):
        return TorchSession(model, scale=4, w=guidance, settings=TorchSettings(**settings))

    # 5. attention kernels, full-size model, 4K, PadCFG, eager
    attention: dict[str, Any] = {"model": big, "output": list(four_k), "padcfg": True, "precision": "bf16",
                                 "cases": {}}
    report["attention"] = attention
    padcfg = session(net, defaults.GUIDANCE)
    report["full_size_session"] = padcfg.backend_name
    for kernel in kernels:
        say(f"attention {kernel}")
        padcfg.settings = TorchSettings(attention=kernel)
        attention["cases"][kernel] = guarded(attention, f"kernel_{kernel}",
                                             lambda: bench.case(padcfg, four_k, warmup=warm, repeats=reps))
        save()
    timed = {k: v["median_ms"] for k, v in attention["cases"].items() if v}
    best = min(timed, key=timed.get) if timed else "auto"
    attention["fastest"] = best
    padcfg.settings = TorchSettings(attention=best)
    if bench.cuda:
        attention["auto_ran_kernels"] = guarded(attention, "profile", lambda: attention_kernels_used(
            session_with(padcfg, "auto"), four_k))
        padcfg.settings = TorchSettings(attention=best)
    save()
    # 6. trtsr run's folder loop against the bare model, same pictures, same session
    say("folder")
    report["folder"] = guarded(report, "folder", lambda: folder_throughput(padcfg, bench, four_k, work, warm, reps))
    save()
    # 7. compiled: the target case first
    compiled: dict[str, Any] = {}
    report["compiled"] = compiled
    if bench.cuda and left() > 150:
        say(f"compile {big} 4k PadCFG ({best} attention)")
        padcfg.close()
        net_c = session(net, defaults.GUIDANCE, compile=True, attention=best)
        compiled[f"{big} 4k padcfg"] = row = guarded(compiled, "full", lambda: bench.case(
            net_c, four_k, warmup=warm, repeats=reps))
        if row:
            row["host_to_host_ms"] = guarded(compiled, "full_h2h", lambda: bench.host_to_host(net_c, four_k, 3))
            row["psnr_vs_eager_db"] = guarded(compiled, "agreement", lambda: agreement(net_c, net, four_k))
        net_c.close()
        torch._dynamo.reset()
        save()
    elif not bench.cuda:
        compiled["skipped"] = "torch.compile is for CUDA (the torch backend refuses it on the CPU)"
    # 8. latency, eager, both models, PadCFG on and off; 8K last
    latency: list[dict[str, Any]] = []
    report["latency"] = latency
    default_net = load_model("default")
    for size_name in ("1080p", "4k", "8k"):
        for model_name, model in (("default", default_net), (big, net)):
            for guidance in (defaults.GUIDANCE, None):
                label = f"{model_name} {size_name} {'padcfg' if guidance else 'no padcfg'}"
                long = size_name == "8k" and model_name == big
                if left() < (90 if long else 20):
                    latency.append({"case": label, "skipped": "the check's time ran out"})
                    continue
                say(f"latency {label}")
                run = session(model, guidance, attention=best)
                row = guarded({}, "case", lambda run=run, s=size_name, long=long: bench.case(
                    run, sizes[s], warmup=1 if long else warm, repeats=2 if long else reps))
                latency.append({"case": label, "model": model_name, "attention": best,
                                **(row or {"skipped": "failed (out of memory?)"})})
                run.close()
                save()
        if size_name == "4k" and bench.cuda and left() > 120:
            say("compile default 4k PadCFG")
            small = session(default_net, defaults.GUIDANCE, compile=True, attention=best)
            compiled["default 4k padcfg"] = guarded(compiled, "default", lambda small=small: bench.case(
                small, four_k, warmup=warm, repeats=reps))
            small.close()
            torch._dynamo.reset()
            save()
    if bench.cuda and left() > 60:
        say("peak with the feed-forward chunked")
        chunked = session(net, defaults.GUIDANCE, attention=best, chunk_feed_forward=True)
        attention["chunked_feed_forward"] = guarded(attention, "chunked", lambda: bench.case(
            chunked, four_k, warmup=1, repeats=3))
        chunked.close()
        save()


def agreement(compiled_session, net, size: tuple[int, int]) -> float:
    """PSNR of the compiled session's output against an eager session's on the same photo (same weights)."""
    from trtsr import defaults
    from trtsr.sessions.torch_session import TorchSession

    width, height = size
    lr = photo(height // compiled_session.scale, width // compiled_session.scale)
    got = compiled_session.infer(lr, compiled_session.guidance)
    eager = TorchSession(net, scale=compiled_session.scale, w=defaults.GUIDANCE)
    try:
        return round(psnr(got, eager.infer(lr, eager.guidance)), 2)
    finally:
        eager.close()


def followup(args, save, report, say, left) -> None:
    """Layout and memory levers at the target case (full-size, 4K, PadCFG), the plain case re-measured first in
    the same process: channels-last eager and compiled, the chunked feed-forward's peak, and 8K without PadCFG."""
    import torch

    from trtsr import defaults
    from trtsr.models import build_preset
    from trtsr.sessions.torch_session import TorchSession, TorchSettings

    bench = Bench(args.dry_run)
    sizes = DRY_SIZES if args.dry_run else GPU_SIZES
    big = "tiny" if args.dry_run else "gendr-pix"
    warm, reps = (1, 2) if args.dry_run else (2, 5)
    net = build_preset(big)
    cases: dict[str, Any] = {}
    report["followup"] = cases
    plans = [("eager", {}), ("eager channels-last", {"channels_last": True}),
             ("eager chunked feed-forward", {"chunk_feed_forward": True})]
    for label, settings in plans:
        if left() < 30:
            cases[label] = {"skipped": "the check's time ran out"}
            continue
        say(f"followup {label}")
        run = TorchSession(net, scale=4, w=defaults.GUIDANCE, settings=TorchSettings(**settings))
        cases[label] = guarded(cases, label, lambda run=run: bench.case(run, sizes["4k"], warmup=warm, repeats=reps))
        if settings.get("chunk_feed_forward"):  # undo, so later cases run the plain blocks
            for block in net.unet.modules():
                if hasattr(block, "set_chunk_feed_forward"):
                    block.set_chunk_feed_forward(None, 0)
        run.close()
        net = net.to(memory_format=torch.contiguous_format)
        save()
    if left() > 60:
        say("followup 8k no padcfg")
        run = TorchSession(net, scale=4, w=None)
        cases["eager 8k no padcfg"] = guarded(cases, "8k", lambda: bench.case(run, sizes["8k"], warmup=1, repeats=2))
        run.close()
        save()
    if bench.cuda and left() > 150:
        say("followup compiled channels-last")
        run = TorchSession(net, scale=4, w=defaults.GUIDANCE,
                           settings=TorchSettings(compile=True, channels_last=True))
        cases["compiled channels-last"] = row = guarded(cases, "compiled", lambda: bench.case(
            run, sizes["4k"], warmup=warm, repeats=reps))
        if row:
            row["psnr_vs_eager_db"] = guarded(cases, "agreement", lambda: agreement(run, net, sizes["4k"]))
        run.close()
        save()


LEVER_PLANS = (  # (label, what is changed on a fresh copy of the network); plain eager first, as the yardstick
    ("eager", None),
    ("eager fp8 feed-forward", "fp8"),
    ("eager flex self-attention", "flex"),
    ("eager cuda graph", "graph"),
    ("compiled", "compile"),
    ("compiled reduce-overhead (cuda graphs)", "compile-graphs"),
)


def levers(args, save, report, say, left) -> None:
    """The 4K PadCFG pass of the full-size model with one lever at a time (benchmarks/gpu/levers.py): FP8
    feed-forward matmuls, self-attention through a Triton kernel (flex_attention, compiled), the eager module as
    one CUDA graph, and compiled with CUDA graphs; each against plain eager (and compiled against compiled) in the
    same process, with the PSNR of its picture against plain eager's. The dry run takes the tiny model on the CPU
    (flex uncompiled; CUDA graphs and compiled cases recorded as skipped)."""
    import copy

    import levers as lever_code
    import torch

    from trtsr import defaults
    from trtsr.models import build_preset
    from trtsr.sessions.torch_session import TorchSession, TorchSettings

    bench = Bench(args.dry_run)
    size = (DRY_SIZES if args.dry_run else GPU_SIZES)["4k"]
    warm, reps = (1, 2) if args.dry_run else (2, 5)
    source = build_preset("tiny" if args.dry_run else "gendr-pix")
    cases: dict[str, Any] = {}
    report["levers"] = {"model": source.config.name, "output": list(size), "padcfg_w": defaults.GUIDANCE,
                        "cases": cases}
    width, height = size
    reference = None
    for label, lever in LEVER_PLANS:
        needs_cuda = lever in ("graph", "compile", "compile-graphs")
        if needs_cuda and not bench.cuda:
            cases[label] = {"skipped": "needs CUDA"}
            continue
        if left() < (240 if lever and lever.startswith("compile") else 40):
            cases[label] = {"skipped": "the check's time ran out"}
            continue
        say(f"levers {label}")
        net = copy.deepcopy(source)
        row: dict[str, Any] = {}
        run = TorchSession(net, scale=4, w=defaults.GUIDANCE,
                           settings=TorchSettings(compile=lever == "compile", chunk_feed_forward=False))
        # the levers go in on the device, in the session's precision
        unet = getattr(run._module, "_orig_mod", run._module).model.unet
        if lever == "fp8":
            row["linears"] = lever_code.fp8_feed_forward(unet)
        elif lever == "flex":
            row["blocks"] = lever_code.flex_self_attention(unet, compiled=bench.cuda)
        if lever == "compile-graphs":
            run._module = torch.compile(run._module, mode="reduce-overhead", dynamic=False)
        if lever == "graph":
            lr = photo(height // run.scale, width // run.scale)
            x = torch.from_numpy(lr.astype(run.io_dtype)).to(run.device)
            w = torch.tensor([run.guidance], dtype=torch.float32, device=run.device)
            run._module = lever_code.CudaGraphModule(run._module, (x, w), run._attention)
        result = guarded(cases, label, lambda run=run: bench.case(run, size, warmup=warm, repeats=reps))
        if result:
            row.update(result)
            lr = photo(height // run.scale, width // run.scale)
            picture = run.infer(lr, run.guidance)
            if reference is None:
                reference = picture
            else:
                row["psnr_vs_eager_db"] = round(psnr(picture, reference), 2)
        cases[label] = row
        run.close()
        del net, run
        if bench.cuda:
            torch.cuda.empty_cache()
        save()
    plain = (cases.get("eager") or {}).get("median_ms")
    compiled = (cases.get("compiled") or {}).get("median_ms")
    for label, row in cases.items():
        base = compiled if label.startswith("compiled ") else plain
        if base and row.get("median_ms") and label not in ("eager", "compiled"):
            row["speedup"] = round(base / row["median_ms"], 3)


def session_with(session, kernel: str):
    """The same session with another attention setting (the module and weights are shared)."""
    from trtsr.sessions.torch_session import TorchSettings

    session.settings = TorchSettings(attention=kernel)
    return session


def folder_throughput(session, bench: Bench, size: tuple[int, int], work: Path, warm: int, reps: int) -> dict:
    """`trtsr run`'s job runner over FOLDER_PICTURES photos (JPEG, upscaled to `size`), against the bare module's
    median on the same pictures and the host-to-host session call."""
    from PIL import Image

    from trtsr.pipeline.jobs import run_jobs, sort_jobs
    from trtsr.pipeline.upscaler import Upscaler

    width, height = size
    folder, out = work / "folder-in", work / "folder-out"
    folder.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    jobs = []
    for index in range(FOLDER_PICTURES):
        source = folder / f"p{index}.jpg"
        Image.fromarray(photo(height // session.scale, width // session.scale, index)).save(source, quality=95)
        jobs.append((source, out / f"p{index}_x4.jpg"))
    bare = bench.case(session, size, warmup=warm, repeats=reps)
    host = bench.host_to_host(session, size, 3)
    upscaler = Upscaler.from_session(session)
    started = time.perf_counter()
    failed = len(run_jobs(upscaler, sort_jobs(jobs, overwrite=True), overwrite=True).failed)
    seconds = time.perf_counter() - started
    written = sum(1 for _, target in jobs if target.is_file())
    bare_total = bare["median_ms"] * FOLDER_PICTURES / 1000
    return {"pictures": FOLDER_PICTURES, "input": [width // session.scale, height // session.scale],
            "output": [width, height], "format": "jpg", "failed": failed, "written": written,
            "run_loop_seconds": round(seconds, 3), "bare_module_median_ms": bare["median_ms"],
            "host_to_host_median_ms": host, "bare_total_seconds": round(bare_total, 3),
            "throughput_vs_bare": round(bare_total / seconds, 3)}


def write_plot(report: dict[str, Any], path: Path) -> None:
    from trtsr.bench import plot_results

    rows = []
    for row in report.get("latency", []):
        if row.get("median_ms") is not None:
            rows.append({"backend": f"{row['model']} eager", "output_size": row["output"], "padcfg": row["padcfg"],
                         "median_ms": row["median_ms"]})
    for name, row in (report.get("compiled") or {}).items():
        if isinstance(row, dict) and row.get("median_ms") is not None:
            rows.append({"backend": f"{name.split()[0]} compiled", "output_size": row["output"],
                         "padcfg": row["padcfg"], "median_ms": row["median_ms"]})
    for kernel, row in ((report.get("attention") or {}).get("cases") or {}).items():
        if row:
            rows.append({"backend": f"full-size, {kernel} attention", "output_size": row["output"],
                         "padcfg": True, "median_ms": row["median_ms"]})
    env = report.get("environment") or {}
    device = {"name": (env.get("gpu") or {}).get("name") or "CPU (dry run)"}
    versions = {k: v for k, v in (env.get("versions") or {}).items() if v}
    plot_results({"device": device, "versions": versions, "results": rows, "model": "default and full-size",
                  "scale": 4, "repeats": "5 (8K full-size: 2)", "warmup": "1-2"}, path)


def summary(report: dict[str, Any]) -> str:
    lines = ["", "== summary =="]
    tests = report.get("gpu_tests") or {}
    lines.append(f"gpu tests: {tests.get('summary', report.get('gpu_tests_error', 'not run'))}")
    run = report.get("trtsr_run") or {}
    whole, tiled = run.get("whole", {}).get("all_good"), run.get("tiled", {}).get("all_good")
    lines.append(f"trtsr run: whole {whole}, tiled {tiled}, photo PSNR {run.get('photo_psnr_vs_onnxruntime_fp32')}")
    attention = report.get("attention") or {}
    for kernel, row in (attention.get("cases") or {}).items():
        lines.append(f"attention {kernel}: {row and row['median_ms']} ms, peak {row and row.get('peak_gib')} GiB")
    lines.append(f"auto ran: {attention.get('auto_ran_kernels')}")
    folder = report.get("folder") or {}
    lines.append(f"folder: {folder.get('throughput_vs_bare')} of bare ({folder.get('run_loop_seconds')} s)")
    for name, row in (report.get("compiled") or {}).items():
        if isinstance(row, dict):
            lines.append(f"compiled {name}: {row.get('median_ms')} ms, first {row.get('first_ms')} ms, "
                         f"peak {row.get('peak_gib')}")
    for row in report.get("latency", []):
        lines.append(f"{row['case']}: {row.get('median_ms', row.get('skipped'))} ms, peak {row.get('peak_gib')}")
    errors = [k for k in report if k.endswith("_error")]
    lines.append(f"errors: {errors}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
