"""The Ray batch job on a real local Ray cluster: same pixels as `trtsr run`, failures alone, resume, URIs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray", reason="the distributed extra (ray[data]) runs these tests")

from trtsr.distributed import BatchSettings, plan_jobs, upscale_dataset  # noqa: E402

pytestmark = pytest.mark.slow  # engine builds, exports, Ray or training: the full tier only

DATA = Path(__file__).parents[1] / "data"
CROPS = [("0014.jpg", (0, 0, 48, 40)), ("0030.jpg", (10, 10, 58, 50)), ("ADE_val_00000114.jpg", (0, 0, 40, 44)),
         ("wolf_gray.jpg", (30, 30, 70, 66))]


def _inputs(folder: Path, count: int = len(CROPS), side: int | None = None) -> list[Path]:
    """Small crops of real photographs (small, so ONNX Runtime upscales each in well under a second);
    with `side`, square crops of that size."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(count):
        name, box = CROPS[index % len(CROPS)]
        if side is not None:
            box = (index, index, index + side, index + side)
        with Image.open(DATA / name) as img:
            target = folder / f"{Path(name).stem}-{index}.png"
            img.crop(box).save(target)
        files.append(target)
    return files


def _cli(*args):
    return [sys.executable, "-m", "trtsr", *map(str, args)]


