"""Optimisation profiles, named by OUTPUT size.

`1080p` means "images up to 1920x1080 out, tuned for 1920x1080"; the input
shapes follow from the graph's scale. Sizes are written width x height, as
people write them; TensorRT shapes are (height, width, 3).

    1080p, 4k, ...             named: min = the smallest the graph takes, opt = max = the size
    WxH                        custom: min = the smallest the graph takes, opt = max = WxH
    MINWxMINH:OPTWxOPTH:MAXWxMAXH   fully custom
"""

from __future__ import annotations

import dataclasses
import math
import re

from trtsr.defaults import PROFILES
from trtsr.errors import TrtsrError
from trtsr.sizes import SizeRequirements

NAMED_SIZES: dict[str, tuple[int, int]] = {
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "1440p": (2560, 1440),
    "4k": (3840, 2160),
    "8k": (7680, 4320),
}
# One engine covering 1080p to 8K output: three profiles, each tuned at its top size.
DEFAULT_PROFILES = PROFILES

_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def _parse_size(text: str, whole: str) -> tuple[int, int]:
    match = _SIZE.match(text)
    if not match:
        raise TrtsrError(f"profile {whole!r}: {text!r} is not WIDTHxHEIGHT")
    return int(match.group(1)), int(match.group(2))


@dataclasses.dataclass(frozen=True)
class ShapeProfile:
    """One optimisation profile in output pixels (width, height); `None` min means the graph's minimum."""

    name: str
    opt: tuple[int, int]
    max: tuple[int, int]
    min: tuple[int, int] | None = None

    @classmethod
    def parse(cls, text: str) -> ShapeProfile:
        key = text.strip().lower()
        if key in NAMED_SIZES:
            size = NAMED_SIZES[key]
            return cls(key, size, size)
        parts = key.split(":")
        if len(parts) == 1:
            size = _parse_size(parts[0], text)
            return cls(key, size, size)
        if len(parts) == 3:
            low, opt, high = (_parse_size(p, text) for p in parts)
            return cls(key, opt, high, low)
        names = ", ".join(NAMED_SIZES)
        raise TrtsrError(f"profile {text!r}: use a name ({names}), WxH, or MINWxMINH:OPTWxOPTH:MAXWxMAXH")

    def input_shapes(self, sizes: SizeRequirements) -> tuple[tuple[int, int, int], ...]:
        """(min, opt, max) input shapes (height, width, 3), checked against what the graph accepts."""
        scale, smallest, largest = sizes.scale, sizes.minimum, sizes.maximum
        def to_input(size: tuple[int, int], round_up: bool) -> tuple[int, int]:
            w, h = size
            if round_up:
                return math.ceil(h / scale), math.ceil(w / scale)
            return h // scale, w // scale

        high = to_input(self.max, round_up=False)
        opt = to_input(self.opt, round_up=False)
        low = (smallest, smallest) if self.min is None else to_input(self.min, round_up=True)
        smallest_out = smallest * scale
        for label, (h, w) in (("min", low), ("opt", opt), ("max", high)):
            if min(h, w) < smallest:
                raise TrtsrError(
                    f"profile {self.name!r}: its {label} size is below the smallest output this x{scale} graph "
                    f"takes ({smallest_out}x{smallest_out})"
                )
            if max(h, w) > largest:
                raise TrtsrError(
                    f"profile {self.name!r}: its {label} size is above the largest this x{scale} graph takes "
                    f"({largest * scale} pixels a side)"
                )
        if not (low[0] <= opt[0] <= high[0] and low[1] <= opt[1] <= high[1]):
            raise TrtsrError(f"profile {self.name!r}: min <= opt <= max must hold in both width and height")
        return (low[0], low[1], 3), (opt[0], opt[1], 3), (high[0], high[1], 3)

    def shapes(self, sizes: SizeRequirements) -> ProfileShapes:
        """The input and output shapes this profile gives a graph with these size rules."""
        low, opt, high = self.input_shapes(sizes)
        scale = sizes.scale
        return ProfileShapes(self.name, low, opt, high, *((s[0] * scale, s[1] * scale, 3) for s in (low, opt, high)))


Shape = tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class ProfileShapes:
    """One optimisation profile of a built engine: (height, width, 3) input and output min, opt and max."""

    name: str
    input_min: Shape
    input_opt: Shape
    input_max: Shape
    output_min: Shape
    output_opt: Shape
    output_max: Shape

    @classmethod
    def from_dict(cls, data: dict) -> ProfileShapes:
        return cls(data["name"], *(tuple(int(v) for v in data[key]) for key in (
            "input_min", "input_opt", "input_max", "output_min", "output_opt", "output_max")))

    @property
    def input_range(self) -> tuple[Shape, Shape, Shape]:
        return self.input_min, self.input_opt, self.input_max

    def holds(self, height: int, width: int) -> bool:
        """Whether an input of this size fits the profile."""
        return (self.input_min[0] <= height <= self.input_max[0]
                and self.input_min[1] <= width <= self.input_max[1])


def parse_profiles(texts: list[str] | tuple[str, ...] | None) -> tuple[ShapeProfile, ...]:
    chosen = list(texts) if texts else list(DEFAULT_PROFILES)
    profiles = tuple(ShapeProfile.parse(t) for t in chosen)
    names = [p.name for p in profiles]
    if len(set(names)) != len(names):
        raise TrtsrError(f"profile given twice: {', '.join(n for n in names if names.count(n) > 1)}")
    return profiles
