"""Cost model: FINN's formulas on hand-computed cases, refined-mode properties.

Section numbers refer to docs/research/fpga_cost_and_hls.md. Every finn-mode
number below is derived by hand from the formula quoted in its comment.
"""

from __future__ import annotations

import pytest

from sira import SiraError
from sira import cost as C
from sira.devices import BRAM18_SHAPES, DEFAULT_PART, PARTS, URAM_SHAPE, get_part

Z7, ZU, VERSAL = "xc7z020clg400-1", "xczu7ev-ffvc1156-2-e", "xcvc1902-vsva2197-2MP-e-S"


# ---------------------------------------------------------------- devices


def test_parts_and_unknown_part():
    assert get_part().name == DEFAULT_PART == Z7
    assert get_part(Z7).dsp_primitive.name == "DSP48E1"
    assert (get_part(ZU).dsp_primitive.mult_a_bits, get_part(ZU).dsp_primitive.mult_b_bits) == (27, 18)
    assert get_part(VERSAL).dsp_primitive.name == "DSP58"
    assert get_part(Z7).uram == 0 and get_part(ZU).uram > 0
    with pytest.raises(SiraError) as e:
        get_part("xc7a35t")
    assert all(name in str(e.value) for name in PARTS)


def test_unknown_mode():
    with pytest.raises(SiraError, match="mode"):
        C.fmpadding(simd=1, a_bits=8, mode="vivado")


# ---------------------------------------------------------------- memories


@pytest.mark.parametrize("width,depth,expected", [
    (1, 16384, 1), (1, 16385, 2),          # width 1: ⌈ω/16384⌉
    (2, 8193, 2),                          # width 2: ⌈ω/8192⌉
    (3, 4097, 2),                          # ≤4: ⌈ω/4096⌉·⌈w/4⌉ = 2·1
    (9, 2048, 1), (9, 2049, 2),            # ≤9: ⌈ω/2048⌉·⌈w/9⌉
    (10, 2048, 2),                         # ≤18: ⌈2048/1024⌉·⌈10/18⌉ = 2
    (36, 512, 1), (37, 512, 2),            # >18, ≤512 deep: ⌈ω/512⌉·⌈w/36⌉
    (36, 513, 2),                          # ω > 512: ⌈513/1024⌉·⌈36/18⌉ = 2
    (512, 512, 15),                        # §1.1 worked example: ⌈512/36⌉ = 15
])
def test_bram18_finn_table(width, depth, expected):
    assert C.bram18_finn(width, depth) == expected


def test_every_primitive_shape_fills_exactly_one_block():
    for width, depth in BRAM18_SHAPES:
        assert C.bram18_finn(width, depth) == 1
    assert C.map_memory(*URAM_SHAPE, ZU, "ultra").uram == 1


def test_bram18_vvau_table_uses_narrow_divisors():
    # §1.3: ≤18 row divides by 16, not 18: ⌈96/1024⌉·⌈18/16⌉ = 2 (MVAU table: 1)
    assert C.bram18_finn(18, 96, wide=False) == 2
    assert C.bram18_finn(18, 96) == 1


def test_map_memory_refined():
    assert C.map_memory(8, 64) == C.Memory("distributed", 8, 0, 0)      # depth ≤ 64: 8·⌈64/64⌉
    assert C.map_memory(16, 128) == C.Memory("distributed", 32, 0, 0)   # 2048 bits: 16·⌈128/64⌉
    assert C.map_memory(36, 512) == C.Memory("block", 0, 1, 0)         # 18 kbit → one BRAM18
    assert C.map_memory(72, 4096, ZU, "ultra") == C.Memory("ultra", 0, 0, 1)
    assert C.map_memory(0, 100).style == "none"
    with pytest.raises(SiraError, match="no URAM"):
        C.map_memory(72, 4096, Z7, "ultra")


# ---------------------------------------------------------------- primitives


def test_a2q_bound_and_adder_tree():
    # §5.2: α = log2(256) + 4 + 4 − 1 − 0 = 15 → ⌈15 + log2(1 + 2^−15) + 1⌉ = 17
    assert C.a2q_acc_bits(256, 4, 4, a_signed=False) == 17
    assert C.a2q_acc_bits(256, 4, 4, a_signed=True) == 16
    # α = log2(9) + 7 ≈ 10.17 → 12
    assert C.a2q_acc_bits(9, 4, 4, a_signed=False) == 12
    # §6.2 tree, Q = 4, b = 8: 2·9 + 1·10 − 3 = 25; Q = 1: no adders
    assert C.adder_tree(4, 8) == 25
    assert C.adder_tree(1, 8) == 0