@pytest.fixture(scope="module")
def cluster():
    """A real local Ray cluster with 2 CPUs for the in-process tests; the job reuses it and leaves it running."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _ctrl_c_reaches_python() -> None:
    """A suite started in the background (`nohup ... &`) hands its children SIGINT ignored, and Python then
    never raises KeyboardInterrupt; the child gets the default back, as from a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_cli_outputs_match_trtsr_run_and_a_corrupt_file_fails_alone(tmp_path):
    files = _inputs(tmp_path / "in")
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    reference = tmp_path / "ref"
    proc = subprocess.run(_cli("run", *files, "-o", reference), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = tmp_path / "report.json"
    proc = subprocess.run(_cli("batch", tmp_path / "in", "-o", tmp_path / "out", "--report", report),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.png" in errors[0] and "Traceback" not in proc.stderr
    assert f"{len(files)} upscaled, 0 skipped" in proc.stdout and "1 failed" in proc.stdout
    data = json.loads(report.read_text())
    assert data["done"] == len(files) and data["failed"] == 1 and data["failures"][0]["file"].endswith("broken.png")
    assert data["images_per_second"] > 0 and data["output_megapixels_per_second"] > 0
    assert data["backend"] == "onnxruntime-cpu" and "trtsr batch" in data["command"]
    for file in files:
        ours = np.asarray(Image.open(tmp_path / "out" / f"{file.stem}_x4.png"))
        theirs = np.asarray(Image.open(reference / f"{file.stem}_x4.png"))
        assert ours.shape == theirs.shape and np.array_equal(ours, theirs), file.name
    assert not [p for p in (tmp_path / "out").rglob(".*")], "temporary files left"


def test_a_stopped_job_resumes_with_only_the_rest(tmp_path):
    files = _inputs(tmp_path / "in", count=12, side=96)  # about 0.3 s each: the job is still running at Ctrl-C
    out = tmp_path / "out"
    job = subprocess.Popen(_cli("batch", tmp_path / "in", "-o", out, "--report", tmp_path / "first.json"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=_ctrl_c_reaches_python)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and job.poll() is None and not list(out.rglob("*_x4.png")):
        time.sleep(0.05)
    job.send_signal(signal.SIGINT)  # stopped half way, as Ctrl-C stops it
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 130, stderr
    finished = sorted(p.name for p in out.rglob("*_x4.png"))
    assert 0 < len(finished) < len(files), f"not stopped half way: {len(finished)} of {len(files)}"
    for name in finished:  # every output that exists is complete
        with Image.open(out / name) as img:
            img.load()
    proc = subprocess.run(_cli("batch", tmp_path / "in", "-o", out, "--report", tmp_path / "second.json"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    second = json.loads((tmp_path / "second.json").read_text())
    assert second["skipped"] == len(finished) and second["done"] == len(files) - len(finished)
    assert len(list(out.rglob("*_x4.png"))) == len(files)


def test_file_uris_go_through_pyarrow(cluster, tmp_path):
    files = _inputs(tmp_path / "in" / "nested", count=2)
    report = upscale_dataset([(tmp_path / "in").as_uri()], (tmp_path / "out").as_uri(),
                             BatchSettings(fmt="jpg", suffix="_big"))
    assert report.done == 2 and report.failed == 0 and ray.is_initialized()  # the user's Ray is left running
    for file in files:
        with Image.open(tmp_path / "out" / "nested" / f"{file.stem}_big.jpg") as img:
            assert img.format == "JPEG" and img.size == (Image.open(file).size[0] * 4, Image.open(file).size[1] * 4)
    again = upscale_dataset([(tmp_path / "in").as_uri()], (tmp_path / "out").as_uri(),
                            BatchSettings(fmt="jpg", suffix="_big"))
    assert again.done == 0 and again.skipped == 2


def test_a_named_model_runs_in_the_actors_at_its_own_scale(cluster, tmp_path):
    """realesr-animevideov3 at x2 through Ray: the same pixels as the same request through `Upscaler`."""
    from trtsr.pipeline import RunRequest, Upscaler

    files = _inputs(tmp_path / "in", count=2)
    request = RunRequest(model="realesr-animevideov3", scale=2, backend="onnxruntime")
    report = upscale_dataset([str(tmp_path / "in")], str(tmp_path / "out"), BatchSettings(run=request, fmt="png"))
    assert report.done == 2 and report.failed == 0
    with Upscaler.from_request(request) as up:
        for file in files:
            theirs = up.upscale(np.asarray(Image.open(file).convert("RGB")))
            ours = np.asarray(Image.open(tmp_path / "out" / f"{file.stem}_x2.png"))
            assert ours.shape == theirs.shape == (Image.open(file).size[1] * 2, Image.open(file).size[0] * 2, 3)
            assert np.array_equal(ours, theirs), file.name


def test_plan_refuses_collisions_and_reads_list_files(tmp_path):
    first, second = _inputs(tmp_path / "A", 1), _inputs(tmp_path / "B", 1)
    assert first[0].name == second[0].name
    lonely = _inputs(tmp_path / "C", 2)[1]
    listing = tmp_path / "todo.txt"
    listing.write_text(f"# one per line\n{first[0]}\n{second[0]}\n\n{lonely}\n{tmp_path / 'missing.png'}\n")
    todo, skipped, failures = plan_jobs([f"@{listing}"], str(tmp_path / "out"), suffix="_x4", fmt=None,
                                        overwrite=False)
    assert [Path(job.source).name for job in todo] == [lonely.name] and skipped == []
    clashes = [f for f in failures if "would also be written from" in f["error"]]
    assert sorted(f["file"] for f in clashes) == sorted(str(p) for p in (first[0], second[0]))
    missing = [f for f in failures if f not in clashes]
    assert len(missing) == 1 and "missing.png" in missing[0]["file"] and missing[0]["error"] == "not found"


def test_bad_settings_are_one_line_errors():
    from trtsr.errors import TrtsrError
    from trtsr.pipeline.request import RunRequest

    for bad, message in ((dict(actors=0), "actors must be at least 1"), (dict(fmt="bmp"), "unknown format"),
                         (dict(threads=0), "threads must be")):
        with pytest.raises(TrtsrError, match=message):
            BatchSettings(**bad)
    with pytest.raises(TrtsrError, match="backend must be one of"):  # the run request the actors open, checked once
        BatchSettings(run=RunRequest(backend="cuda"))


def test_the_base_install_never_imports_ray():
    code = "import sys\nimport trtsr, trtsr.cli, trtsr.pipeline\nprint('RAY', 'ray' in sys.modules)\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ})
    assert proc.returncode == 0 and "RAY False" in proc.stdout, proc.stderr


def test_an_unknown_model_is_one_line_before_any_image_is_read(cluster, tmp_path):
    from trtsr.errors import TrtsrError
    from trtsr.pipeline.request import RunRequest

    _inputs(tmp_path / "in", count=1)
    with pytest.raises(TrtsrError, match="no such model file or folder"):
        upscale_dataset([str(tmp_path / "in")], str(tmp_path / "out"),
                        BatchSettings(run=RunRequest(model="no-such-model")))
    assert not (tmp_path / "out").exists()


def test_a_video_is_refused_in_one_line(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not decoded: refused by name")
    todo, skipped, failures = plan_jobs([str(clip)], str(tmp_path / "out"), suffix="_x4", fmt=None, overwrite=False)
    assert todo == [] and skipped == [] and len(failures) == 1
    assert failures[0]["file"] == str(clip) and "not videos; upscale a video with trtsr run" in failures[0]["error"]
