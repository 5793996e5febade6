"""Real optimisation on real images, the adversarial stage, checkpoint and exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trtsr.errors import TrtsrError
from trtsr.models.checkpoint import load_model, read_checkpoint_metadata
from trtsr.training.config import TrainConfig
from trtsr.training.data import list_images, split_holdout
from trtsr.training.loop import Trainer

DATA = Path(__file__).parents[1] / "data"


def _config(**changes) -> TrainConfig:
    base = dict(data=[str(DATA)], holdout_every=0, crop=120, bank_size=4, batch=2, steps=4, adv_start=1000,
                perceptual_window=48, plain_prob=0.0, checkpoint_every=2, log_every=1, lr=1e-3, seed=0)
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def bank(teacher, tmp_path_factory):
    trainer = Trainer(_config(), tmp_path_factory.mktemp("bank"), teacher=teacher)
    trainer.prepare_data()
    return trainer.bank


def test_bank_holds_real_crops_lr_and_teacher(bank):
    assert bank["hr"].shape == (4, 3, 120, 120) and bank["lr_x4"].shape == (4, 3, 30, 30)
    assert bank["teacher_x4"].shape == bank["hr"].shape and bank["hr"].dtype == torch.uint8
    # the teacher output is close to the ground truth crop (same picture), not noise
    err = (bank["teacher_x4"].float() - bank["hr"].float()).abs().mean()
    assert float(err) < 30


def test_steps_lower_the_loss_on_real_images(teacher, bank, tmp_path):
    trainer = Trainer(_config(steps=40), tmp_path, teacher=teacher)
    trainer.bank = bank
    batch = trainer.sample()
    first = trainer.train_step(batch)
    for _ in range(24):
        last = trainer.train_step(batch)
    assert last.total < 0.6 * first.total
    assert last.l1 < 0.6 * first.l1
    assert all(v == v for v in (last.fourier, last.perceptual, last.negative))  # finite


@pytest.mark.parametrize(("term", "weight"), [
    # the x8 lattice peaks of the output and of the guided output, against the teacher's
    ("lattice", 1.0),
    # the shortfall of high-frequency detail per window against the teacher's (the full tier: the same mechanism)
    pytest.param("texture", 5.0, marks=pytest.mark.slow),
    # the pixel-wise difference of the high-frequency residuals to the teacher's
    pytest.param("highpass", 5.0, marks=pytest.mark.slow),
])
def test_optional_term_trains_down_on_real_images(teacher, bank, tmp_path, term, weight):
    trainer = Trainer(_config(**{f"{term}_weight": weight}, lr=2e-3), tmp_path, teacher=teacher)
    trainer.bank = bank
    batch = trainer.sample()
    first = getattr(trainer.train_step(batch), term)
    for _ in range(15):
        last = getattr(trainer.train_step(batch), term)
    assert first > 0 and last < 0.7 * first
    off = Trainer(_config(), tmp_path / "off", teacher=teacher)
    off.bank = bank
    assert getattr(off.train_step(batch), term) == 0.0


def test_adversarial_stage_starts_and_trains_the_heads(teacher, bank, tmp_path):
    trainer = Trainer(_config(adv_start=1), tmp_path, teacher=teacher)
    trainer.bank = bank
    trainer.train_step()
    assert trainer.disc is None
    result = trainer.train_step()
    assert trainer.disc is not None and result.adversarial > 0 and result.discriminator > 0
    heads_before = [p.detach().clone() for p in trainer.disc.heads.parameters()]
    frozen_before = [p.detach().clone() for p in trainer.disc.unet.parameters()]
    trainer.train_step()
    assert any(not torch.equal(a, b) for a, b in zip(heads_before, trainer.disc.heads.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(frozen_before, trainer.disc.unet.parameters(), strict=True))


def test_resume_continues_exactly(teacher, bank, tmp_path):
    cfg = _config(steps=6, adv_start=2, plain_prob=0.5)
    straight = Trainer(cfg, tmp_path / "a", teacher=teacher)
    straight.bank = bank
    for _ in range(3):
        straight.train_step()
    straight.save()
    resumed = Trainer(cfg, tmp_path / "a", teacher=teacher)
    resumed.bank = bank
    assert resumed.resume() == 3
    for _ in range(2):
        a, b = straight.train_step(), resumed.train_step()
        assert a.total == pytest.approx(b.total, rel=1e-6)
    for p, q in zip(straight.student.parameters(), resumed.student.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)
    for p, q in zip(straight.ema.parameters(), resumed.ema.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def test_resume_names_a_checkpoint_whose_discriminator_differs(teacher, bank, tmp_path):
    cfg = _config(steps=6, adv_start=1, disc_detail_head=True)
    trainer = Trainer(cfg, tmp_path, teacher=teacher)
    trainer.bank = bank
    trainer.train_step()
    trainer.train_step()
    path = trainer.save()
    state = torch.load(path, weights_only=True, map_location="cpu")
    # heads that do not match: as if written without the head on the high-frequency residual
    state["disc"] = {k: v for k, v in state["disc"].items() if not k.startswith("heads.0.")}
    torch.save(state, path)
    with pytest.raises(TrtsrError, match="discriminator has other heads") as caught:
        Trainer(cfg, tmp_path, teacher=teacher).resume()
    assert caught.value.path == path


def test_fit_writes_a_loadable_model(teacher, bank, tmp_path):
    trainer = Trainer(_config(steps=3), tmp_path, teacher=teacher)
    trainer.bank = bank
    trainer.fit()
    meta = read_checkpoint_metadata(trainer.model_path)
    assert meta["teacher"] == "realesrgan-x4plus" and meta["steps"] == "3"
    model = load_model(trainer.model_path)
    for p, q in zip(model.parameters(), trainer.ema.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_non_finite_loss_keeps_the_last_good_checkpoint(teacher, bank, tmp_path):
    trainer = Trainer(_config(steps=5, checkpoint_every=2, log_every=100), tmp_path, teacher=teacher)
    trainer.bank = bank
    trainer.train_step()
    trainer.train_step()
    trainer.save()
    saved = {name: (tmp_path / name).read_bytes() for name in ("checkpoint.pt", "model.safetensors")}
    ema_before = [p.detach().clone() for p in trainer.ema.parameters()]
    live_before = [p.detach().clone() for p in trainer.student.parameters()]
    hr, lr, te = trainer.sample()
    lr = lr.clone()
    lr[0, 0, 0, 0] = float("nan")  # as an overflow in the forward pass: the weights are still finite
    terms = trainer.advance((hr, lr, te))  # queued without a read: step 3 is flagged on the device, not applied
    assert trainer.step == 3 and terms.shape == (12,)
    with pytest.raises(TrtsrError, match=r"loss became nan at step 3; .* last good checkpoint \(step 2\) is kept"):
        trainer.fit()  # steps 4 and 5 are skipped too; the flag is read before the checkpoint at step 4
    assert trainer.step == 2
    assert {name: (tmp_path / name).read_bytes() for name in saved} == saved
    for before, after in zip(ema_before, trainer.ema.parameters(), strict=True):
        assert torch.equal(before, after)
    for before, after in zip(live_before, trainer.student.parameters(), strict=True):
        assert torch.equal(before, after)
    # the optimiser's step count did not move either: the skipped steps left no trace in its state
    assert all(int(state["step"]) == 2 for state in trainer.opt.state.values())


def test_fit_reads_the_losses_only_at_log_steps(teacher, bank, tmp_path, monkeypatch):
    from trtsr.training import loop

    trainer = Trainer(_config(steps=7, log_every=3, checkpoint_every=100), tmp_path, teacher=teacher)
    trainer.bank = bank
    reads = []
    real_read = loop.StepLosses.read
    monkeypatch.setattr(loop.StepLosses, "read", classmethod(lambda cls, v: reads.append(trainer.step)
                                                             or real_read(v)))
    checks = []
    real_check = trainer.check_finite
    monkeypatch.setattr(trainer, "check_finite", lambda: checks.append(trainer.step) or real_check())
    seen = []
    history = trainer.fit(lambda step, steps, result: seen.append((step, result.total)))
    assert reads == [3, 6, 7] and [step for step, _ in seen] == [3, 6, 7]
    assert checks == [3, 6, 7, 7]  # each read, and the final checkpoint
    assert [r.total for r in history] == [total for _, total in seen] and all(r.total > 0 for r in history)


def test_holdout_split_is_fixed_and_disjoint():
    images = list_images([DATA])
    train, held = split_holdout(images, 3)
    assert not set(train) & set(held) and len(train) + len(held) == len(images)
    assert held == [images[i] for i in range(2, len(images), 3)]


def test_bad_config_and_checkpoint_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("crop = 100\nsteps = 0\n")
    with pytest.raises(TrtsrError, match=r"bad.toml.*crop.*steps"):
        TrainConfig.from_toml(bad)
    (tmp_path / "typo.toml").write_text("stepz = 3\n")
    with pytest.raises(TrtsrError, match="stepz"):
        TrainConfig.from_toml(tmp_path / "typo.toml")
    with pytest.raises(TrtsrError, match="no training data"):
        list_images([])


def test_residual_start_returns_the_bicubic_input():
    import math

    from trtsr.training.loop import initial_model

    model = initial_model(_config(alpha_bar=0.99, zero_init_output=True)).eval()
    assert model.config.alpha_bar == 0.99 and model.config.name == "tiny"
    x = torch.rand(1, 3, 56, 56) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(model.restore(x, None), x / math.sqrt(0.99), atol=1e-5)
        pos, _ = model.padcfg_branches(x)
        assert torch.allclose(pos, x / math.sqrt(0.99), atol=1e-5)
    with pytest.raises(TrtsrError, match="preset init only"):
        initial_model(_config(init=str(DATA / "0030.jpg"), alpha_bar=0.9))


def test_ground_truth_target_trains_every_scale_without_the_teacher(tmp_path, monkeypatch):
    import trtsr.training.loop as loop

    def no_teacher():
        raise AssertionError("a ground-truth run with no perceptual term must not load the teacher")

    monkeypatch.setattr(loop, "load_teacher", no_teacher)
    cfg = _config(target="truth", scales=[2, 3, 4], degradation="moderate", reconstruction="charbonnier",
                  perceptual_weight=0.0, guided_weight=1.0, negative_weight=0.1, steps=30)
    trainer = Trainer(cfg, tmp_path)
    trainer.prepare_data()
    bank = trainer.bank
    assert not [k for k in bank if k.startswith("teacher")] and trainer.teacher is None
    assert {k: tuple(v.shape) for k, v in bank.items() if k.startswith("lr")} == {
        "lr_x2": (4, 3, 60, 60), "lr_x3": (4, 3, 40, 40), "lr_x4": (4, 3, 30, 30)}
    seen = set()
    for _ in range(12):
        hr, lr, te = trainer.sample()
        assert te is None and hr.shape[-1] == 120
        seen.add(120 // lr.shape[-1])
    assert seen == {2, 3, 4}
    batch = trainer.sample()
    first = trainer.train_step(batch)
    assert first.guided > 0 and first.perceptual == 0.0
    for _ in range(20):
        last = trainer.train_step(batch)
    # the reconstruction and the guided output both move towards the HR crop itself
    assert last.l1 < 0.7 * first.l1 and last.guided < 0.7 * first.guided


def test_training_config_checks_the_new_keys():
    with pytest.raises(TrtsrError, match="teacher target trains one scale"):
        _config(scales=[2, 4])
    with pytest.raises(TrtsrError, match="must include scale 4"):
        _config(target="truth", scales=[2, 3])
    with pytest.raises(TrtsrError, match="target must be one of"):
        _config(target="gt")
    with pytest.raises(TrtsrError, match="multiple of 8 and of every scale"):
        _config(target="truth", scales=[3, 4], crop=128)
    with pytest.raises(TrtsrError, match="unshuffle must be"):
        _config(unshuffle=3)


def test_cosine_decay_runs_from_lr_to_a_twentieth(tmp_path):
    trainer = Trainer(_config(target="truth", perceptual_weight=0.0, lr=1e-3, lr_decay="cosine", steps=100),
                      tmp_path)
    assert trainer.learning_rate(0) == pytest.approx(1e-3)
    assert trainer.learning_rate(50) == pytest.approx((1e-3 + 5e-5) / 2)
    assert trainer.learning_rate(100) == pytest.approx(5e-5)
    assert Trainer(_config(target="truth", perceptual_weight=0.0), tmp_path / "c").learning_rate(77) == 1e-3


def test_unshuffle_override_builds_the_finer_preset():
    from trtsr.training.loop import initial_model

    model = initial_model(_config(unshuffle=4, alpha_bar=0.99, zero_init_output=True))
    assert model.config.unshuffle == 4 and model.config.alignment == 32
    assert model.unet.conv_in.in_channels == 48


def _checkpoint_parts():
    """benchmarks/gpu/checkpoint_parts.py, which carries checkpoints through the GPU machine's file limit."""
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu" / "checkpoint_parts.py"
    spec = importlib.util.spec_from_file_location("checkpoint_parts", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checkpoint_split_into_parts_and_joined_resumes_exactly(teacher, bank, tmp_path):
    """A checkpoint larger than a part is split into parts no larger than it, beside an index; joined back, it
    resumes exactly; a changed part is one line."""
    parts_tool = _checkpoint_parts()
    cfg = _config(steps=6, adv_start=1000)
    straight = Trainer(cfg, tmp_path / "a", teacher=teacher)
    straight.bank = bank
    for _ in range(2):
        straight.train_step()
    path = straight.save()
    files = parts_tool.split(path, 1_000_000)
    parts = sorted((tmp_path / "a").glob("checkpoint.pt.part*"))
    assert len(parts) > 3 and all(p.stat().st_size <= 1_000_000 for p in parts)
    assert files[-1] == path and parts_tool.is_index(path)
    parts_tool.join(path)
    assert not parts_tool.is_index(path) and not list((tmp_path / "a").glob("checkpoint.pt.part*"))
    resumed = Trainer(cfg, tmp_path / "a", teacher=teacher)
    resumed.bank = bank
    assert resumed.resume() == 2
    a, b = straight.train_step(), resumed.train_step()
    assert a.total == pytest.approx(b.total, rel=1e-6)
    parts_tool.split(path, 1_000_000)
    parts[1].write_bytes(b"changed")
    with pytest.raises(TrtsrError, match="parts do not add up"):
        parts_tool.join(path)


def test_a_wall_clock_budget_stops_the_run_with_a_checkpoint(teacher, bank, tmp_path):
    trainer = Trainer(_config(steps=10_000, max_minutes=0.05, checkpoint_every=10_000), tmp_path, teacher=teacher)
    trainer.bank = bank
    history = trainer.fit()
    assert 0 < trainer.step < 10_000 and len(history) == trainer.step  # log_every = 1: every step read
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "model.safetensors").is_file()
    again = Trainer(_config(steps=10_000, max_minutes=0.05), tmp_path, teacher=teacher)
    assert again.resume() == trainer.step


