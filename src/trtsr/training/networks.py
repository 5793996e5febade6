"""Training-time networks: the student's plain path and the feature discriminator.

The PadCFG branches are `GenDRPix.padcfg_branches`, the same code `restore` mixes.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from trtsr.models.pixel import GenDRPix
from trtsr.training.losses import highpass

# Training crops are sized so that crop + PadCFG's pad is a whole canvas (120 + 8 = 128): no right-side reserve,
# which would widen every training canvas by a 64-px column (2.25x the work at 120 px).
TRAIN_RESERVE = 0


def plain_branch(model: GenDRPix, x: torch.Tensor, reserve: int = TRAIN_RESERVE) -> torch.Tensor:
    """The batch-B output without PadCFG (what guidance 1.0 / --no-padcfg runs), as training runs it."""
    return model.restore(x, guidance=None, reserve=reserve)


class FeatureDiscriminator(nn.Module):
    """A frozen copy of a GenDR-Pix model's encoder path with small learnable heads.

    The image (B,3,H,W in [-1,1], sides multiples of 8) is pixel-unshuffled and run
    through conv_in, every down block and the mid block of the frozen UNet with its
    positive embedding; a head (3x3 conv, LeakyReLU, 1x1 conv) turns each level's
    features into a map of real/fake logits. With `detail_head`, one more head (two 3x3
    convs), first in the list, reads the x8-unshuffled high-frequency residual of the image
    (the image minus a Gaussian blur of sigma 1): a narrow student's conv_in keeps too
    little of the sub-cell detail that tells a blurred output from a sharp one (see the
    default model's card). Only the heads train; gradients still flow through the frozen
    path to the generator.
    """

    def __init__(self, source: GenDRPix, head_width: int = 64, *, detail_head: bool = False) -> None:
        super().__init__()
        frozen = copy.deepcopy(source.unet).eval().requires_grad_(False)
        self.unet = frozen
        self.unshuffle = source.config.unshuffle
        self.timestep = float(source.config.timestep)
        self.register_buffer("embeds", source.prompt_embeds.detach()[0:1].clone())
        widths = [frozen.conv_in.out_channels, *[_out_channels(b) for b in frozen.down_blocks],
                  _out_channels(frozen.mid_block)]
        self.detail_head = detail_head
        heads = [_head(c, head_width, convs=1) for c in widths]
        if detail_head:
            heads.insert(0, _head(frozen.conv_in.in_channels, head_width, convs=2))
        self.heads = nn.ModuleList(heads)

    def train(self, mode: bool = True) -> FeatureDiscriminator:
        super().train(mode)
        self.unet.eval()  # the feature path never changes mode (no dropout or batch statistics)
        return self

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        unet = self.unet
        z = F.pixel_unshuffle(image, self.unshuffle)
        t = torch.full((z.shape[0],), self.timestep, device=z.device)
        emb = unet.time_embedding(unet.time_proj(t).to(z.dtype))
        enc = self.embeds.to(z.dtype).expand(z.shape[0], -1, -1)
        h = unet.conv_in(z)
        feats = [h]
        if self.detail_head:
            feats.insert(0, F.pixel_unshuffle(highpass(image, 1.0), self.unshuffle))
        for block in unet.down_blocks:
            if getattr(block, "has_cross_attention", False):
                h, _ = block(hidden_states=h, temb=emb, encoder_hidden_states=enc)
            else:
                h, _ = block(hidden_states=h, temb=emb)
            feats.append(h)
        feats.append(unet.mid_block(h, emb, encoder_hidden_states=enc))
        return feats

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        return [head(f) for head, f in zip(self.heads, self.features(image), strict=True)]


def _head(channels: int, width: int, convs: int) -> nn.Sequential:
    """`convs` x (3x3 conv to `width`, LeakyReLU), then a 1x1 conv to one logit per position."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(channels if i == 0 else width, width, 3, padding=1), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Conv2d(width, 1, 1))


def _out_channels(block: nn.Module) -> int:
    resnets = getattr(block, "resnets", None)
    if resnets:
        return resnets[-1].out_channels
    raise TypeError(f"cannot tell the output width of {type(block).__name__}")
