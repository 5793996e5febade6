"""Shared fixtures: real images from tests/data and exported tiny graphs, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


def load_rgb(name: str) -> np.ndarray:
    from PIL import Image

    with Image.open(DATA / name) as img:
        return np.asarray(img.convert("RGB"))


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Every test, and every trtsr process a test starts, caches in a temporary folder, never the user's."""
    folder = tmp_path_factory.mktemp("trtsr-cache")
    before = os.environ.get("TRTSR_CACHE_DIR")
    os.environ["TRTSR_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("TRTSR_CACHE_DIR", None)
    else:
        os.environ["TRTSR_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def real_rgb() -> np.ndarray:
    return load_rgb("0030.jpg")


class ExportCache:
    """Exports each distinct (model, settings) once per test session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: dict[tuple, object] = {}

    def get(self, model: str = "tiny", **settings):
        from trtsr.export.onnx_export import ExportSettings, export_onnx
        from trtsr.source import resolve_source

        key = (model, tuple(sorted(settings.items())))
        if key not in self.done:
            cfg = ExportSettings(**settings)
            pad = "nocfg" if cfg.guidance is None else f"{cfg.guidance}{'-input' if cfg.guidance_input else ''}"
            name = f"{model}-{cfg.precision}-{cfg.io}-{pad}-x{cfg.scale}-opset{cfg.opset}.onnx"
            self.done[key] = export_onnx(resolve_source(model, scale=cfg.scale), self.root / name, cfg)
        return self.done[key]


@pytest.fixture(scope="session")
def exports(tmp_path_factory) -> ExportCache:
    return ExportCache(tmp_path_factory.mktemp("exports"))


def pytest_report_header(config):
    lines = []
    try:
        import tensorrt_rtx

        lines.append(f"TensorRT-RTX {tensorrt_rtx.__version__}")
    except ImportError:
        lines.append("TensorRT-RTX not installed")
    try:
        import tensorrt

        lines.append(f"TensorRT {tensorrt.__version__}")
    except ImportError:
        lines.append("TensorRT not installed")
    lines.append(f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}")
    return "backends: " + ", ".join(lines)


@pytest.fixture(scope="session")
def full_export(tmp_path_factory):
    """The full-size model exported once (fp16, PadCFG 1.8): about 1.5 minutes and 4 GB of memory."""
    from trtsr.export.onnx_export import ExportSettings, export_onnx
    from trtsr.source import resolve_source

    folder = tmp_path_factory.mktemp("full")
    return export_onnx(resolve_source("gendr-pix"), folder / "gendr-pix.onnx", ExportSettings(precision="fp16"))