def test_multiply_binding_and_device_operand_widths():
    m = C.multiply(4, 4, Z7)          # w+a = 8 → fabric, (2⌈8/6⌉−1)·8 = 24
    assert (m.impl, m.lut, m.dsp) == ("lut", 24, 0)
    m = C.multiply(2, 8, Z7)          # 2-bit operand → shift-add 2·(8+1) = 18
    assert (m.impl, m.lut) == ("lut", 18)
    assert C.multiply(8, 8, Z7).dsp == 1
    assert C.multiply(16, 16, Z7, binding="lut").lut == (2 * 6 - 1) * 32
    # the DSP count flips exactly at each family's port widths
    assert C.multiply(25, 18, Z7).dsp == 1      # DSP48E1 25×18
    assert C.multiply(26, 18, Z7).dsp == 2
    assert C.multiply(26, 18, ZU).dsp == 1      # DSP48E2 27×18
    assert C.multiply(27, 19, ZU).dsp == 2
    assert C.multiply(27, 19, VERSAL).dsp == 1  # DSP58 27×24
    assert C.multiply(27, 25, VERSAL).dsp == 2
    assert C.multiply(25, 18, Z7, w_signed=False).dsp == 2  # unsigned needs a 26th port bit
    with pytest.raises(SiraError):
        C.multiply(4, 4, binding="bram")


# ---------------------------------------------------------------- finn mode: MVAU


def test_finn_mvau_hls_worked_example():
    # §1.1: MW = MH = 256, P = 8, Q = 16, W = A = 4, no activation, resType lut/auto:
    # L_mult = 16·(2⌈8/6⌉−1)·8 = 384, L_tree = 8·31 = 248, L_acc = 17 (A2Q, < INT32)
    # LUT = ⌊300 + 1.1·8·649⌋ = ⌊6011.2⌋ = 6011; BRAM: 512 wide × 512 deep → 15
    c = C.mvau(mw=256, mh=256, pe=8, simd=16, w_bits=4, a_bits=4, mode="finn")
    assert c.finn_dict() == {"BRAM_18K": 15, "LUT": 6011, "URAM": 0, "DSP": 0}
    assert c.breakdown["L_mult"] == 384 and c.breakdown["L_tree"] == 248 and c.breakdown["L_acc"] == 17
    # resType dsp: L_mult = 0 → ⌊300 + 1.1·8·265⌋ = 2632; DSP = 8·16·⌈8/48⌉ = 128
    c = C.mvau(mw=256, mh=256, pe=8, simd=16, w_bits=4, a_bits=4, mode="finn", res_type="dsp")
    assert (c.lut, c.dsp) == (2632, 128)


def test_finn_mvau_hls_thresholds_and_lutram_weights():
    # MW = MH = 16, P = Q = 4, W = A = 2 (unsigned in), B = 2, internal_embedded, WMEM = 16:
    # L_mult = 4·(2⌈4/6⌉−1)·4 = 16; L_tree = 4·7 = 28; acc = ⌈7 + log2(1+2^−7) + 1⌉ = 9
    # TMEM = 4: L_thr = 3·9·⌈4/64⌉ = 27; L_cmp = 3·9 = 27; c2 = 4·4·2·⌈16/64⌉ = 32
    # LUT = ⌊300 + 1.1·4·107 + 32⌋ = ⌊802.8⌋ = 802; BRAM 0 (embedded, WMEM ≤ 128)
    kw = dict(mw=16, mh=16, pe=4, simd=4, w_bits=2, a_bits=2, out_bits=2, mode="finn",
              mem_mode="internal_embedded", ram_style_thresholds="distributed")
    c = C.mvau(**kw)
    assert (c.lut, c.bram18, c.uram, c.breakdown["c2"]) == (802, 0, 0, 32)
    # a minimised accumulator (6 bits) replaces the bound: 16+28+6+18+18 = 86
    # → ⌊300 + 1.1·4·86 + 32⌋ = ⌊710.4⌋ = 710
    assert C.mvau(**kw, acc_bits=6).lut == 710
    # ram_style_thresholds auto: thresholds "free" → ⌊300 + 1.1·4·53 + 32⌋ = ⌊565.2⌋ = 565
    kw["ram_style_thresholds"] = "auto"
    assert C.mvau(**kw).lut == 565


