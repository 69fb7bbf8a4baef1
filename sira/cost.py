"""Per-layer FPGA resource cost: FINN's formulas and sira's refined model.

Every function here is a pure function of plain parameters (bit widths,
folding, shapes; no graph access) and returns a :class:`Cost` with FINN's key
names (``LUT``, ``DSP``, ``BRAM_18K``, ``URAM`` via :meth:`Cost.finn_dict`).
Two modes (section numbers refer to docs/research/fpga_cost_and_hls.md):

``"finn"``
    FINN's analytical estimates exactly as §1 gives them, so numbers can be
    diffed against FINN's ``estimate_layer_resources.json``. Where FINN has
    no estimate for a layer it reports 0 (its base class default, §1.0); finn
    mode reproduces that 0 and says so in :attr:`Cost.note`.

``"refined"`` (default)
    The §6 model: each op decomposed into the primitives of §6.2 (adders,
    comparators, fabric or DSP multipliers, adder trees, popcounts, memories
    mapped to LUTRAM/BRAM18/URAM by geometry), with an explicit DSP-or-LUT
    decision for every multiply (:class:`Multiply`) against the part's DSP
    operand widths. A non-trivial layer never costs 0; a cost the notes give
    no formula for is :data:`UNKNOWN`, never 0.

Closed-form formulas are written once, as sympy expressions in
:data:`FORMULAS` (``formula(name)`` returns one for reports); they are
evaluated exactly (integers and rationals, ``floor``/``ceiling``), so FINN's
``int(...)`` truncations are reproduced without float rounding. Tables and
branches (memory aspect ratios, resource-style conditions) are Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping, Union

import sympy as sp

from .devices import Part, get_part
from .errors import SiraError

MODES = ("finn", "refined")


class _Unknown:
    """Marker for a cost the model has no formula for (never read as 0)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "unknown"


UNKNOWN = _Unknown()
Amount = Union[int, _Unknown]


# --------------------------------------------------------------------------
# Formulas (sympy), written once
# --------------------------------------------------------------------------

_S = {n: sp.Symbol(n, integer=True, nonnegative=True) for n in (
    "P", "Q", "W", "A", "B", "T", "N", "K", "s", "acc", "width", "depth",
    "WMEM", "TMEM", "L_mult", "L_tree", "L_acc", "L_thr", "L_cmp", "c2",
    "n", "b", "k", "stride", "IFMDim", "C",
)}
P, Q, W, A, B, T, N, K, s = (_S[n] for n in ("P", "Q", "W", "A", "B", "T", "N", "K", "s"))
_acc, _width, _depth, WMEM, TMEM = (_S[n] for n in ("acc", "width", "depth", "WMEM", "TMEM"))

_alpha = sp.log(K, 2) + W + A - 1 - s
_C1 = sp.Rational(11, 10)

#: name -> sympy expression. ``finn.*`` are §1 (FINN), ``prim.*`` are the
#: §6.2 primitives, ``refined.*`` composite §6.3 terms.
FORMULAS: dict[str, sp.Expr] = {
    # §1.1 MVAU HLS (VVAU HLS shares the terms, §1.3)
    "finn.mvau.lut": sp.floor(300 + _C1 * P * (_S["L_mult"] + _S["L_tree"] + _S["L_acc"] + _S["L_thr"] + _S["L_cmp"]) + _S["c2"]),
    "finn.mvau.L_mult": Q * (2 * sp.ceiling((W + A) / 6) - 1) * (W + A),
    "finn.mvau.L_tree": (W + A) * (2 * Q - 1),
    "finn.a2q_acc_bits": sp.ceiling(_alpha + sp.log(1 + 2**-_alpha, 2) + 1),
    "finn.mvau.L_thr": (2**B - 1) * _acc * sp.ceiling(TMEM / 64),
    "finn.vvau.L_thr": (2**B - 1) * _acc * TMEM / 64,
    "finn.mvau.L_cmp": (2**B - 1) * _acc,
    "finn.mvau.c2": P * Q * W * sp.ceiling(WMEM / 64),
    "finn.mvau.dsp": P * Q * sp.ceiling((W + A) / 48),
    "finn.vvau.dsp": P * sp.ceiling((W + A) / 48),
    # §1.2 RTL MVU / VVU
    "finn.rtl.dsp58": P * sp.ceiling(Q / 3),
    "finn.rtl.dsp48": sp.ceiling(P / 4) * Q,
    # §1.4 Thresholding HLS
    "finn.thr_hls.lut": A * P,
    "finn.thr_hls.lutram": P * A * sp.ceiling(TMEM / 64),
    "finn.thr_hls.bram": sp.ceiling(A * P / 16) * sp.ceiling(TMEM / 1024),
    # §1.6 sliding window (HLS, 2-D), FIFO, Lookup
    "finn.swg_hls.bram": (_S["k"] + _S["stride"]) * sp.ceiling(_S["b"] / _S["n"]),
    "finn.swg_hls.lut": 300 + (_S["k"] + _S["stride"]) * Q * A * sp.ceiling(_S["IFMDim"] * _S["C"] / Q / 64),
    "finn.swg_rtl.lut": 300 + Q * A * sp.ceiling(_depth / 38),
    "finn.fifo.address": 2 * sp.ceiling(sp.log(_depth, 2)),
    "finn.fifo.storage": sp.ceiling(_depth / 32) * sp.ceiling(_width / 2),
    "finn.lookup.bram": sp.ceiling(_width / 16) * sp.ceiling(_depth / 1024),
    # §6.2 primitives
    "prim.add": _S["n"],
    "prim.cmp_var": sp.ceiling(2 * _S["n"] / 3),
    "prim.cmp_const": sp.ceiling(_S["n"] / 2),
    "prim.mult_fabric": (2 * sp.ceiling((W + A) / 6) - 1) * (W + A),
    "prim.mult_fabric_narrow": sp.Min(W, A) * (sp.Max(W, A) + 1),
    "prim.lutram": _width * sp.ceiling(_depth / 64),
    "prim.uram": sp.ceiling(_width / 72) * sp.ceiling(_depth / 4096),
    "prim.popcount": N,
    "prim.bitwise": sp.ceiling(_S["n"] / 3),
    # §6.3 composites
    "refined.thr_linear": P * (N * sp.ceiling(2 * A / 3) + N + B),
    "refined.thr_binary": P * (B * sp.ceiling(2 * A / 3) + B),
    "refined.thr_const": P * sp.ceiling(sp.Min(N * A / sp.Rational(5, 2), sp.Rational(13, 10) * B * 2**sp.Max(0, A - 6))),
    "refined.fmpadding": sp.ceiling(Q * A / 2) + 50,
}


