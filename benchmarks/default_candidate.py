"""A candidate for the default model's weights against the shipped ones, on the held-out photos, at each scale's
own w (`trtsr.defaults.DEFAULT_MODEL_GUIDANCE`), clean and realistic input; Pillow's bicubic and LANCZOS beside.

    python benchmarks/default_candidate.py runs/detail/run/model.safetensors -d ../shared/data/train \\
        -o benchmarks/results/default-candidate [--extra-w 3.0]

Both networks run in PyTorch (fp32, CPU) through the exported graphs' module (`PixelUpscaler`), scored by
`trtsr.training.evaluate.score` (Y-PSNR, SSIM, detail, x8 grid). `--extra-w` adds the candidate at that w at x4
(the detail dial). Prints the table and whether the candidate passes the shipping rule: more detail at every
scale and input, and no more than 0.1 dB below the shipped weights' Y-PSNR. Writes NAME.json and NAME.png
(`--replot` redraws the plot from the JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("candidate", type=Path)
    parser.add_argument("-d", "--data", type=Path, required=True)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--extra-w", type=float, action="append", default=[])
    parser.add_argument("--replot", action="store_true", help="redraw NAME.png from NAME.json and stop")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads(args.output.with_suffix(".json").read_text()), args.output.with_suffix(".png"))
        return

    import torch

    from trtsr.defaults import DEFAULT_MODEL_GUIDANCE
    from trtsr.measure import environment
    from trtsr.models import load_model
    from trtsr.models.pixel import PixelUpscaler
    from trtsr.training.data import list_images, split_holdout
    from trtsr.training.evaluate import evaluate_methods, pillow_bicubic

    _, held = split_holdout(list_images([args.data]), 8)
    nets = {"shipped": load_model("default").eval(), "candidate": load_model(str(args.candidate)).eval()}

    def method(net, scale, w):
        up = PixelUpscaler(net, scale, w, io="float32").eval()

        @torch.no_grad()
        def run(lr):
            return up(lr.permute(1, 2, 0) * 255.0).permute(2, 0, 1) / 255.0

        return run

    quality = {}
    for scale in (4, 3, 2):
        w = DEFAULT_MODEL_GUIDANCE[scale]
        methods = {"bicubic": lambda lr, s=scale: pillow_bicubic(lr, s),
                   "lanczos": lambda lr, s=scale: pillow_bicubic(lr, s, "LANCZOS"),
                   f"shipped w={w:g}": method(nets["shipped"], scale, w),
                   f"candidate w={w:g}": method(nets["candidate"], scale, w)}
        if scale == 4:
            for extra in args.extra_w:
                methods[f"candidate w={extra:g}"] = method(nets["candidate"], scale, extra)
        table = evaluate_methods(held, methods, scale, progress=lambda m: print(m, file=sys.stderr, flush=True))
        quality.update({f"x{scale} {deg}": rows for deg, rows in table.items()})
    verdict = []
    for key, rows in quality.items():
        w = DEFAULT_MODEL_GUIDANCE[int(key[1])]
        old, new = rows[f"shipped w={w:g}"], rows[f"candidate w={w:g}"]
        verdict.append({"table": key, "detail_gain": new["detail"] - old["detail"],
                        "psnr_change": new["psnr_y"] - old["psnr_y"],
                        "passes": new["detail"] > old["detail"] and new["psnr_y"] >= old["psnr_y"] - 0.1})
    report = {"what": "default-model candidate against the shipped weights (benchmarks/default_candidate.py)",
              "command": " ".join(["python", *sys.argv]), "candidate": str(args.candidate),
              "images": [p.name for p in held], "quality": quality, "verdict": verdict,
              "ships": all(v["passes"] for v in verdict), **environment()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.output.with_suffix(".png"))
    for key, rows in quality.items():
        for name, row in rows.items():
            print(f"| {key} | {name} | {row['psnr_y']:.2f} | {row['ssim_y']:.4f} | {row['detail']:.3f} | "
                  f"{row['grid']:.2f} |")
    for v in verdict:
        print(v)
    print("ships:", report["ships"])


def plot(report: dict, path: Path) -> None:
    """Y-PSNR against detail per table: every row of the held-out table as a labelled point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    keys = sorted(report["quality"], key=lambda k: (k.split()[0], k.split()[1]))
    for ax, key in zip(axes.T.flat, keys, strict=True):
        for name, row in report["quality"][key].items():
            ax.plot(row["detail"], row["psnr_y"], "o", label=f"{name} (grid {row['grid']:.1f})")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("detail (high-frequency energy / ground truth)", fontsize=8)
        ax.set_ylabel("Y-PSNR (dB)", fontsize=8)
        ax.legend(fontsize=6)
    fig.suptitle(f"{len(report['images'])} held-out photos; ships: {report['ships']}; {report['device']['name']}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
