"""Re-export the graphs that ship in the package for the `default` model.

Run after the default weights change:  python tools/ship_default_onnx.py
With --cost-only it writes only the probed cost (`trtsr.cost`) into the shipped specs, leaving the graphs.
One graph per scale the default model is trained for (x2, x3, x4), with and without PadCFG,
all fp32 with float32 I/O: ONNX Runtime on a CPU runs them without torch, and 16-bit images
keep their depth through them.

    default-x{s}.onnx        PadCFG, w as an input (spec default: run's w, 1.4 / 1.8 / 2.2): every guidance but 1.0
    default-x{s}-nocfg.onnx  no PadCFG (guidance 1.0 / --no-padcfg), half the compute
    default.onnx.data        the weights, once, shared by the six graphs (trtsr.export.shared_data)
"""

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

from trtsr import defaults
from trtsr.export.onnx_export import ExportSettings, export_onnx
from trtsr.export.shared_data import share_external_data
from trtsr.files import sha256_of
from trtsr.source import resolve_source
from trtsr.spec import ExportSpec, spec_path_for

ASSETS = Path(__file__).resolve().parents[1] / "src" / "trtsr" / "assets"
DATA_NAME = "default.onnx.data"
SCALES = (2, 3, 4)
GRAPHS = {}
for _scale in SCALES:
    # the spec's default w is the one `trtsr run` uses at that scale
    GRAPHS[f"default-x{_scale}.onnx"] = ExportSettings(scale=_scale, precision="fp32",
                                                      guidance=defaults.DEFAULT_MODEL_GUIDANCE[_scale], io="float32")
    GRAPHS[f"default-x{_scale}-nocfg.onnx"] = ExportSettings(scale=_scale, precision="fp32", guidance=None,
                                                            io="float32")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix=".ship.", dir=ASSETS.parent))
    try:
        for name, settings in GRAPHS.items():
            export_onnx(resolve_source("default"), work / name, settings, progress=print)
        graphs = [work / name for name in GRAPHS]
        shared = share_external_data(graphs, DATA_NAME)
        print(f"shared weights: {shared['tensors']} tensors, {shared['bytes'] / 1e6:.1f} MB, "
              f"{shared['references']} references")
        data = work / DATA_NAME
        for graph in graphs:
            spec_path = spec_path_for(graph)
            spec = dataclasses.replace(ExportSpec.load(spec_path), onnx_data_file=DATA_NAME,
                                       onnx_sha256=sha256_of(graph, data))
            spec.save(spec_path)
        for old in ASSETS.glob("default*"):
            old.unlink()
        for path in sorted(work.iterdir()):
            os.replace(path, ASSETS / path.name)
        total = sum(p.stat().st_size for p in ASSETS.glob("default*"))
        print(f"wrote {len(graphs)} graphs to {ASSETS}: {total / 1e6:.1f} MB with their weights and specs")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_costs() -> None:
    """Probe the default model as each shipped graph runs it and record the cost in that graph's spec."""
    from trtsr.cost_probe import probe_cost
    from trtsr.export.onnx_export import _module_for

    for name, settings in GRAPHS.items():
        module = _module_for(resolve_source("default"), settings).module.eval()
        cost = probe_cost(module, io=settings.io, guidance=settings.guidance if settings.guidance_input else None)
        spec_path = spec_path_for(ASSETS / name)
        dataclasses.replace(ExportSpec.load(spec_path), cost=cost.to_dict()).save(spec_path)
        print(f"{name}: {cost}")


if __name__ == "__main__":
    import sys

    write_costs() if sys.argv[1:] == ["--cost-only"] else main()