def formula(name: str) -> sp.Expr:
    """The sympy expression of a named formula (for reports)."""
    return FORMULAS[name]


def _ev(name: str, **values) -> int:
    """Evaluate formula ``name`` exactly; every free symbol must be given."""
    expr = FORMULAS[name]
    result = expr.xreplace({sym: sp.sympify(values[sym.name]) for sym in expr.free_symbols})
    if not result.is_integer:
        raise ValueError(f"formula {name} did not evaluate to an integer: {result}")
    return int(result)


def _evq(name: str, **values) -> sp.Rational:
    """Evaluate formula ``name`` exactly, allowing a rational result."""
    expr = FORMULAS[name]
    return sp.Rational(expr.xreplace({sym: sp.sympify(values[sym.name]) for sym in expr.free_symbols}))


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Cost:
    """Resources of one layer. ``breakdown`` splits the LUT count by term."""

    kind: str
    mode: str
    lut: Amount
    dsp: Amount
    bram18: Amount
    uram: Amount
    breakdown: Mapping[str, Amount] = field(default_factory=dict)
    multiplies: tuple[Multiply, ...] = ()
    note: str = ""
    free: bool = False
    #: where each memory of the layer was mapped (``"weights"``,
    #: ``"thresholds"``, ``"line_buffer"``, ... -> ``"distributed"``,
    #: ``"block"`` or ``"ultra"``): the HLS backend binds each the same way
    storage: Mapping[str, str] = field(default_factory=dict)
    #: how a threshold unit is built: ``"linear"`` (every comparator at
    #: once), ``"binary"`` (binary search, one memory per stage) or
    #: ``"constant"`` (hard-wired shared thresholds); "" without thresholds
    threshold_unit: str = ""

    def finn_dict(self) -> dict[str, Amount]:
        """The numbers under FINN's key names."""
        return {"BRAM_18K": self.bram18, "LUT": self.lut, "URAM": self.uram, "DSP": self.dsp}


def _sum(values) -> Amount:
    values = list(values)
    if any(v is UNKNOWN for v in values):
        return UNKNOWN
    return sum(values)


def _refined(kind: str, breakdown: dict[str, Amount], dsp: Amount = 0, bram18: Amount = 0,
             uram: Amount = 0, multiplies: tuple[Multiply, ...] = (), note: str = "") -> Cost:
    """A refined-mode result; a non-free layer must not come out as all zeros."""
    cost = Cost(kind, "refined", _sum(breakdown.values()), dsp, bram18, uram, breakdown, multiplies, note)
    if all(v == 0 for v in (cost.lut, cost.dsp, cost.bram18, cost.uram)):
        raise AssertionError(f"refined cost of {kind} came out as 0; it must be modelled or unknown")
    return cost


def _finn_zero(kind: str) -> Cost:
    """FINN has no estimate for ``kind``: its base class reports 0 (§1.0, §1.6)."""
    return Cost(kind, "finn", 0, 0, 0, 0, note=f"FINN has no resource estimate for {kind}; it reports 0")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise SiraError(f"unknown cost mode '{mode}'; use one of {', '.join(MODES)}")


def _part(part: Part | str | None) -> Part:
    return part if isinstance(part, Part) else get_part(part)


# --------------------------------------------------------------------------
# Memories
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    """A memory of ``width`` × ``depth`` bits mapped to one primitive kind."""

    style: str  # "none", "distributed", "block", "ultra"
    lut: int
    bram18: int
    uram: int


def _stored(**memories: Memory) -> dict[str, str]:
    """The storage map of a cost: memory name -> primitive style (memories
    that turned out empty are left out)."""
    return {name: m.style for name, m in memories.items() if m.style != "none"}


def bram18_finn(width: int, depth: int, wide: bool = True) -> int:
    """FINN's RAMB18 count for a ``width`` × ``depth`` memory (§1.1 table).

    ``wide=False`` uses the VVAU variant of the table (§1.3: divisors 8/16/32
    instead of 9/18/36 for the ≤9, ≤18 and >18-bit rows).
    """
    d9, d18, d36 = (9, 18, 36) if wide else (8, 16, 32)
    if width == 1:
        return math.ceil(depth / 16384)
    if width == 2:
        return math.ceil(depth / 8192)
    if width <= 4:
        return math.ceil(depth / 4096) * math.ceil(width / 4)
    if width <= 9:
        return math.ceil(depth / 2048) * math.ceil(width / d9)
    if width <= 18 or depth > 512:
        return math.ceil(depth / 1024) * math.ceil(width / d18)
    return math.ceil(depth / 512) * math.ceil(width / d36)


def map_memory(width: int, depth: int, part: Part | str | None = None, style: str = "auto") -> Memory:
    """Map a ``width`` × ``depth``-bit memory to LUTRAM, BRAM18 or URAM (§6.2).

    ``style="auto"`` applies §6.2's shallow-memory rule: depth ≤ 64 or at most
    2 kbit → LUTRAM (w·⌈d/64⌉ LUTs), otherwise BRAM18 by the §1.1 table.
    ``"distributed"``, ``"block"`` and ``"ultra"`` (URAM ⌈w/72⌉·⌈d/4096⌉)
    force a primitive. A zero-sized memory costs nothing.
    """
    if width <= 0 or depth <= 0:
        return Memory("none", 0, 0, 0)
    if style == "auto":
        style = "distributed" if depth <= 64 or width * depth <= 2048 else "block"
    if style == "distributed":
        return Memory(style, _ev("prim.lutram", width=width, depth=depth), 0, 0)
    if style == "block":
        return Memory(style, 0, bram18_finn(width, depth), 0)
    if style == "ultra":
        p = _part(part)
        if not p.family.has_uram:
            raise SiraError(f"part {p.name} ({p.family.name}) has no URAM; use ram_style block or distributed")
        return Memory(style, 0, 0, _ev("prim.uram", width=width, depth=depth))
    raise SiraError(f"unknown memory style '{style}'; use auto, distributed, block or ultra")


