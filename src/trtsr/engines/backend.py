"""One small adapter over the two TensorRT flavours trtsr supports.

`tensorrt` (TensorRT 10.x strongly typed networks, and 11.x) and `tensorrt_rtx`
(TensorRT-RTX) share the API trtsr uses: Builder, OnnxParser, optimisation
profiles, Runtime. Everything backend-specific lives here; the rest of the
package calls `TensorRTModule` methods and records its `name` and `version` in
every result.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from pathlib import Path
from typing import Any

from trtsr.defaults import Backend, BuildBackend
from trtsr.errors import MissingDependencyError, TrtsrError

log = logging.getLogger(__name__)

# backend -> (module, extra that installs it), in `auto`'s order of preference
BACKENDS: dict[Backend, tuple[str, str]] = {
    Backend.TENSORRT: ("tensorrt", "trt"),
    Backend.TENSORRT_RTX: ("tensorrt_rtx", "rtx"),
}
# What `trtsr build --backend` and BuildSettings accept.
BUILD_BACKENDS = tuple(BuildBackend)


def _import(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ImportError:
        return None
    except OSError as exc:  # a wheel whose shared libraries are missing
        log.warning("cannot load %s: %s", module_name, exc)
        return None


def installed_backends() -> list[Backend]:
    return [name for name, (module, _) in BACKENDS.items() if _import(module) is not None]


def load_backend(name: Backend | BuildBackend | str = BuildBackend.AUTO) -> TensorRTModule:
    """The named backend, or for `auto` full TensorRT if installed, else TensorRT-RTX."""
    if name not in BUILD_BACKENDS:
        raise TrtsrError(f"unknown backend {name!r}; use one of {', '.join(BUILD_BACKENDS)}")
    if name == BuildBackend.AUTO:
        for candidate in BACKENDS:
            module = _import(BACKENDS[candidate][0])
            if module is not None:
                return TensorRTModule(candidate, module)
        raise TrtsrError(
            "no TensorRT backend is installed: run pip install 'trtsr[rtx]' (TensorRT-RTX, builds on any machine) "
            "or pip install 'trtsr[trt]' (TensorRT)"
        )
    name = Backend(name)
    module_name, extra = BACKENDS[name]
    module = _import(module_name)
    if module is None:
        raise MissingDependencyError(f"the {name} backend", extra)
    return TensorRTModule(name, module)


def _runs_on(capability: str, listed: tuple[str, ...]) -> bool:
    """Is `capability` ("9.0") one of `listed`, or newer than 12.0 (TensorRT-RTX's "> 12.0")?"""
    if capability in listed:
        return True
    try:
        major, minor = (int(part) for part in capability.split(".")[:2])
    except ValueError:
        return True  # an unreadable capability: leave the decision to the backend's own load check
    return (major, minor) > (12, 0)


def usable_backends(gpu) -> list[Backend]:
    """The installed TensorRT backends whose engines can run on `gpu`, in `auto`'s order of preference."""
    usable = []
    for name in installed_backends():
        try:
            load_backend(name).check_runs_on(gpu)
        except TrtsrError:
            continue
        usable.append(name)
    return usable


@dataclasses.dataclass
class ParsedNetwork:
    """A parsed ONNX network; keeps the builder and parser alive as long as the network."""

    builder: Any
    network: Any
    parser: Any

    @property
    def num_inputs(self) -> int:
        return self.network.num_inputs

    @property
    def num_outputs(self) -> int:
        return self.network.num_outputs

    def tensors(self) -> list[dict[str, Any]]:
        net = self.network
        items = [net.get_input(i) for i in range(net.num_inputs)] + [net.get_output(i) for i in range(net.num_outputs)]
        return [
            {"name": t.name, "mode": "input" if t.is_network_input else "output",
             "dtype": str(t.dtype).split(".")[-1].lower(), "shape": list(t.shape)}
            for t in items
        ]


class TensorRTModule:
    """A loaded TensorRT or TensorRT-RTX module with the few calls trtsr needs."""

    def __init__(self, name: Backend | str, module: Any) -> None:
        self.name = Backend(name)
        self.module = module
        self.version = str(module.__version__)
        # TensorRT's own warnings (e.g. about empty initializers) only with -v, where trtsr logs at INFO.
        verbose = logging.getLogger("trtsr").isEnabledFor(logging.INFO)
        self.logger = module.Logger(module.Logger.WARNING if verbose else module.Logger.ERROR)

    def __repr__(self) -> str:
        return f"TensorRTModule({self.name} {self.version})"

    @property
    def is_rtx(self) -> bool:
        return self.name is Backend.TENSORRT_RTX

    # -- build ----------------------------------------------------------------------------------
    def parse_onnx(self, onnx_path: str | Path) -> ParsedNetwork:
        trt = self.module
        builder = trt.Builder(self.logger)
        flags = 0
        strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if strongly_typed is not None:
            flags |= 1 << int(strongly_typed)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = [parser.get_error(i).desc().splitlines()[0] for i in range(parser.num_errors)]
            raise TrtsrError(
                f"{self.name} cannot parse the ONNX graph: {'; '.join(errors) or 'unknown parser error'}",
                path=onnx_path,
            )
        return ParsedNetwork(builder, network, parser)

    def attention_layers(self, parsed: ParsedNetwork) -> list:
        """The IAttention objects of the network (ONNX `Attention` nodes), empty where unsupported."""
        trt = self.module
        kind = getattr(getattr(trt, "LayerType", None), "ATTENTION_INPUT", None)
        if kind is None:
            return []
        found = []
        for index in range(parsed.network.num_layers):
            layer = parsed.network.get_layer(index)
            if layer.type == kind:
                layer.__class__ = trt.IAttentionInputLayer  # the bindings return the base class
                found.append(layer.attention)
        return found

    def runnable_capabilities(self) -> tuple[str, ...] | None:
        """Compute capabilities this backend's engines run on ("8.9", ...), or None where it cannot tell.

        TensorRT-RTX lists them in its `ComputeCapability` enum (1.7: SM75, SM80, SM86, SM89, SM120,
        SM121) and refuses any other GPU when it loads an engine, measured on an H100 (9.0):
        "The engine cannot run on this GPU, which has compute capability 9.0 ... TensorRT-RTX does
        not support this compute capability". Full TensorRT has no such list in its API.
        """
        if not self.is_rtx:
            return None
        names = [m for m in dir(self.module.ComputeCapability) if m.startswith("SM") and m[2:].isdigit()]
        return tuple(f"{n[2:-1]}.{n[-1]}" for n in sorted(names, key=lambda n: int(n[2:])))

    def check_runs_on(self, gpu, path: str | Path | None = None) -> None:
        """A one-line error when this backend's engines cannot run on `gpu` (a GpuInfo)."""
        listed = self.runnable_capabilities()
        if listed is None or gpu is None or _runs_on(gpu.compute_capability, listed):
            return
        raise TrtsrError(
            f"{self.name} {self.version} does not run engines on this GPU ({gpu.name}, compute capability "
            f"{gpu.compute_capability}; it runs {', '.join(listed)} and newer): install full TensorRT "
            "(pip install 'trtsr[trt]') or use the onnxruntime backend (-b onnxruntime)", path=path)

    def compute_capability(self, text: str):
        """'sm89' / '8.9' / 'current' -> the backend's ComputeCapability (TensorRT-RTX only)."""
        if not self.is_rtx:
            raise TrtsrError("--compute-capability applies to TensorRT-RTX only")
        enum = self.module.ComputeCapability
        key = text.strip().upper().replace(".", "")
        key = key if key in ("CURRENT", "NONE") or key.startswith("SM") else f"SM{key}"
        if not hasattr(enum, key) or key == "NONE":
            known = [m.lower() for m in dir(enum) if m.startswith("SM")] + ["current"]
            raise TrtsrError(
                f"unknown compute capability {text!r}; {self.name} {self.version} knows {', '.join(known)}"
            )
        return getattr(enum, key)

    def builder_config(self, parsed: ParsedNetwork, *, optimization_level: int | None,
                       compute_capabilities: tuple[str, ...], workspace_bytes: int | None):
        trt = self.module
        config = parsed.builder.create_builder_config()
        if optimization_level is not None:
            config.builder_optimization_level = optimization_level
        if workspace_bytes is not None:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
        if compute_capabilities:
            values = [self.compute_capability(c) for c in compute_capabilities]
            config.num_compute_capabilities = len(values)
            for index, value in enumerate(values):
                config.set_compute_capability(value, index)
        return config

    def add_profile(self, parsed: ParsedNetwork, config: Any, input_name: str, shapes: tuple) -> None:
        profile = parsed.builder.create_optimization_profile()
        profile.set_shape(input_name, *shapes)
        config.add_optimization_profile(profile)

    def build(self, parsed: ParsedNetwork, config: Any) -> bytes:
        serialized = parsed.builder.build_serialized_network(parsed.network, config)
        if serialized is None:
            raise TrtsrError(f"{self.name} failed to build the engine (see the log lines above for why)")
        return bytes(serialized)

    # -- timing cache (TensorRT) ------------------------------------------------------------------
    def attach_timing_cache(self, config: Any, path: Path | None) -> Any:
        if path is None or self.is_rtx:
            return None
        data = path.read_bytes() if path.is_file() else b""
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, ignore_mismatch=True)
        return cache

    def save_timing_cache(self, config: Any, cache: Any, path: Path) -> None:
        """Merge this build's timing cache into the file at `path`, under a lock between processes.

        Another build may have saved since this one read the file: its entries are combined with
        ours (TensorRT's ITimingCache.combine) instead of being overwritten.
        """
        from trtsr.files import file_lock, write_bytes_atomic
        from trtsr.paths import lock_path_for

        with file_lock(lock_path_for(path)):
            if path.is_file():
                merged = config.create_timing_cache(path.read_bytes())
                merged.combine(cache, True)  # ignore_mismatch: entries from another device are skipped
            else:
                merged = cache
            write_bytes_atomic(path, bytes(merged.serialize()))

    # -- run ------------------------------------------------------------------------------------
    def runtime(self) -> Any:
        return self.module.Runtime(self.logger)

    def activation_memory(self, engine_bytes: bytes) -> list[int] | None:
        """Each profile's activation (scratch) memory in bytes, from the deserialised engine; None where it
        cannot be deserialised here (no GPU the backend runs on)."""
        engine = self.runtime().deserialize_cuda_engine(engine_bytes)
        if engine is None or not hasattr(engine, "get_device_memory_size_for_profile_v2"):
            return None
        return [int(engine.get_device_memory_size_for_profile_v2(i))
                for i in range(int(engine.num_optimization_profiles))]

    def engine_validity(self, engine_bytes: bytes) -> tuple[bool, str]:
        """Whether this machine can run the engine, and why not."""
        runtime = self.runtime()
        check = getattr(runtime, "get_engine_validity", None)
        if check is None:
            return True, "not checked (this backend version cannot check without deserialising)"
        validity, diagnostics = check(engine_bytes)
        name = str(validity).split(".")[-1]
        if name == "VALID":
            return True, "valid"
        reasons = []
        enum = getattr(self.module, "EngineInvalidityDiagnostics", None)
        if enum is not None:
            for flag in [m for m in dir(enum) if m.isupper()]:
                if int(diagnostics) & int(getattr(enum, flag)):
                    reasons.append(flag.lower().replace("_", " "))
        detail = ", ".join(reasons) or "no diagnostics (usually: no usable NVIDIA GPU or driver)"
        return name == "SUBOPTIMAL", f"{name.lower()}: {detail}"
