"""The full-size GenDR-Pix (867 M parameters) exports in fp16 with PadCFG and parses in TensorRT-RTX."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

FULL_PARAMETERS = 866_993_792  # SD2.1 UNet with 192-channel conv_in/conv_out


def test_full_size_fp16_export(full_export):
    spec = full_export.spec
    unet_params = spec.parameters - 2 * 77 * 1024  # minus the two prompt embeddings
    assert unet_params == FULL_PARAMETERS
    files = [full_export.onnx_path]
    if spec.onnx_data_file:
        files.append(full_export.onnx_path.with_name(spec.onnx_data_file))
    total = sum(f.stat().st_size for f in files)
    weights = spec.parameters * 2  # fp16
    assert weights <= total <= weights * 1.02, f"{total} bytes on disk for {weights} bytes of fp16 weights"


def test_full_size_graph_parses_in_tensorrt_rtx(full_export):
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is installed by the rtx extra")
    from trtsr.engines.backend import load_backend

    parsed = load_backend("tensorrt-rtx").parse_onnx(full_export.onnx_path)
    tensors = parsed.tensors()
    assert [t["name"] for t in tensors] == ["lr", "guidance", "hr"]  # PadCFG w is an input
    assert tensors[1]["dtype"] == "float" and tensors[1]["shape"] == [1]
    assert tensors[0]["dtype"] == "uint8" and tensors[0]["shape"] == [-1, -1, 3]
