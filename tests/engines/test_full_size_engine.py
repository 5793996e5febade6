"""The full-size GenDR-Pix fp16 engine with the default 1080p-to-8K profiles builds on this machine."""

from __future__ import annotations

import pytest

from trtsr.engines import DEFAULT_PROFILES, BuildSettings, build_engine

pytestmark = pytest.mark.slow


def test_full_size_fp16_engine_with_default_profiles(full_export, tmp_path):
    result = build_engine(full_export.onnx_path, tmp_path / "gendr-pix.engine",
                          BuildSettings(backend="tensorrt-rtx"))
    meta = result.metadata
    assert [p.name for p in meta.profiles] == list(DEFAULT_PROFILES)
    assert meta.profiles[-1].output_max == (4320, 7680, 3)
    assert meta.precision == "fp16" and meta.guidance == 1.8
    # fp16 weights alone are 1.73 GB; the engine holds them plus kernels.
    assert meta.engine_bytes > 1_700_000_000
    print(f"full-size engine: {meta.engine_bytes / 1e9:.2f} GB in {meta.build_seconds:.0f} s "
          f"with {meta.backend} {meta.backend_version}")
