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
    from trtsr.gpu import detect_gpu

    if detect_gpu() is None:
        assert all(r["skipped"] == "no NVIDIA GPU" for r in engine)
    else:  # a GPU: the engine ran, or its line says why not (no TensorRT backend that runs there)
        assert all(r["skipped"] is None or r["skipped"] for r in engine) and len(engine) == 2
    with Image.open(tmp_path / "smoke.png") as chart:
        assert chart.size[0] == 1100 and chart.size[1] > 100


def test_bench_rejects_unknown_backend(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "trtsr", "bench", "-b", "cuda-magic", "-o", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "unknown benchmark backend" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_the_first_run_is_the_first_call():
    """What compiles or warms up on the first call (torch.compile, CUDA) shows in first_run_ms."""
    import time

    from trtsr.measure import timed_runs

    calls = []

    def run():
        time.sleep(0.2 if not calls else 0.0)
        calls.append(1)

    first, times = timed_runs(run, warmup=2, repeats=3)
    assert first >= 200 and max(times) < 100 and len(calls) == 1 + 1 + 3


def test_memory_high_water_sees_a_peak_between_samples_of_the_baseline():
    """The sampler reports the highest use during the block, not the difference between its ends."""
    import threading
    import time

    from trtsr.measure import MemoryHighWater

    used = {"bytes": 1_000}
    lock = threading.Lock()

    def read():
        with lock:
            return used["bytes"]

    with MemoryHighWater(read, interval=0.001) as memory:
        with lock:
            used["bytes"] = 9_000  # a transient allocation ...
        time.sleep(0.05)
        with lock:
            used["bytes"] = 1_500  # ... freed before the block ends
    assert memory.baseline == 1_000 and memory.highest == 9_000 and memory.peak_bytes == 8_000
