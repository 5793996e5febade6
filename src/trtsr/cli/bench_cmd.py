"""`trtsr bench`: latency, memory and build time per backend, size and PadCFG mode."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from trtsr import defaults
from trtsr.cli.common import out, status, user_errors
from trtsr.cli.options import VerboseOption
from trtsr.files import check_writable


def bench_command(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Default: gendr-pix (random weights; the cost does not "
                                                         "depend on them) with a GPU, tiny without.")
    ] = None,
    size: Annotated[
        list[str] | None,
        typer.Option("--size", help="Output size: 1080p, 1440p, 4k, 8k or WxH; repeatable. Default: 1080p to 8k "
                                    "with a GPU, 256x256 and 512x384 without."),
    ] = None,
    backend: Annotated[
        list[str] | None,
        typer.Option("--backend", "-b", help="engine, onnxruntime, torch-eager-fp32/fp16/bf16, "
                                             "torch-compile-fp16/bf16; repeatable. Default: engine and PyTorch "
                                             "with a GPU, onnxruntime and torch-eager-fp32 without."),
    ] = None,
    padcfg: Annotated[
        bool | None, typer.Option("--padcfg/--no-padcfg", help="Only with or only without PadCFG (default both).")
    ] = None,
    scale: Annotated[int, typer.Option("--scale", "-s", help="Upscaling factor.")] = defaults.SCALE,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed runs before timing (0: none; the first run "
                                                        "is reported alone either way).")] = 3,
    repeats: Annotated[int, typer.Option("--repeats", "-r", help="Timed runs; the median is reported.")] = 10,
    images: Annotated[
        Path | None, typer.Option("--images", help="Also time trtsr's end-to-end run over this image folder.")
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for NAME.json and NAME.png (default: the current folder; "
                                               "the project's measured results live in benchmarks/results).")
    ] = Path("."),
    name: Annotated[str | None, typer.Option("--name", help="File name stem; default from the device.")] = None,
    verbose: VerboseOption = False,
) -> None:
    """Benchmark the trtsr runtime against PyTorch (and ONNX Runtime) on this machine.

    Writes JSON (device, driver, software versions, command, every figure) and a
    PNG chart. With no GPU it runs the tiny model on the CPU, which is how CI
    keeps the harness working; its first run exports the graphs it needs (the
    export extra; minutes on a small CPU), later runs reuse them. When no case
    can run (a base install has neither torch nor those graphs) it says why and
    writes nothing.

    Examples:

      trtsr bench                                          # defaults for this machine

      trtsr bench -m gendr-pix --size 4k -b engine -b torch-eager-bf16 --images tests/data
    """
    with user_errors(verbose):
        from trtsr.bench import (
            CPU_DEFAULT_BACKENDS,
            CPU_DEFAULT_SIZES,
            GPU_DEFAULT_BACKENDS,
            GPU_DEFAULT_SIZES,
            run_benchmarks,
        )
        from trtsr.gpu import detect_gpu

        check_writable(out_dir, "results folder", folder=True)
        gpu = detect_gpu()
        chosen_model = model or ("gendr-pix" if gpu else "tiny")
        sizes = list(size or (GPU_DEFAULT_SIZES if gpu else CPU_DEFAULT_SIZES))
        backends = list(backend or (GPU_DEFAULT_BACKENDS if gpu else CPU_DEFAULT_BACKENDS))
        modes = [True, False] if padcfg is None else [padcfg]
        stem = name or ("bench-" + ("".join(c if c.isalnum() else "-" for c in gpu.name).lower() if gpu else "cpu"))
        with status(f"benchmarking {chosen_model} on {gpu.name if gpu else 'the CPU'}") as say:
            json_path, png_path = run_benchmarks(
                model=chosen_model, sizes=sizes, backends=backends, padcfg_modes=modes, scale=scale, warmup=warmup,
                repeats=repeats, images=images, out_dir=out_dir, name=stem, command=["trtsr", *sys.argv[1:]],
                progress=say,
            )
        out.print(f"wrote {json_path} and {png_path}", markup=False)
