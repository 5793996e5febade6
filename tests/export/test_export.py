"""ONNX export of the tiny model: parity with PyTorch on real images, precisions, graph fixes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from trtsr.export import ExportSpec
from trtsr.models import PixelUpscaler, build_preset

pytestmark = pytest.mark.slow  # engine builds, exports, Ray or training: the full tier only

# Three crops of a real photograph: two not aligned to 64 in any way, one whose
# output plus PadCFG's 8 pixels is exactly 128 (no alignment pad at all).
SIZES = [(37, 53), (30, 30), (21, 90)]


def _session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _feed(spec, lr: np.ndarray, w: float | None = None) -> dict:
    """The graph's inputs: the image, and w for PadCFG graphs that take it (default: the spec's)."""
    feed = {"lr": lr}
    if spec.guidance_input is not None:
        feed[spec.guidance_input] = np.array([spec.guidance if w is None else w], dtype=np.float32)
    return feed


def _reference(guidance, io, dtype, lr: np.ndarray) -> np.ndarray:
    model = build_preset("tiny").eval().to(dtype)
    module = PixelUpscaler(model, 4, guidance, dtype=dtype, io=io)
    with torch.no_grad():
        return module(torch.from_numpy(lr)).to(torch.float64 if dtype == torch.float64 else torch.float32).numpy()


@pytest.mark.parametrize("size", SIZES)
def test_fp32_graph_matches_pytorch_on_real_images(exports, real_rgb, size):
    result = exports.get(precision="fp32", io="float32")
    lr = np.ascontiguousarray(real_rgb[: size[0], 40 : 40 + size[1]]).astype(np.float32)
    got = _session(result.onnx_path).run(None, _feed(result.spec, lr))[0]
    # PyTorch in float64 is the exact computation; both float32 runs differ from it by rounding only, which grows
    # with the canvas the attention sums over (21 x 90: 1.1e-3 of 255 levels since the right reserve widened it).
    exact = _reference(1.8, "float32", torch.float64, lr.astype(np.float64))
    assert got.shape == (size[0] * 4, size[1] * 4, 3)
    assert np.abs(got - exact).max() < 2e-3
    torch32 = _reference(1.8, "float32", torch.float32, lr)
    assert np.abs(got - torch32).max() < 5e-3
    assert 20 < got.mean() < 235 and got.std() > 5, "output is blank"


def test_one_graph_serves_every_guidance(exports, real_rgb):
    """w is an input of PadCFG graphs: at 3.0 the graph computes what PyTorch computes with 3.0 built in."""
    result = exports.get(precision="fp32", io="float32")
    assert result.spec.guidance_input == "guidance" and result.spec.guidance == 1.8
    lr = np.ascontiguousarray(real_rgb[:30, 10:52]).astype(np.float32)
    session = _session(result.onnx_path)
    for w in (1.2, 3.0):
        got = session.run(None, _feed(result.spec, lr, w))[0]
        exact = _reference(w, "float32", torch.float64, lr.astype(np.float64))
        # float32 rounding of the two branches is amplified by w (y = neg + w (pos - neg))
        assert np.abs(got - exact).max() < 1e-3 * max(1.0, 2 * w - 1), w
    assert np.abs(session.run(None, _feed(result.spec, lr, 1.2))[0]
                  - session.run(None, _feed(result.spec, lr, 3.0))[0]).max() > 1.0  # w does change the output


def test_guidance_can_still_be_built_in(exports, real_rgb):
    result = exports.get(precision="fp32", io="float32", guidance_input=False)
    assert result.spec.guidance_input is None
    assert [i.name for i in _session(result.onnx_path).get_inputs()] == ["lr"]
    lr = np.ascontiguousarray(real_rgb[:20, :24]).astype(np.float32)
    got = _session(result.onnx_path).run(None, {"lr": lr})[0]
    assert np.abs(got - _reference(1.8, "float32", torch.float64, lr.astype(np.float64))).max() < 1e-3


def test_uint8_graph_rounds_like_pytorch(exports, real_rgb):
    result = exports.get(precision="fp32", io="uint8")
    lr = np.ascontiguousarray(real_rgb[:45, :61])
    got = _session(result.onnx_path).run(None, _feed(result.spec, lr))[0]
    expected = _reference(1.8, "uint8", torch.float32, lr)
    assert got.dtype == np.uint8 and got.shape == (180, 244, 3)
    # Rounding of values within float32 noise of .5 may flip by one level.
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_no_padcfg_graph(exports, real_rgb):
    result = exports.get(precision="fp32", io="float32", guidance=None)
    assert result.spec.guidance is None and result.spec.extra_pixels == 8  # the positive branch's pad
    lr = np.ascontiguousarray(real_rgb[:40, :33]).astype(np.float32)
    got = _session(result.onnx_path).run(None, _feed(result.spec, lr))[0]
    exact = _reference(None, "float32", torch.float64, lr.astype(np.float64))
    assert np.abs(got - exact).max() < 1e-3


def test_fp16_graph_runs_and_stays_finite(exports, real_rgb):
    result = exports.get(precision="fp16", io="float32")
    reference = exports.get(precision="fp32", io="float32")
    for size in [(15, 15), (37, 53), (160, 200)]:  # smallest accepted, unaligned, larger
        lr = np.ascontiguousarray(real_rgb[: size[0], : size[1]]).astype(np.float32)
        got = _session(result.onnx_path).run(None, _feed(result.spec, lr))[0]
        ref = _session(reference.onnx_path).run(None, _feed(reference.spec, lr))[0]
        assert np.isfinite(got).all()
        assert got.std() > 5, f"fp16 output is flat at {size}"
        assert np.abs(got - ref).mean() < 1.0, f"fp16 drifts from fp32 at {size}"


def test_bf16_graph_runs_with_resize_in_fp32(exports, real_rgb):
    from onnx.reference import ReferenceEvaluator

    result = exports.get(precision="bf16", io="float32")
    model = onnx.load(str(result.onnx_path))
    nodes = list(model.graph.node)
    by_output = {out: n for n in nodes for out in n.output}
    nearest = [n for n in nodes if n.op_type == "Resize"
               and any(a.name == "mode" and a.s == b"nearest" for a in n.attribute)]
    assert nearest
    for node in nearest:
        cast = by_output[node.input[0]]
        assert cast.op_type == "Cast" and cast.attribute[0].i == onnx.TensorProto.FLOAT
    # ONNX Runtime's CPU provider has no bf16 kernels; the ONNX reference evaluator runs it.
    lr = np.ascontiguousarray(real_rgb[:16, :20]).astype(np.float32)
    got = ReferenceEvaluator(model).run(None, _feed(result.spec, lr))[0]
    fp32 = exports.get(precision="fp32", io="float32")
    ref = _session(fp32.onnx_path).run(None, _feed(fp32.spec, lr))[0]
    assert np.isfinite(got).all() and got.shape == (64, 80, 3)
    # bfloat16 keeps 8 significant bits: levels drift by a few, the picture does not.
    assert np.abs(got - ref).mean() < 8.0
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.99


def test_upsampling_resizes_have_constant_scales(exports):
    model = onnx.load(str(exports.get(precision="fp16").onnx_path))
    constants = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    resizes = [n for n in model.graph.node if n.op_type == "Resize"]
    nearest = [n for n in resizes if any(a.name == "mode" and a.s == b"nearest" for a in n.attribute)]
    assert len(nearest) == 3  # one per up block with an upsampler
    for node in nearest:
        assert len(node.input) == 3 or node.input[3] == ""
        np.testing.assert_array_equal(constants[node.input[2]], [1, 1, 2, 2])


def test_graph_io_and_spec(exports):
    result = exports.get(precision="fp16")
    model = onnx.load(str(result.onnx_path), load_external_data=False)
    (inp, weight), (outp,) = model.graph.input, model.graph.output
    assert inp.name == "lr" and outp.name == "hr" and weight.name == "guidance"
    assert weight.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_value for d in weight.type.tensor_type.shape.dim] == [1]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["lr_height", "lr_width", 3]
    assert [d.dim_param or d.dim_value for d in outp.type.tensor_type.shape.dim] == ["hr_height", "hr_width", 3]
    spec = ExportSpec.load(result.spec_path)
    assert spec == result.spec
    assert spec.precision == "fp16" and spec.scale == 4 and spec.guidance == 1.8 and spec.alignment == 64
    from trtsr.files import sha256_of

    assert spec.onnx_sha256 == sha256_of(result.onnx_path)
    assert json.loads(result.spec_path.read_text())["onnx_file"] == result.onnx_path.name


def test_tensorrt_rtx_parses_the_graph(exports):
    trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is installed by the rtx extra")
    from trtsr.engines.backend import load_backend

    backend = load_backend("tensorrt-rtx")
    assert backend.module is trt
    network = backend.parse_onnx(exports.get(precision="fp16").onnx_path)
    assert network.num_inputs == 2 and network.num_outputs == 1  # lr and guidance; hr
