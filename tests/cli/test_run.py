"""`trtsr run` on real images through ONNX Runtime with the shipped default graph."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import png
import pytest
from PIL import Image

DATA = Path(__file__).parents[1] / "data"


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "trtsr", "run", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Every sample upscaled once by the CLI into one folder."""
    folder, sources = tmp_path_factory.mktemp("run"), tmp_path_factory.mktemp("sources")
    # the two largest samples cropped (in their own modes: grey, and RGBA with real transparency) to keep the
    # everyday tier short; the 16-bit PNG whole (Pillow would read it as 8-bit)
    for name, box in (("00017_gray.png", (0, 0, 240, 180)), ("children-alpha.png", (150, 60, 390, 240))):
        with Image.open(DATA / name) as img:
            img.crop(box).save(sources / name)
    inputs = [DATA / "0014.jpg", sources / "00017_gray.png", DATA / "wolf_gray.jpg", sources / "children-alpha.png",
              DATA / "tree_alpha_16bit.png"]
    proc = _run(*inputs, "-o", folder, "--format", "png")
    assert proc.returncode == 0, proc.stderr
    assert "upscaling x4, PadCFG w 2.2, with onnxruntime-cpu" in proc.stderr
    return folder, proc, sources


@pytest.mark.parametrize(
    ("name", "mode", "size"),
    [
        ("0014_x4.png", "RGB", (716, 716)),
        ("00017_gray_x4.png", "L", (960, 720)),
        ("wolf_gray_x4.png", "L", (944, 944)),
        ("children-alpha_x4.png", "RGBA", (960, 720)),
    ],
)
def test_modes_and_sizes(outputs, name, mode, size):
    with Image.open(outputs[0] / name) as img:
        assert img.mode == mode and img.size == size


def test_alpha_is_upscaled(outputs):
    with Image.open(outputs[0] / "children-alpha_x4.png") as out, Image.open(outputs[2] / "children-alpha.png") as src:
        assert src.getextrema()[3][0] < 255  # the crop holds transparency
        alpha = np.asarray(out)[:, :, 3].astype(float)
        expected = np.asarray(src.getchannel("A").resize(out.size, Image.Resampling.BICUBIC)).astype(float)
    assert np.abs(alpha - expected).mean() < 1.0


def test_16bit_stays_16bit(outputs):
    width, height, rows, info = png.Reader(filename=str(outputs[0] / "tree_alpha_16bit_x4.png")).asDirect()
    assert (width, height) == (1368, 1024) and info["bitdepth"] == 16 and info["alpha"]
    data = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
    assert (data % 257 != 0).any()


def test_one_line_per_file(outputs):
    lines = outputs[1].stdout.strip().splitlines()
    assert len(lines) == 5 and all(" -> " in line for line in lines)


def test_bad_file_fails_alone(tmp_path):
    shutil.copy(DATA / "0014.jpg", tmp_path / "good.jpg")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "empty.jpg").write_bytes(b"")
    proc = _run(tmp_path, "-o", tmp_path / "out")
    assert proc.returncode == 1
    assert (tmp_path / "out" / "good_x4.jpg").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good_x4.jpg"]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and any("bad.png" in e for e in errors) and any("empty.jpg" in e for e in errors)
    assert "Traceback" not in proc.stderr


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    shutil.copy(DATA / "0014.jpg", tmp_path / "a.jpg")
    (tmp_path / "a_x4.jpg").write_bytes(b"keep me")
    proc = _run(tmp_path / "a.jpg")
    assert proc.returncode == 0 and "exists" in proc.stderr
    assert (tmp_path / "a_x4.jpg").read_bytes() == b"keep me"
    proc = _run(tmp_path / "a.jpg", "--overwrite")
    assert proc.returncode == 0
    with Image.open(tmp_path / "a_x4.jpg") as img:
        assert img.size == (716, 716)


def test_input_is_never_overwritten(tmp_path):
    shutil.copy(DATA / "0014.jpg", tmp_path / "a.jpg")
    before = (tmp_path / "a.jpg").read_bytes()
    proc = _run(tmp_path / "a.jpg", "--suffix", "", "--overwrite")
    assert proc.returncode == 1 and "would replace the input" in proc.stderr
    assert (tmp_path / "a.jpg").read_bytes() == before


