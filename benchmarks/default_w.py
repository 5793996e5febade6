"""Each scale's default w for a default-model candidate, chosen on training photos (never on the held-out ones).

    python benchmarks/default_w.py runs/gpu-visit1/run/model.safetensors -d ../shared/data/train \\
        -o benchmarks/results/default-w [--every 16]

Every `--every`-th photo of the training split (the photos `holdout_every = 8` does not hold out) is cut and
degraded as `trtsr.training.evaluate` does (clean and realistic input). The candidate's two PadCFG outputs at
w = 0 and w = 1 are computed once per photo (the guided output is linear in w: y_neg + w (y - y_neg)), so every w
of the grid costs one mix and one score. The shipped weights run at their own w. The rule: per scale, the largest
w of the grid at which the candidate keeps Y-PSNR within `--margin` dB of the shipped weights and more detail, on
clean and realistic input both (none where no w of the grid does). Writes NAME.json and NAME.png (`--replot`
redraws the plot from the JSON). The held-out table stays `benchmarks/default_candidate.py`'s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

GRID = {2: [1.0, 1.1, 1.2, 1.3, 1.4], 3: [1.0, 1.2, 1.4, 1.6, 1.8], 4: [1.2, 1.4, 1.6, 1.8, 2.0, 2.2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("candidate", type=Path)
    parser.add_argument("-d", "--data", type=Path, required=True)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--every", type=int, default=16)
    parser.add_argument("--margin", type=float, default=0.05)
    parser.add_argument("--replot", action="store_true", help="redraw NAME.png from NAME.json and stop")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads(args.output.with_suffix(".json").read_text()), args.output.with_suffix(".png"))
        return

    import torch
    import torch.nn.functional as F

    from trtsr.defaults import DEFAULT_MODEL_GUIDANCE
    from trtsr.measure import environment
    from trtsr.models import load_model
    from trtsr.models.pixel import PixelUpscaler
    from trtsr.training.data import list_images, load_rgb, split_holdout
    from trtsr.training.evaluate import DEGRADATIONS, prepare_truth, score

    train, _ = split_holdout(list_images([args.data]), 8)
    photos = train[:: args.every]
    shipped, candidate = load_model("default").eval(), load_model(str(args.candidate)).eval()

    @torch.no_grad()
    def upscale(net, scale, lr, w):  # (3,h,w) in [0,1] -> (3,H,W) in [0,255], as the exported graphs compute it
        up = PixelUpscaler(net, scale, w, io="float32").eval()
        return up(lr.permute(1, 2, 0) * 255.0).permute(2, 0, 1)

    @torch.no_grad()
    def branches(net, scale, lr):  # PixelUpscaler's PadCFG path up to the mix: (negative, positive) in [-1, 1]
        x = F.interpolate(lr[None] * 2.0 - 1.0, scale_factor=scale, mode="bicubic", align_corners=False)
        return net.padcfg_branches(x.clamp(-1.0, 1.0))[::-1]

    rows: dict[str, dict[str, dict[str, float]]] = {}
    for scale, grid in GRID.items():
        own = DEFAULT_MODEL_GUIDANCE[scale]
        for deg_name, degrade in DEGRADATIONS.items():
            scores: dict[str, list] = {f"shipped w={own:g}": []} | {f"candidate w={w:g}": [] for w in grid}
            for path in photos:
                print(f"x{scale} {deg_name}: {path.name}", file=sys.stderr, flush=True)
                truth = prepare_truth(load_rgb(path), scale)
                lr = (degrade(truth, scale) * 255).round() / 255
                scores[f"shipped w={own:g}"].append(score(upscale(shipped, scale, lr, own) / 255.0, truth, scale))
                neg, pos = branches(candidate, scale, lr)
                for w in grid:
                    out = ((neg + w * (pos - neg))[0] + 1.0) / 2.0  # score() clamps and quantises like a file
                    scores[f"candidate w={w:g}"].append(score(out, truth, scale))
            rows[f"x{scale} {deg_name}"] = {
                name: {f: statistics.fmean(getattr(s, f) for s in found) for f in ("psnr_y", "detail", "grid")}
                for name, found in scores.items()}
    chosen = {}
    for scale, grid in GRID.items():
        own = DEFAULT_MODEL_GUIDANCE[scale]
        old = {d: rows[f"x{scale} {d}"][f"shipped w={own:g}"] for d in DEGRADATIONS}
        new = {d: {w: rows[f"x{scale} {d}"][f"candidate w={w:g}"] for w in grid} for d in DEGRADATIONS}
        keeps = [w for w in grid if all(new[d][w]["psnr_y"] >= old[d]["psnr_y"] - args.margin
                                        and new[d][w]["detail"] > old[d]["detail"] for d in DEGRADATIONS)]
        chosen[scale] = max(keeps) if keeps else None
    report = {"what": "default w per scale for a candidate, on training photos (benchmarks/default_w.py)",
              "command": " ".join(["python", *sys.argv]), "candidate": str(args.candidate),
              "images": [p.name for p in photos], "margin_db": args.margin, "rows": rows,
              "chosen": {str(k): v for k, v in chosen.items()}, **environment()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.output.with_suffix(".png"))
    for key, table in rows.items():
        for name, row in table.items():
            print(f"| {key} | {name} | {row['psnr_y']:.2f} | {row['detail']:.3f} | {row['grid']:.2f} |")
    print("chosen:", chosen)


def draw_sweep(ax, title: str, rows: dict[str, dict], points: dict[str, dict]) -> None:
    """One panel of Y-PSNR against detail: the rows named 'candidate w=W' as a curve marked with their w, and the
    rows named in `points` as squares (each with its plot keywords), labelled with their x8 grid."""
    sweep = sorted((row["detail"], row["psnr_y"], name.split("=")[1]) for name, row in rows.items()
                   if name.startswith("candidate w="))
    ax.plot([d for d, _, _ in sweep], [p for _, p, _ in sweep], "o-", label="candidate, w sweep")
    for detail, psnr, w in sweep:
        ax.annotate(f"w {w}", (detail, psnr), fontsize=6, xytext=(3, 3), textcoords="offset points")
    for name, style in points.items():
        row = rows[name]
        ax.plot(row["detail"], row["psnr_y"], "s", label=f"{name} (grid {row['grid']:.1f})", **style)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("detail (high-frequency energy / ground truth)", fontsize=8)
    ax.set_ylabel("Y-PSNR (dB)", fontsize=8)
    ax.legend(fontsize=6)


def plot(report: dict, path: Path) -> None:
    """Y-PSNR against detail: the candidate's w sweep as a line, the shipped weights at their own w as a point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = list(report["rows"])
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, key in zip(axes.T.flat, sorted(tables, key=lambda k: (k.split()[0], k.split()[1])), strict=True):
        rows = report["rows"][key]
        draw_sweep(ax, key, rows, {name: {"color": "black"} for name in rows if name.startswith("shipped")})
    fig.suptitle(f"{len(report['images'])} training photos; chosen w {report['chosen']}; "
                 f"{report['device']['name']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
