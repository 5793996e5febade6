"""The parts of calibration that need no quantiser: the recipe table, the GroupNorm rewrite, the crop plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ASSETS = Path(__file__).resolve().parents[2] / "src" / "trtsr" / "assets"
DATA = Path(__file__).parents[1] / "data"


@pytest.mark.parametrize(("path", "op", "kept"), [
    ("model.unet.conv_in", "Conv", "conv_in"),
    ("model.unet.conv_out", "Conv", "conv_out"),
    ("model.unet.time_embedding.linear_2", "Gemm", "time embedding"),
    ("model.unet.down_blocks.1.resnets.0.time_emb_proj", "Gemm", "time embedding projection"),
    ("model.unet.down_blocks.1.resnets.0.conv_shortcut", "Conv", "shortcut"),
    ("model.unet.up_blocks.2.attentions.0.proj_out", "MatMul", "attention proj_out"),
    ("model.unet.mid_block.attentions.0.transformer_blocks.0.attn1", "Attention", "fused attention"),
    ("", "Resize", "pixel-space wrapper"),
    ("model.pixel_shuffle", "DepthToSpace", "pixel-space wrapper"),
    ("model.unet.down_blocks.1.resnets.0.conv1", "Conv", None),
    ("model.unet.mid_block.attentions.0.proj_in", "MatMul", None),
    ("model.unet.up_blocks.0.attentions.0.transformer_blocks.0.ff.net.2", "MatMul", None),
])
def test_the_table_keeps_the_recipes_layers_in_float(path, op, kept):
    from trtsr.calibration.recipe import excluded_by

    rule = excluded_by(path, op)
    if kept is None:
        assert rule is None
    else:
        assert rule is not None and rule.why.startswith(kept)


@pytest.fixture(scope="module")
def shipped():
    import onnx

    return onnx.load(str(ASSETS / "default-x4.onnx"))


def test_group_norm_output_has_no_inferred_type_which_is_why_the_rewrite_exists(shipped):
    """Without value_info (ModelOpt clears it), ONNX's inference stops at the first GroupNormalization."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(shipped)
    del model.graph.value_info[:]
    first = next(n for n in model.graph.node if n.op_type == "GroupNormalization")
    inferred = {v.name for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    assert first.output[0] not in inferred

    from trtsr.calibration.graph import rewrite_group_norms

    assert rewrite_group_norms(model) == sum(1 for n in shipped.graph.node if n.op_type == "GroupNormalization") > 0
    inferred = {v.name for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    assert first.output[0] in inferred
    convs = [n.output[0] for n in model.graph.node if n.op_type == "Conv"]
    assert all(name in inferred for name in convs)


def test_the_rewrite_computes_the_same_picture(shipped, tmp_path):
    import onnx
    import onnxruntime as ort
    from PIL import Image

    from trtsr.calibration.graph import module_path, rewrite_group_norms

    model = onnx.ModelProto()
    model.CopyFrom(shipped)
    rewrite_group_norms(model)
    norms = [n for n in model.graph.node if n.op_type == "InstanceNormalization"]
    assert norms and all(module_path(n).startswith("model.unet") for n in norms)
    onnx.save(model, str(tmp_path / "rewritten.onnx"))
    with Image.open(DATA / "0030.jpg") as img:
        lr = np.asarray(img.convert("RGB"), dtype=np.float32)[:80, :112]
    feed = {"lr": np.ascontiguousarray(lr), "guidance": np.array([1.8], np.float32)}
    before = ort.InferenceSession(str(ASSETS / "default-x4.onnx")).run(None, feed)[0]
    after = ort.InferenceSession(str(tmp_path / "rewritten.onnx")).run(None, feed)[0]
    assert before.shape == after.shape == (320, 448, 3)
    assert np.abs(before - after).max() < 0.01


def test_the_crop_plan_is_seeded_and_uses_every_image_and_size():
    from trtsr.calibration.data import CalibrationImage, plan_crops

    images = [CalibrationImage(Path(f"{i}.png"), np.zeros((h, w, 3), np.float32), str(i))
              for i, (h, w) in enumerate([(200, 300), (90, 70), (400, 120)])]
    sizes = [(64, 64), (128, 96), (96, 128)]
    plan = plan_crops(images, sizes, 12, seed=3)
    assert plan == plan_crops(images, sizes, 12, seed=3)
    assert plan != plan_crops(images, sizes, 12, seed=4)
    assert {c.image for c in plan} == {0, 1, 2}
    for crop in plan:
        rows, cols = images[crop.image].rgb.shape[:2]
        assert 0 <= crop.x and crop.x + crop.width <= cols and 0 <= crop.y and crop.y + crop.height <= rows
    assert {(c.width, c.height) for c in plan if c.image == 0} <= set(sizes)
    assert any(c.width == 70 for c in plan if c.image == 1)  # cut to the 70-pixel-wide image


def test_feeds_follow_the_graph_input_type():
    from trtsr.calibration.data import CalibrationImage, Crop, make_feed
    from trtsr.spec import ExportSpec

    spec = ExportSpec.load(ASSETS / "default-x4.json")
    rgb = np.random.default_rng(0).uniform(0, 255, (50, 60, 3)).astype(np.float32)
    image = CalibrationImage(Path("a.png"), rgb, "0")
    feed = make_feed(spec, image, Crop(0, 5, 7, 32, 24))
    assert feed["lr"].dtype == np.float32 and feed["lr"].shape == (24, 32, 3)
    assert np.array_equal(feed["lr"], rgb[7:31, 5:37]) and feed["guidance"].tolist() == [np.float32(2.2)]
    import dataclasses

    as_uint8 = make_feed(dataclasses.replace(spec, io="uint8"), image, Crop(0, 5, 7, 32, 24))
    assert as_uint8["lr"].dtype == np.uint8 and np.array_equal(as_uint8["lr"], np.rint(rgb[7:31, 5:37]))
