"""The trained default model ships in the package and loads everywhere `default` is accepted."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from trtsr.models.checkpoint import (
    DEFAULT_WEIGHTS,
    build_preset,
    load_model,
    read_checkpoint_metadata,
    training_history,
)
from trtsr.models.pixel import PixelUpscaler
from trtsr.training import evaluate as ev
from trtsr.training.config import TrainConfig

CONFIGS = Path(ev.__file__).with_name("configs")


def test_shipped_weights_are_the_distilled_tiny_model():
    assert DEFAULT_WEIGHTS.is_file() and DEFAULT_WEIGHTS.stat().st_size < 10_000_000
    meta = read_checkpoint_metadata(DEFAULT_WEIGHTS)
    assert meta["teacher"] == "realesrgan-x4plus" and int(meta["steps"]) > 0
    stages = _stages()
    assert stages[0]["init"] == "tiny" and all(stage["scale"] == 4 for stage in stages)
    card = DEFAULT_WEIGHTS.with_name("default.md")
    assert card.is_file() and "realesrgan-x4plus" in card.read_text().lower().replace(" ", "-")
    model = load_model("default")
    assert model.config.block_out_channels == (32, 64, 96, 96)
    assert model.unet.conv_in.weight.dtype == torch.float32  # stored fp16, loaded fp32
    seeded = build_preset("tiny")
    assert not torch.equal(model.unet.conv_out.weight, seeded.unet.conv_out.weight)


def _stages() -> list[dict]:
    return [stage["train_config"] for stage in training_history("default")]


def test_packaged_configs_are_the_shipped_recipe():
    # The card's commands reproduce the shipped weights: one packaged config per training stage.
    stages = _stages()
    names = ("default-x4.toml", "default-x4-lattice.toml")
    assert len(stages) == len(names)
    for stage, name in zip(stages, names, strict=True):
        packaged = TrainConfig.from_toml(CONFIGS / name, init=stage["init"], data=[])
        # built through TrainConfig so that fields added after a stage ran take their defaults
        assert packaged == TrainConfig(**{**stage, "data": [], "betas": tuple(stage["betas"])})


def test_finetuning_the_default_model_keeps_its_lineage():
    meta = read_checkpoint_metadata(DEFAULT_WEIGHTS)
    history = training_history("default")  # what `trtsr finetune default` records
    assert [stage["steps"] for stage in history] == [s["steps"] for s in json.loads(meta["history"])] + [
        int(meta["steps"])]
    assert history[0]["train_config"]["init"] == "tiny" and training_history("tiny") == []


def test_default_model_restores_an_unseen_photo(photo):
    # tests/data is not in the training set; a random-weight model scores far below bicubic here.
    truth = ev.prepare_truth(photo, 4)
    lr = (ev.DEGRADATIONS["bicubic"](truth, 4) * 255).round() / 255
    bicubic = F.interpolate(lr[None], scale_factor=4, mode="bicubic").clamp(0, 1)[0]
    module = PixelUpscaler(load_model("default").eval(), 4, None, io="float32")
    with torch.no_grad():
        out = module(lr.permute(1, 2, 0) * 255).permute(2, 0, 1) / 255
    base, got = ev.score(bicubic, truth, 4), ev.score(out, truth, 4)
    assert got.psnr_y > base.psnr_y - 1.0
    assert got.ssim_y > base.ssim_y - 0.03
    assert got.detail >= base.detail


def test_missing_default_weights_is_a_clear_error_not_random_weights(monkeypatch, tmp_path):
    import pytest

    from trtsr.errors import TrtsrError
    from trtsr.models import checkpoint

    monkeypatch.setattr(checkpoint, "DEFAULT_WEIGHTS", tmp_path / "default.safetensors")
    with pytest.raises(TrtsrError, match="reinstall"):
        checkpoint.load_model("default")
