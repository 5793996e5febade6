"""ONNX (+ export spec) -> serialized engine (+ metadata JSON)."""

from __future__ import annotations

import dataclasses
import datetime
import errno
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

from trtsr._version import __version__
from trtsr.defaults import PROFILES, BuildBackend
from trtsr.engines.backend import BUILD_BACKENDS, load_backend
from trtsr.engines.metadata import EngineMetadata, metadata_path_for
from trtsr.engines.profiles import parse_profiles
from trtsr.errors import TrtsrError
from trtsr.files import atomic_path, sha256_of
from trtsr.gpu import detect_gpu
from trtsr.paths import timing_cache_path
from trtsr.spec import ExportSpec, check_graph_file, spec_path_for


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """Settings that change an engine (all of them are part of the cache key).

    Fields:
        profiles: optimisation profiles by output size (see engines.profiles); default 1080p, 4k, 8k.
        backend: auto, tensorrt or tensorrt-rtx.
        optimization_level: builder optimisation level 0-5; None = the backend's default (3).
        compute_capabilities: TensorRT-RTX ahead-of-time targets, e.g. ("sm89",); () = the backend's default.
        workspace_gb: cap on the builder's workspace memory pool; None = no cap.
        attention_fallback: let an attention layer with no fused kernel for its shapes run
            decomposed (slower, and it materialises the scores) instead of failing the build.
            Layers that have a fused kernel keep it either way.
    """

    profiles: tuple[str, ...] = PROFILES
    backend: BuildBackend = BuildBackend.AUTO
    optimization_level: int | None = None
    compute_capabilities: tuple[str, ...] = ()
    workspace_gb: float | None = None
    attention_fallback: bool = True

    def __post_init__(self) -> None:
        if self.backend not in BUILD_BACKENDS:
            raise TrtsrError(f"unknown backend {self.backend!r}; use one of {', '.join(BUILD_BACKENDS)}")
        object.__setattr__(self, "backend", BuildBackend(self.backend))
        if self.optimization_level is not None and not 0 <= self.optimization_level <= 5:
            raise TrtsrError(f"optimization level must be 0 to 5, got {self.optimization_level}")
        object.__setattr__(self, "profiles", tuple(p.strip().lower() for p in self.profiles))
        object.__setattr__(self, "compute_capabilities", tuple(c.strip().lower() for c in self.compute_capabilities))

    def builder_dict(self) -> dict:
        return {
            "optimization_level": self.optimization_level,
            "compute_capabilities": list(self.compute_capabilities) or "backend default",
            "workspace_gb": self.workspace_gb,
            "attention_fallback": self.attention_fallback,
        }


@dataclasses.dataclass(frozen=True)
class BuildResult:
    engine_path: Path
    metadata_path: Path
    metadata: EngineMetadata


def load_spec_for(onnx_path: str | Path) -> ExportSpec:
    onnx_path = Path(onnx_path)
    check_graph_file(onnx_path)
    spec_file = spec_path_for(onnx_path)
    if not spec_file.is_file():
        raise TrtsrError(
            f"no export spec {spec_file.name} beside the graph; export it with 'trtsr export' (which writes both)",
            path=onnx_path,
        )
    return ExportSpec.load(spec_file)


