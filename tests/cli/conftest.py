"""Fixtures the command-line tests share: a real engine, and a folder nobody can write into."""

from __future__ import annotations

import shutil
import subprocess

import pytest


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """A real x4 TensorRT-RTX engine with its metadata (built ahead of time, no GPU needed), from the default
    model's shipped x4 graph without PadCFG (nothing to export first)."""
    pytest.importorskip("tensorrt_rtx", reason="builds the engine with TensorRT-RTX (the rtx extra)")
    from trtsr.engines import BuildSettings, build_engine
    from trtsr.paths import shipped_graphs

    graph = next(g for g in shipped_graphs() if g.stem == "default-x4-nocfg")
    folder = tmp_path_factory.mktemp("engine")
    built = build_engine(graph, folder / "x4.engine",
                         BuildSettings(profiles=("720p",), backend="tensorrt-rtx", compute_capabilities=("sm86",)))
    return built.engine_path


@pytest.fixture
def read_only(tmp_path):
    """A real read-only folder: `chattr +i` (root cannot write into an immutable folder)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
        pytest.skip("chattr +i is not available here (needs root and a filesystem with attributes)")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)
