"""The graph that ships in the package is the default model, exported with today's exporter settings."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

from trtsr.files import sha256_of
from trtsr.models import PixelUpscaler, load_model
from trtsr.paths import shipped_onnx
from trtsr.spec import ExportSpec, spec_path_for


def test_shipped_spec_matches_the_file():
    path = shipped_onnx()
    spec = ExportSpec.load(spec_path_for(path))
    assert spec.onnx_sha256 == sha256_of(path)
    assert (spec.model, spec.scale, spec.precision, spec.guidance, spec.io) == ("default", 4, "fp32", 1.8, "float32")
    assert spec.opset == 23


def test_shipped_graph_computes_the_default_model(real_rgb):
    lr = np.ascontiguousarray(real_rgb[10:50, 20:70]).astype(np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    got = ort.InferenceSession(str(shipped_onnx()), options).run(None, {"lr": lr})[0]
    model = load_model("default").double()
    module = PixelUpscaler(model, 4, 1.8, dtype=torch.float64, io="float32")
    with torch.no_grad():
        expected = module(torch.from_numpy(lr.astype(np.float64))).numpy()
    # float32 rounding alone reaches about 1e-3 here; a different model differs by whole levels.
    assert np.abs(got - expected).max() < 5e-3, "re-run tools/ship_default_onnx.py after changing the default model"
