"""Where each input's output goes: one naming rule for `trtsr run` and the Ray batch job.

    photo.jpg -> photo_x4.jpg          (suffix _x<scale>, the input's format)
    scan.tif  -> scan_x4.png           (with --format png)

Output names are computed on POSIX-style relative names, so the same rule serves local
paths and object-store URIs. Two inputs whose outputs would be the same file (`a.jpg` and
`a.png` with --format png, or two folders that both hold `img.png` written into one
output folder) are never allowed to overwrite each other: both fail before any work.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable
from pathlib import PurePosixPath
from typing import TypeVar

# Formats trtsr writes, by the extensions users type.
WRITABLE = {"png": "png", "jpg": "jpg", "jpeg": "jpg", "webp": "webp", "tif": "tiff", "tiff": "tiff"}
FORMATS = ("png", "jpg", "webp", "tiff")

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
    `.jpeg`, in lower case) when trtsr writes that format, else png.
    """
    name = PurePosixPath(source_name)
    own = name.suffix.lower().lstrip(".")
    ext = fmt or (own if own in WRITABLE else "png")
    return f"{name.stem}{suffix}.{ext}"


def check_suffix(suffix: str | None) -> None:
    """A --suffix is part of a file name: no path separator, so an output never lands outside its folder."""
    import os

    from trtsr.errors import TrtsrError

    if suffix is None:
        return
    separators = {"/", "\\", os.sep, os.altsep} - {None}
    if any(sep in suffix for sep in separators) or "\0" in suffix:
        raise TrtsrError(f"--suffix {suffix!r} holds a path separator; it is added to file names, so it may not "
                         "name a folder (use -o for that)")


def find_collisions(pairs: Iterable[tuple[Source, Hashable]]) -> dict[Hashable, list[Source]]:
    """Targets that more than one source maps to, with those sources in input order."""
    by_target: dict[Hashable, list[Source]] = defaultdict(list)
    for source, target in pairs:
        by_target[target].append(source)
    return {target: sources for target, sources in by_target.items() if len(sources) > 1}
