"""A run-only install (no torch) collects this folder and skips it, saying why."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="exporting needs the export extra (torch, onnx)")
pytest.importorskip("onnx", reason="exporting needs the export extra (torch, onnx)")