def test_glob_and_no_match(tmp_path):
    for name in ("x1.jpg", "x2.jpg"):
        shutil.copy(DATA / "0014.jpg", tmp_path / name)
    proc = _run(str(tmp_path / "x*.jpg"), "-o", tmp_path / "o", "--no-padcfg", "--format", "webp")
    if proc.returncode != 0 and "export" in proc.stderr:
        pytest.fail(proc.stderr)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["x1_x4.webp", "x2_x4.webp"]
    proc = _run(str(tmp_path / "nothing*.png"))
    assert proc.returncode == 1 and "no file matches" in proc.stderr


def test_python_api_gives_the_same_pixels_as_the_cli(tmp_path):
    from trtsr import Upscaler

    proc = _run(DATA / "0030.jpg", "-o", tmp_path / "cli.png")
    assert proc.returncode == 0, proc.stderr
    with Image.open(DATA / "0030.jpg") as img, Upscaler(backend="onnxruntime") as up:
        api = np.asarray(up.upscale(img.convert("RGB")))
    with Image.open(tmp_path / "cli.png") as cli:
        np.testing.assert_array_equal(np.asarray(cli), api)


def test_jpeg_output_of_rgba_is_flattened(tmp_path):
    with Image.open(DATA / "children-alpha.png") as img:
        img.crop((200, 100, 296, 164)).save(tmp_path / "alpha.png")  # a part with real transparency
    with Image.open(tmp_path / "alpha.png") as img:
        assert img.mode == "RGBA" and img.getextrema()[3][0] < 255
    proc = _run(tmp_path / "alpha.png", "-o", tmp_path / "flat.jpg")
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "flat.jpg") as img:
        assert img.mode == "RGB" and img.size == (384, 256)


def test_two_inputs_with_one_output_both_fail_before_any_work(tmp_path):
    """Same file name in two folders into one output folder, and a.jpg + a.png with --format png."""
    first, second, out_dir = tmp_path / "A", tmp_path / "B", tmp_path / "out"
    for folder in (first, second):
        folder.mkdir()
        shutil.copy(DATA / "0014.jpg", folder / "img.jpg")
    shutil.copy(DATA / "0030.jpg", tmp_path / "a.jpg")
    Image.open(DATA / "0014.jpg").save(tmp_path / "a.png")
    Image.open(DATA / "0030.jpg").crop((0, 0, 40, 32)).save(tmp_path / "other.jpg")
    proc = _run(first, second, tmp_path / "a.jpg", tmp_path / "a.png", tmp_path / "other.jpg", "-o", out_dir,
                "--format", "png")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 4 and all("would also be written from" in line for line in errors)
    assert "Traceback" not in proc.stderr
    # nothing of the clashing inputs was written; the input that clashes with none was upscaled
    assert sorted(p.name for p in out_dir.iterdir()) == ["other_x4.png"]
    assert "4 of 5 failed" in proc.stderr


def _crop_to(path, box=(0, 0, 40, 32), name="0030.jpg"):
    with Image.open(DATA / name) as img:
        img.crop(box).save(path)
    return path


def _one_error_line(proc):
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.parametrize(("options", "message"), [
    (["-g", "-1"], "guidance must be above 0"),
    (["-g", "11"], "guidance must be above 0 and at most 10"),
    (["--overlap", "-5"], "overlap must be 0 or more"),
    (["--overlap", "500", "--tile", "64"], "more than half the 64-pixel tile"),
    (["--scale", "5"], "scale must be one of"),
    (["-m", "no-such-model"], "no such model file or folder"),
    (["-e", "missing.engine"], "engine not found"),
])
def test_bad_options_fail_before_any_work(tmp_path, options, message):
    image = _crop_to(tmp_path / "in.jpg")
    proc = _run(image, "-o", tmp_path / "out", *options, cwd=tmp_path)
    assert message in _one_error_line(proc)
    assert "loading" not in proc.stderr and "exporting" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_an_engine_backend_without_a_gpu_fails_before_building(tmp_path, private_cache):
    pytest.importorskip("tensorrt_rtx", reason="the rtx extra provides the engine backend")
    from trtsr.gpu import detect_gpu

    if detect_gpu() is not None:
        pytest.skip("a GPU is visible: the engine would build and run")
    proc = _run(_crop_to(tmp_path / "in.jpg"), "-o", tmp_path / "out", "-b", "tensorrt-rtx")
    assert "none is visible" in _one_error_line(proc)
    assert not list(private_cache.rglob("*.engine"))


