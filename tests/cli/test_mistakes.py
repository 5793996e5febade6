"""Every command against a new user's mistakes: one `error:` line, exit status 1, no traceback, and nothing
slow done first. The read-only folder is real: `chattr +i` (root cannot write into an immutable folder)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import DATA, one_error, trtsr


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


@pytest.mark.parametrize(("list_text", "how"), [("", "-"), ("# only a comment\n\n", "-"), ("", "@")],
                         ids=["empty-stdin", "comments-only", "empty-list-file"])
def test_an_input_list_naming_nothing_says_so(list_text, how, tmp_path):
    if how == "@":
        listing = tmp_path / "todo.txt"
        listing.write_text(list_text)
        proc = trtsr("run", f"@{listing}", "-o", tmp_path / "out/")
        one_error(proc, f"{listing}: the list names no inputs")
    else:
        proc = trtsr("run", "-", "-o", tmp_path / "out/", stdin=list_text)
        one_error(proc, "standard input: the list names no inputs")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", ["/../../evil", "_x4/sub", "..\\up"])
def test_a_suffix_with_a_path_separator_is_refused(suffix, tmp_path):
    source = tmp_path / "in" / "a.png"
    source.parent.mkdir()
    shutil.copy(DATA / "00017_gray.png", source)
    proc = trtsr("run", source, "--suffix", suffix)
    one_error(proc, "holds a path separator")
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["a.png"] and not (tmp_path / "evil.png").exists()


def test_tif_inputs_keep_their_extension(tmp_path):
    from PIL import Image

    source = tmp_path / "scan.tif"
    with Image.open(DATA / "0014.jpg") as img:
        img.crop((0, 0, 24, 20)).save(source)
    proc = trtsr("run", source)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "scan_x4.tif").is_file() and not (tmp_path / "scan_x4.tiff").exists()


def test_the_distributed_extra_brings_the_ray_client():
    """`trtsr batch --ray ray://HOST:10001` needs Ray's client (grpc): the extra names it."""
    from importlib.metadata import requires

    distributed = [r for r in requires("trtsr") or [] if 'extra == "distributed"' in r]
    assert any(r.startswith("ray[") and "client" in r.split("]")[0] for r in distributed), distributed


@pytest.mark.parametrize(("args", "message"), [
    (["run", "x.png", "-g", "abc"], "Invalid value for '--guidance' / '-g'"),
    (["run", "x.png", "--quality", "500"], "Invalid value for '--quality' / '-q'"),
    (["batch", "x.png"], "Missing option '--output' / '-o'"),
    (["run", "--bogus", "x.png"], "No such option: --bogus"),
    (["upscale", "x.png"], "No such command 'upscale'"),
], ids=["bad-number", "out-of-range", "missing-option", "unknown-option", "unknown-command"])
def test_typer_level_mistakes_end_like_every_other_mistake(args, message):
    proc = trtsr(*args, timeout=60)
    line = one_error(proc, message, "--help)")
    assert "╭" not in proc.stderr and line.endswith("--help)")


@pytest.mark.slow
def test_a_small_tile_takes_a_smaller_overlap_by_itself(tmp_path):
    source = tmp_path / "a.png"
    shutil.copy(DATA / "00017_gray.png", source)
    proc = trtsr("run", source, "--tile", "16", "-o", tmp_path / "out.png")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.png").is_file()


def test_an_overlap_above_half_the_tile_in_use_is_refused_before_any_work(tmp_path):
    source = tmp_path / "a.png"
    shutil.copy(DATA / "00017_gray.png", source)
    # planned tiles are at least twice the overlap; above the largest overlap is refused
    proc = trtsr("run", source, "--overlap", "200", "-b", "onnxruntime", "-o", tmp_path / "out.png")
    one_error(proc, "overlap 200 is more than the largest overlap (128 input pixels)")
    assert not (tmp_path / "out.png").exists()
    given = trtsr("run", source, "--tile", "40", "--overlap", "30", "-o", tmp_path / "out.png")
    one_error(given, "overlap 30 is more than half the 40-pixel tile")


@pytest.mark.parametrize("command", [["run", "{img}", "-o", "{tmp}/o.png"],
                                     ["export", "-m", "tiny", "-o", "{tmp}/t.onnx"],
                                     ["evaluate", "-d", str(DATA), "--no-teacher", "-o", "{tmp}/ev"],
                                     ["batch", "{img}", "-o", "{tmp}/b/", "--report", "{tmp}/r.json"]],
                         ids=["run", "export", "evaluate", "batch"])
def test_one_guidance_range_for_every_command(command, tmp_path):
    args = [a.format(img=DATA / "0014.jpg", tmp=tmp_path) for a in command]
    proc = trtsr(*args, "-g", "20", timeout=120)
    one_error(proc, "guidance must be above 0 and at most 10 (1.0 = no PadCFG), got 20")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_guidance_above_the_measured_range_warns(tmp_path):
    source = tmp_path / "a.png"
    with __import__("PIL.Image").Image.open(DATA / "0014.jpg") as img:
        img.crop((0, 0, 30, 24)).save(source)
    high = trtsr("run", source, "-g", "4", "-o", tmp_path / "high.png")
    assert high.returncode == 0 and "guidance 4 is above the range the default model was measured in" in high.stderr
    usual = trtsr("run", source, "-g", "2", "-o", tmp_path / "usual.png")
    assert usual.returncode == 0 and "above the range" not in usual.stderr


