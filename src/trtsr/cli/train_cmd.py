"""`trtsr train` and `trtsr finetune`: train a GenDR-Pix model against ground truth or the Real-ESRGAN teacher."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from trtsr.cli.common import console, out, require_extra, user_errors
from trtsr.cli.options import VerboseOption
from trtsr.files import check_writable

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML training config (keys: trtsr.training.config.TrainConfig). "
                                        "The shipped default recipe is trtsr/training/configs/default.toml."),
]
DataOption = Annotated[
    list[Path] | None,
    typer.Option("--data", "-d", help="Folder of high-quality images (repeatable); replaces the config's 'data'."),
]
OutOption = Annotated[
    Path, typer.Option("--out", "-o", help="Run folder: sample bank, checkpoint.pt, model.safetensors.")
]
StepsOption = Annotated[int | None, typer.Option("--steps", help="Train until this step (overrides the config).")]
MinutesOption = Annotated[
    float | None, typer.Option("--minutes", help="Wall-clock budget: stop and checkpoint after this many minutes "
                                                 "(overrides the config's max_minutes); --resume goes on.")
]
ResumeOption = Annotated[
    bool, typer.Option("--resume", help="Continue from OUT/checkpoint.pt (with OUT/config.json unless --config).")
]


def train_command(
    config: ConfigOption = None,
    data: DataOption = None,
    out_dir: OutOption = Path("runs/train"),
    steps: StepsOption = None,
    minutes: MinutesOption = None,
    resume: ResumeOption = False,
    init: Annotated[
        str | None, typer.Option("--init", help="Start from: a preset ('tiny', 'gendr-pix'), a trtsr checkpoint or "
                                                "a diffusers UNet folder (default: the config's 'init', else tiny).")
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Train a GenDR-Pix model against the ground truth or distil it from Real-ESRGAN x4plus.

    Makes a bank of samples from the training split once (cached in OUT or 'bank_dir', one process per
    CPU core): HR crops, their degraded LR at each trained scale and, with target = "teacher", the
    teacher's output.
    Then trains with the reconstruction term (to the HR crop or the teacher), the PadCFG
    terms, masked Fourier, x8 lattice, perceptual and, from 'adv_start', adversarial losses
    as the config weights them (paper Eq. 4), AdamW and EMA. Checkpoints go
    to OUT/checkpoint.pt (resume with --resume) and the EMA model to
    OUT/model.safetensors, which `trtsr run -m` and `trtsr export -m` accept.
    Every 'holdout_every'-th image is never trained on; evaluate on it with
    `trtsr evaluate`.

    Examples:

      trtsr train -c src/trtsr/training/configs/default.toml -d photos/ -o runs/default

      trtsr train -o runs/x4 --resume --steps 5000

      trtsr train -c my.toml -o runs/gpu --minutes 9     # a fixed budget; --resume adds another
    """
    _train(config, data, out_dir, steps, resume, init, verbose, minutes)


def finetune_command(
    model: Annotated[str, typer.Argument(help="Source weights: a trtsr checkpoint, a diffusers UNet folder "
                                              "(SD2.1 or GenDR-Pix) or a preset name.")],
    config: ConfigOption = None,
    data: DataOption = None,
    out_dir: OutOption = Path("runs/finetune"),
    steps: StepsOption = None,
    minutes: MinutesOption = None,
    resume: ResumeOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Fine-tune existing weights with the same recipe as `trtsr train`.

    A 4-channel SD2.1 UNet gets fresh 192-channel conv_in/conv_out (with a warning).
    On a GPU the steps run under bf16 autocast. Use a small 'lr' (the paper: 1e-5).

    Example:

      trtsr finetune path/to/unet-folder -c my.toml -d photos/ -o runs/ft
    """
    _train(config, data, out_dir, steps, resume, model, verbose, minutes)


def _train(config: Path | None, data: list[Path] | None, out_dir: Path, steps: int | None, resume: bool,
           init: str | None, verbose: bool, minutes: float | None = None) -> None:
    with user_errors(verbose):
        check_writable(out_dir, "run folder", folder=True)
        from trtsr.errors import TrtsrError
        from trtsr.training.config import TrainConfig  # no torch: the config is checked before torch loads

        overrides = {"steps": steps, "init": init, "data": [str(d.resolve()) for d in data] if data else None,
                     "max_minutes": minutes}
        if config is not None:
            cfg = TrainConfig.from_toml(config, **overrides)
        elif resume and (out_dir / "config.json").is_file():
            cfg = TrainConfig.from_json_file(out_dir / "config.json", **overrides)
        else:
            cfg = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
        for folder in map(Path, cfg.data or ()):
            if not folder.is_dir():
                raise TrtsrError("training data folder does not exist", path=folder)
        require_extra("training", "train", "diffusers", "torch")
        from trtsr.training.loop import Trainer

        trainer = Trainer(cfg, out_dir)
        if resume:
            step = trainer.resume()
            console.print(f"resumed at step {step}")
        with _progress() as bar:
            task = bar.add_task("making samples", total=cfg.bank_size)
            console_log = not console.is_terminal
            made_of = "degrade" + (" + teacher" if cfg.teacher_scales else "")

            tenths = [0]

            def made(i: int, n: int) -> None:
                bar.update(task, completed=i, total=n)
                if console_log and (i * 10 // n > tenths[0] or i == n):
                    tenths[0] = i * 10 // n
                    console.print(f"sample {i}/{n} ({made_of})")

            train, held = trainer.prepare_data(made)
            bar.update(task, description="training", completed=trainer.step, total=cfg.steps)

            def report(step: int, total: int, result) -> None:
                bar.update(task, completed=step, description=f"training ({escape(result.short())})")
                if console_log:
                    console.print(f"step {step}/{total}: {result.short()}")

            first = trainer.step
            start = time.perf_counter()
            trainer.fit(report)
            seconds = time.perf_counter() - start
        pace = f"{trainer.step - first} steps in {seconds:.0f} s ({(trainer.step - first) / max(seconds, 1e-9):.2f}/s)"
        if trainer.device.type == "cuda":
            import torch

            pace += f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
        out.print(f"trained {len(train)} images ({len(held)} held out) to step {trainer.step} on {trainer.device}; "
                  f"{pace}; wrote {trainer.model_path} and {trainer.checkpoint_path}", markup=False)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, disable=not console.is_terminal)