def test_finn_mvau_uram_and_embedded_corner():
    # width = 2·8·8 = 128, WMEM = 64·64/16 = 256
    kw = dict(mw=64, mh=64, pe=2, simd=8, w_bits=8, a_bits=8, mode="finn")
    # decoupled + ultra: BRAM 0, URAM ⌈128/72⌉·⌈256/4096⌉ = 2
    c = C.mvau(**kw, ram_style="ultra")
    assert (c.bram18, c.uram) == (0, 2)
    # internal_embedded with WMEM > 128: FINN counts BRAM ⌈256/512⌉·⌈128/36⌉ = 4 AND URAM 2
    c = C.mvau(**kw, mem_mode="internal_embedded")
    assert (c.bram18, c.uram) == (4, 2)
    assert C.mvau(**kw, mem_mode="external").bram18 == 0


def test_finn_mvau_rtl_dsp_by_family():
    kw = dict(mw=64, mh=64, pe=8, simd=16, w_bits=8, a_bits=8, mode="finn", impl="rtl")
    # §1.2: DSP48: ⌈8/4⌉·16 = 32; DSP58: 8·⌈16/3⌉ = 48; LUT always 0
    assert C.mvau(**kw, part=Z7).finn_dict() == {"BRAM_18K": 29, "LUT": 0, "URAM": 0, "DSP": 32}
    assert C.mvau(**kw, part=ZU).dsp == 32
    assert C.mvau(**kw, part=VERSAL).dsp == 48
    # memory as for HLS: width 8·16·8 = 1024, WMEM = 32 → ⌈32/512⌉·⌈1024/36⌉ = 29


# ---------------------------------------------------------------- finn mode: VVAU


def test_finn_vvau_hls():
    # C = 64, 3×3, P = 4, Q = 3, W = A = 4, B = 4: L_mult = 3·3·8 = 72; L_tree = 8·5 = 40
    # acc = 12 (α = log2 9 + 7); TMEM = 16: L_thr = 15·12·16/64 = 45 (no ceiling); L_cmp = 180
    # LUT = ⌊300 + 1.1·4·349⌋ = ⌊1835.6⌋ = 1835; WMEM = 9·64/12 = 48 ≤ 128 with auto → BRAM 0
    c = C.vvau(channels=64, kernel=(3, 3), pe=4, simd=3, w_bits=4, a_bits=4, out_bits=4, mode="finn")
    assert c.finn_dict() == {"BRAM_18K": 0, "LUT": 1835, "URAM": 0, "DSP": 0}
    # thresholds counted without any ram-style check (ram_style_thresholds ignored)
    assert C.vvau(channels=64, kernel=(3, 3), pe=4, simd=3, w_bits=4, a_bits=4, out_bits=4, mode="finn",
                  ram_style_thresholds="block").lut == 1835


def test_finn_vvau_fractional_threshold_term_and_dsp():
    # C = 40, 3×3, P = 4, Q = 1, W = A = 4, B = 2: L_mult = 24, L_tree = 8, acc = 12,
    # TMEM = 10: L_thr = 3·12·10/64 = 5.625, L_cmp = 36 → ⌊300 + 1.1·4·85.625⌋ = ⌊676.75⌋ = 676
    kw = dict(channels=40, kernel=(3, 3), pe=4, simd=1, w_bits=4, a_bits=4, out_bits=2, mode="finn")
    assert C.vvau(**kw).lut == 676
    # resType dsp: DSP = P·⌈(W+A)/48⌉ = 4 (no Q factor)
    assert C.vvau(**{**kw, "simd": 3}, res_type="dsp").dsp == 4


