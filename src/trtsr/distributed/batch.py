"""Upscale a whole dataset on a Ray cluster with Ray Data.

    list the inputs (local paths, globs, list files, any URI pyarrow.fs reads)
      -> read bytes and decode          Ray tasks on CPUs
      -> upscale                        stateful actors, each holding one Upscaler: one per GPU
                                        (num_gpus=1, engines from the shared engine cache, so N
                                        actors on one machine build once), or ONNX Runtime
                                        actors with `threads` intra-op threads on CPU clusters
      -> encode and write               Ray tasks; written under a temporary name, then moved

Ray Data schedules, streams and retries; trtsr adds no scheduler, queue or worker
protocol of its own. Every image is its own batch (batch_size=1), so images of
different sizes are never forced into one shape. The output names, formats,
suffixes, the overwrite rule and the no-collision rule are `trtsr.outputs`', the
same as `trtsr run`'s. A re-run skips outputs that exist: writes are atomic, so an
existing output is a complete one, and a stopped job continues where it stopped.
A file that cannot be read, upscaled or written fails alone and is listed in the
report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import glob
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from trtsr.backends import OnnxRuntimeSettings
from trtsr.defaults import IMAGE_SUFFIXES, RunBackend
from trtsr.errors import MissingDependencyError, TrtsrError
from trtsr.files import write_text_atomic
from trtsr.outputs import (
    absolute_posix,
    check_naming,
    collision_problems,
    find_collisions,
    is_video,
    output_name,
    own_outputs,
    own_outputs_line,
    read_list,
)
from trtsr.pipeline.jobs import sort_jobs
from trtsr.pipeline.request import RunRequest
from trtsr.source import SourceKind

log = logging.getLogger(__name__)


def _require_ray():
    try:
        import pyarrow.fs  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"the Ray batch job ({exc.name} is missing)", "distributed") from None
    return ray


# -- locations -------------------------------------------------------------------------------------------
def _is_uri(text: str) -> bool:
    return "://" in text


def _resolve(location: str):
    """(pyarrow filesystem, path inside it) for a URI or a local path."""
    import pyarrow.fs as pafs

    if _is_uri(location):
        try:
            return pafs.FileSystem.from_uri(location)
        except (ValueError, OSError, NotImplementedError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise TrtsrError(f"cannot open this location ({str(exc).splitlines()[0]})", path=location) from None
    return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve())


def _join(root: str, relative: PurePosixPath) -> str:
    return root.rstrip("/") + "/" + str(relative)


@dataclasses.dataclass(frozen=True)
class Job:
    """One input and its output. URIs stay URIs; local paths are absolute."""

    source: str
    target: str
    relative: str  # the input's path below the folder it was found in (the output mirrors it)


def _is_image(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def _list_one(item: str) -> tuple[list[tuple[str, PurePosixPath, bool]], list[str]]:
    """(source, relative name, named as a file) for each input `item` stands for, and one-line problems."""
    import pyarrow.fs as pafs

    if not _is_uri(item) and glob.has_magic(item):
        matched = sorted(p for p in glob.glob(item) if Path(p).is_file() and _is_image(p))
        if not matched:
            return [], [f"{item}: no image matches"]
        return [(str(Path(p).resolve()), PurePosixPath(Path(p).name), False) for p in matched], []
    fs, path = _resolve(item)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return [], [f"{item}: not found"]
    if info.type == pafs.FileType.File:
        if is_video(path):
            return [], [f"{item}: trtsr batch upscales images, not videos; upscale a video with trtsr run"]
        source = item if _is_uri(item) else path
        return [(source, PurePosixPath(PurePosixPath(path).name), True)], []
    entries = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    found = sorted(e.path for e in entries if e.type == pafs.FileType.File and _is_image(e.base_name)
                   and not e.base_name.startswith("."))
    if not found:
        return [], [f"{item}: folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))})"]
    prefix = item.split("://", 1)[0] + "://" if _is_uri(item) else ""
    base = PurePosixPath(path)
    return [(prefix + p if prefix and not p.startswith(prefix) else p, PurePosixPath(p).relative_to(base), False)
            for p in found], []


def expand_inputs(items: list[str]) -> tuple[list[tuple[str, PurePosixPath]], list[str]]:
    """Inputs -> (source, relative name) pairs, in order, without repeats; plus one-line problems.

    An item is a file, a folder (every image below it, recursively; the output mirrors its
    sub-folders), a local glob, `@LIST` (a text file with one input per line), or a URI.
    """
    found, problems = _expand(items)
    return [(source, relative) for source, relative, _ in found], problems


def _expand(items: list[str]) -> tuple[list[tuple[str, PurePosixPath, bool]], list[str]]:
    """`expand_inputs`, each input also saying whether it was named as a file."""
    triples: list[tuple[str, PurePosixPath, bool]] = []
    problems: list[str] = []
    for item in items:
        if item.startswith("@"):
            listed, unread = read_list(item)
            found, trouble = _expand(listed) if unread is None else ([], [unread])
        else:
            found, trouble = _list_one(item)
        triples += found
        problems += trouble
    unique: dict[tuple[str, PurePosixPath], bool] = {}  # without repeats; named as a file by any item counts
    for source, relative, named in triples:
        unique[(source, relative)] = unique.get((source, relative), False) or named
    return [(source, relative, named) for (source, relative), named in unique.items()], problems


def _own_outputs(items: list[str], found: list[tuple[str, PurePosixPath, bool]], output: str, suffix: str
                 ) -> list[bool]:
    """`trtsr.outputs.own_outputs` for a batch: which inputs are this tool's outputs (below the output folder or
    named as another input's output beside it), compared as paths inside their filesystems."""
    def inner(location: str) -> PurePosixPath:
        return PurePosixPath(location.split("://", 1)[-1]) if _is_uri(location) else absolute_posix(location)

    folders = {inner(item) for item in items if not item.startswith("@") and not glob.has_magic(item)
               and (_is_uri(item) or Path(item).is_dir())}
    return own_outputs([inner(source) for source, _, _ in found], [named for _, _, named in found],
                       inner(output), folders, suffix)


