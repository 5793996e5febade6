"""Which layers a quantised graph quantises, as one table per model family.

The recipe follows NVIDIA's for Stable Diffusion UNets (TensorRT's demo/Diffusion and
ModelOpt's diffusers example), adapted to the pixel-space wrapper: the layers that touch
pixels and the small, precision-sensitive ends of the UNet keep the graph's float
precision; the UNet's inner convolutions and linear layers are quantised.

Each rule matches nodes by their module path (the exporter's name scope, for example
`model.unet.down_blocks.1.resnets.0.conv_shortcut`) with shell-style patterns, or by
ONNX op type. A node that any rule matches is left out of quantisation; the spec of
the quantised graph lists every excluded node with its rule. Change the table, not
the code, to change the recipe.
"""

from __future__ import annotations

import dataclasses
import fnmatch

# Every precision `trtsr calibrate` writes. int8 and fp8 quantise weights and activations
# (ModelOpt's Q/DQ placement, calibrated in ONNX Runtime); int8-weights quantises the weights of
# linear layers only (no calibration data needed).
PRECISIONS = ("int8", "fp8", "int8-weights")


@dataclasses.dataclass(frozen=True)
class Rule:
    """Nodes that keep the graph's float precision.

    scope: shell pattern on the module path; "" matches nothing by path.
    op_type: ONNX op type to match instead (with scope ""); "" matches nothing by type.
    outside: pattern the module path must NOT match for the rule to apply (the wrapper's own ops).
    why: one line, recorded in the spec.
    """

    why: str
    scope: str = ""
    op_type: str = ""
    outside: str = ""

    def matches(self, path: str, op_type: str) -> bool:
        if self.outside:
            return not fnmatch.fnmatchcase(path, self.outside)
        if self.op_type:
            return op_type == self.op_type
        return bool(self.scope) and fnmatch.fnmatchcase(path, self.scope)


KEEP_FLOAT: tuple[Rule, ...] = (
    Rule("pixel-space wrapper (resize, padding, PadCFG mix, pixel (un)shuffle)", outside="model.unet*"),
    Rule("conv_in: first layer on the unshuffled pixels", scope="model.unet.conv_in*"),
    Rule("conv_out: last layer before the pixel shuffle", scope="model.unet.conv_out*"),
    Rule("norm_out", scope="model.unet.conv_norm_out*"),
    Rule("time embedding", scope="model.unet.time_embedding*"),
    Rule("time embedding projection (its input is the fixed timestep's embedding)", scope="*.time_emb_proj*"),
    Rule("shortcut convolution", scope="*.conv_shortcut*"),
    Rule("attention proj_out", scope="*.proj_out*"),
    # The graph's attention is one fused ONNX Attention node (opset 23): its two BMMs and softmax
    # stay in float. NVIDIA quantises them only in FP8 and only for head sizes that are multiples
    # of 16; ModelOpt places no Q/DQ on a fused Attention node, so no precision quantises them here.
    Rule("fused attention (BMMs and softmax)", op_type="Attention"),
)

# Every other model (spandrel's architectures: RRDBNet, SRVGGNetCompact, SwinIR, ...; `ExportSpec.architecture`
# names it). The image wrapper around the network stays float, and so do the network's first compute layer, which
# reads the pixels, and its last, which writes them (before the pixel shuffle in RRDBNet's and Compact's upsampler):
# `FIRST_LAST` below, found by graph order, since their module names differ between architectures. RRDBNet's dense
# blocks and upsampling convolutions and Compact's body convolutions are quantised; its PReLUs, the pixel shuffle
# and the residual nearest-upsampled input have no weights and follow their neighbours' precision.
KEEP_FLOAT_OTHER: tuple[Rule, ...] = (
    Rule("image wrapper (normalisation, padding, crop, resize)", outside="network*"),
    Rule("fused attention (BMMs and softmax)", op_type="Attention"),
)
FIRST_LAST = ("first compute layer: reads the pixels", "last compute layer: writes the pixels")

# Only the weights of these layers are quantised by int8-weights (TensorRT's weight-only
# quantisation serves GEMMs; convolutions keep float weights).
WEIGHT_ONLY_OPS = ("MatMul", "Gemm")

# Calibration per precision: ONNX Runtime's calibrators through ModelOpt ("max": the range of
# what the samples produced; "entropy": the KL-divergence threshold, which clips outliers).
METHODS = {"int8": "entropy", "fp8": "max", "int8-weights": "max-abs per output channel (no calibration)"}

# NVIDIA recommends 32-128 calibration samples for diffusion UNets.
DEFAULT_SAMPLES = 32
MIN_SAMPLES = 8
MAX_SAMPLES = 512


def excluded_by(path: str, op_type: str, architecture: str | None = None) -> Rule | None:
    """The first rule that keeps this node in float, or None when it may be quantised; `architecture` is the
    spec's (None: GenDR-Pix)."""
    rules = KEEP_FLOAT if architecture is None else KEEP_FLOAT_OTHER
    return next((rule for rule in rules if rule.matches(path, op_type)), None)
