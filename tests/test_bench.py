"""The benchmark harness on the CPU: it runs, and its JSON and chart name what ran where."""

from __future__ import annotations

import json
import subprocess
import sys

from PIL import Image


def test_bench_smoke(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "trtsr", "bench", "-m", "default", "--size", "96x64", "--size", "128x128",
         "-b", "onnxruntime", "-b", "torch-eager-fp32", "-b", "engine", "--padcfg", "--repeats", "2",
         "--warmup", "1", "-o", str(tmp_path), "--name", "smoke"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "smoke.json").read_text())
    assert report["device"]["name"] and report["versions"]["trtsr"] and report["versions"]["onnxruntime"]
    assert "trtsr bench" in report["command"] and "--size 96x64" in report["command"]
    results = report["results"]
    assert len(results) == 6
    ran = [r for r in results if r["skipped"] is None]
    assert {r["backend"] for r in ran} >= {"onnxruntime-cpu", "torch-eager-fp32"}
    for r in ran:
        assert r["median_ms"] > 0 and r["repeats"] == 2 and r["peak_memory_bytes"] > 0
        assert r["p10_ms"] <= r["median_ms"] <= r["p90_ms"]
    engine = [r for r in results if r["backend"] == "engine"]
    assert all(r["skipped"] == "no NVIDIA GPU" for r in engine)  # this machine has none
    with Image.open(tmp_path / "smoke.png") as chart:
        assert chart.size[0] == 1100 and chart.size[1] > 100


def test_bench_rejects_unknown_backend(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "trtsr", "bench", "-b", "cuda-magic", "-o", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "unknown benchmark backend" in proc.stderr
    assert not list(tmp_path.iterdir())
