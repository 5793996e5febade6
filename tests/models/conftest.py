"""A run-only install (no torch) collects this folder and skips it, saying why."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the models need the export extra (torch)")
pytest.importorskip("onnx", reason="the models need the export extra (torch)")
