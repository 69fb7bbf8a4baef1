"""FPGA device families and parts, as data, for the cost model.

What the cost model needs from a device (notes: docs/research/fpga_cost_and_hls.md
§1.2, §6.2):

* the DSP primitive of the family and its multiplier operand widths (signed
  bits on the two multiplier ports) and accumulator width: DSP48E1 25×18
  (7-series, Zynq-7000), DSP48E2 27×18 (UltraScale(+), Zynq UltraScale+),
  DSP58 27×24 (Versal);
* the memory primitives: BRAM18 in its simple-dual-port aspect ratios
  (16K×1 … 512×36, UG573), URAM 4K×72 where the family has it, LUTRAM 64×1
  (RAM64X1, the depth FINN divides by);
* the capacity of the part (LUT, FF, DSP, BRAM18, URAM), from the vendors'
  product tables (DS190 Zynq-7000, DS891 Zynq UltraScale+, DS950 Versal
  AI Core), so reports can show utilisation.

Unknown part names raise :class:`~sira.errors.SiraError` listing the known
parts; add a part by adding one :class:`Part` entry to :data:`PARTS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SiraError


@dataclass(frozen=True)
class DspPrimitive:
    """A DSP slice: multiplier port widths (signed bits) and accumulator bits."""

    name: str
    mult_a_bits: int
    mult_b_bits: int
    acc_bits: int


DSP48E1 = DspPrimitive("DSP48E1", 25, 18, 48)
DSP48E2 = DspPrimitive("DSP48E2", 27, 18, 48)
DSP58 = DspPrimitive("DSP58", 27, 24, 58)

#: BRAM18 simple-dual-port aspect ratios (width, depth), narrowest first (UG573).
BRAM18_SHAPES: tuple[tuple[int, int], ...] = (
    (1, 16384),
    (2, 8192),
    (4, 4096),
    (9, 2048),
    (18, 1024),
    (36, 512),
)
#: URAM288 geometry (width, depth).
URAM_SHAPE = (72, 4096)
#: Distributed RAM geometry per LUT (width, depth): RAM64X1.
LUTRAM_SHAPE = (1, 64)


@dataclass(frozen=True)
class Family:
    """A device family: its DSP primitive and whether it has URAM."""

    name: str
    dsp: DspPrimitive
    has_uram: bool


ZYNQ7 = Family("Zynq-7000", DSP48E1, has_uram=False)
ZYNQ_USP = Family("Zynq UltraScale+", DSP48E2, has_uram=True)
VERSAL = Family("Versal", DSP58, has_uram=True)


@dataclass(frozen=True)
class Part:
    """One FPGA part and its resource capacity."""

    name: str
    family: Family
    lut: int
    ff: int
    dsp: int
    bram18: int
    uram: int

    @property
    def dsp_primitive(self) -> DspPrimitive:
        return self.family.dsp


DEFAULT_PART = "xc7z020clg400-1"

PARTS: dict[str, Part] = {
    p.name: p
    for p in (
        # Zynq-7020 (PYNQ-Z1/Z2): 140 BRAM36 = 280 BRAM18.
        Part("xc7z020clg400-1", ZYNQ7, lut=53_200, ff=106_400, dsp=220, bram18=280, uram=0),
        # ZU3EG (Ultra96, finn-hlslib's test part): 216 BRAM36, no URAM.
        Part("xczu3eg-sbva484-1-i", ZYNQ_USP, lut=70_560, ff=141_120, dsp=360, bram18=432, uram=0),
        # ZU7EV (ZCU104, SIRA's elementwise tests): 312 BRAM36, 96 URAM.
        Part("xczu7ev-ffvc1156-2-e", ZYNQ_USP, lut=230_400, ff=460_800, dsp=1_728, bram18=624, uram=96),
        # VC1902 (VCK190): 967 BRAM36, 463 URAM, 1968 DSP58.
        Part("xcvc1902-vsva2197-2MP-e-S", VERSAL, lut=899_840, ff=1_799_680, dsp=1_968, bram18=1_934, uram=463),
    )
}


def get_part(name: str | None = None) -> Part:
    """The :class:`Part` called ``name`` (default :data:`DEFAULT_PART`)."""
    if name is None:
        name = DEFAULT_PART
    try:
        return PARTS[name]
    except KeyError:
        known = ", ".join(sorted(PARTS))
        raise SiraError(f"unknown FPGA part '{name}'; known parts: {known}") from None
