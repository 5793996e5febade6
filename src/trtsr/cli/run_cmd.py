"""`trtsr run`: upscale image files, folders and globs."""

from __future__ import annotations

import functools
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from trtsr import defaults
from trtsr.cli.common import console, out, status, user_errors
from trtsr.cli.options import CompileOption, RunOptions, VerboseOption, with_run_options
from trtsr.outputs import is_video, plan_run


@with_run_options
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
    run: RunOptions = RunOptions(),
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
        from trtsr.errors import MissingDependencyError

        torch_settings = None
        if compile:
            try:
                from trtsr.models.torch_session import TorchSettings
            except ImportError:
                raise MissingDependencyError("--compile (the torch backend)", "export") from None
            torch_settings = TorchSettings(compile=True)
        # Everything that can be checked without loading a model, first, once (a graph's or an engine's own scale
        # and guidance come from its spec or metadata).
        request = run.request(torch_settings=torch_settings)
        suffix = f"_x{request.scale_out}" if run.suffix is None else run.suffix
        plan = plan_run(inputs, output, suffix=suffix, fmt=run.fmt, recursive=recursive)
        for note in plan.notes:
            console.print(escape(note))
        for problem in plan.problems:
            console.print(f"[red]error:[/red] {escape(problem)}")
        if not plan.jobs:
            raise typer.Exit(1)
        # existing outputs are skipped here, before any model is loaded or exported
        todo, failed = _to_do(plan.jobs, run.overwrite)
        failed += plan.refused
        videos = [(src, dst) for src, dst in todo if is_video(src)]
        images = [(src, dst) for src, dst in todo if not is_video(src)]
        video_settings = _video_settings([job for job in plan.jobs if is_video(job[0])], codec, crf, start, duration)
        if not todo:
            if failed:
                console.print(f"[red]{failed} of {plan.total} failed[/red]")
            raise typer.Exit(1 if failed else 0)

        from trtsr.pipeline.upscaler import Upscaler

        with status(f"loading {run.engine or run.model or 'default'}") as say:
            upscaler = Upscaler.from_request(request, progress=say)
        if compile and not upscaler.backend_name.startswith("torch"):
            console.print(f"[yellow]warning:[/yellow] --compile applies to the torch backend only; "
                          f"{escape(upscaler.backend_name)} runs")
        w = upscaler.guidance
        pad = "no PadCFG" if w is None else f"PadCFG w {w:g}"
        console.print(f"upscaling x{upscaler.scale}, {pad}, with {escape(upscaler.backend_name)}: "
                      f"{escape(upscaler.backend_reason)}")
        with upscaler:
            failed += _run_jobs(upscaler, images, run.overwrite, quality, checked=True)
            failed += _run_videos(upscaler, videos, run.overwrite, video_settings, checked=True)
        if failed:
            console.print(f"[red]{failed} of {plan.total} failed[/red]")
            raise typer.Exit(1)


def _to_do(jobs: list[tuple[Path, Path]], overwrite: bool) -> tuple[list[tuple[Path, Path]], int]:
    """(the jobs to run, how many failed): an output that would replace its input fails; one that exists is
    skipped unless `overwrite`. Each says so in one line."""
    todo, failed = [], 0
    for src, dst in jobs:
        if dst.resolve() == src.resolve():
            console.print(f"[red]error:[/red] {escape(str(src))}: output would replace the input; choose --suffix "
                          "or --output")
            failed += 1
        elif dst.exists() and not overwrite:
            console.print(f"skipped {escape(str(src))}: {escape(str(dst))} exists (pass --overwrite to replace it)")
        else:
            todo.append((src, dst))
    return todo, failed


def _written_meanwhile(src: Path, dst: Path) -> int:
    """One line for an output another process wrote while this run worked on it (kept, not replaced); it counts
    as failed, as any output that could not be written."""
    console.print(f"[red]error:[/red] {escape(str(src))}: {escape(str(dst))} was written meanwhile by another run; "
                  "kept it (pass --overwrite to replace it)")
    return 1


