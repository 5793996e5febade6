from __future__ import annotations

import pytest

rtx = pytest.importorskip("tensorrt_rtx", reason="engine tests build with TensorRT-RTX (the rtx extra)")



@pytest.fixture(scope="session")
def tiny_fp16(exports):
    return exports.get(precision="fp16")


@pytest.fixture(scope="session")
def tiny_bf16(exports):
    return exports.get(precision="bf16")
