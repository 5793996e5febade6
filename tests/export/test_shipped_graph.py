"""The graph that ships in the package is the default model, exported with today's exporter settings."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from trtsr import defaults
from trtsr.files import sha256_of
from trtsr.models import PixelUpscaler, load_model
from trtsr.paths import shipped_graphs, shipped_onnx
from trtsr.spec import ExportSpec, spec_path_for


def test_shipped_specs_match_their_files():
    expected = []
    for scale in (4, 3, 2):
        # the w a plain `trtsr run` uses at that scale
        expected += [("default", scale, "fp32", defaults.DEFAULT_MODEL_GUIDANCE[scale], "guidance", "float32"),
                     ("default", scale, "fp32", None, None, "float32")]
    for path, want in zip(shipped_graphs(), expected, strict=True):
        spec = ExportSpec.load(spec_path_for(path))
        assert spec.onnx_data_file == "default.onnx.data"
        assert spec.onnx_sha256 == sha256_of(path, path.with_name(spec.onnx_data_file))
        assert (spec.model, spec.scale, spec.precision, spec.guidance, spec.guidance_input, spec.io) == want
        assert spec.opset == 23


@pytest.mark.parametrize(("graph", "scale", "w"), [(0, 4, 1.8), (0, 4, 3.0), (1, 4, None), (2, 3, 1.8), (3, 3, None),
                                                  (4, 2, 1.8), (5, 2, None)],
                         ids=["x4-padcfg-1.8", "x4-padcfg-3", "x4-nocfg", "x3-padcfg", "x3-nocfg", "x2-padcfg",
                              "x2-nocfg"])
def test_shipped_graphs_compute_the_default_model(real_rgb, graph, scale, w):
    lr = np.ascontiguousarray(real_rgb[10:50, 20:70]).astype(np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    feed = {"lr": lr} if w is None else {"lr": lr, "guidance": np.array([w], dtype=np.float32)}
    got = ort.InferenceSession(str(shipped_graphs()[graph]), options).run(None, feed)[0]
    model = load_model("default").double()
    module = PixelUpscaler(model, scale, w, dtype=torch.float64, io="float32")
    with torch.no_grad():
        expected = module(torch.from_numpy(lr.astype(np.float64))).numpy()
    # float32 rounding alone reaches about 1e-3 here; a different model differs by whole levels.
    assert np.abs(got - expected).max() < 5e-3, "re-run tools/ship_default_onnx.py after changing the default model"


def test_the_package_stays_small():
    """Six graphs of the 3.8 M-parameter default model share one copy of its fp32 weights (15 MB)."""
    data = shipped_onnx().with_name("default.onnx.data")
    graphs = sum(path.stat().st_size for path in shipped_graphs())
    assert data.stat().st_size < 16e6 and graphs < 6 * 2.5e6
    assert shipped_onnx() in shipped_graphs()


@pytest.mark.parametrize("graph", [0, 1, 2, 3, 4, 5], ids=["x4", "x4-nocfg", "x3", "x3-nocfg", "x2", "x2-nocfg"])
def test_a_flat_picture_stays_flat_up_to_the_borders(graph):
    # The first default model drew a dark or light fringe of up to 10 levels along the borders at its
    # default (PadCFG, w = 1.8); the no-PadCFG path had wrong corners until it took the positive branch's pad.
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(shipped_graphs()[graph]), options)
    for level in (40.0, 128.0, 215.0):
        feed = {"lr": np.full((48, 72, 3), level, dtype=np.float32)}
        if len(session.get_inputs()) == 2:
            feed["guidance"] = np.array([1.8], dtype=np.float32)
        out = session.run(None, feed)[0]
        assert np.abs(out - level).max() < 3.0, f"level {level}: {np.abs(out - level).max():.1f} off"