def build_engine(
    onnx_path: str | Path,
    output: str | Path,
    settings: BuildSettings = BuildSettings(),
    *,
    cache_root: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build an engine from an exported graph; engine and metadata appear only on success.

    `cache_root` is where the TensorRT timing cache lives (default: the trtsr cache folder).
    """
    say = progress or (lambda message: None)
    onnx_path, output = Path(onnx_path), Path(output)
    spec = load_spec_for(onnx_path)
    # Every profile is checked before any backend work starts.
    profiles = parse_profiles(settings.profiles)
    shapes = [p.input_shapes(spec.sizes) for p in profiles]
    backend = load_backend(settings.backend)
    if any(c == "current" for c in settings.compute_capabilities):
        # TensorRT-RTX builds `current` for a GPU it will not run on (measured on an H100): refuse first
        backend.check_runs_on(detect_gpu(), onnx_path)
    quantized = spec.quantization.get("precision") if spec.quantization else None
    if quantized is not None:
        check_quantized_target(quantized, backend, settings.compute_capabilities, detect_gpu(), onnx_path)

    data_file = onnx_path.with_name(spec.onnx_data_file) if spec.onnx_data_file else None
    if data_file is not None and not data_file.is_file():
        raise TrtsrError(f"the graph's external data file {data_file.name} is missing", path=onnx_path)
    say("hashing the graph")
    onnx_sha = sha256_of(onnx_path, data_file)
    if onnx_sha != spec.onnx_sha256:
        raise TrtsrError(
            "the graph does not match its export spec (sha256 differs): the ONNX changed after export "
            "or is corrupt; export it again",
            path=onnx_path,
        )

    say(f"parsing with {backend.name} {backend.version}")
    parsed = backend.parse_onnx(onnx_path)
    attention = backend.attention_layers(parsed)
    for layer in attention:
        layer.decomposable = settings.attention_fallback
    workspace = int(settings.workspace_gb * (1 << 30)) if settings.workspace_gb else None
    config = backend.builder_config(parsed, optimization_level=settings.optimization_level,
                                    compute_capabilities=settings.compute_capabilities, workspace_bytes=workspace)
    for shape in shapes:
        backend.add_profile(parsed, config, spec.input_name, shape)
    timing_path = None if backend.is_rtx else timing_cache_path(backend.name, backend.version, cache_root)
    timing_cache = backend.attach_timing_cache(config, timing_path)

    names = ", ".join(p.name for p in profiles)
    kind = spec.precision if quantized is None else f"{quantized} ({spec.precision} elsewhere)"
    say(f"building {kind} engine with {backend.name} {backend.version} (profiles {names})")
    started = time.perf_counter()
    engine_bytes = backend.build(parsed, config)
    seconds = time.perf_counter() - started
    tensors = parsed.tensors()

    gpu = detect_gpu()
    metadata = EngineMetadata(
        backend=backend.name, backend_version=backend.version,
        spec=dataclasses.replace(spec, onnx_file=onnx_path.name), tensors=tensors,
        profiles=[p.shapes(spec.sizes) for p in profiles],
        builder={**settings.builder_dict(), "attention_layers": len(attention)},
        gpu=gpu.to_dict() if gpu else None,
        build_seconds=round(seconds, 2), engine_sha256=hashlib.sha256(engine_bytes).hexdigest(),
        engine_bytes=len(engine_bytes), trtsr_version=__version__,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    say("writing the engine")
    _write(output, engine_bytes)
    meta_path = metadata_path_for(output)
    try:
        metadata.save(meta_path)
    except OSError as exc:
        output.unlink(missing_ok=True)
        raise _disk_error(exc, meta_path) from None
    if timing_cache is not None and timing_path is not None:
        try:
            backend.save_timing_cache(config, timing_cache, timing_path)
        except OSError as exc:
            raise _disk_error(exc, timing_path) from None
    return BuildResult(output, meta_path, metadata)


# Compute capabilities whose tensor cores run FP8 (Ada 8.9, Hopper 9.0, Blackwell 10.x and 12.x).
FP8_CAPABILITIES = ("8.9", "9.0", "10.0", "10.3", "12.0", "12.1")


def _capability(text: str) -> str:
    digits = text.strip().lower().removeprefix("sm").replace(".", "")
    return f"{digits[:-1]}.{digits[-1]}" if digits.isdigit() and len(digits) >= 2 else text


def check_quantized_target(precision: str, backend, capabilities: tuple[str, ...], gpu, onnx_path: Path) -> None:
    """Refuse, before any backend work, an FP8 graph for a GPU without FP8 tensor cores.

    TensorRT-RTX refuses such a build itself ("Cannot compile for target(s) sm86, because the model
    contains HW-specific datatypes: fp8_e4m3"); this says it in one line first. INT8 Q/DQ and
    weight-only INT8 graphs build for every target either backend lists.
    """
    if precision != "fp8":
        return
    hint = "FP8 engines need compute capability 8.9 or newer (Ada, Hopper, Blackwell)"
    if backend.is_rtx:
        targets = [c for c in capabilities if c.strip().lower() != "current"]
        current = len(targets) < len(capabilities)
        if not capabilities:
            raise TrtsrError(f"{hint}: name the target with --cc sm89 or --cc sm120 (TensorRT-RTX's default "
                             "targets include GPUs without FP8)", path=onnx_path)
        bad = [c for c in targets if _capability(c) not in FP8_CAPABILITIES]
        if bad:
            raise TrtsrError(f"{hint}; TensorRT-RTX cannot build this graph for {', '.join(bad)}", path=onnx_path)
        if current and (gpu is None or gpu.compute_capability not in FP8_CAPABILITIES):
            where = "no GPU is visible" if gpu is None else f"this GPU is sm {gpu.compute_capability}"
            raise TrtsrError(f"{hint}; --cc current cannot serve: {where}", path=onnx_path)
    elif gpu is not None and gpu.compute_capability not in FP8_CAPABILITIES:
        raise TrtsrError(f"{hint}; this GPU ({gpu.name}) is sm {gpu.compute_capability}", path=onnx_path)


def _write(path: Path, data: bytes) -> None:
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise _disk_error(exc, path) from None


def _disk_error(exc: OSError, path: Path) -> TrtsrError:
    if exc.errno == errno.ENOSPC:
        return TrtsrError("no space left on the device; free some space or write elsewhere with -o", path=path)
    return TrtsrError(f"cannot write: {exc.strerror or exc}", path=path)
