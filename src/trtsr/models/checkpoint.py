"""Loading and saving GenDR-Pix weights.

Accepted sources:
- a preset name: `tiny` or `gendr-pix` (seeded random weights: for tests, export
  and engine work where the values do not matter), or `default`, the trained
  model shipped in the package;
- a trtsr checkpoint: one safetensors file holding `unet.*`, `prompt_embeds` and
  the model config in its metadata;
- a diffusers UNet folder (`config.json` + weights). A Stable Diffusion 2.1 UNet
  with 4-channel conv_in/conv_out gets fresh 192-channel ones and a warning: it
  must be fine-tuned before it restores anything (the paper's recipe).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from pathlib import Path

import torch

from trtsr.catalog import GENDR_FORMAT
from trtsr.errors import TrtsrError
from trtsr.files import atomic_path
from trtsr.models.config import PRESETS, ModelConfig
from trtsr.models.pixel import GenDRPix
from trtsr.paths import default_weights

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = GENDR_FORMAT  # the catalog tells these files apart by it, without torch
DEFAULT_WEIGHTS = default_weights()
PRESET_SEED = 0


def build_preset(name: str, *, seed: int = PRESET_SEED, **changes) -> GenDRPix:
    """A preset architecture with reproducible random weights; `changes` replace config fields (e.g. alpha_bar)."""
    config = dataclasses.replace(PRESETS[name], **changes) if changes else PRESETS[name]
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return GenDRPix(config)
    finally:
        torch.random.set_rng_state(state)


def load_model(source: str | Path) -> GenDRPix:
    """Load a model by preset name or path; see the module docstring for what is accepted."""
    text = str(source)
    if text == "default":
        if not DEFAULT_WEIGHTS.is_file():
            raise TrtsrError("the package's default weights are missing; reinstall trtsr "
                             "(pip install --force-reinstall trtsr)", path=DEFAULT_WEIGHTS)
        return load_checkpoint(DEFAULT_WEIGHTS)
    if text in PRESETS and not Path(text).exists():
        return build_preset(text)
    path = Path(text)
    if not path.exists():
        choices = ", ".join(["default", *PRESETS])
        raise TrtsrError(f"no such model file or folder (presets: {choices})", path=path)
    if path.is_dir():
        return load_diffusers_folder(path)
    return load_checkpoint(path)


def save_checkpoint(model: GenDRPix, path: str | Path, *, extra_metadata: dict[str, str] | None = None,
                    dtype: torch.dtype | None = None) -> Path:
    """Write a trtsr checkpoint (safetensors) atomically; `dtype` stores floating tensors in that type
    (loading always gives a float32 model)."""
    from safetensors.torch import save_file

    def prepare(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().cpu()
        return (t.to(dtype) if dtype is not None and t.is_floating_point() else t).contiguous()

    path = Path(path)
    tensors = {f"unet.{k}": prepare(v) for k, v in model.unet.state_dict().items()}
    tensors["prompt_embeds"] = prepare(model.prompt_embeds)
    metadata = {"format": CHECKPOINT_FORMAT, "config": model.config.to_json()}
    metadata.update(extra_metadata or {})
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_checkpoint_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception as exc:  # safetensors raises several types for a bad header
        raise TrtsrError(f"not a safetensors checkpoint ({_short(exc)})", path=path) from None


def training_history(init: str | Path) -> list[dict]:
    """The training stages that made the weights at `init` (a path or 'default'), oldest first.

    Each is {"train_config": {...}, "steps": n}. Empty for a preset or a checkpoint trtsr did
    not train (e.g. a diffusers folder). A training run stores the stages of its init weights
    in its model's metadata (key `history`), so fine-tuned weights keep their recipe.
    """
    path = DEFAULT_WEIGHTS if str(init) == "default" else Path(init)
    if not path.is_file():
        return []
    meta = read_checkpoint_metadata(path)
    if "train_config" not in meta:
        return []
    earlier = json.loads(meta.get("history", "[]"))
    return [*earlier, {"train_config": json.loads(meta["train_config"]), "steps": int(meta.get("steps", 0))}]


def load_checkpoint(path: str | Path) -> GenDRPix:
    from safetensors.torch import load_file

    path = Path(path)
    metadata = read_checkpoint_metadata(path)
    if metadata.get("format") != CHECKPOINT_FORMAT or "config" not in metadata:
        raise TrtsrError(
            f"not a trtsr checkpoint (metadata 'format' must be {CHECKPOINT_FORMAT!r}); "
            "for a diffusers UNet pass its folder",
            path=path,
        )
    try:
        config = ModelConfig.from_dict(json.loads(metadata["config"]))
    except (ValueError, TypeError) as exc:
        raise TrtsrError(f"bad model config in checkpoint: {exc}", path=path) from None
    tensors = load_file(str(path))
    if "prompt_embeds" not in tensors:
        raise TrtsrError("checkpoint has no 'prompt_embeds' tensor", path=path)
    model = GenDRPix(config, prompt_embeds=_checked_embeds(tensors.pop("prompt_embeds"), config, path))
    unet_state = {k[len("unet."):]: v for k, v in tensors.items() if k.startswith("unet.")}
    stray = sorted(k for k in tensors if not k.startswith("unet."))
    if stray:
        raise TrtsrError(f"unexpected tensors in checkpoint: {_names(stray)}", path=path)
    _load_state(model.unet, unet_state, path)
    return model.eval()


def load_diffusers_folder(folder: str | Path) -> GenDRPix:
    """A diffusers `UNet2DConditionModel` folder, optionally with `prompt_embeds.safetensors`."""
    folder = Path(folder)
    config_file = folder / "config.json"
    if not config_file.is_file():
        unet_sub = folder / "unet" / "config.json"
        if unet_sub.is_file():
            return load_diffusers_folder(folder / "unet")
        raise TrtsrError("folder has no config.json: not a diffusers UNet folder", path=folder)
    try:
        unet_config = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise TrtsrError(f"config.json is not valid JSON ({exc.msg})", path=config_file) from None
    config = _config_from_unet(unet_config, folder)
    state = _read_diffusers_weights(folder)
    model = GenDRPix(config, prompt_embeds=_folder_embeds(folder, config))
    source_in = unet_config.get("in_channels", 4)
    if source_in != config.in_channels:
        warnings.warn(
            f"{folder}: a {source_in}-channel latent UNet; conv_in/conv_out were replaced by fresh "
            f"{config.in_channels}-channel layers, so the model must be fine-tuned (trtsr finetune) "
            "before it restores images",
            stacklevel=2,
        )
        for key in [k for k in state if k.startswith(("conv_in.", "conv_out."))]:
            state.pop(key)
        fresh = {k: v for k, v in model.unet.state_dict().items() if k.startswith(("conv_in.", "conv_out."))}
        state.update(fresh)
    _load_state(model.unet, state, folder)
    return model.eval()


def _config_from_unet(unet_config: dict, folder: Path) -> ModelConfig:
    try:
        heads = unet_config.get("attention_head_dim", 8)
        blocks = tuple(unet_config["block_out_channels"])
        if isinstance(heads, int):
            heads = (heads,) * len(blocks)
        return ModelConfig(
            name=folder.name,
            block_out_channels=blocks,
            attention_head_dim=tuple(heads),
            layers_per_block=int(unet_config.get("layers_per_block", 2)),
            cross_attention_dim=int(unet_config.get("cross_attention_dim", 1024)),
            prediction_type=str(unet_config.get("prediction_type", "epsilon")) if "prediction_type" in unet_config
            else "epsilon",
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TrtsrError(f"config.json does not describe a UNet2DConditionModel ({exc})", path=folder) from None


def _read_diffusers_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    candidates = sorted(folder.glob("diffusion_pytorch_model*.safetensors"))
    if candidates:
        state: dict[str, torch.Tensor] = {}
        for file in candidates:
            state.update(load_file(str(file)))
        return state
    bins = sorted(folder.glob("diffusion_pytorch_model*.bin"))
    if bins:
        state = {}
        for file in bins:
            state.update(torch.load(file, map_location="cpu", weights_only=True))
        return state
    raise TrtsrError("no diffusion_pytorch_model*.safetensors or *.bin weights in folder", path=folder)


def _folder_embeds(folder: Path, config: ModelConfig) -> torch.Tensor | None:
    from safetensors.torch import load_file

    file = folder / "prompt_embeds.safetensors"
    if not file.is_file():
        file = folder.parent / "prompt_embeds.safetensors"
    if file.is_file():
        tensors = load_file(str(file))
        if "prompt_embeds" not in tensors:
            raise TrtsrError("has no 'prompt_embeds' tensor", path=file)
        return _checked_embeds(tensors["prompt_embeds"], config, file)
    warnings.warn(
        f"{folder}: no prompt_embeds.safetensors beside the UNet; using seeded random prompt "
        "embeddings, which fine-tuning trains",
        stacklevel=3,
    )
    generator = torch.Generator().manual_seed(PRESET_SEED)
    return torch.randn(2, config.prompt_tokens, config.cross_attention_dim, generator=generator)


def _checked_embeds(embeds: torch.Tensor, config: ModelConfig, path: Path) -> torch.Tensor:
    expected = (2, config.prompt_tokens, config.cross_attention_dim)
    if tuple(embeds.shape) != expected:
        raise TrtsrError(f"prompt_embeds has shape {tuple(embeds.shape)}, expected {expected}", path=path)
    return embeds.float()


def _load_state(unet: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    own = unet.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    problems = []
    if missing:
        problems.append(f"missing keys {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_names(unexpected)}")
    if mismatched:
        shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched[:3]]
        problems.append(f"shape mismatch {'; '.join(shapes)}" + (" ..." if len(mismatched) > 3 else ""))
    if problems:
        raise TrtsrError("weights do not fit the model: " + "; ".join(problems), path=path)
    unet.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def _names(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown} (+{len(keys) - limit} more)" if len(keys) > limit else shown


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
