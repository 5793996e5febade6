"""How each backend runs, one small frozen settings class per backend, with its closed sets as enums.

A run carries all three (`BackendSettings`): `-b auto` decides which backend runs only once the machine
is known, and the choice (`trtsr.pipeline.choose.choose_backend`) hands on that backend's settings alone.
A leaf module: the CLI, the pipeline and the sessions read it; nothing here imports a backend.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from typing import Any

from trtsr import defaults
from trtsr.errors import TrtsrError


def member(enum: type[StrEnum], value: Any, what: str) -> Any:
    """`value` as a member of `enum`, or one line naming the choices."""
    try:
        return enum(value)
    except ValueError:
        raise TrtsrError(f"{what} must be one of {', '.join(enum)}, got {value!r}") from None


# -- ONNX Runtime ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class OnnxRuntimeSettings:
    """threads: intra-op threads (None: ONNX Runtime's own choice). cuda: use the CUDA provider where the
    installed ONNX Runtime has it (onnxruntime-gpu) and a GPU is visible; False runs on the CPU."""

    threads: int | None = None
    cuda: bool = True

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise TrtsrError(f"threads must be at least 1, got {self.threads}")


# -- PyTorch -----------------------------------------------------------------------------------------------
class TorchDevice(StrEnum):
    AUTO = "auto"  # CUDA when available, else the CPU
    CUDA = "cuda"
    CPU = "cpu"


class TorchPrecision(StrEnum):
    AUTO = "auto"  # bf16 on a GPU with bf16, fp16 on one without, fp32 on the CPU
    BF16 = "bf16"
    FP16 = "fp16"
    FP32 = "fp32"


class AttentionKernel(StrEnum):
    """scaled_dot_product_attention kernels (torch.nn.attention.SDPBackend's names in `sdp_name`)."""

    AUTO = "auto"  # PyTorch's own order
    FLASH = "flash"
    CUDNN = "cudnn"
    EFFICIENT = "efficient"
    MATH = "math"

    @property
    def sdp_name(self) -> str:
        return {"flash": "FLASH_ATTENTION", "cudnn": "CUDNN_ATTENTION", "efficient": "EFFICIENT_ATTENTION",
                "math": "MATH"}[self.value]


@dataclasses.dataclass(frozen=True)
class TorchSettings:
    """How the torch backend runs.

    Fields:
        device: auto (CUDA when available, else the CPU), cuda or cpu.
        precision: auto (bf16 on a GPU with bf16, fp16 on one without, fp32 on the CPU), bf16, fp16 or fp32.
            The input resize and the PadCFG mix stay float32 whatever this is.
        compile: `torch.compile` the module (once per input size: a first call of minutes for the
            full-size model, so worth it for many pictures of one size).
        attention: the scaled-dot-product attention kernel first tried: auto (PyTorch's own order), flash,
            cudnn, efficient or math; PyTorch falls back to the others where it cannot run.
        chunk_feed_forward: run the transformer feed-forward layers one batch item at a time (PadCFG
            runs a batch of two): the same pixels with less peak memory. None (the default) chunks eager
            runs and not compiled ones, as measured on an H100 (full-size model, 4K, PadCFG: eager peak
            6.16 -> 4.97 GiB at +0.5 % time; compiled unchunked peaks at 4.76 GiB).
        channels_last: keep weights and activations in NHWC, the layout cuDNN's convolutions run in, instead
            of converting around each convolution. Measured slower on that H100 (eager 777 against 742 ms,
            compiled 694 against 681 ms), so off by default.
    """

    device: TorchDevice = TorchDevice.AUTO
    precision: TorchPrecision = TorchPrecision.AUTO
    compile: bool = False
    attention: AttentionKernel = AttentionKernel.AUTO
    chunk_feed_forward: bool | None = None
    channels_last: bool = False

    def __post_init__(self) -> None:
        put = object.__setattr__.__get__(self)
        put("device", member(TorchDevice, self.device, "torch device"))
        put("precision", member(TorchPrecision, self.precision, "torch precision"))
        put("attention", member(AttentionKernel, self.attention, "attention"))


# -- TensorRT and TensorRT-RTX -----------------------------------------------------------------------------
class KernelSpecialization(StrEnum):
    """TensorRT-RTX dynamic-shape kernels: compiled in the background, before the first run returns, or never."""

    LAZY = "lazy"
    EAGER = "eager"
    NONE = "none"


class CudaGraphs(StrEnum):
    DISABLED = "disabled"
    WHOLE_GRAPH = "whole-graph"


class ActivationMemory(StrEnum):
    """static: the largest profile's, reserved at start; on-profile-change: the profile in use, reallocated
    when an input needs another."""

    STATIC = "static"
    ON_PROFILE_CHANGE = "on-profile-change"


# the TensorRT enum member each choice sets
_TRT_NAMES = {
    KernelSpecialization.LAZY: "LAZY", KernelSpecialization.EAGER: "EAGER", KernelSpecialization.NONE: "NONE",
    CudaGraphs.DISABLED: "DISABLED", CudaGraphs.WHOLE_GRAPH: "WHOLE_GRAPH_CAPTURE",
    ActivationMemory.STATIC: "STATIC", ActivationMemory.ON_PROFILE_CHANGE: "ON_PROFILE_CHANGE",
}


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    """How an engine runs. TensorRT-RTX compiles kernels for the GPU at run time and exposes the choices on
    its `IRuntimeConfig`; full TensorRT takes the activation-memory strategy when the execution context is
    created. The defaults are the safe choices until a GPU measures better ones.

    Fields:
        runtime_cache: TensorRT-RTX's compiled-kernel cache, loaded and saved under a file lock.
        kernel_specialization: lazy (the backend's own default), eager or none.
        cuda_graphs: TensorRT-RTX CUDA-graph capture: disabled or whole-graph.
        activation_memory: static or on-profile-change (the default).
    """

    runtime_cache: bool = True
    kernel_specialization: KernelSpecialization = KernelSpecialization.LAZY
    cuda_graphs: CudaGraphs = CudaGraphs.DISABLED
    activation_memory: ActivationMemory = ActivationMemory.ON_PROFILE_CHANGE

    def __post_init__(self) -> None:
        put = object.__setattr__.__get__(self)
        put("kernel_specialization", member(KernelSpecialization, self.kernel_specialization,
                                            "runtime setting kernel_specialization"))
        put("cuda_graphs", member(CudaGraphs, self.cuda_graphs, "runtime setting cuda_graphs"))
        put("activation_memory", member(ActivationMemory, self.activation_memory,
                                        "runtime setting activation_memory"))

    def allocation_strategy(self, trt: Any) -> Any:
        return getattr(trt.ExecutionContextAllocationStrategy, _TRT_NAMES[self.activation_memory])

    def apply_rtx(self, trt: Any, config: Any) -> None:
        """Set these choices on a TensorRT-RTX IRuntimeConfig (the runtime cache is attached by the session)."""
        config.dynamic_shapes_kernel_specialization_strategy = getattr(
            trt.DynamicShapesKernelSpecializationStrategy, _TRT_NAMES[self.kernel_specialization])
        config.cuda_graph_strategy = getattr(trt.CudaGraphStrategy, _TRT_NAMES[self.cuda_graphs])
        config.set_execution_context_allocation_strategy(self.allocation_strategy(trt))


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    """profiles: the optimisation profiles an engine built for a run covers (1080p, 4k and 8k by default;
    `trtsr.engines.profiles`). runtime: how the engine runs."""

    profiles: tuple[str, ...] = defaults.PROFILES
    runtime: RuntimeSettings = RuntimeSettings()

    def __post_init__(self) -> None:
        object.__setattr__(self, "profiles", tuple(self.profiles or defaults.PROFILES))


# -- all three -----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BackendSettings:
    """The settings of every backend a run may end on; the chosen backend takes its own."""

    onnxruntime: OnnxRuntimeSettings = OnnxRuntimeSettings()
    torch: TorchSettings = TorchSettings()
    engine: EngineSettings = EngineSettings()

    def for_backend(self, backend: defaults.Backend) -> OnnxRuntimeSettings | TorchSettings | EngineSettings:
        if backend is defaults.Backend.ONNXRUNTIME:
            return self.onnxruntime
        if backend is defaults.Backend.TORCH:
            return self.torch
        return self.engine
