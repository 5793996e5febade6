"""Re-export the graphs that ship in the package for the `default` model.

Run after the default weights change:  python tools/ship_default_onnx.py
Both are fp32 with float32 I/O at x4 (the scale the default model is trained for): ONNX
Runtime on a CPU runs them without torch, and 16-bit images keep their depth through them.

    default-x4.onnx        PadCFG, w as an input (spec default 1.8): every guidance but 1.0
    default-x4-nocfg.onnx  no PadCFG (guidance 1.0 / --no-padcfg), half the compute
"""

from pathlib import Path

from trtsr import defaults
from trtsr.export.onnx_export import ExportSettings, export_onnx

ASSETS = Path(__file__).resolve().parents[1] / "src" / "trtsr" / "assets"
GRAPHS = {
    "default-x4.onnx": ExportSettings(scale=4, precision="fp32", guidance=defaults.GUIDANCE, io="float32"),
    "default-x4-nocfg.onnx": ExportSettings(scale=4, precision="fp32", guidance=None, io="float32"),
}

if __name__ == "__main__":
    for name, settings in GRAPHS.items():
        result = export_onnx("default", ASSETS / name, settings, progress=print)
        print(f"wrote {result.onnx_path} ({result.onnx_path.stat().st_size / 1e6:.1f} MB) and {result.spec_path}")
