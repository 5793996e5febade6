"""Each backend and model kind gives the pixels it gave before the run core was rebuilt.

`tests/data/pinned_pixels.npz` holds the outputs of the code before that change, for one crop of a test
photo, one case per key below. `python tests/pipeline/test_pinned_pixels.py` writes the file afresh (only
when a change is meant to alter pixels, said in its commit).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch cases need the export extra")
if importlib.util.find_spec("spandrel") is None:  # imported through trtsr, which guards torchvision first
    pytest.skip("the named and checkpoint cases need the models extra", allow_module_level=True)

DATA = Path(__file__).resolve().parents[1] / "data"
PINNED = DATA / "pinned_pixels.npz"

# key: (model, Upscaler keyword arguments)
CASES = {
    "default-x4-own-onnxruntime": ("default", dict(backend="onnxruntime", scale=4)),
    "default-x2-off-onnxruntime": ("default", dict(backend="onnxruntime", scale=2, guidance=None)),
    "default-x3-w1.6-onnxruntime": ("default", dict(backend="onnxruntime", scale=3, guidance=1.6)),
    "default-x4-own-torch": ("default", dict(backend="torch", scale=4)),
    "default-x2-off-torch": ("default", dict(backend="torch", scale=2, guidance=None)),
    "weights-file-x4-own-torch": ("<weights>", dict(backend="torch", scale=4)),
    "graph-x4-w2-onnxruntime": ("<graph>", dict(backend="onnxruntime", guidance=2.0)),
    "animevideov3-x4-onnxruntime": ("realesr-animevideov3", dict(backend="onnxruntime")),
    "animevideov3-x2-torch": ("realesr-animevideov3", dict(backend="torch", scale=2, guidance=None)),
    "compact-checkpoint-torch": ("<compact>", dict(backend="torch")),
    "compact-checkpoint-onnxruntime": ("<compact>", dict(backend="onnxruntime")),
}


def _crop() -> np.ndarray:
    from PIL import Image

    with Image.open(DATA / "0030.jpg") as img:
        rgb = np.asarray(img.convert("RGB"))
    return np.ascontiguousarray(rgb[40:76, 60:100])  # 40x36: an odd size, below one tile


def _compact(folder: Path) -> Path:
    """A small seeded Real-ESRGAN Compact network saved as a .pth, as a user's own checkpoint."""
    import torch

    from trtsr.models.external import import_spandrel

    import_spandrel()
    from spandrel.architectures.Compact import Compact

    path = folder / "compact.pth"
    if not path.is_file():
        torch.manual_seed(0)
        torch.save(Compact(num_feat=16, num_conv=4, upscale=2).state_dict(), path)
    return path


def _model(name: str, folder: Path) -> str:
    from trtsr.paths import default_weights, shipped_graphs

    if name == "<weights>":
        return str(default_weights())
    if name == "<graph>":
        return str(next(g for g in shipped_graphs() if g.name == "default-x4.onnx"))
    if name == "<compact>":
        return str(_compact(folder))
    return name


def run_case(key: str, folder: Path) -> np.ndarray:
    from trtsr import Upscaler

    name, kwargs = CASES[key]
    with Upscaler(_model(name, folder), **kwargs) as upscaler:
        return upscaler.upscale(_crop())


@pytest.mark.parametrize("key", sorted(CASES))
def test_pixels_are_as_pinned(key, tmp_path_factory):
    pinned = np.load(PINNED)
    assert key in pinned.files, f"{key} is not pinned; write the file afresh"
    out = run_case(key, tmp_path_factory.mktemp("pinned"))
    assert out.shape == pinned[key].shape
    diff = np.abs(out.astype(np.int16) - pinned[key].astype(np.int16))
    assert diff.max() <= 1, f"{key}: {int((diff > 1).sum())} values moved by up to {diff.max()} levels"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        results = {key: run_case(key, Path(tmp)) for key in sorted(CASES)}
    np.savez_compressed(PINNED, **results)
    print(f"wrote {len(results)} cases to {PINNED}", file=sys.stderr)
