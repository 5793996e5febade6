"""`trtsr info`: what an engine (or an exported graph) is, and whether it runs here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from trtsr.cli.common import out, user_errors
from trtsr.cli.options import VerboseOption


def _size(shape: list[int]) -> str:
    return f"{shape[1]}x{shape[0]}"


def info_command(
    path: Annotated[Path, typer.Argument(help="An engine (MODEL.engine) or an exported graph (MODEL.onnx).")],
    verbose: VerboseOption = False,
) -> None:
    """Describe an engine or an exported graph: what it computes, and whether an engine runs here.

    For an engine: its metadata, I/O tensors, profiles and whether it is valid on
    this machine (and, where it loads, each profile's activation memory). For an
    .onnx graph: its export spec (model, scale, precision, PadCFG, quantisation).

    Examples:

      trtsr info gendr-pix-x4-fp16-padcfg.engine   # what it is, and whether it runs here

      trtsr info model-int8.onnx                    # the export spec, and how it was quantised
    """
    with user_errors(verbose):
        from trtsr.errors import TrtsrError

        if not path.is_file():
            raise TrtsrError("file not found", path=path)
        if path.suffix == ".onnx":
            _onnx_info(path)
            return
        from trtsr.engines.metadata import metadata_path_for

        if not metadata_path_for(path).is_file():
            raise TrtsrError(f"not an engine with its metadata ({metadata_path_for(path).name} is missing) nor an "
                             "exported .onnx graph; trtsr info describes what trtsr build and trtsr export write",
                             path=path)
        from trtsr.engines.check import check_engine

        report = check_engine(path)
        meta = report.metadata
        pad = "no PadCFG" if meta.guidance is None else f"PadCFG w={meta.guidance:g}"
        out.print(f"[bold]{escape(str(path))}[/bold]")
        kind = meta.precision if meta.quantization is None else f"{meta.quantization} ({meta.precision} elsewhere)"
        arch = meta.spec.architecture or "GenDR-Pix"
        out.print(f"  model      {meta.model} ({arch}): x{meta.scale}, {kind}, {pad}, {meta.io} I/O", markup=False)
        out.print(f"  built by   {meta.backend} {meta.backend_version} (trtsr {meta.trtsr_version}) "
                  f"in {meta.build_seconds:.1f} s on {meta.created}")
        gpu = meta.gpu
        built_on = f"{gpu['name']} (sm {gpu['compute_capability']})" if gpu else "no GPU (ahead of time)"
        out.print(f"  built on   {built_on}")
        out.print(f"  size       {meta.engine_bytes / 1e6:.1f} MB, sha256 {meta.engine_sha256[:16]}")
        out.print(f"  from       {meta.onnx_file} (sha256 {meta.onnx_sha256[:16]})")
        out.print(f"  builder    {_builder_line(meta.builder)}", markup=False)
        for tensor in meta.tensors:
            shape = "x".join("?" if d < 0 else str(d) for d in tensor["shape"])
            out.print(f"  {tensor['mode']:<10} {tensor['name']}: {tensor['dtype']} [{shape}] "
                      f"({_tensor_role(tensor['name'], meta)})")
        activation = report.activation_bytes
        for index, prof in enumerate(meta.profiles):
            memory = f", activation memory {activation[index] / 2**20:.0f} MiB" if activation else ""
            out.print(
                f"  profile {index}  {prof.name}: output {_size(prof.output_min)} to {_size(prof.output_max)}, "
                f"tuned for {_size(prof.output_opt)} (input {_size(prof.input_min)} to {_size(prof.input_max)})"
                f"{memory}"
            )
        if not activation:
            out.print("  activation memory per profile: known only where the engine loads (a GPU its backend "
                      "runs on)")
        colour = "green" if report.runnable else "yellow"
        out.print(f"  here       [{colour}]{escape(report.verdict)}[/{colour}]")


def _onnx_info(path: Path) -> None:
    from trtsr.spec import ExportSpec

    spec = ExportSpec.for_graph(path)
    pad = "no PadCFG" if spec.guidance is None else f"PadCFG w={spec.guidance:g}"
    out.print(f"[bold]{escape(str(path))}[/bold]")
    arch = "GenDR-Pix" if spec.architecture is None else spec.architecture
    out.print(f"  model      {spec.model} ({arch}): x{spec.scale}, {spec.precision}, {pad}, {spec.io} I/O, "
              f"{spec.parameters / 1e6:.1f} M parameters", markup=False)
    out.print(f"  tensors    {spec.input_name} (h x w x 3) -> {spec.output_name} ({spec.scale}h x {spec.scale}w x 3); "
              f"inputs from {spec.min_input_size} pixels a side")
    out.print(f"  exported   by trtsr {spec.trtsr_version} with torch {spec.torch_version}, opset {spec.opset}")
    quant = spec.quantization
    if quant is not None:
        counted = _count_quantized(path, spec)
        out.print(f"  quantised  {quant.get('precision')} by {quant.get('quantizer')} ({quant.get('method')}, "
                  f"{quant.get('samples')} samples, seed {quant.get('seed')}); unquantised layers {spec.precision}",
                  markup=False)
        total = quant.get("compute_layers")
        kept = f", {total - quant['quantized_layers']} kept in float" if "quantized_layers" in quant else ""
        out.print(f"  layers     {counted} of {total} conv/linear layers quantised{kept}; the recipe keeps "
                  f"{len(quant.get('excluded', {}))} nodes in float (conv/linear and fused attention)", markup=False)
        out.print(f"  from       {quant.get('source_onnx')} (sha256 {str(quant.get('source_sha256'))[:16]})",
                  markup=False)


def _builder_line(builder: dict) -> str:
    """The engine's build settings as a reader would say them (the metadata keeps them as a dict)."""
    names = {"optimization_level": "optimisation level", "compute_capabilities": "compute capabilities",
             "workspace_gb": "workspace (GiB)", "attention_layers": "attention layers",
             "attention_fallback": "decomposed attention allowed"}
    parts = []
    for key, value in builder.items():
        shown = ("yes" if value else "no") if isinstance(value, bool) else "backend default" if value is None \
            else ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        parts.append(f"{names.get(key, key.replace('_', ' '))} {shown}")
    return "; ".join(parts)


def _tensor_role(name: str, meta) -> str:
    if name == meta.guidance_input:
        return "the PadCFG guidance w, one value"
    if name == meta.output_name:
        return f"{meta.scale}h x {meta.scale}w x 3"
    return "height x width x 3"


def _count_quantized(path: Path, spec) -> str:
    """Quantised layers counted in the graph itself (onnx installed), else as the spec recorded them."""
    try:
        import onnx
    except ImportError:
        return f"{spec.quantization.get('quantized_layers')} (as recorded; install onnx to count)"
    from trtsr.calibration.graph import quantized_layers

    counts = quantized_layers(onnx.load(str(path), load_external_data=False))
    return str(counts["quantized"])