def test_an_unwritable_output_folder_fails_before_loading(tmp_path):
    if os.geteuid() == 0:
        blocker = tmp_path / "blocker"
        blocker.write_text("a file where the output folder should go")
        out = blocker / "out"
        expected = "is a file"
    else:  # pragma: no cover - CI runs as root
        out = tmp_path / "ro"
        out.mkdir()
        out.chmod(0o500)
        expected = "not writable"
    proc = _run(_crop_to(tmp_path / "in.jpg"), "-o", out)
    assert expected in _one_error_line(proc)
    assert "upscaling x4" not in proc.stderr


def test_quality_recursive_and_input_lists(tmp_path):
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    top = _crop_to(tree / "top.jpg")
    deep = _crop_to(tree / "a" / "b" / "deep.jpg", box=(20, 20, 60, 52))
    # -r mirrors the sub-folders in the output folder
    proc = _run(tree, "-r", "-o", tmp_path / "r", "-q", "30")
    assert proc.returncode == 0, proc.stderr
    low = tmp_path / "r" / "a" / "b" / "deep_x4.jpg"
    assert low.is_file() and (tmp_path / "r" / "top_x4.jpg").is_file()
    # without -r a folder's sub-folders are not searched
    proc = _run(tree, "-o", tmp_path / "flat")
    assert proc.returncode == 0 and not list((tmp_path / "flat").rglob("deep*"))
    # --quality changes the JPEG: 30 is smaller than the default 95
    proc = _run(deep, "-o", tmp_path / "q95.jpg")
    assert proc.returncode == 0 and (tmp_path / "q95.jpg").stat().st_size > low.stat().st_size
    # @LIST and - (standard input)
    listing = tmp_path / "todo.txt"
    listing.write_text(f"# inputs\n{top}\n\n{deep}\n")
    proc = _run(f"@{listing}", "-o", tmp_path / "listed")
    assert proc.returncode == 0 and sorted(p.name for p in (tmp_path / "listed").iterdir()) == [
        "deep_x4.jpg", "top_x4.jpg"]
    proc = subprocess.run([sys.executable, "-m", "trtsr", "run", "-", "-o", str(tmp_path / "piped")],
                          input=f"{deep}\n", capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and [p.name for p in (tmp_path / "piped").iterdir()] == ["deep_x4.jpg"]


def test_bench_writes_into_the_current_folder_by_default(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "trtsr", "bench", "-m", "default", "--size", "64x64", "-b",
                           "onnxruntime", "--padcfg", "--repeats", "1", "--warmup", "1", "--name", "here"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here.json", "here.png"]


def test_info_on_a_photo_says_what_the_file_is_not(tmp_path):
    photo = _crop_to(tmp_path / "photo.jpg")
    proc = subprocess.run([sys.executable, "-m", "trtsr", "info", str(photo)], capture_output=True, text=True,
                          timeout=300)
    assert "not an engine with its metadata" in _one_error_line(proc)


def test_the_tests_cache_privately(private_cache):
    from trtsr.paths import cache_dir

    assert cache_dir() == private_cache


def test_output_rules(tmp_path):
    one, two = _crop_to(tmp_path / "one.jpg"), _crop_to(tmp_path / "two.jpg", box=(40, 40, 80, 72))
    # a trailing slash is a folder, even with a dot in its name and not there yet
    proc = _run(one, two, "-o", f"{tmp_path / 'out' / 'g1.0'}/")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "g1.0").iterdir()) == ["one_x4.jpg", "two_x4.jpg"]
    # a name without an image extension is a folder too
    proc = _run(one, "-o", tmp_path / "z.v2")
    assert proc.returncode == 0 and (tmp_path / "z.v2" / "one_x4.jpg").is_file()
    # an image extension trtsr cannot write is an error, not a folder
    assert "not .bmp" in _one_error_line(_run(one, "-o", tmp_path / "y.bmp"))
    assert not (tmp_path / "y.bmp").exists()
    # a file name with several inputs is an error
    assert "must be a folder" in _one_error_line(_run(one, two, "-o", tmp_path / "both.png"))


