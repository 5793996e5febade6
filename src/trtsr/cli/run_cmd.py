"""`trtsr run`: upscale image files, folders and globs."""

from __future__ import annotations

import glob
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from trtsr.cli.common import console, out, status, user_errors
from trtsr.cli.options import GuidanceOption, VerboseOption

WRITABLE = {"png": "png", "jpg": "jpg", "jpeg": "jpg", "webp": "webp", "tif": "tiff", "tiff": "tiff"}


def collect_inputs(items: list[str]) -> tuple[list[Path], list[str]]:
    """Files, folders (their images, not recursive) and globs -> image paths, plus one-line problems."""
    from trtsr.runtime.images import IMAGE_SUFFIXES

    files: list[Path] = []
    problems: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append(f"{path}: folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(found)
        elif path.exists() or not glob.has_magic(item):
            files.append(path)  # a missing file is reported by the reader, with the rest going on
        else:
            matched = sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
            if not matched:
                problems.append(f"{item}: no file matches")
            files.extend(matched)
    unique = list(dict.fromkeys(files))
    return unique, problems


def output_path(source: Path, output: Path | None, many: bool, suffix: str, fmt: str | None) -> Path:
    if output is not None and not many and output.suffix.lower().lstrip(".") in WRITABLE and not output.is_dir():
        return output
    ext = fmt or WRITABLE.get(source.suffix.lower().lstrip("."), "png")
    folder = output if output is not None else source.parent
    return folder / f"{source.stem}{suffix}.{ext}"


def run_command(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns ('photos/*.jpg').")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Output folder, or a file name when there is one input. "
                                            "Default: beside each input."),
    ] = None,
    model: Annotated[
        str, typer.Option("--model", "-m", help="default, tiny, gendr-pix, a checkpoint, a diffusers folder, "
                                                "or an exported .onnx.")
    ] = "default",
    engine: Annotated[
        Path | None, typer.Option("--engine", "-e", help="A built engine (trtsr build); needs an NVIDIA GPU.")
    ] = None,
    backend: Annotated[
        str, typer.Option("--backend", "-b", help="auto (engine on a GPU, else ONNX Runtime), onnxruntime, "
                                                  "tensorrt, tensorrt-rtx.")
    ] = "auto",
    scale: Annotated[int, typer.Option("--scale", "-s", help="Upscaling factor (graphs are exported per scale).")] = 4,
    guidance: GuidanceOption = 1.8,
    no_padcfg: Annotated[bool, typer.Option("--no-padcfg", help="Run without PadCFG (twice as fast).")] = False,
    tile: Annotated[
        int | None, typer.Option("--tile", "-t", help="Tile side in input pixels; default: whole image when it "
                                                         "fits (ONNX Runtime: 128).")
    ] = None,
    overlap: Annotated[int, typer.Option("--overlap", help="Input pixels shared by neighbouring tiles.")] = 16,
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="png, jpg, webp or tiff; default: the input's format.")
    ] = None,
    suffix: Annotated[str | None, typer.Option("--suffix", help="Added to output names; default _x<scale>.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs (inputs never).")] = False,
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
    """
    with user_errors(verbose):
        from trtsr.errors import TrtsrError

        if fmt is not None and fmt.lower() not in WRITABLE:
            raise TrtsrError(f"unknown --format {fmt!r}; use png, jpg, webp or tiff")
        fmt = WRITABLE[fmt.lower()] if fmt else None
        files, problems = collect_inputs(inputs)
        for problem in problems:
            console.print(f"[red]error:[/red] {escape(problem)}")
        if not files:
            raise typer.Exit(1)
        many = len(files) > 1 or (output is not None and output.is_dir())
        if output is not None and many and output.suffix and not output.is_dir():
            raise TrtsrError("with several inputs, --output must be a folder", path=output)
        suffix = f"_x{scale}" if suffix is None else suffix
        jobs = [(src, output_path(src, output, many, suffix, fmt)) for src in files]

        from trtsr.runtime.upscaler import Upscaler

        with status(f"loading {engine or model}") as say:
            upscaler = Upscaler(model, engine=engine, backend=backend, scale=scale,
                                guidance=None if no_padcfg else guidance, tile=tile, overlap=overlap, progress=say)
        console.print(f"upscaling x{upscaler.scale} with {escape(upscaler.backend_name)}")
        with upscaler:
            failed = _run_jobs(upscaler, jobs, overwrite)
        failed += len(problems)
        if failed:
            console.print(f"[red]{failed} of {len(files) + len(problems)} failed[/red]")
            raise typer.Exit(1)


def _run_jobs(upscaler, jobs: list[tuple[Path, Path]], overwrite: bool) -> int:
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
    show_bar = len(todo) > 1 and console.is_terminal
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console, disable=not show_bar)
    with progress, ThreadPoolExecutor(max_workers=2) as pool:
        task = progress.add_task("upscaling", total=len(todo))
        pending_read: Future | None = pool.submit(read_image, todo[0][0]) if todo else None
        writes: list[tuple[Path, Path, Future, float, tuple, tuple]] = []
        for index, (src, dst) in enumerate(todo):
            reading, pending_read = pending_read, None
            if index + 1 < len(todo):
                pending_read = pool.submit(read_image, todo[index + 1][0])
            started = time.perf_counter()
            try:
                picture = reading.result()
                result = upscaler.upscale_picture(picture)
                fmt = dst.suffix.lstrip(".")
                writes.append((src, dst, pool.submit(write_image, result, dst, fmt), started, picture.size,
                               result.size))
            except TrtsrError as exc:
                console.print(f"[red]error:[/red] {escape(str(exc))}")
                failed += 1
            progress.advance(task)
            failed += _finish_writes(writes, wait=False)
        failed += _finish_writes(writes, wait=True)
    return failed


def _finish_writes(writes: list, *, wait: bool) -> int:
    from trtsr.errors import TrtsrError

    failed = 0
    for entry in list(writes):
        src, dst, future, started, size_in, size_out = entry
        if not wait and not future.done():
            continue
        writes.remove(entry)
        try:
            future.result()
        except TrtsrError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}")
            failed += 1
            continue
        except OSError as exc:
            console.print(f"[red]error:[/red] {escape(str(dst))}: cannot write ({escape(exc.strerror or str(exc))})")
            failed += 1
            continue
        seconds = time.perf_counter() - started
        out.print(f"{src} -> {dst} ({size_in[0]}x{size_in[1]} -> {size_out[0]}x{size_out[1]}, {seconds:.1f} s)",
                  markup=False)
    return failed
