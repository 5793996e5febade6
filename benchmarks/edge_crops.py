"""Side by side at 3x enlargement: a held-out photo's edges at x4 through each model, for the eye.

    python benchmarks/edge_crops.py -d ../shared/data/train -o benchmarks/results/edges.png \\
        [-m default -m runs/detail/run/model.safetensors -m realesr-animevideov3 -m realesrgan-x4plus]
        [--checkpoint-w 2.2] [--region IMAGE:AX:AY:LABEL ...]

A model given as `PATH@W` runs at that w (1: `--no-padcfg`, the positive branch alone), so one checkpoint can fill
several tiles. Each `--region` (repeatable) is one row of the sheet: a held-out photo by name, the crop's centre as
fractions of the width and height, and a label (edges, text, foliage, ...); without one, `--image` and `--at`.

The photo (`--image`, by name among the held-out ones) is cut to whole 32-pixel cells, downscaled by 4
with the realistic degradation (blur, noise, JPEG 75), upscaled by Pillow's LANCZOS and by each model
(`trtsr.pipeline.Upscaler` on ONNX Runtime, its own w), and a `--crop`-pixel square of the output around
`--at` (fractions of the width and height) is enlarged 3x with nearest neighbour, so that 8-pixel steps
show as 24-pixel ones. The ground truth is the first tile. NAME.json beside the sheet records the command, the
photo, the crop, each tile's model and w, and the machine and versions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-d", "--data", type=Path, required=True)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("-m", "--model", action="append", default=None)
    parser.add_argument("--image", default="viaduct_sun_behirptreveqvbgb.jpg")
    parser.add_argument("--at", type=float, nargs=2, default=(0.5, 0.5))
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--checkpoint-w", type=float, default=None,
                        help="w for models given as .safetensors files (default: their own, 1.8)")
    parser.add_argument("--region", action="append", default=None, help="IMAGE:AX:AY:LABEL, one row each")
    args = parser.parse_args()

    from PIL import Image, ImageDraw

    from trtsr.measure import environment
    from trtsr.pipeline import RunRequest, Upscaler
    from trtsr.training.data import list_images, load_rgb, split_holdout
    from trtsr.training.evaluate import DEGRADATIONS, prepare_truth

    models = args.model or ["default", "realesr-animevideov3", "realesrgan-x4plus"]
    regions = [r.split(":", 3) for r in args.region] if args.region else [[args.image, *map(str, args.at), ""]]
    _, held = split_holdout(list_images([args.data]), 8)
    ups, labels = [], []
    for model in models:
        path, _, pinned = model.partition("@")
        checkpoint = path.endswith(".safetensors")
        w: float | str = "auto"
        if pinned:
            w = float(pinned)
        elif checkpoint and args.checkpoint_w is not None:
            w = args.checkpoint_w
        guidance = None if w == 1.0 else w
        ups.append(Upscaler.from_request(RunRequest(model=path, backend="onnxruntime", scale=4, guidance=guidance)))
        name = Path(path).parent.name if checkpoint else path
        labels.append(name + (f" w={w:g}" if w != "auto" else ""))
    side = args.crop * 3
    sheet = Image.new("RGB", (side * (len(models) + 2), (side + 18) * len(regions)), "white")
    draw = ImageDraw.Draw(sheet)
    rows = []
    try:
        for row_index, (name, ax, ay, what) in enumerate(regions):
            path = next(p for p in held if p.name == name)
            truth = prepare_truth(load_rgb(path), 4)
            lr = (DEGRADATIONS["realistic"](truth, 4).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            hr = (truth.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            height, width = hr.shape[:2]
            y = min(max(0, int(float(ay) * height) - args.crop // 2), height - args.crop)
            x = min(max(0, int(float(ax) * width) - args.crop // 2), width - args.crop)
            tiles = [("ground truth" + (f" ({what})" if what else ""), hr),
                     ("LANCZOS", np.asarray(Image.fromarray(lr).resize((width, height), Image.Resampling.LANCZOS)))]
            tiles += [(label, up.upscale(np.ascontiguousarray(lr))) for label, up in zip(labels, ups, strict=True)]
            top = row_index * (side + 18)
            for index, (label, image) in enumerate(tiles):
                crop = np.ascontiguousarray(image[y:y + args.crop, x:x + args.crop])
                enlarged = Image.fromarray(crop).resize((side, side), Image.Resampling.NEAREST)
                sheet.paste(enlarged, (index * side, top + 18))
                draw.text((index * side + 4, top + 3), label, fill="black")
            rows.append({"image": path.name, "what": what, "crop": [x, y, args.crop]})
    finally:
        for up in ups:
            up.close()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output)
    record = {"what": "edge crops at 3x (benchmarks/edge_crops.py)", "command": " ".join(["python", *sys.argv]),
              "rows": rows, "degradation": "realistic", "scale": 4,
              "tiles": ["ground truth", "LANCZOS", *labels], "backend": "onnxruntime", **environment()}
    args.output.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.output}: {len(rows)} rows, {args.crop} px crops, x3 nearest")


if __name__ == "__main__":
    main()
