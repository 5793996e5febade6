"""The pixel-space GenDR-Pix network and its image-to-image wrapper.

    lr image --bicubic--> output size --[-1,1]--> pixel_unshuffle(8)
      --> UNet (one step, t = 499, fixed prompt embedding) --> one-step x0
      --> pixel_shuffle(8) --> hr image

PadCFG (paper Eq. 7) runs the UNet once on a batch of two: the image
reflect-padded (4,4,4,4) with the positive embedding and (3,5,3,5) with the
negative one, mixes `w * pos + (1 - w) * neg` and crops 4 pixels off each side.
Any image size is accepted: the network pads to the UNet's alignment itself
and crops back.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trtsr.defaults import GUIDANCE
from trtsr.models.config import ModelConfig
from trtsr.sizes import PADCFG_PADDING, RIGHT_RESERVE, aligned_side, aligned_width

PADCFG_POSITIVE = (4, 4, 4, 4)  # left, right, top, bottom
PADCFG_NEGATIVE = (3, 5, 3, 5)
PADCFG_CROP = 4


def build_unet(config: ModelConfig) -> nn.Module:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**config.unet_kwargs())


class FixedTimestepProjection(nn.Module):
    """The sinusoidal timestep projection, evaluated once for GenDR-Pix's fixed timestep.

    Computed in float64 at construction so that PyTorch, ONNX Runtime and TensorRT all
    read the same constant instead of each evaluating sin/cos of large arguments.
    """

    def __init__(self, projection: nn.Module, timestep: int) -> None:
        super().__init__()
        with torch.no_grad():
            emb = projection(torch.tensor([float(timestep)], dtype=torch.float64)).to(torch.float32)
        self.register_buffer("embedding", emb, persistent=False)

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        return self.embedding.expand(timesteps.shape[0], -1)


class GenDRPix(nn.Module):
    """UNet on pixel-unshuffled images with fixed positive/negative prompt embeddings."""

    def __init__(self, config: ModelConfig, unet: nn.Module | None = None,
                 prompt_embeds: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        self.unet = unet if unet is not None else build_unet(config)
        if not isinstance(self.unet.time_proj, FixedTimestepProjection):
            self.unet.time_proj = FixedTimestepProjection(self.unet.time_proj, config.timestep)
        if prompt_embeds is None:
            generator = torch.Generator().manual_seed(0)
            prompt_embeds = torch.randn(2, config.prompt_tokens, config.cross_attention_dim, generator=generator)
        expected = (2, config.prompt_tokens, config.cross_attention_dim)
        if tuple(prompt_embeds.shape) != expected:
            raise ValueError(f"prompt_embeds must have shape {expected}, got {tuple(prompt_embeds.shape)}")
        # Row 0 is the positive ("restored") embedding, row 1 the negative ("degraded") one.
        # A parameter, so that training can move them; export folds them into constants.
        self.prompt_embeds = nn.Parameter(prompt_embeds.clone())

    # -- one step -----------------------------------------------------------------------------
    def predict(self, image: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        """One UNet step on images in [-1, 1] whose sides are multiples of the alignment."""
        cfg = self.config
        z = F.pixel_unshuffle(image, cfg.unshuffle)
        timestep = torch.full((z.shape[0],), float(cfg.timestep), dtype=torch.float32, device=z.device)
        out = self.unet(z, timestep, encoder_hidden_states=embeds.to(z.dtype), return_dict=False)[0]
        sa, sb = math.sqrt(cfg.alpha_bar), math.sqrt(1.0 - cfg.alpha_bar)
        if cfg.prediction_type == "epsilon":
            x0 = (z - sb * out) / sa
        elif cfg.prediction_type == "v_prediction":
            x0 = sa * z - sb * out
        else:
            x0 = out
        return F.pixel_shuffle(x0, cfg.unshuffle)

    def restore(self, image: torch.Tensor, guidance: float | None = GUIDANCE,
                reserve: int = RIGHT_RESERVE) -> torch.Tensor:
        """Restore images (B,3,H,W) in [-1,1] already at output size; any H, W.

        `guidance=None` runs the plain batch-B network without PadCFG: the positive branch alone, with its
        reflect pad, so that w = 1 through PadCFG and no PadCFG are the same picture, and the picture's corners
        never sit on the UNet's zero-padded border. `reserve`: output pixels kept clear on the right before the
        alignment (`trtsr.sizes.RIGHT_RESERVE`); training passes 0 to keep its crops exactly aligned.
        """
        if guidance is None:
            height, width = image.shape[-2], image.shape[-1]
            x = F.pad(self._aligned(image, PADCFG_PADDING, reserve), PADCFG_POSITIVE, mode="reflect")
            y = self.predict(x, self.prompt_embeds[0:1].expand(image.shape[0], -1, -1))
            return y[..., PADCFG_CROP:, PADCFG_CROP:][..., :height, :width]
        y_pos, y_neg = self.padcfg_branches(image, reserve)
        return guidance * y_pos + (1.0 - guidance) * y_neg

    def padcfg_branches(self, image: torch.Tensor,
                        reserve: int = RIGHT_RESERVE) -> tuple[torch.Tensor, torch.Tensor]:
        """The positive and negative PadCFG outputs for images (B,3,H,W) in [-1,1], each cropped to (H, W).

        `restore(image, w)` is `w * pos + (1 - w) * neg`; training reads the two branches directly.
        """
        height, width = image.shape[-2], image.shape[-1]
        x = self._aligned(image, PADCFG_PADDING, reserve)
        batch = image.shape[0]
        pos = F.pad(x, PADCFG_POSITIVE, mode="reflect")
        neg = F.pad(x, PADCFG_NEGATIVE, mode="reflect")
        embeds = torch.cat([self.prompt_embeds[0:1].expand(batch, -1, -1),
                            self.prompt_embeds[1:2].expand(batch, -1, -1)])
        pred = self.predict(torch.cat([pos, neg]), embeds)
        pred = pred[..., PADCFG_CROP:, PADCFG_CROP:][..., :height, :width]
        return pred[:batch], pred[batch:]

    def _aligned(self, image: torch.Tensor, padding: int, reserve: int) -> torch.Tensor:
        height, width = image.shape[-2], image.shape[-1]
        multiple = self.config.alignment
        pad_h = aligned_side(height, multiple, padding) - height
        pad_w = aligned_width(width, multiple, padding, reserve) - width
        # Mirrored, so the network sees the picture go on past its right and bottom edges (a replicated pad is a
        # streak it never trained on: at x4 without PadCFG, 46 levels from bicubic at a photo's right edge, 21 with
        # the mirror). The pad may exceed the picture itself, which reflect padding refuses; it is cropped off.
        return mirror_pad(image, pad_h, pad_w)


def mirror_pad(image: torch.Tensor, bottom, right) -> torch.Tensor:
    """`image` (..., H, W) extended by `bottom` rows and `right` columns of its mirror image (edge pixel repeated:
    ...c b a | a b c ...), folding back and forth where the pad is longer than the picture."""
    height, width = image.shape[-2], image.shape[-1]
    return image.index_select(-2, _mirror_index(height, bottom, image.device)).index_select(
        -1, _mirror_index(width, right, image.device))


def _mirror_index(side, pad, device) -> torch.Tensor:
    steps = torch.arange(side + pad, device=device)
    period = steps.new_ones(()) * (2 * side)  # a tensor: the ONNX exporter takes no symbolic scalar in remainder
    index = torch.remainder(steps, period)
    return torch.where(index >= side, period - 1 - index, index)


class PixelUpscaler(nn.Module):
    """Image-to-image module that is exported: low-resolution HWC in, high-resolution HWC out.

    `io="uint8"`: uint8 in and out (a quarter of float32's bytes over PCIe), rounding inside.
    `io="float32"`: float32 in [0, 255] in and out, no rounding (for exact parity checks).
    The bicubic input resize and the final scaling run in float32 whatever `dtype` is.
    `guidance_input=True` (PadCFG only): `forward(lr, guidance)` takes w as a 1-element float32
    tensor, so one graph serves every w; the two branches are mixed in float32.
    """

    def __init__(self, model: GenDRPix, scale: int, guidance: float | None,
                 dtype: torch.dtype = torch.float32, io: str = "uint8", guidance_input: bool = False) -> None:
        super().__init__()
        if io not in ("uint8", "float32"):
            raise ValueError(f"io must be 'uint8' or 'float32', got {io!r}")
        self.model = model
        self.scale = int(scale)
        self.guidance = guidance
        self.dtype = dtype
        self.io = io
        if guidance_input and guidance is None:
            raise ValueError("a guidance input needs PadCFG (guidance not None)")
        self.guidance_input = guidance_input

    def forward(self, lr: torch.Tensor, guidance: torch.Tensor | None = None) -> torch.Tensor:
        # float64 only for reference runs; otherwise the resize stays float32 (TensorRT has no bf16 Resize).
        outer = torch.float64 if self.dtype == torch.float64 else torch.float32
        # Cast before any layout change: TensorRT moves uint8 only through casts and I/O.
        x = lr.to(outer).permute(2, 0, 1).unsqueeze(0) * (2.0 / 255.0) - 1.0
        if self.scale != 1:
            size = (x.shape[-2] * self.scale, x.shape[-1] * self.scale)
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
        x = x.clamp(-1.0, 1.0).to(self.dtype)
        if self.guidance_input:
            w = (guidance if guidance is not None else torch.tensor([self.guidance])).to(outer).reshape(())
            pos, neg = self.model.padcfg_branches(x)
            pos, neg = pos.to(outer), neg.to(outer)
            y = neg + w * (pos - neg)
        else:
            y = self.model.restore(x, self.guidance).to(outer)
        y = ((y + 1.0) * 127.5).clamp(0.0, 255.0)
        y = y.squeeze(0).permute(1, 2, 0)
        if self.io == "uint8":
            y = torch.round(y).to(torch.uint8)
        return y
