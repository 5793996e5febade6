"""User-facing errors.

Every mistake a user can make (a missing file, a bad option, an engine built for
another GPU) raises a `TrtsrError` whose message is one line that names the
thing and says how to fix it. The CLI prints that line and exits with status 1;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class TrtsrError(Exception):
    """A problem the user can fix; the message is shown as-is on one line."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        one_line = " ".join(str(message).split())
        self.reason = one_line  # the message without the path
        super().__init__(f"{self.path}: {one_line}" if self.path is not None else one_line)


class MissingDependencyError(TrtsrError):
    """An optional extra is not installed; the message names the pip command."""

    def __init__(self, what: str, extra: str, *, package: str | None = None) -> None:
        hint = f"pip install 'trtsr[{extra}]'" if package is None else f"pip install {package}"
        super().__init__(f"{what} needs the '{extra}' extra, which is not installed: run {hint}")


class OutOfMemory(TrtsrError):
    """The device (or host, for ONNX Runtime) ran out of memory for this input size; a smaller tile may fit."""


class TooLarge(TrtsrError):
    """The input is larger than any profile of the engine; tiling is needed."""
