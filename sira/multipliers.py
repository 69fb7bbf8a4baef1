"""Multipliers and adder trees mapped to FPGA fabric or DSP slices.

:func:`multiply` makes the DSP-or-LUT decision for one kind of w×a multiply
against the part's DSP operand widths (docs/research/fpga_cost_and_hls.md
§1.7, §6.2) and costs it; :func:`adder_tree` gives the LUTs of a pipelined
adder tree. The cost model, the hardware lint and the HLS backend bind every
multiply the same way through these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .devices import Part, get_part
from .errors import SiraError
from .formulas import evaluate


@dataclass(frozen=True)
class Multiply:
    """The binding decision for one kind of multiply in a layer (§1.7, §6.2).

    ``lut``/``dsp`` are per instance; ``count`` instances exist in the layer.
    """

    name: str
    w_bits: int
    a_bits: int
    impl: str  # "lut" or "dsp"
    lut: int
    dsp: int
    count: int
    reason: str


def _part(part: Part | str | None) -> Part:
    return part if isinstance(part, Part) else get_part(part)




def multiply(w_bits: int, a_bits: int, part: Part | str | None = None, *, count: int = 1,
             binding: str = "auto", w_signed: bool = True, a_signed: bool = True,
             name: str = "multiply") -> Multiply:
    """Bind one w×a multiply to fabric or DSP and cost it (§1.7, §6.2).

    Fabric: FINN's (2⌈(w+a)/6⌉−1)(w+a), or min·(max+1) shift-add when an
    operand has ≤ 2 bits. DSP: the part's DSP multiplies signed operands of
    its port widths (DSP48E1 25×18, DSP48E2 27×18, DSP58 27×24); an unsigned
    operand needs one extra port bit; a wider product is split over
    ⌈x/pa⌉·⌈y/pb⌉ DSPs (best orientation). ``binding="auto"`` follows §1.7's
    rule: fabric when w+a ≤ 8 or an operand has ≤ 2 bits, DSP otherwise.
    """
    if binding == "auto":
        if w_bits + a_bits <= 8 or min(w_bits, a_bits) <= 2:
            binding, reason = "lut", "auto: w+a <= 8 or an operand <= 2 bits"
        else:
            binding, reason = "dsp", "auto: w+a > 8 and both operands > 2 bits"
    elif binding in ("lut", "dsp"):
        reason = f"forced {binding}"
    else:
        raise SiraError(f"unknown multiply binding '{binding}'; use auto, lut or dsp")
    if binding == "lut":
        key = "prim.mult_fabric_narrow" if min(w_bits, a_bits) <= 2 else "prim.mult_fabric"
        return Multiply(name, w_bits, a_bits, "lut", evaluate(key, W=w_bits, A=a_bits), 0, count, reason)
    dsp = _part(part).dsp_primitive
    x, y = w_bits + (not w_signed), a_bits + (not a_signed)
    pa, pb = dsp.mult_a_bits, dsp.mult_b_bits
    n = min(math.ceil(x / pa) * math.ceil(y / pb), math.ceil(y / pa) * math.ceil(x / pb))
    if n > 1:
        reason += f"; {x}x{y} port bits exceed {dsp.name} {pa}x{pb}, split over {n}"
    return Multiply(name, w_bits, a_bits, "dsp", 0, n, count, reason)


def cheaper_multiply(w_bits: int, a_bits: int, part: Part | str | None = None, **kw) -> Multiply:
    """The multiply bound to DSP or to fabric, whichever takes the smaller
    share of the part (its LUTs / the part's LUTs + its DSPs / the part's
    DSPs): for a few wide multiplies (one per PE), where §1.7's rule of
    thumb for the many narrow ones of a dot product does not weigh what
    either binding costs on the chosen device."""
    p = _part(part)
    options = [multiply(w_bits, a_bits, p, binding=b, **kw) for b in ("dsp", "lut")]
    best = min(options, key=lambda m: m.count * (m.lut / p.lut + (m.dsp / p.dsp if p.dsp else math.inf)))
    return Multiply(best.name, w_bits, a_bits, best.impl, best.lut, best.dsp, best.count,
                    f"the smaller share of {p.name}: {best.impl} ({best.lut} LUT, {best.dsp} DSP each)")


def adder_tree(q: int, b: int, cap: int | None = None) -> int:
    """LUTs of a pipelined binary adder tree over ``q`` ``b``-bit inputs (§6.2):
    Σ_levels adders·(b+level) − (q−1); an odd input passes a level unchanged.
    ``cap`` bounds every level's width (a proven partial-sum width: the
    tree computes modulo ``2**cap``, :mod:`sira.accumulation`)."""
    luts, n, level = 0, q, 1
    while n > 1:
        luts += (n // 2) * (b + level if cap is None else min(b + level, cap))
        n, level = (n + 1) // 2, level + 1
    return luts - (q - 1)


__all__ = ["Multiply", "multiply", "cheaper_multiply", "adder_tree"]
