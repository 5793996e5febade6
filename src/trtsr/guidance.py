"""PadCFG guidance as a value with three states: the model's own w, off (no PadCFG), or a number.

It is parsed once, from `-g` / `--no-padcfg` (`Guidance.parse`) or from the Python API's
argument (`Guidance.of`: 'auto', None or a number), and turned into the w a model runs in one
place (`Guidance.decide`), which refuses what a graph or an engine cannot honour. A leaf module:
the CLI, model resolution and the pipeline read it.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from trtsr import defaults
from trtsr.errors import TrtsrError


def check_guidance(value: float | None) -> None:
    """The one guidance range, for every command and the API: above 0 and at most MAX_GUIDANCE (None = no
    PadCFG passes)."""
    if value is not None and not 0.0 < float(value) <= defaults.MAX_GUIDANCE:
        raise TrtsrError(f"guidance must be above 0 and at most {defaults.MAX_GUIDANCE:g} (1.0 = no PadCFG), "
                         f"got {value:g}")


@dataclasses.dataclass(frozen=True)
class Guidance:
    """`kind` is 'own' (the model's own w), 'off' (no PadCFG) or 'w' (the number `w`)."""

    kind: Literal["own", "off", "w"] = "own"
    w: float | None = None

    OWN: ClassVar[Guidance]
    OFF: ClassVar[Guidance]

    def __post_init__(self) -> None:
        if self.kind not in ("own", "off", "w") or (self.kind == "w") != (self.w is not None):
            raise ValueError(f"not a guidance: {self.kind!r}, {self.w!r}")
        if self.kind == "w":
            check_guidance(self.w)

    @classmethod
    def number(cls, w: float) -> Guidance:
        """A w in the one accepted range; 1.0 is the positive pass alone, so it is `OFF`."""
        check_guidance(w)
        return cls.OFF if float(w) == 1.0 else cls("w", float(w))

    @classmethod
    def of(cls, value: Guidance | float | str | None) -> Guidance:
        """The Python API's argument: 'auto' = the model's own w, None = no PadCFG, or a number."""
        if isinstance(value, Guidance):
            return value
        if value is None:
            return cls.OFF
        if value == defaults.AUTO_GUIDANCE:
            return cls.OWN
        if isinstance(value, str) or not isinstance(value, int | float):
            raise TrtsrError(f"guidance must be a number or {defaults.AUTO_GUIDANCE!r} (None: no PadCFG), "
                             f"got {value!r}")
        return cls.number(value)

    @classmethod
    def parse(cls, guidance: float | None, no_padcfg: bool) -> Guidance:
        """The command line's `-g W` (None: not given) and `--no-padcfg`."""
        if no_padcfg and guidance is not None and float(guidance) != 1.0:
            raise TrtsrError(f"--no-padcfg and -g {guidance:g} contradict each other; give one of them")
        if no_padcfg:
            return cls.OFF
        return cls.OWN if guidance is None else cls.number(guidance)

    def decide(self, own: float | None, *, optional: bool, takes_input: bool, what: str = "graph") -> float | None:
        """The w a model runs (None: no PadCFG), or one line where it cannot: the one place that decides it.

        `own` is the model's own w (None: it has no PadCFG); `optional`: it may run with or without PadCFG and
        at any w (weights, exported on demand); otherwise it is a `what` (graph or engine) made with `own`,
        taking w as an input where `takes_input`.
        """
        if self.kind == "own":
            return own
        if self.kind == "off":
            if own is None or optional:
                return None
            raise TrtsrError(f"this {what} has PadCFG (w = {own:g}{', an input' if takes_input else ''}); it "
                             "cannot run without PadCFG: use one exported without PadCFG, or ask for PadCFG (guidance "
                             "'auto' or a w; on the command line, drop --no-padcfg / -g 1)")
        if own is None and not optional:
            raise TrtsrError(f"this {what} has no PadCFG; it cannot run with guidance {self.w:g}: use one exported "
                             "with PadCFG, or run it without guidance (guidance=None; on the command line, drop -g)")
        if optional or takes_input or self.w == float(own):
            return self.w
        raise TrtsrError(f"this {what} has PadCFG with w = {own:g} built in; it cannot run with guidance "
                         f"{self.w:g}: export one that takes w as an input (the default), or run its own w (guidance "
                         "'auto'; on the command line, drop -g)")

    def __str__(self) -> str:
        return {"own": "the model's own w", "off": "no PadCFG"}.get(self.kind) or f"w = {self.w:g}"


Guidance.OWN = Guidance("own")
Guidance.OFF = Guidance("off")
