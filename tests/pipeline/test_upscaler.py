"""The Python API on ONNX Runtime: shapes, modes, tiling without seams, small inputs, no torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trtsr.errors import TrtsrError
from trtsr.pipeline import Upscaler
from trtsr.runtime import read_image

DATA = Path(__file__).parents[1] / "data"


def _crop(name, box):
    with Image.open(DATA / name) as img:
        return np.asarray(img.convert("RGB").crop(box))


def test_upscale_array_kinds(upscaler):
    rgb = _crop("0030.jpg", (0, 0, 40, 30))
    assert upscaler.upscale(rgb).shape == (120, 160, 3)
    gray = rgb[:, :, 0]
    assert upscaler.upscale(gray).shape == (120, 160)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])
    out = upscaler.upscale(rgba)
    assert out.shape == (120, 160, 4) and np.abs(out[:, :, 3].astype(int) - 200).max() <= 1
    deep = (rgb.astype(np.uint16) * 257)
    out16 = upscaler.upscale(deep)
    assert out16.dtype == np.uint16 and out16.shape == (120, 160, 3)


def test_pil_in_pil_out(upscaler):
    with Image.open(DATA / "0014.jpg") as img:
        out = upscaler.upscale(img.crop((0, 0, 30, 20)))
    assert isinstance(out, Image.Image) and out.size == (120, 80) and out.mode == "RGB"


def test_inputs_below_the_graph_minimum_are_padded(upscaler):
    tiny = _crop("0030.jpg", (50, 50, 58, 61))
    out = upscaler.upscale(tiny)
    assert out.shape == (44, 32, 3)


def test_backend_is_named(upscaler):
    assert upscaler.backend_name == "onnxruntime-cpu"


def test_tiled_model_run_agrees_with_the_whole_image():
    image = read_image(DATA / "ADE_val_00000114.jpg").rgb[:96, :120]
    with Upscaler("default", backend="onnxruntime", tile=256) as whole:
        reference = whole.upscale_picture(_pic(image)).rgb
    with Upscaler("default", backend="onnxruntime", tile=48, overlap=16) as tiled:
        result = tiled.upscale_picture(_pic(image)).rgb
    assert result.shape == reference.shape == (384, 480, 3)
    # GroupNorm statistics and self-attention span the whole input, so a tile sees less
    # context than the full image: the same picture, not the same numbers. (The exact
    # blending is checked with a local operator in test_tiling.py.)
    inner = np.s_[24:-24, 24:-24]
    assert np.corrcoef(result[inner].ravel(), reference[inner].ravel())[0, 1] > 0.7


def _pic(rgb):
    from trtsr.runtime.images import Picture

    return Picture(np.ascontiguousarray(rgb))


def test_tile_option_is_checked():
    with pytest.raises(TrtsrError, match="tile must be at least"):
        Upscaler("default", backend="onnxruntime", tile=4)


def test_unknown_backend():
    with pytest.raises(TrtsrError, match="backend must be one of auto, onnxruntime"):
        Upscaler("default", backend="cuda")


@pytest.mark.slow
def test_engine_without_gpu_says_so(exports, tmp_path):
    """A real, intact engine with its metadata: the one thing missing here is the GPU, and the error says so."""
    pytest.importorskip("tensorrt_rtx", reason="builds the engine with TensorRT-RTX (the rtx extra)")
    from trtsr.engines import BuildSettings, build_engine
    from trtsr.engines.metadata import EngineMetadata
    from trtsr.gpu import detect_gpu

    if detect_gpu() is not None:
        pytest.skip("a GPU is visible: the engine would run")
    built = build_engine(exports.get(precision="fp16").onnx_path, tmp_path / "m.engine",
                         BuildSettings(profiles=("720p",), backend="tensorrt-rtx", compute_capabilities=("sm86",)))
    assert EngineMetadata.for_engine(built.engine_path).matches_file(built.engine_path)
    with pytest.raises(TrtsrError, match="engines run on an NVIDIA GPU and none is visible") as caught:
        Upscaler(engine=built.engine_path)
    assert caught.value.path == built.engine_path


@pytest.mark.slow
def test_a_corrupt_engine_is_named_corrupt_not_missing_a_gpu(exports, tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="builds the engine with TensorRT-RTX (the rtx extra)")
    from trtsr.engines import BuildSettings, build_engine

    built = build_engine(exports.get(precision="fp16").onnx_path, tmp_path / "m.engine",
                         BuildSettings(profiles=("720p",), backend="tensorrt-rtx", compute_capabilities=("sm86",)))
    data = bytearray(built.engine_path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    built.engine_path.write_bytes(bytes(data))
    with pytest.raises(TrtsrError, match="does not match its metadata") as caught:
        Upscaler(engine=built.engine_path)
    assert caught.value.path == built.engine_path


def test_upscale_takes_the_picture_read_image_returns(upscaler):
    picture = read_image(DATA / "0014.jpg")
    small = _pic(picture.rgb[:30, :40])
    result = upscaler.upscale(small)
    assert result.rgb.shape == (120, 160, 3)


class _MemoryLimited:
    """A real ONNX Runtime session that runs out of memory above `limit` input pixels a side."""

    def __init__(self, session, limit: int) -> None:
        self._session, self.limit, self.seen = session, limit, []
        self.scale, self.io, self.sizes, self.max_input = session.scale, session.io, session.sizes, None
        self.backend_name, self.guidance, self.guidance_input = (session.backend_name, session.guidance,
                                                                 session.guidance_input)

    def infer(self, lr, w):
        from trtsr.errors import OutOfMemory

        self.seen.append(max(lr.shape[:2]))
        if max(lr.shape[:2]) > self.limit:
            raise OutOfMemory(f"simulated: {lr.shape[1]}x{lr.shape[0]} does not fit")
        return self._session.infer(lr, w)

    def close(self):
        self._session.close()


def test_out_of_memory_retries_with_smaller_tiles():
    from trtsr.paths import shipped_onnx
    from trtsr.sessions.onnxruntime_session import OnnxRuntimeSession

    limited = _MemoryLimited(OnnxRuntimeSession(shipped_onnx()), limit=40)
    image = read_image(DATA / "ADE_val_00000114.jpg").rgb[:70, :90]
    with Upscaler.from_session(limited, overlap=8) as up:
        out = up.upscale_picture(_pic(image)).rgb
    assert out.shape == (280, 360, 3) and out.std() > 10
    # the whole image (90 > 40) fails, then tiles of at most 64 (even tiles: 49) fail, then tiles of at most 32 run
    assert limited.seen[0] == 90 and 40 < limited.seen[1] <= 64
    assert limited.seen[2:] and all(side <= 32 for side in limited.seen[2:])


def test_out_of_memory_at_the_smallest_tile_is_one_clear_error():
    from trtsr.paths import shipped_onnx
    from trtsr.sessions.onnxruntime_session import OnnxRuntimeSession

    limited = _MemoryLimited(OnnxRuntimeSession(shipped_onnx()), limit=10)  # below the graph's minimum
    with Upscaler.from_session(limited) as up, pytest.raises(TrtsrError, match="out of memory even at"):
        up.upscale_picture(_pic(read_image(DATA / "0014.jpg").rgb[:60, :60]))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_without_a_guidance_the_default_model_runs_its_own_w_per_scale(scale):
    from trtsr import defaults

    rgb = _crop("0030.jpg", (10, 10, 58, 42))
    own = defaults.DEFAULT_MODEL_GUIDANCE[scale]
    with Upscaler("default", backend="onnxruntime", scale=scale) as auto:
        got = auto.upscale(rgb)
    with Upscaler("default", backend="onnxruntime", scale=scale, guidance=own) as explicit:
        assert np.array_equal(got, explicit.upscale(rgb))
    other = 1.8 if own != 1.8 else 2.2
    with Upscaler("default", backend="onnxruntime", scale=scale, guidance=other) as different:
        assert not np.array_equal(got, different.upscale(rgb))
    from trtsr.source import resolve_source

    assert resolve_source("tiny", scale=scale).own_w == defaults.GUIDANCE  # other GenDR-Pix weights: the paper's
    with pytest.raises(TrtsrError, match="guidance must be a number or 'auto'"):
        Upscaler("default", backend="onnxruntime", scale=scale, guidance="sharp")


@pytest.mark.parametrize("name", ["ADE_val_00000114.jpg", "wolf_gray.jpg"])
def test_the_corners_without_padcfg_are_as_good_as_the_rest(name):
    """Without PadCFG the picture's corners sat on the UNet's zero-padded border: 122 and 243 grey levels from
    bicubic on these photos, against 9 and 13 at the 99.9th percentile elsewhere. The plain path now takes the
    positive branch's reflect pad."""
    from PIL import Image

    with Image.open(DATA / name) as img:
        rgb = np.asarray(img.convert("RGB"))
        bicubic = np.asarray(img.convert("RGB").resize((img.width * 4, img.height * 4), Image.Resampling.BICUBIC))
    with Upscaler("default", backend="onnxruntime", guidance=None) as up:
        plain = up.upscale(rgb).astype(np.float64)
    diff = np.abs(plain - bicubic)
    corners = max(diff[:4, :4].max(), diff[:4, -4:].max(), diff[-4:, :4].max(), diff[-4:, -4:].max())
    assert corners < 3 * max(np.percentile(diff, 99.9), 10.0), f"corner {corners:.0f} levels from bicubic"


def test_w_one_through_padcfg_is_the_plain_graph():
    """w = 1 mixes nothing in: the PadCFG graph at w = 1 and the batch-1 graph are the same picture."""
    import onnxruntime as ort

    from trtsr.paths import shipped_graphs

    graphs = {p.name: p for p in shipped_graphs()}
    lr = _crop("0030.jpg", (20, 30, 90, 80)).astype(np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    padcfg = ort.InferenceSession(str(graphs["default-x4.onnx"]), options)
    plain = ort.InferenceSession(str(graphs["default-x4-nocfg.onnx"]), options)
    at_one = padcfg.run(None, {"lr": lr, "guidance": np.array([1.0], np.float32)})[0]
    assert np.abs(at_one - plain.run(None, {"lr": lr})[0]).max() < 1e-2
