"""The torch session: the exported module itself (`PixelUpscaler`, or `ExternalUpscaler` for a network
spandrel loads) in PyTorch, behind the `Session` protocol.

It exists for GPUs no installed TensorRT backend runs on (an H100 without full TensorRT: TensorRT-RTX
refuses compute capability 9.0): CUDA in bf16 (fp16 where the GPU has no bf16),
scaled-dot-product attention, optionally `torch.compile`. On a machine without CUDA it runs on the CPU
in float32, which is what the CPU tests exercise; `-b auto` never picks that (ONNX Runtime is faster there).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging

import numpy as np

from trtsr.backends import AttentionKernel, TorchDevice, TorchPrecision, TorchSettings
from trtsr.defaults import MAX_INPUT_SIDE, IoType
from trtsr.errors import OutOfMemory, TrtsrError
from trtsr.sessions.base import SessionBase
from trtsr.sizes import SizeRequirements
from trtsr.source import ModelSource

log = logging.getLogger(__name__)

# The name the PadCFG guidance input has in exported graphs; the torch module takes w the same way.
GUIDANCE_INPUT = "guidance"


def cuda_available() -> bool:
    """Whether torch is installed and sees a CUDA device (False, not an error, without torch)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class TorchSession(SessionBase):
    """`model` (a resolved `ModelSource` whose weights torch runs, or a `GenDRPix` network already built, with
    its `scale`) with PadCFG at w `w` (None: the batch-1 network without PadCFG; w is then an input, so any
    w runs), in PyTorch as `settings` say. A network passed in is moved to the session's device and
    precision in place."""

    def __init__(self, model, *, w: float | None, settings: TorchSettings | None = None,
                 scale: int | None = None) -> None:
        import torch

        self.settings = settings = settings or TorchSettings()
        if settings.device is TorchDevice.CUDA and not torch.cuda.is_available():
            raise TrtsrError("the torch backend was asked for CUDA but torch sees no CUDA device "
                             f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'})")
        cuda = settings.device is TorchDevice.CUDA or (settings.device is TorchDevice.AUTO
                                                        and torch.cuda.is_available())
        self.device = torch.device("cuda" if cuda else "cpu")
        self.precision = _precision(settings.precision, cuda, torch)
        if not cuda and self.precision is not TorchPrecision.FP32:
            raise TrtsrError(f"the torch backend on the CPU runs fp32, not {self.precision}")
        if settings.compile and not cuda:
            raise TrtsrError("--compile needs a CUDA GPU (torch.compile on the CPU is slower than ONNX Runtime)")
        dtype = {TorchPrecision.FP32: torch.float32, TorchPrecision.FP16: torch.float16,
                 TorchPrecision.BF16: torch.bfloat16}[self.precision]
        self._torch = torch
        if isinstance(model, ModelSource):
            scale = model.scale
        elif scale is None:
            raise TrtsrError("a network passed to TorchSession needs its scale")
        self.scale = int(scale)
        # uint8 in and out on a GPU (a quarter of the bytes over PCIe); float32 on the CPU, as the shipped graphs
        self.io = IoType.UINT8 if cuda else IoType.FLOAT32
        # A GPU runs whole pictures up to the exported graphs' largest side and answers out of memory with
        # tiles; the CPU plans tiles from the module's probed cost, as ONNX Runtime does from its graph's.
        self.max_input = (MAX_INPUT_SIDE, MAX_INPUT_SIDE) if cuda else None
        if isinstance(model, ModelSource) and model.kind.is_external:
            module = self._external(model, dtype, settings)
        else:
            module = self._gendr(model, w, dtype, settings)
        self._module = torch.compile(module, dynamic=False) if settings.compile else module
        where = torch.cuda.get_device_name(self.device) if cuda else "CPU"
        extras = [str(self.precision), "compiled" if settings.compile else "eager"]
        if settings.attention is not AttentionKernel.AUTO:
            extras.append(f"{settings.attention} attention")
        if settings.channels_last:
            extras.append("channels-last")
        self.backend_name = f"torch {torch.__version__} on {where} ({', '.join(extras)})"

    def _gendr(self, model, guidance, dtype, settings):
        from trtsr.models.pixel import PixelUpscaler

        net = (model.load_gendr() if isinstance(model, ModelSource) else model).eval().requires_grad_(False)
        name = model.label if isinstance(model, ModelSource) else net.config.name
        self.guidance = guidance
        self.guidance_input = GUIDANCE_INPUT if guidance is not None else None
        self.sizes = SizeRequirements.for_graph(scale=self.scale, multiple=net.config.alignment)
        chunk = settings.chunk_feed_forward if settings.chunk_feed_forward is not None else not settings.compile
        for block in net.unet.modules():
            if hasattr(block, "set_chunk_feed_forward"):  # diffusers' transformer blocks; set either way
                block.set_chunk_feed_forward(1 if chunk and guidance is not None else None, dim=0)
        net = self._to_device(net, name, dtype, settings)
        return PixelUpscaler(net, self.scale, guidance, dtype=dtype, io=self.io,
                             guidance_input=guidance is not None).eval()

    def _external(self, source: ModelSource, dtype, settings):
        """A model spandrel loads (no PadCFG); a precision it does not run in is refused in one line."""
        from trtsr.models.external import ExternalUpscaler

        loaded = source.load_external()
        loaded.check_precision(self.precision)
        self.guidance, self.guidance_input = None, None
        self.sizes = SizeRequirements.for_network(scale=loaded.scale, multiple=loaded.multiple,
                                                  minimum=loaded.minimum)
        # a copy: the loader keeps its own (cached) record as loaded
        loaded = dataclasses.replace(loaded, network=self._to_device(loaded.network, loaded.name, dtype, settings))
        return ExternalUpscaler(loaded, dtype=dtype, io=self.io).eval()

    def _to_device(self, net, name: str, dtype, settings):
        torch = self._torch
        try:
            net = net.to(device=self.device, dtype=dtype)
            if settings.channels_last:
                net = net.to(memory_format=torch.channels_last)
        except torch.OutOfMemoryError:
            _release(torch)
            raise OutOfMemory(f"the {name} weights do not fit in the GPU's free memory") from None
        return net

    def _attention(self):
        if self.settings.attention is AttentionKernel.AUTO:
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        first = getattr(SDPBackend, self.settings.attention.sdp_name)
        others = [getattr(SDPBackend, kernel.sdp_name) for kernel in AttentionKernel
                  if kernel is not AttentionKernel.AUTO and kernel is not self.settings.attention]
        return sdpa_kernel([first, *others], set_priority=True)

    @functools.cached_property
    def cost(self):
        """The module's probed cost (`trtsr.cost.GraphCost`) where pictures are tiled (the CPU), probed on first
        use (a few seconds); None on a GPU, which runs whole pictures."""
        if self.max_input is not None or self._module is None:
            return None
        from trtsr.cost_probe import probe_cost

        module = getattr(self._module, "_orig_mod", self._module)
        return probe_cost(module, io=self.io, guidance=self.guidance if self.guidance_input else None)

    def infer(self, picture: np.ndarray, w: float | None) -> np.ndarray:
        x = self._torch.from_numpy(np.ascontiguousarray(picture, dtype=self.io_dtype))
        return self._run(x, w, self._torch.inference_mode).cpu().numpy()

    def infer_tensor(self, picture, w: float | None):
        """`infer` on a torch tensor (H, W, 3), uint8 or floats in 0-255, wherever it lives: moved to the session's
        device and I/O type only where it is not there already; the result stays on the device, in the I/O type,
        ordered on torch's current stream. Gradients are off but the result is an ordinary tensor."""
        return self._run(picture, w, self._torch.no_grad)

    def _run(self, picture, w: float | None, grad_mode):
        """The module on a picture tensor (moved to the device, then to the I/O type), under `grad_mode`; a GPU out
        of memory is `OutOfMemory`, its cached blocks given back."""
        from trtsr.runtime.dlpack import to_io

        torch = self._torch
        if self._module is None:
            raise TrtsrError("this torch session is closed")
        w_in = self.w_feed(w)
        io = torch.uint8 if self.io == IoType.UINT8 else torch.float32
        try:
            with grad_mode(), self._attention():
                x = to_io(torch, picture.to(self.device), io).contiguous()
                if w_in is not None:
                    return self._module(x, torch.from_numpy(w_in).to(self.device))
                return self._module(x)
        except torch.OutOfMemoryError:
            _release(torch)
            height, width = picture.shape[:2]
            raise OutOfMemory(f"the GPU ran out of memory at {width}x{height} input") from None

    def close(self) -> None:
        if self._module is None:
            return
        self._module = None
        if self.device.type == "cuda":
            _release(self._torch)


def _precision(asked: TorchPrecision, cuda: bool, torch) -> TorchPrecision:
    if asked is not TorchPrecision.AUTO:
        return asked
    if not cuda:
        return TorchPrecision.FP32
    return TorchPrecision.BF16 if torch.cuda.is_bf16_supported() else TorchPrecision.FP16


def _release(torch) -> None:
    """Give cached blocks back after an out-of-memory, so the smaller tiles that follow can use them."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
