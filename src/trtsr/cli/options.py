"""Option types shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ModelOption = Annotated[
    str,
    typer.Option(
        "--model", "-m",
        help="Model: 'default' (shipped), 'tiny' or 'gendr-pix' (seeded random weights), "
             "a trtsr .safetensors checkpoint, or a diffusers UNet folder.",
    ),
]
ScaleOption = Annotated[int, typer.Option("--scale", "-s", help="Upscaling factor: 1, 2, 3, 4 or 8.")]
GuidanceOption = Annotated[
    float,
    typer.Option("--guidance", "-g", help="PadCFG guidance w (paper Eq. 7); the paper uses 1.8; 1.0 means no "
                                          "PadCFG (the batch-1 graph)."),
]
NoPadcfgOption = Annotated[
    bool,
    typer.Option("--no-padcfg", help="Export the batch-1 graph without PadCFG (half the compute)."),
]
OutputFile = Annotated[Path | None, typer.Option("--output", "-o", help="Output file.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and library logs.")]
