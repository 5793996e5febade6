"""Pictures that live on a device: any array with `__dlpack__` (a torch tensor, a CuPy array, ...), seen as a torch
tensor without a copy, checked, and handed back as the caller's own kind of array.

torch is the one library every device array converts to and from (DLPack both ways), and the torch and engine
sessions run on torch tensors' memory directly (`Session.infer_tensor`).
"""

from __future__ import annotations

import sys

from trtsr.errors import MissingDependencyError, TrtsrError


def as_torch(image):
    """(torch module, `image` as a torch tensor sharing its memory); one line for what is not a picture:
    an (H, W, 3) array of uint8, or of floats in 0-255."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("device arrays (DLPack)", "export", package="torch") from None
    if isinstance(image, torch.Tensor):
        tensor = image
    else:
        try:
            tensor = torch.from_dlpack(image)
        except (TypeError, RuntimeError, BufferError) as exc:
            raise TrtsrError(f"cannot read the {type(image).__name__} through DLPack ({str(exc)[:160]})") from None
    if tensor.ndim != 3 or tensor.shape[2] != 3:
        raise TrtsrError(f"device pictures must be H x W x 3 (RGB), got shape {tuple(tensor.shape)}; grey, alpha "
                         "and 16-bit pictures go through numpy arrays")
    if tensor.dtype != torch.uint8 and not tensor.dtype.is_floating_point:
        raise TrtsrError(f"device pictures must be uint8, or floats in 0-255, not {tensor.dtype}")
    if 0 in tensor.shape[:2]:
        raise TrtsrError(f"the image is empty ({tensor.shape[1]}x{tensor.shape[0]} pixels)")
    return torch, tensor


def to_io(torch, x, io_dtype):
    """A picture tensor in a session's I/O type: uint8 (rounded from floats in 0-255) or float32."""
    if x.dtype == io_dtype:
        return x
    return x.float().round_().clamp_(0, 255).to(io_dtype) if io_dtype == torch.uint8 else x.to(io_dtype)


def finish(torch, out, *, as_uint8: bool):
    """The session's output as the caller's type: uint8 (rounded) or float32 in 0-255."""
    if as_uint8:
        return out if out.dtype == torch.uint8 else out.float().round_().clamp_(0, 255).to(torch.uint8)
    return out.to(torch.float32).clamp_(0, 255)


def like(image, out):
    """`out` (a torch tensor) as the kind of array `image` was: torch stays torch; another library's array comes
    back through that library's `from_dlpack` (CuPy, JAX, ...) where it has one, else as the torch tensor."""
    import torch

    if isinstance(image, torch.Tensor):
        return out
    package = sys.modules.get(type(image).__module__.split(".")[0])
    from_dlpack = getattr(package, "from_dlpack", None)
    return out if from_dlpack is None else from_dlpack(out)
