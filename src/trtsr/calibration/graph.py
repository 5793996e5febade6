"""ONNX-level work around quantisation: the GroupNorm rewrite, each node's module path, counting Q/DQ layers.

Why the rewrite: an opset-21+ export writes GroupNorm as one `GroupNormalization` node, and
ONNX's shape inference (onnx 1.21 to 1.23) gives that node's output no type. ModelOpt clears
the graph's value_info before quantising and re-infers it, so every tensor after the first
GroupNorm loses its type; ONNX Runtime's calibrator then skips those tensors while ModelOpt's
concat grouping still asks for their ranges (`KeyError: 'cat_9_ReduceMin'`). Written as
Reshape -> InstanceNormalization -> Reshape -> Mul -> Add (the form opset-17 exports of
Stable Diffusion UNets use, which TensorRT's parser imports as a normalization layer) every
tensor keeps a type. The rewrite is exact up to float rounding.
"""

from __future__ import annotations

import ast

import numpy as np

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
SCOPE_KEY = "pkg.torch.onnx.name_scopes"


def module_path(node) -> str:
    """The torch module a node came from ('model.unet.conv_in'), or '' when the exporter recorded none."""
    for prop in node.metadata_props:
        if prop.key == SCOPE_KEY:
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return ""
            # [..., module path, the op's own name]
            return str(scopes[-2]) if isinstance(scopes, list) and len(scopes) >= 2 else ""
    return ""


def is_quantized(model) -> bool:
    return any(node.op_type in QDQ_OPS for node in model.graph.node)


def rewrite_group_norms(model) -> int:
    """Replace every GroupNormalization node by its InstanceNormalization form; returns how many."""
    from onnx import helper, numpy_helper

    graph = model.graph
    nodes, added, count = [], [], 0
    for node in graph.node:
        if node.op_type != "GroupNormalization":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        groups, eps = int(attrs["num_groups"]), float(attrs.get("epsilon", 1e-5))
        x, scale, bias = node.input
        name = node.name or f"group_norm_{count}"
        added += [
            numpy_helper.from_array(np.array([0, groups, -1], np.int64), f"{name}/groups_shape"),
            numpy_helper.from_array(np.ones(groups, np.float32), f"{name}/ones"),
            numpy_helper.from_array(np.zeros(groups, np.float32), f"{name}/zeros"),
            numpy_helper.from_array(np.array([-1, 1, 1], np.int64), f"{name}/channel_shape"),
        ]
        parts = [
            helper.make_node("Shape", [x], [f"{name}/shape"], name=f"{name}/Shape"),
            helper.make_node("Reshape", [x, f"{name}/groups_shape"], [f"{name}/grouped"], name=f"{name}/Reshape"),
            helper.make_node("InstanceNormalization", [f"{name}/grouped", f"{name}/ones", f"{name}/zeros"],
                             [f"{name}/normed"], name=f"{name}/InstanceNormalization", epsilon=eps),
            helper.make_node("Reshape", [f"{name}/normed", f"{name}/shape"], [f"{name}/restored"],
                             name=f"{name}/Reshape_back"),
            helper.make_node("Reshape", [scale, f"{name}/channel_shape"], [f"{name}/scale"],
                             name=f"{name}/Reshape_scale"),
            helper.make_node("Reshape", [bias, f"{name}/channel_shape"], [f"{name}/bias"],
                             name=f"{name}/Reshape_bias"),
            helper.make_node("Mul", [f"{name}/restored", f"{name}/scale"], [f"{name}/scaled"], name=f"{name}/Mul"),
            helper.make_node("Add", [f"{name}/scaled", f"{name}/bias"], [node.output[0]], name=f"{name}/Add"),
        ]
        for part in parts:
            part.metadata_props.extend(node.metadata_props)  # keeps the module path for the recipe
        nodes += parts
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
        graph.initializer.extend(added)
    return count


def quantized_layers(model) -> dict[str, int]:
    """Compute layers (Conv, MatMul, Gemm) fed by a DequantizeLinear, against all of them.

    Returns {"quantized": n, "compute_layers": total}; a layer counts once whichever inputs are quantised.
    """
    graph = model.graph
    dequantized = {out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    compute = [node for node in graph.node if node.op_type in COMPUTE_OPS]
    quantized = sum(1 for node in compute if any(name in dequantized for name in node.input))
    return {"quantized": quantized, "compute_layers": len(compute)}


def quantize_weights_int8(model, keep_float: set[str]) -> int:
    """Weight-only INT8: each MatMul/Gemm weight initializer becomes int8 + a per-output-channel DequantizeLinear.

    Symmetric, zero point 0, scale = max |w| / 127 per output channel. Activations stay float.
    `keep_float`: node names left alone. Returns how many layers were quantised.
    """
    from onnx import TensorProto, helper, numpy_helper

    from trtsr.calibration.recipe import WEIGHT_ONLY_OPS

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    new_nodes, drop, count = [], set(), 0
    for node in graph.node:
        if node.op_type in WEIGHT_ONLY_OPS and node.name not in keep_float and len(node.input) >= 2:
            weight_name = node.input[1]
            init = initializers.get(weight_name)
            if init is not None and init.data_type == TensorProto.FLOAT and users.get(weight_name) == 1:
                weight = numpy_helper.to_array(init)
                if weight.ndim == 2:
                    trans_b = any(a.name == "transB" and a.i for a in node.attribute)
                    axis = 0 if (node.op_type == "Gemm" and trans_b) else 1  # the output-channel axis
                    reduce = 1 - axis
                    peak = np.abs(weight).max(axis=reduce)
                    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
                    shaped = scale[:, None] if axis == 0 else scale[None, :]
                    q = np.clip(np.rint(weight / shaped), -127, 127).astype(np.int8)
                    base = weight_name
                    graph.initializer.extend([
                        numpy_helper.from_array(q, f"{base}/int8"),
                        numpy_helper.from_array(scale, f"{base}/scale"),
                        numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{base}/zero_point"),
                    ])
                    new_nodes.append(helper.make_node(
                        "DequantizeLinear", [f"{base}/int8", f"{base}/scale", f"{base}/zero_point"], [weight_name],
                        name=f"{base}/DequantizeLinear", axis=axis))
                    drop.add(weight_name)
                    count += 1
        new_nodes.append(node)
    if count:
        kept = [init for init in graph.initializer if init.name not in drop]
        del graph.initializer[:]
        graph.initializer.extend(kept)
        del graph.node[:]
        graph.node.extend(new_nodes)
    return count
