"""Which inputs a run takes and where each one's output goes: one home for `trtsr run`, the Ray batch
job and the Python API.

Inputs are files, folders, globs, `@LIST` files (one input per line, `#` comments) and `-` (that
list on standard input); `plan_run` turns them and `-o` into (input, output) jobs for a local run,
with one line for every input that cannot be done. Output names follow one rule:

    photo.jpg -> photo_x4.jpg          (suffix _x<scale>, the input's format)
    scan.tif  -> scan_x4.png           (with --format png)

Output names are computed on POSIX-style relative names, so the same rule serves local
paths and object-store URIs. Two inputs whose outputs would be the same file (`a.jpg` and
`a.png` with --format png, or two folders that both hold `img.png` written into one
output folder) are never allowed to overwrite each other: both fail before any work.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import sys
from collections import defaultdict
from collections.abc import Hashable, Iterable
from pathlib import Path, PurePosixPath
from typing import TypeVar

from trtsr.defaults import IMAGE_SUFFIXES, OTHER_VIDEO_SUFFIXES, VIDEO_SUFFIXES, OutputFormat
from trtsr.files import nearest_existing

# Formats trtsr writes, by the extensions users type.
WRITABLE = {"png": "png", "jpg": "jpg", "jpeg": "jpg", "webp": "webp", "tif": "tiff", "tiff": "tiff"}
FORMATS = tuple(OutputFormat)

Source = TypeVar("Source")


def normalise_format(fmt: str | None) -> str | None:
    """'JPEG' -> 'jpg'; None stays None (keep the input's format); an unknown name raises ValueError."""
    if fmt is None:
        return None
    try:
        return WRITABLE[fmt.lower().lstrip(".")]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; use {', '.join(FORMATS)}") from None


def output_name(source_name: str, suffix: str, fmt: str | None) -> str:
    """The output file name for an input file name: stem + suffix + extension.

    The extension is `fmt`, else the input's own as the user spelled it (`.tif` stays `.tif`, `.jpeg` stays
    `.jpeg`, in lower case) when trtsr writes that format, else png. A video keeps its container (`fmt` is an
    image format).
    """
    name = PurePosixPath(source_name)
    own = name.suffix.lower().lstrip(".")
    if is_video(source_name):
        return f"{name.stem}{suffix}.{own}"
    ext = fmt or (own if own in WRITABLE else "png")
    return f"{name.stem}{suffix}.{ext}"


def is_video(name: str | Path) -> bool:
    """Whether `trtsr run` takes this file as a video (by its extension)."""
    return PurePosixPath(str(name)).suffix.lower() in VIDEO_SUFFIXES


def check_suffix(suffix: str | None) -> None:
    """A --suffix is part of a file name: no path separator, so an output never lands outside its folder."""
    from trtsr.errors import TrtsrError

    if suffix is None:
        return
    separators = {"/", "\\", os.sep, os.altsep} - {None}
    if any(sep in suffix for sep in separators) or "\0" in suffix:
        raise TrtsrError(f"--suffix {suffix!r} holds a path separator; it is added to file names, so it may not "
                         "name a folder (use -o for that)")


def check_naming(fmt: str | None, suffix: str | None) -> str | None:
    """`--format` and `--suffix` checked (one line for a bad one); the format normalised ('JPEG' -> 'jpg')."""
    from trtsr.errors import TrtsrError

    check_suffix(suffix)
    try:
        return normalise_format(fmt)
    except ValueError as exc:
        raise TrtsrError(f"--format: {exc}") from None


def find_collisions(pairs: Iterable[tuple[Source, Hashable]]) -> dict[Hashable, list[Source]]:
    """Targets that more than one source maps to, with those sources in input order."""
    by_target: dict[Hashable, list[Source]] = defaultdict(list)
    for source, target in pairs:
        by_target[target].append(source)
    return {target: sources for target, sources in by_target.items() if len(sources) > 1}


def collision_problems(collisions: dict[Hashable, list[Source]]) -> list[tuple[Source, str]]:
    """(source, why) for every source whose output another source shares (`find_collisions`)."""
    problems = []
    for target, sources in collisions.items():
        for source in sources:
            others = ", ".join(str(o) for o in sources if o != source)
            problems.append((source, f"its output {target} would also be written from {others}; upscale them "
                                     "separately or rename one"))
    return problems


def read_list(item: str, stdin=None) -> tuple[list[str], str | None]:
    """The inputs an `@LIST` file (or `-`: standard input) names, one per line (`#` starts a comment), or one
    line saying why there are none."""
    source = "standard input" if item == "-" else item[1:]
    try:
        text = (stdin or sys.stdin).read() if item == "-" else Path(item[1:]).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return [], f"{source}: cannot read the list ({getattr(exc, 'strerror', None) or exc})"
    listed = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not listed:
        return [], f"{source}: the list names no inputs (it is empty or holds only comments)"
    return listed, None


def collect_inputs(items: list[str], *, recursive: bool = False, stdin=None
                   ) -> tuple[list[Path], list[str], dict[Path, Path], set[Path]]:
    """Inputs -> image paths in order without repeats, one-line problems, for images found below a folder
    their sub-folder (which an output folder mirrors), and the files that were named as files (not found in a
    folder or by a glob).

    An item is a file, a folder (its images; with `recursive`, every image below it), a glob, `@LIST`
    (a text file with one input per line; `#` starts a comment) or `-` (the same list on standard input).
    """
    files: list[Path] = []
    problems: list[str] = []
    subdirs: dict[Path, Path] = {}
    named: set[Path] = set()
    for item in items:
        if item == "-" or item.startswith("@"):
            listed, trouble = read_list(item, stdin)
            if trouble:
                problems.append(trouble)
                continue
            found, trouble, below, by_name = collect_inputs(listed, recursive=recursive)
            files += found
            problems += trouble
            subdirs.update(below)
            named |= by_name
            continue
        path = Path(item)
        if path.is_dir():
            pattern = path.rglob("*") if recursive else path.iterdir()
            found = sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
                           and not p.name.startswith("."))
            if not found:
                where = "below it" if recursive else "in it (-r also looks in sub-folders)"
                problems.append(f"{path}: no images or videos {where} "
                                f"({', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))})")
            files.extend(found)
            subdirs.update({p: p.parent.relative_to(path) for p in found})
        elif path.exists() or not glob.has_magic(item):
            files.append(path)  # a missing file is reported by the reader, with the rest going on
            named.add(path)
        else:
            matched = sorted(Path(p) for p in glob.glob(item, recursive=recursive) if Path(p).is_file())
            if not matched:
                problems.append(f"{item}: no file matches")
            files.extend(matched)
    unique = list(dict.fromkeys(files))
    return unique, problems, subdirs, named


