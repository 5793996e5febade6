"""Every command against a new user's mistakes: one `error:` line, exit status 1, no traceback, and nothing
slow done first. The read-only folder is real: `chattr +i` (root cannot write into an immutable folder)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def trtsr(*args, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trtsr", *map(str, args)], capture_output=True, text=True,
                          input=stdin, timeout=timeout)


def one_error(proc: subprocess.CompletedProcess, *parts: str) -> str:
    """The run failed with status 1 and exactly one `error:` line holding every part; no traceback."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for part in parts:
        assert part in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def read_only(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
        pytest.skip("chattr +i is not available here (needs root and a filesystem with attributes)")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize(("command", "what"), [
    (["export", "-m", "tiny", "-o", "{ro}/x.onnx"], "cannot write the graph"),
    (["build", "{shipped}", "-o", "{ro}/x.engine"], "cannot write the engine"),
    (["evaluate", "-m", "default", "-d", str(DATA), "-o", "{ro}/ev"], "cannot write the evaluation report"),
    (["train", "-d", str(DATA), "--steps", "1", "-o", "{ro}/run"], "cannot write the run folder"),
    (["bench", "-o", "{ro}/b"], "cannot write the results folder"),
    (["batch", str(DATA), "-o", "{ro}/up", "--report", "r.json"], "cannot write the output folder"),
    (["batch", str(DATA), "-o", "{tmp}/up", "--report", "{ro}/r.json"], "cannot write the report"),
], ids=["export", "build", "evaluate", "train", "bench", "batch-output", "batch-report"])
def test_an_unwritable_output_fails_before_any_work(command, what, read_only, tmp_path):
    from trtsr.paths import shipped_onnx

    args = [a.format(ro=read_only, tmp=tmp_path, shipped=shipped_onnx()) for a in command]
    proc = trtsr(*args, timeout=120)
    one_error(proc, what, f"{read_only} is not writable")
    assert list(read_only.iterdir()) == [] and not (tmp_path / "up").exists()
