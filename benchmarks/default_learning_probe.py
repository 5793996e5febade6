"""How fast the default model's network learns beyond bicubic on unseen crops, by what its batches hold.

    python benchmarks/default_learning_probe.py runs/distill/bank-*.pt --clean-share 0 0.5 1 [--steps 600]

From scratch (the `small` preset, alpha_bar 0.99, zero conv_out), the plain branch (w = 1) and Charbonnier alone,
batch 8, AdamW lr 1e-3, at x4 on a training bank (`trtsr train` writes it into its run folder): batches drawn
from the bank's first 2000 crops, each crop's input the bank's degraded one or, with probability
`--clean-share`, its clean bicubic downscale. Every 200 steps it prints the RGB PSNR gain over bicubic on 40
crops of the bank that no batch draws (every 10th of the last 400), clean and with the bank's input. The model
card's "The same model 13200 steps further" section holds its figures.

`--fixed-batch N`: instead, N steps on one batch (crops 0, 300, ..., 2100), printing every 50 steps its own
PSNR (does the network fit at all?). `--target-scores`: instead, the x4 teacher's output and the anchored
distillation target (its frequencies below a blur of sigma 3 / 1.5 from the ground truth) scored against the
ground truth (`trtsr.training.evaluate.score`) on every 8th crop, beside torch's bicubic.

`--recipe CONFIG [--resume CHECKPOINT] [--lr LR]`: instead, the whole training step of that config (PadCFG, the
teacher's anchored target, every loss term, all its scales; `trtsr.training.loop.Trainer`) from scratch or from a
run's checkpoint, with `--clean-share` as the config's `clean_share`, on the same first 2000 crops, printing the
positive branch's gain over bicubic at x4 on the same 40 unseen crops.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bank", type=Path)
    parser.add_argument("--clean-share", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--fixed-batch", type=int, default=0, metavar="N")
    parser.add_argument("--target-scores", action="store_true")
    parser.add_argument("--recipe", type=Path, metavar="CONFIG")
    parser.add_argument("--resume", type=Path, metavar="CHECKPOINT")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="with --recipe: config values changed (TOML values: plain_prob=1.0)")
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    from trtsr.training import losses
    from trtsr.training.config import TrainConfig
    from trtsr.training.degrade import bicubic_down
    from trtsr.training.loop import initial_model
    from trtsr.training.networks import plain_branch

    torch.set_num_threads(2)
    bank = torch.load(args.bank, weights_only=True)
    if "lr_x4" not in bank or len(bank["hr"]) < 2400:
        raise SystemExit(f"{args.bank}: needs an x4 bank of at least 2400 crops")
    truth = bank["hr"].float() / 255
    size = tuple(truth.shape[-2:])

    def upscale(lr: torch.Tensor) -> torch.Tensor:
        return F.interpolate(lr * 2 - 1, size=size, mode="bicubic", align_corners=False).clamp(-1, 1)

    def clean(idx: torch.Tensor) -> torch.Tensor:
        return bicubic_down(truth[idx], 4)

    def degraded(idx: torch.Tensor) -> torch.Tensor:
        return bank["lr_x4"][idx].float() / 255

    def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(10 * torch.log10(4 / ((a - b) ** 2).mean()))

    if args.target_scores:
        target_scores(bank, truth)
        return
    if args.fixed_batch:
        torch.manual_seed(0)
        net = initial_model(TrainConfig(init="small", alpha_bar=0.99, zero_init_output=True)).train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
        idx = torch.arange(0, 2400, 300)
        x, target = upscale(degraded(idx)), truth[idx] * 2 - 1
        print(f"fixed batch, bicubic: {psnr(x, target):.3f} dB", flush=True)
        for step in range(args.fixed_batch + 1):
            y = plain_branch(net, x)
            if step % 50 == 0:
                print(f"fixed batch, step {step}: {psnr(y.detach(), target):.3f} dB", flush=True)
            loss = losses.charbonnier(y, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return
    held = torch.arange(2000, 2400, 10)
    target = truth[held] * 2 - 1
    sets = {"clean": upscale(clean(held)), "bank input": upscale(degraded(held))}
    baseline = {k: psnr(x, target) for k, x in sets.items()}

    def gains(net) -> str:
        """The plain branch's gain over bicubic on the unseen crops, one printable part per input."""
        net.eval()
        with torch.no_grad():
            out = {k: psnr(plain_branch(net, x), target) - baseline[k] for k, x in sets.items()}
        net.train()
        return ", ".join(f"{k} {v:+.3f} dB" for k, v in out.items())

    if args.recipe:
        recipe_gains(args, bank, gains)
        return
    for share in args.clean_share:
        torch.manual_seed(0)
        net = initial_model(TrainConfig(init="small", alpha_bar=0.99, zero_init_output=True)).train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
        generator = torch.Generator().manual_seed(1)
        for step in range(args.steps + 1):
            if step % 200 == 0:
                print(f"clean share {share:g}, step {step}: {gains(net)}", flush=True)
            if step == args.steps:
                break
            idx = torch.randint(0, 2000, (8,), generator=generator)
            use_clean = torch.rand(8, generator=generator) < share
            lr = torch.where(use_clean[:, None, None, None], clean(idx), degraded(idx))
            loss = losses.charbonnier(plain_branch(net, upscale(lr)), truth[idx] * 2 - 1)
            opt.zero_grad()
            loss.backward()
            opt.step()