def own_outputs(sources: list[PurePosixPath], named: list[bool], out_dir: PurePosixPath | None,
                input_dirs: set[PurePosixPath], suffix: str) -> list[bool]:
    """Which inputs a run leaves out as this tool's own outputs, so a second run never upscales the first one's
    results. Paths are absolute (local paths resolved, or the paths inside a URI's filesystem). A file named as a
    file is always taken; one found in a folder or by a glob is left out when it lies below the output folder
    `out_dir` (unless that folder is itself one of the `input_dirs`: then its files are sources), or when it is
    named as the output of another input in the same folder: that input's stem plus `suffix`, or plus _x and a
    scale, with any extension."""
    from trtsr.defaults import SCALES

    stems: dict[PurePosixPath, set[str]] = defaultdict(set)
    for source in sources:
        stems[source.parent].add(source.stem)
    endings = {suffix, *(f"_x{scale}" for scale in SCALES)} - {""}
    left_out = []
    for source, by_name in zip(sources, named, strict=True):
        below = out_dir is not None and out_dir not in input_dirs and out_dir in source.parents
        beside = any(source.stem.endswith(end) and source.stem[:-len(end)] in stems[source.parent]
                     for end in endings)
        left_out.append(not by_name and (below or beside))
    return left_out


def own_outputs_line(count: int) -> str:
    """The one line a run prints for the inputs `own_outputs` left out."""
    return (f"left out {count} file(s) this tool wrote (in the output folder, or named as another input's "
            "output); name a file directly to upscale it anyway")


