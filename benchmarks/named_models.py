"""The named models (and the default) on held-out photos at x4, through `trtsr run`'s own path on the CPU.

    python benchmarks/named_models.py -d ../shared/data/train -o benchmarks/results/named-models [--builds]

Quality: the photos `trtsr train` holds out (every 8th in sorted order), each downscaled by 4 two ways
(`trtsr.training.evaluate.DEGRADATIONS`: clean anti-aliased bicubic, and realistic blur + noise + JPEG 75),
upscaled by Pillow's BICUBIC and LANCZOS and by each model through `trtsr.pipeline.Upscaler` on ONNX
Runtime (its cached fp32 graph, tiles of 128 input pixels), and scored on luma (`score`: Y-PSNR, SSIM,
detail against the ground truth's high frequencies). Speed: median of 3 runs of a 256x256 crop of a real
photo to 1024x1024, seconds per output megapixel. `--builds`: each model's fp16 graph built into a
TensorRT-RTX engine with the default profiles (1080p, 4k, 8k output) on this machine, time and size.
Writes NAME.json (device, versions, command) and NAME.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("default", "realesr-animevideov3", "realesrgan-x4plus-anime", "realesrgan-x4plus")


def through(upscaler):
    import torch

    def run(lr):
        arr = (lr.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        out = upscaler.upscale(np.ascontiguousarray(arr))
        return torch.from_numpy(out.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-d", "--data", type=Path, required=True)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--holdout-every", type=int, default=8)
    parser.add_argument("--builds", action="store_true")
    args = parser.parse_args()

    from trtsr.measure import environment
    from trtsr.pipeline import RunRequest, Upscaler
    from trtsr.training.data import list_images, split_holdout
    from trtsr.training.evaluate import evaluate_methods, pillow_bicubic

    _, held = split_holdout(list_images([args.data]), args.holdout_every)
    upscalers = {name: Upscaler.from_request(RunRequest(model=name, backend="onnxruntime", scale=4))
                 for name in MODELS}
    methods = {"bicubic": lambda lr: pillow_bicubic(lr, 4), "lanczos": lambda lr: pillow_bicubic(lr, 4, "LANCZOS")}
    methods.update({name: through(up) for name, up in upscalers.items()})
    quality = evaluate_methods(held, methods, 4, progress=lambda m: print(m, file=sys.stderr, flush=True))

    from PIL import Image

    with Image.open(ROOT / "tests" / "data" / "ADE_val_00000114.jpg") as img:
        crop = np.ascontiguousarray(np.asarray(img.convert("RGB"))[:256, :256])
    speed = {}
    for name, up in upscalers.items():
        times = []
        for _ in range(3):
            start = time.perf_counter()
            up.upscale(crop)
            times.append(time.perf_counter() - start)
        speed[name] = {"seconds": statistics.median(times), "s_per_output_mp": statistics.median(times) / 1.048576,
                       "backend": up.backend_name}
    builds = {}
    if args.builds:
        from trtsr.engines.builder import BuildSettings, build_engine
        from trtsr.pipeline.resolve import engine_graph

        with tempfile.TemporaryDirectory() as folder:
            for name in MODELS:
                request = RunRequest(model=name, scale=4)
                graph = engine_graph(request.source, guidance=request.w)
                result = build_engine(graph, Path(folder) / f"{name}.engine", BuildSettings(backend="tensorrt-rtx"))
                builds[name] = {"build_seconds": result.metadata.build_seconds,
                                "engine_mb": result.metadata.engine_bytes / 1e6,
                                "profiles": [p.name for p in result.metadata.profiles],
                                "precision": result.metadata.precision}
                (Path(folder) / f"{name}.engine").unlink()
                print(name, builds[name], file=sys.stderr, flush=True)
    report = {
        "what": "named models on held-out photos at x4 (benchmarks/named_models.py)",
        "command": " ".join(["python", *sys.argv]),
        "images": [p.name for p in held],
        "quality": quality, "speed": speed, "builds": builds,
        "speed_setup": "median of 3, 256x256 crop of tests/data/ADE_val_00000114.jpg to 1024x1024, trtsr.pipeline"
                       ".Upscaler on ONNX Runtime (fp32 graph, tiles of 128 input pixels)",
        **environment(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.output.with_suffix(".png"))
    print(json.dumps({"quality": quality, "speed": speed, "builds": builds}, indent=1))


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, deg in zip(axes, ("bicubic", "realistic"), strict=True):
        rows = report["quality"][deg]
        for name, row in rows.items():
            ax.scatter(row["detail"], row["psnr_y"], s=40)
            ax.annotate(name, (row["detail"], row["psnr_y"]), fontsize=8, xytext=(4, 2), textcoords="offset points")
        ax.set_xlabel("detail (1 = ground truth)")
        ax.set_ylabel("Y-PSNR dB")
        ax.set_title(f"x4, {deg} input, {len(report['images'])} held-out photos")
    fig.suptitle(f"{report['device']['name']}; trtsr {report['versions']['trtsr']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