def test_finn_vvau_bram_and_rtl():
    # P = 2, Q = 3, W = 3 → width 18; WMEM = 9·64/6 = 96; block: ⌈96/1024⌉·⌈18/16⌉ = 2
    c = C.vvau(channels=64, kernel=(3, 3), pe=2, simd=3, w_bits=3, a_bits=4, mode="finn", ram_style="block")
    assert c.bram18 == 2
    # RTL VVU: LUT 0, DSP = P·⌈Q/3⌉ = 2·1, DSP58 only
    c = C.vvau(channels=64, kernel=(3, 3), pe=2, simd=3, w_bits=4, a_bits=4, mode="finn", impl="rtl", part=VERSAL)
    assert (c.lut, c.dsp) == (0, 2)
    with pytest.raises(SiraError, match="DSP58"):
        C.vvau(channels=64, kernel=(3, 3), pe=2, simd=3, w_bits=4, a_bits=4, mode="finn", impl="rtl", part=Z7)


# ---------------------------------------------------------------- finn mode: Thresholding


def test_finn_thresholding_hls_ignores_threshold_count():
    # C = 64, P = 4, A = 8, TMEM = 16, distributed: LUT = 8·4 + 4·8·⌈16/64⌉ = 64
    for out_bits in (1, 2, 8):
        c = C.thresholding(channels=64, pe=4, a_bits=8, out_bits=out_bits, mode="finn")
        assert c.finn_dict() == {"BRAM_18K": 0, "LUT": 64, "URAM": 0, "DSP": 0}
    # block: LUT = 32, BRAM = ⌈32/16⌉·⌈16/1024⌉ = 2
    c = C.thresholding(channels=64, pe=4, a_bits=8, out_bits=4, mode="finn", ram_style="block")
    assert (c.lut, c.bram18) == (32, 2)
    # TMEM = 1: no memory term, LUT = A·P = 64
    assert C.thresholding(channels=8, pe=8, a_bits=8, out_bits=4, mode="finn").lut == 64


def test_finn_thresholding_rtl_memories():
    # §1.4 example: C = 64, P = 1, B = 4, T = 8 → LUTRAM 8·(1+2+4+8) = 120
    c = C.thresholding(channels=64, pe=1, a_bits=8, out_bits=4, thr_bits=8, mode="finn", impl="rtl")
    assert c.finn_dict() == {"BRAM_18K": 0, "LUT": 120, "URAM": 0, "DSP": 0}
    # C = 100, P = 2 (CF = 50), B = 3, T = 12: 12·(⌈50/64⌉ + ⌈100/64⌉ + ⌈200/64⌉) = 84 per PE → 168
    c = C.thresholding(channels=100, pe=2, a_bits=12, out_bits=3, thr_bits=12, mode="finn", impl="rtl")
    assert c.lut == 168


# ---------------------------------------------------------------- finn mode: the rest


@pytest.mark.parametrize("make", [
    lambda m: C.elementwise_binary("Add", lhs_bits=8, rhs_bits=8, out_bits=9, pe=4, mode=m),
    lambda m: C.elementwise_binary("Mul", lhs_bits=8, rhs_bits=8, out_bits=16, mode=m),
    lambda m: C.add_streams(in_bits=8, out_bits=9, pe=2, mode=m),
    lambda m: C.duplicate_streams(mode=m),
    lambda m: C.streaming_maxpool(kernel=2, ifm_dim=32, channels=64, pe=4, a_bits=4, mode=m),
    lambda m: C.pool(function="max", window=4, pe=2, a_bits=8, mode=m),
    lambda m: C.fmpadding(simd=4, a_bits=8, mode=m),
])
def test_finn_reports_zero_where_it_has_no_estimate(make):
    c = make("finn")
    assert c.finn_dict() == {"BRAM_18K": 0, "LUT": 0, "URAM": 0, "DSP": 0}
    assert "no resource estimate" in c.note


def test_finn_swg_hls():
    # IFMDim 32, C 64, SIMD 8, A 4, K 3, stride 1: depth 256 → width 36
    # BRAM = (3+1)·⌈32/36⌉ = 4, LUT = 300
    kw = dict(ifm_dim=32, kernel=3, stride=1, channels=64, simd=8, a_bits=4, mode="finn")
    assert C.swg_hls(**kw).finn_dict() == {"BRAM_18K": 4, "LUT": 300, "URAM": 0, "DSP": 0}
    # distributed: LUT = 300 + 4·8·4·⌈256/64⌉ = 812, BRAM 0
    c = C.swg_hls(**kw, ram_style="distributed")
    assert (c.lut, c.bram18) == (812, 0)
    # IFMDim 64, C 64, SIMD 2, A 8, stride 2: depth 2048 → width 9: (3+2)·⌈16/9⌉ = 10
    assert C.swg_hls(ifm_dim=64, kernel=3, stride=2, channels=64, simd=2, a_bits=8, mode="finn").bram18 == 10
    assert C.swg_hls(**kw, ram_style="ultra").uram is C.UNKNOWN


