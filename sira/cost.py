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

from . import memory as M
from .devices import Part, get_part
from .errors import SiraError
from .formulas import FORMULAS, evaluate as _ev, evaluate_rational as _evq, formula
from .memory import Memory, bram18_finn, map_memory
from .multipliers import Multiply, adder_tree, multiply
from .numerics import a2q_bound_width

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
# Results
# --------------------------------------------------------------------------


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


def _stored(**memories: Memory) -> dict[str, str]:
    """The storage map of a cost: memory name -> primitive style (memories
    that turned out empty are left out)."""
    return {name: m.style for name, m in memories.items() if m.style != "none"}


def a2q_acc_bits(k: int, w_bits: int, a_bits: int, a_signed: bool) -> int:
    """The A2Q data-type accumulator bound FINN falls back to (§1.1, §5.2),
    :func:`sira.numerics.a2q_bound_width` of a K-term dot product."""
    return a2q_bound_width(k, a_bits, w_bits, a_signed)


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
    uram = M.uram_count(width, wmem) if uram_on else 0
    return bram, uram


def _dot_product_layer(kind, *, k, channels_out, pe, simd, weights: M.MemoryLayout, tmem, w_bits, a_bits,
                       a_signed, acc_bits, out_bits, mode, part, impl, res_type, mem_mode, ram_style,
                       ram_style_thresholds):
    """FINN's MVAU/VVAU model (one PE·SIMD-wide weight memory of ``WMEM``
    words, as FINN's formulas assume) or the refined one, which prices
    ``weights`` as the generated code lays them out (one memory per PE)."""
    _check_mode(mode)
    p = _part(part)
    if channels_out % pe or k % simd:
        raise SiraError(f"{kind}: PE must divide the output channels and SIMD the dot-product length")
    finn_acc = min(32 if acc_bits is None else acc_bits, a2q_acc_bits(k, w_bits, a_bits, a_signed))
    mem_width, wmem = pe * simd * w_bits, k * channels_out // (pe * simd)
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
    mem = Memory("none", 0, 0, 0) if mem_mode == "external" else M.price(weights, p, ram_style)
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
    as the generated code stores it (one SIMD·W × WMEM memory per PE,
    :func:`sira.memory.weight_memory`, mapped by map_memory) + linear thresholds (T = A = acc, N = 2^B−1) + 300 control;
    every multiply bound by :func:`multiply` (``res_type`` forces lut/dsp).
    """
    weights = M.weight_memory(pe=pe, word_elements=simd, depth=mw * mh // (pe * simd), w_bits=w_bits)
    return _dot_product_layer("MVAU", k=mw, channels_out=mh, pe=pe, simd=simd,
                              weights=weights, tmem=mh // pe, w_bits=w_bits, a_bits=a_bits,
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
    ignored by FINN here. refined mode: as :func:`mvau` (§6.3), the weights
    one memory per PE of a whole window (k_h·k_w·W bits) per word, C/P deep.
    """
    kk = kernel[0] * kernel[1]
    weights = M.weight_memory(pe=pe, word_elements=kk, depth=channels // pe, w_bits=w_bits)
    return _dot_product_layer("VVAU", k=kk, channels_out=channels, pe=pe, simd=simd,
                              weights=weights, tmem=channels // pe, w_bits=w_bits,
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
    memories = M.threshold_memories(style, pe=pe, cf=cf, steps=n_thresholds, bits=thr_bits, style=ram_style)
    if style == "linear":
        mem = M.price(memories[0], part)
        breakdown = {"comparators_popcount": _ev("refined.thr_linear", P=pe, N=n_thresholds, A=a_bits, B=out_bits),
                     "threshold_memory": mem.lut}
        return replace(_refined("Thresholding", breakdown, 0, mem.bram18, mem.uram),
                       storage=_stored(thresholds=mem), threshold_unit="linear")
    if style == "binary":
        mems = {layout.name: M.price(layout, part) for layout in memories}
        breakdown = {"comparators_mux": _ev("refined.thr_binary", P=pe, A=a_bits, B=out_bits),
                     "threshold_memory": sum(m.lut for m in mems.values())}
        cost = _refined("Thresholding", breakdown, 0, sum(m.bram18 for m in mems.values()), sum(m.uram for m in mems.values()))
        return replace(cost, storage=_stored(**mems), threshold_unit="binary")
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
                kind, count = M.finn_least_waste(thr_bits, tmem * 2**st)
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
    more elements is stored, one memory per lane (rhs_bits × const_elements/P,
    :func:`sira.memory.constant_operand`).
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
        layout = M.constant_operand(lanes=pe, rows=math.ceil(const_elements / pe), bits=rhs_bits, style=ram_style)
        mem = M.price(layout, p)
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


def _pool_buffer(kernel: int, stride: int | None, ifm_dim: int, channels: int, pe: int, a_bits: int,
                 ram_style: str) -> M.MemoryLayout:
    """The line buffer of a square pooling window as the generated code
    builds it: a ring of k + stride rows of W_in·C/PE words of PE·A bits."""
    return M.line_buffer(rows=kernel + (kernel if stride is None else stride), row_words=ifm_dim * channels // pe,
                         word_bits=pe * a_bits, style=ram_style)


def streaming_maxpool(*, kernel: int, ifm_dim: int, channels: int, pe: int, a_bits: int, dims: int = 2,
                      stride: int | None = None, mode: str = "refined", part: Part | str | None = None,
                      ram_style: str = "auto", buffer: M.MemoryLayout | None = None) -> Cost:
    """StreamingMaxPool, k×k window (k per dimension, ``dims`` dimensions).

    finn mode: 0 (no FINN estimate, §1.6). refined — §6.3: per PE, per
    window dimension (k−1)·(cmp(A) + A-bit mux); the line buffer as built
    (``buffer``, by default a ring of k + stride rows of W_in·C/PE words of
    A·PE bits, stride defaulting to k; map_memory); ~200 LUT control.
    """
    _check_mode(mode)
    if mode == "finn":
        return _finn_zero("StreamingMaxPool")
    per_pe = dims * (kernel - 1) * (_ev("prim.cmp_var", n=a_bits) + a_bits)
    buffer = buffer or _pool_buffer(kernel, stride, ifm_dim, channels, pe, a_bits, ram_style)
    mem = M.price(buffer, part)
    breakdown = {"control": MAXPOOL_CONTROL_LUT, "comparators_muxes": pe * per_pe, "line_buffer": mem.lut}
    return replace(_refined("StreamingMaxPool", breakdown, 0, mem.bram18, mem.uram), storage=_stored(line_buffer=mem))


def global_pool(*, channels: int, pe: int, acc_bits: int, function: str = "sum", mode: str = "refined",
                part: Part | str | None = None, ram_style: str = "auto") -> Cost:
    """Global pooling on a streamed image: per PE one running value updated
    as the pixels arrive (an ``acc_bits`` adder for "sum", a comparator and
    mux for "max"), the C/PE running values of each lane in a memory of its
    own, acc_bits × C/PE (:func:`sira.memory.running_values`, map_memory).
    finn mode: 0 (no FINN estimate, §1.6)."""
    _check_mode(mode)
    if mode == "finn":
        return _finn_zero("Pool")
    if function == "sum":
        per_pe = _ev("prim.add", n=acc_bits)
    elif function == "max":
        per_pe = _ev("prim.cmp_var", n=acc_bits) + acc_bits
    else:
        raise SiraError(f"unknown pool function '{function}'; use max or sum")
    mem = M.price(M.running_values(pe=pe, cf=channels // pe, bits=acc_bits, style=ram_style), part)
    breakdown = {"running_values": pe * per_pe, "value_memory": mem.lut}
    return replace(_refined("Pool", breakdown, 0, mem.bram18, mem.uram), storage=_stored(running_values=mem))


def pool(*, function: str, window: int, pe: int, a_bits: int, mode: str = "refined",
         part: Part | str | None = None, buffer: M.MemoryLayout | None = None) -> Cost:
    """Pool over a window of ``window`` elements per channel. finn mode: 0
    (no FINN estimate, §1.6). refined, per PE from the §6.2 primitives:
    "max" (window−1)·(cmp(A) + A mux); "sum" adder tree(window, A); "avg"
    the sum plus a division by the window size, free (a shift) for a power
    of two, UNKNOWN otherwise (no formula in the notes); plus ``buffer``,
    the line buffer of a pool that reads the image itself (none after a
    sliding window generator).
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
    if buffer is None:
        return _refined("Pool", breakdown)
    mem = M.price(buffer, part)
    breakdown["line_buffer"] = mem.lut
    return replace(_refined("Pool", breakdown, 0, mem.bram18, mem.uram), storage=_stored(line_buffer=mem))


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
            ram_style: str = "auto", mode: str = "refined", part: Part | str | None = None,
            buffer: M.MemoryLayout | None = None) -> Cost:
    """ConvolutionInputGenerator, HLS, 2-D square (§1.6).

    finn mode: buffer depth IFMDim·C/SIMD picks the RAM width (≤512→36 …
    else 1); BRAM18 (block/auto) = (K + stride)·⌈SIMD·A/ram_width⌉ (FINN's
    depth factor ⌈depth/depth⌉ is 1); LUT = 300 (+ (K+stride)·SIMD·A·⌈IFMDim·C/SIMD/64⌉
    for distributed). URAM (ultra) is UNKNOWN: the notes give no formula.

    refined: 300 LUT control plus the line buffer as the generated code
    builds it (``buffer``; by default one memory, a ring of K + stride rows
    of IFMDim·C/SIMD words of SIMD·A bits), mapped by map_memory.
    """
    _check_mode(mode)
    depth = ifm_dim * channels // simd
    if mode == "refined":
        buffer = buffer or M.line_buffer(rows=kernel + stride, row_words=depth, word_bits=simd * a_bits, style=ram_style)
        mem = M.price(buffer, part)
        cost = _refined("ConvolutionInputGenerator", {"control": 300, "line_buffer": mem.lut}, 0, mem.bram18, mem.uram)
        return replace(cost, storage=_stored(line_buffer=mem))
    values = dict(k=kernel, stride=stride, Q=simd, A=a_bits, IFMDim=ifm_dim, C=channels)
    if ram_style == "ultra":
        return Cost("ConvolutionInputGenerator", "finn", 300, 0, 0, UNKNOWN, {"control": 300},
                    note="no URAM formula for the HLS sliding window in the notes")
    lut = _ev("finn.swg_hls.lut", **values) if ram_style == "distributed" else 300
    bram = 0 if ram_style == "distributed" else _ev("finn.swg_hls.bram", k=kernel, stride=stride, b=simd * a_bits,
                                                     n=_depth_to_ram_width(depth))
    return Cost("ConvolutionInputGenerator", "finn", lut, 0, bram, 0, {"control": 300, "buffer_lutram": lut - 300})


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
        uram = M.uram_count(width, buffer_depth)
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
    uram = M.uram_count(width, depth) if impl == "vivado" and ram_style == "ultra" else 0
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
