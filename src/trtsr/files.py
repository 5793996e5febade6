"""Files: atomic output, locks between processes, and content hashes.

A killed process or a failed step never leaves a half-written output behind:
either the old file (or none) is there, or the complete new one. Locks go
through `filelock`, which works on Linux, Windows and macOS alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | Path, *, suffix: str | None = None, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto `target` on success.

    On any exception the temporary file is removed and `target` is untouched. With `replace` False an existing
    `target` is kept even if it appeared a moment ago (another process): the final step is a hard link, which
    fails when the name exists (FileExistsError), where a rename would silently replace it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix if suffix is not None else ".tmp", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the result the permissions a plain open() would have.
        os.chmod(tmp, 0o666 & ~_UMASK)
        if replace:
            os.replace(tmp, target)
        else:
            _move_keeping(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _move_keeping(tmp: Path, target: Path) -> None:
    """`tmp` to `target` unless `target` exists, decided by the filesystem in one step (no check-then-rename)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:
        # No hard links here (some network and FAT filesystems): claim the name exclusively, then fill it.
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_UMASK))
        os.replace(tmp, target)
        return
    tmp.unlink()


def _read_umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# Read once at import: os.umask can only be read by setting it, which is not thread-safe.
_UMASK = _read_umask()


def nearest_existing(path: Path) -> Path:
    """`path` itself, or its nearest parent that exists: what decides whether `path` can be created."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def unwritable(target: str | Path, *, folder: bool = False) -> str | None:
    """Why nothing can be written at `target`, or None when it can: a file to write (its folder must take a new
    file) or, with `folder`, a folder to create or fill. Missing folders count by their nearest existing parent.
    `os.access` answers for root too where root cannot write: a read-only mount, an immutable folder."""
    path = Path(target)
    existing = nearest_existing(path if folder else path.parent)
    if not existing.is_dir():
        return f"cannot create a folder there ({existing} is a file)"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def check_writable(target: str | Path, what: str, *, folder: bool = False) -> None:
    """`unwritable` as a one-line TrtsrError naming `what` (checked before any slow work)."""
    from trtsr.errors import TrtsrError

    reason = unwritable(target, folder=folder)
    if reason is not None:
        raise TrtsrError(f"cannot write the {what}: {reason}", path=target)


def check_outputs(targets: list[str | Path], what: str, *, overwrite: bool, sources: tuple = ()) -> None:
    """Before any slow work: `what`'s files can be written, none of them is one of `sources` (the command's own
    inputs), and none exists unless `overwrite` (the same rule as `trtsr run`'s outputs). One line for the
    first problem."""
    from trtsr.errors import TrtsrError

    inputs = {Path(source).resolve() for source in sources}
    for target in map(Path, targets):
        if target.resolve() in inputs:
            raise TrtsrError(f"the {what} would replace its own input; name another output with -o", path=target)
        if target.is_dir():
            raise TrtsrError(f"a folder has this name; give the {what} a file name", path=target)
        if target.exists() and not overwrite:
            raise TrtsrError(f"exists; pass --overwrite to replace it, or name another {what} with -o", path=target)
        check_writable(target, what)


def size_text(size: int) -> str:
    """Bytes as people read them: '27 MB' below a gigabyte, '1.73 GB' from there."""
    return f"{size / 1e6:.0f} MB" if size < 1e9 else f"{size / 1e9:.2f} GB"


def write_bytes_atomic(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | Path, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def sha256_of(*paths: str | Path | None, chunk: int = 1 << 22) -> str:
    """sha256 over the files' bytes, one after another (None entries are skipped).

    A graph with external weights hashes as `sha256_of(graph, data_file)`.
    """
    digest = hashlib.sha256()
    for path in paths:
        if path is None:
            continue
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def file_lock(lock_path: str | Path, *, timeout: float = -1) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (created if needed) between processes.

    `timeout` < 0 waits as long as it takes; otherwise `filelock.Timeout` is raised.
    """
    import filelock

    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(lock_path), timeout=timeout):
        yield


def lock_is_held(lock_path: str | Path) -> bool:
    """Whether another process holds the lock now (a lock file alone means nothing)."""
    import filelock

    lock_path = Path(lock_path)
    if not lock_path.exists():
        return False
    lock = filelock.FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        return True
    lock.release()
    return False
