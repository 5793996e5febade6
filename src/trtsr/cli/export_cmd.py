"""`trtsr export`: PyTorch model -> ONNX graph with dynamic height and width (+ spec JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trtsr import defaults
from trtsr.cli.common import out, require_extra, status, user_errors
from trtsr.cli.options import ModelOption, NoPadcfgOption, OutputFile, OverwriteOption, VerboseOption
from trtsr.files import check_outputs


def export_command(
    model: ModelOption = "default",
    scale: Annotated[int | None, typer.Option("--scale", "-s", help="Upscaling factor: 1, 2, 3, 4 or 8. Default: "
                                                                    f"{defaults.SCALE}, or the model's own.")] = None,
    precision: Annotated[
        str, typer.Option("--precision", "-p", help="fp16, bf16 or fp32 weights and activations in the graph.")
    ] = defaults.PRECISION,
    guidance: Annotated[float | None, typer.Option(
        "--guidance", "-g", help=f"PadCFG guidance w (paper Eq. 7), above 0 and at most {defaults.MAX_GUIDANCE:g}; "
                                 f"1.0 means no PadCFG (the batch-1 graph). Default: the w 'trtsr run' uses (the "
                                 "default model: " + ", ".join(f"{w:g} at x{s}" for s, w in
                                                              sorted(defaults.DEFAULT_MODEL_GUIDANCE.items()))
                                 + f"; else {defaults.GUIDANCE:g}); other models have no PadCFG.")] = None,
    no_padcfg: NoPadcfgOption = False,
    io: Annotated[
        str, typer.Option("--io", help="uint8 (smallest transfers) or float32 (exact, unrounded) image tensors.")
    ] = defaults.IO,
    bake_guidance: Annotated[
        bool, typer.Option("--bake-guidance", help="Build w into the graph instead of taking it as the second "
                                                   "input 'guidance' (one graph then serves one w only).")
    ] = False,
    output: OutputFile = None,
    overwrite: OverwriteOption = False,
    opset: Annotated[
        int, typer.Option("--opset", help="ONNX opset 18-23. 23 writes fused Attention nodes (needed for 8K engines).")
    ] = defaults.OPSET,
    verbose: VerboseOption = False,
) -> None:
    """Export a model to ONNX: GenDR-Pix, a named Real-ESRGAN model, or a checkpoint spandrel reads.

    The graph takes a low-resolution image (height x width x 3) and returns the
    upscaled one; resize, normalisation, alignment, PadCFG and the UNet all run
    inside it. Any input size works (the graph pads to the UNet's multiple of 64
    and crops back). PadCFG graphs take w as a second input, 'guidance' (float32,
    shape [1]; -g sets the default the spec records), so one graph and one engine
    serve every w; --bake-guidance builds it in instead. A JSON spec is written
    beside the .onnx; graphs above 2 GB keep their weights in a .onnx.data file.
    Existing files are kept unless --overwrite. Without -g a PadCFG graph
    records the w 'trtsr run' uses at its scale, so its engine and its
    calibration give run's picture.

    Examples:

      trtsr export                                   # default model, x4, fp16, PadCFG

      trtsr export -m gendr-pix -p bf16 -o full.onnx

      trtsr export -m my.safetensors --no-padcfg

      trtsr export -m 4x_MyModel.pth -p fp16          # any architecture spandrel detects

    Other models keep the same graph contract (image in, image out, padding to
    the architecture's size multiple inside), without PadCFG, at their own scale.
    """
    with user_errors(verbose):
        from trtsr.guidance import Guidance
        from trtsr.source import resolve_source

        given = Guidance.parse(guidance, no_padcfg)
        if output is not None:  # before torch is imported; a default name needs the model's scale, below
            _check_target(output, model, overwrite)
        # resolved once: a checkpoint spandrel reads is loaded for its scale (without the models extra, one line)
        source = resolve_source(model, scale=scale, guidance=given)
        if source.kind.is_external:
            require_extra("other models", "models", "onnx", "torch", "trtsr.export.onnx_export")
        else:
            require_extra("export", "export", "diffusers", "onnx", "torch", "trtsr.export.onnx_export")
        from trtsr.export.onnx_export import ExportSettings, export_onnx

        # the w a plain `trtsr run` uses, so the graph, its engine and its calibration run the same picture
        settings = ExportSettings(scale=source.scale, precision=precision.lower(), guidance=source.w(given),
                                  io=io.lower(), guidance_input=not bake_guidance, opset=opset)
        target = output or Path(_default_name(source.stem, settings))
        _check_target(target, model, overwrite)
        with status(f"exporting {model}") as say:
            result = export_onnx(source, target, settings, progress=say)
        spec = result.spec
        pad = "no PadCFG" if spec.guidance is None else f"PadCFG w={spec.guidance:g}"
        out.print(
            f"wrote {result.onnx_path} ({spec.parameters / 1e6:.1f} M parameters, {spec.precision}, x{spec.scale}, "
            f"{pad}, {spec.io} I/O) and {result.spec_path} in {result.seconds:.0f} s",
            markup=False,
        )


def _check_target(target: Path, model: str, overwrite: bool) -> None:
    """The graph, its spec and its external data file: writable, not the model itself, and new unless
    `overwrite`."""
    from trtsr.errors import TrtsrError
    from trtsr.spec import spec_path_for

    if target.suffix != ".onnx":
        raise TrtsrError("output file name must end in .onnx", path=target)
    check_outputs([target, spec_path_for(target), target.with_name(target.name + ".data")], "graph",
                  overwrite=overwrite, sources=(model,))


def _default_name(stem: str, settings) -> str:
    pad = "nocfg" if settings.guidance is None else "padcfg"
    return f"{stem}-x{settings.scale}-{settings.precision}-{pad}.onnx"
