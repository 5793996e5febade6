"""Video: decode, upscale and encode a clip in one pass, with bounded memory (the `video` extra: PyAV).

    decode (a thread)  ->  upscale (the caller's thread, one frame at a time)  ->  encode and mux (a thread)

The decoder runs ahead and the encoder behind through queues of a few frames each, so memory does
not grow with the clip's length. Audio and subtitle packets are copied untouched, in the order they
come, with their timestamps shifted by `--start`. Frame timestamps, the frame rate and the colour
range, space, primaries and transfer are kept; a rotated clip (a display matrix) is turned upright,
as FFmpeg does when it transcodes. 10-bit input is decoded to 16-bit RGB and encoded 10-bit where the
codec takes it (H.264, H.265, AV1); 8-bit input is encoded yuv420p. The output is written to a
temporary file beside the target and renamed at the end: an interrupted or failed run leaves nothing.
A packet that fails to decode is counted and skipped (its time shows the frame before it); the rest of
the clip is still written, and the report lists the skipped ones.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from trtsr.errors import MissingDependencyError, TrtsrError

log = logging.getLogger(__name__)

# codec names users type -> FFmpeg encoders in PyAV's wheel
CODECS = {"h264": "libx264", "h265": "libx265", "hevc": "libx265", "vp9": "libvpx-vp9", "av1": "libsvtav1"}
# what a container gets without --codec
DEFAULT_CODEC = {".mp4": "h264", ".mkv": "h264", ".mov": "h264", ".webm": "vp9"}
# constant-quality default per encoder (lower is better): visually lossless for an upscaler's output
DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libvpx-vp9": 24, "libsvtav1": 28}
MAX_CRF = {"libx264": 51, "libx265": 51, "libvpx-vp9": 63, "libsvtav1": 63}
TEN_BIT = ("libx264", "libx265", "libsvtav1")  # encoders that take yuv420p10le here
# containers each codec can go into
CONTAINERS = {"libx264": (".mp4", ".mkv", ".mov"), "libx265": (".mp4", ".mkv", ".mov"),
              "libvpx-vp9": (".webm", ".mkv", ".mp4"), "libsvtav1": (".webm", ".mkv", ".mp4")}
QUEUE_FRAMES = 4  # decoded frames waiting, and upscaled frames waiting to be encoded
# Audio a WebM file can hold; any other audio is re-encoded to Opus for a .webm output.
WEBM_AUDIO = ("opus", "vorbis")
OPUS_RATE = 48000


def require_av():
    try:
        import av
    except ImportError:
        raise MissingDependencyError("upscaling video files", "video") from None
    av.logging.set_level(av.logging.ERROR)
    if not log.isEnabledFor(logging.INFO):  # without -v: SVT-AV1 writes its whole configuration to stderr
        os.environ.setdefault("SVT_LOG", "1")  # its errors only
    return av


@dataclasses.dataclass(frozen=True)
class VideoSettings:
    """How a video is encoded and which part of it is upscaled.

    Fields:
        codec: h264, h265, vp9 or av1; None = the container's default (h264; vp9 for .webm).
        crf: constant quality, lower is better; None = the codec's default (18 for h264).
        start, duration: seconds; None = from the beginning / to the end.
    """

    codec: str | None = None
    crf: int | None = None
    start: float | None = None
    duration: float | None = None

    def encoder(self, target: Path) -> str:
        """The FFmpeg encoder for `target`, checked against its container: one line when it does not fit."""
        suffix = target.suffix.lower()
        name = self.codec or DEFAULT_CODEC.get(suffix, "h264")
        if name not in CODECS:
            raise TrtsrError(f"--codec must be one of {', '.join(CODECS)}, got {name!r}")
        encoder = CODECS[name]
        if suffix not in CONTAINERS[encoder]:
            raise TrtsrError(f"{name} does not go into {suffix} files; use {', '.join(CONTAINERS[encoder])} or "
                             "another --codec", path=target)
        crf = self.crf
        if crf is not None and not 0 <= crf <= MAX_CRF[encoder]:
            raise TrtsrError(f"--crf for {name} must be 0 to {MAX_CRF[encoder]}, got {crf}")
        return encoder

    def check(self) -> None:
        if self.start is not None and self.start < 0:
            raise TrtsrError(f"--start must be 0 or more seconds, got {self.start:g}")
        if self.duration is not None and self.duration <= 0:
            raise TrtsrError(f"--duration must be above 0 seconds, got {self.duration:g}")


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, read without decoding it (`probe`)."""

    width: int
    height: int
    rate: Fraction | None  # frames per second
    frames: int  # as the container says (0: unknown)
    seconds: float | None
    bits: int  # 8, or 10 and up
    rotation: int  # degrees the display matrix turns it
    audio: int
    subtitles: int


