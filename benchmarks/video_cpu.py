"""Frames per second of `trtsr run` on a video: a clip made from a real photograph, decoded, upscaled and encoded.

    python benchmarks/video_cpu.py -o benchmarks/results/video-cpu.json [--size 160x90] [--frames 48] [-b onnxruntime]

The clip is `--frames` crops of tests/data/0030.jpg moving one pixel a frame, at 24 fps, H.264 with an AAC
tone, written with PyAV; it goes through `trtsr.pipeline.video.upscale_video` (what `trtsr run clip.mp4`
calls) with the default model at x4, H.264 out. The JSON names the device, versions, command, the
frames per second and the seconds; `--repeats` runs, the median kept.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_clip(path: Path, width: int, height: int, frames: int, fps: int = 24) -> None:
    import av
    from PIL import Image

    with Image.open(ROOT / "tests" / "data" / "0030.jpg") as img:
        photo = np.asarray(img.convert("RGB").resize((width + frames, height + frames)))
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=48000)
        for index in range(frames):
            crop = np.ascontiguousarray(photo[index: index + height, index: index + width])
            frame = av.VideoFrame.from_ndarray(crop, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        samples = int(48000 * frames / fps)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)[None, :]
        size = sound.codec_context.frame_size or 1024
        for at in range(0, samples - size + 1, size):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, at:at + size]), format="fltp",
                                               layout="mono")
            chunk.sample_rate, chunk.pts = 48000, at
            for packet in sound.encode(chunk):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--size", default="160x90", help="input WxH")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("-b", "--backend", default="onnxruntime")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    from trtsr.measure import environment
    from trtsr.pipeline import RunRequest, Upscaler
    from trtsr.pipeline.video import upscale_video

    runs = []
    with tempfile.TemporaryDirectory() as tmp, Upscaler.from_request(RunRequest(backend=args.backend)) as up:
        clip = Path(tmp) / "clip.mp4"
        make_clip(clip, width, height, args.frames)
        for index in range(args.repeats):
            report = upscale_video(up, clip, Path(tmp) / f"out{index}.mp4")
            runs.append({"seconds": round(report.seconds, 3), "fps": round(report.fps, 2), "frames": report.frames})
        backend = up.backend_name
    result = {
        "what": "trtsr run on a video: decode, upscale x4 (default model), encode H.264; audio copied",
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "backend": backend,
        "input": f"{width}x{height}", "output": f"{width * 4}x{height * 4}", "frames": args.frames,
        "median_fps": statistics.median(r["fps"] for r in runs), "runs": runs, **environment(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("input", "output", "frames", "median_fps")}))


if __name__ == "__main__":
    main()