def _graph(name: str) -> Path:
    from trtsr.paths import shipped_graphs

    return next(g for g in shipped_graphs() if g.name == name)


@pytest.fixture
def picture(tmp_path) -> Path:
    from PIL import Image

    with Image.open(DATA / "0030.jpg") as img:
        img.crop((0, 0, 40, 30)).save(tmp_path / "good.png")
    return tmp_path / "good.png"


def test_a_graph_names_its_output_by_the_scale_it_runs(picture, tmp_path):
    proc = trtsr("run", picture, "-m", _graph("default-x2.onnx"), "-o", tmp_path / "sx/")
    assert proc.returncode == 0 and "upscaling x2" in proc.stderr, proc.stderr
    from PIL import Image

    with Image.open(tmp_path / "sx" / "good_x2.png") as out:
        assert out.size == (80, 60)
    assert not (tmp_path / "sx" / "good_x4.png").exists()


@pytest.mark.parametrize(("args", "parts"), [
    (["-s", "2", "-m", "{x4}"], ["this graph upscales x4, not x2"]),
    (["-m", "{x4}", "--no-padcfg"], ["this graph has PadCFG (w = 2.2, an input); it cannot run without PadCFG"]),
    (["-m", "{x4}", "-g", "1"], ["this graph has PadCFG", "cannot run without PadCFG"]),
    (["-m", "{x4nocfg}", "-g", "3"], ["this graph has no PadCFG; it cannot run with guidance 3"]),
    (["--no-padcfg", "-g", "2"], ["--no-padcfg and -g 2 contradict each other"]),
    (["-o", "{tmp}/x.tif", "-f", "png"], ["-o names a .tif file but --format is png"]),
], ids=["scale", "no-padcfg", "g1", "guidance-without-padcfg", "no-padcfg-and-g", "tif-and-png"])
def test_what_a_graph_cannot_honour_is_refused_before_any_work(args, parts, picture, tmp_path):
    filled = [a.format(x4=_graph("default-x4.onnx"), x4nocfg=_graph("default-x4-nocfg.onnx"), tmp=tmp_path)
              for a in args]
    proc = trtsr("run", picture, *filled, "-o", tmp_path / "out/") if "-o" not in filled else \
        trtsr("run", picture, *filled)
    one_error(proc, *parts)
    assert "upscaling" not in proc.stderr and not (tmp_path / "out").exists() and not (tmp_path / "x.tif").exists()


def test_the_api_refuses_what_a_graph_cannot_honour():
    from trtsr.errors import TrtsrError
    from trtsr.pipeline.upscaler import Upscaler

    with pytest.raises(TrtsrError, match="has PadCFG .* cannot run without PadCFG"):
        Upscaler(str(_graph("default-x4.onnx")), guidance=None)  # None is no PadCFG, as for model names
    with pytest.raises(TrtsrError, match="upscales x4, not x3"):
        Upscaler(str(_graph("default-x4.onnx")), scale=3)
    with Upscaler(str(_graph("default-x4.onnx"))) as own:  # auto: the graph's own w
        assert own.guidance == 2.2 and own.scale == 4  # the w its spec records


@pytest.mark.slow
def test_random_weights_are_refused_or_said_at_every_entry_point(picture, tmp_path, exports, caplog, monkeypatch):
    """A graph made from a random-weights preset needs --random-weights like the preset's name; the API says so."""
    import logging

    from trtsr.pipeline.upscaler import Upscaler

    graph = exports.get("tiny", precision="fp32", io="float32", guidance=None).onnx_path
    refused = trtsr("run", picture, "-m", graph, "-o", tmp_path / "noise.png")
    one_error(refused, "was made from the 'tiny' preset, whose seeded random weights upscale to noise",
              "--random-weights")
    assert not (tmp_path / "noise.png").exists()
    allowed = trtsr("run", picture, "-m", graph, "--random-weights", "-o", tmp_path / "noise.png")
    assert allowed.returncode == 0 and "warning: tiny has seeded random weights" in allowed.stderr
    monkeypatch.setenv("TRTSR_CACHE_DIR", str(tmp_path / "cache"))  # the export stays out of the shared cache
    with caplog.at_level(logging.WARNING, logger="trtsr"):
        Upscaler("tiny", backend="onnxruntime", guidance=1.0).close()
    assert "tiny has seeded random weights: the output is noise" in caplog.text