#: FINN's primitive table for RTL thresholding memories (§1.4), in FINN's order
#: (which breaks ties in waste).
_FINN_RTL_PRIMITIVES = (
    ("URAM", 72, 4096), ("URAM", 36, 8192), ("URAM", 18, 16384), ("URAM", 9, 32768),
    ("BRAM18", 36, 512), ("BRAM18", 18, 1024), ("BRAM18", 9, 2048), ("LUTRAM", 1, 64),
)


def _finn_least_waste(width: int, depth: int) -> tuple[str, int]:
    """FINN's least-waste primitive for one memory (§1.4): (kind, count)."""
    best = None
    for kind, pw, pd in _FINN_RTL_PRIMITIVES:
        count = math.ceil(width / pw) * math.ceil(depth / pd)
        waste = count * pw * pd - width * depth
        if best is None or waste < best[0]:
            best = (waste, kind, count)
    return best[1], best[2]


# --------------------------------------------------------------------------
# Multipliers
# --------------------------------------------------------------------------


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
        return Multiply(name, w_bits, a_bits, "lut", _ev(key, W=w_bits, A=a_bits), 0, count, reason)
    dsp = _part(part).dsp_primitive
    x, y = w_bits + (not w_signed), a_bits + (not a_signed)
    pa, pb = dsp.mult_a_bits, dsp.mult_b_bits
    n = min(math.ceil(x / pa) * math.ceil(y / pb), math.ceil(y / pa) * math.ceil(x / pb))
    if n > 1:
        reason += f"; {x}x{y} port bits exceed {dsp.name} {pa}x{pb}, split over {n}"
    return Multiply(name, w_bits, a_bits, "dsp", 0, n, count, reason)