@pytest.mark.slow
def test_random_weights_need_an_explicit_flag(tmp_path):
    image = _crop_to(tmp_path / "in.jpg")
    line = _one_error_line(_run(image, "-o", tmp_path / "out", "-m", "tiny"))
    assert "seeded random weights" in line and "--random-weights" in line
    assert not (tmp_path / "out").exists()
    proc = _run(image, "-o", tmp_path / "out", "-m", "tiny", "--random-weights", "--no-padcfg")
    assert proc.returncode == 0, proc.stderr
    assert "warning: tiny has seeded random weights" in proc.stderr
    assert "cached the tiny graph:" in proc.stderr and " MB in " in proc.stderr


def test_each_file_reports_its_own_time(tmp_path):
    small = _crop_to(tmp_path / "a-small.jpg", box=(0, 0, 24, 24))
    with Image.open(DATA / "ADE_val_00000114.jpg") as img:
        img.convert("RGB").crop((0, 0, 300, 260)).save(tmp_path / "b-large.jpg")  # tiled: many tiles
    proc = _run(small, tmp_path / "b-large.jpg", "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    seconds = {}
    for line in proc.stdout.splitlines():
        name = Path(line.split(" -> ")[0]).name
        seconds[name] = float(line.rsplit(", ", 1)[1].rstrip(" s)"))
    # the small file's time is its own, not the large one's that ran while it was being written
    assert seconds["a-small.jpg"] < seconds["b-large.jpg"] / 3, seconds


def test_the_tile_bar_counts_megapixels_as_well_as_tiles():
    from trtsr.cli.run_cmd import tile_label

    # a 3000x2000 input at x4 is 96 output megapixels; 10 of 40 tiles are a quarter of them
    assert tile_label("scan.tif", 10, 40, 3000 * 2000 * 16) == "scan.tif: 24.0/96.0 MP, tiles"
    assert tile_label("a.png", 0, 0, 1_000_000) == "a.png: 0.0/1.0 MP, tiles"


def test_the_torch_backend_writes_what_onnxruntime_writes_and_says_why(tmp_path):
    """`-b torch` on a CPU (fp32, standing in for CUDA): the same pixels as the shipped graph, and the line
    naming the backend says why it runs."""
    pytest.importorskip("torch", reason="the torch backend needs the export extra")
    source = tmp_path / "crop.png"
    with Image.open(DATA / "0030.jpg") as img:
        img.convert("RGB").crop((10, 10, 70, 54)).save(source)
    torch_run = _run(source, "-o", tmp_path / "t.png", "-b", "torch")
    assert torch_run.returncode == 0, torch_run.stderr
    assert "with torch " in torch_run.stderr and ": asked for with -b torch; no CUDA device" in torch_run.stderr
    graph_run = _run(source, "-o", tmp_path / "o.png", "-b", "onnxruntime")
    assert ": asked for with -b onnxruntime" in graph_run.stderr
    with Image.open(tmp_path / "t.png") as a, Image.open(tmp_path / "o.png") as b:
        assert a.size == (240, 176) and np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int)).max() <= 1


def test_compile_is_for_the_torch_backend(tmp_path):
    proc = _run(DATA / "0014.jpg", "-o", tmp_path / "x.png", "-b", "onnxruntime", "--compile")
    assert proc.returncode == 1 and "error: --compile is for the torch backend, not onnxruntime" in proc.stderr
    assert not (tmp_path / "x.png").exists()
