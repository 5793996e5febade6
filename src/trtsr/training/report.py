"""The held-out report behind `trtsr evaluate`: quality table, costs, chart and sample crops."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trtsr.errors import TrtsrError
from trtsr.models.checkpoint import read_checkpoint_metadata, training_history
from trtsr.models.pixel import PixelUpscaler
from trtsr.training.data import list_images, split_holdout
from trtsr.training.evaluate import (
    count_flops,
    cpu_latency,
    evaluate_methods,
    markdown_table,
    montage,
    pillow_bicubic,
    write_report,
)
from trtsr.training.teacher import TEACHER_SCALE

COST_SCALE = 4  # costs are measured at x4 (the network's cost per output megapixel hardly depends on the scale)
COST_INPUT = 256  # LR side for the latency measurement (1024x1024 = 1.05 MP out)
FLOP_INPUT = 256  # LR side for the FLOP count: 1 MP out, so alignment padding weighs as in real use


def _model_method(up: PixelUpscaler) -> Callable[[torch.Tensor], torch.Tensor]:
    @torch.no_grad()
    def run(lr: torch.Tensor) -> torch.Tensor:
        return up(lr.permute(1, 2, 0) * 255.0).permute(2, 0, 1) / 255.0

    return run


def evaluate_model(model_name: str, folders: list[Path], *, holdout_every: int, guidances: list[float],
                   with_teacher: bool, output: Path, scales: tuple[int, ...] = (4,),
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Score `model_name` at each scale against Pillow's bicubic (and at x4 the teacher); write the report files.

    The quality table is keyed "x<scale> <degradation>" and then by method.
    """
    from trtsr.measure import environment

    images = list_images(folders)
    _, held = split_holdout(images, holdout_every)
    if holdout_every <= 0:
        held = images
    if not held:
        raise TrtsrError("no held-out images: add images or lower --holdout-every")
    from trtsr.source import SourceKind, resolve_source

    source = resolve_source(model_name)  # GenDR-Pix weights: the default, a preset, a checkpoint or a folder
    if not source.kind.is_gendr:
        raise TrtsrError("trtsr evaluate scores GenDR-Pix weights (the default, a trtsr checkpoint or a diffusers "
                         "folder); compare other models with benchmarks/named_models.py", path=model_name)
    model = source.load_gendr().eval()
    teacher = None
    if with_teacher:
        from trtsr.training.teacher import load_teacher, teacher_upscale

        teacher = load_teacher()
    label = "default" if source.kind is SourceKind.DEFAULT else "model"

    kept: list[tuple[str, np.ndarray]] = []
    first = {"name": None}

    def keep(deg: str, image: str, method: str, out: torch.Tensor) -> None:
        # The first held-out image under each degradation, a 128x128 crop from its centre.
        if first["name"] is None:
            first["name"] = image
        if image != first["name"]:
            return
        h, w = out.shape[-2:]
        y, x = h // 2 - 64, w // 2 - 64
        crop = (out[:, y:y + 128, x:x + 128].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        kept.append((f"{deg}: {method}", np.kron(crop, np.ones((2, 2, 1), dtype=np.uint8))))

    quality: dict[str, dict[str, dict[str, float]]] = {}
    for scale in scales:
        methods: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
            "bicubic": lambda lr, s=scale: pillow_bicubic(lr, s),
            "lanczos": lambda lr, s=scale: pillow_bicubic(lr, s, "LANCZOS")}
        if teacher is not None and scale == TEACHER_SCALE:
            methods["teacher"] = lambda lr: teacher_upscale(teacher, lr[None])[0]
        for g in guidances:
            up = PixelUpscaler(model, scale, None if g == 1.0 else g, io="float32").eval()
            methods[f"{label} w={g:g}"] = _model_method(up)
        table = evaluate_methods(held, methods, scale, progress=progress,
                                 keep=keep if scale == scales[-1] else None)
        quality.update({f"x{scale} {deg}": rows for deg, rows in table.items()})

    if progress:
        progress("measuring costs")
    costs: dict[str, dict[str, Any]] = {"bicubic": {"params": 0, "gflop_per_mp": None, "cpu_s_per_mp": None}}
    lr_cost = torch.rand(3, COST_INPUT, COST_INPUT)
    lr_flop = torch.rand(3, FLOP_INPUT, FLOP_INPUT)
    out_mp = (COST_INPUT * COST_SCALE) ** 2 / 1e6
    flop_mp = (FLOP_INPUT * COST_SCALE) ** 2 / 1e6
    costs["bicubic"]["cpu_s_per_mp"] = cpu_latency(lambda: pillow_bicubic(lr_cost, COST_SCALE)) / out_mp
    if teacher is not None:
        costs["teacher"] = {
            "params": sum(p.numel() for p in teacher.parameters()),
            "gflop_per_mp": count_flops(teacher, lr_flop[None]) / 1e9 / flop_mp,
            "cpu_s_per_mp": cpu_latency(lambda: teacher_upscale(teacher, lr_cost[None]), repeats=2) / out_mp,
        }
    for g in guidances:
        up = PixelUpscaler(model, COST_SCALE, None if g == 1.0 else g, io="float32").eval()
        run = _model_method(up)
        costs[f"{label} w={g:g}"] = {
            "params": sum(p.numel() for p in model.parameters()),
            "gflop_per_mp": count_flops(up, lr_flop.permute(1, 2, 0) * 255) / 1e9 / flop_mp,
            "cpu_s_per_mp": cpu_latency(lambda run=run: run(lr_cost)) / out_mp,
        }
    weights = source.path if source.kind in (SourceKind.DEFAULT, SourceKind.CHECKPOINT) else None
    meta = {}
    if weights is not None:
        meta = {k: v for k, v in read_checkpoint_metadata(weights).items() if k in ("teacher", "steps")}
        stages = training_history(weights)  # oldest first; fine-tuned weights have several
        if stages:
            meta["stage_steps"] = [stage["steps"] for stage in stages]
    report = {
        "what": "held-out evaluation (trtsr.training.evaluate)",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["trtsr", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith("trtsr") else None,
        "model": model_name,
        "model_metadata": meta,
        "images": [str(p.name) for p in held],
        "split": (f"held out: every {holdout_every}th image in sorted order, as trtsr train holds them out"
                  if holdout_every > 0 else "every image (--holdout-every 0): training images included"),
        "scales": list(scales),
        "baseline": "bicubic and lanczos = Pillow's BICUBIC and LANCZOS upscales of the 8-bit input",
        "degradations": {"bicubic": "anti-aliased bicubic down by the scale",
                         "realistic": "Gaussian blur sigma 1.2, bicubic down, noise sigma 5/255, JPEG 75"},
        "quality": quality,
        "costs": costs,
        "cost_setup": {"flops": f"torch.utils.flop_counter on {FLOP_INPUT}x{FLOP_INPUT} LR at x{COST_SCALE}, "
                                "per output MP",
                       "latency": f"median CPU seconds for {COST_INPUT}x{COST_INPUT} LR, per output MP, "
                                  f"{torch.get_num_threads()} torch threads"},
        **environment(),
    }
    report["markdown"] = markdown_table(report)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_report(report, output.with_suffix(".json"))
    plot_quality(report, output.with_suffix(".png"))
    if kept:
        montage(kept, output.with_name(output.name + "-samples.png"), columns=len(methods))
    return report


def plot_quality(report: dict[str, Any], path: Path) -> None:
    """Bars of Y-PSNR and detail per method, one panel per degradation."""
    from PIL import Image

    from trtsr.files import atomic_path
    from trtsr.measure import chart_draw

    quality = report["quality"]
    methods = list(next(iter(quality.values())))
    row_h, left, panel_w = 20, 150, 330
    height = 70 + (len(methods) * row_h + 40) * len(quality)
    img = Image.new("RGB", (left + 2 * panel_w + 40, height), "white")
    draw = chart_draw(img)
    scales = ", ".join(f"x{s}" for s in report["scales"])
    held_out = not str(report.get("split", "held out")).startswith("every image")
    title = "held-out" if held_out else "all images (training images included)"
    draw.text((10, 8), f"trtsr {title} {scales}: {report['model']} on {report['device']['name']}",
              fill="black")
    draw.text((10, 26), f"{len(report['images'])} images; left: Y-PSNR (dB, bars from 0), right: detail "
                        "(1 = ground truth)", fill="gray")
    y = 50
    for deg, rows in quality.items():
        draw.text((10, y), f"input: {deg}", fill="black")
        y += 18
        hi = max(r["psnr_y"] for r in rows.values())
        top_detail = max(max(r["detail"] for r in rows.values()), 1.0)
        for name, r in rows.items():
            draw.text((10, y + 3), name, fill="black")
            bar = int((panel_w - 60) * max(r["psnr_y"], 0.0) / max(hi, 1e-6))
            draw.rectangle([left, y + 3, left + max(bar, 1), y + row_h - 3], fill=(21, 101, 192))
            draw.text((left + bar + 4, y + 3), f"{r['psnr_y']:.2f}", fill="black")
            x0 = left + panel_w
            bar = int((panel_w - 60) * r["detail"] / top_detail)
            draw.rectangle([x0, y + 3, x0 + max(bar, 1), y + row_h - 3], fill=(230, 81, 0))
            draw.text((x0 + bar + 4, y + 3), f"{r['detail']:.2f}", fill="black")
            y += row_h
        gt = left + panel_w + int((panel_w - 60) / top_detail)
        draw.line([gt, y - row_h * len(rows), gt, y], fill="black")
        y += 22
    with atomic_path(path, suffix=".png") as tmp:
        img.save(tmp, format="PNG")
