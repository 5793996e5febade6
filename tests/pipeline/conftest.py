from __future__ import annotations

import pytest

from trtsr.pipeline import Upscaler


@pytest.fixture(scope="session")
def upscaler():
    """The shipped default graph through ONNX Runtime on the CPU."""
    with Upscaler("default", backend="onnxruntime") as up:
        yield up
