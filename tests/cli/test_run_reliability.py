"""`trtsr run` against bad inputs and awkward situations, each run as a user runs it (a real process).

Every case: the expected exit status, one line naming the file and the problem, no traceback,
no partial or overwritten file, and the good input beside the bad one upscaled. Cases that are
valid but unusual (CMYK, 16-bit gray, palette with transparency, an animated GIF) must work.
Root (as CI runs) ignores file permissions, so an unreadable input and a read-only output folder
are simulated in-process (the open failing with EACCES; the folder reported not writable), as a
full disk is (a failing write).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).parents[1] / "data"


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "trtsr", "run", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def _good(folder: Path) -> Path:
    with Image.open(DATA / "0030.jpg") as img:
        img.crop((0, 0, 40, 32)).save(folder / "good.jpg")
    return folder / "good.jpg"


def _png(width: int, height: int, *, depth: int = 8, colour: int = 2, data: bytes = b"") -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b"")


def _animated_gif(path: Path) -> None:
    frames = [Image.new("RGB", (24, 20), (i * 80, 255 - i * 80, 40)) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)


def _palette_transparent(path: Path) -> None:
    with Image.open(DATA / "0014.jpg") as img:
        pal = img.convert("RGB").crop((0, 0, 30, 24)).quantize(16)
    pal.info["transparency"] = 0
    pal.save(path, transparency=0)


def _cmyk(path: Path) -> None:
    with Image.open(DATA / "0014.jpg") as img:
        img.convert("RGB").crop((0, 0, 30, 24)).convert("CMYK").save(path, "JPEG")


def _gray16(path: Path) -> None:
    ramp = (np.arange(30 * 24, dtype=np.uint32).reshape(24, 30) * 90).astype(np.uint16)
    Image.fromarray(ramp).save(path)


# name, how to make it, message (None: it must work), exit status
BAD_FILES = [
    ("missing.jpg", None, "file not found"),
    ("empty.png", lambda p: p.write_bytes(b""), "file is empty"),
    ("truncated.jpg", lambda p: p.write_bytes((DATA / "0030.jpg").read_bytes()[:2500]), "truncated or corrupt"),
    ("corrupt.png", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x13" * 300), "cannot decode|not an image"),
    ("notes.jpg", lambda p: p.write_text("these are my notes, not a photograph\n"), "not an image file"),
    ("zero.png", lambda p: p.write_bytes(_png(0, 0)), "cannot decode|not an image"),
    ("huge.png", lambda p: p.write_bytes(_png(100_000, 100_000, data=b"\0" * 10)), "more than the|too large"),
    ("folder.png", lambda p: p.mkdir(), "no images or videos in it"),
]


def _ctrl_c_reaches_python() -> None:
    """A suite started in the background (`nohup ... &`) hands its children SIGINT ignored, and Python then
    never raises KeyboardInterrupt; the child gets the default back, as from a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("name", "make", "message"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_a_bad_file_fails_alone(tmp_path, name, make, message):
    good, bad, out = _good(tmp_path), tmp_path / name, tmp_path / "out"
    if make is not None:
        make(bad)
    proc = _run(bad, good, "-o", out)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and name in errors[0], errors
    assert any(part in errors[0] for part in message.split("|")), errors[0]
    assert sorted(p.name for p in out.iterdir()) == ["good_x4.jpg"]  # the other input finished, nothing partial


UNUSUAL = [
    ("cmyk.jpg", _cmyk, "RGB", None),
    ("gray16.png", _gray16, "I;16", None),
    ("palette.png", _palette_transparent, "RGBA", None),
    ("animated.gif", _animated_gif, "RGB", "animated, 3 frames; upscaling frame 1 only"),
]


@pytest.mark.parametrize(("name", "make", "mode", "note"), UNUSUAL, ids=[c[0] for c in UNUSUAL])
def test_unusual_but_valid_files_work(tmp_path, name, make, mode, note):
    make(tmp_path / name)
    proc = _run(tmp_path / name, "-o", tmp_path / "out", "--format", "png")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    (result,) = (tmp_path / "out").iterdir()
    with Image.open(result) as img, Image.open(tmp_path / name) as src:
        assert img.mode.startswith(mode) and img.size == (src.size[0] * 4, src.size[1] * 4)
    if note is not None:
        notes = [line for line in proc.stderr.splitlines() if note in line]
        assert len(notes) == 1 and name in notes[0]


def test_a_missing_output_folder_is_created(tmp_path):
    proc = _run(_good(tmp_path), "-o", tmp_path / "a" / "b" / "c")
    assert proc.returncode == 0 and (tmp_path / "a" / "b" / "c" / "good_x4.jpg").is_file()


def test_an_output_folder_that_cannot_be_created(tmp_path):
    (tmp_path / "taken").write_text("a file, where the output folder would go")
    proc = _run(_good(tmp_path), "-o", tmp_path / "taken" / "out")
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(lines) == 1 and "taken" in lines[0] and "is a file" in lines[0]
    assert (tmp_path / "taken").read_text().startswith("a file")


def test_an_existing_output_is_kept_and_the_input_never_replaced(tmp_path):
    good = _good(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "good_x4.jpg").write_bytes(b"my earlier result")
    proc = _run(good, "-o", out)
    assert proc.returncode == 0 and "exists (pass --overwrite" in proc.stderr
    assert (out / "good_x4.jpg").read_bytes() == b"my earlier result"
    before = good.read_bytes()
    proc = _run(good, "-o", tmp_path, "--suffix", "")
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(lines) == 1 and "would replace the input" in lines[0]
    assert good.read_bytes() == before


def test_two_inputs_with_one_output(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = _good(tmp_path / "a"), _good(tmp_path / "b")
    proc = _run(first, second, "-o", tmp_path / "out")
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(lines) == 2 and all("would also be written from" in x for x in lines)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("options", "message"), [
    (["-g", "-1"], "guidance must be above 0"),
    (["--tile", "4"], "tile must be at least"),
    (["--format", "gif"], "unknown format"),
])
def test_bad_option_values(tmp_path, options, message):
    proc = _run(_good(tmp_path), "-o", tmp_path / "out", *options)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def _copy_engine(engine: Path, folder: Path) -> Path:
    target = folder / "m.engine"
    target.write_bytes(engine.read_bytes())
    (folder / "m.engine.json").write_text((engine.parent / (engine.name + ".json")).read_text())
    return target


@pytest.mark.slow
def test_a_corrupt_engine(engine, tmp_path):
    copy = _copy_engine(engine, tmp_path)
    data = bytearray(copy.read_bytes())
    data[100] ^= 0xFF
    copy.write_bytes(bytes(data))
    proc = _run(_good(tmp_path), "-e", copy, "-o", tmp_path / "out")
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(lines) == 1 and "m.engine" in lines[0] and "does not match its metadata" \
        in lines[0]


def test_metadata_of_another_engine(engine, tmp_path):
    copy = _copy_engine(engine, tmp_path)
    meta = json.loads((tmp_path / "m.engine.json").read_text())
    meta["engine_sha256"] = "0" * 64  # as if it described another build
    (tmp_path / "m.engine.json").write_text(json.dumps(meta))
    proc = _run(_good(tmp_path), "-e", copy, "-o", tmp_path / "out")
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(lines) == 1 and "does not match its metadata" in lines[0]


def test_an_engine_for_another_scale(engine, tmp_path):
    proc = _run(_good(tmp_path), "-e", engine, "-s", "2", "-o", tmp_path / "out")
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(lines) == 1 and "upscales x4, not x2" in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_full_disk_leaves_no_partial_output(tmp_path, monkeypatch):
    """In-process, with the image writer's file writes failing as a full disk makes them fail."""
    from typer.testing import CliRunner

    from trtsr.cli import app

    real_save = Image.Image.save

    def full_disk(self, fp, *args, **kwargs):
        if isinstance(fp, (str, os.PathLike)) and "out" in str(fp):
            Path(fp).write_bytes(b"\0" * 100)  # part of it lands, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full_disk)
    good = _good(tmp_path)
    result = CliRunner().invoke(app, ["run", str(good), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "No space left on device" in result.output and "Traceback" not in result.output
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def _interrupt_mid_run(source: Path, out: Path, *, after: float) -> None:
    """Ctrl-C `after` seconds into a real `trtsr run` of `source`: exit 130, one line, nothing left in `out`."""
    job = subprocess.Popen([sys.executable, "-m", "trtsr", "run", str(source), "-o", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=_ctrl_c_reaches_python)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:
        if "upscaling x4" in job.stderr.readline():
            break
    time.sleep(after)
    job.send_signal(signal.SIGINT)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]


def test_an_interrupt_mid_run_leaves_no_partial_file(tmp_path):
    with Image.open(DATA / "ADE_val_00000114.jpg") as img:
        img.convert("RGB").crop((0, 0, 300, 260)).save(tmp_path / "large.png")  # many tiles: seconds of work
    _interrupt_mid_run(tmp_path / "large.png", tmp_path / "out", after=1.0)


def test_an_interrupt_mid_video_leaves_no_partial_file(tmp_path):
    av = pytest.importorskip("av", reason="videos need the video extra (PyAV)")
    from fractions import Fraction

    with Image.open(DATA / "ADE_val_00000114.jpg") as img:
        photo = np.asarray(img.convert("RGB"))
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as container:  # 60 frames: tens of seconds of upscaling on a CPU
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for index in range(60):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(photo[index: index + 64, index: index + 96]),
                                               format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 24)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    _interrupt_mid_run(clip, tmp_path / "out", after=1.5)


def test_an_unreadable_input_fails_alone(tmp_path, monkeypatch):
    """In-process, with opening that one file failing as a file without read permission does."""
    from typer.testing import CliRunner

    from trtsr.cli import app

    real_open = Image.open
    locked = tmp_path / "locked.jpg"
    locked.write_bytes((DATA / "0030.jpg").read_bytes())

    def no_permission(fp, *args, **kwargs):
        if isinstance(fp, (str, os.PathLike)) and Path(fp).name == "locked.jpg":
            raise PermissionError(errno.EACCES, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", no_permission)
    good = _good(tmp_path)
    result = CliRunner().invoke(app, ["run", str(locked), str(good), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if "error:" in line]
    assert errors == [f"error: {locked}: cannot read the file: permission denied"]
    assert (tmp_path / "out" / "good_x4.jpg").is_file() and not (tmp_path / "out" / "locked_x4.jpg").exists()


def test_a_read_only_output_folder_fails_before_any_work(tmp_path, monkeypatch):
    """In-process, with the folder reported not writable, as os.access reports a read-only folder."""
    from typer.testing import CliRunner

    from trtsr.cli import app

    out = tmp_path / "out"
    out.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False if Path(path) == out
                        else real_access(path, mode, *a, **k))
    good = _good(tmp_path)
    result = CliRunner().invoke(app, ["run", str(good), "-o", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{out}: output folder is not writable" in result.output
    assert list(out.iterdir()) == []