def plan_jobs(items: list[str], output: str, *, suffix: str, fmt: str | None, overwrite: bool
              ) -> tuple[list[Job], list[Job], list[dict[str, str]]]:
    """(to do, skipped because the output exists, failures) for the inputs and the output folder/URI."""
    import pyarrow.fs as pafs

    found, problems = _expand(items)
    left_out = _own_outputs(items, found, output, suffix)
    if any(left_out):
        log.warning(own_outputs_line(sum(left_out)))
    pairs = [(source, relative) for (source, relative, _), dropped in zip(found, left_out, strict=True)
             if not dropped]
    failures = [{"file": p.split(": ", 1)[0], "error": p.split(": ", 1)[-1]} for p in problems]
    out_fs, out_root = _resolve(output)
    out_prefix = output.split("://", 1)[0] + "://" if _is_uri(output) else ""
    jobs = []
    for source, relative in pairs:
        target_rel = relative.with_name(output_name(relative.name, suffix, fmt))
        jobs.append(Job(source, out_prefix + _join(out_root, target_rel), str(relative)))
    clashes = find_collisions((job.source, job.target) for job in jobs)
    failures += [{"file": source, "error": why} for source, why in collision_problems(clashes)]
    clashing = {s for sources in clashes.values() for s in sources}

    def exists(target: str) -> bool:
        return out_fs.get_file_info(target.split("://", 1)[-1] if out_prefix else target).type == pafs.FileType.File

    by_source = {job.source: job for job in jobs if job.source not in clashing}
    sorted_jobs = sort_jobs(((job.source, job.target) for job in by_source.values()), overwrite, exists=exists,
                            same=lambda source, target: source == target)
    failures += [{"file": failure.source, "error": failure.reason} for failure in sorted_jobs.failed]
    return ([by_source[source] for source, _ in sorted_jobs.todo],
            [by_source[source] for source, _ in sorted_jobs.skipped], failures)


