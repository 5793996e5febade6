"""GenDR-Pix models: presets, the pixel-space network and checkpoint loading.

Importing this package needs the `export` extra (torch, diffusers); the runtime never does.
"""

from trtsr.models.checkpoint import build_preset, load_model, save_checkpoint
from trtsr.models.config import GENDR_PIX, PRESETS, TINY, ModelConfig
from trtsr.models.pixel import GenDRPix, PixelUpscaler

__all__ = [
    "GENDR_PIX", "PRESETS", "TINY", "GenDRPix", "ModelConfig", "PixelUpscaler",
    "build_preset", "load_model", "save_checkpoint",
]
