"""`trtsr train` / `trtsr finetune` end to end on real images, and their one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trtsr.models.checkpoint import load_model, read_checkpoint_metadata

pytestmark = pytest.mark.slow  # engine builds, exports, Ray or training: the full tier only

DATA = Path(__file__).parents[1] / "data"


def _trtsr(*args):
    return subprocess.run([sys.executable, "-m", "trtsr", *map(str, args)], capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name in ("0030.jpg", "ADE_val_00000114.jpg"):
        shutil.copy(DATA / name, folder / name)
    return folder


def test_train_then_resume_then_finetune(photos, tmp_path):
    cfg = tmp_path / "small.toml"
    cfg.write_text("holdout_every = 0\ncrop = 64\nbank_size = 2\nbatch = 1\nsteps = 2\nperceptual_window = 32\n"
                   "checkpoint_every = 1\nlog_every = 1\nadv_start = 1\n")
    run = tmp_path / "run"
    proc = _trtsr("train", "-c", cfg, "-d", photos, "-o", run)
    assert proc.returncode == 0, proc.stderr
    assert "step 2/2" in proc.stderr and "to step 2" in proc.stdout
    assert read_checkpoint_metadata(run / "model.safetensors")["steps"] == "2"
    assert json.loads((run / "config.json").read_text())["crop"] == 64
    # resume without --config: the run's saved config is used, and the bank is reused
    proc = _trtsr("train", "-o", run, "--resume", "--steps", "3")
    assert proc.returncode == 0, proc.stderr
    assert "resumed at step 2" in proc.stderr and "sample 1/" not in proc.stderr
    assert read_checkpoint_metadata(run / "model.safetensors")["steps"] == "3"
    # fine-tune the result with the same recipe
    proc = _trtsr("finetune", run / "model.safetensors", "-c", cfg, "-d", photos, "-o", tmp_path / "ft",
                  "--steps", "1")
    assert proc.returncode == 0, proc.stderr
    assert load_model(tmp_path / "ft" / "model.safetensors").config.name == "tiny"
    # the fine-tuned weights keep the recipe they grew from: the 3-step train run, then this one
    meta = read_checkpoint_metadata(tmp_path / "ft" / "model.safetensors")
    (earlier,) = json.loads(meta["history"])
    assert earlier["steps"] == 3 and earlier["train_config"]["init"] == "tiny"
    assert json.loads(meta["train_config"])["init"] == str(run / "model.safetensors") and meta["steps"] == "1"
    assert json.loads(read_checkpoint_metadata(run / "model.safetensors")["history"]) == []


def test_user_mistakes_are_one_line(tmp_path):
    proc = _trtsr("train", "-d", tmp_path / "nowhere", "-o", tmp_path / "run")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'nowhere'}: training data folder does not exist"]
    proc = _trtsr("train", "-o", tmp_path / "empty", "--resume", "-d", DATA)
    assert proc.returncode == 1 and "no checkpoint to resume from" in proc.stderr and "Traceback" not in proc.stderr
    proc = _trtsr("finetune", tmp_path / "missing.safetensors", "-d", DATA, "-o", tmp_path / "ft")
    assert proc.returncode == 1 and "missing.safetensors" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("texture_weight = -1.0\ntexture_window = 15\nhighpass_sigma = 0\n")
    proc = _trtsr("train", "-c", bad, "-d", DATA, "-o", tmp_path / "bad")
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert str(bad) in proc.stderr and "texture_weight must be >= 0" in proc.stderr
    assert "texture_window must be even" in proc.stderr
    assert "highpass_sigma must be > 0" in proc.stderr


def test_a_missing_module_names_the_extra_to_install():
    from trtsr.cli.common import require_extra
    from trtsr.errors import MissingDependencyError

    require_extra("training", "train", "json", "math")  # present: no error
    with pytest.raises(MissingDependencyError, match=r"training \(trtsr_no_such_module is missing\).*trtsr\[train\]"):
        require_extra("training", "train", "json", "trtsr_no_such_module")