def test_a_teacher_trunk_gives_the_same_features(teacher, tmp_path):
    from trtsr.training.teacher import load_teacher_file, save_trunk

    path = save_trunk(tmp_path / "trunk.safetensors")
    assert path.stat().st_size < 2_000_000  # one RRDB block in fp16
    trunk = load_teacher_file(path)
    assert trunk.trunk_only and not teacher.trunk_only
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for ours, theirs in zip(trunk.features(x, 3), teacher.features(x, 3), strict=True):
        assert torch.allclose(ours, theirs, atol=2e-2)  # fp16 weights
    with pytest.raises(TrtsrError, match="needs the whole teacher"):
        Trainer(_config(target="teacher", teacher_weights=str(path)), tmp_path / "t")


def test_the_bank_is_the_same_whichever_processes_make_it():
    from trtsr.training.data import bank_workers, build_bank

    images = list_images([DATA])
    args = dict(crop=120, scale=(2, 3, 4), size=10, seed=5, teacher=None, degradation="moderate")
    alone, shared = build_bank(images, **args), build_bank(images, workers=2, **args)
    assert set(alone) == {"hr", "lr_x2", "lr_x3", "lr_x4"}
    for key in alone:
        assert torch.equal(alone[key], shared[key]), key
    assert not torch.equal(alone["hr"][0], alone["hr"][1])  # rows differ: each has its own generator
    assert bank_workers(0, 100) == 1 and bank_workers(3, 10_000) == 3 and bank_workers(64, 1024) == 8


