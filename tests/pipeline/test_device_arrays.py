"""Pictures held as device arrays (DLPack): torch tensors in, the same kind out, without a trip through host memory
where the session runs on the tensor's own memory (the torch session; on a GPU also an engine)."""

from __future__ import annotations

import numpy as np
import pytest

from trtsr.errors import TrtsrError
from trtsr.pipeline import Upscaler

torch = pytest.importorskip("torch", reason="device arrays are read through torch (the export extra)")


def _photo(height: int = 36, width: int = 40) -> np.ndarray:
    from pathlib import Path

    from PIL import Image

    with Image.open(Path(__file__).parents[1] / "data" / "0030.jpg") as img:
        return np.ascontiguousarray(np.asarray(img.convert("RGB"))[:height, :width])


@pytest.fixture(scope="module")
def torch_upscaler():
    with Upscaler("default", backend="torch") as up:
        yield up


def test_a_tensor_runs_on_the_session_directly_and_matches_the_host_path(torch_upscaler, monkeypatch):
    rgb = _photo()
    expected = torch_upscaler.upscale(rgb)
    session = torch_upscaler._session

    def no_host(*args, **kwargs):
        raise AssertionError("the host path ran")

    monkeypatch.setattr(session, "infer", no_host)
    tensor = torch.from_numpy(rgb)
    out = torch_upscaler.upscale(tensor)  # upscale hands device arrays to upscale_tensor
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8 and tuple(out.shape) == (144, 160, 3)
    assert out.requires_grad is False and not out.is_inference()  # an ordinary tensor a pipeline can use
    assert np.abs(out.numpy().astype(int) - expected.astype(int)).max() <= 1
    floats = torch_upscaler.upscale_tensor(tensor.float())
    assert floats.dtype == torch.float32 and float(floats.min()) >= 0 and float(floats.max()) <= 255
    assert np.abs(floats.numpy() - out.numpy()).max() <= 1.0


def test_half_precision_tensors_come_back_as_float32():
    with Upscaler("default", backend="onnxruntime") as up:  # the host way: bf16 has no numpy twin
        out = up.upscale_tensor(torch.from_numpy(_photo()).to(torch.bfloat16))
    assert out.dtype == torch.float32 and tuple(out.shape) == (144, 160, 3)


def test_an_onnxruntime_upscaler_takes_tensors_through_host_memory():
    rgb = _photo()
    with Upscaler("default", backend="onnxruntime") as up:
        expected = up.upscale(rgb)
        out = up.upscale(torch.from_numpy(rgb))
        assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8
        assert np.array_equal(out.numpy(), expected)


def test_a_picture_too_large_for_one_call_is_tiled_through_host_memory(torch_upscaler, monkeypatch):
    monkeypatch.setenv("TRTSR_TILE_MEMORY_GB", "0.01")  # the whole picture no longer fits: tiles
    rgb = _photo(80, 100)
    seen = []
    infer = torch_upscaler._session.infer
    monkeypatch.setattr(torch_upscaler._session, "infer", lambda lr, w: seen.append(lr.shape) or infer(lr, w))
    out = torch_upscaler.upscale_tensor(torch.from_numpy(rgb))
    assert tuple(out.shape) == (320, 400, 3) and len(seen) > 1


def test_what_is_not_a_device_picture_is_one_line(torch_upscaler):
    with pytest.raises(TrtsrError, match=r"must be H x W x 3 \(RGB\), got shape \(10, 10\)"):
        torch_upscaler.upscale(torch.zeros(10, 10, dtype=torch.uint8))
    with pytest.raises(TrtsrError, match="must be uint8, or floats in 0-255, not torch.int32"):
        torch_upscaler.upscale(torch.zeros(10, 10, 3, dtype=torch.int32))
    with pytest.raises(TrtsrError, match="the image is empty"):
        torch_upscaler.upscale(torch.zeros(0, 10, 3, dtype=torch.uint8))
    with pytest.raises(TrtsrError, match="not list"):
        torch_upscaler.upscale([[0, 0, 0]])
