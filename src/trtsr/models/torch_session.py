"""The torch run backend: the exported module itself (`PixelUpscaler`) in PyTorch, behind the same session
interface as the runtime's ONNX Runtime and engine sessions (`infer`, `scale`, `io`, `sizes`,
`max_input`, `guidance`, `guidance_input`, `backend_name`, `close`).

It exists for GPUs no installed TensorRT backend runs on (an H100 without full TensorRT: TensorRT-RTX
refuses compute capability 9.0): CUDA in bf16 (fp16 where the GPU has no bf16),
scaled-dot-product attention, optionally `torch.compile`. On a machine without CUDA it runs on the CPU
in float32, which is what the CPU tests exercise; `-b auto` never picks that (ONNX Runtime is faster there).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging

import numpy as np

from trtsr.defaults import MAX_INPUT_SIDE
from trtsr.errors import OutOfMemory, TrtsrError
from trtsr.runtime.sessions import guidance_feed
from trtsr.sizes import SizeRequirements

log = logging.getLogger(__name__)

TORCH_DEVICES = ("auto", "cuda", "cpu")
TORCH_PRECISIONS = ("auto", "bf16", "fp16", "fp32")
# scaled_dot_product_attention kernels (torch.nn.attention.SDPBackend); "auto" leaves the choice to PyTorch.
ATTENTION_KERNELS = {"flash": "FLASH_ATTENTION", "cudnn": "CUDNN_ATTENTION", "efficient": "EFFICIENT_ATTENTION",
                     "math": "MATH"}
# The name the PadCFG guidance input has in exported graphs; the torch module takes w the same way.
GUIDANCE_INPUT = "guidance"


@dataclasses.dataclass(frozen=True)
class TorchSettings:
    """How the torch backend runs.

    Fields:
        device: 'auto' (CUDA when available, else the CPU), 'cuda' or 'cpu'.
        precision: 'auto' (bf16 on a GPU with bf16, fp16 on one without, fp32 on the CPU), 'bf16', 'fp16'
            or 'fp32'. The input resize and the PadCFG mix stay float32 whatever this is.
        compile: `torch.compile` the module (once per input size: a first call of minutes for the
            full-size model, so worth it for many pictures of one size).
        attention: the scaled-dot-product attention kernel first tried: 'auto' (PyTorch's own order),
            'flash', 'cudnn', 'efficient' or 'math'; PyTorch falls back to the others where it cannot run.
        chunk_feed_forward: run the transformer feed-forward layers one batch item at a time (PadCFG
            runs a batch of two): the same pixels with less peak memory. None (the default) chunks eager
            runs and not compiled ones, as measured on an H100 (full-size model, 4K, PadCFG: eager peak
            6.16 -> 4.97 GiB at +0.5 % time; compiled unchunked peaks at 4.76 GiB).
        channels_last: keep weights and activations in NHWC, the layout cuDNN's convolutions run in, instead
            of converting around each convolution. Measured slower on that H100 (eager 777 against 742 ms,
            compiled 694 against 681 ms), so off by default.
    """

    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    attention: str = "auto"
    chunk_feed_forward: bool | None = None
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.device not in TORCH_DEVICES:
            raise TrtsrError(f"torch device must be one of {', '.join(TORCH_DEVICES)}, got {self.device!r}")
        if self.precision not in TORCH_PRECISIONS:
            raise TrtsrError(f"torch precision must be one of {', '.join(TORCH_PRECISIONS)}, got {self.precision!r}")
        if self.attention != "auto" and self.attention not in ATTENTION_KERNELS:
            raise TrtsrError(f"attention must be auto or one of {', '.join(ATTENTION_KERNELS)}, "
                             f"got {self.attention!r}")


def cuda_available() -> bool:
    """Whether torch is installed and sees a CUDA device (False, not an error, without torch)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class TorchSession:
    """`model` (a name or path `trtsr.models.load_model` takes, or a `GenDRPix` network already built) at
    `scale`, PadCFG with default w `guidance` (None: the batch-1 network without PadCFG), run in PyTorch as
    `settings` say. A network passed in is moved to the session's device and precision in place."""

    def __init__(self, model, *, scale: int, guidance: float | None,
                 settings: TorchSettings | None = None) -> None:
        import torch

        from trtsr.catalog import is_external

        self.settings = settings = settings or TorchSettings()
        if settings.device == "cuda" and not torch.cuda.is_available():
            raise TrtsrError("the torch backend was asked for CUDA but torch sees no CUDA device "
                             f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'})")
        cuda = settings.device == "cuda" or (settings.device == "auto" and torch.cuda.is_available())
        self.device = torch.device("cuda" if cuda else "cpu")
        self.precision = _precision(settings.precision, cuda, torch)
        if not cuda and self.precision != "fp32":
            raise TrtsrError(f"the torch backend on the CPU runs fp32, not {self.precision}")
        if settings.compile and not cuda:
            raise TrtsrError("--compile needs a CUDA GPU (torch.compile on the CPU is slower than ONNX Runtime)")
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.precision]
        self._torch = torch
        self.scale = int(scale)
        # uint8 in and out on a GPU (a quarter of the bytes over PCIe); float32 on the CPU, as the shipped graphs
        self.io = "uint8" if cuda else "float32"
        # A GPU runs whole pictures up to the exported graphs' largest side and answers out of memory with
        # tiles; the CPU tiles as ONNX Runtime does.
        self.max_input = (MAX_INPUT_SIDE, MAX_INPUT_SIDE) if cuda else None
        if isinstance(model, str) and is_external(model):
            module = self._external(model, dtype, settings)
        else:
            module = self._gendr(model, guidance, dtype, settings)
        self._module = torch.compile(module, dynamic=False) if settings.compile else module
        where = torch.cuda.get_device_name(self.device) if cuda else "CPU"
        extras = [self.precision, "compiled" if settings.compile else "eager"]
        if settings.attention != "auto":
            extras.append(f"{settings.attention} attention")
        if settings.channels_last:
            extras.append("channels-last")
        self.backend_name = f"torch {torch.__version__} on {where} ({', '.join(extras)})"

    def _gendr(self, model, guidance, dtype, settings):
        from trtsr.models.checkpoint import load_model
        from trtsr.models.pixel import PixelUpscaler

        net = (load_model(model) if isinstance(model, str) else model).eval().requires_grad_(False)
        name = model if isinstance(model, str) else net.config.name
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

    def _external(self, model: str, dtype, settings):
        """A model spandrel loads (no PadCFG); a precision it does not run in is refused in one line."""
        from trtsr.models.external import ExternalUpscaler, load_external

        loaded = load_external(model, self.scale)
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

    @property
    def io_dtype(self):
        return np.uint8 if self.io == "uint8" else np.float32

    def _attention(self):
        if self.settings.attention == "auto":
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        first = getattr(SDPBackend, ATTENTION_KERNELS[self.settings.attention])
        others = [getattr(SDPBackend, name) for name in ATTENTION_KERNELS.values()
                  if getattr(SDPBackend, name) != first]
        return sdpa_kernel([first, *others], set_priority=True)

    def infer(self, lr: np.ndarray, guidance: float | None = None) -> np.ndarray:
        torch = self._torch
        if self._module is None:
            raise TrtsrError("this torch session is closed")
        w = guidance_feed(self.guidance, self.guidance_input, guidance)
        try:
            with torch.inference_mode(), self._attention():
                x = torch.from_numpy(np.ascontiguousarray(lr, dtype=self.io_dtype)).to(self.device)
                if w is not None:
                    out = self._module(x, torch.from_numpy(w).to(self.device))
                else:
                    out = self._module(x)
                return out.cpu().numpy()
        except torch.OutOfMemoryError:
            _release(torch)
            height, width = lr.shape[:2]
            raise OutOfMemory(f"the GPU ran out of memory at {width}x{height} input") from None

    def close(self) -> None:
        if self._module is None:
            return
        self._module = None
        if self.device.type == "cuda":
            _release(self._torch)


def _precision(asked: str, cuda: bool, torch) -> str:
    if asked != "auto":
        return asked
    if not cuda:
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _release(torch) -> None:
    """Give cached blocks back after an out-of-memory, so the smaller tiles that follow can use them."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
