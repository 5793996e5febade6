"""Probe a traced module's memory and work without computing a pixel: fake tensors carry shapes only.

Each operator's fresh outputs count as live activation bytes until Python drops them (eager order, what ONNX
Runtime's planner roughly follows); views cost nothing. FLOPs come from torch's counter, plus the attention
products its CPU kernel leaves uncounted. Attention also counts its score matrix (batch x heads x queries x
keys floats) as transient memory: ONNX Runtime's Attention builds it whole.
"""

from __future__ import annotations

import weakref

from trtsr.cost import GraphCost, fit

# Input sides probed: large enough that the edge padding and alignment barely bend the fit.
PROBE_SIDES = (128, 192, 256)


def probe_cost(module, *, io: str, guidance: float | None, sides: tuple[int, int, int] = PROBE_SIDES
               ) -> GraphCost:
    """The `GraphCost` of `module` (the exporter's image-to-image module, input (H, W, 3) in `io`, plus a w
    tensor when `guidance` is given)."""
    peaks, works = [], []
    # the FLOP counter's module hooks trip on parameters that want gradients: none here, as in export
    wanted = [p for p in module.parameters() if p.requires_grad]
    for parameter in wanted:
        parameter.requires_grad_(False)
    try:
        for side in sides:
            peak, work = _probe_once(module, side, io=io, guidance=guidance)
            peaks.append(peak)
            works.append(work)
    finally:
        for parameter in wanted:
            parameter.requires_grad_(True)
    return GraphCost(fit(sides, tuple(peaks)), fit(sides, tuple(works)), tuple(sides))


def _probe_once(module, side: int, *, io: str, guidance: float | None) -> tuple[float, float]:
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class Live(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.live = self.peak = self.extra_flops = 0.0

        def _drop(self, size: float) -> None:
            self.live -= size

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = str(func)
            transient = 0.0
            if "scaled_dot_product" in name:
                q, k = args[0], args[1]
                *batch, queries, depth = q.shape
                keys = k.shape[-2]
                count = 1
                for n in batch:
                    count *= int(n)
                transient = count * queries * keys * 4.0  # float32 scores
                if "for_cpu" in name or "flash" in name or "efficient" in name:  # the counter misses these
                    self.extra_flops += 4.0 * count * queries * keys * depth
            if not any(r.alias_info is not None for r in func._schema.returns):  # views share their base
                for t in out if isinstance(out, (tuple, list)) else (out,):
                    if isinstance(t, torch.Tensor):
                        size = float(t.nelement() * t.element_size())
                        self.live += size
                        weakref.finalize(t, self._drop, size)
            self.peak = max(self.peak, self.live + transient)
            return out

    in_dtype = torch.uint8 if io == "uint8" else torch.float32
    with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True) as fake:
        args = [fake.from_tensor(torch.zeros(side, side, 3, dtype=in_dtype))]
        if guidance is not None:
            args.append(fake.from_tensor(torch.tensor([float(guidance)])))
        live = Live()
        with FlopCounterMode(display=False) as counter, live:
            out = module(*args)
        del out, args
    return live.peak, counter.get_total_flops() + live.extra_flops
