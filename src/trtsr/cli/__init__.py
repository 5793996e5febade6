"""The `trtsr` command line: the app only wires commands; each lives in its own module."""

from __future__ import annotations

import re

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from trtsr._version import __version__
from trtsr.cli.batch_cmd import batch_command
from trtsr.cli.bench_cmd import bench_command
from trtsr.cli.build_cmd import build_command
from trtsr.cli.calibrate_cmd import calibrate_command
from trtsr.cli.evaluate_cmd import evaluate_command
from trtsr.cli.export_cmd import export_command
from trtsr.cli.info_cmd import info_command
from trtsr.cli.run_cmd import run_command
from trtsr.cli.train_cmd import finetune_command, train_command


def _untyped_flags(params: list) -> list:
    """On/off options show no type in help (typer would print `<bool>` beside each)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    def get_params(self, ctx):
        return _untyped_flags(super().get_params(ctx))

    def collect_usage_pieces(self, ctx) -> list[str]:
        """`trtsr run [OPTIONS] INPUT...`: a required argument in capitals, as usage lines write it (typer would
        write `{inputs}...`)."""
        return [re.sub(r"\{([^}]*)\}", lambda found: found.group(1).upper(), piece)
                for piece in super().collect_usage_pieces(ctx)]


class Group(TyperGroup):
    def get_params(self, ctx):
        return _untyped_flags(super().get_params(ctx))


app = typer.Typer(
    name="trtsr",
    cls=Group,
    help="GenDR-Pix one-step diffusion super-resolution: export to ONNX, build TensorRT engines, upscale images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("export", cls=Command)(export_command)
app.command("build", cls=Command)(build_command)
app.command("calibrate", cls=Command)(calibrate_command)
app.command("info", cls=Command)(info_command)
app.command("run", cls=Command)(run_command)
app.command("batch", cls=Command)(batch_command)
app.command("bench", cls=Command)(bench_command)
app.command("train", cls=Command)(train_command)
app.command("finetune", cls=Command)(finetune_command)
app.command("evaluate", cls=Command)(evaluate_command)


def _version(value: bool) -> None:
    if value:
        print(f"trtsr {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """GenDR-Pix one-step diffusion super-resolution on TensorRT."""


def run() -> None:
    """The console script: typer's own usage errors (a bad value, an unknown or missing option) end like every
    other user mistake, in one `error:` line and exit status 1, with the command's --help named."""
    import sys

    from trtsr.cli.common import console

    # typer raises click's UsageError (its own vendored click in typer >= 0.23): reached through a public subclass
    usage_error = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "UsageError")
    try:
        code = app(prog_name="trtsr", standalone_mode=False)
    except usage_error as exc:
        if not exc.format_message().strip():  # `trtsr` alone: the help was shown, as asked for
            sys.exit(0)
        command = exc.ctx.command_path if exc.ctx is not None else "trtsr"
        console.print(f"[red]error:[/red] {escape(exc.format_message())} (see {command} --help)")
        sys.exit(1)
    except typer.Abort:
        console.print("[red]interrupted[/red]")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
