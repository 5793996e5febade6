"""Architecture descriptions of GenDR-Pix models (no torch import).

A `ModelConfig` fully describes the network: the SD2.1-style UNet that runs on
x8 pixel-unshuffled images, the fixed prompt embeddings it attends to, and the
one-step parameterisation that turns its prediction into pixels.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from trtsr.errors import TrtsrError

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a GenDR-Pix network.

    Fields:
        name: preset or model name, carried into specs and metadata.
        block_out_channels: UNet widths per resolution level (SD2.1: 320/640/1280/1280).
        attention_head_dim: heads per level, in diffusers' (historical) naming.
        layers_per_block: resnet/attention layers per down block.
        cross_attention_dim: width of the prompt embedding the UNet attends to.
        prompt_tokens: length of the fixed prompt embedding (77 for CLIP-style).
        unshuffle: pixel-(un)shuffle factor that replaces the VAE (8 in GenDR-Pix).
        prediction_type: what the UNet predicts: epsilon, v_prediction or sample.
        alpha_bar: the fixed cumulative alpha of the single step (0.5 in GenDR).
        timestep: the timestep fed to the UNet (499 in GenDR-Pix).
    """

    name: str
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    attention_head_dim: tuple[int, ...] = (5, 10, 20, 20)
    layers_per_block: int = 2
    cross_attention_dim: int = 1024
    prompt_tokens: int = 77
    unshuffle: int = 8
    prediction_type: str = "epsilon"
    alpha_bar: float = 0.5
    timestep: int = 499

    def __post_init__(self) -> None:
        if self.prediction_type not in PREDICTION_TYPES:
            raise TrtsrError(
                f"unknown prediction_type {self.prediction_type!r}; use one of {', '.join(PREDICTION_TYPES)}"
            )
        if len(self.block_out_channels) != len(self.attention_head_dim):
            raise TrtsrError("block_out_channels and attention_head_dim must have the same length")
        if len(self.block_out_channels) < 2:
            raise TrtsrError("a GenDR-Pix UNet needs at least two resolution levels")
        if not 0.0 < self.alpha_bar < 1.0:
            raise TrtsrError(f"alpha_bar must lie in (0, 1), got {self.alpha_bar}")
        object.__setattr__(self, "block_out_channels", tuple(int(c) for c in self.block_out_channels))
        object.__setattr__(self, "attention_head_dim", tuple(int(c) for c in self.attention_head_dim))

    @property
    def in_channels(self) -> int:
        """Channels after pixel-unshuffle of an RGB image (192 for x8)."""
        return 3 * self.unshuffle * self.unshuffle

    @property
    def alignment(self) -> int:
        """Every spatial size the UNet sees must be a multiple of this (64 for SD2.1 at x8)."""
        return self.unshuffle * 2 ** (len(self.block_out_channels) - 1)

    def unet_kwargs(self) -> dict[str, Any]:
        """Arguments for `diffusers.UNet2DConditionModel`."""
        levels = len(self.block_out_channels)
        return dict(
            sample_size=64,
            in_channels=self.in_channels,
            out_channels=self.in_channels,
            block_out_channels=self.block_out_channels,
            layers_per_block=self.layers_per_block,
            attention_head_dim=self.attention_head_dim,
            cross_attention_dim=self.cross_attention_dim,
            use_linear_projection=True,
            down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1),
        )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["block_out_channels"] = list(self.block_out_channels)
        data["attention_head_dim"] = list(self.attention_head_dim)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrtsrError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


# The full GenDR-Pix network: SD2.1's UNet with 192-channel conv_in/conv_out (867 M parameters).
GENDR_PIX = ModelConfig(name="gendr-pix")

# Same structure (three cross-attention levels, one plain level, x8 unshuffle, alignment 64)
# at a width that trains and runs on a CPU: about 3.8 M parameters.
TINY = ModelConfig(
    name="tiny",
    block_out_channels=(32, 64, 96, 96),
    attention_head_dim=(1, 2, 3, 3),
    layers_per_block=1,
    cross_attention_dim=64,
    prompt_tokens=77,
)

# The tiny structure with its top level twice as wide (64 channels), the widest top level within the default
# model's CPU budget of 3 s per output megapixel at x4 through ONNX Runtime with PadCFG: 2.81-2.88 s/MP against
# tiny's 1.88 (top 96: 4.3-5.3; top 192, a whole 8 x 8 x 3 patch: 8.3-9.1; 2-core AMD EPYC,
# benchmarks/results/default-architecture.json).
# A training preset (`init = "small"`), about 4.7 M parameters.
SMALL = dataclasses.replace(TINY, name="small", block_out_channels=(64, 64, 96, 96), attention_head_dim=(2, 2, 3, 3))

PRESETS: dict[str, ModelConfig] = {GENDR_PIX.name: GENDR_PIX, TINY.name: TINY, SMALL.name: SMALL}
