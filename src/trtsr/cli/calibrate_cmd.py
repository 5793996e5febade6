"""`trtsr calibrate`: an fp32 graph -> an INT8 or FP8 Q/DQ graph (+ spec) that `trtsr build` turns into an engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trtsr.cli.common import out, status, user_errors
from trtsr.cli.options import OverwriteOption, VerboseOption


def calibrate_command(
    onnx: Annotated[Path, typer.Argument(help="An fp32 graph written by 'trtsr export -p fp32' (its .json spec "
                                              "beside it), or 'default' / 'default-x2' / 'default-x3' for the "
                                              "default model's shipped graph (x4 / x2 / x3).")],
    images: Annotated[
        Path | None, typer.Option("--images", "-i", help="Folder of images (searched recursively) to take the "
                                                         "calibration crops from; not needed for int8-weights.")
    ] = None,
    precision: Annotated[
        str, typer.Option("--precision", "-p", help="int8 (weights and activations), fp8 (weights and "
                                                    "activations; Ada/Hopper/Blackwell engines) or int8-weights "
                                                    "(linear layers' weights only).")
    ] = "int8",
    samples: Annotated[
        int, typer.Option("--samples", "-n", help="Calibration crops (8-512; NVIDIA recommends 32-128).")
    ] = 32,
    size: Annotated[
        list[str] | None, typer.Option("--size", "-s", help="Crop size in input pixels, WxH or N; repeatable. "
                                                            "Default: 64x64, 128x96, 96x128 and 128x128.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the image order and crop positions.")] = 0,
    float_type: Annotated[
        str, typer.Option("--float", help="Precision of the layers left unquantised: fp16 (what engines "
                                          "should run) or fp32.")
    ] = "fp16",
    method: Annotated[
        str | None, typer.Option("--method", help="Calibrator: entropy or max. Default: entropy for int8, "
                                                  "max for fp8.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output graph; default "
                                                                       "MODEL-PRECISION.onnx in the current folder.")
                      ] = None,
    overwrite: OverwriteOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Quantise a graph to INT8 or FP8 with calibration crops from your images.

    Writes a Q/DQ ONNX graph (NVIDIA Model Optimizer's placement, calibrated with
    ONNX Runtime on the CPU) and its spec, which records the precision, method,
    samples, sizes, seed, each image's sha256, the layers kept in float and the
    source graph's sha256. The first and last layers, the time embedding,
    shortcut convolutions and attention projections stay in float (the table in
    trtsr.calibration.recipe). 'trtsr build' makes an engine from the result,
    'trtsr info' counts its quantised layers and 'trtsr run -m' runs it in ONNX
    Runtime. Needs the 'calibrate' extra.

    Examples:

      trtsr calibrate model-fp32.onnx --images photos/

      trtsr calibrate default -i photos/             # the shipped x4 graph -> default-x4-int8.onnx

      trtsr calibrate model-fp32.onnx -i photos/ -p fp8 -n 64 -s 128x128 -s 96x160

      trtsr build model-fp32-fp8.onnx --cc sm89
    """
    with user_errors(verbose):
        from trtsr.calibration import CalibrationSettings, calibrate
        from trtsr.calibration.data import DEFAULT_SIZES, parse_size

        settings = CalibrationSettings(
            precision=precision.lower(), samples=samples, seed=seed, float_type=float_type.lower(), method=method,
            sizes=tuple(parse_size(s) for s in size) if size else DEFAULT_SIZES,
        )
        with status(f"calibrating {onnx}") as say:
            result = calibrate(onnx, images, output, settings, overwrite=overwrite, verbose=verbose, progress=say)
        quant = result.spec.quantization
        out.print(
            f"wrote {result.onnx_path} ({quant['precision']}: {quant['quantized_layers']} of "
            f"{quant['compute_layers']} conv/linear layers quantised, {quant['samples']} samples, "
            f"{result.spec.precision} elsewhere) and {result.spec_path} in {result.seconds:.0f} s",
            markup=False,
        )