def _first_step(batch, **changes):
    cfg = _config(target="truth", scales=[2, 3, 4], degradation="moderate", perceptual_weight=0.0,
                  guided_weight=1.0, negative_weight=0.1, seed=1, **changes)
    return Trainer(cfg, Path("/nonexistent")).train_step(batch)


@pytest.mark.parametrize("scale", [2, 4])
def test_own_guidance_trains_the_guided_output_at_the_scales_default_w(photo, scale):
    from trtsr.defaults import DEFAULT_MODEL_GUIDANCE

    hr = photo[None, :, :120, :120].contiguous()
    lr = torch.nn.functional.interpolate(hr, scale_factor=1 / scale, mode="area")
    own = _first_step((hr, lr, None), own_guidance=True)
    fixed = _first_step((hr, lr, None), guidance=DEFAULT_MODEL_GUIDANCE[scale])
    other = _first_step((hr, lr, None), guidance=3.0)
    assert own.guided > 0 and own.guided == pytest.approx(fixed.guided, rel=1e-6)
    assert abs(own.guided - other.guided) > 1e-4


def test_detail_by_scale_weighs_the_texture_term_per_scale(photo):
    hr = photo[None, :, :120, :120].contiguous()
    lr = torch.nn.functional.interpolate(hr, scale_factor=1 / 2, mode="area")
    off = _first_step((hr, lr, None), texture_weight=0.5, detail_by_scale=[0.0, 1.0, 1.0])
    none = _first_step((hr, lr, None), texture_weight=0.0)
    on = _first_step((hr, lr, None), texture_weight=0.5)
    assert off.texture > 0 and off.total == pytest.approx(none.total, rel=1e-6)
    assert on.total == pytest.approx(none.total + 0.5 * on.texture, rel=1e-5)
    with pytest.raises(TrtsrError, match="one factor >= 0 per trained scale"):
        _config(target="truth", scales=[2, 3, 4], detail_by_scale=[1.0, 1.0])


