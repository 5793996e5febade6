"""GenDR-Pix models: presets, the pixel-space network and checkpoint loading.

Importing this package needs the `export` extra (torch, diffusers); the runtime never does.
"""

from trtsr.models.torchvision_guard import guard as _guard_torchvision

_guard_torchvision()  # before diffusers, which imports torchvision whenever it is installed

from trtsr.models.checkpoint import build_preset, load_model, save_checkpoint  # noqa: E402
from trtsr.models.config import GENDR_PIX, PRESETS, TINY, ModelConfig  # noqa: E402
from trtsr.models.pixel import GenDRPix, PixelUpscaler  # noqa: E402

__all__ = [
    "GENDR_PIX", "PRESETS", "TINY", "GenDRPix", "ModelConfig", "PixelUpscaler",
    "build_preset", "load_model", "save_checkpoint",
]
