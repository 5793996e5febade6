"""A torchvision that does not load beside the installed torch, kept from breaking everything else.

pip can leave a torchvision built for another torch (a CUDA build beside a CPU build of torch, or
another release): its `import` then fails half-way. diffusers and spandrel import it whenever it
is installed, so one mismatched wheel would stop every GenDR-Pix model and every spandrel one.
`guard()` tries it once; where it fails it is marked absent (`sys.modules['torchvision'] = None`,
Python's own way to say a module is not there: `importlib.util.find_spec` then answers None and
`import torchvision` raises ImportError), with one warning that says so. `without_torchvision`
lets spandrel import with stand-ins for the three names its LaMa (inpainting) and RestoreFormer
(faces) modules take; calling them then raises one line. Neither is an upscaler.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import types

from trtsr.errors import TrtsrError

log = logging.getLogger(__name__)
_checked = False


def guard() -> bool:
    """Whether torchvision loads; where it is installed but does not, it is marked absent (once per process)."""
    global _checked
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"] is not None and not _is_stand_in(sys.modules["torchvision"])
    if _checked:
        return False
    _checked = True
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401
        return True
    except Exception as exc:  # a mismatched build fails in several ways (RuntimeError, OSError, ImportError)
        for name in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        sys.modules["torchvision"] = None  # type: ignore[assignment]
        import torch

        from trtsr.measure import installed_version

        log.warning("torchvision %s is installed but does not load beside torch %s (%s): trtsr goes on without "
                    "it, but your own `import torchvision` or `import spandrel` fails here; install the torchvision "
                    "release built for this torch", installed_version("torchvision"), torch.__version__,
                    " ".join(str(exc).split())[:80])
        return False


@contextlib.contextmanager
def without_torchvision():
    """While importing spandrel where torchvision does not load: stand-ins for what its modules import."""
    if guard():
        yield
        return
    stand_ins = _stand_ins()
    before = sys.modules.get("torchvision")
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name in stand_ins:
            sys.modules.pop(name, None)
        sys.modules["torchvision"] = before  # type: ignore[assignment]


class _NeedsTorchvision:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> _NeedsTorchvision:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _NeedsTorchvision(f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs):
        raise TrtsrError(f"{self._name} needs torchvision, which does not load beside the installed torch")


def _is_stand_in(module) -> bool:
    return getattr(module, "__trtsr_stand_in__", False)


def _stand_ins() -> dict[str, types.ModuleType]:
    top, transforms, functional = (types.ModuleType(n) for n in (
        "torchvision", "torchvision.transforms", "torchvision.transforms.functional"))
    top.__path__, transforms.__path__ = [], []

    def attribute(attr: str) -> _NeedsTorchvision:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _NeedsTorchvision(f"torchvision.transforms.functional.{attr}")

    functional.__getattr__ = attribute  # type: ignore[method-assign]
    top.transforms, transforms.functional = transforms, functional  # type: ignore[attr-defined]
    for module in (top, transforms, functional):
        module.__trtsr_stand_in__ = True  # type: ignore[attr-defined]
    return {m.__name__: m for m in (top, transforms, functional)}
