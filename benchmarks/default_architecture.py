"""What a wider top level costs the default model on the CPU: GenDR-Pix-family candidates through ONNX Runtime.

    python benchmarks/default_architecture.py -o benchmarks/results/default-architecture [--sizes 256 512]

The shipped default (`tiny`: top level 32 channels) reads each 8 x 8 x 3 output patch (192 values) out of its
top level's channels; the candidates widen that level towards a whole patch. Each candidate is built with seeded
weights (the cost does not depend on them), exported as `trtsr run` exports a checkpoint (x4, PadCFG with w as
an input, fp32, the cost probe sizing its tiles) and run through `Upscaler` on ONNX Runtime at x4 and w 2.2 on
square crops of a real photo: seconds per output megapixel, median of `--repeats` interleaved rounds after a
warm-up, with `realesr-animevideov3` in the same rounds as the yardstick. Also: parameters, the fp16 weights'
size (what would ship) and the tile side the plan chose. Writes NAME.json and NAME.png.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_vs_ncnn import OTHER, TRTSR, bar_chart, photo, save_report  # noqa: E402

# name: (block_out_channels, heads per level); every other field as the `tiny` preset (one layer per block,
# 64-wide prompt embeddings, x8 unshuffle, three cross-attention levels and a plain one)
CANDIDATES = {
    "tiny (shipped)": ((32, 64, 96, 96), (1, 2, 3, 3)),
    "top 64": ((64, 64, 96, 96), (2, 2, 3, 3)),
    "top 96": ((96, 96, 128, 128), (3, 3, 4, 4)),
    "top 128": ((128, 128, 128, 128), (4, 4, 4, 4)),
    "top 192": ((192, 128, 128, 128), (6, 4, 4, 4)),
}
W = 2.2  # the default model's own w at x4


def candidate(name: str, folder: Path) -> tuple[Path, int]:
    import dataclasses

    import torch

    from trtsr.models.checkpoint import save_checkpoint
    from trtsr.models.config import TINY
    from trtsr.models.pixel import GenDRPix

    widths, heads = CANDIDATES[name]
    config = dataclasses.replace(TINY, name="tiny", block_out_channels=widths, attention_head_dim=heads)
    torch.manual_seed(0)
    model = GenDRPix(config)
    path = folder / f"{name.split()[0]}-{widths[0]}.safetensors"
    save_checkpoint(model, path, dtype=torch.float16)
    return path, sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, required=True, help="NAME: writes NAME.json and NAME.png")
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=list(CANDIDATES), help="a subset of the candidates")
    args = parser.parse_args()

    from trtsr import Upscaler
    from trtsr.measure import environment

    folder = Path(tempfile.mkdtemp(prefix="trtsr-arch-"))
    names = args.only or list(CANDIDATES)
    upscalers, facts = {}, {}
    for name in names:
        path, params = candidate(name, folder)
        print(f"{name}: {params / 1e6:.2f} M parameters, exporting", file=sys.stderr, flush=True)
        upscalers[name] = Upscaler(str(path), backend="onnxruntime", scale=4, guidance=W)
        facts[name] = {"parameters": params, "weights_fp16_mb": round(path.stat().st_size / 1e6, 2),
                       "block_out_channels": list(CANDIDATES[name][0]), "heads": list(CANDIDATES[name][1])}
    upscalers["realesr-animevideov3"] = Upscaler("realesr-animevideov3", backend="onnxruntime")
    rows = []
    for side in args.sizes:
        lr = photo(side)
        out_mp = (side * 4) ** 2 / 1e6
        for up in upscalers.values():
            up.upscale(lr[:128, :128])  # warm-up: session, kernels, the first allocation, the cost probe
        times: dict[str, list[float]] = {name: [] for name in upscalers}
        for _ in range(args.repeats):  # interleaved rounds
            for name, up in upscalers.items():
                started = time.perf_counter()
                up.upscale(lr)
                times[name].append(time.perf_counter() - started)
        for name, measured in times.items():
            median = statistics.median(measured)
            rows.append({"model": name, "input": side, "seconds": measured, "median_s": round(median, 3),
                         "s_per_output_mp": round(median / out_mp, 4),
                         "tile_used": upscalers[name].tile_for(side, side), **facts.get(name, {})})
            print(f"{name} {side}px: {median / out_mp:.3f} s/MP", file=sys.stderr, flush=True)
    for up in upscalers.values():
        up.close()
    report = {**environment(), "command": " ".join(["python", *sys.argv]), "repeats": args.repeats, "w": W,
              "what": "seconds per output megapixel at x4 through ONNX Runtime (Upscaler, planned tiles), median "
                      "of interleaved rounds; candidates with seeded weights, PadCFG at w 2.2", "rows": rows}
    save_report(args.output, report, plot)


def plot(report: dict, path: Path) -> None:
    bars = [(f"{r['model']}  {r['input']}px" + (f"  {r['parameters'] / 1e6:.1f} M" if "parameters" in r else ""),
             [(r["s_per_output_mp"], OTHER if r["model"] == "realesr-animevideov3" else TRTSR,
               f"{r['s_per_output_mp']:.3f}")]) for r in report["rows"]]
    bar_chart(report, path, "CPU, x4, seconds per output MP (lower is better; limit 3.0)", bars, left=330)


if __name__ == "__main__":
    main()