# -- the stages that run on the cluster --------------------------------------------------------------------
def _reason(exc: BaseException) -> str:
    if isinstance(exc, TrtsrError):
        return exc.reason
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def _read_and_decode(row: dict[str, Any]) -> dict[str, Any]:
    """Ray task: the input's bytes -> a Picture (decoded exactly as `trtsr run` decodes a file)."""
    from trtsr.runtime.images import read_image

    started = time.perf_counter()
    row = {**row, "picture": None, "error": "", "seconds": 0.0}
    try:
        fs, path = _resolve(row["source"])
        if not _is_uri(row["source"]):
            row["picture"] = read_image(path)
        else:
            with fs.open_input_file(path) as fh:
                data = fh.read()
            with tempfile.TemporaryDirectory(prefix="trtsr-batch-") as tmp:
                local = Path(tmp) / PurePosixPath(path).name
                local.write_bytes(data)
                row["picture"] = read_image(local)
    except TrtsrError as exc:  # the reader's own one-line reasons
        row["error"] = exc.reason
    except Exception as exc:  # noqa: BLE001 - every failure is this file's alone
        row["error"] = f"cannot read: {_reason(exc)}"
    row["seconds"] = time.perf_counter() - started
    return row


class UpscaleActor:
    """Ray actor: one Upscaler for the actor's life, opened from the job's RunRequest; one image per call."""

    def __init__(self, request: RunRequest) -> None:
        from trtsr.pipeline.upscaler import Upscaler

        self.upscaler = Upscaler.from_request(request)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        pictures, errors, seconds = list(batch["picture"]), list(batch["error"]), list(batch["seconds"])
        for index, picture in enumerate(pictures):
            if errors[index]:
                continue
            started = time.perf_counter()
            try:
                pictures[index] = self.upscaler.upscale_picture(picture)
            except Exception as exc:  # noqa: BLE001
                pictures[index], errors[index] = None, f"cannot upscale: {_reason(exc)}"
            seconds[index] += time.perf_counter() - started
        return {**batch, "picture": pictures, "error": errors, "seconds": seconds,
                "backend": [self.upscaler.backend_name] * len(pictures)}


def _encode_and_write(row: dict[str, Any]) -> dict[str, Any]:
    """Ray task: Picture -> the output file, under a temporary name first, then moved into place."""
    from trtsr.runtime.images import write_image

    started = time.perf_counter()
    picture = row.pop("picture")
    row["pixels"] = 0
    if not row["error"]:
        try:
            fmt = PurePosixPath(row["target"]).suffix.lstrip(".")
            if not _is_uri(row["target"]):
                write_image(picture, row["target"], fmt)  # atomic: temporary file, then rename
            else:
                fs, path = _resolve(row["target"])
                with tempfile.TemporaryDirectory(prefix="trtsr-batch-") as tmp:
                    local = write_image(picture, Path(tmp) / PurePosixPath(path).name, fmt)
                    parent = str(PurePosixPath(path).parent)
                    fs.create_dir(parent, recursive=True)
                    partial = f"{parent}/.{PurePosixPath(path).name}.{uuid.uuid4().hex[:8]}.tmp"
                    with fs.open_output_stream(partial) as out:
                        out.write(local.read_bytes())
                    fs.move(partial, path)
            row["pixels"] = int(picture.size[0] * picture.size[1])
        except Exception as exc:  # noqa: BLE001
            row["error"] = f"cannot write {row['target']}: {_reason(exc)}"
    row["seconds"] += time.perf_counter() - started
    return row