def _run_jobs(upscaler, jobs: list[tuple[Path, Path]], overwrite: bool, quality: int = defaults.QUALITY, *,
              checked: bool = False) -> int:
    """Upscale each job's input into its output; the next file is decoded and the last ones encoded in host
    threads while the current one runs. Returns how many failed. `checked`: the jobs have been through
    `_to_do` already. After Ctrl-C the outputs already being written are finished and reported."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from trtsr.errors import TrtsrError
    from trtsr.runtime.images import read_image, write_image

    todo, failed = (jobs, 0) if checked else _to_do(jobs, overwrite)
    # Files, and the tiles of the image in hand (a large image is many tiles and minutes of work).
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console, disable=not console.is_terminal)

    def timed_write(result, dst: Path, fmt: str) -> float:
        started = time.perf_counter()
        write_image(result, dst, fmt, quality=quality, overwrite=overwrite)
        return time.perf_counter() - started

    with progress, ThreadPoolExecutor(max_workers=2) as pool:
        task = progress.add_task("files", total=len(todo))
        tiles = progress.add_task("tiles", total=None, visible=False)
        pending_read: Future | None = pool.submit(read_image, todo[0][0]) if todo else None
        writes: list[tuple[Path, Path, Future, float, tuple, tuple]] = []
        try:
            for index, (src, dst) in enumerate(todo):
                reading, pending_read = pending_read, None
                if index + 1 < len(todo):
                    pending_read = pool.submit(read_image, todo[index + 1][0])
                started = time.perf_counter()
                try:
                    picture = reading.result()
                    out_pixels = picture.size[0] * picture.size[1] * upscaler.scale**2

                    def on_tile(done: int, total: int, name: str = src.name, pixels: int = out_pixels) -> None:
                        progress.update(tiles, completed=done, total=total, visible=total > 1,
                                        description=tile_label(name, done, total, pixels))

                    result = upscaler.upscale_picture(picture, progress=on_tile)
                except TrtsrError as exc:
                    console.print(f"[red]error:[/red] {escape(str(exc))}")
                    failed += 1
                else:
                    worked = time.perf_counter() - started  # this file's read wait and inference
                    writing = pool.submit(timed_write, result, dst, dst.suffix.lstrip("."))
                    writes.append((src, dst, writing, worked, picture.size, result.size))
                progress.advance(task)
                progress.update(tiles, visible=False)
                failed += _finish_writes(writes, wait=False)
        except KeyboardInterrupt:
            # the outputs already being written finish (the pool waits for them): report each one
            if pending_read is not None:
                pending_read.cancel()
            _finish_writes(writes, wait=True)
            raise
        failed += _finish_writes(writes, wait=True)
    return failed


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


def _run_videos(upscaler, jobs: list[tuple[Path, Path]], overwrite: bool, settings, *, checked: bool = False) -> int:
    """Upscale each video in turn, frames and frames per second on the progress bar; returns how many failed.
    `checked`: the jobs have been through `_to_do` already."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from trtsr.errors import TrtsrError
    from trtsr.pipeline.video import upscale_video

    todo, failed = (jobs, 0) if checked else _to_do(jobs, overwrite)
    for src, dst in todo:
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[fps]}"), TimeRemainingColumn(), console=console,
                            disable=not console.is_terminal)
        with progress:
            task = progress.add_task(f"{src.name}: frames", total=None, fps="")
            on_frame = functools.partial(_frame_progress, progress, task, time.perf_counter())
            try:
                report = upscale_video(upscaler, src, dst, settings, overwrite=overwrite, progress=on_frame)
            except TrtsrError as exc:
                console.print(f"[red]error:[/red] {escape(str(exc))}")
                failed += 1
                continue
            except FileExistsError:
                failed += _written_meanwhile(src, dst)
                continue
        (w_in, h_in), (w_out, h_out) = report.size_in, report.size_out
        out.print(f"{src} -> {dst} ({w_in}x{h_in} -> {w_out}x{h_out}, {report.frames} frames, {report.fps:.1f} fps, "
                  f"{report.seconds:.1f} s)", markup=False)
    return failed


def _frame_progress(progress, task, started: float, done: int, total: int) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    progress.update(task, completed=done, total=total or None, fps=f"{rate:.1f} fps")


def tile_label(name: str, done: int, total: int, out_pixels: int) -> str:
    """The tile bar's text: the file, and its output megapixels done (tiles are about equal in size)."""
    total_mp = out_pixels / 1e6
    return f"{name}: {total_mp * done / max(total, 1):.1f}/{total_mp:.1f} MP, tiles"


def _finish_writes(writes: list, *, wait: bool) -> int:
    from trtsr.errors import TrtsrError

    failed = 0
    for entry in list(writes):
        src, dst, future, worked, size_in, size_out = entry
        if not wait and not future.done():
            continue
        writes.remove(entry)
        try:
            written = future.result()
        except FileExistsError:
            failed += _written_meanwhile(src, dst)
            continue
        except TrtsrError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}")
            failed += 1
            continue
        except OSError as exc:
            console.print(f"[red]error:[/red] {escape(str(dst))}: cannot write ({escape(exc.strerror or str(exc))})")
            failed += 1
            continue
        seconds = worked + written
        out.print(f"{src} -> {dst} ({size_in[0]}x{size_in[1]} -> {size_out[0]}x{size_out[1]}, {seconds:.1f} s)",
                  markup=False)
    return failed
