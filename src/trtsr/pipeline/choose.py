"""Which backend a run uses, and the one line that says why.

`-b auto` prefers, in order: a TensorRT backend whose engines run on this GPU; PyTorch on CUDA (the torch
backend, for GPUs no installed TensorRT runs on, such as an H100 without full TensorRT); ONNX
Runtime (its CUDA provider where onnxruntime-gpu is installed, with the fp16 graph; else the CPU). A named
backend is taken as asked, and refused in one line before any export or build where it cannot run.

The facts (the GPU, the TensorRT backends and their verdicts, torch's CUDA) come through `MachineFacts`,
so the choice itself is a plain function that tests drive with any machine they describe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from trtsr.backends import BackendSettings, EngineSettings, OnnxRuntimeSettings, TorchSettings
from trtsr.defaults import Backend, BuildBackend, RunBackend
from trtsr.errors import MissingDependencyError, TrtsrError
from trtsr.gpu import GpuInfo


@dataclasses.dataclass(frozen=True)
class BackendChoice:
    """The backend a run uses, why (one line), and that backend's settings."""

    backend: Backend
    reason: str
    settings: OnnxRuntimeSettings | TorchSettings | EngineSettings = OnnxRuntimeSettings()


@dataclasses.dataclass
class MachineFacts:
    """What the choice depends on, each read only when the choice needs it."""

    gpu: Callable[[], GpuInfo | None] | None = None  # the visible GPU (trtsr.gpu.detect_gpu)
    installed_engines: Callable[[], list[Backend]] | None = None  # TensorRT backends installed
    engines_for: Callable[[GpuInfo], list[Backend]] | None = None  # those whose engines run on this GPU
    engine_refusal: Callable[[GpuInfo], str] | None = None  # why the installed ones do not
    engine_check: Callable[[Backend, GpuInfo], None] | None = None  # one line when that backend cannot run here
    torch_installed: Callable[[], bool] | None = None  # torch can be imported (the export extra)
    torch_cuda: Callable[[], bool] | None = None  # torch installed and sees a CUDA device
    onnxruntime_cuda: Callable[[], bool] | None = None  # ONNX Runtime has its CUDA provider (onnxruntime-gpu)

    def __post_init__(self) -> None:
        from trtsr import gpu
        from trtsr.engines import backend as engines

        self.gpu = self.gpu or (lambda: gpu.detect_gpu())  # looked up when asked, so a stand-in GPU is seen
        self.installed_engines = self.installed_engines or engines.installed_backends
        self.engines_for = self.engines_for or engines.usable_backends
        self.engine_refusal = self.engine_refusal or _engine_refusal
        self.engine_check = self.engine_check or (lambda name, gpu: engines.load_backend(name).check_runs_on(gpu))
        self.torch_installed = self.torch_installed or _torch_installed
        self.torch_cuda = self.torch_cuda or _torch_cuda
        self.onnxruntime_cuda = self.onnxruntime_cuda or onnxruntime_has_cuda


def _engine_refusal(gpu: GpuInfo) -> str:
    from trtsr.engines.backend import load_backend

    try:
        load_backend(BuildBackend.AUTO).check_runs_on(gpu)
    except TrtsrError as exc:
        return exc.reason
    return f"no installed TensorRT backend runs engines on {gpu.name}"


def _torch_cuda() -> bool:
    try:
        from trtsr.sessions.torch_session import cuda_available  # imports torch only when it is installed
    except ImportError:  # the base install: no torch
        return False
    return cuda_available()


def _torch_installed() -> bool:
    """Whether torch can be imported here (the export extra); nothing is imported."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a half-removed or blocked torch
        return False


def onnxruntime_has_cuda() -> bool:
    """Whether the installed ONNX Runtime offers its CUDA provider (the onnxruntime-gpu wheel)."""
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def choose_backend(asked: RunBackend, facts: MachineFacts | None = None,
                   settings: BackendSettings | None = None) -> BackendChoice:
    """The backend for a run that asked for `asked` (a `RunBackend`: auto or a backend; `RunRequest` checks what a
    user typed), with its settings from `settings`."""
    choice = _choose(RunBackend(asked), facts or MachineFacts())
    return dataclasses.replace(choice, settings=(settings or BackendSettings()).for_backend(choice.backend))


def _choose(asked: RunBackend, facts: MachineFacts) -> BackendChoice:
    backend = asked.backend
    if backend is Backend.ONNXRUNTIME:
        return BackendChoice(backend, f"asked for with -b {backend}")
    if backend is Backend.TORCH:
        if not facts.torch_installed():
            raise MissingDependencyError("the torch backend", "export")
        cuda = facts.torch_cuda()
        return BackendChoice(backend, f"asked for with -b {backend}" + ("" if cuda else "; no CUDA device, so fp32 "
                                                                         "on the CPU, where ONNX Runtime is faster"))
    if backend is not None:  # an engine backend: refused here, before any export or build would be for nothing
        gpu = facts.gpu()
        if gpu is None:
            raise TrtsrError(f"--backend {backend} runs engines on an NVIDIA GPU and none is visible; "
                             f"use the onnxruntime backend (-b {Backend.ONNXRUNTIME})")
        facts.engine_check(backend, gpu)
        return BackendChoice(backend, f"asked for with -b {backend}")
    gpu = facts.gpu()
    if gpu is None:
        return BackendChoice(Backend.ONNXRUNTIME, "no NVIDIA GPU visible")
    where = f"{gpu.name} (compute capability {gpu.compute_capability})"
    if facts.installed_engines():
        usable = [Backend(name) for name in facts.engines_for(gpu)]
        if usable:
            return BackendChoice(usable[0], f"{usable[0]} engines run on {where}")
        why_not = facts.engine_refusal(gpu)
    else:
        why_not = "no TensorRT backend is installed (trtsr[trt] or trtsr[rtx])"
    if facts.torch_cuda():
        return BackendChoice(Backend.TORCH, f"{why_not}; PyTorch runs on the GPU")
    where = ("ONNX Runtime runs on the GPU (CUDA provider)" if facts.onnxruntime_cuda()
             else "ONNX Runtime runs on the CPU (trtsr[cuda] brings its CUDA provider)")
    return BackendChoice(Backend.ONNXRUNTIME, f"{why_not}, and torch with CUDA is not installed; {where}")