def recipe_gains(args, bank, gains) -> None:
    import tempfile

    import tomllib
    import torch

    from trtsr.training.config import TrainConfig
    from trtsr.training.loop import Trainer

    seen = {k: v[:2000] for k, v in bank.items()}
    for share in args.clean_share:
        torch.manual_seed(0)
        changes = {"clean_share": share, "lr_decay": "none"} | ({"lr": args.lr} if args.lr else {})
        changes |= tomllib.loads("\n".join(args.set))
        cfg = TrainConfig.from_toml(args.recipe, **changes)
        with tempfile.TemporaryDirectory() as scratch:
            trainer = Trainer(cfg, scratch)
            first = trainer.resume(args.resume) if args.resume else 0
            trainer.bank = seen
            for step in range(args.steps + 1):
                if step % 200 == 0:
                    trainer.check_finite()
                    print(f"{args.recipe.name} {' '.join(args.set)}, clean share {share:g}, lr {cfg.lr:g}, "
                          f"step {first}+{step}: {gains(trainer.student)}", flush=True)
                if step == args.steps:
                    break
                trainer.advance()


def target_scores(bank, truth) -> None:
    import statistics

    import torch.nn.functional as F

    from trtsr.training.evaluate import score
    from trtsr.training.losses import anchored

    rows: dict[str, list] = {"bicubic": [], "teacher": [], "anchored sigma 3": [], "anchored sigma 1.5": []}
    for i in range(0, len(truth), 8):
        hr, teacher = truth[i], bank["teacher_x4"][i].float() / 255
        lr = bank["lr_x4"][i].float() / 255
        outs = {"bicubic": F.interpolate(lr[None], scale_factor=4, mode="bicubic", align_corners=False)[0].clamp(0, 1),
                "teacher": teacher, "anchored sigma 3": anchored(hr[None], teacher[None], 3.0)[0],
                "anchored sigma 1.5": anchored(hr[None], teacher[None], 1.5)[0]}
        for name, out in outs.items():
            s = score(out, hr, 4)
            rows[name].append((s.psnr_y, s.detail))
    for name, scores in rows.items():
        print(f"{name}: Y-PSNR {statistics.fmean(p for p, _ in scores):.2f} dB, detail "
              f"{statistics.median(d for _, d in scores):.3f} (median), {len(scores)} crops")


if __name__ == "__main__":
    main()
