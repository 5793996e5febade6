"""The distillation loop: AdamW, EMA, two stages, checkpoint and resume.

Stage 1 (steps before `adv_start`): L1 + perceptual + masked Fourier loss (+ the x8
lattice term, when weighted) against the teacher, the negative PadCFG branch against a
blurred teacher. Stage 2 (from `adv_start`): a frozen copy of the student at that step
becomes the discriminator's feature path (the paper's stage-I generator), learnable
heads read RandPad-ed real (HR) and generated images, and the generator adds the
adversarial term.

`out/checkpoint.pt` holds everything needed to resume exactly (weights, EMA, both
optimisers, discriminator, step, random state); `out/model.safetensors` is the EMA
model as a trtsr checkpoint that every command loads with `--model`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from trtsr import defaults
from trtsr.errors import TrtsrError
from trtsr.files import atomic_path, write_text_atomic
from trtsr.models.checkpoint import PRESETS, build_preset, load_model, save_checkpoint, training_history
from trtsr.models.pixel import GenDRPix
from trtsr.training import losses
from trtsr.training.config import TrainConfig
from trtsr.training.data import (
    augment,
    bank_key,
    bank_workers,
    cached_bank,
    list_images,
    lr_key,
    split_holdout,
    teacher_key,
)
from trtsr.training.degrade import bicubic_down
from trtsr.training.networks import TRAIN_RESERVE, FeatureDiscriminator, plain_branch
from trtsr.training.teacher import TEACHER_NAME, RRDBNet, load_teacher, load_teacher_file

log = logging.getLogger(__name__)
CHECKPOINT_VERSION = 1
PERCEPTUAL_DEPTH = 1  # dense blocks of the teacher trunk after conv_first


def initial_model(config: TrainConfig) -> GenDRPix:
    """The model a run starts from: a preset (with the config's alpha_bar / zero output), or loaded weights."""
    if config.init in PRESETS and not Path(config.init).exists():
        changes = {} if config.alpha_bar is None else {"alpha_bar": config.alpha_bar}
        if config.unshuffle is not None:
            changes["unshuffle"] = config.unshuffle
        model = build_preset(config.init, seed=config.seed, **changes)
        if config.zero_init_output:
            with torch.no_grad():
                model.unet.conv_out.weight.zero_()
                model.unet.conv_out.bias.zero_()
        return model
    if config.alpha_bar is not None or config.zero_init_output or config.unshuffle is not None:
        raise TrtsrError("alpha_bar, unshuffle and zero_init_output apply to a preset init only; the weights in "
                         f"{config.init} keep their own")
    return load_model(config.init)


def checkpoint_metadata(config: TrainConfig, step: int, history: list[dict]) -> dict[str, str]:
    """What a trained model records: its target (and teacher, when one was used), steps, config, earlier stages."""
    meta = {"target": config.target, "steps": str(step), "train_config": config.to_json(),
            "history": json.dumps(history)}
    if config.needs_teacher:
        meta["teacher"] = TEACHER_NAME
    return meta


class NonFiniteLoss(TrtsrError):
    """A step's loss was NaN or infinite; raised before that step changed any weight."""

    def __init__(self, step: int, value: float) -> None:
        self.step, self.value = step, value
        super().__init__(f"loss became {value} at step {step}")


@dataclass
class StepLosses:
    total: float
    l1: float
    negative: float
    guided: float
    fourier: float
    lattice: float
    cell: float
    perceptual: float
    texture: float
    highpass: float
    adversarial: float
    discriminator: float

    @classmethod
    def read(cls, values: torch.Tensor) -> StepLosses:
        """The terms `Trainer.advance` returned, read back to the host (one wait for the device)."""
        return cls(*values.tolist())

    def short(self) -> str:
        parts = [f"loss {self.total:.4f}", f"l1 {self.l1:.4f}", f"fft {self.fourier:.4f}",
                 f"lat {self.lattice:.4f}", f"perc {self.perceptual:.4f}"]
        if self.cell:
            parts.append(f"cell {self.cell:.5f}")
        if self.guided:
            parts.append(f"guided {self.guided:.4f}")
        if self.texture:
            parts.append(f"tex {self.texture:.4f}")
        if self.highpass:
            parts.append(f"hp {self.highpass:.4f}")
        if self.adversarial:
            parts += [f"adv {self.adversarial:.3f}", f"disc {self.discriminator:.3f}"]
        return ", ".join(parts)


def save_state(state: dict, path: Path) -> Path:
    """`torch.save(state)` into `path`, atomically (a reader never sees a torn checkpoint)."""
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)
    return path


