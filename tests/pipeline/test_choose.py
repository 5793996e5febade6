"""`-b auto` and named backends: which one runs, and the one line that says why, for machines described
by their facts (no GPU, an RTX card, an H100 with and without torch); then on this machine for real."""

from __future__ import annotations

import numpy as np
import pytest

from trtsr.defaults import Backend
from trtsr.errors import TrtsrError
from trtsr.gpu import GpuInfo
from trtsr.pipeline.choose import MachineFacts, choose_backend

H100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0", "13.0")
RTX = GpuInfo("NVIDIA GeForce RTX 4090", "8.9", "13.0")
REFUSAL = "tensorrt-rtx does not run engines on compute capability 9.0"


def facts(gpu=None, installed=(), usable=(), torch_cuda=False, ort_cuda=False) -> MachineFacts:
    def never(*_):
        raise AssertionError("the choice read a fact it did not need")

    return MachineFacts(gpu=lambda: gpu, installed_engines=lambda: list(installed),
                        engines_for=lambda g: list(usable), engine_refusal=lambda g: REFUSAL,
                        torch_cuda=(lambda: torch_cuda) if torch_cuda is not None else never,
                        onnxruntime_cuda=lambda: ort_cuda)


def test_no_gpu_runs_onnxruntime_without_asking_torch():
    choice = choose_backend("auto", facts(gpu=None, torch_cuda=None))
    assert (choice.backend, choice.reason) == ("onnxruntime", "no NVIDIA GPU visible")


def test_an_rtx_gpu_runs_its_engines():
    choice = choose_backend("auto", facts(gpu=RTX, installed=["tensorrt-rtx"], usable=["tensorrt-rtx"],
                                          torch_cuda=None))
    assert choice.backend == "tensorrt-rtx"
    assert choice.reason == "tensorrt-rtx engines run on NVIDIA GeForce RTX 4090 (compute capability 8.9)"


def test_an_h100_that_tensorrt_rtx_refuses_runs_torch_and_says_why():
    choice = choose_backend("auto", facts(gpu=H100, installed=["tensorrt-rtx"], torch_cuda=True))
    assert choice.backend == "torch"
    assert choice.reason == f"{REFUSAL}; PyTorch runs on the GPU"


def test_an_h100_without_tensorrt_or_torch_runs_onnxruntime():
    choice = choose_backend("auto", facts(gpu=H100, torch_cuda=False))
    assert choice.backend == "onnxruntime"
    assert choice.reason.startswith("no TensorRT backend is installed (trtsr[trt] or trtsr[rtx]), and torch with "
                                    "CUDA is not installed")


def test_onnxruntime_on_a_gpu_says_where_it_runs():
    on_gpu = choose_backend("auto", facts(gpu=H100, torch_cuda=False, ort_cuda=True))
    assert on_gpu.backend == "onnxruntime" and on_gpu.reason.endswith("ONNX Runtime runs on the GPU (CUDA provider)")
    on_cpu = choose_backend("auto", facts(gpu=H100, torch_cuda=False, ort_cuda=False))
    assert on_cpu.reason.endswith("ONNX Runtime runs on the CPU (trtsr[cuda] brings its CUDA provider)")


def test_named_backends_are_taken_as_asked():
    assert choose_backend("onnxruntime", facts(torch_cuda=None)).backend == "onnxruntime"
    with pytest.raises(TrtsrError, match="runs engines on an NVIDIA GPU and none is visible"):
        choose_backend("tensorrt", facts(torch_cuda=None))  # refused before any export or build
    asked = facts(gpu=RTX, torch_cuda=None)
    asked.engine_check = lambda name, gpu: None
    assert choose_backend("tensorrt", asked).reason == "asked for with -b tensorrt"
    asked.engine_check = lambda name, gpu: (_ for _ in ()).throw(TrtsrError(f"{name} {REFUSAL}"))
    with pytest.raises(TrtsrError, match=f"tensorrt-rtx {REFUSAL}"):
        choose_backend("tensorrt-rtx", asked)
    on_cpu = choose_backend("torch", facts(torch_cuda=False))
    assert on_cpu.backend == "torch" and "no CUDA device, so fp32 on the CPU" in on_cpu.reason
    assert choose_backend("torch", facts(torch_cuda=True)).reason == "asked for with -b torch"


def test_the_choice_carries_the_chosen_backends_own_settings():
    from trtsr.backends import BackendSettings, EngineSettings, OnnxRuntimeSettings, TorchSettings

    settings = BackendSettings(onnxruntime=OnnxRuntimeSettings(threads=3), torch=TorchSettings(compile=True),
                               engine=EngineSettings(profiles=("4k",)))
    assert choose_backend("onnxruntime", facts(), settings).settings == OnnxRuntimeSettings(threads=3)
    assert choose_backend("torch", facts(torch_cuda=True), settings).settings.compile is True
    rtx = choose_backend("auto", facts(gpu=RTX, installed=["tensorrt-rtx"], usable=["tensorrt-rtx"]), settings)
    assert rtx.backend is Backend.TENSORRT_RTX and rtx.settings.profiles == ("4k",)


def test_the_upscaler_runs_torch_when_asked_and_names_it():
    pytest.importorskip("torch", reason="the torch backend needs the export extra")
    from trtsr.pipeline.upscaler import Upscaler

    with Upscaler("default", backend="torch", guidance=1.0) as up:
        assert up.backend_name.startswith("torch ") and up.backend_reason.startswith("asked for with -b torch")
        assert up.upscale(np.full((20, 30, 3), 128, np.uint8)).shape == (80, 120, 3)


def test_the_torch_backend_refuses_a_graph_in_one_line():
    from trtsr.paths import shipped_onnx
    from trtsr.pipeline.upscaler import Upscaler

    with pytest.raises(TrtsrError, match="runs a model .* not an .onnx graph"):
        Upscaler(str(shipped_onnx()), backend="torch")


@pytest.mark.gpu
def test_auto_on_this_gpu_runs_what_the_facts_say():
    """On the GPU machine: with no TensorRT backend that runs here, auto picks torch on CUDA."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from trtsr.engines.backend import usable_backends
    from trtsr.gpu import detect_gpu
    from trtsr.pipeline.upscaler import Upscaler

    gpu = detect_gpu()
    expected = "engine" if gpu is not None and usable_backends(gpu) else "torch"
    with Upscaler("default") as up:
        if expected == "torch":
            assert up.backend_name.startswith("torch ") and "PyTorch runs on the GPU" in up.backend_reason
        assert up.upscale(np.full((64, 48, 3), 90, np.uint8)).shape == (256, 192, 3)