def adder_tree(q: int, b: int) -> int:
    """LUTs of a pipelined binary adder tree over ``q`` ``b``-bit inputs (§6.2):
    Σ_levels adders·(b+level) − (q−1); an odd input passes a level unchanged."""
    luts, n, level = 0, q, 1
    while n > 1:
        luts += (n // 2) * (b + level)
        n, level = (n + 1) // 2, level + 1
    return luts - (q - 1)


def a2q_acc_bits(k: int, w_bits: int, a_bits: int, a_signed: bool) -> int:
    """The A2Q data-type accumulator bound FINN falls back to (§1.1, §5.2):
    ⌈α + log2(1 + 2^−α) + 1⌉, α = log2(K) + W + A − 1 − [input signed]."""
    return _ev("finn.a2q_acc_bits", K=k, W=w_bits, A=a_bits, s=int(a_signed))


# --------------------------------------------------------------------------
# MVAU / VVAU
# --------------------------------------------------------------------------


def _finn_dot_lut(kind: str, *, pe, simd, w_bits, a_bits, acc_bits, out_bits, tmem, wmem,
                  res_type, thresholds_in_luts, c2_applies):
    """FINN's MVAU/VVAU HLS LUT model (§1.1, §1.3): 300 + 1.1·P·(terms) + c2."""
    terms = {
        "L_mult": 0 if res_type == "dsp" else _ev("finn.mvau.L_mult", Q=simd, W=w_bits, A=a_bits),
        "L_tree": _ev("finn.mvau.L_tree", Q=simd, W=w_bits, A=a_bits),
        "L_acc": acc_bits,
        "L_thr": 0,
        "L_cmp": 0,
    }
    if thresholds_in_luts:
        thr_key = "finn.vvau.L_thr" if kind == "VVAU" else "finn.mvau.L_thr"
        terms["L_thr"] = _evq(thr_key, B=out_bits, acc=acc_bits, TMEM=tmem)
        terms["L_cmp"] = _ev("finn.mvau.L_cmp", B=out_bits, acc=acc_bits)
    terms["c2"] = _ev("finn.mvau.c2", P=pe, Q=simd, W=w_bits, WMEM=wmem) if c2_applies else 0
    lut = _ev("finn.mvau.lut", P=pe, **terms)
    return lut, {k: (int(v) if sp.sympify(v).is_integer else v) for k, v in terms.items()}


def _finn_weight_memory(kind, *, width, wmem, mem_mode, ram_style):
    """FINN's weight-memory BRAM18/URAM for MVAU (§1.1) and VVAU (§1.3)."""
    off = (mem_mode == "internal_decoupled" and ram_style in ("distributed", "ultra")) or (
        mem_mode == "internal_embedded" and wmem <= 128) or mem_mode == "external"
    if kind == "VVAU" and ram_style == "auto" and wmem <= 128:
        off = True
    bram = 0 if off else bram18_finn(width, wmem, wide=(kind == "MVAU"))
    uram_on = (mem_mode == "internal_decoupled" and ram_style == "ultra") or (
        mem_mode == "internal_embedded" and wmem > 128)
    uram = _ev("prim.uram", width=width, depth=wmem) if uram_on else 0
    return bram, uram


def _dot_product_layer(kind, *, k, channels_out, pe, simd, wmem, tmem, w_bits, a_bits, a_signed,
                       acc_bits, out_bits, mode, part, impl, res_type, mem_mode, ram_style,
                       ram_style_thresholds):
    _check_mode(mode)
    p = _part(part)
    if channels_out % pe or k % simd:
        raise SiraError(f"{kind}: PE must divide the output channels and SIMD the dot-product length")
    finn_acc = min(32 if acc_bits is None else acc_bits, a2q_acc_bits(k, w_bits, a_bits, a_signed))
    mem_width = pe * simd * w_bits
    if mode == "finn":
        bram, uram = _finn_weight_memory(kind, width=mem_width, wmem=wmem, mem_mode=mem_mode, ram_style=ram_style)
        if impl == "rtl":
            dsp_name = p.dsp_primitive.name
            if kind == "VVAU" and dsp_name != "DSP58":
                raise SiraError(f"FINN's RTL VVAU exists only for DSP58 (Versal) parts, not {p.name}")
            dsp = _ev("finn.rtl.dsp58" if dsp_name == "DSP58" else "finn.rtl.dsp48", P=pe, Q=simd)
            return Cost(kind, "finn", 0, dsp, bram, uram,
                        note="FINN's RTL MVU/VVU has no LUT model; it reports 0 LUT")
        thr_luts = out_bits is not None and (kind == "VVAU" or ram_style_thresholds == "distributed")
        c2_applies = (mem_mode == "internal_decoupled" and ram_style == "distributed") or (
            mem_mode == "internal_embedded" and wmem <= 128)
        lut, terms = _finn_dot_lut(kind, pe=pe, simd=simd, w_bits=w_bits, a_bits=a_bits, acc_bits=finn_acc,
                                   out_bits=out_bits, tmem=tmem, wmem=wmem, res_type=res_type,
                                   thresholds_in_luts=thr_luts, c2_applies=c2_applies)
        dsp_key = "finn.vvau.dsp" if kind == "VVAU" else "finn.mvau.dsp"
        dsp = _ev(dsp_key, P=pe, Q=simd, W=w_bits, A=a_bits) if res_type == "dsp" else 0
        return Cost(kind, "finn", lut, dsp, bram, uram, terms)

    # refined (§6.3): per PE Q multipliers + tree + accumulator, ×P; weight
    # memory by geometry; embedded thresholds; 300 LUT control.
    acc = a2q_acc_bits(k, w_bits, a_bits, a_signed) if acc_bits is None else acc_bits
    breakdown: dict[str, Amount] = {"control": 300}
    mults: tuple[Multiply, ...] = ()
    if impl == "rtl":
        dsp_name = p.dsp_primitive.name
        if dsp_name == "DSP58":
            dsp = _ev("finn.rtl.dsp58", P=pe, Q=simd)
        elif w_bits <= 4 and a_bits <= 4:
            dsp = _ev("finn.rtl.dsp48", P=pe, Q=simd)
        else:
            dsp = UNKNOWN  # the notes give no packing for the 8-bit DSP48 core
        breakdown["adder_tree"] = 0  # summed in the DSP cascade
    else:
        m = multiply(w_bits, a_bits, p, count=pe * simd, binding=res_type, a_signed=a_signed, name="weight x input")
        mults = (m,)
        dsp = m.dsp * m.count
        breakdown["multipliers"] = m.lut * m.count
        breakdown["adder_tree"] = pe * adder_tree(simd, w_bits + a_bits)
    breakdown["accumulator"] = pe * _ev("prim.add", n=acc)
    style = "none" if mem_mode == "external" else ram_style
    mem = Memory("none", 0, 0, 0) if style == "none" else map_memory(mem_width, wmem, p, style)
    breakdown["weight_memory"] = mem.lut
    bram, uram = mem.bram18, mem.uram
    if out_bits is not None:
        thr = _cheaper_thresholding(channels=channels_out, pe=pe, a_bits=acc, out_bits=out_bits,
                                    n_thresholds=2**out_bits - 1, thr_bits=acc, part=p,
                                    ram_style=ram_style_thresholds)
        breakdown["thresholds"] = thr.lut
        bram, uram = bram + thr.bram18, uram + thr.uram
        return replace(_refined(kind, breakdown, dsp, bram, uram, mults),
                       storage={**_stored(weights=mem), **thr.storage}, threshold_unit=thr.threshold_unit)
    return replace(_refined(kind, breakdown, dsp, bram, uram, mults), storage=_stored(weights=mem))


def mvau(*, mw: int, mh: int, pe: int, simd: int, w_bits: int, a_bits: int, a_signed: bool = False,
         acc_bits: int | None = None, out_bits: int | None = None, mode: str = "refined",
         part: Part | str | None = None, impl: str = "hls", res_type: str = "auto",
         mem_mode: str = "internal_decoupled", ram_style: str = "auto",
         ram_style_thresholds: str = "auto") -> Cost:
    """Matrix-vector unit (MatrixVectorActivation), MW inputs × MH outputs.

    ``out_bits`` = B of the embedded activation (None: noActivation);
    ``acc_bits`` = accumulator width (None: FINN's default INT32 capped by the
    A2Q bound in finn mode, the A2Q bound in refined mode).

    finn mode, ``impl="hls"`` — §1.1: LUT = ⌊300 + 1.1·P·(L_mult + L_tree +
    L_acc + L_thr + L_cmp) + c2⌋ (L_mult only unless res_type = dsp;
    thresholds only with ram_style_thresholds = distributed); DSP =
    P·Q·⌈(W+A)/48⌉ only for res_type = dsp; BRAM18 by the §1.1 table of
    P·Q·W × WMEM; URAM ⌈w/72⌉·⌈WMEM/4096⌉ for ram_style ultra (or
    internal_embedded with WMEM > 128). ``impl="rtl"`` — §1.2: LUT 0 (FINN has
    no model), DSP P·⌈Q/3⌉ (DSP58) or ⌈P/4⌉·Q (DSP48E1/E2).

    refined mode — §6.3: P·(Q·mult + tree(Q, W+A) + acc) + weight memory
    (map_memory) + linear thresholds (T = A = acc, N = 2^B−1) + 300 control;
    every multiply bound by :func:`multiply` (``res_type`` forces lut/dsp).
    """
    return _dot_product_layer("MVAU", k=mw, channels_out=mh, pe=pe, simd=simd,
                              wmem=mw * mh // (pe * simd), tmem=mh // pe, w_bits=w_bits, a_bits=a_bits,
                              a_signed=a_signed, acc_bits=acc_bits, out_bits=out_bits, mode=mode, part=part,
                              impl=impl, res_type=res_type, mem_mode=mem_mode, ram_style=ram_style,
                              ram_style_thresholds=ram_style_thresholds)


def vvau(*, channels: int, kernel: tuple[int, int], pe: int, simd: int, w_bits: int, a_bits: int,
         a_signed: bool = False, acc_bits: int | None = None, out_bits: int | None = None,
         mode: str = "refined", part: Part | str | None = None, impl: str = "hls",
         res_type: str = "auto", mem_mode: str = "internal_decoupled", ram_style: str = "auto",
         ram_style_thresholds: str = "auto") -> Cost:
    """Depthwise vector-vector unit (VectorVectorActivation), C channels.

    finn mode — §1.3: the MVAU HLS model with α over k_h·k_w, thresholds
    whenever out_bits is given with L_thr = (2^B−1)·acc·TMEM/64 (no ceiling),
    DSP = P·⌈(W+A)/48⌉ (no Q factor), WMEM = k_h·k_w·C/(P·Q), TMEM = C/P,
    BRAM table with divisors 8/16/32 and also 0 for ram_style auto with
    WMEM ≤ 128; URAM as for MVAU (the notes give no VVAU-specific rule).
    RTL: LUT 0, DSP P·⌈Q/3⌉, DSP58 parts only. ``ram_style_thresholds`` is
    ignored by FINN here. refined mode: as :func:`mvau` (§6.3).
    """
    kk = kernel[0] * kernel[1]
    return _dot_product_layer("VVAU", k=kk, channels_out=channels, pe=pe, simd=simd,
                              wmem=kk * channels // (pe * simd), tmem=channels // pe, w_bits=w_bits,
                              a_bits=a_bits, a_signed=a_signed, acc_bits=acc_bits, out_bits=out_bits,
                              mode=mode, part=part, impl=impl, res_type=res_type, mem_mode=mem_mode,
                              ram_style=ram_style, ram_style_thresholds=ram_style_thresholds)


# --------------------------------------------------------------------------
# Thresholding
# --------------------------------------------------------------------------


def part_fraction(cost: Cost, part: Part) -> float:
    """The share of ``part`` a cost takes, summed over its resource kinds
    (LUT/LUTs of the part + BRAM18/BRAM18s + ...): one number that weighs a
    block RAM against LUTs by how scarce each is on the chosen device."""
    share = 0.0
    for used, available in ((cost.lut, part.lut), (cost.dsp, part.dsp), (cost.bram18, part.bram18), (cost.uram, part.uram)):
        if used:
            share += float(used) / available if available else math.inf
    return share


def _cheaper_thresholding(**params) -> Cost:
    """The refined cost of a threshold unit built the cheaper way: compare
    against every threshold at once ("linear", best for few thresholds) or
    binary search over them ("binary", best for many - 255 thresholds of an
    8-bit output take 8 comparators instead of 255). Cheaper means the
    smaller share of the part (:func:`part_fraction`), so LUTs saved do not
    hide block RAMs spent. The choice is recorded in the cost's note, so the
    generated code can build the same unit."""
    options = [_threshold_refined(style=style, **params) for style in ("linear", "binary")]
    best = min(options, key=lambda c: part_fraction(c, params["part"]))
    style = "linear" if best is options[0] else "binary"
    return replace(best, note=(best.note + "; " if best.note else "") + f"threshold unit: {style}")


def _threshold_refined(*, channels, pe, a_bits, out_bits, n_thresholds, thr_bits, style, part, ram_style):
    """§6.3 thresholding: linear, binary-search or constant (CF = 1) form."""
    cf = channels // pe
    if style == "linear":
        mem = map_memory(pe * n_thresholds * thr_bits, cf, part, ram_style)
        breakdown = {"comparators_popcount": _ev("refined.thr_linear", P=pe, N=n_thresholds, A=a_bits, B=out_bits),
                     "threshold_memory": mem.lut}
        return replace(_refined("Thresholding", breakdown, 0, mem.bram18, mem.uram),
                       storage=_stored(thresholds=mem), threshold_unit="linear")
    if style == "binary":
        mems = [map_memory(thr_bits, cf * 2**st, part, ram_style) for st in range(out_bits)]
        breakdown = {"comparators_mux": _ev("refined.thr_binary", P=pe, A=a_bits, B=out_bits),
                     "threshold_memory": pe * sum(m.lut for m in mems)}
        cost = _refined("Thresholding", breakdown, 0, pe * sum(m.bram18 for m in mems), pe * sum(m.uram for m in mems))
        return replace(cost, storage=_stored(**{f"thresholds_stage{st}": m for st, m in enumerate(mems)}),
                       threshold_unit="binary")
    if style == "constant":
        if cf != 1:
            raise SiraError("constant (unrolled) thresholding needs PE = channels (CF = 1)")
        breakdown = {"constant_comparators": _ev("refined.thr_const", P=pe, N=n_thresholds, A=a_bits, B=out_bits)}
        return replace(_refined("Thresholding", breakdown), threshold_unit="constant")
    raise SiraError(f"unknown thresholding style '{style}'; use linear, binary or constant")


def thresholding(*, channels: int, pe: int, a_bits: int, out_bits: int, thr_bits: int | None = None,
                 n_thresholds: int | None = None, mode: str = "refined", part: Part | str | None = None,
                 impl: str = "hls", ram_style: str | None = None, style: str | None = None) -> Cost:
    """Multi-threshold activation: C channels, A-bit input, B-bit output.

    finn mode, ``impl="hls"`` — §1.4 (also FINN's ChannelwiseOp): LUT = A·P
    + P·A·⌈TMEM/64⌉ (ram_style distributed and TMEM > 1); BRAM18 =
    ⌈A·P/16⌉·⌈TMEM/1024⌉ (block, TMEM > 1); DSP 0. FINN ignores the
    threshold count and width here. ``impl="rtl"`` — §1.4: per PE one memory
    per output bit s, T × CF·2^s, each mapped to FINN's least-waste primitive
    (ties broken in FINN's table order); LUT = the LUTRAM part only
    (comparators are not modelled).

    refined mode — §6.3 with N thresholds (default 2^B−1) of T bits (default
    A): ``style`` "linear" (default for hls) P·(N·cmp(A) + popcount(N) + B) +
    storage(P·N·T × CF); "binary" (default for rtl) P·(B·cmp(A) + B·mux) +
    P·Σ_s storage(T × CF·2^s); "constant" (CF = 1) the truth-table bound
    P·⌈min(N·A/2.5, 1.3·B·2^max(0, A−6))⌉. cmp(n) = ⌈2n/3⌉ (§6.2), one mux
    LUT per binary-search stage.

    ``ram_style`` defaults to FINN's "distributed" in finn mode and to "auto"
    (the §6.2 shallow-memory rule) in refined mode.
    """
    _check_mode(mode)
    if channels % pe:
        raise SiraError("Thresholding: PE must divide the channel count")
    tmem = channels // pe
    thr_bits = a_bits if thr_bits is None else thr_bits
    if mode == "finn":
        ram_style = ram_style or "distributed"
        if impl == "rtl":
            kinds = {"LUTRAM": 0, "BRAM18": 0, "URAM": 0}
            for st in range(out_bits):
                kind, count = _finn_least_waste(thr_bits, tmem * 2**st)
                kinds[kind] += pe * count
            return Cost("Thresholding", "finn", kinds["LUTRAM"], 0, kinds["BRAM18"], kinds["URAM"],
                        {"threshold_lutram": kinds["LUTRAM"]},
                        note="FINN models only the RTL threshold memories, not the comparators")
        lutram = _ev("finn.thr_hls.lutram", P=pe, A=a_bits, TMEM=tmem) if ram_style == "distributed" and tmem > 1 else 0
        comparators = _ev("finn.thr_hls.lut", A=a_bits, P=pe)
        bram = _ev("finn.thr_hls.bram", A=a_bits, P=pe, TMEM=tmem) if ram_style == "block" and tmem > 1 else 0
        return Cost("Thresholding", "finn", comparators + lutram, 0, bram, 0,
                    {"comparators": comparators, "threshold_lutram": lutram},
                    note="FINN's HLS model ignores the threshold count and width")
    n = 2**out_bits - 1 if n_thresholds is None else n_thresholds
    style = style or ("binary" if impl == "rtl" else "linear")
    return _threshold_refined(channels=channels, pe=pe, a_bits=a_bits, out_bits=out_bits, n_thresholds=n,
                              thr_bits=thr_bits, style=style, part=_part(part), ram_style=ram_style or "auto")


# --------------------------------------------------------------------------
# Elementwise
# --------------------------------------------------------------------------

_ADD = {"Add", "Sub"}
_MINMAX = {"Max", "Min", "Maximum", "Minimum"}
_COMPARE = {"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"}
_BITWISE = {"And", "Or", "Xor", "BitwiseAnd", "BitwiseOr", "BitwiseXor"}


def elementwise_binary(op: str, *, lhs_bits: int, rhs_bits: int, out_bits: int, pe: int = 1,
                       const_elements: int = 0, lhs_signed: bool = True, rhs_signed: bool = True,
                       mode: str = "refined", part: Part | str | None = None,
                       res_type: str = "auto", ram_style: str = "auto") -> Cost:
    """ElementwiseBinary ``op`` on two operands, P lanes.

    finn mode — §1.5: FINN (custom/SIRA) has no estimate: 0.

    refined mode — §6.3, per lane ×P: Add/Sub out_bits LUT; Mul a fabric or
    DSP multiply (:func:`multiply`); Min/Max cmp + out_bits mux; comparisons
    cmp; bitwise ⌈bits/3⌉. cmp is var-var ⌈2n/3⌉, or var-const ⌈n/2⌉ for a
    scalar constant operand (``const_elements`` = 1). A constant operand with
    more elements is stored (P·rhs_bits × const_elements/P, map_memory).
    Ops without a formula (Div, float ops) cost UNKNOWN LUTs.
    """
    _check_mode(mode)
    if mode == "finn":
        return _finn_zero("ElementwiseBinary")
    p = _part(part)
    bits = max(lhs_bits, rhs_bits)
    cmp_key = "prim.cmp_const" if const_elements == 1 else "prim.cmp_var"
    mults: tuple[Multiply, ...] = ()
    dsp = 0
    if op in _ADD:
        breakdown: dict[str, Amount] = {"adders": pe * _ev("prim.add", n=out_bits)}
    elif op == "Mul":
        m = multiply(lhs_bits, rhs_bits, p, count=pe, binding=res_type, w_signed=lhs_signed,
                     a_signed=rhs_signed, name=f"{op} lhs x rhs")
        mults, dsp = (m,), m.dsp * m.count
        breakdown = {"multipliers": m.lut * m.count}
    elif op in _MINMAX:
        breakdown = {"comparators": pe * _ev(cmp_key, n=bits), "muxes": pe * out_bits}
    elif op in _COMPARE:
        breakdown = {"comparators": pe * _ev(cmp_key, n=bits)}
    elif op in _BITWISE:
        breakdown = {"logic": pe * _ev("prim.bitwise", n=bits)}
    else:
        breakdown = {"arithmetic": UNKNOWN}
    bram = uram = 0
    if const_elements > 1:
        mem = map_memory(pe * rhs_bits, math.ceil(const_elements / pe), p, ram_style)
        breakdown["const_memory"] = mem.lut
        bram, uram = mem.bram18, mem.uram
        return replace(_refined("ElementwiseBinary", breakdown, dsp, bram, uram, mults), storage=_stored(param=mem))
    return _refined("ElementwiseBinary", breakdown, dsp, bram, uram, mults)


def add_streams(*, in_bits: int, out_bits: int, pe: int = 1, mode: str = "refined",
                part: Part | str | None = None) -> Cost:
    """AddStreams (two streams added lane-wise). finn mode: 0 (no FINN
    estimate, §1.6). refined: out_bits LUT per lane (§6.3 ElementwiseBinary Add)."""
    _check_mode(mode)
    if mode == "finn":
        return _finn_zero("AddStreams")
    cost = elementwise_binary("Add", lhs_bits=in_bits, rhs_bits=in_bits, out_bits=out_bits, pe=pe, part=part)
    return _refined("AddStreams", dict(cost.breakdown))


def duplicate_streams(*, mode: str = "refined") -> Cost:
    """DuplicateStreams: fan-out of one stream to several. finn mode: 0 (no
    FINN estimate, §1.6). refined: free wiring (0, marked ``free``)."""
    _check_mode(mode)
    if mode == "finn":
        return _finn_zero("DuplicateStreams")
    return Cost("DuplicateStreams", "refined", 0, 0, 0, 0, {"wiring": 0},
                note="stream fan-out is wiring", free=True)


# --------------------------------------------------------------------------
# Pooling and padding
# --------------------------------------------------------------------------

#: Control LUTs of StreamingMaxPool: §6.3 gives ~100–300; the midpoint, uncalibrated.
MAXPOOL_CONTROL_LUT = 200


def streaming_maxpool(*, kernel: int, ifm_dim: int, channels: int, pe: int, a_bits: int, dims: int = 2,
                      mode: str = "refined", part: Part | str | None = None) -> Cost:
    """StreamingMaxPool, k×k window (k per dimension, ``dims`` dimensions).

    finn mode: 0 (no FINN estimate, §1.6). refined — §6.3: per PE, per
    window dimension (k−1)·(cmp(A) + A-bit mux); line buffer of
    (k−1)·W_in·C/PE words of A·PE bits (map_memory); ~200 LUT control.
    """
    _check_mode(mode)
    if mode == "finn":
        return _finn_zero("StreamingMaxPool")
    per_pe = dims * (kernel - 1) * (_ev("prim.cmp_var", n=a_bits) + a_bits)
    mem = map_memory(a_bits * pe, (kernel - 1) * ifm_dim * channels // pe, part)
    breakdown = {"control": MAXPOOL_CONTROL_LUT, "comparators_muxes": pe * per_pe, "line_buffer": mem.lut}
    return replace(_refined("StreamingMaxPool", breakdown, 0, mem.bram18, mem.uram), storage=_stored(line_buffer=mem))


def global_pool(*, channels: int, pe: int, acc_bits: int, function: str = "sum", mode: str = "refined",
                part: Part | str | None = None) -> Cost:
    """Global pooling on a streamed image: per PE one running value updated
    as the pixels arrive (an ``acc_bits`` adder for "sum", a comparator and
    mux for "max"), the C/PE running values of each lane in a memory of
    PE·acc_bits × C/PE (map_memory). finn mode: 0 (no FINN estimate, §1.6)."""
    _check_mode(mode)
    if mode == "finn":
        return _finn_zero("Pool")
    if function == "sum":
        per_pe = _ev("prim.add", n=acc_bits)
    elif function == "max":
        per_pe = _ev("prim.cmp_var", n=acc_bits) + acc_bits
    else:
        raise SiraError(f"unknown pool function '{function}'; use max or sum")
    mem = map_memory(pe * acc_bits, channels // pe, part)
    breakdown = {"running_values": pe * per_pe, "value_memory": mem.lut}
    return replace(_refined("Pool", breakdown, 0, mem.bram18, mem.uram), storage=_stored(running_values=mem))


def pool(*, function: str, window: int, pe: int, a_bits: int, mode: str = "refined") -> Cost:
    """Pool over a window of ``window`` elements per channel (after a sliding
    window generator). finn mode: 0 (no FINN estimate, §1.6). refined, per
    PE from the §6.2 primitives: "max" (window−1)·(cmp(A) + A mux); "sum"
    adder tree(window, A); "avg" the sum plus a division by the window size,
    free (a shift) for a power of two, UNKNOWN otherwise (no formula in the notes).
    """
    _check_mode(mode)
    if mode == "finn":
        return _finn_zero("Pool")
    if window == 1:
        return Cost("Pool", mode, 0, 0, 0, 0, {"wiring": 0}, note="a one-element window passes its input through", free=True)
    if function == "max":
        breakdown: dict[str, Amount] = {"comparators_muxes": pe * (window - 1) * (_ev("prim.cmp_var", n=a_bits) + a_bits)}
    elif function in ("sum", "avg"):
        breakdown = {"adder_tree": pe * adder_tree(window, a_bits)}
        if function == "avg":
            breakdown["divide"] = 0 if window & (window - 1) == 0 else UNKNOWN
    else:
        raise SiraError(f"unknown pool function '{function}'; use max, sum or avg")
    return _refined("Pool", breakdown)


def fmpadding(*, simd: int, a_bits: int, mode: str = "refined") -> Cost:
    """FMPadding. finn mode: 0 (no FINN estimate, HLS or RTL, §1.6).
    refined — §6.3: counters plus a zero-mux on the SIMD·A-bit word,
    ⌈SIMD·A/2⌉ + 50 LUT (uncalibrated)."""
    _check_mode(mode)
    if mode == "finn":
        return _finn_zero("FMPadding")
    return _refined("FMPadding", {"mux_control": _ev("refined.fmpadding", Q=simd, A=a_bits)})


# --------------------------------------------------------------------------
# Structural layers: sliding window, FIFO, DWC, Lookup (§1.6; refined reuses them)
# --------------------------------------------------------------------------


def _depth_to_ram_width(depth: int) -> int:
    """FINN's sliding-window RAM width for a buffer depth (§1.6)."""
    for limit, width in ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2)):
        if depth <= limit:
            return width
    return 1


def _structural(kind, mode, lut, dsp, bram, uram, breakdown, note="") -> Cost:
    if mode == "finn":
        return Cost(kind, "finn", lut, dsp, bram, uram, breakdown, note=note)
    return _refined(kind, breakdown, dsp, bram, uram, note=note)


def _resolve_style(ram_style: str, width: int, depth: int, mode: str) -> str:
    """In refined mode, ``auto`` follows the §6.2 shallow-memory rule."""
    if mode == "refined" and ram_style == "auto":
        return map_memory(width, depth, style="auto").style
    return ram_style


def swg_hls(*, ifm_dim: int, kernel: int, stride: int, channels: int, simd: int, a_bits: int,
            ram_style: str = "auto", mode: str = "refined") -> Cost:
    """ConvolutionInputGenerator, HLS, 2-D square (§1.6).

    Buffer depth IFMDim·C/SIMD picks the RAM width (≤512→36 … else 1);
    BRAM18 (block/auto) = (K + stride)·⌈SIMD·A/ram_width⌉ (FINN's depth
    factor ⌈depth/depth⌉ is 1); LUT = 300 (+ (K+stride)·SIMD·A·⌈IFMDim·C/SIMD/64⌉
    for distributed). URAM (ultra) is UNKNOWN: the notes give no formula.
    refined: the same formulas, ``auto`` resolved by the §6.2 shallow rule.
    """
    _check_mode(mode)
    depth = ifm_dim * channels // simd
    style = _resolve_style(ram_style, simd * a_bits, depth, mode)
    values = dict(k=kernel, stride=stride, Q=simd, A=a_bits, IFMDim=ifm_dim, C=channels)
    if style == "ultra":
        return _structural("ConvolutionInputGenerator", mode, 300, 0, 0, UNKNOWN, {"control": 300},
                           note="no URAM formula for the HLS sliding window in the notes")
    lut = _ev("finn.swg_hls.lut", **values) if style == "distributed" else 300
    bram = 0 if style == "distributed" else _ev("finn.swg_hls.bram", k=kernel, stride=stride, b=simd * a_bits,
                                                 n=_depth_to_ram_width(depth))
    cost = _structural("ConvolutionInputGenerator", mode, lut, 0, bram, 0, {"control": 300, "buffer_lutram": lut - 300})
    return replace(cost, storage={"line_buffer": style})


def swg_rtl(*, buffer_depth: int, simd: int, a_bits: int, ram_style: str = "auto", mode: str = "refined") -> Cost:
    """ConvolutionInputGenerator, RTL (§1.6), given its buffer depth (default
    style: ((k_h−1)·d_h·W_in + (k_w−1)·d_w + 1)·C/SIMD plus FINN's stride
    slack, which the caller computes). Width SIMD·A. BRAM18 (block/auto) =
    ⌈width/ram_width(depth)⌉ up to depth 16384 (FINN's cascading beyond that
    is UNKNOWN here); LUT = 300 + SIMD·A·⌈depth/38⌉ (distributed) else 300;
    URAM (ultra) ⌈depth/4096⌉·⌈width/72⌉. refined: same, ``auto`` by §6.2.
    """
    _check_mode(mode)
    width = simd * a_bits
    style = _resolve_style(ram_style, width, buffer_depth, mode)
    bram: Amount = 0
    uram = 0
    lut = 300
    if style == "distributed":
        lut = _ev("finn.swg_rtl.lut", Q=simd, A=a_bits, depth=buffer_depth)
    elif style == "ultra":
        uram = _ev("prim.uram", width=width, depth=buffer_depth)
    else:
        bram = math.ceil(width / _depth_to_ram_width(buffer_depth)) if buffer_depth <= 16384 else UNKNOWN
    return _structural("ConvolutionInputGenerator", mode, lut, 0, bram, uram,
                       {"control": 300, "buffer_lutram": lut - 300})


def fifo(*, depth: int, width: int, impl: str = "rtl", ram_style: str = "auto", mode: str = "refined") -> Cost:
    """StreamingFIFO (§1.6): LUT = 2·⌈log2 depth⌉ + ⌈depth/32⌉·⌈W/2⌉ (the
    second term for the RTL/SRL FIFO or a distributed Vivado FIFO); BRAM18
    by the §1.1 table for a block Vivado FIFO; URAM ⌈depth/4096⌉·⌈W/72⌉ for
    an ultra Vivado FIFO. refined: the same (structural, §6.3)."""
    _check_mode(mode)
    address = _ev("finn.fifo.address", depth=depth)
    ram_luts = _ev("finn.fifo.storage", depth=depth, width=width) if (
        impl == "rtl" or ram_style == "distributed") else 0
    bram = bram18_finn(width, depth) if impl == "vivado" and ram_style == "block" else 0
    uram = _ev("prim.uram", width=width, depth=depth) if impl == "vivado" and ram_style == "ultra" else 0
    return _structural("StreamingFIFO", mode, address + ram_luts, 0, bram, uram,
                       {"address": address, "storage": ram_luts})


def dwc(*, in_width: int, out_width: int, mode: str = "refined") -> Cost:
    """StreamingDataWidthConverter (§1.6): via the intermediate width
    lcm(in, out); each step that changes width costs a ⌈log2 ratio⌉-bit
    counter plus the width it produces (control-set cost). Equal widths are
    a pass-through (free in refined mode). refined: the same (§6.3)."""
    _check_mode(mode)
    mid = math.lcm(in_width, out_width)
    counters = control = 0
    for a, b in ((in_width, mid), (mid, out_width)):
        if a != b:
            counters += math.ceil(math.log2(max(a, b) / min(a, b)))
            control += b
    breakdown = {"counters": counters, "control_sets": control}
    if mode == "refined" and in_width == out_width:
        return Cost("StreamingDataWidthConverter", "refined", 0, 0, 0, 0, breakdown,
                    note="equal widths: pass-through wiring", free=True)
    return _structural("StreamingDataWidthConverter", mode, counters + control, 0, 0, 0, breakdown)


def lookup(*, num_embeddings: int, out_width: int, mode: str = "refined",
           part: Part | str | None = None, ram_style: str = "auto") -> Cost:
    """Lookup (embedding table), internal_embedded. finn mode — §1.6: BRAM18 =
    ⌈out_width/16⌉·⌈NumEmbeddings/1024⌉, no LUT/DSP model (0). refined: the
    table out_width × NumEmbeddings through map_memory (§6.2)."""
    _check_mode(mode)
    if mode == "finn":
        bram = _ev("finn.lookup.bram", width=out_width, depth=num_embeddings)
        return Cost("Lookup", "finn", 0, 0, bram, 0, note="FINN models only the Lookup table's BRAM")
    mem = map_memory(out_width, num_embeddings, part, ram_style)
    return _refined("Lookup", {"table": mem.lut}, 0, mem.bram18, mem.uram)
