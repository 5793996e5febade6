"""What an engine says about itself, checked against the metadata beside it.

The JSON beside an engine is written by `trtsr build`; the engine is what runs. Before a
session trusts the JSON's names, dtypes and profiles for its buffers, it reads the same
facts from the deserialised engine (`num_io_tensors`, `get_tensor_name`,
`get_tensor_mode`, `get_tensor_dtype`, `get_tensor_profile_shape`) and refuses a mismatch
with one line that says to rebuild. A stale JSON beside a swapped engine would otherwise
size buffers for another network.

`ErrorCapture` is a TensorRT logger that keeps the errors it is told, so that a failed
`execute_async_v3` can say why, and only an allocation failure becomes `OutOfMemory`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from trtsr.errors import OutOfMemory, TrtsrError

# Words TensorRT and CUDA use when an allocation fails: TensorRT's ErrorCode 5 is kFAILED_ALLOCATION,
# CUDA's error 2 (cudaErrorMemoryAllocation) reads "out of memory".
ALLOCATION_WORDS = ("out of memory", "outofmemory", "memory allocation", "cudaerrormemoryallocation",
                    "failed_allocation", "failed to allocate", "allocation failed", "error code 5:")

_DTYPES = {"UINT8": "uint8", "FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT32": "int32",
           "INT64": "int64", "INT8": "int8", "BOOL": "bool", "FP8": "fp8"}


@dataclasses.dataclass(frozen=True)
class TensorIO:
    name: str
    mode: str  # "input" or "output"
    dtype: str  # numpy-style name
    profiles: tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...] = ()  # inputs: (min, opt, max)


def _enum_name(value: Any) -> str:
    return str(value).split(".")[-1].upper()


def read_engine_io(engine: Any) -> list[TensorIO]:
    """Every I/O tensor of a deserialised engine (TensorRT or TensorRT-RTX), with each input's profile shapes."""
    tensors = []
    profiles = int(getattr(engine, "num_optimization_profiles", 1))
    for i in range(int(engine.num_io_tensors)):
        name = engine.get_tensor_name(i)
        mode = "input" if _enum_name(engine.get_tensor_mode(name)) == "INPUT" else "output"
        dtype_name = _enum_name(engine.get_tensor_dtype(name))
        shapes = ()
        if mode == "input":
            shapes = tuple(
                tuple(tuple(int(d) for d in shape) for shape in engine.get_tensor_profile_shape(name, index))
                for index in range(profiles)
            )
        tensors.append(TensorIO(name, mode, _DTYPES.get(dtype_name, dtype_name.lower()), shapes))
    return tensors


def check_engine_io(tensors: list[TensorIO], meta: Any) -> None:
    """Raise a one-line error when the engine's I/O differs from what its metadata promises."""
    problems = []
    by_name = {t.name: t for t in tensors}
    want_inputs = [meta.input_name] + ([meta.guidance_input] if meta.guidance_input else [])
    got_inputs = sorted(t.name for t in tensors if t.mode == "input")
    got_outputs = [t.name for t in tensors if t.mode == "output"]
    if got_inputs != sorted(want_inputs):
        problems.append(f"inputs {got_inputs}, metadata says {sorted(want_inputs)}")
    if got_outputs != [meta.output_name]:
        problems.append(f"outputs {got_outputs}, metadata says {[meta.output_name]}")
    io_dtype = "uint8" if meta.io == "uint8" else "float32"
    for name in (meta.input_name, meta.output_name):
        tensor = by_name.get(name)
        if tensor is not None and tensor.dtype != io_dtype:
            problems.append(f"{name} is {tensor.dtype}, metadata says {io_dtype}")
    if meta.guidance_input and meta.guidance_input in by_name and by_name[meta.guidance_input].dtype != "float32":
        problems.append(f"{meta.guidance_input} is {by_name[meta.guidance_input].dtype}, metadata says float32")
    image = by_name.get(meta.input_name)
    if image is not None:
        recorded = [p.input_range for p in meta.profiles]
        if list(image.profiles) != recorded:
            problems.append(f"profiles {list(image.profiles)}, metadata says {recorded}")
    if problems:
        raise TrtsrError("the engine does not match its metadata (" + "; ".join(problems) + "): the JSON is stale "
                         "or the engine was replaced; rebuild it with trtsr build")


def make_error_capture(trt: Any, keep: int = 20):
    """A logger for `trt.Runtime` that forwards warnings and errors to Python logging and keeps the errors."""
    import logging

    log = logging.getLogger("trtsr.tensorrt")

    class ErrorCapture(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg) -> None:  # called by TensorRT, from any thread
            level = _enum_name(severity)
            if level in ("INTERNAL_ERROR", "ERROR"):
                # Kept for the one-line error that reports the failed call; logged for -v only.
                self.errors = (self.errors + [str(msg)])[-keep:]
                log.debug("%s", msg)
            elif level == "WARNING":
                log.warning("%s", msg)

        def take(self) -> list[str]:
            errors, self.errors = self.errors, []
            return errors

    return ErrorCapture()


def execution_failure(errors: list[str], what: str) -> TrtsrError:
    """The error for a failed enqueue: `OutOfMemory` only when TensorRT reported an allocation failure."""
    detail = errors[-1] if errors else "TensorRT reported no error message"
    if any(word in message.lower() for message in errors for word in ALLOCATION_WORDS):
        return OutOfMemory(f"{what}: out of device memory ({detail})")
    return TrtsrError(f"{what} failed: {detail}")
