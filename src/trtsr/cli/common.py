"""What every command shares: printing, progress and turning user errors into one line."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

import typer
from rich.console import Console
from rich.markup import escape

from trtsr.errors import TrtsrError

# soft_wrap: long paths and messages stay on one line in logs instead of wrapping at 80 columns.
console = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def require_extra(what: str, extra: str, *modules: str) -> None:
    """Import `modules`, or fail with the one-line MissingDependencyError naming `extra` and the missing module."""
    import importlib
    import importlib.util

    from trtsr.errors import MissingDependencyError

    if "diffusers" in modules and importlib.util.find_spec("torch") is not None:
        from trtsr.models.torchvision_guard import guard

        guard()  # before diffusers, which imports torchvision whenever it is installed
    try:
        for name in modules:
            importlib.import_module(name)
    except ImportError as exc:
        raise MissingDependencyError(f"{what} ({exc.name} is missing)", extra) from None


class _LevelPrefix(logging.Formatter):
    """Library warnings read as `warning: ...` on the command line, like the CLI's own; info stays plain."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return f"warning: {message}" if record.levelno == logging.WARNING else message


@contextlib.contextmanager
def user_errors(verbose: bool = False) -> Iterator[None]:
    """Print a TrtsrError as one line and exit 1; let real bugs keep their traceback."""
    handler = logging.StreamHandler()
    handler.setFormatter(_LevelPrefix())
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    try:
        yield
    except TrtsrError as exc:
        if verbose:
            console.print_exception()
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]")
        raise typer.Exit(130) from None


@contextlib.contextmanager
def status(first: str) -> Iterator[Callable[[str], None]]:
    """A spinner with a changing message on a terminal; plain lines otherwise (logs, CI)."""
    if console.is_terminal:
        with console.status(first) as spinner:
            yield lambda message: spinner.update(escape(message))
    else:
        console.print(escape(first))
        yield lambda message: console.print(escape(message))

