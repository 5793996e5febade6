"""RuntimeSettings: every choice maps onto the real TensorRT-RTX enums, and bad values are one line.

Creating an IRuntimeConfig needs a deserialised engine, which needs a GPU; the config here records
what the session sets on it, with the values taken from the installed tensorrt_rtx module.
"""

from __future__ import annotations

import pytest

from trtsr.backends import RuntimeSettings
from trtsr.errors import TrtsrError

trt = pytest.importorskip("tensorrt_rtx", reason="the enums come from the rtx extra")


class RecordingConfig:
    def __init__(self) -> None:
        self.allocation = None

    def set_execution_context_allocation_strategy(self, value) -> None:
        self.allocation = value


def test_the_defaults_are_the_safe_choices():
    settings = RuntimeSettings()
    config = RecordingConfig()
    settings.apply_rtx(trt, config)
    assert settings.runtime_cache is True
    assert config.dynamic_shapes_kernel_specialization_strategy == trt.DynamicShapesKernelSpecializationStrategy.LAZY
    assert config.cuda_graph_strategy == trt.CudaGraphStrategy.DISABLED
    assert config.allocation == trt.ExecutionContextAllocationStrategy.ON_PROFILE_CHANGE


@pytest.mark.parametrize(("kernels", "graphs", "memory"), [("eager", "whole-graph", "static"),
                                                           ("none", "disabled", "on-profile-change")])
def test_each_choice_reaches_the_runtime_config(kernels, graphs, memory):
    config = RecordingConfig()
    RuntimeSettings(kernel_specialization=kernels, cuda_graphs=graphs, activation_memory=memory).apply_rtx(trt, config)
    assert config.dynamic_shapes_kernel_specialization_strategy.name == kernels.upper()
    assert config.cuda_graph_strategy.name == {"whole-graph": "WHOLE_GRAPH_CAPTURE", "disabled": "DISABLED"}[graphs]
    assert config.allocation.name == memory.upper().replace("-", "_")


@pytest.mark.parametrize(("field", "value"), [("kernel_specialization", "fast"), ("cuda_graphs", "on"),
                                              ("activation_memory", "user")])
def test_an_unknown_value_is_one_line(field, value):
    with pytest.raises(TrtsrError, match=f"runtime setting {field} must be one of"):
        RuntimeSettings(**{field: value})


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        RuntimeSettings().cuda_graphs = "whole-graph"