def test_finn_swg_rtl():
    # depth 600, width 4·8 = 32: depth ≤ 1024 → width 18 → ⌈32/18⌉ = 2 BRAM18
    kw = dict(buffer_depth=600, simd=4, a_bits=8, mode="finn")
    assert (C.swg_rtl(**kw).lut, C.swg_rtl(**kw).bram18) == (300, 2)
    # distributed: 300 + 32·⌈600/38⌉ = 300 + 32·16 = 812
    assert C.swg_rtl(**kw, ram_style="distributed").lut == 812
    # ultra: ⌈600/4096⌉·⌈32/72⌉ = 1
    assert C.swg_rtl(**kw, ram_style="ultra").uram == 1
    assert C.swg_rtl(buffer_depth=20000, simd=1, a_bits=8, mode="finn").bram18 is C.UNKNOWN


def test_finn_fifo():
    # RTL, depth 100, W 40: 2·⌈log2 100⌉ + ⌈100/32⌉·⌈40/2⌉ = 14 + 80 = 94
    assert C.fifo(depth=100, width=40, mode="finn").finn_dict() == {"BRAM_18K": 0, "LUT": 94, "URAM": 0, "DSP": 0}
    # Vivado block: LUT 14; BRAM W 40 > 18, depth ≤ 512: ⌈100/512⌉·⌈40/36⌉ = 2
    c = C.fifo(depth=100, width=40, impl="vivado", ram_style="block", mode="finn")
    assert (c.lut, c.bram18) == (14, 2)
    # Vivado ultra: URAM ⌈100/4096⌉·⌈40/72⌉ = 1
    assert C.fifo(depth=100, width=40, impl="vivado", ram_style="ultra", mode="finn").uram == 1
    # Vivado distributed, depth 2048, W 8: 2·11 + 64·4 = 278
    assert C.fifo(depth=2048, width=8, impl="vivado", ram_style="distributed", mode="finn").lut == 278


def test_finn_dwc_and_lookup():
    # 8 → 32: lcm 32; one step 8→32: counter ⌈log2 4⌉ = 2 plus width 32 → 34
    assert C.dwc(in_width=8, out_width=32, mode="finn").lut == 34
    # 32 → 8: lcm 32 = in; one step 32→8: 2 + 8 = 10
    assert C.dwc(in_width=32, out_width=8, mode="finn").lut == 10
    # Lookup: ⌈40/16⌉·⌈2048/1024⌉ = 6 BRAM18
    assert C.lookup(num_embeddings=2048, out_width=40, mode="finn").finn_dict() == {
        "BRAM_18K": 6, "LUT": 0, "URAM": 0, "DSP": 0}


# ---------------------------------------------------------------- refined mode


def _nonzero(c: C.Cost) -> bool:
    values = (c.lut, c.dsp, c.bram18, c.uram)
    return any(v is C.UNKNOWN for v in values) or any(v > 0 for v in values)


