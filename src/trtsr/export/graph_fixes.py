"""ONNX graph rewrites that TensorRT needs, applied after the torch export.

- The dynamo exporter may give the UNet's x2 nearest-neighbour upsampling a
  computed `sizes` (or `scales`) input; TensorRT-RTX then fails shape inference
  ("Resize shape dims should be non-negative"). Every nearest Resize in a
  GenDR-Pix graph is one of those x2 upsamplers, so each gets the constant
  scales [1, 1, 2, 2].
- TensorRT has no bfloat16 Resize: in a bf16 graph each Resize runs in float32
  between two Casts.
- Dynamic dimensions get readable names.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

UPSAMPLE_SCALES = np.array([1.0, 1.0, 2.0, 2.0], dtype=np.float32)


def _constant_names(graph: onnx.GraphProto) -> set[str]:
    names = {init.name for init in graph.initializer}
    names.update(out for node in graph.node if node.op_type == "Constant" for out in node.output)
    return names


def fix_upsample_resizes(model: onnx.ModelProto) -> int:
    """Give every nearest-neighbour Resize constant x2 scales; returns how many were changed."""
    graph = model.graph
    constants = _constant_names(graph)
    scales_name = "trtsr_upsample_scales"
    changed = 0
    for node in graph.node:
        if node.op_type != "Resize":
            continue
        mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "nearest")
        if mode != "nearest":
            continue
        inputs = list(node.input) + [""] * (4 - len(node.input))
        scales, sizes = inputs[2], inputs[3]
        if scales and scales in constants and not sizes:
            continue
        inputs[2], inputs[3] = scales_name, ""
        del node.input[:]
        node.input.extend(inputs[:3])
        changed += 1
    if changed and scales_name not in constants:
        graph.initializer.append(numpy_helper.from_array(UPSAMPLE_SCALES, scales_name))
    return changed


def resize_in_float32(model: onnx.ModelProto) -> int:
    """Wrap each Resize in Casts to float32 and back to bfloat16 (for bf16 graphs)."""
    graph = model.graph
    new_nodes: list[onnx.NodeProto] = []
    changed = 0
    for node in graph.node:
        mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "nearest")
        if node.op_type == "Resize" and mode == "nearest":
            src, dst = node.input[0], node.output[0]
            cast_in, cast_out = f"{node.name or dst}_fp32_in", f"{node.name or dst}_fp32_out"
            new_nodes.append(helper.make_node("Cast", [src], [cast_in], to=TensorProto.FLOAT,
                                              name=f"{cast_in}_cast"))
            node.input[0] = cast_in
            node.output[0] = cast_out
            new_nodes.append(node)
            new_nodes.append(helper.make_node("Cast", [cast_out], [dst], to=TensorProto.BFLOAT16,
                                              name=f"{cast_out}_cast"))
            changed += 1
        else:
            new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return changed


def name_dynamic_dims(model: onnx.ModelProto) -> None:
    """Rename the exporter's symbolic dimension expressions to lr/hr height and width."""
    for value, prefix in ((model.graph.input[0], "lr"), (model.graph.output[0], "hr")):
        dims = value.type.tensor_type.shape.dim
        for dim, label in zip(dims[:2], ("height", "width"), strict=False):
            if not dim.HasField("dim_value"):
                dim.dim_param = f"{prefix}_{label}"
