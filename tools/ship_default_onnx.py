"""Re-export the graph that ships in the package for the `default` model.

Run after the default weights change:  python tools/ship_default_onnx.py
The graph is fp32 with float32 I/O (x4, PadCFG 1.8): ONNX Runtime on a CPU runs
it without torch, and 16-bit images keep their depth through it.
"""

from pathlib import Path

from trtsr.export.onnx_export import ExportSettings, export_onnx

TARGET = Path(__file__).resolve().parents[1] / "src" / "trtsr" / "assets" / "default-x4.onnx"

if __name__ == "__main__":
    result = export_onnx("default", TARGET, ExportSettings(scale=4, precision="fp32", guidance=1.8, io="float32"),
                         progress=print)
    print(f"wrote {result.onnx_path} ({result.onnx_path.stat().st_size / 1e6:.1f} MB) and {result.spec_path}")