# -- the job ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BatchSettings:
    """How the batch job upscales and where it runs.

    Fields:
        run: the `RunRequest` every actor opens (model or engine, backend, scale, guidance, tiles), checked
            once when it is built, as for `trtsr run` and `Upscaler`.
        fmt, suffix, overwrite: output naming, as for `trtsr run` (suffix None = _x<scale>).
        actors: upscaling actors; None = one per GPU in the cluster, else one.
        gpus_per_actor: GPUs each actor holds when the cluster has GPUs (1: one Upscaler per GPU).
        threads: ONNX Runtime intra-op threads per CPU actor (also the CPUs it reserves).
        io_cpus: CPUs each read/decode and encode/write task reserves.
    """

    run: RunRequest = dataclasses.field(default_factory=RunRequest)
    fmt: str | None = None
    suffix: str | None = None
    overwrite: bool = False
    actors: int | None = None
    gpus_per_actor: float = 1.0
    threads: int = 1
    io_cpus: float = 0.25

    def __post_init__(self) -> None:
        object.__setattr__(self, "fmt", check_naming(self.fmt, self.suffix))
        if self.actors is not None and self.actors < 1:
            raise TrtsrError(f"actors must be at least 1, got {self.actors}")
        if self.threads < 1:
            raise TrtsrError(f"threads must be at least 1, got {self.threads}")
        if not 0 < self.io_cpus <= 16:
            raise TrtsrError(f"io_cpus must be above 0 and at most 16, got {self.io_cpus}")

    @property
    def output_suffix(self) -> str:
        return f"_x{self.run.scale_out}" if self.suffix is None else self.suffix


@dataclasses.dataclass
class BatchReport:
    """What the job did: counts, throughput, and every failure with its reason."""

    done: int
    skipped: int
    failed: int
    seconds: float
    output_megapixels: float
    backend: str | None
    failures: list[dict[str, str]]
    inputs: list[str]
    output: str
    actors: int
    cluster: dict[str, Any]
    created: str
    command: str = ""

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def megapixels_per_second(self) -> float:
        return self.output_megapixels / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "images_per_second": round(self.images_per_second, 4),
                "output_megapixels_per_second": round(self.megapixels_per_second, 4)}

    def summary(self) -> str:
        return (f"{self.done} upscaled, {self.skipped} skipped (output exists), {self.failed} failed in "
                f"{self.seconds:.1f} s: {self.images_per_second:.2f} images/s, "
                f"{self.megapixels_per_second:.2f} output MP/s with {self.actors} actor(s)"
                + (f" on {self.backend}" if self.backend else ""))

    def save(self, path: str | Path) -> Path:
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return Path(path)


