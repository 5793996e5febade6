"""One external-data file for several graphs of the same weights.

The default model ships one graph per scale, with and without PadCFG: six graphs of the
same network, which differ only in their small input path (the bicubic resize, the padding,
the guidance mix). Stored inline, each would carry its own copy of the weights. Here every
initializer of at least `min_bytes` is written once (by content) to a shared file beside the
graphs, and each graph refers to it by offset, the ONNX external-data form that ONNX
Runtime and the TensorRT parsers read relative to the graph's folder.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ALIGN = 64  # bytes; each tensor starts on this boundary in the shared file
MIN_BYTES = 1024


def share_external_data(graphs: list[Path], data_name: str, *, min_bytes: int = MIN_BYTES) -> dict[str, int]:
    """Rewrite `graphs` (all in one folder, weights inline) to read their large tensors from `data_name` there.

    Returns {"tensors": distinct tensors written, "references": tensors pointed at the file, "bytes": file size}.
    Every graph is rewritten through a temporary file and replaced; the data file is complete before any
    graph points at it.
    """
    import onnx
    from onnx.external_data_helper import set_external_data

    folder = {p.parent.resolve() for p in graphs}
    if len(folder) != 1:
        raise ValueError("the graphs must share one folder (external data is found relative to the graph)")
    data_path = next(iter(folder)) / data_name
    models = [onnx.load(str(p)) for p in graphs]
    offsets: dict[str, tuple[int, int]] = {}
    references = 0
    tmp_data = data_path.with_name(data_path.name + ".tmp")
    with open(tmp_data, "wb") as out:
        for model in models:
            for tensor in _tensors(model):
                if not tensor.HasField("raw_data") or len(tensor.raw_data) < min_bytes:
                    continue
                key = hashlib.sha256(
                    tensor.raw_data + str((tensor.data_type, tuple(tensor.dims))).encode()
                ).hexdigest()
                if key not in offsets:
                    pad = (-out.tell()) % ALIGN
                    out.write(b"\0" * pad)
                    offsets[key] = (out.tell(), len(tensor.raw_data))
                    out.write(tensor.raw_data)
                offset, length = offsets[key]
                set_external_data(tensor, location=data_name, offset=offset, length=length)
                tensor.ClearField("raw_data")
                tensor.data_location = onnx.TensorProto.EXTERNAL
                references += 1
        size = out.tell()
    os.replace(tmp_data, data_path)
    for path, model in zip(graphs, models, strict=True):
        tmp = path.with_name(path.name + ".tmp")
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    return {"tensors": len(offsets), "references": references, "bytes": size}


def _tensors(model):
    """The main graph's initializers (where the exporter puts every weight)."""
    yield from model.graph.initializer