def test_a_file_that_appears_before_the_final_rename_is_kept(tmp_path):
    import numpy as np

    from trtsr.runtime.images import Picture, write_image

    target = tmp_path / "out.png"
    target.write_bytes(b"the other run's picture")
    with pytest.raises(FileExistsError):
        write_image(Picture(np.zeros((4, 4, 3), np.float32)), target, overwrite=False)
    assert target.read_bytes() == b"the other run's picture" and [p.name for p in tmp_path.iterdir()] == ["out.png"]
    write_image(Picture(np.zeros((4, 4, 3), np.float32)), target)  # --overwrite: replaced
    assert target.read_bytes().startswith(b"\x89PNG")


def test_a_concurrent_run_that_finishes_first_keeps_its_output(picture, tmp_path, monkeypatch):
    """Two runs into one folder: the output the other run wrote while this one encoded is kept, said so, and
    counted as failed (exit status 1), as any output that could not be written."""
    from PIL import Image
    from typer.testing import CliRunner

    from trtsr.cli import app

    out = tmp_path / "out"
    target = out / "good_x4.png"
    real_save = Image.Image.save

    def other_run_finishes_first(self, fp, *args, **kwargs):
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(b"the other run's picture")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", other_run_finishes_first)
    result = CliRunner().invoke(app, ["run", str(picture), "-o", f"{out}/"])
    assert result.exit_code == 1, result.output
    assert "was written meanwhile by another run; kept it (pass --overwrite to replace it)" in result.output
    assert target.read_bytes() == b"the other run's picture"
    assert sorted(p.name for p in out.iterdir()) == ["good_x4.png"]  # no temporary left behind


@pytest.mark.slow
def test_build_is_quiet_without_verbose(tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="builds with TensorRT-RTX (the rtx extra)")
    from trtsr.paths import shipped_onnx

    proc = trtsr("build", shipped_onnx(), "-o", tmp_path / "x.engine", "-P", "128x128:256x256:512x512")
    assert proc.returncode == 0, proc.stderr
    assert "[TRT]" not in proc.stderr and "[TRT]" not in proc.stdout  # TensorRT's own warnings need -v


@pytest.mark.slow
def test_a_successful_batch_prints_only_its_own_lines(tmp_path):
    pytest.importorskip("ray", reason="trtsr batch runs on Ray (the distributed extra)")
    source = tmp_path / "in" / "a.jpg"
    source.parent.mkdir()
    shutil.copy(DATA / "0014.jpg", source)
    proc = trtsr("batch", source.parent, "-o", tmp_path / "out", "--report", tmp_path / "r.json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["1 to upscale, 0 with outputs already there, 0 refused"]
    assert proc.stdout.splitlines()[0].startswith("1 upscaled, 0 skipped") and (tmp_path / "out" / "a_x4.jpg").is_file()


def test_info_help_has_examples():
    proc = trtsr("info", "--help", timeout=60)
    assert proc.returncode == 0 and "Examples" in proc.stdout and "trtsr info model-int8.onnx" in proc.stdout


def test_bench_without_the_export_extra_says_why_and_writes_nothing(tmp_path):
    """A base install (no torch): no case can run, so one error line, exit 1, and no all-skipped result."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'diffusers', 'onnxscript'):\n"
        "            raise ImportError(f'{name} is hidden (a base install)')\n"
        "sys.meta_path.insert(0, _Hide())\n")
    env = {**__import__("os").environ, "PYTHONPATH": f"{hide}:{__import__('os').environ.get('PYTHONPATH', '')}",
           "TRTSR_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "trtsr", "bench", "-o", tmp_path / "b"], capture_output=True,
                          text=True, timeout=300, env=env)
    one_error(proc, "no benchmark case ran")
    assert not (tmp_path / "b").exists() or list((tmp_path / "b").iterdir()) == []


def test_bench_takes_no_warmup(tmp_path):
    import json

    proc = trtsr("bench", "-m", "default", "-b", "onnxruntime", "--size", "64x64", "--padcfg", "--warmup", "0",
                 "-r", "2", "-o", tmp_path, "--name", "w0")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "w0.json").read_text())
    (case,) = report["results"]
    assert report["warmup"] == 0 and case["repeats"] == 2 and case["first_run_ms"] > 0 and case["median_ms"] > 0


def test_one_unwritable_output_folder_fails_only_its_inputs(read_only, tmp_path):
    """Outputs beside their inputs: the input in an immutable folder fails, the other is upscaled."""
    subprocess.run(["chattr", "-i", str(read_only)], check=True)
    shutil.copy(DATA / "00017_gray.png", read_only / "locked.png")
    subprocess.run(["chattr", "+i", str(read_only)], check=True)
    free = tmp_path / "free"
    free.mkdir()
    shutil.copy(DATA / "0014.jpg", free / "open.jpg")
    proc = trtsr("run", read_only / "locked.png", free / "open.jpg")
    line = one_error(proc, f"{read_only}: output folder is not writable", "1 input(s) not upscaled")
    assert line and (free / "open_x4.jpg").is_file() and sorted(p.name for p in read_only.iterdir()) == ["locked.png"]
    assert "1 of 2 failed" in proc.stderr