def test_anchored_takes_the_teachers_detail_on_the_truths_lowest_frequencies(photo):
    from trtsr.training.losses import anchored, gaussian_blur

    truth = photo[None, :, :96, :96] * 2 - 1
    shifted = truth + torch.tensor([0.08, -0.05, 0.02]).view(1, 3, 1, 1)  # a colour shift: all low frequency
    torch.testing.assert_close(anchored(truth, shifted, 3.0), truth, atol=1e-5, rtol=0)
    checker = (torch.arange(96).view(1, 1, 96, 1) + torch.arange(96).view(1, 1, 1, 96)) % 2 * 0.1 - 0.05
    sharper = truth + checker  # detail far above the anchor's band
    got = anchored(truth, sharper + 0.08, 3.0)
    torch.testing.assert_close(got - truth, checker - gaussian_blur(checker.expand(1, 3, 96, 96), 3.0),
                               atol=1e-5, rtol=0)


def _distill_step(batch, teacher, target="distill", **changes):
    cfg = _config(target=target, scales=[2, 4], degradation="moderate", perceptual_weight=0.0, guided_weight=1.0,
                  negative_weight=0.1, seed=1, **changes)
    return Trainer(cfg, Path("/nonexistent"), teacher=teacher).train_step(batch)


def test_distill_teaches_the_guided_output_the_teacher_and_the_positive_branch_the_truth(photo, teacher):
    hr = photo[None, :, :120, :120].contiguous()
    lr = torch.nn.functional.interpolate(hr, scale_factor=1 / 4, mode="area")
    truth = _distill_step((hr, lr, None), teacher, target="truth")
    # a teacher that differs from the truth only by a colour shift: the anchor removes it, the terms are the truth's
    shifted = _distill_step((hr, lr, (hr + 0.05).clamp(0, 1)), teacher)
    assert shifted.l1 == pytest.approx(truth.l1, rel=1e-6)
    assert shifted.guided == pytest.approx(truth.guided, rel=0.02)  # only where the clamp cut the shift
    # a teacher with its own detail: the guided term moves, the positive branch's does not
    grain = torch.rand(hr.shape, generator=torch.Generator().manual_seed(0)) * 0.2 - 0.1
    detailed = _distill_step((hr, lr, (hr + grain).clamp(0, 1)), teacher)
    assert detailed.l1 == pytest.approx(truth.l1, rel=1e-6)
    assert detailed.guided - truth.guided > 5e-3  # the grain the guided output does not have (0.0085 measured)


