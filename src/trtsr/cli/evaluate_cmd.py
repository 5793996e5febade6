"""`trtsr evaluate`: score a model against bicubic and the teacher on held-out images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trtsr import defaults
from trtsr.cli.common import out, require_extra, status, user_errors
from trtsr.cli.options import ModelOption, VerboseOption
from trtsr.errors import TrtsrError
from trtsr.files import check_writable


def evaluate_command(
    model: ModelOption = "default",
    data: Annotated[
        list[Path] | None, typer.Option("--data", "-d", help="Image folder(s), as given to `trtsr train`.")
    ] = None,
    holdout_every: Annotated[
        int, typer.Option("--holdout-every", help="Score the images `trtsr train` held out with this setting "
                                                  "(every N-th in sorted order); 0 scores every image.")
    ] = 8,
    guidance: Annotated[
        list[float] | None,
        typer.Option("--guidance", "-g", help="PadCFG w to score, repeatable; 1.0 = no PadCFG [default: "
                                           f"{', '.join(map(str, defaults.EVALUATE_GUIDANCES))}]."),
    ] = None,
    scale: Annotated[
        list[int] | None,
        typer.Option("--scale", "-s", help="Scale to score, repeatable: 2, 3 or 4 [default: 4, 3 and 2]."),
    ] = None,
    teacher: Annotated[
        bool, typer.Option(help="Also score the Real-ESRGAN x4plus teacher at x4 (slow on a CPU).")
    ] = True,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Writes OUTPUT.json, OUTPUT.png (chart) and OUTPUT-samples.png; "
                                                  "default: evaluation.* in the current folder.")
    ] = Path("evaluation"),
    verbose: VerboseOption = False,
) -> None:
    """Score a model at each scale on held-out images, under bicubic and a realistic degradation.

    Reports Y-PSNR, SSIM, detail (high-frequency energy relative to ground truth) and
    x8 grid strength (relative to ground truth) for bicubic (Pillow's BICUBIC, what users
    compare with), the teacher (x4 only) and the model at each guidance, plus parameters,
    FLOPs and CPU seconds per output megapixel (at x4).
    Metric definitions: trtsr.training.evaluate.

    Example:

      trtsr evaluate -m runs/x4/model.safetensors -d ../photos
    """
    with user_errors(verbose):
        scales = tuple(scale or (4, 3, 2))
        bad = sorted({s for s in scales if s not in (2, 3, 4)})
        if bad:
            raise TrtsrError(f"--scale must be one of 2, 3, 4 (got {bad[0]})")
        from trtsr.guidance import check_guidance

        for w in guidance or []:
            check_guidance(w)
        check_writable(output.with_suffix(".json"), "evaluation report")
        require_extra("evaluate", "train", "diffusers", "torch")
        from trtsr.training.report import evaluate_model

        with status(f"evaluating {model}") as say:
            report = evaluate_model(model, list(data or []), holdout_every=holdout_every,
                                    guidances=guidance or list(defaults.EVALUATE_GUIDANCES), with_teacher=teacher,
                                    output=output, scales=scales, progress=say)
        out.print(f"scored {len(report['images'])} images; wrote {output}.json, {output}.png and "
                  f"{output}-samples.png", markup=False)
        out.print(report["markdown"], markup=False)