class Trainer:
    """Holds the student, its EMA, the optimisers and (from stage 2) the discriminator."""

    def __init__(self, config: TrainConfig, out_dir: str | Path, *, teacher: RRDBNet | None = None,
                 model: GenDRPix | None = None) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        if config.threads:
            torch.set_num_threads(config.threads)
        want_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
        if config.device == "cuda" and not torch.cuda.is_available():
            raise TrtsrError("device = 'cuda' but PyTorch sees no CUDA GPU; use device = 'auto' or 'cpu'")
        self.device = torch.device("cuda" if want_cuda else "cpu")
        # The teacher is loaded only when the run uses it (its outputs as targets, or its features).
        if teacher is None and config.needs_teacher:
            teacher = load_teacher_file(config.teacher_weights) if config.teacher_weights else load_teacher()
        if teacher is not None and config.teacher_scales and getattr(teacher, "trunk_only", False):
            raise TrtsrError(f"target = '{config.target}' needs the whole teacher, not a trunk",
                             path=config.teacher_weights)
        self.teacher = teacher.to(self.device) if teacher is not None and config.needs_teacher else None
        self.student = (model if model is not None else initial_model(config)).to(self.device).train()
        self.history = training_history(config.init)
        self.student.requires_grad_(True)
        self.ema = copy.deepcopy(self.student).eval().requires_grad_(False)
        # fused: one kernel for every tensor, and it takes a found_inf flag on the device (non-finite steps skipped
        # without the host waiting for the loss)
        self.opt = torch.optim.AdamW(self.student.parameters(), lr=config.lr, betas=config.betas,
                                     weight_decay=config.weight_decay, fused=True)
        self.disc: FeatureDiscriminator | None = None
        self.disc_opt: torch.optim.Optimizer | None = None
        self.step = 0
        self._saved_step: int | None = None  # step of the checkpoint on disk, when this run wrote or read one
        self.generator = torch.Generator().manual_seed(config.seed)
        # On a GPU the batch's rows are drawn there (a host-drawn index would be one copy, and a wait, per step).
        self.index_generator = (torch.Generator(self.device).manual_seed(config.seed) if self.device.type == "cuda"
                                else self.generator)
        self.bank: dict[str, torch.Tensor] | None = None
        # [flag, first non-finite step, its total] on the device: read at log steps and checkpoints only
        self._non_finite = torch.zeros(3, dtype=torch.float64, device=self.device)
        self._terms = self._loss_terms
        if config.compile:
            self._terms = torch.compile(self._loss_terms, mode=config.compile, dynamic=False)

    # -- data -----------------------------------------------------------------------------------
    def prepare_data(self, progress: Callable[[int, int], None] | None = None) -> tuple[list[Path], list[Path]]:
        """Build or load the sample bank from the training split; returns (train, held_out) image lists."""
        cfg = self.config
        train, held = split_holdout(list_images(cfg.data), cfg.holdout_every)
        if not train:
            raise TrtsrError("every image is held out; raise holdout_every or add images")
        teacher_scales = cfg.teacher_scales
        key = bank_key(train, cfg.crop, cfg.train_scales, cfg.bank_size, cfg.seed, cfg.bicubic_prob,
                       degradation=cfg.degradation, teacher_scales=teacher_scales)
        teacher = self.teacher if teacher_scales else None  # on the run's device: a GPU makes the outputs fast
        bank_dir = Path(cfg.bank_dir) if cfg.bank_dir else self.out_dir
        self.bank = cached_bank(bank_dir / f"bank-{key}.pt", images=train, crop=cfg.crop,
                                scale=cfg.train_scales, size=cfg.bank_size, seed=cfg.seed, teacher=teacher,
                                bicubic_prob=cfg.bicubic_prob, degradation=cfg.degradation, progress=progress,
                                workers=bank_workers(cfg.bank_workers, cfg.bank_size), teacher_scales=teacher_scales)
        if self.device.type == "cuda":  # uint8 rows, sampled and augmented where the steps run
            self.bank = {k: v.to(self.device) for k, v in self.bank.items()}
        if self.teacher is not None:
            self.teacher.to(self.device)
        return train, held

    def sample(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """A batch (hr, lr, teacher or None) as floats in [0,1], augmented, on the device; one scale per batch."""
        if self.bank is None:
            raise RuntimeError("prepare_data() or set bank before training")
        scales = self.config.train_scales
        scale = scales[int(torch.randint(0, len(scales), (1,), generator=self.generator))] if len(scales) > 1 \
            else scales[0]
        n = self.bank["hr"].shape[0]
        device = self.bank["hr"].device
        if device == self.index_generator.device:
            idx = torch.randint(0, n, (self.config.batch,), generator=self.index_generator, device=device)
        else:  # a bank still on the host (a test's, or before prepare_data moved it)
            idx = torch.randint(0, n, (self.config.batch,), generator=self.generator).to(device)
        keys = ["hr", lr_key(scale)] + ([teacher_key(scale)] if teacher_key(scale) in self.bank else [])
        tensors = augment([self.bank[k][idx].float().div(255.0) for k in keys], self.generator)
        tensors = [t.to(self.device) for t in tensors]
        hr, lr, te = tensors[0], tensors[1], tensors[2] if len(tensors) > 2 else None
        if self.config.clean_share > 0:
            lr, te = self.clean_rows(hr, lr, te)
        return hr, lr, te

    def clean_rows(self, hr: torch.Tensor, lr: torch.Tensor,
                   te: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`config.clean_share` of the rows, drawn per row: the input becomes the HR crop's clean downscale
        (anti-aliased bicubic, rounded to 8 bits as every input is) and the distillation target the HR crop."""
        rows = hr.shape[0]
        if hr.device == self.index_generator.device:
            draw = torch.rand(rows, generator=self.index_generator, device=hr.device)
        else:
            draw = torch.rand(rows, generator=self.generator).to(hr.device)
        use = (draw < self.config.clean_share)[:, None, None, None]
        clean = bicubic_down(hr, hr.shape[-1] // lr.shape[-1]).mul(255.0).round().div(255.0)
        return torch.where(use, clean, lr), None if te is None else torch.where(use, hr, te)

    # -- one step -------------------------------------------------------------------------------
    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> StepLosses:
        """One step with its losses read back: one wait for the device (`fit` reads only at its log steps)."""
        values = self.advance(batch)
        self.check_finite()
        return StepLosses.read(values)

    def advance(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Queue one step on the device without waiting for it; returns its loss terms as one tensor (in the order
        of StepLosses). A non-finite total is caught on the device: from that step on no update is applied (fused
        AdamW's found_inf, as AMP's loss scaling skips a step; the EMA is masked the same way) until
        `check_finite` reads the flag and raises."""
        cfg = self.config
        if self.disc is None and self.step >= cfg.adv_start and cfg.adv_weight > 0:
            self.start_adversarial()
        hr, lr, te = batch if batch is not None else self.sample()
        size = hr.shape[-2:]
        scale = round(size[-1] / lr.shape[-1])
        w = defaults.DEFAULT_MODEL_GUIDANCE.get(scale, cfg.guidance) if cfg.own_guidance else cfg.guidance
        detail = (cfg.detail_by_scale[cfg.train_scales.index(scale)]
                  if cfg.detail_by_scale and scale in cfg.train_scales else 1.0)
        reference = te if cfg.target == "teacher" else hr
        if reference is None:
            raise TrtsrError("target = 'teacher' needs teacher outputs in the bank")
        plain = bool(torch.rand((), generator=self.generator) < cfg.plain_prob)
        anchored = te if cfg.target == "distill" else None
        y, partial, terms = self._terms(lr, reference, anchored, w, detail, plain)
        win = cfg.perceptual_window
        oy = int(torch.randint(0, size[0] - win + 1, (1,), generator=self.generator))
        ox = int(torch.randint(0, size[1] - win + 1, (1,), generator=self.generator))
        crop = lambda t: t[..., oy:oy + win, ox:ox + win]  # noqa: E731
        perceptual = y.new_zeros(())
        if cfg.perceptual_weight > 0 and self.teacher is not None:
            with torch.no_grad():
                ref_feats = self.teacher.features(crop(reference), PERCEPTUAL_DEPTH)
            perceptual = losses.dists_distance(self.teacher.features((crop(y) + 1) / 2, PERCEPTUAL_DEPTH), ref_feats)
        adversarial = y.new_zeros(())
        if self.disc is not None:
            self.disc.heads.requires_grad_(False)
            with self._autocast():
                fake, _ = losses.randpad(y, self.generator)
                adversarial = losses.generator_adversarial([t.float() for t in self.disc(fake)])
        total = partial + detail * cfg.perceptual_weight * perceptual + cfg.adv_weight * adversarial
        skip = self._flag_non_finite(total.detach())
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        for group in self.opt.param_groups:
            group["lr"] = self.learning_rate()
        self.opt.found_inf = skip  # read by fused AdamW's step: 1 leaves every weight and moment as it was
        self.opt.step()
        disc_loss = y.new_zeros(())
        if self.disc is not None:
            disc_loss = self._disc_step(hr * 2 - 1, y.detach())
        self._update_ema(skip)
        self.step += 1
        l1, negative, guided_term, fourier, lattice, cell, texture, highpass = terms
        values = (total, l1, negative, guided_term, fourier, lattice, cell, perceptual, texture, highpass,
                  adversarial, disc_loss)
        return torch.stack([t.detach().float() for t in values])

    def _loss_terms(self, lr: torch.Tensor, reference: torch.Tensor, teacher: torch.Tensor | None, w: float,
                    detail: float, plain: bool) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """The student's forward and every pixel loss term: (output, their weighted sum, the terms). The part of a
        step that `compile` hands to torch.compile (the perceptual and adversarial terms draw crops on the host)."""
        cfg = self.config
        size = reference.shape[-2:]
        x = F.interpolate(lr * 2 - 1, size=size, mode="bicubic", align_corners=False).clamp(-1, 1)
        target = reference * 2 - 1
        guided_target = target  # distill: the teacher's detail on the ground truth's lowest frequencies
        if teacher is not None:
            guided_target = losses.anchored(target, teacher * 2 - 1, cfg.anchor_sigma)
        reconstruct = losses.charbonnier if cfg.reconstruction == "charbonnier" else losses.l1
        with self._autocast():
            if plain:
                y, y_neg = plain_branch(self.student, x), None
            else:
                y, y_neg = self.student.padcfg_branches(x, TRAIN_RESERVE)
        y = y.float()
        l1 = reconstruct(y, target)
        negative = guided_term = lattice = cell = texture = highpass = y.new_zeros(())
        if y_neg is not None:
            y_neg = y_neg.float()
            blurred = losses.gaussian_blur(target, cfg.negative_blur)
            negative = losses.l1(y_neg, blurred)
            if cfg.guided_weight > 0:
                guided_term = reconstruct(y_neg + w * (y - y_neg), guided_target)
        fourier = losses.mfs_loss(y, target, cfg.fourier_band)
        if cfg.lattice_weight > 0:
            lattice = losses.lattice_loss(y, target)
            if y_neg is not None:
                # The guided output and its target are the same linear mix of the two branches.
                guided = y_neg + w * (y - y_neg)
                lattice = lattice + losses.lattice_loss(guided, blurred + w * (target - blurred))
        if cfg.cell_weight > 0:
            cell = losses.cell_loss(y, target)
            if y_neg is not None:
                cell = cell + losses.cell_loss(y_neg + w * (y - y_neg), target)
        if cfg.texture_weight > 0:
            texture = losses.texture_loss(y, target, cfg.texture_window)
        if cfg.highpass_weight > 0:
            highpass = losses.highpass_loss(y, target, cfg.highpass_sigma)
        partial = (l1 + cfg.negative_weight * negative + cfg.guided_weight * guided_term
                   + cfg.fourier_weight * fourier + cfg.lattice_weight * lattice + cfg.cell_weight * cell
                   + detail * cfg.texture_weight * texture + cfg.highpass_weight * highpass)
        return y, partial, (l1, negative, guided_term, fourier, lattice, cell, texture, highpass)

    def _flag_non_finite(self, total: torch.Tensor) -> torch.Tensor:
        """Record on the device the first step whose total is not finite (and its value); returns the sticky
        flag (0-dim float32, 1 once any step was) that fused AdamW and the EMA take as found_inf."""
        state = self._non_finite
        first = ~torch.isfinite(total) & (state[0] == 0)
        now = torch.stack([torch.ones_like(state[0]), torch.full_like(state[0], self.step + 1), total.double()])
        self._non_finite = torch.where(first, now, state)
        return self._non_finite[0].float()

    def check_finite(self) -> None:
        """Wait for the device; raise NonFiniteLoss when a step had a non-finite total since the run started. The
        step count goes back to the last step applied (no later one changed any weight)."""
        flag, first, value = self._non_finite.tolist()
        if flag:
            self.step = int(first) - 1
            raise NonFiniteLoss(int(first), value)

    def learning_rate(self, step: int | None = None) -> float:
        """The generator's learning rate for the step after `step` (default: the current one)."""
        cfg = self.config
        step = self.step if step is None else step
        if cfg.lr_decay == "cosine":
            floor = cfg.lr / 20
            return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(step / cfg.steps, 1.0)))
        return cfg.lr

    def _disc_step(self, real: torch.Tensor, fake: torch.Tensor) -> float:
        assert self.disc is not None and self.disc_opt is not None
        self.disc.heads.requires_grad_(True)
        with self._autocast():
            real_pad, _ = losses.randpad(real, self.generator)
            fake_pad, _ = losses.randpad(fake, self.generator)
            loss = losses.discriminator_loss([t.float() for t in self.disc(real_pad)],
                                             [t.float() for t in self.disc(fake_pad)])
        self.disc_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.disc_opt.found_inf = self._flag_non_finite(loss.detach())
        self.disc_opt.step()
        return loss.detach()

    def start_adversarial(self) -> None:
        """Freeze a copy of the current student as the discriminator's feature path (stage 2)."""
        self.disc = FeatureDiscriminator(self.student, detail_head=self.config.disc_detail_head).to(self.device)
        self.disc_opt = torch.optim.AdamW(self.disc.heads.parameters(), lr=self.config.disc_lr,
                                          betas=self.config.betas, weight_decay=self.config.weight_decay, fused=True)
        log.info("step %d: adversarial stage starts", self.step)

    @torch.no_grad()
    def _update_ema(self, skip: torch.Tensor) -> None:
        """ema += (1 - decay) * (1 - skip) * (live - ema): three launches for all tensors, no wait for the device."""
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        ema, live = list(self.ema.parameters()), [p.detach() for p in self.student.parameters()]
        moved = torch._foreach_sub(live, ema)
        torch._foreach_mul_(moved, (1.0 - skip) * (1.0 - decay))  # a device scalar: the Tensor overload
        torch._foreach_add_(ema, moved)

    # -- checkpoints ----------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    @property
    def config_path(self) -> Path:
        return self.out_dir / "config.json"

    @property
    def model_path(self) -> Path:
        return self.out_dir / "model.safetensors"

    def save(self) -> Path:
        """Write the resumable checkpoint and the EMA model; raises NonFiniteLoss instead when a step was not
        finite (no checkpoint ever holds a run past one)."""
        self.check_finite()
        state = {
            "version": CHECKPOINT_VERSION,
            "config": self.config.to_dict(),
            "step": self.step,
            "student": self.student.state_dict(),
            "ema": self.ema.state_dict(),
            "model_config": self.student.config.to_dict(),
            "opt": self.opt.state_dict(),
            "disc": None if self.disc is None else self.disc.state_dict(),
            "disc_opt": None if self.disc_opt is None else self.disc_opt.state_dict(),
            "generator": self.generator.get_state(),
            "index_generator": None if self.index_generator is self.generator else self.index_generator.get_state(),
            "torch_rng": torch.random.get_rng_state(),
            "history": json.dumps(self.history),
        }
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_state(state, self.checkpoint_path)
        write_text_atomic(self.config_path, self.config.to_json() + "\n")
        save_checkpoint(self.ema, self.model_path, extra_metadata=checkpoint_metadata(self.config, self.step,
                                                                                      self.history))
        self._saved_step = self.step
        return self.checkpoint_path

    def resume(self, path: str | Path | None = None) -> int:
        path = Path(path) if path is not None else self.checkpoint_path
        try:
            state = torch.load(path, weights_only=True, map_location=self.device)
        except FileNotFoundError:
            raise TrtsrError("no checkpoint to resume from", path=path) from None
        except TrtsrError:
            raise
        except Exception as exc:
            raise TrtsrError(f"not a trtsr training checkpoint ({type(exc).__name__})", path=path) from None
        if state.get("version") != CHECKPOINT_VERSION:
            raise TrtsrError(f"training checkpoint version {state.get('version')} is not {CHECKPOINT_VERSION}",
                             path=path)
        if state["model_config"] != self.student.config.to_dict():
            raise TrtsrError("checkpoint was trained with another model architecture than 'init' gives", path=path)
        self.student.load_state_dict(state["student"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])
        for group in self.opt.param_groups:  # a checkpoint written before the fused optimiser keeps its flags
            group.update(fused=True, foreach=None)
        if state["disc"] is not None:
            self.start_adversarial()
            assert self.disc is not None and self.disc_opt is not None
            try:
                self.disc.load_state_dict(state["disc"])
            except RuntimeError:
                raise TrtsrError("the checkpoint's discriminator has other heads than this version of trtsr "
                                 "builds; resume it with the version that wrote it", path=path) from None
            self.disc_opt.load_state_dict(state["disc_opt"])
            for group in self.disc_opt.param_groups:
                group.update(fused=True, foreach=None)
        self.generator.set_state(state["generator"].cpu())  # loaded onto the run's device with the rest
        if state.get("index_generator") is not None and self.index_generator is not self.generator:
            self.index_generator.set_state(state["index_generator"].cpu())
        torch.random.set_rng_state(state["torch_rng"].cpu())
        self.step = self._saved_step = int(state["step"])
        if "history" in state:  # the stages before this run, as recorded when it started
            self.history = json.loads(state["history"])
        return self.step

    # -- the loop -------------------------------------------------------------------------------
    def fit(self, report: Callable[[int, int, StepLosses], None] | None = None) -> list[StepLosses]:
        """Train until `config.steps` or `config.max_minutes` of wall-clock, whichever comes first, checkpointing
        every `checkpoint_every` steps and at the end. The host waits for the device only where it reads the
        losses (every `log_every` steps, the last step) and where it checkpoints; returns the losses it read."""
        history: list[StepLosses] = []
        start = time.perf_counter()
        budget = self.config.max_minutes * 60.0 if self.config.max_minutes else float("inf")
        try:
            pending = None  # the last step's terms, not yet read
            while self.step < self.config.steps:
                if time.perf_counter() - start >= budget:
                    log.info("the %.1f-minute budget is spent at step %d", self.config.max_minutes, self.step)
                    if pending is not None:
                        self.check_finite()
                        history.append(StepLosses.read(pending))
                    if report is not None and history:
                        report(self.step, self.config.steps, history[-1])
                    break
                pending = self.advance()
                if self.step % self.config.log_every == 0 or self.step == self.config.steps:
                    self.check_finite()
                    history.append(StepLosses.read(pending))
                    pending = None
                    if report is not None:
                        report(self.step, self.config.steps, history[-1])
                if self.step % self.config.checkpoint_every == 0:
                    self.save()
            if self.step != self._saved_step:
                self.save()
        except NonFiniteLoss as bad:
            kept = (f"the last good checkpoint (step {self._saved_step}) is kept" if self._saved_step is not None
                    else "no checkpoint was written")
            raise TrtsrError(f"loss became {bad.value} at step {bad.step}; that step and any after it were not "
                             f"applied and {kept}; lower 'lr' and resume", path=self.checkpoint_path) from None
        log.info("trained to step %d in %.0f s", self.step, time.perf_counter() - start)
        return history