REFINED_LAYERS = [
    lambda: C.mvau(mw=64, mh=32, pe=4, simd=8, w_bits=4, a_bits=4),
    lambda: C.mvau(mw=64, mh=32, pe=4, simd=8, w_bits=8, a_bits=8, out_bits=2, impl="rtl", part=VERSAL),
    lambda: C.vvau(channels=32, kernel=(3, 3), pe=4, simd=3, w_bits=4, a_bits=4, out_bits=4),
    lambda: C.thresholding(channels=64, pe=4, a_bits=8, out_bits=2),
    lambda: C.thresholding(channels=64, pe=4, a_bits=8, out_bits=2, impl="rtl"),
    lambda: C.thresholding(channels=4, pe=4, a_bits=6, out_bits=2, style="constant"),
    lambda: C.elementwise_binary("Add", lhs_bits=8, rhs_bits=8, out_bits=9, pe=2),
    lambda: C.elementwise_binary("Mul", lhs_bits=8, rhs_bits=8, out_bits=16, const_elements=64),
    lambda: C.elementwise_binary("Maximum", lhs_bits=8, rhs_bits=8, out_bits=8),
    lambda: C.elementwise_binary("Less", lhs_bits=8, rhs_bits=8, out_bits=1, const_elements=1),
    lambda: C.elementwise_binary("Xor", lhs_bits=8, rhs_bits=8, out_bits=8),
    lambda: C.add_streams(in_bits=8, out_bits=9, pe=2),
    lambda: C.streaming_maxpool(kernel=2, ifm_dim=32, channels=64, pe=4, a_bits=4),
    lambda: C.pool(function="max", window=4, pe=2, a_bits=8),
    lambda: C.pool(function="avg", window=4, pe=2, a_bits=8),
    lambda: C.fmpadding(simd=1, a_bits=1),
    lambda: C.swg_hls(ifm_dim=32, kernel=3, stride=1, channels=64, simd=8, a_bits=4),
    lambda: C.swg_rtl(buffer_depth=600, simd=4, a_bits=8),
    lambda: C.fifo(depth=2, width=8),
    lambda: C.dwc(in_width=8, out_width=32),
    lambda: C.lookup(num_embeddings=100, out_width=8),
]


@pytest.mark.parametrize("make", REFINED_LAYERS)
def test_refined_never_zero(make):
    c = make()
    assert c.mode == "refined" and _nonzero(c) and not c.free


def test_refined_free_wiring_and_unknown():
    assert C.duplicate_streams().free and C.dwc(in_width=16, out_width=16).free
    assert C.pool(function="avg", window=9, pe=1, a_bits=8).lut is C.UNKNOWN
    assert C.elementwise_binary("Div", lhs_bits=8, rhs_bits=8, out_bits=8).lut is C.UNKNOWN
    # the 8-bit DSP48 RTL core has no packing formula in the notes
    assert C.mvau(mw=16, mh=16, pe=2, simd=2, w_bits=8, a_bits=8, impl="rtl").dsp is C.UNKNOWN


def test_refined_thresholding_counts_thresholds_and_width():
    # §6.3 linear, C 64, P 1, A = T = 16, B = 4 (N 15): 15·⌈32/3⌉ + 15 + 4 = 184 logic,
    # storage 240 bits × CF 64 → LUTRAM 240·1 → 424 (notes: ≈ 28·N = 420)
    c = C.thresholding(channels=64, pe=1, a_bits=16, out_bits=4)
    assert c.lut == 424
    luts = [C.thresholding(channels=64, pe=2, a_bits=8, out_bits=b).lut for b in (1, 2, 3, 4)]
    assert luts == sorted(luts) and len(set(luts)) == 4
    narrow = C.thresholding(channels=64, pe=2, a_bits=8, out_bits=3, thr_bits=4).lut
    assert narrow < C.thresholding(channels=64, pe=2, a_bits=8, out_bits=3, thr_bits=8).lut
    pruned = C.thresholding(channels=64, pe=2, a_bits=8, out_bits=3, n_thresholds=3).lut
    assert pruned < C.thresholding(channels=64, pe=2, a_bits=8, out_bits=3).lut
    # FINN's HLS number does not move with B at all
    assert C.thresholding(channels=64, pe=2, a_bits=8, out_bits=1, mode="finn").lut == \
        C.thresholding(channels=64, pe=2, a_bits=8, out_bits=4, mode="finn").lut


def test_refined_mvau_monotone():
    # the weights are one memory per PE (as the generated code partitions them), so
    # under ram_style auto more PEs can make each memory shallow enough for LUTRAM and
    # the total drop; with the weights pinned to block RAM the cost grows with every knob
    base = dict(mw=64, mh=64, pe=2, simd=4, w_bits=3, a_bits=3, out_bits=2, ram_style="block")

    def total(**kw):
        c = C.mvau(**{**base, **kw})
        return c.lut + 100 * c.dsp + 500 * c.bram18

    for key, values in (("pe", (1, 2, 4, 8)), ("simd", (1, 2, 4, 8)), ("w_bits", (2, 3, 4)),
                        ("a_bits", (2, 3, 4)), ("out_bits", (1, 2, 3))):
        costs = [total(**{key: v}) for v in values]
        assert costs == sorted(costs), (key, costs)


