"""`trtsr export` from the command line: success, and one-line errors that leave no files."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # engine builds, exports, Ray or training: the full tier only


def _trtsr(*args, cwd):
    return subprocess.run([sys.executable, "-m", "trtsr", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def _assert_one_line_error(proc, *needles):
    assert proc.returncode == 1, proc.stderr
    # Progress lines may come first (stderr is not a terminal here); the error is one line, and last.
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    lines = errors
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_export_writes_graph_and_spec(tmp_path):
    proc = _trtsr("export", "--model", "tiny", "--no-padcfg", "-o", "t.onnx", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "wrote t.onnx" in proc.stdout and "no PadCFG" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.onnx"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--model", "missing.safetensors"], ["missing.safetensors", "no such model file"]),
        (["--model", "tiny", "--precision", "fp8"], ["unknown precision 'fp8'"]),
        (["--model", "tiny", "--scale", "5"], ["scale must be one of"]),
        (["--model", "garbage.safetensors"], ["garbage.safetensors", "not a safetensors checkpoint"]),
        (["--model", "tiny", "-o", "model.txt"], ["model.txt", "must end in .onnx"]),
    ],
)
def test_bad_input_gives_one_line_and_no_files(tmp_path, args, needles):
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 64)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = _trtsr("export", *args, cwd=tmp_path)
    _assert_one_line_error(proc, *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_help_explains_the_command():
    proc = subprocess.run([sys.executable, "-m", "trtsr", "export", "--help"], capture_output=True, text=True,
                          timeout=120, env={"COLUMNS": "200", "PATH": ""})
    assert proc.returncode == 0
    for option in ("--model", "--precision", "--guidance", "--no-padcfg", "--scale", "--output"):
        assert option in proc.stdout


def test_guidance_one_is_the_batch_one_graph():
    from trtsr.export.onnx_export import ExportSettings

    assert ExportSettings(guidance=1.0).guidance is None
    assert ExportSettings(guidance=1.8).guidance == 1.8
