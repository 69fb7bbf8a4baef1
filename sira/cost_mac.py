"""Cost of the dot-product layers (MVAU, VVAU) and of thresholding, FINN's
published formulas (``mode="finn"``) and the refined model (section numbers
refer to docs/research/fpga_cost_and_hls.md; see :mod:`sira.cost`)."""

from __future__ import annotations

from dataclasses import replace

import sympy as sp

from . import memory as M
from .cost_result import (UNKNOWN, Amount, Cost, check_mode, part_fraction, refined_cost, resolve_part,
                          stored)
from .devices import Part
from .errors import SiraError
from .formulas import evaluate as _ev, evaluate_rational as _evq
from .memory import Memory, bram18_finn
from .multipliers import Multiply, adder_tree, cheaper_multiply, multiply
from .numerics import a2q_bound_width


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
                       ram_style_thresholds, tree=None):
    """FINN's MVAU/VVAU model (one PE·SIMD-wide weight memory of ``WMEM``
    words, as FINN's formulas assume) or the refined one, which prices
    ``weights`` as the generated code lays them out (one memory per PE) and,
    given ``tree`` = (term bits, partial-sum bits) proven by
    :mod:`sira.accumulation`, the adder tree from those widths."""
    check_mode(mode)
    p = resolve_part(part)
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
        term_bits, cap = (w_bits + a_bits, None) if tree is None else tree
        breakdown["adder_tree"] = pe * adder_tree(simd, term_bits, cap)
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
        return replace(refined_cost(kind, breakdown, dsp, bram, uram, mults),
                       storage={**stored(weights=mem), **thr.storage}, threshold_unit=thr.threshold_unit)
    return replace(refined_cost(kind, breakdown, dsp, bram, uram, mults), storage=stored(weights=mem))


