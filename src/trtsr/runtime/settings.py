"""How an engine runs, as one frozen value: `RuntimeSettings`.

TensorRT-RTX compiles kernels for the GPU at run time and exposes the choices on its
`IRuntimeConfig`; full TensorRT takes the activation-memory strategy when the execution
context is created. The defaults are the safe choices until a GPU measures better ones:
keep the runtime cache, lazy kernel specialisation (the backend's own default: generic
kernels first, shape-specialised ones compiled in the background), no CUDA graphs, and
activation memory allocated for the profile in use rather than for the largest.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from trtsr.errors import TrtsrError

KERNEL_SPECIALIZATION = {"lazy": "LAZY", "eager": "EAGER", "none": "NONE"}
CUDA_GRAPHS = {"disabled": "DISABLED", "whole-graph": "WHOLE_GRAPH_CAPTURE"}
ACTIVATION_MEMORY = {"static": "STATIC", "on-profile-change": "ON_PROFILE_CHANGE"}


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    """runtime_cache: TensorRT-RTX's compiled-kernel cache, loaded and saved under a file lock.
    kernel_specialization: TensorRT-RTX dynamic-shape kernels: lazy, eager (compile before the first run
        returns) or none (shape-generic kernels only).
    cuda_graphs: TensorRT-RTX CUDA-graph capture: disabled or whole-graph.
    activation_memory: static (the largest profile's, reserved at start) or on-profile-change (the profile
        in use; reallocated when an input needs another profile)."""

    runtime_cache: bool = True
    kernel_specialization: str = "lazy"
    cuda_graphs: str = "disabled"
    activation_memory: str = "on-profile-change"

    def __post_init__(self) -> None:
        for name, table in (("kernel_specialization", KERNEL_SPECIALIZATION), ("cuda_graphs", CUDA_GRAPHS),
                            ("activation_memory", ACTIVATION_MEMORY)):
            value = getattr(self, name)
            if value not in table:
                raise TrtsrError(f"runtime setting {name} must be one of {', '.join(table)}, got {value!r}")

    def allocation_strategy(self, trt: Any) -> Any:
        return getattr(trt.ExecutionContextAllocationStrategy, ACTIVATION_MEMORY[self.activation_memory])

    def apply_rtx(self, trt: Any, config: Any) -> None:
        """Set these choices on a TensorRT-RTX IRuntimeConfig (the runtime cache is attached by the session)."""
        config.dynamic_shapes_kernel_specialization_strategy = getattr(
            trt.DynamicShapesKernelSpecializationStrategy, KERNEL_SPECIALIZATION[self.kernel_specialization])
        config.cuda_graph_strategy = getattr(trt.CudaGraphStrategy, CUDA_GRAPHS[self.cuda_graphs])
        config.set_execution_context_allocation_strategy(self.allocation_strategy(trt))
