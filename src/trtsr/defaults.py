"""Defaults in one place: every command, the Python API and the exporter read them from here.

Changing a value here changes it everywhere; nothing else in the package writes
these literals.
"""

from __future__ import annotations

from enum import StrEnum


class Precision(StrEnum):
    """Float types an exported graph's UNet runs in."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"


class IoType(StrEnum):
    """A graph's or engine's input and output: uint8 HWC 0..255, or float32 HWC 0..255 unrounded."""

    UINT8 = "uint8"
    FLOAT32 = "float32"


class Backend(StrEnum):
    """What runs a model: one session class each (`trtsr.sessions`); the two TensorRT flavours run engines."""

    ONNXRUNTIME = "onnxruntime"
    TORCH = "torch"
    TENSORRT = "tensorrt"
    TENSORRT_RTX = "tensorrt-rtx"

    @property
    def runs_engines(self) -> bool:
        return self in ENGINE_BACKENDS


class RunBackend(StrEnum):
    """What a run may ask for: a `Backend`, or `auto`, which picks one (trtsr.pipeline.choose)."""

    AUTO = "auto"
    ONNXRUNTIME = Backend.ONNXRUNTIME.value
    TORCH = Backend.TORCH.value
    TENSORRT = Backend.TENSORRT.value
    TENSORRT_RTX = Backend.TENSORRT_RTX.value

    @property
    def backend(self) -> Backend | None:
        """The backend asked for; None for auto."""
        return None if self is RunBackend.AUTO else Backend(self.value)


class BuildBackend(StrEnum):
    """What an engine build may ask for: a TensorRT flavour, or `auto` (full TensorRT if installed, else
    TensorRT-RTX)."""

    AUTO = RunBackend.AUTO.value
    TENSORRT = Backend.TENSORRT.value
    TENSORRT_RTX = Backend.TENSORRT_RTX.value


ENGINE_BACKENDS = (Backend.TENSORRT, Backend.TENSORRT_RTX)


class OutputFormat(StrEnum):
    """Image formats trtsr writes (`outputs.WRITABLE` maps the extensions users type onto them)."""

    PNG = "png"
    JPG = "jpg"
    WEBP = "webp"
    TIFF = "tiff"


# PadCFG guidance w (paper Eq. 7); 1.0 (or None) means no PadCFG: the batch-1 graph.
GUIDANCE = 1.8
# `trtsr run`/`batch` and `Upscaler` without a guidance: the model's own w. For the shipped default model
# that is per scale, measured on its held-out set (benchmarks/results/default-guidance.json): at x2 the
# largest w tried that stays above Pillow's bicubic on clean input; at x4 the w whose detail matches the
# model it replaced while staying above bicubic. Every other model gets GUIDANCE (`trtsr.source.ModelSource.own_w`).
AUTO_GUIDANCE = "auto"
DEFAULT_MODEL_GUIDANCE = {2: 1.4, 3: 1.8, 4: 2.2}


# Guidance values `trtsr evaluate` scores by default: the plain path and the default.
EVALUATE_GUIDANCES = (1.0, GUIDANCE)
SCALE = 4
SCALES = (1, 2, 3, 4, 8)
# Guidance values every command accepts (run, batch, export, evaluate, the API): above 0 (1.0 = no PadCFG) up to
# this. Checked in one place: `trtsr.guidance.check_guidance`.
MAX_GUIDANCE = 10.0
# The largest w the default model's held-out sweep scored (benchmarks/results/default-guidance.json); above it a
# run warns: at 4 an 8-pixel grid and colour fringes show, at 10 heavy fringing.
DEFAULT_MODEL_MEASURED_GUIDANCE = 2.2


# Architecture presets with seeded random weights (for export, engines and benchmarks: their output is noise).
RANDOM_PRESETS = ("tiny", "gendr-pix")
# Model names that are not paths: the shipped weights and the presets.
MODEL_NAMES = ("default", *RANDOM_PRESETS)

# Export.
PRECISION = "fp16"
PRECISIONS = tuple(Precision)
IO = "uint8"
IO_TYPES = tuple(IoType)
OPSET = 23
OPSETS = (18, 23)  # lowest and highest accepted
# Largest input side an exported graph accepts (the exporter's dynamic-dimension bound).
MAX_INPUT_SIDE = 8192

# Engines: one engine covering 1080p to 8K output, three profiles each tuned at its top size.
PROFILES = ("1080p", "4k", "8k")
# The engine cache evicts least recently used engines above this many GB (TRTSR_CACHE_MAX_GB overrides).
ENGINE_CACHE_MAX_GB = 20.0

# Input pixels neighbouring tiles share, blended with a raised-cosine window.
OVERLAP = 16
# Tiles are planned per picture from the graph's probed cost (`trtsr.cost`): whole pictures where they fit the
# memory budget, else the tile with the least work. A graph exported before graphs carried their cost runs
# in tiles of this side, in input pixels (512 out at x4; the default model's attention stays within a few GB).
ONNXRUNTIME_TILE = 128
# Smallest tile side a planned run uses, in input pixels.
PLANNED_MIN_TILE = 64
# Smallest tile side a user may ask for, in input pixels.
MIN_TILE = 16
# Largest overlap without a tile size (with one: half the tile, what tiling uses).
MAX_OVERLAP = 128
# Image files trtsr reads (inputs), by extension.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"})
# Video files `trtsr run` reads and writes (the `video` extra), by extension.
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".webm"})
# Video containers trtsr neither reads nor writes: an output named so is refused, never taken for a folder name.
OTHER_VIDEO_SUFFIXES = frozenset({".avi", ".flv", ".wmv", ".m4v", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".3gp",
                                  ".ogv", ".vob", ".asf", ".divx"})
# JPEG / WebP quality of written outputs.
QUALITY = 95
