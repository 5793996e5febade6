"""`trtsr run`: upscale image files, folders and globs."""

from __future__ import annotations

import glob
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from trtsr import defaults
from trtsr.cli.common import console, out, status, user_errors
from trtsr.cli.options import (
    CompileOption,
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
from trtsr.files import nearest_existing
from trtsr.outputs import WRITABLE, check_suffix, find_collisions, normalise_format
from trtsr.outputs import output_name as shared_output_name


def collect_inputs(items: list[str], *, recursive: bool = False, stdin=None
                   ) -> tuple[list[Path], list[str], dict[Path, Path]]:
    """Inputs -> image paths in order without repeats, one-line problems, and for images found below a
    folder with `recursive` their sub-folder (which an output folder mirrors).

    An item is a file, a folder (its images; with `recursive`, every image below it), a glob, `@LIST`
    (a text file with one input per line; `#` starts a comment) or `-` (the same list on standard input).
    """
    from trtsr.runtime.images import IMAGE_SUFFIXES

    files: list[Path] = []
    problems: list[str] = []
    subdirs: dict[Path, Path] = {}
    for item in items:
        if item == "-" or item.startswith("@"):
            source = "standard input" if item == "-" else item[1:]
            try:
                text = (stdin or sys.stdin).read() if item == "-" else Path(item[1:]).read_text()
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(f"{source}: cannot read the list ({getattr(exc, 'strerror', None) or exc})")
                continue
            listed = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
            if not listed:
                problems.append(f"{source}: the list names no inputs (it is empty or holds only comments)")
                continue
            found, trouble, below = collect_inputs(listed, recursive=recursive)
            files += found
            problems += trouble
            subdirs.update(below)
            continue
        path = Path(item)
        if path.is_dir():
            pattern = path.rglob("*") if recursive else path.iterdir()
            found = sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not p.name.startswith("."))
            if not found:
                where = "below it" if recursive else "in it (-r also looks in sub-folders)"
                problems.append(f"{path}: no images {where} ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(found)
            subdirs.update({p: p.parent.relative_to(path) for p in found})
        elif path.exists() or not glob.has_magic(item):
            files.append(path)  # a missing file is reported by the reader, with the rest going on
        else:
            matched = sorted(Path(p) for p in glob.glob(item, recursive=recursive) if Path(p).is_file())
            if not matched:
                problems.append(f"{item}: no file matches")
            files.extend(matched)
    unique = list(dict.fromkeys(files))
    return unique, problems, subdirs


def output_target(text: str | None, inputs: int) -> tuple[Path | None, bool]:
    """(path, is_file) for the -o value.

    A trailing slash or an existing folder is a folder; a name ending in an extension trtsr writes
    (.png, .jpg, .jpeg, .webp, .tif, .tiff) is a file, for one input only; a name ending in another
    image extension (.bmp, .gif) is an error; anything else (`out`, `g1.0`, `z.v2`) is a folder.
    """
    from trtsr.errors import TrtsrError
    from trtsr.runtime.images import IMAGE_SUFFIXES

    if text is None:
        return None, False
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        return path, False
    ext = path.suffix.lower()
    if ext.lstrip(".") in WRITABLE:
        if inputs > 1:
            raise TrtsrError(f"with {inputs} inputs, --output must be a folder, not a {ext} file name "
                             "(end it with / to name a folder)", path=text)
        return path, True
    if ext in IMAGE_SUFFIXES:
        raise TrtsrError(f"trtsr writes png, jpg, webp or tiff, not {ext}; name the output .png (or end it with / "
                         "for a folder)", path=text)
    return path, False


def output_path(source: Path, output: Path | None, is_file: bool, suffix: str, fmt: str | None,
                subdir: Path | None = None) -> Path:
    if output is not None and is_file:
        return output
    folder = source.parent if output is None else output / (subdir or Path())
    return folder / shared_output_name(source.name, suffix, fmt)


def unwritable_folders(targets: list[Path]) -> dict[Path, str]:
    """{output folder: one line} for each folder that cannot be created or written, checked before any work."""
    problems = {}
    for folder in sorted({t.parent for t in targets}):
        existing = nearest_existing(folder)
        if not existing.is_dir():
            problems[folder] = f"{folder}: cannot create the output folder ({existing} is a file)"
        elif not os.access(existing, os.W_OK | os.X_OK):
            problems[folder] = f"{folder}: output folder is not writable"
    return problems


def refuse_collisions(jobs: list[tuple[Path, Path]]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Jobs whose output no other input shares, and one line for each input that shares one."""
    collisions = find_collisions((src, dst.resolve()) for src, dst in jobs)
    problems = []
    for target, sources in collisions.items():
        for src in sources:
            others = ", ".join(str(o) for o in sources if o != src)
            problems.append(f"{src}: its output {target} would also be written from {others}; "
                            "upscale them separately or rename one")
    clashing = {src for sources in collisions.values() for src in sources}
    return [(src, dst) for src, dst in jobs if src not in clashing], problems


def run_command(
    inputs: Annotated[
        list[str],
        typer.Argument(help="Image files, folders, glob patterns ('photos/*.jpg'), @LIST (a text file with one "
                            "input per line) or - (that list on standard input)."),
    ],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Output folder (a name ending in /, an existing folder, or a name "
                                            "without an image extension), or with one input a file name ending "
                                            "in .png, .jpg, .webp or .tif. Default: beside each input."),
    ] = None,
    model: RunModelOption = "default",
    engine: Annotated[
        Path | None, typer.Option("--engine", "-e", help="A built engine (trtsr build); needs an NVIDIA GPU.")
    ] = None,
    backend: RunBackendOption = "auto",
    compile: CompileOption = False,
    scale: RunScaleOption = None,
    guidance: RunGuidanceOption = None,
    no_padcfg: RunNoPadcfgOption = False,
    tile: TileOption = None,
    overlap: OverlapOption = None,
    fmt: FormatOption = None,
    suffix: SuffixOption = None,
    overwrite: OverwriteOption = False,
    random_weights: RandomWeightsOption = False,
    quality: Annotated[
        int, typer.Option("--quality", "-q", min=1, max=100, help="JPEG and WebP quality, 1-100.")
    ] = defaults.QUALITY,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Take images in sub-folders too; an output folder mirrors "
                                                     "them.")
    ] = False,
    verbose: VerboseOption = False,
) -> None:
    """Upscale images.

    Grayscale stays grayscale, alpha is upscaled alongside, 16-bit PNGs stay 16-bit,
    EXIF orientation is applied and ICC profiles are kept. Each output is written to
    a temporary file and renamed; existing outputs are kept unless --overwrite. A
    file that cannot be read fails alone; the exit status is 1 if any failed.

    Examples:

      trtsr run photo.jpg                        # writes photo_x4.jpg

      trtsr run shots/ -o big/ --format png

      trtsr run 'scans/*.tif' --engine model.engine --tile 512

      trtsr run frames/ -b torch --compile       # PyTorch on a GPU without TensorRT
    """
    with user_errors(verbose):
        from trtsr.errors import TrtsrError
        from trtsr.pipeline.upscaler import check_given_model, check_model_name, check_run_options

        # Everything that can be checked without loading a model, first (a graph's or an engine's own scale and
        # guidance come from its spec or metadata).
        scale, w = check_given_model(engine, model, scale=scale, guidance=guidance, no_padcfg=no_padcfg,
                                     random_weights=random_weights)
        scale = defaults.SCALE if scale is None else scale
        check_run_options(backend=backend, scale=scale, guidance=w, tile=tile,
                          overlap=overlap)
        if compile and backend not in ("torch", "auto"):
            raise TrtsrError(f"--compile is for the torch backend, not {backend}")
        if engine is None:
            check_model_name(model, random_weights=random_weights)  # Upscaler warns when it runs random weights
        elif not engine.is_file():
            raise TrtsrError("engine not found", path=engine)
        try:
            fmt = normalise_format(fmt)
        except ValueError as exc:
            raise TrtsrError(f"--format: {exc}") from None
        check_suffix(suffix)
        files, problems, subdirs = collect_inputs(inputs, recursive=recursive)
        for problem in problems:
            console.print(f"[red]error:[/red] {escape(problem)}")
        if not files:
            raise typer.Exit(1)
        out_path, out_is_file = output_target(output, len(files))
        if out_is_file and fmt is not None and normalise_format(out_path.suffix) != fmt:
            raise TrtsrError(f"-o names a {out_path.suffix} file but --format is {fmt}; give one of them",
                             path=out_path)
        suffix = f"_x{scale}" if suffix is None else suffix
        jobs, clashes = refuse_collisions([
            (src, output_path(src, out_path, out_is_file, suffix, fmt, subdirs.get(src))) for src in files])
        for problem in clashes:
            console.print(f"[red]error:[/red] {escape(problem)}")
        total = len(files) + len(problems)  # inputs found, and items that matched none
        problems += clashes
        if not jobs:
            raise typer.Exit(1)
        blocked = unwritable_folders([dst for _, dst in jobs])
        for folder, problem in blocked.items():  # those inputs fail; the others go on
            stopped = [src for src, dst in jobs if dst.parent == folder]
            console.print(f"[red]error:[/red] {escape(problem)} ({len(stopped)} input(s) not upscaled)")
            problems += [problem] * len(stopped)
        jobs = [(src, dst) for src, dst in jobs if dst.parent not in blocked]
        if not jobs:
            raise typer.Exit(1)

        from trtsr.pipeline.upscaler import Upscaler

        torch_settings = None
        if compile:
            try:
                from trtsr.models.torch_session import TorchSettings
            except ImportError:
                from trtsr.errors import MissingDependencyError

                raise MissingDependencyError("--compile (the torch backend)", "export") from None
            torch_settings = TorchSettings(compile=True)
        with status(f"loading {engine or model}") as say:
            upscaler = Upscaler(model, engine=engine, backend=backend, scale=scale,  # the graph's own, checked
                                guidance=w, tile=tile, overlap=overlap, torch_settings=torch_settings,
                                progress=say)
        if compile and not upscaler.backend_name.startswith("torch"):
            console.print(f"[yellow]warning:[/yellow] --compile applies to the torch backend only; "
                          f"{escape(upscaler.backend_name)} runs")
        console.print(f"upscaling x{upscaler.scale} with {escape(upscaler.backend_name)}: "
                      f"{escape(upscaler.backend_reason)}")
        with upscaler:
            failed = _run_jobs(upscaler, jobs, overwrite, quality)
        failed += len(problems)
        if failed:
            console.print(f"[red]{failed} of {total} failed[/red]")
            raise typer.Exit(1)


def _run_jobs(upscaler, jobs: list[tuple[Path, Path]], overwrite: bool, quality: int = defaults.QUALITY) -> int:
    """Decode the next file and encode the last one while the current one runs."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from trtsr.errors import TrtsrError
    from trtsr.runtime.images import read_image, write_image

    failed = 0
    todo = []
    for src, dst in jobs:
        if dst.resolve() == src.resolve():
            console.print(f"[red]error:[/red] {escape(str(src))}: output would replace the input; choose --suffix "
                          "or --output")
            failed += 1
        elif dst.exists() and not overwrite:
            console.print(f"skipped {escape(str(src))}: {escape(str(dst))} exists (pass --overwrite to replace it)")
        else:
            todo.append((src, dst))
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
        # One picture stays queued on the engine while the next is read and started, so the next one's copy
        # to the GPU overlaps this one's run (Upscaler.start); other sessions finish inside start.
        queued: tuple[Path, Path, object, float] | None = None

        def finish(entry: tuple[Path, Path, object, float]) -> int:
            src, dst, job, started = entry
            try:
                result = job.result()
            except TrtsrError as exc:
                console.print(f"[red]error:[/red] {escape(str(exc))}")
                return 1
            worked = job.finished_at - started  # this file's read wait and inference (queued: until its result)
            writing = pool.submit(timed_write, result, dst, dst.suffix.lstrip("."))
            writes.append((src, dst, writing, worked, job.picture.size, result.size))
            return 0

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

                job = upscaler.start(picture, progress=on_tile)
            except TrtsrError as exc:
                console.print(f"[red]error:[/red] {escape(str(exc))}")
                failed += 1
                job = None
            if queued is not None:  # after the next one started: its copy overlapped this one's run
                failed += finish(queued)
                progress.advance(task)
                queued = None
            if job is not None and not job.done:
                queued = (src, dst, job, started)
            else:
                failed += finish((src, dst, job, started)) if job is not None else 0
                progress.advance(task)
            progress.update(tiles, visible=False)
            failed += _finish_writes(writes, wait=False)
        if queued is not None:
            failed += finish(queued)
            progress.advance(task)
        failed += _finish_writes(writes, wait=True)
    return failed


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
            console.print(f"skipped {escape(str(src))}: {escape(str(dst))} was written meanwhile by another run "
                          "(pass --overwrite to replace it)")
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
