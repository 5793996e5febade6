"""The graph that ships in the package is the default model, exported with today's exporter settings."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from trtsr.files import sha256_of
from trtsr.models import PixelUpscaler, load_model
from trtsr.paths import shipped_graphs, shipped_onnx
from trtsr.spec import ExportSpec, spec_path_for


def test_shipped_specs_match_their_files():
    expected = [("default", 4, "fp32", 1.8, "guidance", "float32"), ("default", 4, "fp32", None, None, "float32")]
    for path, want in zip(shipped_graphs(), expected, strict=True):
        spec = ExportSpec.load(spec_path_for(path))
        assert spec.onnx_sha256 == sha256_of(path)
        assert (spec.model, spec.scale, spec.precision, spec.guidance, spec.guidance_input, spec.io) == want
        assert spec.opset == 23


@pytest.mark.parametrize(("graph", "w"), [(0, 1.8), (0, 3.0), (1, None)], ids=["padcfg-1.8", "padcfg-3", "nocfg"])
def test_shipped_graphs_compute_the_default_model(real_rgb, graph, w):
    lr = np.ascontiguousarray(real_rgb[10:50, 20:70]).astype(np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    feed = {"lr": lr} if w is None else {"lr": lr, "guidance": np.array([w], dtype=np.float32)}
    got = ort.InferenceSession(str(shipped_graphs()[graph]), options).run(None, feed)[0]
    model = load_model("default").double()
    module = PixelUpscaler(model, 4, w, dtype=torch.float64, io="float32")
    with torch.no_grad():
        expected = module(torch.from_numpy(lr.astype(np.float64))).numpy()
    # float32 rounding alone reaches about 1e-3 here; a different model differs by whole levels.
    assert np.abs(got - expected).max() < 5e-3, "re-run tools/ship_default_onnx.py after changing the default model"


def test_the_package_stays_small():
    """Two fp32 x4 graphs of the 3.8 M-parameter default model: about 17 MB each."""
    total = sum(path.stat().st_size for path in shipped_graphs())
    assert total < 40e6 and shipped_onnx() in shipped_graphs()
