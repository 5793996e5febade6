"""Quality of the default model's quantised graphs, and the full-size graph's quantised export and engine.

    python benchmarks/calibration.py --data ../shared/data/train [--holdout-every 8] [--samples 32]
                                     [--full-size] [-o benchmarks/results] [--name calibration]

Default model (part 1): the shipped x4 PadCFG graph (fp32) is quantised by `trtsr.calibration.calibrate`
to int8, fp8 and int8-weights with the settings `trtsr calibrate` uses by default (fp16 elsewhere),
calibrated on the training split of --data (the images `trtsr train` trains on with --holdout-every),
and scored on the held-out split exactly as `trtsr evaluate` scores (clean bicubic and realistic x4
inputs): Y-PSNR against ground truth for the fp32 graph and each quantised graph, and the PSNR of
each quantised output against the fp32 output. Everything runs in ONNX Runtime on the CPU.

Full size (part 2, --full-size): `gendr-pix` (seeded random weights) exported fp32, quantised to int8
with 8 calibration crops of 64x64, and built by TensorRT-RTX for sm89 (1080p profile): time and size of
each step. Random weights say nothing about quality; this part measures cost only.

Writes NAME.json (device, versions, command, every figure) and NAME.png.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "trtsr" / "assets"
PRECISIONS = ("int8", "fp8", "int8-weights")


def default_model_part(args, work: Path) -> dict:
    import torch

    from trtsr.backends import OnnxRuntimeSettings
    from trtsr.calibration import CalibrationSettings, calibrate
    from trtsr.sessions.onnxruntime_session import OnnxRuntimeSession
    from trtsr.training.data import list_images, split_holdout
    from trtsr.training.evaluate import evaluate_methods, psnr

    work.mkdir(parents=True)
    train, held_out = split_holdout(list_images([args.data]), args.holdout_every)
    calib = work / "calibration-images"
    calib.mkdir()
    for path in train:
        shutil.copy(path, calib / path.name)
    for name in ("default-x4.onnx", "default-x4.json", "default.onnx.data"):
        shutil.copy(ASSETS / name, work / name)
    graphs = {"fp32": work / "default-x4.onnx"}
    steps = {}
    for precision in PRECISIONS:
        started = time.perf_counter()
        result = calibrate(work / "default-x4.onnx", calib, work / f"{precision}.onnx",
                           CalibrationSettings(precision=precision, samples=args.samples), progress=print)
        steps[precision] = {"seconds": round(time.perf_counter() - started, 1),
                            "bytes": result.onnx_path.stat().st_size,
                            **{k: result.spec.quantization[k] for k in ("quantizer", "method", "samples", "sizes",
                                                                         "float_type", "quantized_layers",
                                                                         "compute_layers")}}
        graphs[precision] = result.onnx_path

    sessions = {name: OnnxRuntimeSession(path, OnnxRuntimeSettings(cuda=False)) for name, path in graphs.items()}

    def method(name):
        def run(lr: torch.Tensor) -> torch.Tensor:
            hwc = np.ascontiguousarray(lr.permute(1, 2, 0).numpy() * 255.0, dtype=np.float32)
            out = sessions[name].infer(hwc, sessions[name].guidance)
            return torch.from_numpy(np.clip(out, 0, 255) / 255.0).permute(2, 0, 1).float()
        return run

    outputs: dict[tuple[str, str], dict[str, torch.Tensor]] = {}

    def keep(degradation, image, name, out):
        outputs.setdefault((degradation, image), {})[name] = (out.clamp(0, 1) * 255).round()

    table = evaluate_methods(held_out, {name: method(name) for name in graphs}, 4, progress=print, keep=keep)
    vs_fp32: dict[str, dict[str, float]] = {}
    for degradation in table:
        for precision in PRECISIONS:
            values = [psnr(o[precision], o["fp32"]) for (d, _), o in outputs.items() if d == degradation]
            vs_fp32.setdefault(degradation, {})[precision] = float(np.mean(values))
    return {
        "calibration_images": len(train), "held_out_images": [p.name for p in held_out],
        "quantize": steps, "quality": table, "psnr_vs_fp32": vs_fp32,
    }


def _timed(*args: str, cwd: Path) -> float:
    """One trtsr command in its own process (each step gets the machine's whole memory); its seconds."""
    import subprocess

    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "trtsr", *args], cwd=cwd, capture_output=True, text=True)
    print(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"trtsr {' '.join(args)} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return round(time.perf_counter() - started, 1)


def full_size_part(work: Path) -> dict:
    images = work / "full-calibration"
    images.mkdir()
    for path in sorted((ROOT / "tests" / "data").glob("*.jpg"))[:4]:
        shutil.copy(path, images / path.name)
    row: dict = {"export_fp32_seconds": _timed("export", "-m", "gendr-pix", "-p", "fp32",
                                               "-o", "full.onnx", cwd=work)}
    row["calibrate_int8_seconds"] = _timed("calibrate", "full.onnx", "-i", images.name, "-n", "8", "-s", "64",
                                           "-o", "full-int8.onnx", cwd=work)
    spec = json.loads((work / "full-int8.json").read_text())
    data = work / spec["onnx_data_file"] if spec["onnx_data_file"] else None
    row["int8_graph_bytes"] = (work / "full-int8.onnx").stat().st_size + (data.stat().st_size if data else 0)
    row["quantized_layers"] = spec["quantization"]["quantized_layers"]
    row["compute_layers"] = spec["quantization"]["compute_layers"]
    row["engine_build_seconds"] = _timed("build", "full-int8.onnx", "-P", "1080p", "--backend", "tensorrt-rtx",
                                         "--cc", "sm89", "-o", "full-int8.engine", cwd=work)
    meta = json.loads((work / "full-int8.engine.json").read_text())
    row["engine_bytes"] = meta["engine_bytes"]
    row["engine_build_seconds_backend"] = meta["build_seconds"]
    row["engine"] = f"tensorrt-rtx {meta['backend_version']}, sm89, profile 1080p"
    return row


def plot(report: dict, path: Path) -> None:
    part = report["default_model"]
    width, left, row_h = 1000, 260, 24
    rows = [(f"{deg}: {name}", scores["psnr_y"]) for deg, methods in part["quality"].items()
            for name, scores in methods.items()]
    rows += [(f"{deg}: {name} vs fp32", value) for deg, values in part["psnr_vs_fp32"].items()
             for name, value in values.items()]
    from trtsr.measure import chart_draw

    img = Image.new("RGB", (width, 70 + row_h * len(rows)), "white")
    draw = chart_draw(img)
    draw.text((10, 8), f"default model x4, quantised graphs in ONNX Runtime: {report['device']['name']}", fill="black")
    draw.text((10, 28), "blue: Y-PSNR vs ground truth (held out); orange: PSNR vs the fp32 graph's output (dB)",
              fill="gray")
    top = max(value for _, value in rows)
    y = 50
    for label, value in rows:
        colour = (230, 124, 32) if label.endswith("vs fp32") else (21, 101, 192)
        bar = int((width - left - 80) * value / top)
        draw.text((10, y + 5), label, fill="black")
        draw.rectangle([left, y + 4, left + max(bar, 1), y + row_h - 4], fill=colour)
        draw.text((left + bar + 6, y + 5), f"{value:.2f}", fill="black")
        y += row_h
    img.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--holdout-every", type=int, default=8)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--merge", type=Path, help="an earlier NAME.json whose default-model part to keep "
                                                   "(with --full-size: run only the full-size part)")
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--name", default="calibration")
    args = parser.parse_args()

    from trtsr.measure import environment

    report = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        **environment(),
    }
    import modelopt

    report["versions"]["nvidia-modelopt"] = modelopt.__version__
    with tempfile.TemporaryDirectory(prefix="trtsr-calibration-") as tmp:
        work = Path(tmp)
        if args.merge is not None:
            report["default_model"] = json.loads(args.merge.read_text())["default_model"]
            report["default_model_command"] = json.loads(args.merge.read_text())["command"]
        else:
            report["default_model"] = default_model_part(args, work / "default")
        if args.full_size:
            (work / "full").mkdir()
            report["full_size"] = full_size_part(work / "full")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / f"{args.name}.png")
    print(json.dumps({k: report[k] for k in ("default_model", "full_size") if k in report}, indent=2))


if __name__ == "__main__":
    main()
