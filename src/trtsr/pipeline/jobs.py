"""The job runner: (input, output) pairs through an `Upscaler`, for `trtsr run`, `trtsr bench`, the
benchmarks and the tests; `trtsr batch` sorts its jobs with the same rules (`sort_jobs`) and runs them on Ray.

Two steps, so that nothing is loaded for a run with nothing to do:

    sorted_jobs = sort_jobs(plan.jobs, overwrite)        # cheap: which run, which are skipped, which fail
    summary = run_jobs(upscaler, sorted_jobs, report=...)

`run_jobs` decodes the next image and encodes the last ones in host threads while the current one
runs, upscales videos frame by frame (`trtsr.pipeline.video`), and tells a `JobReport` what happens:
one line per output written, skipped or failed, and progress. After Ctrl-C the outputs already being
written are finished and reported, then the interruption goes on up. A file that fails fails alone.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from trtsr import defaults
from trtsr.errors import TrtsrError
from trtsr.outputs import is_video

REPLACES_INPUT = "output would replace the input; choose --suffix or --output"


@dataclasses.dataclass(frozen=True)
class Failure:
    """source: a Path, or for `trtsr batch` a location string; reason: why, in a few words; line: the one line
    that says it (default: the source, then the reason)."""

    source: Any
    reason: str
    line: str = ""

    def __post_init__(self) -> None:
        if not self.line:
            object.__setattr__(self, "line", f"{self.source}: {self.reason}")

    @classmethod
    def of(cls, source: Any, exc: TrtsrError) -> Failure:
        return cls(source, exc.reason, str(exc))


@dataclasses.dataclass(frozen=True)
class SortedJobs:
    """Jobs to run, those whose output exists (kept, not run) and those refused, in their order."""

    todo: list[tuple[Any, Any]]
    skipped: list[tuple[Any, Any]]
    failed: list[Failure]


def sort_jobs(jobs: Iterable[tuple[Any, Any]], overwrite: bool, *,
              exists: Callable[[Any], bool] | None = None,
              same: Callable[[Any, Any], bool] | None = None) -> SortedJobs:
    """An output that would replace its input fails; one that exists is skipped unless `overwrite`. `exists`
    and `same` default to local paths' (`trtsr batch` passes its filesystem's)."""
    exists = exists or (lambda dst: Path(dst).exists())
    same = same or (lambda src, dst: Path(dst).resolve() == Path(src).resolve())
    todo, skipped, failed = [], [], []
    for src, dst in jobs:
        if same(src, dst):
            failed.append(Failure(src, REPLACES_INPUT))
        elif not overwrite and exists(dst):
            skipped.append((src, dst))
        else:
            todo.append((src, dst))
    return SortedJobs(todo, skipped, failed)


@dataclasses.dataclass(frozen=True)
class JobResult:
    """One output written: sizes (width, height) in and out, seconds (read wait, upscale and write), and for a
    video its frames and frames per second."""

    source: Path
    target: Path
    size_in: tuple[int, int]
    size_out: tuple[int, int]
    seconds: float
    frames: int | None = None
    fps: float | None = None

    def line(self) -> str:
        (w_in, h_in), (w_out, h_out) = self.size_in, self.size_out
        if self.frames is not None:
            return (f"{self.source} -> {self.target} ({w_in}x{h_in} -> {w_out}x{h_out}, {self.frames} frames, "
                    f"{self.fps:.1f} fps, {self.seconds:.1f} s)")
        return f"{self.source} -> {self.target} ({w_in}x{h_in} -> {w_out}x{h_out}, {self.seconds:.1f} s)"


@dataclasses.dataclass
class RunSummary:
    done: list[JobResult] = dataclasses.field(default_factory=list)
    skipped: list[tuple[Any, Any]] = dataclasses.field(default_factory=list)
    failed: list[Failure] = dataclasses.field(default_factory=list)


class JobReport:
    """What a runner tells its caller as it goes. This base says nothing (the `RunSummary` keeps the results);
    a caller overrides what it wants. The command line's `cli.run_cmd.ConsoleReport` has every method itself,
    so the CLI imports this module only when it runs jobs."""

    def skipped(self, source: Any, target: Any) -> None:
        pass

    def failed(self, failure: Failure) -> None:
        pass

    def done(self, result: JobResult) -> None:
        pass

    def files(self, done: int, total: int) -> None:
        pass

    def tiles(self, name: str, done: int, total: int, out_pixels: int) -> None:
        pass

    def frames(self, name: str, done: int, total: int) -> None:
        pass


def written_meanwhile(source: Any, target: Any) -> Failure:
    """An output another process wrote while this run worked on it: kept, not replaced, and counted as failed,
    as any output that could not be written."""
    return Failure(source, f"{target} was written meanwhile by another run; kept it (pass --overwrite to replace "
                           "it)")


def run_jobs(upscaler, jobs: SortedJobs, *, overwrite: bool = False, quality: int = defaults.QUALITY,
             video=None, report: JobReport | None = None) -> RunSummary:
    """Run `jobs.todo` with `upscaler` (images first, then videos with `video`, a `VideoSettings`), reporting
    the skipped and refused ones first. Returns what was done, skipped and failed."""
    report = report or JobReport()
    summary = RunSummary(skipped=list(jobs.skipped), failed=[])
    for src, dst in jobs.skipped:
        report.skipped(src, dst)
    for failure in jobs.failed:
        _fail(summary, report, failure)
    images = [(Path(src), Path(dst)) for src, dst in jobs.todo if not is_video(src)]
    videos = [(Path(src), Path(dst)) for src, dst in jobs.todo if is_video(src)]
    _run_images(upscaler, images, overwrite, quality, report, summary)
    for src, dst in videos:
        _run_video(upscaler, src, dst, overwrite, video, report, summary)
    return summary


def _fail(summary: RunSummary, report: JobReport, failure: Failure) -> None:
    summary.failed.append(failure)
    report.failed(failure)


def _run_images(upscaler, todo: list[tuple[Path, Path]], overwrite: bool, quality: int, report: JobReport,
                summary: RunSummary) -> None:
    from trtsr.runtime.images import read_image, write_image

    def timed_write(result, dst: Path, fmt: str) -> float:
        started = time.perf_counter()
        write_image(result, dst, fmt, quality=quality, overwrite=overwrite)
        return time.perf_counter() - started

    writes: list[tuple[Path, Path, Future, float, tuple, tuple]] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending_read: Future | None = pool.submit(read_image, todo[0][0]) if todo else None
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
                        report.tiles(name, done, total, pixels)

                    result = upscaler.upscale_picture(picture, progress=on_tile)
                except TrtsrError as exc:
                    _fail(summary, report, Failure.of(src, exc))
                else:
                    worked = time.perf_counter() - started  # this file's read wait and inference
                    writing = pool.submit(timed_write, result, dst, dst.suffix.lstrip("."))
                    writes.append((src, dst, writing, worked, picture.size, result.size))
                report.files(index + 1, len(todo))
                _finish_writes(writes, report, summary, wait=False)
        except KeyboardInterrupt:
            # the outputs already being written finish (the pool waits for them): report each one
            if pending_read is not None:
                pending_read.cancel()
            _finish_writes(writes, report, summary, wait=True)
            raise
        _finish_writes(writes, report, summary, wait=True)


def _finish_writes(writes: list, report: JobReport, summary: RunSummary, *, wait: bool) -> None:
    for entry in list(writes):
        src, dst, future, worked, size_in, size_out = entry
        if not wait and not future.done():
            continue
        writes.remove(entry)
        try:
            written = future.result()
        except FileExistsError:
            _fail(summary, report, written_meanwhile(src, dst))
            continue
        except TrtsrError as exc:
            _fail(summary, report, Failure.of(src, exc))
            continue
        except OSError as exc:
            why = exc.strerror or str(exc)
            _fail(summary, report, Failure(src, f"cannot write {dst} ({why})", f"{dst}: cannot write ({why})"))
            continue
        result = JobResult(src, dst, size_in, size_out, worked + written)
        summary.done.append(result)
        report.done(result)


def _run_video(upscaler, src: Path, dst: Path, overwrite: bool, settings, report: JobReport,
               summary: RunSummary) -> None:
    from trtsr.pipeline.video import VideoSettings, upscale_video

    def on_frame(done: int, total: int) -> None:
        report.frames(src.name, done, total)

    try:
        done = upscale_video(upscaler, src, dst, settings or VideoSettings(), overwrite=overwrite, progress=on_frame)
    except TrtsrError as exc:
        _fail(summary, report, Failure.of(src, exc))
        return
    except FileExistsError:
        _fail(summary, report, written_meanwhile(src, dst))
        return
    result = JobResult(src, dst, done.size_in, done.size_out, done.seconds, done.frames, done.fps)
    summary.done.append(result)
    report.done(result)
