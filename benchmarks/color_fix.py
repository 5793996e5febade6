"""`--color-fix` measured: held-out photos at x4, each model with no fix, wavelet and AdaIN.

    python benchmarks/color_fix.py -d ../shared/data/train -o benchmarks/results/color-fix [--every 3]

Every `--every`-th of the photos `trtsr train` holds out, downscaled by 4 (clean and realistic, as
`trtsr.training.evaluate.DEGRADATIONS`), upscaled through `trtsr.pipeline.Upscaler` on ONNX Runtime with
`color_fix` None, 'wavelet' and 'adain'. Scores: Y-PSNR, detail (`score`), and colour error: the mean absolute
difference, in grey levels over R, G and B, between the output's and the ground truth's low frequencies (the
same 5-level a-trous split the fix uses). Writes NAME.json (device, versions, command) and NAME.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

MODELS = ("default", "realesr-animevideov3", "realesrgan-x4plus")
FIXES = (None, "wavelet", "adain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-d", "--data", type=Path, required=True)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--every", type=int, default=3)
    args = parser.parse_args()

    import torch

    from trtsr.measure import environment
    from trtsr.pipeline import RunRequest, Upscaler
    from trtsr.runtime.color import color_fix, low_frequencies
    from trtsr.training.data import list_images, load_rgb, split_holdout
    from trtsr.training.evaluate import DEGRADATIONS, prepare_truth, score

    _, held = split_holdout(list_images([args.data]), 8)
    images = held[:: args.every]
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for model in MODELS:
        up = Upscaler.from_request(RunRequest(model=model, backend="onnxruntime", scale=4))
        for deg, degrade in DEGRADATIONS.items():
            found: dict[str, list[tuple[float, float, float]]] = {str(f): [] for f in FIXES}
            for path in images:
                truth = prepare_truth(load_rgb(path), 4)
                lr = (degrade(truth, 4).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
                plain = up.upscale(np.ascontiguousarray(lr)).astype(np.float32)
                truth_hwc = truth.permute(1, 2, 0).numpy() * 255.0
                for fix in FIXES:
                    out = plain if fix is None else color_fix(plain, lr.astype(np.float32), fix)
                    scores = score(torch.from_numpy(out / 255.0).permute(2, 0, 1), truth, 4)
                    colour = float(np.abs(low_frequencies(out) - low_frequencies(truth_hwc)).mean())
                    found[str(fix)].append((scores.psnr_y, scores.detail, colour))
                print(model, deg, path.name, file=sys.stderr, flush=True)
            rows[f"{model} {deg}"] = {fix: {"psnr_y": statistics.fmean(v[0] for v in vals),
                                            "detail": statistics.fmean(v[1] for v in vals),
                                            "colour_error": statistics.fmean(v[2] for v in vals)}
                                      for fix, vals in found.items()}
        up.close()
    report = {"what": "--color-fix on held-out photos at x4 (benchmarks/color_fix.py)",
              "command": " ".join(["python", *sys.argv]), "images": [p.name for p in images], "results": rows,
              **environment()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.output.with_suffix(".png"))
    print(json.dumps(rows, indent=1))


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(report["results"])
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.27
    for i, fix in enumerate(("None", "wavelet", "adain")):
        values = [report["results"][label][fix]["colour_error"] for label in labels]
        ax.bar([x + (i - 1) * width for x in range(len(labels))], values, width, label=f"color fix: {fix}")
    ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
    ax.set_ylabel("low-frequency colour error (grey levels)")
    ax.legend(fontsize=8)
    ax.set_title(f"x4, {len(report['images'])} held-out photos; {report['device']['name']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
