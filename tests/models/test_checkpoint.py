"""Checkpoint round trips and the errors that name what is wrong."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from trtsr.errors import TrtsrError
from trtsr.models import ModelConfig, build_preset, load_model, save_checkpoint
from trtsr.models.checkpoint import load_diffusers_folder


def _outputs_equal(a, b) -> bool:
    x = torch.rand(1, 3, 56, 56, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        return torch.equal(a.restore(x, 1.8), b.restore(x, 1.8))


def test_round_trip(tmp_path):
    model = build_preset("tiny")
    with torch.no_grad():
        model.prompt_embeds.mul_(0.5)  # differ from a fresh preset
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    loaded = load_model(path)
    assert loaded.config == model.config
    assert _outputs_equal(model.eval(), loaded)
    assert not list(tmp_path.glob(".*")), "temporary files left behind"


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(TrtsrError, match="no such model file") as err:
        load_model(tmp_path / "nope.safetensors")
    assert "nope.safetensors" in str(err.value)


def test_not_a_safetensors_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(TrtsrError, match="not a safetensors checkpoint"):
        load_model(bad)


def test_foreign_safetensors_is_rejected(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(TrtsrError, match="not a trtsr checkpoint"):
        load_model(path)


def test_mismatched_keys_are_named(tmp_path):
    from safetensors.torch import load_file, save_file

    path = save_checkpoint(build_preset("tiny"), tmp_path / "m.safetensors")
    tensors = load_file(str(path))
    tensors.pop("unet.conv_in.weight")
    tensors["unet.extra.weight"] = torch.zeros(1)
    tensors["unet.conv_out.bias"] = torch.zeros(7)
    meta = {"format": "trtsr-gendr-pix/1", "config": build_preset("tiny").config.to_json()}
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(TrtsrError) as err:
        load_model(path)
    message = str(err.value)
    assert "conv_in.weight" in message and "extra.weight" in message and "conv_out.bias" in message
    assert "\n" not in message


def _diffusers_folder(tmp_path, in_channels: int):
    from diffusers import UNet2DConditionModel

    kwargs = ModelConfig(name="t", block_out_channels=(32, 64, 96, 96), attention_head_dim=(1, 2, 3, 3),
                         layers_per_block=1, cross_attention_dim=64).unet_kwargs()
    kwargs.update(in_channels=in_channels, out_channels=in_channels)
    folder = tmp_path / f"unet{in_channels}"
    UNet2DConditionModel(**kwargs).save_pretrained(folder)
    return folder


def test_diffusers_gendr_pix_folder_loads_without_warning(tmp_path):
    folder = _diffusers_folder(tmp_path, 192)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", message=".*prompt_embeds.*")
        model = load_diffusers_folder(folder)
    assert model.unet.conv_in.in_channels == 192


def test_sd21_style_folder_gets_fresh_192_channel_layers_and_a_warning(tmp_path):
    folder = _diffusers_folder(tmp_path, 4)
    with pytest.warns(UserWarning, match="fine-tuned"):
        model = load_model(folder)
    assert model.unet.conv_in.in_channels == 192 and model.unet.conv_out.out_channels == 192
    # The body's weights came from the folder, not from a fresh init.
    from diffusers import UNet2DConditionModel

    source = UNet2DConditionModel.from_pretrained(folder)
    assert torch.equal(source.down_blocks[0].resnets[0].conv1.weight, model.unet.down_blocks[0].resnets[0].conv1.weight)


def test_folder_without_config(tmp_path):
    with pytest.raises(TrtsrError, match="no config.json"):
        load_model(tmp_path)


def test_bad_config_json(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(TrtsrError, match="not valid JSON"):
        load_model(tmp_path)


def test_unknown_config_keys(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "odd.safetensors"
    config = json.loads(build_preset("tiny").config.to_json())
    config["wings"] = 2
    save_file({"prompt_embeds": torch.zeros(2, 77, 64)}, str(path),
              metadata={"format": "trtsr-gendr-pix/1", "config": json.dumps(config)})
    with pytest.raises(TrtsrError, match="wings"):
        load_model(path)