def probe(path: str | Path) -> VideoInfo:
    """The video's size, rate, length and streams; one line naming the file when it is not a readable video."""
    av = require_av()
    path = Path(path)
    if not path.is_file():
        raise TrtsrError("file not found", path=path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise TrtsrError("no video stream in this file", path=path)
            stream = container.streams.video[0]
            rotation = 0
            for frame in container.decode(stream):  # the first frame carries the display matrix
                rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360
                break
            else:
                raise TrtsrError("the video has no frame that decodes (empty, truncated or corrupt)", path=path)
            seconds = (float(stream.duration * stream.time_base) if stream.duration
                       else container.duration / 1e6 if container.duration else None)
            pix_fmt = stream.codec_context.format.name if stream.codec_context.format else "yuv420p"
            bits = 10 if any(tag in pix_fmt for tag in ("p10", "p12", "p16")) else 8
            return VideoInfo(stream.codec_context.width, stream.codec_context.height,
                             stream.average_rate or stream.guessed_rate, int(stream.frames or 0), seconds, bits,
                             rotation, len(container.streams.audio), len(container.streams.subtitles))
    except TrtsrError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise TrtsrError(f"cannot read the video ({_first_line(exc)})", path=path) from None


@dataclasses.dataclass
class VideoReport:
    source: str
    target: str
    frames: int
    seconds: float
    size_in: tuple[int, int]
    size_out: tuple[int, int]
    codec: str
    copied_streams: int
    skipped: list[str]  # packets that failed to decode: "at 1.23 s: reason"
    expected: int = 0  # frames the container announces in the chosen part (0: unknown)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def upscale_frames(upscaler, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Each frame (an HxWx3 uint8 or uint16 array) upscaled, lazily: for your own decode and encode loop."""
    for frame in frames:
        yield upscaler.upscale(frame)


_END = object()


class _Worker(threading.Thread):
    """A daemon thread whose exception is kept for the caller."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._work, self.error = target, None

    def run(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self.error = exc


def _put(box: queue.Queue, item, going: Callable[[], bool]) -> bool:
    """Put while `going()` holds (the run goes on, or the consumer is alive); False once it does not."""
    while going():
        try:
            box.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def upscale_video(upscaler, source: str | Path, target: str | Path, settings: VideoSettings = VideoSettings(), *,
                  overwrite: bool = False, progress: Callable[[int, int], None] | None = None) -> VideoReport:
    """Upscale the video `source` into `target` (its container from the extension) with `upscaler`.

    `progress(done, total)` after each frame (total 0 when the container does not say). Raises TrtsrError,
    one line, for a file that is not a readable video, an option the codec or container refuses, or an
    existing target without `overwrite`.
    """
    from trtsr.files import atomic_path

    av = require_av()
    source, target = Path(source), Path(target)
    settings.check()
    logging.getLogger("libav").setLevel(logging.CRITICAL)  # FFmpeg's own lines; what matters is reported below
    encoder = settings.encoder(target)
    info = probe(source)
    if target.exists() and not overwrite:
        raise TrtsrError("exists (pass --overwrite to replace it)", path=target)
    start = settings.start or 0.0
    end = None if settings.duration is None else start + settings.duration
    if info.seconds is not None and start >= info.seconds:
        raise TrtsrError(f"--start {start:g} s is past the end of the video ({info.seconds:.2f} s)", path=source)
    ten_bit = info.bits > 8 and encoder in TEN_BIT
    turned = info.rotation in (90, 270)
    width, height = (info.height, info.width) if turned else (info.width, info.height)
    scale = upscaler.scale
    started = time.perf_counter()
    skipped: list[str] = []
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(QUEUE_FRAMES)
    upscaled: queue.Queue = queue.Queue(QUEUE_FRAMES)
    with atomic_path(target, suffix=target.suffix, replace=overwrite) as tmp:
        source_file = av.open(str(source))
        target_file = av.open(str(tmp), "w", format=_container_format(target))
        try:
            vin = source_file.streams.video[0]
            vin.thread_type = "AUTO"
            rate = info.rate or Fraction(25)
            vout = target_file.add_stream(encoder, rate=rate)
            vout.width, vout.height = width * scale, height * scale
            vout.pix_fmt = "yuv420p10le" if ten_bit else "yuv420p"
            vout.time_base = vin.time_base
            vout.codec_context.time_base = vin.time_base
            crf = settings.crf if settings.crf is not None else DEFAULT_CRF[encoder]
            vout.options = {"crf": str(crf), **({"x265-params": "log-level=error"} if encoder == "libx265" else {}),
                            **({"b": "0"} if encoder == "libvpx-vp9" else {})}
            for name in ("color_range", "colorspace", "color_primaries", "color_trc"):
                value = getattr(vin.codec_context, name, None)
                if value is not None:
                    try:
                        setattr(vout.codec_context, name, value)
                    except (AttributeError, ValueError, TypeError):
                        pass
            copied = [s for s in (*source_file.streams.audio, *source_file.streams.subtitles)]
            outputs = {}
            reencoded: dict[int, _OpusAudio] = {}
            for stream in copied:
                try:
                    if stream.type == "audio" and target.suffix.lower() == ".webm" \
                            and stream.codec_context.name not in WEBM_AUDIO:
                        reencoded[stream.index] = _OpusAudio(av, stream, target_file, start)
                        outputs[stream.index] = reencoded[stream.index].stream
                    else:
                        outputs[stream.index] = target_file.add_stream_from_template(stream)
                except (av.error.FFmpegError, ValueError) as exc:
                    log.warning("%s: %s stream %d is not copied (%s)", source, stream.type, stream.index,
                                _first_line(exc))
            if start:
                source_file.seek(int(start / vin.time_base), stream=vin, backward=True)
            offset = int(start / vin.time_base)

            def within(seconds: float | None) -> bool:
                return seconds is not None and seconds >= start - 1e-6 and (end is None or seconds < end - 1e-6)

            def running() -> bool:
                return not stop.is_set()

            def read() -> None:
                streams = [vin, *[s for s in copied if s.index in outputs]]
                for packet in source_file.demux(*streams):
                    if stop.is_set():
                        return
                    if packet.stream.index != vin.index:
                        if packet.pts is not None and packet.dts is not None:
                            seconds = float(packet.pts * packet.stream.time_base)
                            if within(seconds):
                                if not _put(decoded, ("copy", packet), running):
                                    return
                        continue
                    try:
                        frames = packet.decode()
                    except av.error.FFmpegError as exc:
                        when = float(packet.pts * vin.time_base) if packet.pts is not None else None
                        if when is None or within(when):
                            skipped.append(f"at {when:.3f} s: {_first_line(exc)}" if when is not None
                                           else _first_line(exc))
                        continue
                    for frame in frames:
                        seconds = frame.time
                        if end is not None and seconds is not None and seconds >= end - 1e-6:
                            _put(decoded, _END, running)
                            return
                        if not within(seconds):
                            continue
                        pixels = frame.to_ndarray(format="rgb48le" if ten_bit else "rgb24")
                        if info.rotation:
                            pixels = np.rot90(pixels, k=info.rotation // 90)  # counter-clockwise turns
                        if not _put(decoded, ("frame", np.ascontiguousarray(pixels), frame.pts), running):
                            return
                _put(decoded, _END, running)

            def write() -> None:
                while True:
                    try:
                        item = upscaled.get(timeout=0.1)
                    except queue.Empty:
                        if stop.is_set():
                            return  # the run stopped (an error or Ctrl-C): nothing more is written
                        continue
                    if item is _END or stop.is_set():
                        break
                    if item[0] == "copy" and item[1].stream.index in reencoded:
                        for packet in reencoded[item[1].stream.index].encode(item[1]):
                            target_file.mux(packet)
                        continue
                    if item[0] == "copy":
                        packet = item[1]
                        shift = int(round(start / packet.stream.time_base)) if start else 0
                        packet.pts -= shift
                        packet.dts -= shift
                        packet.stream = outputs[packet.stream.index]
                        target_file.mux(packet)
                        continue
                    _, pixels, pts = item
                    frame = av.VideoFrame.from_ndarray(pixels, format="rgb48le" if ten_bit else "rgb24")
                    frame = frame.reformat(format=vout.pix_fmt)
                    frame.pts, frame.time_base = pts - offset, vin.time_base
                    for packet in vout.encode(frame):
                        target_file.mux(packet)
                for packet in vout.encode():
                    target_file.mux(packet)
                for audio in reencoded.values():
                    for packet in audio.flush():
                        target_file.mux(packet)

            reader, writer = _Worker(read, "trtsr-video-decode"), _Worker(write, "trtsr-video-encode")
            reader.start()
            writer.start()
            done = 0
            total = _frames_between(info, start, end)
            try:
                while True:
                    item = _get(decoded, reader)
                    if item is _END:
                        break
                    if item[0] == "frame":
                        _, pixels, pts = item
                        item = ("frame", upscaler.upscale(pixels), pts)
                        done += 1
                        if progress is not None:
                            progress(done, total)
                    if not _put(upscaled, item, writer.is_alive):
                        break
                _put(upscaled, _END, writer.is_alive)
                writer.join()
                if writer.error is not None:
                    raise writer.error
                if reader.error is not None:
                    raise reader.error
            finally:
                stop.set()
                reader.join(timeout=5)
                writer.join(timeout=5)
            if done == 0:
                raise TrtsrError("no frame in the chosen part of the video" if start or end
                                 else "the video has no frame that decodes", path=source)
        except av.error.FFmpegError as exc:
            raise TrtsrError(f"cannot write the video ({_first_line(exc)})", path=target) from None
        finally:
            target_file.close()
            source_file.close()
    if skipped:
        log.warning("%s: %d packet(s) could not be decoded and were left out (the frame before each shows in its "
                    "place): %s", source, len(skipped), "; ".join(skipped[:5]))
    if total and done < total - 1:
        log.warning("%s: %d of the %d frames the file announces could be decoded (truncated or corrupt?); the "
                    "output has those %d, at their own times", source, done, total, done)
    return VideoReport(str(source), str(target), done, time.perf_counter() - started, (width, height),
                       (width * scale, height * scale), encoder, len(outputs), skipped, total)


class _OpusAudio:
    """One audio stream re-encoded to Opus for a WebM output (which holds no AAC or MP3): decoded, resampled to
    48 kHz float, cut into the encoder's frame size, with timestamps counted in samples from the part's start."""

    def __init__(self, av, source_stream, target_file, start: float) -> None:
        self.decoder = source_stream.codec_context
        layout = self.decoder.layout.name if self.decoder.layout is not None else "stereo"
        self.stream = target_file.add_stream("libopus", rate=OPUS_RATE, layout=layout)
        self.resampler = av.AudioResampler(format="flt", layout=layout, rate=OPUS_RATE)
        self.fifo = av.AudioFifo()
        self.size = self.stream.codec_context.frame_size or 960
        self.start = start
        self.next_pts: int | None = None

    def encode(self, packet) -> list:
        """The Opus packets ready after `packet` (a packet of the source stream)."""
        return self._push(packet.decode())

    def flush(self) -> list:
        """The rest: what the decoder, the resampler and the encoder still hold."""
        packets = self._push(self.decoder.decode(None))
        for frame in self.resampler.resample(None):
            frame.pts = None
            self.fifo.write(frame)
        if self.fifo.samples:
            packets += self._encode(self.fifo.read())  # the last frame may be short
        return packets + list(self.stream.encode(None))

    def _push(self, frames) -> list:
        packets = []
        for frame in frames:
            if self.next_pts is None and frame.time is not None:
                self.next_pts = max(0, round((frame.time - self.start) * OPUS_RATE))
            for resampled in self.resampler.resample(frame):
                resampled.pts = None  # the fifo counts samples; the output's times are set below
                self.fifo.write(resampled)
        while self.fifo.samples >= self.size:
            packets += self._encode(self.fifo.read(self.size))
        return packets

    def _encode(self, frame) -> list:
        frame.pts, frame.time_base = self.next_pts or 0, Fraction(1, OPUS_RATE)
        self.next_pts = frame.pts + frame.samples
        return list(self.stream.encode(frame))


def _get(box: queue.Queue, producer: _Worker):
    """The next item, or the producer's error (or the end, when it stopped without one)."""
    while True:
        try:
            return box.get(timeout=0.1)
        except queue.Empty:
            if not producer.is_alive():
                if producer.error is not None:
                    raise producer.error from None
                try:
                    return box.get_nowait()
                except queue.Empty:
                    return _END


def _frames_between(info: VideoInfo, start: float, end: float | None) -> int:
    if not info.rate:
        return info.frames
    last = info.seconds if end is None or (info.seconds is not None and end > info.seconds) else end
    if last is None:
        return info.frames
    return max(0, int(round((last - start) * float(info.rate))))


def _container_format(target: Path) -> str | None:
    return {".mkv": "matroska", ".webm": "webm", ".mov": "mov", ".mp4": "mp4"}.get(target.suffix.lower())


def _first_line(exc: BaseException) -> str:
    """FFmpeg's reason in one line: its error text, and the last thing it logged (e.g. 'moov atom not found')."""
    reason = getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
    logged = getattr(exc, "log", None)
    if logged and len(logged) > 2 and logged[2]:
        reason = f"{reason}: {str(logged[2]).strip()}"
    return reason.splitlines()[0][:200]