def test_distill_bank_keeps_teacher_outputs_for_the_distilled_scales_only(teacher, tmp_path):
    cfg = _config(target="distill", scales=[2, 4], distill_scales=[4], degradation="moderate", guided_weight=1.0,
                  perceptual_weight=0.0)
    assert cfg.needs_teacher and cfg.teacher_scales == (4,)
    trainer = Trainer(cfg, tmp_path, teacher=teacher)
    trainer.prepare_data()
    assert sorted(trainer.bank) == ["hr", "lr_x2", "lr_x4", "teacher_x4"]
    assert trainer.bank["teacher_x4"].shape == trainer.bank["hr"].shape
    outputs = {120 // lr.shape[-1]: te for hr, lr, te in (trainer.sample() for _ in range(12))}
    assert outputs[4] is not None and outputs[4].shape == (2, 3, 120, 120) and outputs[2] is None
    assert _config(target="distill", scales=[2, 3, 4], guided_weight=1.0).teacher_scales == (2, 3, 4)
    with pytest.raises(TrtsrError, match="set guided_weight > 0"):
        _config(target="distill", guided_weight=0.0)
    with pytest.raises(TrtsrError, match="must be among the trained scales"):
        _config(target="distill", scales=[2, 4], distill_scales=[3], guided_weight=1.0)


def test_the_distill_recipe_builds_the_small_preset_within_the_shipping_limit():
    import trtsr.training
    from trtsr.training.loop import initial_model

    cfg = TrainConfig.from_toml(Path(trtsr.training.__file__).parent / "configs" / "distill.toml")
    assert cfg.target == "distill" and cfg.own_guidance and cfg.teacher_scales == (4,) and cfg.scales == (2, 3, 4)
    assert cfg.clean_share == 0.5 and cfg.cell_weight == 0.0  # run 3: the cell term had held the network at its input
    model = initial_model(cfg)
    assert model.config.block_out_channels[0] == 64 and model.config.unshuffle == 8
    assert 2 * sum(p.numel() for p in model.parameters()) < 30e6  # shipped in fp16: at most 30 MB
    assert float(model.unet.conv_out.weight.abs().max()) == 0.0  # starts as its bicubic input


def test_clean_share_swaps_drawn_rows_for_the_clean_downscale_and_the_truth(photo, tmp_path):
    from trtsr.training.degrade import bicubic_down

    crops = torch.stack([photo[:, 30 * i:30 * i + 120, 100 - 30 * i:220 - 30 * i] for i in range(4)])
    u8 = lambda t: (t * 255).round().clamp(0, 255).to(torch.uint8)  # noqa: E731
    noisy = (bicubic_down(crops, 4)
             + torch.rand(4, 3, 30, 30, generator=torch.Generator().manual_seed(0)) * 0.2 - 0.1).clamp(0, 1)
    bank = {"hr": u8(crops), "lr_x4": u8(noisy), "teacher_x4": u8((1 - crops) * 0.5)}  # far from the truth
    kinds = []
    for share in (0.0, 0.5, 1.0):
        cfg = _config(target="distill", guided_weight=1.0, perceptual_weight=0.0, batch=4, clean_share=share)
        trainer = Trainer(cfg, tmp_path)
        trainer.bank = bank
        for _ in range(10):
            hr, lr, te = trainer.sample()
            clean = torch.nn.functional.interpolate(hr, size=(30, 30), mode="bicubic", antialias=True).clamp(0, 1)
            for row in range(4):
                is_clean = float((lr[row] - clean[row]).abs().max()) <= 1 / 255 + 1e-6
                # a clean row's target is its truth; a degraded row keeps the teacher's output from the bank
                assert bool(torch.equal(te[row], hr[row])) == is_clean
                assert float((lr[row] * 255 - (lr[row] * 255).round()).abs().max()) < 1e-3  # 8-bit input
                kinds.append((share, is_clean))
    shares = {s: sum(c for t, c in kinds if t == s) / 40 for s in (0.0, 0.5, 1.0)}
    assert shares[0.0] == 0.0 and shares[1.0] == 1.0 and 0.25 < shares[0.5] < 0.75
    with pytest.raises(TrtsrError, match="clean_share must lie in"):
        _config(clean_share=1.5)
