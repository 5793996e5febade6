"""The default model's targets verdict and the reuse of an earlier report's rows (no model runs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import default_targets  # noqa: E402

OWN_W = {2: 1.5, 3: 1.8, 4: 2.2}


def row(psnr: float, detail: float, grid: float = 1.0) -> dict[str, float]:
    return {"psnr_y": psnr, "ssim_y": 0.8, "detail": detail, "grid": grid}


def passing_quality() -> dict[str, dict]:
    """A table in which every target holds (by a small margin)."""
    quality = {}
    for key in ("x4 clean", "x4 realistic", "x3 clean", "x3 realistic", "x2 clean", "x2 realistic"):
        scale = int(key[1])
        rows = {"bicubic": row(25.0, 0.1), "lanczos": row(25.2, 0.12), "realesr-animevideov3": row(25.2, 0.3)}
        if scale == 4:
            rows["realesrgan-x4plus"] = row(24.0, 0.9)
        rows["candidate w=1"] = row(25.5, 0.15, 1.2)
        rows[f"candidate w={OWN_W[scale]:g}"] = row(24.8, 0.65, 1.4)
        quality[key] = rows
    return quality


def test_every_target_holds_on_a_table_that_meets_them():
    targets = default_targets.verdict(passing_quality(), OWN_W)
    assert len(targets) == 16
    assert all(t["met"] for t in targets), [t for t in targets if not t["met"]]


@pytest.mark.parametrize(("key", "name", "field", "value", "missed"), [
    ("x4 realistic", "candidate w=2.2", "detail", 0.59, "x4 realistic, own w: detail >= 0.6"),
    ("x4 realistic", "candidate w=2.2", "psnr_y", 24.69, "x4 realistic, own w: Y-PSNR >= realesrgan-x4plus + 0.7 dB"),
    ("x4 clean", "candidate w=1", "psnr_y", 25.39, "x4 clean, w = 1: Y-PSNR >= LANCZOS + 0.2 dB"),
    ("x2 realistic", "candidate w=1", "psnr_y", 25.19, "x2 realistic, w = 1: Y-PSNR >= LANCZOS + 0 dB"),
    ("x3 clean", "candidate w=1", "grid", 1.51, "x3 clean: x8 grid <= 1.5 at every w from 1 to 1.8"),
    ("x4 clean", "candidate w=2.2", "psnr_y", 24.4, "x4 clean: the w sweep passes above realesr-animevideov3"),
])
def test_one_number_past_its_limit_misses_that_target_alone(key, name, field, value, missed):
    quality = passing_quality()
    quality[key][name][field] = value
    targets = default_targets.verdict(quality, OWN_W)
    assert [t["target"] for t in targets if not t["met"]] == [missed]


def test_a_sweep_that_never_reaches_the_reference_detail_misses():
    quality = passing_quality()
    quality["x4 realistic"]["candidate w=2.2"]["detail"] = 0.25  # below animevideov3's 0.3
    missed = [t for t in default_targets.verdict(quality, OWN_W) if not t["met"]]
    sweep = [t for t in missed if "sweep" in t["target"]]
    assert sweep and sweep[0]["measured"].startswith("no sweep point reaches its detail")


@pytest.mark.parametrize(("psnr", "met"), [(25.2, True), (25.19, False)])
def test_a_sweep_with_more_detail_than_the_reference_everywhere_is_judged_where_it_starts(psnr, met):
    quality = passing_quality()
    rows = quality["x4 clean"]
    rows["candidate w=1"] = row(psnr, 0.31, 1.2)  # its least detail already above animevideov3's 0.3
    rows["candidate w=2.2"] = row(24.8, 0.65, 1.4)
    sweep = [t for t in default_targets.verdict(quality, OWN_W) if t["target"].startswith("x4 clean: the w sweep")]
    assert sweep[0]["met"] is met and "least detail 0.310" in sweep[0]["measured"]


def test_rejudge_rewrites_the_verdict_from_the_reports_own_tables(tmp_path):
    report = {"images": ["a.png"], "own_w": {str(s): w for s, w in OWN_W.items()}, "quality": passing_quality(),
              "targets": [{"target": "stale", "met": False, "measured": ""}], "all_met": False}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    default_targets.main(["unused", "-d", str(tmp_path), "-o", str(tmp_path / "r"), "--rejudge"])
    again = json.loads(path.read_text())
    assert again["all_met"] is True and len(again["targets"]) == 16 and again["quality"] == report["quality"]
    assert "--rejudge" in again["rejudged"]["command"]


def test_reuse_takes_the_tables_of_the_same_photos_and_refuses_others(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"images": ["a.png", "b.png"], "quality": passing_quality()}))
    assert default_targets.reusable(old, ["a.png", "b.png"]) == passing_quality()
    with pytest.raises(SystemExit, match=r"old\.json: its photos are not this run's \(2 against 1\)"):
        default_targets.reusable(old, ["a.png"])
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(SystemExit, match=r"broken\.json: not a readable targets report"):
        default_targets.reusable(broken, ["a.png"])
