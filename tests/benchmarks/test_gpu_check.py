"""The one-call GPU check's dry run: every stage on the CPU, at toy sizes, with the files it writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "gpu" / "check.sh"


def test_dry_run_builds_probes_and_records_every_stage(tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="the probe builds with TensorRT-RTX (the rtx extra)")
    from trtsr.gpu import detect_gpu

    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(SCRIPT), str(out), "--dry-run", "--budget", "120"], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "PYTHON": sys.executable,
                                                                "TRTSR_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((out / "gpu-check.json").read_text())
    assert report["dry_run"] is True and not [k for k in report if k.endswith("_error")]
    env = report["environment"]
    assert "tensorrt-rtx" in env["backends"] and env["device"]["name"]
    probe = report["engine_probe"]
    # the TensorRT-RTX engine really builds here, ahead of time, from the shipped graph
    assert probe["built"] is True and probe["engine_bytes"] > 1_000_000
    if detect_gpu() is None:
        # without a GPU the load is refused, and the exact reason is what the check records
        assert probe["loaded"] is False and "NVIDIA GPU and none is visible" in probe["load_error"]
        assert "engine_latency" not in report
    else:
        assert "loaded" in probe
    cases = report["baselines"]
    assert {(c["backend"].split(" ")[0], c["padcfg"]) for c in cases} >= {("onnxruntime-cpu", True),
                                                                        ("torch-eager-fp32", False)}
    assert all(c["median_ms"] > 0 for c in cases if not c.get("skipped"))
    assert (out / "gpu-check.png").stat().st_size > 1000 and (out / "gpu-check.log").is_file()
