"""A named model through the whole chain on the command line: run on a folder, export, calibrate, build, info."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).parents[1] / "data"


def _trtsr(*args, cwd):
    return subprocess.run([sys.executable, "-m", "trtsr", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=900)


def _one_line_error(proc, *needles):
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_run_a_folder_with_realesr_animevideov3_at_x2(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("0014.jpg", "wolf_gray.jpg", "children-alpha.png"):
        with Image.open(DATA / name) as img:  # a part of each, in its own mode (RGB, grey, RGBA)
            img.crop((150, 90, 246, 162)).save(folder / name, **({"quality": 95} if name.endswith(".jpg") else {}))
    proc = _trtsr("run", folder, "-m", "realesr-animevideov3", "--scale", "2", "-o", tmp_path / "out/", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("0014_x2.jpg", "wolf_gray_x2.jpg", "children-alpha_x2.png"):
        with Image.open(folder / name.replace("_x2", "")) as source, Image.open(tmp_path / "out" / name) as out:
            assert out.size == (source.width * 2, source.height * 2)
            assert out.mode == source.mode  # grey stays grey, alpha stays alpha
    assert "upscaling x2, no PadCFG, with onnxruntime" in proc.stdout + proc.stderr


@pytest.mark.parametrize(("args", "needles"), [
    (["-m", "realesrgan-x4plus", "--scale", "3"], ["realesrgan-x4plus upscales x4, not x3"]),
    (["-m", "realesrgan-x4plus", "-g", "2"], ["no PadCFG guidance", "drop -g"]),
    (["-m", "realesrgan-x5"], ["no such model", "realesrgan-x4plus"]),
])
def test_wrong_uses_of_a_named_model_are_one_line(tmp_path, args, needles):
    proc = _trtsr("run", DATA / "0014.jpg", *args, "-o", tmp_path / "out/", cwd=tmp_path)
    _one_line_error(proc, *needles)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_export_calibrate_build_and_info(tmp_path):
    """realesr-animevideov3: the fp32 graph, its INT8 graph from real photographs (first and last layers float,
    the picture within 30 dB of fp32), and a TensorRT-RTX engine of the fp16 graph with 1080p to 4K profiles."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("0014.jpg", "ADE_val_00000114.jpg", "wolf_gray.jpg"):
        shutil.copy(DATA / name, photos / name)
    assert _trtsr("export", "-m", "realesr-animevideov3", "-p", "fp32", "--io", "float32", "-o", "fp32.onnx",
                  cwd=tmp_path).returncode == 0
    proc = _trtsr("calibrate", "fp32.onnx", "-i", "photos", "-p", "int8", "-n", "8", "--float", "fp32",
                  "-o", "int8.onnx", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    spec = json.loads((tmp_path / "int8.json").read_text())
    assert spec["architecture"] == "RealESRGAN Compact"
    reasons = sorted(spec["quantization"]["excluded"].values())
    assert reasons == ["first compute layer: reads the pixels", "last compute layer: writes the pixels"]
    assert spec["quantization"]["quantized_layers"] == 16

    from trtsr.backends import OnnxRuntimeSettings
    from trtsr.sessions.onnxruntime_session import OnnxRuntimeSession

    with Image.open(DATA / "0030.jpg") as img:
        lr = np.asarray(img.convert("RGB"))[:96, :128].astype(np.float32)
    outs = []
    for graph in ("fp32.onnx", "int8.onnx"):
        session = OnnxRuntimeSession(tmp_path / graph, OnnxRuntimeSettings(cuda=False))
        outs.append(np.clip(session.infer(lr, session.guidance), 0, 255))
        session.close()
    assert 10 * np.log10(255.0**2 / float(np.mean((outs[0] - outs[1]) ** 2))) > 30.0

    assert _trtsr("export", "-m", "realesr-animevideov3", "-o", "fp16.onnx", cwd=tmp_path).returncode == 0
    proc = _trtsr("build", "fp16.onnx", "-P", "1080p", "-P", "4k", "--cc", "sm86", "-o", "av3.engine", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "av3.engine.json").read_text())
    assert meta["spec"]["architecture"] == "RealESRGAN Compact" and meta["spec"]["guidance"] is None
    assert [p["name"] for p in meta["profiles"]] == ["1080p", "4k"]
    assert meta["profiles"][1]["output_max"] == [2160, 3840, 3] and meta["profiles"][1]["input_max"] == [540, 960, 3]
    info = _trtsr("info", "av3.engine", cwd=tmp_path)
    assert info.returncode == 0 and "realesr-animevideov3" in info.stdout