def output_target(text: str | None, inputs: int) -> tuple[Path | None, bool]:
    """(path, is_file) for the -o value.

    A trailing slash or an existing folder is a folder; a name ending in an extension trtsr writes
    (.png, .jpg, .jpeg, .webp, .tif, .tiff; for a video .mp4, .mkv, .mov, .webm) is a file, for one input
    only; a name ending in another image extension (.bmp, .gif) or video container (.avi, .flv, ...) is an error;
    anything else (`out`, `g1.0`, `z.v2`) is a folder.
    """
    from trtsr.errors import TrtsrError
    if text is None:
        return None, False
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        return path, False
    ext = path.suffix.lower()
    if ext.lstrip(".") in WRITABLE or ext in VIDEO_SUFFIXES:
        if inputs > 1:
            raise TrtsrError(f"with {inputs} inputs, --output must be a folder, not a {ext} file name "
                             "(end it with / to name a folder)", path=text)
        return path, True
    if ext in IMAGE_SUFFIXES:
        raise TrtsrError(f"trtsr writes png, jpg, webp or tiff, not {ext}; name the output .png (or end it with / "
                         "for a folder)", path=text)
    if ext in OTHER_VIDEO_SUFFIXES:
        raise TrtsrError(f"trtsr writes videos as .mp4, .mkv, .mov or .webm, not {ext}; name the output .mp4 (or end "
                         "it with / for a folder)", path=text)
    return path, False


def output_path(source: Path, output: Path | None, is_file: bool, suffix: str, fmt: str | None,
                subdir: Path | None = None) -> Path:
    if output is not None and is_file:
        return output
    folder = source.parent if output is None else output / (subdir or Path())
    return folder / output_name(source.name, suffix, fmt)


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
    problems = [f"{src}: {why}" for src, why in collision_problems(collisions)]
    clashing = {src for sources in collisions.values() for src in sources}
    return [(src, dst) for src, dst in jobs if src not in clashing], problems



@dataclasses.dataclass
class RunPlan:
    """A local run's jobs, (input, output) in order, and one line for each input or item refused."""

    jobs: list[tuple[Path, Path]]
    problems: list[str]  # one line each, to print
    refused: int  # inputs (and items that matched none) that will not be upscaled
    total: int  # inputs found, and items that matched none
    notes: list[str] = dataclasses.field(default_factory=list)  # lines to print that are no failure


def plan_run(items: list[str], output: str | None, *, suffix: str, fmt: str | None, recursive: bool = False,
             stdin=None) -> RunPlan:
    """The jobs for `items` (files, folders, globs, @LIST, -) and `-o` (`output_target`'s rules): inputs that
    share an output and output folders that cannot be written are refused, each in one line, before any
    work. A `TrtsrError` for an `-o` that no input can use."""
    from trtsr.errors import TrtsrError

    fmt = check_naming(fmt, None)
    files, problems, subdirs, named = collect_inputs(items, recursive=recursive, stdin=stdin)
    left_out: list[bool] = []
    if files:
        out_path, out_is_file = output_target(output, 1)  # its folder, if any; the count is checked below
        out_dir = None if out_path is None or out_is_file else absolute_posix(out_path)
        input_dirs = {absolute_posix(item) for item in items if Path(item).is_dir()}
        left_out = own_outputs([absolute_posix(f) for f in files], [f in named for f in files], out_dir,
                               input_dirs, suffix)
        files = [f for f, dropped in zip(files, left_out, strict=True) if not dropped]
    notes = [own_outputs_line(sum(left_out))] if any(left_out) else []
    total = len(files) + len(problems)
    if not files:
        return RunPlan([], problems, len(problems), total, notes)
    out_path, out_is_file = output_target(output, len(files))
    if out_is_file and is_video(files[0]) != is_video(out_path):
        kind = "a video" if is_video(files[0]) else "an image"
        raise TrtsrError(f"-o names a {out_path.suffix} file for {kind} ({files[0]}); name it "
                         f"{'.mp4, .mkv, .mov or .webm' if is_video(files[0]) else '.png, .jpg, .webp or .tif'}",
                         path=out_path)
    if out_is_file and fmt is not None and not is_video(out_path) and normalise_format(out_path.suffix) != fmt:
        raise TrtsrError(f"-o names a {out_path.suffix} file but --format is {fmt}; give one of them", path=out_path)
    jobs, clashes = refuse_collisions([
        (src, output_path(src, out_path, out_is_file, suffix, fmt, subdirs.get(src))) for src in files])
    problems += clashes
    refused = len(problems)
    blocked = unwritable_folders([dst for _, dst in jobs])
    for folder, problem in blocked.items():  # those inputs fail; the others go on
        stopped = sum(dst.parent == folder for _, dst in jobs)
        problems.append(f"{problem} ({stopped} input(s) not upscaled)")
        refused += stopped
    return RunPlan([(src, dst) for src, dst in jobs if dst.parent not in blocked], problems, refused, total, notes)


def absolute_posix(path: str | Path) -> PurePosixPath:
    """A local path as `own_outputs` compares it: absolute, links resolved, POSIX form."""
    return PurePosixPath(Path(path).expanduser().resolve().as_posix())
