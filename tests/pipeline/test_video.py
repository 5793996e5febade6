"""`trtsr run clip.mp4`: real clips made with PyAV, upscaled with the default model on the CPU.

Every frame, the frame rate, the duration and the audio come through; --start/--duration pick a part;
a corrupt or truncated file is one line or a written part; Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av", reason="videos need the video extra (PyAV)")


DATA = Path(__file__).parents[1] / "data"
FPS, FRAMES, W, H = 12, 12, 48, 32


def _frames(count: int, bits: int = 8) -> list[np.ndarray]:
    """Crops of a real photograph, moving one pixel a frame, so the clip has real texture and motion."""
    from PIL import Image

    with Image.open(DATA / "0030.jpg") as img:
        photo = np.asarray(img.convert("RGB"))
    frames = [np.ascontiguousarray(photo[40 + i: 40 + i + H, 60 + i: 60 + i + W]) for i in range(count)]
    return [f.astype(np.uint16) * 257 for f in frames] if bits > 8 else frames


def make_clip(path: Path, *, frames: int = FRAMES, audio: bool = True, codec: str = "libx264",
              pix_fmt: str = "yuv420p") -> Path:
    """A clip with `frames` frames at FPS, and one second-long AAC (Opus for .webm) tone beside it."""
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=FPS)
        video.width, video.height, video.pix_fmt = W, H, pix_fmt
        sound = out.add_stream("libopus" if path.suffix == ".webm" else "aac", rate=48000) if audio else None
        ten_bit = "10" in pix_fmt
        for index, pixels in enumerate(_frames(frames, 10 if ten_bit else 8)):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb48le" if ten_bit else "rgb24").reformat(
                format=pix_fmt)
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            samples = int(48000 * frames / FPS)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)[None, :]
            size = sound.codec_context.frame_size or 960
            for at in range(0, samples - size + 1, size):  # the encoder's own frame size, one frame at a time
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, at:at + size]), format="fltp",
                                                   layout="mono")
                chunk.sample_rate, chunk.pts = 48000, at
                for packet in sound.encode(chunk):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return path


def _streams(path: Path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video)]
    with av.open(str(path)) as container:
        audio = [s for s in container.streams.audio]
        audio_seconds = [float(s.duration * s.time_base) if s.duration else None for s in audio]
        return {"frames": decoded, "rate": container.streams.video[0].average_rate,
                "pix_fmt": container.streams.video[0].codec_context.format.name,
                "seconds": container.duration / 1e6, "audio": [s.codec_context.name for s in audio],
                "audio_seconds": audio_seconds}


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trtsr", "run", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def test_a_clip_keeps_every_frame_its_rate_duration_and_audio(tmp_path, upscaler):
    clip = make_clip(tmp_path / "clip.mp4")
    proc = _run(clip, "-o", tmp_path / "out/")
    assert proc.returncode == 0, proc.stderr
    target = tmp_path / "out" / "clip_x4.mp4"
    got, source = _streams(target), _streams(clip)
    assert len(got["frames"]) == FRAMES and got["frames"][0].shape == (H * 4, W * 4, 3)
    assert got["rate"] == FPS and abs(got["seconds"] - source["seconds"]) < 0.1
    assert got["audio"] == ["aac"] and abs(got["audio_seconds"][0] - source["audio_seconds"][0]) < 0.05
    # each frame is the model's upscale of its own input frame (up to the encoder's loss)
    for index in (0, FRAMES // 2, FRAMES - 1):
        want = upscaler.upscale(source["frames"][index])
        assert _psnr(got["frames"][index], want) > 30, f"frame {index}"
    assert f"{FRAMES} frames" in proc.stdout and "fps" in proc.stdout


def test_start_and_duration_upscale_a_part_with_its_audio(tmp_path):
    clip = make_clip(tmp_path / "clip.mkv")
    proc = _run(clip, "--start", "0.25", "--duration", "0.5", "-o", tmp_path / "part.mkv")
    assert proc.returncode == 0, proc.stderr
    got = _streams(tmp_path / "part.mkv")
    assert len(got["frames"]) == round(0.5 * FPS) and abs(got["seconds"] - 0.5) < 0.1
    assert got["audio"] == ["aac"]


def test_ten_bit_stays_ten_bit_and_webm_gets_vp9(tmp_path):
    from trtsr import Upscaler
    from trtsr.pipeline.video import upscale_video

    deep = make_clip(tmp_path / "deep.mkv", audio=False, pix_fmt="yuv420p10le")
    web = make_clip(tmp_path / "web.webm", frames=4, codec="libvpx-vp9")
    with Upscaler(backend="onnxruntime") as up:
        report = upscale_video(up, deep, tmp_path / "deep_x4.mkv")
        assert report.frames == FRAMES and report.codec == "libx264"
        assert upscale_video(up, web, tmp_path / "web_x4.webm").codec == "libvpx-vp9"
    assert _streams(tmp_path / "deep_x4.mkv")["pix_fmt"] == "yuv420p10le"
    web_out = _streams(tmp_path / "web_x4.webm")
    assert len(web_out["frames"]) == 4 and web_out["audio"] == ["opus"]


def test_webm_from_aac_audio_reencodes_it_to_opus(tmp_path):
    """WebM holds no AAC: the audio is re-encoded to Opus, whole (the part's length) and at its time."""
    clip = make_clip(tmp_path / "clip.mp4")
    assert _streams(clip)["audio"] == ["aac"]
    proc = _run(clip, "-s", "2", "-o", tmp_path / "web.webm")
    assert proc.returncode == 0 and "not copied" not in proc.stderr, proc.stderr
    got = _streams(tmp_path / "web.webm")
    assert got["audio"] == ["opus"] and len(got["frames"]) == FRAMES
    with av.open(str(clip)) as source, av.open(str(tmp_path / "web.webm")) as written:
        before = sum(frame.samples for frame in source.decode(audio=0))
        after = [frame for frame in written.decode(audio=0)]
    assert abs(sum(frame.samples for frame in after) - before) < 960 and after[0].time < 0.03
    part = _run(clip, "-s", "2", "--start", "0.25", "--duration", "0.5", "-o", tmp_path / "part.webm")
    assert part.returncode == 0, part.stderr
    with av.open(str(tmp_path / "part.webm")) as written:
        seconds = sum(frame.samples for frame in written.decode(audio=0)) / 48000
    assert abs(seconds - 0.5) < 0.05


def test_av1_is_quiet_without_verbose(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=2, audio=False)
    proc = _run(clip, "-s", "2", "--codec", "av1", "-o", tmp_path / "a.mp4")
    assert proc.returncode == 0, proc.stderr
    assert "Svt[" not in proc.stderr and (tmp_path / "a.mp4").is_file()


def test_frames_through_the_python_api_one_at_a_time(upscaler):
    from trtsr.pipeline.video import upscale_frames

    frames = iter(_frames(3))
    out = upscale_frames(upscaler, frames)
    first = next(out)  # lazy: one frame in, one out
    assert first.shape == (H * 4, W * 4, 3) and first.dtype == np.uint8
    assert len(list(out)) == 2


def test_a_corrupt_or_unreadable_video_is_one_line_and_the_other_inputs_go_on(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 12)
    photo = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(_frames(1)[0]).save(photo)
    proc = _run(junk, photo, "-o", tmp_path / "out/")
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(lines) == 1 and "junk.mp4" in lines[0] and "cannot read the video" in lines[0]
    assert (tmp_path / "out" / "photo_x4.png").is_file() and not (tmp_path / "out" / "junk_x4.mp4").exists()
    assert "Traceback" not in proc.stderr


def test_a_truncated_video_is_written_up_to_where_it_ends_and_says_so(tmp_path):
    clip = make_clip(tmp_path / "clip.mkv", frames=24)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    proc = _run(cut, "-o", tmp_path / "out/")
    assert proc.returncode == 0, proc.stderr
    frames = _streams(tmp_path / "out" / "cut_x4.mkv")["frames"]
    assert 0 < len(frames) < 24
    assert f"{len(frames)} of the 24 frames" in proc.stderr and "truncated or corrupt" in proc.stderr


def test_ctrl_c_leaves_no_partial_file(tmp_path, upscaler):
    from trtsr.pipeline.video import upscale_video

    clip = make_clip(tmp_path / "clip.mp4")

    def interrupt(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_video(upscaler, clip, tmp_path / "out" / "clip_x4.mp4", progress=interrupt)
    assert list((tmp_path / "out").iterdir()) == []  # neither the output nor its temporary file


@pytest.mark.parametrize(("args", "message"), [
    (["--codec", "mpeg2"], "--codec must be one of h264, h265, hevc, vp9, av1"),
    (["--codec", "vp9", "-o", "{tmp}/x.mov"], "vp9 does not go into .mov files"),
    (["--crf", "99"], "--crf for h264 must be 0 to 51"),
    (["--start", "-1"], "--start must be 0 or more"),
    (["--duration", "0"], "--duration must be above 0"),
    (["--start", "5"], "past the end of the video"),
    (["-o", "{tmp}/x.png"], "-o names a .png file for a video"),
], ids=["codec", "container", "crf", "start", "duration", "past-end", "image-name"])
def test_bad_video_options_are_one_line_before_any_work(tmp_path, args, message):
    clip = make_clip(tmp_path / "clip.mp4", frames=4)
    proc = _run(clip, *[a.format(tmp=tmp_path) for a in args])
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(lines) == 1 and message in lines[0], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # nothing written


def test_video_options_without_a_video_say_so(tmp_path):
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.fromarray(_frames(1)[0]).save(photo)
    proc = _run(photo, "--crf", "20")
    assert proc.returncode == 0 and "warning: --crf applies to videos; no video among the inputs" in proc.stderr


def test_without_the_video_extra_a_video_is_one_line(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=2)
    code = ("import sys; sys.modules['av'] = None; sys.argv = ['trtsr', 'run', sys.argv[1]]\n"
            "from trtsr.cli import run; run()")
    proc = subprocess.run([sys.executable, "-c", code, str(clip)], capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(lines) == 1 and "video" in lines[0] and "trtsr[video]" in lines[0], \
        proc.stderr
