"""Levers the GPU check tries on the 4K PadCFG pass (`check.py --levers`), applied to a GenDR-Pix network in place.

None of these is part of trtsr's runtime: each is measured against the plain network first, and only a lever
that measures faster at the same pixels would move into `trtsr.sessions`.

- `fp8_feed_forward`: every transformer feed-forward linear (GEGLU's projection and the output) as an FP8 e4m3
  matmul (`torch._scaled_mm`): weights quantised once per tensor, activations per call, output in the input's
  dtype. Hopper (compute capability 9.0) runs it on FP8 tensor cores; a CPU runs the same arithmetic.
- `flex_self_attention`: the self-attention of every transformer block through `flex_attention`, which
  torch.compile turns into a Triton kernel (uncompiled on a CPU: the same arithmetic, unfused).
- `CudaGraphModule`: the whole module captured once as a CUDA graph at one input size and replayed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0  # the largest finite e4m3 value
ROWS = 16  # _scaled_mm wants both matrices' sides in multiples of 16


def _scale(t: torch.Tensor) -> torch.Tensor:
    return (t.detach().abs().amax().float() / FP8_MAX).clamp(min=1e-12)


class Fp8Linear(nn.Module):
    """`linear`'s weight in FP8 with one float32 scale; inputs quantised per call with their own scale."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach()
        if weight.shape[0] % ROWS or weight.shape[1] % ROWS:
            raise ValueError(f"FP8 matmuls need sides in multiples of {ROWS}, not {tuple(weight.shape)}")
        scale = _scale(weight)
        self.register_buffer("weight", (weight.float() / scale).to(FP8))
        self.register_buffer("weight_scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, self.in_features)
        count = rows.shape[0]
        if count % ROWS:
            rows = F.pad(rows, (0, 0, 0, ROWS - count % ROWS))
        scale = _scale(rows)
        quantised = (rows.float() / scale).to(FP8)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        out = torch._scaled_mm(quantised, self.weight.t(), scale_a=scale, scale_b=self.weight_scale, bias=bias,
                               out_dtype=x.dtype)
        return out[:count].reshape(*shape[:-1], self.out_features)


def fp8_feed_forward(net: nn.Module) -> int:
    """Replace the linears of every diffusers FeedForward under `net` by `Fp8Linear`; returns how many."""
    from diffusers.models.attention import FeedForward

    swapped = 0
    for block in net.modules():
        if not isinstance(block, FeedForward):
            continue
        for parent in block.modules():
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(parent, name, Fp8Linear(child))
                    swapped += 1
    return swapped


class FlexSelfAttention:
    """A diffusers attention processor for self-attention (no mask, no norms) through `flex_attention`."""

    def __init__(self, compiled: bool) -> None:
        from torch.nn.attention.flex_attention import flex_attention

        self.attend = torch.compile(flex_attention, dynamic=False) if compiled else flex_attention

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **_):
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("FlexSelfAttention serves self-attention without a mask only")
        batch, tokens, _ = hidden_states.shape
        heads = attn.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, tokens, heads, -1).transpose(1, 2)

        q, k, v = split(attn.to_q(hidden_states)), split(attn.to_k(hidden_states)), split(attn.to_v(hidden_states))
        out = self.attend(q, k, v, scale=attn.scale).transpose(1, 2).reshape(batch, tokens, -1)
        out = attn.to_out[1](attn.to_out[0](out.to(q.dtype)))
        return out / attn.rescale_output_factor


def flex_self_attention(net: nn.Module, compiled: bool) -> int:
    """Every transformer block's self-attention (`attn1`) under `net` through `FlexSelfAttention`."""
    processor = FlexSelfAttention(compiled)
    blocks = [m for m in net.modules() if hasattr(m, "attn1") and hasattr(m.attn1, "set_processor")]
    for block in blocks:
        block.attn1.set_processor(processor)
    return len(blocks)


class CudaGraphModule:
    """`module(*args)` captured once as a CUDA graph on these arguments' shapes, replayed on new values."""

    def __init__(self, module, args: tuple[torch.Tensor, ...], context) -> None:
        self.inputs = [a.clone() for a in args]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode(), context():
            for _ in range(2):  # warm-up outside the graph: lazy initialisation and kernel choice
                module(*self.inputs)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), context(), torch.cuda.graph(self.graph):
            self.output = module(*self.inputs)

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        for slot, value in zip(self.inputs, args, strict=True):
            slot.copy_(value)
        self.graph.replay()
        return self.output