@contextlib.contextmanager
def _native_stderr_silenced(quiet: bool):
    """Without -v: Ray's C++ core writes its log lines straight to file descriptor 2; point that at /dev/null
    while Ray runs, and Python's sys.stderr (trtsr's own lines, tracebacks) at a copy of the real one."""
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    real = os.fdopen(saved, "w", buffering=1, closefd=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    previous = sys.stderr
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = real
    try:
        yield
    finally:
        real.flush()
        os.dup2(saved, 2)
        sys.stderr = previous
        real.close()


def _connect(ray, address: str | None, cpus: int | None, quiet: bool) -> bool:
    """Join the cluster at `address` ($RAY_ADDRESS when None), or one already joined, or start a local one.

    Returns whether this call started Ray (and so should stop it).
    """
    if ray.is_initialized():
        return False
    if quiet:
        # Ray's and Ray Data's own lines and Ray Data's progress (_native_stderr_silenced takes its C++ core's);
        # trtsr prints what the job did.
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise TrtsrError(f"cannot join the Ray cluster at {address} ({str(exc).splitlines()[0]})") from None
        return True
    ray.init(num_cpus=cpus, **quiet)
    return True


def upscale_dataset(
    inputs: list[str],
    output: str,
    settings: BatchSettings = BatchSettings(),
    *,
    address: str | None = None,
    cpus: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> BatchReport:
    """Upscale every image in `inputs` into `output` (a folder or URI) on a Ray cluster; return the report.

    Works inside a user's own Ray program (an initialised Ray is reused and left running) or
    starts a local cluster (`cpus` logical CPUs; default: this machine's cores plus one, so
    that as many single-thread actors as cores leave room for the read and write tasks).
    """
    say = progress or (lambda message: log.info(message))
    ray = _require_ray()
    if not inputs:
        raise TrtsrError("no inputs given")
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    todo, skipped, failures = plan_jobs(inputs, output, suffix=settings.output_suffix, fmt=settings.fmt,
                                        overwrite=settings.overwrite)
    say(f"{len(todo)} to upscale, {len(skipped)} with outputs already there, {len(failures)} refused")
    quiet = not logging.getLogger("trtsr").isEnabledFor(logging.INFO)  # -v makes trtsr log at INFO: Ray speaks too
    with _native_stderr_silenced(quiet):
        return _run_on_ray(ray, todo, skipped, failures, inputs, output, settings, address, cpus, say, created,
                           quiet)


def _run_on_ray(ray, todo, skipped, failures, inputs, output, settings, address, cpus, say, created,
                quiet) -> BatchReport:
    started_ray = _connect(ray, address, cpus if cpus is not None else (os.cpu_count() or 1) + 1, quiet)
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        given_engine = settings.run.source.kind is SourceKind.ENGINE
        on_cpu = settings.run.backend is RunBackend.ONNXRUNTIME or (gpus == 0 and not given_engine)
        if on_cpu and given_engine:
            raise TrtsrError("--engine needs GPU actors, and this cluster has no GPU")
        actors = settings.actors or (max(1, int(gpus / settings.gpus_per_actor)) if not on_cpu else 1)
        cluster = {"cpus": resources.get("CPU", 0), "gpus": gpus, "nodes": len(ray.nodes()),
                   "actors_on": "cpu" if on_cpu else "gpu"}
        rows, seconds = [], 0.0
        if todo:
            request = settings.run
            if on_cpu:
                from trtsr.pipeline.resolve import resolve_onnx

                # In the driver, before any work: a missing extra is one line here, and an on-demand export
                # happens once instead of once per actor; the actors open that graph.
                graph = resolve_onnx(request.source, guidance=request.w, progress=say)
                on_cpu_settings = dataclasses.replace(
                    request.settings, onnxruntime=OnnxRuntimeSettings(threads=settings.threads, cuda=False))
                request = dataclasses.replace(request.on_graph(graph), settings=on_cpu_settings)
            actor_resources = ({"num_cpus": settings.threads} if on_cpu
                               else {"num_gpus": settings.gpus_per_actor, "num_cpus": 1})
            started = time.perf_counter()
            dataset = (
                ray.data.from_items([dataclasses.asdict(job) for job in todo],
                                    override_num_blocks=min(len(todo), 1000))
                .map(_read_and_decode, num_cpus=settings.io_cpus)
                .map_batches(UpscaleActor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=actors),
                             fn_constructor_kwargs={"request": request}, **actor_resources)
                .map(_encode_and_write, num_cpus=settings.io_cpus)
            )
            try:
                rows = list(dataset.iter_rows())
            except Exception as exc:
                cause = getattr(exc, "cause", None)  # Ray wraps what an actor's constructor raised
                if isinstance(cause, TrtsrError):
                    raise TrtsrError(cause.reason, path=cause.path) from None
                raise
            seconds = time.perf_counter() - started
        done = [r for r in rows if not r["error"]]
        failures += [{"file": r["source"], "error": r["error"]} for r in rows if r["error"]]
        backends = sorted({r["backend"] for r in rows if r.get("backend")})
        return BatchReport(
            done=len(done), skipped=len(skipped), failed=len(failures), seconds=round(seconds, 3),
            output_megapixels=round(sum(r["pixels"] for r in done) / 1e6, 4),
            backend=", ".join(backends) or None, failures=failures, inputs=list(inputs), output=output,
            actors=actors, cluster=cluster, created=created,
        )
    finally:
        if started_ray:
            ray.shutdown()

