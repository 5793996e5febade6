"""The one-call GPU check's dry run: every stage on the CPU, at toy sizes, with the files it writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # engine builds, exports, Ray or training: the full tier only

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "gpu" / "check.sh"


def test_dry_run_records_every_stage(tmp_path):
    pytest.importorskip("torch", reason="the check's model stages run the torch backend (the export extra)")
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(SCRIPT), str(out), "--dry-run", "--deadline", "400"], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "PYTHON": sys.executable,
                                                                "TRTSR_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((out / "gpu-check.json").read_text())
    assert report["dry_run"] is True and not [k for k in report if k.endswith("_error")]
    assert report["environment"]["versions"]["torch"]
    # the networks people run (seeded), eager at both sizes; compiling is for CUDA
    rows = report["architectures"]["rows"]
    eager = [r for r in rows if r["mode"] == "eager"]
    assert len(eager) == 6 and all(r["median_ms"] > 0 and r["fps"] > 0 for r in eager), eager
    assert {r["architecture"] for r in eager} == {"ESRGAN", "RealESRGAN Compact", "SwinIR"}
    assert all("skipped" in r for r in rows if r["mode"] == "compiled")
    mixed = report["mixed_sizes"]
    assert len(mixed["sizes"]) == 8 and all(r["first_ms"] > 0 and r["median_ms"] > 0 for r in mixed["sizes"])
    for folder_name in ("mixed_folder", "fresh_mixed_folder", "same_size_folder"):
        assert mixed[folder_name]["failed"] == 0 and mixed[folder_name]["pictures_per_s"] > 0
    frames = report["dlpack"]
    assert frames["device_result"]["type"] == "Tensor" and frames["max_level_difference"] <= 1
    assert frames["host_ms"] > 0 and frames["device_ms"] > 0
    probe = report["engine_probe"]
    if "skipped" not in probe:  # TensorRT-RTX installed: its engine really builds here, ahead of time
        assert probe["built"] is True and probe["engine_bytes"] > 1_000_000
    run = report["trtsr_run"]
    # trtsr run end to end (torch standing in for the GPU): grey, alpha and 16-bit pictures kept as they were
    assert run["whole"]["all_good"] and run["tiled"]["all_good"], run
    assert run["photo_psnr_vs_onnxruntime_fp32"] > 40
    assert report["attention"]["cases"]["auto"]["median_ms"] > 0
    folder = report["folder"]
    assert folder["written"] == folder["pictures"] and folder["throughput_vs_bare"] > 0
    latency = [row for row in report["latency"] if "median_ms" in row]
    assert {(row["model"], row["padcfg"]) for row in latency} == {("default", True), ("default", False),
                                                                  ("tiny", True), ("tiny", False)}
    assert (out / "gpu-check.png").stat().st_size > 1000 and (out / "gpu-check.log").is_file()


def test_dry_run_of_the_finetune_call_trains_and_resumes(tmp_path):
    pytest.importorskip("torch", reason="fine-tuning needs the train extra")
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(SCRIPT), str(out), "--dry-run", "--finetune", "--deadline", "300"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable, "TRTSR_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((out / "gpu-check.json").read_text())
    assert not [k for k in report if k.endswith("_error")], report
    first, resumed = report["finetune"]["runs"]
    assert first["exit_code"] == 0 and first["step"] == 4 and first["steps_per_s"] > 0, first
    assert resumed["exit_code"] == 0 and resumed["resumed_at"] == 4 and resumed["step"] == 6, resumed


def dry_call(tmp_path, *flags: str) -> dict:
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(SCRIPT), str(out), "--dry-run", *flags, "--deadline", "300"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable, "TRTSR_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((out / "gpu-check.json").read_text())
    assert not [k for k in report if k.endswith("_error")], {k: v for k, v in report.items() if k.endswith("_error")}
    return report


def test_dry_run_of_the_levers_call_measures_each_lever_against_eager(tmp_path):
    pytest.importorskip("torch", reason="the levers run the torch backend")
    pytest.importorskip("diffusers", reason="the levers change diffusers' blocks")
    cases = dry_call(tmp_path, "--levers")["levers"]["cases"]
    assert cases["eager"]["median_ms"] > 0
    fp8, flex = cases["eager fp8 feed-forward"], cases["eager flex self-attention"]
    # the tiny model: two linears per feed-forward, one transformer block per attention layer
    assert fp8["linears"] == 2 * flex["blocks"] > 0
    assert fp8["median_ms"] > 0 and fp8["speedup"] > 0
    assert 25 < fp8["psnr_vs_eager_db"] < 80  # FP8 rounding shows, and the picture is still the same one
    assert flex["psnr_vs_eager_db"] > 80  # the same arithmetic in another order
    for label in ("eager cuda graph", "compiled", "compiled reduce-overhead (cuda graphs)"):
        assert cases[label] == {"skipped": "needs CUDA"}


def test_dry_run_of_the_video_call_runs_a_clip_end_to_end(tmp_path):
    pytest.importorskip("av", reason="the video stage needs PyAV (the video extra)")
    video = dry_call(tmp_path, "--video")["video"]
    assert video["end_to_end"]["frames"] == video["frames"] == 6 and video["end_to_end"]["skipped_packets"] == 0
    assert video["end_to_end"]["size_out"] == video["output"] == [192, 128]
    assert video["end_to_end"]["written_bytes"] > 0 and video["model_alone"]["median_ms"] > 0
    # the record's ratio is of the unrounded rates; recomputed from the rounded ones it may differ in the last digit
    ratio = video["end_to_end"]["fps"] / video["model_alone_fps"]
    assert 0 < video["end_to_end_vs_model"] == pytest.approx(ratio, abs=2e-3)


def test_dry_run_of_the_train_speed_call_times_the_default_recipe(tmp_path):
    pytest.importorskip("torch", reason="training needs torch")
    record = dry_call(tmp_path, "--train-speed")["train_speed"]
    assert record["recipe"].endswith("distill.toml") and record["scales"] == [2, 3, 4]
    eager, *compiled = record["modes"]
    assert eager["compile"] == "eager" and eager["steps_per_s"] > 0 and 0 < eager["last_total"] < 10, eager
    assert eager["host_waits"] == "not checked on the CPU"
    assert [row["skipped"] for row in compiled] == ["torch.compile is timed on CUDA"] * 2