def test_refined_mvau_dsp_decision():
    # 8×8 → DSP per multiply; 2×8 stays in fabric
    c = C.mvau(mw=32, mh=32, pe=2, simd=4, w_bits=8, a_bits=8)
    assert c.dsp == 8 and c.multiplies[0].impl == "dsp" and c.breakdown["multipliers"] == 0
    c = C.mvau(mw=32, mh=32, pe=2, simd=4, w_bits=2, a_bits=8)
    assert c.dsp == 0 and c.multiplies[0].impl == "lut"
    # a 26-bit weight needs two DSP48E1 but one DSP48E2
    assert C.mvau(mw=8, mh=8, pe=1, simd=1, w_bits=26, a_bits=8, part=Z7).dsp == 2
    assert C.mvau(mw=8, mh=8, pe=1, simd=1, w_bits=26, a_bits=8, part=ZU).dsp == 1


def test_refined_weights_are_one_memory_per_pe():
    # MW 64, MH 64, PE 4, SIMD 4, 3-bit weights: each PE stores 16·16 = 256 words of
    # 4·3 = 12 bits (3 kbit > 2 kbit: one BRAM18 each), not one 48-bit x 256 memory
    c = C.mvau(mw=64, mh=64, pe=4, simd=4, w_bits=3, a_bits=3)
    assert (c.bram18, c.storage["weights"]) == (4, "block")
    # PE 8: 128 words of 12 bits per PE (1.5 kbit): LUTRAM, 8 x 12·⌈128/64⌉ = 192 LUT
    c = C.mvau(mw=64, mh=64, pe=8, simd=4, w_bits=3, a_bits=3)
    assert (c.bram18, c.breakdown["weight_memory"]) == (0, 192)


def test_refined_shallow_weights_go_to_lutram():
    # WMEM = 16·16/16 = 16 deep → LUTRAM 4·4·4·⌈16/64⌉ = 64, no BRAM
    c = C.mvau(mw=16, mh=16, pe=4, simd=4, w_bits=4, a_bits=4)
    assert (c.breakdown["weight_memory"], c.bram18) == (64, 0)
    # FINN puts the same memory in a BRAM18 (⌈16/512⌉·⌈64/36⌉ = 2)
    assert C.mvau(mw=16, mh=16, pe=4, simd=4, w_bits=4, a_bits=4, mode="finn").bram18 == 2


def test_formulas_are_sympy_expressions():
    expr = C.formula("finn.mvau.lut")
    assert {s.name for s in expr.free_symbols} == {"P", "L_mult", "L_tree", "L_acc", "L_thr", "L_cmp", "c2"}
    assert "floor" in str(expr)


def test_pool_over_one_element_is_wiring():
    from sira import cost as C

    c = C.pool(function="sum", window=1, pe=2, a_bits=4)
    assert c.free and (c.lut, c.dsp, c.bram18, c.uram) == (0, 0, 0, 0)
    assert C.pool(function="sum", window=4, pe=2, a_bits=4).lut > 0


def test_global_pool_is_running_values_not_a_window_tree():
    from sira import cost as C

    g = C.global_pool(channels=64, pe=4, acc_bits=12)
    w = C.pool(function="sum", window=49, pe=4, a_bits=4)
    assert 0 < g.lut < w.lut and g.storage == {"running_values": "distributed"}
    assert C.global_pool(channels=64, pe=8, acc_bits=12).lut > C.global_pool(channels=64, pe=4, acc_bits=12).lut


def test_stream_mux_counts_the_kernels_counters_and_select():
    """Concat: a 3:1 multiplexer per output bit (one LUT6 each) plus the
    fold and stream counters; Split: the counters and one write enable per
    output; FINN has no estimate for either."""
    concat = C.stream_mux("Concat", streams=3, word_bits=8, fold=4)
    assert concat.breakdown == {"counters": 4 + 4, "select": 8} and concat.lut == 16 and concat.dsp == 0 and concat.bram18 == 0
    assert C.stream_mux("Concat", streams=5, word_bits=8, fold=1).breakdown == {"counters": 6, "select": 16}
    split = C.stream_mux("Split", streams=2, word_bits=8, fold=3)
    assert split.breakdown == {"counters": 4 + 2, "select": 2}
    assert C.stream_mux("Split", streams=2, word_bits=8, fold=3, mode="finn").lut == 0
