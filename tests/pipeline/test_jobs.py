"""The job runner `trtsr run`, `bench` and the benchmarks share: sorting before anything loads, every output
written or its failure said, existing outputs kept, and a report of each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trtsr.pipeline.jobs import REPLACES_INPUT, JobReport, run_jobs, sort_jobs

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def upscaler():
    from trtsr import Upscaler

    with Upscaler("default", backend="onnxruntime", scale=2) as up:
        yield up


def _photo(path: Path, top: int = 0) -> Path:
    with Image.open(DATA / "0030.jpg") as img:
        img.crop((0, top, 40, top + 30)).save(path)
    return path


def test_sorting_loads_nothing_and_keeps_what_exists(tmp_path):
    a, b, c = (_photo(tmp_path / f"{n}.png") for n in "abc")
    (tmp_path / "b_x2.png").write_bytes(b"already there")
    jobs = [(a, tmp_path / "a_x2.png"), (b, tmp_path / "b_x2.png"), (c, c)]
    sorted_jobs = sort_jobs(jobs, overwrite=False)
    assert sorted_jobs.todo == [jobs[0]] and sorted_jobs.skipped == [jobs[1]]
    assert [(f.source, f.reason) for f in sorted_jobs.failed] == [(c, REPLACES_INPUT)]
    assert sort_jobs(jobs, overwrite=True).todo == jobs[:2]  # overwrite replaces outputs, never an input


class Recorder(JobReport):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def skipped(self, source, target) -> None:
        self.lines.append(f"skipped {Path(source).name}")

    def failed(self, failure) -> None:
        self.lines.append(f"failed {Path(failure.source).name}")

    def done(self, result) -> None:
        self.lines.append(f"done {result.source.name}")


def test_every_job_is_written_skipped_or_failed_and_reported(upscaler, tmp_path):
    good = [_photo(tmp_path / f"in{n}.png", top=10 * n) for n in range(3)]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    (tmp_path / "in1_x2.png").write_bytes(b"kept")
    jobs = [(src, tmp_path / f"{src.stem}_x2.png") for src in [*good, broken]]
    report = Recorder()
    summary = run_jobs(upscaler, sort_jobs(jobs, overwrite=False), report=report)
    assert [r.source for r in summary.done] == [good[0], good[2]]
    assert summary.skipped == [jobs[1]] and [f.source for f in summary.failed] == [broken]
    # skips are said first; writes finish in their own threads, so the rest may come in any order
    assert report.lines[0] == "skipped in1.png"
    assert sorted(report.lines[1:]) == ["done in0.png", "done in2.png", "failed broken.png"]
    assert (tmp_path / "in1_x2.png").read_bytes() == b"kept" and not (tmp_path / "broken_x2.png").exists()
    for result in summary.done:
        with Image.open(result.source) as small, Image.open(result.target) as big:
            want = upscaler.upscale(np.asarray(small.convert("RGB")))
            assert big.size == result.size_out == (80, 60) and np.array_equal(np.asarray(big), want)
        assert result.line().startswith(f"{result.source} -> {result.target} (40x30 -> 80x60, ")


def test_an_output_written_meanwhile_is_kept_and_counts_as_failed(upscaler, tmp_path):
    src = _photo(tmp_path / "a.png")
    dst = tmp_path / "a_x2.png"
    sorted_jobs = sort_jobs([(src, dst)], overwrite=False)
    dst.write_bytes(b"another run's")  # after sorting, before writing
    summary = run_jobs(upscaler, sorted_jobs)
    assert not summary.done and "written meanwhile by another run; kept it" in summary.failed[0].line
    assert dst.read_bytes() == b"another run's"
