"""The held-out metrics on known inputs and on a real photograph."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trtsr.training import evaluate as ev

pytestmark = pytest.mark.slow  # engine builds, exports, Ray or training: the full tier only


def test_psnr_and_ssim_known_values():
    a = torch.full((32, 32), 100.0)
    assert ev.psnr(a, a + 10) == pytest.approx(10 * math.log10(255**2 / 100))
    assert ev.psnr(a, a) == math.inf
    img = torch.rand(40, 40) * 255
    assert ev.ssim(img, img) == pytest.approx(1.0)
    assert ev.ssim(img, torch.rand(40, 40) * 255) < 0.2


def test_to_y_is_bt601():
    white, black = torch.ones(3, 1, 1), torch.zeros(3, 1, 1)
    assert float(ev.to_y(white)) == pytest.approx(235.0, abs=0.01)
    assert float(ev.to_y(black)) == pytest.approx(16.0)


def test_grid_strength_sees_an_x8_grid(photo):
    y = ev.to_y(photo[:, :216, :216])
    grid = torch.zeros(216, 216)
    grid[::8, :] = 6.0
    grid[:, ::8] = 6.0
    assert ev.grid_strength(y + grid) / ev.grid_strength(y) > 3.0
    # a one-pixel shift of the photo changes nothing
    assert ev.grid_strength(torch.roll(y, 1, 0)) / ev.grid_strength(y) == pytest.approx(1.0, rel=0.05)


def test_scores_rank_bicubic_against_truth(photo):
    truth = ev.prepare_truth(photo, 4)
    assert truth.shape[-2] % 32 == 0 and truth.shape[-1] % 32 == 0
    lr = ev.DEGRADATIONS["bicubic"](truth, 4)
    up = F.interpolate(lr[None], scale_factor=4, mode="bicubic").clamp(0, 1)[0]
    same = ev.score(truth, truth, 4)
    assert same.ssim_y == pytest.approx(1.0) and same.detail == pytest.approx(1.0) and same.grid == pytest.approx(1.0)
    s = ev.score(up, truth, 4)
    assert 20 < s.psnr_y < 40 and s.detail < 0.6 and 0.5 < s.grid < 2.0


def test_evaluate_methods_table(tmp_path, photo):
    from PIL import Image

    arr = (photo[:, :128, :160].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    Image.fromarray(arr).save(tmp_path / "a.png")
    def bicubic(lr):
        return F.interpolate(lr[None], scale_factor=4, mode="bicubic").clamp(0, 1)[0]

    def gridded(lr):  # bicubic plus a faint 8-pixel periodic pattern, as a bad x8 pixel-shuffle would leave
        out = bicubic(lr).clone()
        out[:, ::8, :] += 0.03
        out[:, :, 3::8] -= 0.03
        return out.clamp(0, 1)

    table = ev.evaluate_methods([tmp_path / "a.png"], {"bicubic": bicubic, "gridded": gridded}, 4)
    assert set(table) == set(ev.DEGRADATIONS)
    assert table["bicubic"]["gridded"]["grid"] > 2 * table["bicubic"]["bicubic"]["grid"]
    assert table["bicubic"]["bicubic"]["psnr_y"] > table["realistic"]["bicubic"]["psnr_y"]


def test_evaluate_command_writes_its_report(tmp_path, photo):
    # `trtsr evaluate` end to end on one real image (no teacher, to stay fast): JSON, chart, crops, table.
    import json
    import subprocess
    import sys

    from PIL import Image

    folder = tmp_path / "held"
    folder.mkdir()
    arr = (photo[:, :128, :160].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    Image.fromarray(arr).save(folder / "a.png")
    out = tmp_path / "evaluation"  # no -o: the current folder, never the repository's results
    proc = subprocess.run([sys.executable, "-m", "trtsr", "evaluate", "-d", str(folder), "--holdout-every", "0",
                           "--no-teacher", "-g", "1.0", "-s", "4", "-s", "2"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.glob("evaluation*")) == ["evaluation-samples.png", "evaluation.json",
                                                                     "evaluation.png"]
    assert "| x4 bicubic | default w=1 |" in proc.stdout
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["images"] == ["a.png"] and report["scales"] == [4, 2]
    assert report["split"].startswith("every image (--holdout-every 0)")  # the chart's title says so too
    assert set(report["quality"]) == {f"x{s} {d}" for s in (4, 2) for d in ev.DEGRADATIONS}
    assert set(report["quality"]["x4 bicubic"]) == {"bicubic", "lanczos", "default w=1"}
    for scores in report["quality"]["x4 bicubic"].values():
        assert 15 < scores["psnr_y"] < 40 and 0 < scores["ssim_y"] <= 1
    # x2 keeps more of the picture than x4
    assert report["quality"]["x2 bicubic"]["bicubic"]["psnr_y"] > report["quality"]["x4 bicubic"]["bicubic"]["psnr_y"]
    bad = subprocess.run([sys.executable, "-m", "trtsr", "evaluate", "-d", str(folder), "-s", "5"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "--scale must be one of 2, 3, 4 (got 5)" in bad.stderr
    assert "Traceback" not in bad.stderr
    # the report names the steps of each training stage of the shipped weights (one stage today)
    stages = report["model_metadata"]["stage_steps"]
    assert len(stages) >= 1 and stages[-1] == int(report["model_metadata"]["steps"]) > 0
    assert out.with_suffix(".png").stat().st_size > 0 and (tmp_path / "evaluation-samples.png").stat().st_size > 0
