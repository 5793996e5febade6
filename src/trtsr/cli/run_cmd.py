"""`trtsr run`: upscale image files, folders and globs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from trtsr import defaults
from trtsr.cli.common import console, out, status, user_errors
from trtsr.cli.options import (
    ColorFixOption,
    CompileOption,
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
from trtsr.defaults import Backend, RunBackend
from trtsr.outputs import check_naming, is_video, plan_run


def run_command(
    inputs: Annotated[
        list[str],
        typer.Argument(metavar="INPUT",
                       help="Image and video files, folders, glob patterns ('photos/*.jpg'), @LIST (a text file "
                            "with one input per line) or - (that list on standard input). Files this tool wrote "
                            "(in the output folder, or named as another input's output) are left out."),
    ],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Output folder (a name ending in /, an existing folder, or a name "
                                            "without an image extension), or with one input a file name ending "
                                            "in .png, .jpg, .webp or .tif. Default: beside each input."),
    ] = None,
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
    compile: CompileOption = False,
    codec: Annotated[
        str | None, typer.Option("--codec", help="Videos: h264, h265, vp9 or av1. Default: h264 (vp9 for .webm).")
    ] = None,
    crf: Annotated[
        int | None, typer.Option("--crf", help="Videos: constant quality, lower is better. Default: the codec's "
                                               "(18 for h264, 20 for h265, 24 for vp9, 28 for av1).")
    ] = None,
    start: Annotated[
        float | None, typer.Option("--start", help="Videos: start this many seconds in (try a few seconds first).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Videos: upscale this many seconds.")
    ] = None,
    quality: Annotated[
        int, typer.Option("--quality", "-q", min=1, max=100, help="JPEG and WebP quality, 1-100.")
    ] = defaults.QUALITY,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Take images in sub-folders too; an output folder mirrors "
                                                     "them.")
    ] = False,
    verbose: VerboseOption = False,
) -> None:
    """Upscale images and videos.

    Grayscale stays grayscale, alpha is upscaled alongside, 16-bit PNGs stay 16-bit,
    EXIF orientation is applied and ICC profiles are kept. Each output is written to
    a temporary file and renamed; existing outputs are kept unless --overwrite. A
    file that cannot be read fails alone; the exit status is 1 if any failed.

    Examples:

      trtsr run photo.jpg                        # writes photo_x4.jpg

      trtsr run shots/ -o big/ --format png

      trtsr run 'scans/*.tif' --engine model.engine --tile 512

      trtsr run frames/ -b torch --compile       # PyTorch on a GPU without TensorRT

      trtsr run clip.mp4 --start 10 --duration 3 # a video (the video extra): try 3 seconds first
    """
    with user_errors(verbose):
        # Everything that can be checked without loading a model, first, once: the options, then the model,
        # resolved (a graph's or an engine's own scale and guidance come from its spec or metadata).
        from trtsr.backends import BackendSettings, TorchSettings
        from trtsr.guidance import Guidance
        from trtsr.pipeline.request import RunRequest

        fmt = check_naming(fmt, suffix)
        request = RunRequest(model=model, engine=engine, backend=backend, scale=scale,
                             guidance=Guidance.parse(guidance, no_padcfg), tile=tile, overlap=overlap,
                             settings=BackendSettings(torch=TorchSettings(compile=compile)),
                             random_weights=random_weights, color_fix=color_fix)
        plan = plan_run(inputs, output, suffix=f"_x{request.scale_out}" if suffix is None else suffix, fmt=fmt,
                        recursive=recursive)
        for note in plan.notes:
            console.print(escape(note))
        for problem in plan.problems:
            console.print(f"[red]error:[/red] {escape(problem)}")
        if not plan.jobs:
            raise typer.Exit(1)
        from trtsr.pipeline.jobs import run_jobs, sort_jobs

        jobs = sort_jobs(plan.jobs, overwrite)  # existing outputs are skipped here, before any model loads
        video = _video_settings([job for job in plan.jobs if is_video(job[0])], codec, crf, start, duration)
        report = ConsoleReport()
        if not jobs.todo:
            summary = run_jobs(None, jobs, report=report)  # says what was skipped and refused; loads nothing
            _end(summary, plan)

        from trtsr.pipeline.upscaler import Upscaler

        with status(f"loading {engine or model or 'default'}") as say:
            upscaler = Upscaler.from_request(request, progress=say)
        if compile and upscaler.backend is not Backend.TORCH:
            console.print(f"[yellow]warning:[/yellow] --compile applies to the torch backend only; "
                          f"{escape(upscaler.backend_name)} runs")
        w = upscaler.guidance
        pad = "no PadCFG" if w is None else f"PadCFG w {w:g}"
        console.print(f"upscaling x{upscaler.scale}, {pad}, with {escape(upscaler.backend_name)}: "
                      f"{escape(upscaler.backend_reason)}")
        with upscaler, report:
            summary = run_jobs(upscaler, jobs, overwrite=overwrite, quality=quality, video=video, report=report)
        _end(summary, plan)


def _end(summary, plan) -> None:
    """The exit: 1 when any input failed (refused while planning, or in the run), with the count."""
    failed = len(summary.failed) + plan.refused
    if failed:
        console.print(f"[red]{failed} of {plan.total} failed[/red]")
    raise typer.Exit(1 if failed else 0)


class ConsoleReport:
    """The job runner's report on the terminal: one line per output, skip and failure; progress bars for files,
    the tiles of a large image and a video's frames (on a terminal only)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console,
                              disable=not console.is_terminal)
        self._files = self._bars.add_task("files", total=None, rate="", visible=False)
        self._tiles = self._bars.add_task("tiles", total=None, rate="", visible=False)
        self._frames = self._bars.add_task("frames", total=None, rate="", visible=False)
        self._video_started: dict[str, float] = {}

    def __enter__(self) -> ConsoleReport:
        self._bars.start()
        return self

    def __exit__(self, *exc) -> None:
        self._bars.stop()

    def skipped(self, source, target) -> None:
        console.print(f"skipped {escape(str(source))}: {escape(str(target))} exists (pass --overwrite to replace "
                      "it)")

    def failed(self, failure) -> None:
        console.print(f"[red]error:[/red] {escape(failure.line)}")

    def done(self, result) -> None:
        out.print(result.line(), markup=False)

    def files(self, done: int, total: int) -> None:
        self._bars.update(self._files, completed=done, total=total, visible=True)
        self._bars.update(self._tiles, visible=False)

    def tiles(self, name: str, done: int, total: int, out_pixels: int) -> None:
        self._bars.update(self._tiles, completed=done, total=total, visible=total > 1,
                          description=tile_label(name, done, total, out_pixels))

    def frames(self, name: str, done: int, total: int) -> None:
        started = self._video_started.setdefault(name, time.perf_counter())
        rate = done / max(time.perf_counter() - started, 1e-9)
        self._bars.update(self._frames, completed=done, total=total or None, visible=True,
                          description=f"{name}: frames", rate=f"{rate:.1f} fps")


def _video_settings(videos: list[tuple[Path, Path]], codec: str | None, crf: int | None, start: float | None,
                    duration: float | None):
    """The video options, checked against every video's output before anything loads (None without videos)."""
    given = [name for name, value in (("--codec", codec), ("--crf", crf), ("--start", start),
                                      ("--duration", duration)) if value is not None]
    if not videos:
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            console.print(f"[yellow]warning:[/yellow] {', '.join(given)} {verb} to videos; no video among the "
                          "inputs")
        return None
    from trtsr.pipeline.video import VideoSettings, require_av

    require_av()
    settings = VideoSettings(codec=codec, crf=crf, start=start, duration=duration)
    settings.check()
    for _, dst in videos:
        settings.encoder(dst)
    return settings


def tile_label(name: str, done: int, total: int, out_pixels: int) -> str:
    """The tile bar's text: the file, and its output megapixels done (tiles are about equal in size)."""
    total_mp = out_pixels / 1e6
    return f"{name}: {total_mp * done / max(total, 1):.1f}/{total_mp:.1f} MP, tiles"