def mvau(*, mw: int, mh: int, pe: int, simd: int, w_bits: int, a_bits: int, a_signed: bool = False,
         acc_bits: int | None = None, out_bits: int | None = None, mode: str = "refined",
         part: Part | str | None = None, impl: str = "hls", res_type: str = "auto",
         mem_mode: str = "internal_decoupled", ram_style: str = "auto",
         ram_style_thresholds: str = "auto", tree: tuple[int, int] | None = None) -> Cost:
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
    ``tree`` = (term bits, partial-sum bits) proven for the adder tree
    (:mod:`sira.accumulation`): its levels are ``min(term bits + level,
    partial bits)`` wide instead of ``W + A + level``; FINN mode ignores it.
    """
    weights = M.weight_memory(pe=pe, word_elements=simd, depth=mw * mh // (pe * simd), w_bits=w_bits)
    return _dot_product_layer("MVAU", k=mw, channels_out=mh, pe=pe, simd=simd,
                              weights=weights, tmem=mh // pe, w_bits=w_bits, a_bits=a_bits,
                              a_signed=a_signed, acc_bits=acc_bits, out_bits=out_bits, mode=mode, part=part,
                              impl=impl, res_type=res_type, mem_mode=mem_mode, ram_style=ram_style,
                              ram_style_thresholds=ram_style_thresholds, tree=tree)


def vvau(*, channels: int, kernel: tuple[int, int], pe: int, simd: int, w_bits: int, a_bits: int,
         a_signed: bool = False, acc_bits: int | None = None, out_bits: int | None = None,
         mode: str = "refined", part: Part | str | None = None, impl: str = "hls",
         res_type: str = "auto", mem_mode: str = "internal_decoupled", ram_style: str = "auto",
         ram_style_thresholds: str = "auto", tree: tuple[int, int] | None = None) -> Cost:
    """Depthwise vector-vector unit (VectorVectorActivation), C channels.

    finn mode — §1.3: the MVAU HLS model with α over k_h·k_w, thresholds
    whenever out_bits is given with L_thr = (2^B−1)·acc·TMEM/64 (no ceiling),
    DSP = P·⌈(W+A)/48⌉ (no Q factor), WMEM = k_h·k_w·C/(P·Q), TMEM = C/P,
    BRAM table with divisors 8/16/32 and also 0 for ram_style auto with
    WMEM ≤ 128; URAM as for MVAU (the notes give no VVAU-specific rule).
    RTL: LUT 0, DSP P·⌈Q/3⌉, DSP58 parts only. ``ram_style_thresholds`` is
    ignored by FINN here. refined mode: as :func:`mvau` (§6.3), the weights
    one memory per PE of a whole window (k_h·k_w·W bits) per word, C/P deep;
    ``tree`` as for :func:`mvau`.
    """
    kk = kernel[0] * kernel[1]
    weights = M.weight_memory(pe=pe, word_elements=kk, depth=channels // pe, w_bits=w_bits)
    return _dot_product_layer("VVAU", k=kk, channels_out=channels, pe=pe, simd=simd,
                              weights=weights, tmem=channels // pe, w_bits=w_bits,
                              a_bits=a_bits, a_signed=a_signed, acc_bits=acc_bits, out_bits=out_bits,
                              mode=mode, part=part, impl=impl, res_type=res_type, mem_mode=mem_mode,
                              ram_style=ram_style, ram_style_thresholds=ram_style_thresholds, tree=tree)


# --------------------------------------------------------------------------
# Thresholding
# --------------------------------------------------------------------------


def _cheaper_thresholding(styles: tuple[str, ...] = ("linear", "binary"), **params) -> Cost:
    """The refined cost of a threshold unit built the cheapest way: compare
    against every threshold at once ("linear", best for few thresholds),
    binary search over them ("binary", best for many - 255 thresholds of an
    8-bit output take 8 comparators instead of 255) or, for one row shared
    by every channel, comparators hard-wired to its constants ("constant",
    best for a few thresholds of a narrow input). Cheapest means the
    smallest share of the part (:func:`part_fraction`), so LUTs saved do not
    hide block RAMs spent. The choice is recorded in the cost's
    ``threshold_unit`` and note, so the generated code builds the same unit."""
    options = [_threshold_refined(style=style, **params) for style in styles]
    best = min(options, key=lambda c: part_fraction(c, params["part"]))
    return replace(best, note=(best.note + "; " if best.note else "") + f"threshold unit: {best.threshold_unit}")


def _threshold_refined(*, channels, pe, a_bits, out_bits, n_thresholds, thr_bits, style, part, ram_style):
    """§6.3 thresholding: linear, binary-search or constant (CF = 1) form."""
    cf = channels // pe
    memories = M.threshold_memories(style, pe=pe, cf=cf, steps=n_thresholds, bits=thr_bits, style=ram_style)
    if style == "linear":
        mem = M.price(memories[0], part)
        breakdown = {"comparators_popcount": _ev("refined.thr_linear", P=pe, N=n_thresholds, A=a_bits, B=out_bits),
                     "threshold_memory": mem.lut}
        return replace(refined_cost("Thresholding", breakdown, 0, mem.bram18, mem.uram),
                       storage=stored(thresholds=mem), threshold_unit="linear")
    if style == "binary":
        mems = {layout.name: M.price(layout, part) for layout in memories}
        breakdown = {"comparators_mux": _ev("refined.thr_binary", P=pe, A=a_bits, B=out_bits),
                     "threshold_memory": sum(m.lut for m in mems.values())}
        cost = refined_cost("Thresholding", breakdown, 0, sum(m.bram18 for m in mems.values()), sum(m.uram for m in mems.values()))
        return replace(cost, storage=stored(**mems), threshold_unit="binary")
    if style == "constant":
        if cf != 1:
            raise SiraError("constant (unrolled) thresholding needs PE = channels (CF = 1)")
        breakdown = {"constant_comparators": _ev("refined.thr_const", P=pe, N=n_thresholds, A=a_bits, B=out_bits)}
        return replace(refined_cost("Thresholding", breakdown), threshold_unit="constant")
    raise SiraError(f"unknown thresholding style '{style}'; use linear, binary or constant")


def thresholding(*, channels: int, pe: int, a_bits: int, out_bits: int, thr_bits: int | None = None,
                 n_thresholds: int | None = None, mode: str = "refined", part: Part | str | None = None,
                 impl: str = "hls", ram_style: str | None = None, style: str | None = None,
                 shared: bool = False) -> Cost:
    """Multi-threshold activation: C channels, A-bit input, B-bit output.

    finn mode, ``impl="hls"`` — §1.4 (also FINN's ChannelwiseOp): LUT = A·P
    + P·A·⌈TMEM/64⌉ (ram_style distributed and TMEM > 1); BRAM18 =
    ⌈A·P/16⌉·⌈TMEM/1024⌉ (block, TMEM > 1); DSP 0. FINN ignores the
    threshold count and width here. ``impl="rtl"`` — §1.4: per PE one memory
    per output bit s, T × CF·2^s, each mapped to FINN's least-waste primitive
    (ties broken in FINN's table order); LUT = the LUTRAM part only
    (comparators are not modelled).

    refined mode — §6.3 with N thresholds (default 2^B−1) of T bits (default
    A): ``style`` "linear" P·(N·cmp(A) + popcount(N) + B) + storage(P·N·T ×
    CF); "binary" (FINN's rtl unit) P·(B·cmp(A) + B·mux) + P·Σ_s storage(T ×
    CF·2^s); "constant" (CF = 1) the truth-table bound P·⌈min(N·A/2.5,
    1.3·B·2^max(0, A−6))⌉. cmp(n) = ⌈2n/3⌉ (§6.2), one mux LUT per
    binary-search stage. Without a ``style``, ``impl="rtl"`` is binary and
    ``impl="hls"`` the cheapest of linear and binary, and also constant when
    the channels share one row (``shared``: pass ``channels`` = ``pe``).

    ``ram_style`` defaults to FINN's "distributed" in finn mode and to "auto"
    (the §6.2 shallow-memory rule) in refined mode.
    """
    check_mode(mode)
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
    params = dict(channels=channels, pe=pe, a_bits=a_bits, out_bits=out_bits, n_thresholds=n, thr_bits=thr_bits,
                  part=resolve_part(part), ram_style=ram_style or "auto")
    if style is None and impl != "rtl":
        return _cheaper_thresholding(styles=("linear", "binary") + (("constant",) if shared and tmem == 1 else ()), **params)
    return _threshold_refined(style=style or "binary", **params)


# --------------------------------------------------------------------------
# integer requantizer
# --------------------------------------------------------------------------


def integer_requant(*, pe: int, acc_bits: int, x_bits: int, x_signed: bool, m_bits: int, prod_bits: int, shift: int,
                    out_bits: int, memories: tuple = (), mode: str = "refined", part: Part | str | None = None,
                    ram_style: str | None = None) -> Cost:
    """An exact integer requantizer ``clip((clamp(acc) * m + b) >> shift, 0,
    2^B - 1)`` in place of a threshold unit, per PE: the clamp of the
    ``acc_bits`` input to its active range (two comparisons with constants
    and an ``x_bits`` select), one ``x_bits`` × ``m_bits`` multiply (m
    unsigned; bound by :func:`cheaper_multiply`), an adder for b
    over the ``prod_bits``-bit product, the shift (wiring) and the clip (two
    comparisons with constants and a B-bit select); plus its parameter
    ``memories`` (one word of m and b per channel and PE, none when
    hard-wired). FINN has no such unit: in finn mode it is priced with the
    same primitives and says so."""
    check_mode(mode)
    p = resolve_part(part)
    m = cheaper_multiply(m_bits, x_bits, p, count=pe, w_signed=False, a_signed=x_signed, name="accumulator x requant multiplier")
    clip_bits = max(1, prod_bits - shift)
    breakdown: dict[str, Amount] = {
        "requant_clamp": pe * (2 * _ev("prim.cmp_const", n=acc_bits) + x_bits),
        "requant_multipliers": m.lut * m.count,
        "requant_offset_adder": pe * _ev("prim.add", n=prod_bits),
        "requant_clip": pe * (2 * _ev("prim.cmp_const", n=clip_bits) + out_bits),
    }
    mems = [M.price(layout, p, ram_style) for layout in memories]
    breakdown["requant_parameters"] = sum(x.lut for x in mems)
    note = "" if mode == "refined" else "FINN has no integer requantizer; priced with the refined primitives"
    return Cost("IntegerRequant", mode, sum(breakdown.values()), m.dsp * m.count, sum(x.bram18 for x in mems),
                sum(x.uram for x in mems), breakdown, (m,), note,
                storage=stored(**{layout.name: x for layout, x in zip(memories, mems)}), threshold_unit="integer")


__all__ = ["a2q_acc_bits", "mvau", "vvau", "thresholding", "integer_requant"]
