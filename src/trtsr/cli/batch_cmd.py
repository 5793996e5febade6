"""`trtsr batch`: upscale a whole dataset on a Ray cluster (the `distributed` extra)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from trtsr.cli.common import console, out, require_extra, user_errors
from trtsr.cli.options import (
    ColorFixOption,
    EngineOption,
    FormatOption,
    OverlapOption,
    OverwriteOption,
    RandomWeightsOption,
    RunBackendOption,
    RunGuidanceOption,
    RunModelOption,
    RunNoPadcfgOption,
    RunScaleOption,
    SuffixOption,
    TileOption,
    VerboseOption,
)
from trtsr.defaults import RunBackend
from trtsr.files import check_writable
from trtsr.outputs import check_naming


def batch_command(
    inputs: Annotated[
        list[str],
        typer.Argument(help="Files, folders (recursively; the output mirrors their sub-folders), local globs, "
                            "@LIST (a text file, one input per line) or URIs pyarrow reads (file://, s3://, gs://)."),
    ],
    output: Annotated[str, typer.Option("--output", "-o", help="Output folder or URI (required).")],
    ray_address: Annotated[
        str | None,
        typer.Option("--ray", help="Ray cluster address (e.g. ray://head:10001 or auto). Default: $RAY_ADDRESS, "
                                   "else a local cluster on this machine."),
    ] = None,
    actors: Annotated[
        int | None, typer.Option("--actors", help="Upscaling actors. Default: one per GPU in the cluster, else one.")
    ] = None,
    threads: Annotated[
        int, typer.Option("--threads", help="ONNX Runtime threads per actor on a CPU-only cluster.")
    ] = 1,
    model: RunModelOption = None,
    engine: EngineOption = None,
    backend: RunBackendOption = RunBackend.AUTO,
    scale: RunScaleOption = None,
    guidance: RunGuidanceOption = None,
    no_padcfg: RunNoPadcfgOption = False,
    tile: TileOption = None,
    overlap: OverlapOption = None,
    fmt: FormatOption = None,
    suffix: SuffixOption = None,
    overwrite: OverwriteOption = False,
    random_weights: RandomWeightsOption = False,
    color_fix: ColorFixOption = None,
    report: Annotated[
        Path, typer.Option("--report", help="Where the JSON report (counts, throughput, failures) goes.")
    ] = Path("trtsr-batch-report.json"),
    verbose: VerboseOption = False,
) -> None:
    """Upscale a whole dataset on a Ray cluster.

    Ray Data reads and decodes on CPU tasks, upscales in stateful actors (one per
    GPU, or ONNX Runtime actors on CPU-only clusters) and writes atomically. Output
    names follow `trtsr run`'s rules; two inputs with one output both fail before
    any work. A re-run skips outputs that exist, so a stopped job continues where
    it stopped. A file that fails is listed in the report; the exit status is 1 if
    any failed.

    Examples:

      trtsr batch photos/ -o big/                         # a local Ray cluster on this machine

      trtsr batch s3://bucket/raw -o s3://bucket/x4 --ray auto

      trtsr batch @todo.txt -o out/ --actors 2 --threads 1 --format png
    """
    with user_errors(verbose):
        check_writable(report, "report")
        if "://" not in output:  # a local folder; remote URIs are checked by their filesystem when written
            check_writable(Path(output), "output folder", folder=True)
        require_extra("trtsr batch", "distributed", "ray", "pyarrow")
        from trtsr.guidance import Guidance
        from trtsr.pipeline.request import RunRequest

        fmt = check_naming(fmt, suffix)
        # checked before Ray starts; each actor opens this request
        request = RunRequest(model=model, engine=engine, backend=backend, scale=scale,
                             guidance=Guidance.parse(guidance, no_padcfg), tile=tile, overlap=overlap,
                             random_weights=random_weights, color_fix=color_fix)
        from trtsr.distributed.batch import BatchSettings, upscale_dataset

        settings = BatchSettings(run=request, fmt=fmt, suffix=suffix, overwrite=overwrite, actors=actors,
                                 threads=threads)
        # Plain lines, no spinner: Ray Data draws its own progress bars.
        result = upscale_dataset(inputs, output, settings, address=ray_address,
                                 progress=lambda message: console.print(escape(message)))
        result.command = " ".join(["trtsr", *sys.argv[1:]])
        for failure in result.failures:
            console.print(f"[red]error:[/red] {escape(failure['file'])}: {escape(failure['error'])}")
        result.save(report)
        out.print(result.summary(), markup=False)
        out.print(f"report: {report}", markup=False)
        if result.failed:
            raise typer.Exit(1)
