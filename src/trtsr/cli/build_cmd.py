"""`trtsr build`: exported ONNX -> TensorRT / TensorRT-RTX engine (+ metadata JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trtsr.cli.common import out, status, user_errors
from trtsr.cli.options import OverwriteOption, VerboseOption
from trtsr.defaults import BuildBackend
from trtsr.files import check_outputs


def build_command(
    onnx: Annotated[Path, typer.Argument(help="Graph written by 'trtsr export' (its .json spec must sit beside it).")],
    profile: Annotated[
        list[str] | None,
        typer.Option(
            "--profile", "-P",
            help="Optimisation profile by OUTPUT size: 720p, 1080p, 1440p, 4k, 8k, WxH, or "
                 "MINWxMINH:OPTWxOPTH:MAXWxMAXH. Repeat for several profiles in one engine. "
                 "Default: 1080p, 4k and 8k.",
        ),
    ] = None,
    backend: Annotated[
        BuildBackend, typer.Option("--backend", "-b", help="auto: full TensorRT if installed, else TensorRT-RTX.")
    ] = BuildBackend.AUTO,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Engine file, ending in .engine. Default: "
                                                                        "the graph's name with .engine.")] = None,
    overwrite: OverwriteOption = False,
    optimization_level: Annotated[
        int | None, typer.Option("--opt-level", help="Builder optimisation level 0-5 (backend default 3).")
    ] = None,
    compute_capability: Annotated[
        list[str] | None,
        typer.Option("--compute-capability", "--cc",
                     help="TensorRT-RTX ahead-of-time target(s), e.g. sm89 or current; repeatable. "
                          "Default: the backend's own choice."),
    ] = None,
    workspace_gb: Annotated[
        float | None, typer.Option("--workspace-gb", help="Cap on the builder's workspace memory (GiB).")
    ] = None,
    strict_attention: Annotated[
        bool, typer.Option("--strict-attention",
                           help="Fail the build when an attention layer has no fused kernel, instead of "
                                "running it decomposed.")
    ] = False,
    verbose: VerboseOption = False,
) -> None:
    """Build a TensorRT engine from an exported graph.

    Precision comes from the graph (strongly typed): export fp16 or bf16 to get
    that engine, or quantise an fp32 graph with 'trtsr calibrate' for INT8/FP8
    (FP8 needs an sm89 or sm120 target: --cc). Profiles are named by output size; the input shapes follow from
    the graph's scale. Writes MODEL.engine and MODEL.engine.json (backend and
    version, precision, profiles, ONNX sha256, GPU, build time, engine sha256);
    existing ones are kept unless --overwrite.

    Examples:

      trtsr build model.onnx                          # 1080p, 4k and 8k profiles

      trtsr build model.onnx --profile 4k -o 4k.engine

      trtsr build model.onnx -P 1080p -P 2048x2048 --backend tensorrt-rtx
    """
    with user_errors(verbose):
        from trtsr.engines.builder import BuildSettings, build_engine

        settings = BuildSettings(
            profiles=tuple(profile) if profile else BuildSettings().profiles, backend=backend,
            optimization_level=optimization_level, compute_capabilities=tuple(compute_capability or ()),
            workspace_gb=workspace_gb, attention_fallback=not strict_attention,
        )
        from trtsr.engines.metadata import metadata_path_for
        from trtsr.errors import TrtsrError

        target = output or onnx.with_suffix(".engine")
        if target.suffix != ".engine":
            raise TrtsrError("an engine's file name ends in .engine", path=target)
        check_outputs([target, metadata_path_for(target)], "engine", overwrite=overwrite, sources=(onnx,))
        with status(f"building {target}") as say:
            result = build_engine(onnx, target, settings, progress=say)
        meta = result.metadata
        profiles = ", ".join(p.name for p in meta.profiles)
        kind = meta.precision if meta.quantization is None else f"{meta.quantization} ({meta.precision} elsewhere)"
        out.print(
            f"wrote {result.engine_path} ({meta.engine_bytes / 1e6:.1f} MB, {kind}, profiles {profiles}) "
            f"with {meta.backend} {meta.backend_version} in {meta.build_seconds:.1f} s",
            markup=False,
        )
