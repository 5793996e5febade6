"""PyTorch -> ONNX export of GenDR-Pix (needs the `export` extra), and the spec it writes."""

from trtsr.spec import ExportSpec, spec_path_for

__all__ = ["ExportResult", "ExportSettings", "ExportSpec", "export_onnx", "spec_path_for"]


def __getattr__(name: str):
    # The exporter pulls in torch; load it only when asked for, so specs stay importable without it.
    if name in ("ExportResult", "ExportSettings", "export_onnx"):
        from trtsr.export import onnx_export

        return getattr(onnx_export, name)
    raise AttributeError(name)
