"""The size rules of an exported graph, computed in one place.

The UNet runs on sides that are a multiple of its alignment (8 for the pixel
unshuffle times 2 per downsampling level: 64 for every GenDR-Pix preset). PadCFG
adds 8 pixels to each side (a reflect pad of 4 + 4, or 3 + 5) before the UNet,
so the graph pads the resized image with its mirror image until `side + padding`
is a multiple (keeping `RIGHT_RESERVE` more pixels clear on the right), runs, and
crops back. The smallest input is the one whose lowest UNet
level is still 2 wide; the largest is the exporter's dynamic-dimension bound.

No torch here: `aligned_side` works on ints and on torch's symbolic sizes alike.
"""

from __future__ import annotations

import dataclasses

from trtsr.defaults import MAX_INPUT_SIDE

# Pixels the network's input gets around the picture in each spatial dimension: the positive branch's reflect
# pad (4, 4), the negative's (3, 5). The plain path (no PadCFG) is the positive branch alone, so it gets them too:
# without them the picture's corners sit on the UNet's zero-padded border and come out wrong.
PADCFG_PADDING = 8

# Output pixels the picture keeps clear of the canvas's right edge, beyond PadCFG's pad: with the right reflect
# pad of 4 the picture never reaches the last four latent cells (32 px) of the UNet's canvas on the right.
# Measured on the shipped default weights (flat picture, w 2.2): where the picture reached those cells, a spot in
# its top-right corner (latent row 1, two or three cells from the canvas's right edge) differed from the input by
# 2 levels at 120 px wide, growing with the width to 13 at 568 px (28 through PadCFG at x4 on an 816-px output).
# With 12 px kept clear it still reached 10 (488 x 440); with 20, 3.2 (widths 300-720, 120 high); with 28 at most
# 4.9 over widths 400-1100 at 440 high, against 2 to 3 in the other corners. The other edges showed no such spot.
RIGHT_RESERVE = 28


def aligned_side(side, multiple: int, padding: int):
    """Smallest `n >= side` with `(n + padding) % multiple == 0`."""
    return ((side + padding + multiple - 1) // multiple) * multiple - padding


def aligned_width(width, multiple: int, padding: int, reserve: int = RIGHT_RESERVE):
    """The aligned width for a picture `width` wide: `aligned_side` of the width plus the right-side reserve."""
    return aligned_side(width + reserve, multiple, padding)


@dataclasses.dataclass(frozen=True)
class SizeRequirements:
    """What input sizes a graph takes and how it aligns them.

    Fields:
        scale: output side = scale x input side.
        multiple: the UNet's alignment (output pixels).
        padding: pixels added to each output side before aligning (PADCFG_PADDING, with or without PadCFG).
        maximum: largest input side.
        floor: smallest input side the network itself takes, where that is more than the alignment rule's (a
            model spandrel loads may say so); 0 for GenDR-Pix.
    """

    scale: int
    multiple: int
    padding: int
    maximum: int = MAX_INPUT_SIDE
    floor: int = 0

    @classmethod
    def for_graph(cls, *, scale: int, multiple: int, maximum: int = MAX_INPUT_SIDE):
        return cls(scale, multiple, PADCFG_PADDING, maximum)

    @classmethod
    def for_network(cls, *, scale: int, multiple: int, minimum: int, maximum: int = MAX_INPUT_SIDE):
        """A network that is not GenDR-Pix: `multiple` and `minimum` in input pixels, no PadCFG padding."""
        return cls(scale, multiple * scale, 0, maximum, minimum)

    @property
    def rule_minimum(self) -> int:
        """Smallest input side by the alignment rule alone: for GenDR-Pix, the one whose lowest UNet level is
        at least 2 wide. At 1 the exported shape arithmetic would rest on guards that do not hold, so smaller
        images are padded up by the caller instead."""
        return (self.multiple - self.padding) // self.scale + 1

    @property
    def minimum(self) -> int:
        """Smallest input side the graph takes."""
        return max(self.rule_minimum, self.floor)

    def aligned(self, side):
        """The side (output pixels) the graph pads an output side to before the UNet."""
        return aligned_side(side, self.multiple, self.padding)

    def accepts(self, height: int, width: int) -> bool:
        return self.minimum <= min(height, width) and max(height, width) <= self.maximum
