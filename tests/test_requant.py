"""Exact integer requantizers (sira/requant.py, sira/transforms/thresholds/integer.py).

Every found ``clip((q*m + b) >> s, ...)`` is compared at every integer of
its range with the chain's exact semantics computed here independently
(Python fractions and sira's one QONNX rounding function): rounding modes
with real ties, narrow range, signed outputs, negative scales (decreasing
chains: negative multipliers), per-channel parameters. A hypothesis test
draws random chains. The choice between thresholds and the integer form,
its cost and the folding-file override are tested on hardware layers.
"""

from __future__ import annotations

import dataclasses
import os
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sira import cost as C
from sira import hw
from sira import numerics as nx
from sira.cli import build_parser
from sira.errors import SiraError
from sira.estimate import estimate_prepared, prepare
from sira.estimate_table import estimate_table
from sira.explain import explain
from sira.explain.text import explain_text
from sira.folding import apply_folding_file, folding_json
from sira.implementation import choose_implementations, within
from sira.layer_costs import layer_cost
from sira.requant import IntegerRequant, find_integer_requant, prove
from sira.rules.quant import int_limits
from sira.transforms.thresholds import Chain, Offset, Relu, Requantizer, Scale, Sigmoid
from sira.transforms.thresholds.integer import chain_requant

MODES = ["ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN"]


def quantizer(C, scale, zeropt=0.0, bits=4, signed=False, narrow=False, mode="ROUND"):
    qmin, qmax = int_limits(signed, narrow, bits)
    return Requantizer(np.full(C, scale, dtype=np.float64), np.full(C, zeropt, dtype=np.float64), qmin, qmax, mode, False, "Q")


def exact_levels(q: int, scale: Fraction, bias: Fraction, relu: bool, rq: Requantizer, c: int = 0) -> int:
    """The chain q -> q*scale + bias [-> relu] -> Quant, as a quantizer level,
    in fractions (the reference the requantizer must equal)."""
    v = Fraction(q) * scale + bias
    if relu:
        v = max(v, Fraction(0))
    return nx.quantize_fraction(v, Fraction(float(rq.scale[c])), Fraction(float(rq.zeropt[c])), rq.qmin, rq.qmax, rq.mode)


def check_exhaustive(cr, lo, hi, rq, want) -> None:
    """``cr`` (a ChainRequant) gives the level ``want(c, q)`` at every q of
    every channel's range (level = qmin + index)."""
    for c in range(len(lo)):
        q = np.arange(lo[c], hi[c] + 1)
        cols = np.zeros((q.size, len(lo)), dtype=np.int64)
        cols[:, c] = q
        got = rq.qmin + cr.index(cols)[:, c]
        exp = np.array([want(c, int(v)) for v in q])
        bad = np.nonzero(got != exp)[0]
        assert not bad.size, f"channel {c}, q={int(q[bad[0]])}: requantizer {int(got[bad[0]])}, chain {int(exp[bad[0]])}"


def level_fn(scale, bias, relu, rq):
    """The chain's exact level at (channel, q); scale and bias per channel
    when lists."""
    return lambda c, q: exact_levels(q, scale[c] if isinstance(scale, list) else scale, bias[c] if isinstance(bias, list) else bias, relu, rq, c)


def make_chain(scale, bias, rq, C=1, relu=False):
    k = np.array([float(s) for s in (scale if isinstance(scale, list) else [scale] * C)])
    b = np.array([float(v) for v in (bias if isinstance(bias, list) else [bias] * C)])
    ops = [Scale(k), Offset(b)] + ([Relu()] if relu else [])
    return Chain(np.ones(C), np.zeros(C), tuple(ops), rq, C)


# --------------------------------------------------------------------------
# the search on threshold sets
# --------------------------------------------------------------------------


def test_uniform_steps_give_a_dyadic_with_the_smallest_shift():
    """n(x) = floor(x / 4) clipped to [0, 7]: m = 1, s = 2 (b = 0) and no
    smaller shift exists (s = 0, 1 cannot divide by 4)."""
    T = np.array([[4 * k for k in range(1, 8)]])
    req = find_integer_requant(T, -10, 40)
    assert (req.shift, int(req.m[0]), int(req.b[0])) == (2, 1, 0)
    x = np.arange(-10, 41)[:, None]
    assert np.array_equal(req.counts(x)[:, 0], np.clip(x[:, 0] // 4, 0, 7))


def test_non_uniform_steps_have_no_integer_form():
    """Steps 1, 2, 4, 8 apart (a logarithmic code) are no affine floor."""
    assert find_integer_requant(np.array([[1, 2, 4, 8, 16]]), 0, 40) is None


def test_proof_rejects_a_wrong_requantizer():
    T = np.array([[4, 8, 12]])
    good = find_integer_requant(T, 0, 20)
    prove(good, T, 0, 20)
    bad = IntegerRequant(good.m, np.array([int(good.b[0]) + (1 << good.shift)], dtype=object), good.shift, 3, good.lo, good.hi)
    with pytest.raises(SiraError, match="reached early"):
        prove(bad, T, 0, 20)


def test_thresholds_outside_the_range_are_honoured():
    """Always-reached and never-reached thresholds: the count saturates
    exactly there (checked at every integer)."""
    T = np.array([[-50, -3, 0, 3, 6, 9, 100]])
    req = find_integer_requant(T, -5, 12)
    x = np.arange(-5, 13)
    assert np.array_equal(req.counts(x[:, None])[:, 0], np.sum(x[:, None] >= T[0][None, :], axis=1))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(-30, 30)), min_size=1, max_size=3),
    steps=st.integers(1, 15),
    lo=st.integers(-200, 0),
    span=st.integers(0, 400),
)
def test_property_threshold_sets(rows, steps, lo, span):
    """Random floor-affine step functions n(x) = clip(floor((p x + r) / d), 0, S)
    always have an integer form, and every found form equals the thresholds
    at every integer of the range (an exhaustive check beside the proof)."""
    hi = lo + span
    x = np.arange(lo, hi + 1)
    T = []
    for p, d, r in rows:
        n = np.clip((p * x + r) // d, 0, steps)
        T.append([int(x[n >= k][0]) if np.any(n >= k) else hi + 1 for k in range(1, steps + 1)])
    T = np.array(T)
    req = find_integer_requant(T, lo, hi)
    assert req is not None
    counts = np.sum(x[:, None, None] >= T[None, :, :], axis=2)
    got = req.counts(np.broadcast_to(x[:, None], (x.size, len(rows))))
    assert np.array_equal(got, counts)


# --------------------------------------------------------------------------
# chains: rounding, ties, narrow range, signedness, negative scales
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_rounding_modes_with_ties(mode):
    """q * 1/4 + 1/8 quantized with scale 1/2: x/s = q/2 + 1/4 hits no tie,
    and q * 1/2 (scale 1) hits a tie at every odd q. FLOOR and CEIL of an
    affine map are floor-affine: a form exists. ROUND (half to even)
    alternates on ties and has none over a range with many; modes symmetric
    about zero (UP, DOWN) widen the step at zero. Every form found equals
    the chain at every integer."""
    lo, hi = [-40], [40]
    for scale, bias in ((Fraction(1, 4), Fraction(1, 8)), (Fraction(1, 2), Fraction(0))):
        rq = quantizer(1, 1.0 if bias == 0 else 0.5, bits=4, signed=True, mode=mode)
        cr = chain_requant(make_chain(scale, bias, rq), lo, hi)
        if bias == 0 and mode in ("ROUND", "HALF_EVEN"):
            assert cr is None
        if mode in ("FLOOR", "CEIL"):
            assert cr is not None
        if cr is not None:
            check_exhaustive(cr, lo, hi, rq, level_fn(scale, bias, False, rq))


def test_round_half_even_with_a_single_tie_in_range():
    """ROUND (half to even, as QONNX) with exactly one tie inside the range:
    still a step function with an affine floor, reproduced exactly."""
    scale, bias = Fraction(1, 2), Fraction(0)
    rq = quantizer(1, 1.0, bits=8, signed=True, mode="ROUND")
    lo, hi = [0], [2]  # q = 1 is the only tie (0.5 -> 0)
    cr = chain_requant(make_chain(scale, bias, rq), lo, hi)
    check_exhaustive(cr, lo, hi, rq, level_fn(scale, bias, False, rq))


@pytest.mark.parametrize("narrow,signed", [(False, False), (True, True), (False, True), (True, False)])
def test_narrow_range_and_signedness(narrow, signed):
    """x/s = 3q/16 - 5/4 + 1/32 never meets a tie (a multiple of 1/16 plus
    1/32): a form exists for every narrow/signed variant (with a ReLU for
    the unsigned ones) and equals the chain at every integer."""
    scale, bias = Fraction(3, 64), Fraction(-5, 16) + Fraction(1, 128)
    rq = quantizer(1, 0.25, bits=4, signed=signed, narrow=narrow, mode="ROUND")
    lo, hi = [-500], [500]
    cr = chain_requant(make_chain(scale, bias, rq, relu=not signed), lo, hi)
    assert cr is not None
    check_exhaustive(cr, lo, hi, rq, level_fn(scale, bias, not signed, rq))


def test_negative_scales_per_channel():
    """Decreasing channels (negative scale) get negative multipliers on the
    raw input; per-channel scales and biases, 8-bit output (the biases'
    1/1024 keeps x/s off the ties, which half-to-even would alternate)."""
    scales = [Fraction(-3, 32), Fraction(5, 128), Fraction(-1, 8)]
    biases = [Fraction(1, 4) + Fraction(1, 1024), Fraction(-3, 2) + Fraction(1, 1024), Fraction(1, 1024)]
    rq = quantizer(3, 0.125, bits=8, signed=True, mode="ROUND")
    lo, hi = [-2000] * 3, [2000] * 3
    cr = chain_requant(make_chain(scales, biases, rq, C=3), lo, hi)
    assert cr is not None
    assert [int(v) < 0 for v in cr.m] == [True, False, True]
    check_exhaustive(cr, lo, hi, rq, level_fn(scales, biases, False, rq))


def test_sigmoid_chain_is_no_candidate():
    rq = quantizer(1, 1 / 15, bits=4, mode="ROUND")
    ch = Chain(np.ones(1), np.zeros(1), (Scale(np.array([0.05])), Sigmoid()), rq, 1)
    assert chain_requant(ch, [-200], [200]) is None


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    num=st.integers(-64, 64).filter(bool),
    den_log=st.integers(0, 8),
    bias=st.integers(-64, 64),
    bias_den_log=st.integers(0, 4),
    out_scale_log=st.integers(-3, 2),
    bits=st.integers(2, 8),
    signed=st.booleans(),
    narrow=st.booleans(),
    relu=st.booleans(),
    mode=st.sampled_from(MODES),
    span=st.integers(1, 600),
)
def test_property_chains(num, den_log, bias, bias_den_log, out_scale_log, bits, signed, narrow, relu, mode, span):
    """Random scale/bias/ReLU/Quant chains (dyadic parameters, so ties are
    really hit): when a form is found it equals the chain's exact
    semantics at every integer of the range."""
    scale, b = Fraction(num, 2**den_log), Fraction(bias, 2**bias_den_log)
    rq = quantizer(1, 2.0**out_scale_log, bits=bits, signed=signed, narrow=narrow, mode=mode)
    lo, hi = [-span], [span]
    cr = chain_requant(make_chain(scale, b, rq, relu=relu), lo, hi)
    if cr is None:
        assert mode not in ("FLOOR", "CEIL")  # the floor or ceiling of an affine map always has the form
        return
    check_exhaustive(cr, lo, hi, rq, level_fn(scale, b, relu, rq))


# --------------------------------------------------------------------------
# hardware layers: the choice, its cost, the override
# --------------------------------------------------------------------------


def mvau_8bit(impl: str = "auto", mh: int = 8) -> hw.MVAU:
    """An MVAU with 255 evenly spaced thresholds per channel (an 8-bit
    activation): thresholds in BRAM, or one multiply per channel."""
    rng = np.random.default_rng(0)
    mw = 64
    w = rng.integers(-7, 8, size=(mw, mh))
    lo, hi = -mw * 7 * 15, mw * 7 * 15
    x = np.arange(lo, hi + 1)
    T = []
    for c in range(mh):
        n = np.clip((x * (3 + c) + 5 * c) // 64, 0, 255)
        T.append([int(x[n >= k][0]) if np.any(n >= k) else hi + 1 for k in range(1, 256)])
    t = hw.StreamType.for_range(lo, hi + 1)
    return hw.MVAU(
        name="fc", inputs=("x",), outputs=("y",), in_shape=(1, mw), out_shape=(1, mh), in_type=hw.StreamType(4, False),
        out_type=hw.StreamType(8, False), mw=mw, mh=mh, weights=w, weight_type=hw.StreamType(4, True),
        acc_type=hw.StreamType.for_range(lo, hi), acc_range=(lo, hi), thresholds=np.array(T), threshold_type=t, impl=impl,
    )  # fmt: skip


def test_choice_prefers_the_integer_form_for_8_bit_outputs():
    layer = mvau_8bit()
    (chosen,), choices = choose_implementations([layer], mode="refined")
    assert choices["fc"].chosen == "integer" and chosen.requant is not None
    cands = {c.impl: c for c in choices["fc"].candidates}
    assert cands["integer"].share < cands["thresholds"].share
    assert cands["thresholds"].cost.bram18 > cands["integer"].cost.bram18
    cost = layer_cost(chosen)
    assert cost.threshold_unit == "integer"
    assert any(m.name.startswith("accumulator x requant") for m in cost.multiplies)
    (forced,), fchoices = choose_implementations([layer], impl="thresholds")
    assert forced.requant is None and fchoices["fc"].reason == "forced by --impl"
    assert choose_implementations([layer], mode="finn")[1]["fc"].candidates  # finn mode prices both


def test_auto_stays_within_finns_layer_where_it_can():
    """FINN's build of the layer (here: its thresholds) is the limit. The
    integer form uses no more of any resource, so auto takes it; under a
    limit nothing fits, auto takes the smallest share and says so, and
    cheapest never looks at the limit. (The trade auto refuses, block RAM
    for DSPs FINN does not use, is the 8-bit MLP's slow test.)"""
    layer = mvau_8bit()
    (thr_layer,), _ = choose_implementations([layer], impl="thresholds")
    finn = layer_cost(thr_layer)
    (chosen,), choices = choose_implementations([layer], limits={"fc": finn})
    assert chosen.requant is not None and choices["fc"].chosen == "integer"
    assert choices["fc"].reason.startswith("the smallest share of those using no more of any resource than FINN's layer")
    integer = next(c.cost for c in choices["fc"].candidates if c.impl == "integer")
    assert within(integer, finn) and not within(finn, integer)
    tight = dataclasses.replace(finn, lut=integer.lut - 1)
    (fallback,), fchoices = choose_implementations([layer], limits={"fc": tight})
    assert fchoices["fc"].reason.startswith("none uses no more of every resource") and fallback.requant is not None
    assert choose_implementations([layer], impl="cheapest", limits={"fc": tight})[1]["fc"].reason.startswith("the smallest share:")


def test_within_counts_only_what_the_limit_counts():
    finn = C.Cost("MVAU", "refined", 100, 0, 2, 0)
    assert within(C.Cost("MVAU", "refined", 100, 0, 2, 0), finn) and within(C.Cost("MVAU", "refined", 99, 0, 1, 0), finn)
    assert not within(C.Cost("MVAU", "refined", 99, 1, 1, 0), finn)
    assert not within(C.Cost("MVAU", "refined", C.UNKNOWN, 0, 1, 0), finn)
    assert within(C.Cost("MVAU", "refined", 10**6, 0, 1, 0), C.Cost("MVAU", "refined", C.UNKNOWN, 0, 2, 0))
    assert within(C.Cost("MVAU", "refined", 10**6, 9, 9, 9), None)


def test_folding_file_forces_a_layer_and_round_trips():
    folded = list(apply_folding_file([mvau_8bit()], {"fc": {"impl": "thresholds"}}))
    assert folded[0].impl == "thresholds"
    (kept,), choices = choose_implementations(folded, impl="integer")
    assert kept.requant is None and choices["fc"].reason == "forced by the layer's impl"
    assert folding_json(folded)["fc"]["impl"] == "thresholds"
    with pytest.raises(SiraError, match="impl='fast' is not one of"):
        apply_folding_file([mvau_8bit()], {"fc": {"impl": "fast"}})


def test_forcing_an_impossible_integer_form_names_the_layer():
    layer = mvau_8bit(impl="integer")
    lo, hi = layer.acc_range
    T = np.sort(np.random.default_rng(1).integers(lo, hi, size=(8, 255)), axis=1)
    odd = hw.MVAU(**{**{f: getattr(layer, f) for f in ("name", "inputs", "outputs", "in_shape", "out_shape", "in_type", "out_type",
                                                          "mw", "mh", "weights", "weight_type", "acc_type", "acc_range", "threshold_type")},
                     "thresholds": T, "impl": "integer"})  # fmt: skip
    with pytest.raises(SiraError, match="layer 'fc' .*impl 'integer' is impossible"):
        choose_implementations([odd])


def test_layer_rejects_a_requantizer_that_is_not_its_thresholds():
    layer = mvau_8bit()
    lo, hi = layer.acc_range
    req = find_integer_requant(layer.thresholds[:1] + 1, lo, hi)
    with pytest.raises(SiraError, match="layer 'fc'"):
        hw.MVAU(**{**{f: getattr(layer, f) for f in ("name", "inputs", "outputs", "in_shape", "out_shape", "in_type", "out_type", "mw",
                                                       "mh", "weights", "weight_type", "acc_type", "acc_range", "thresholds",
                                                       "threshold_type")}, "requant": req})  # fmt: skip


# --------------------------------------------------------------------------
# the estimate, the command line and explain
# --------------------------------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W8 = os.path.join(ROOT, "examples", "zoo", "models", "mlp_w8a8_perchannel")


@pytest.mark.slow
def test_estimate_8_bit_mlp_shrinks_and_shows_the_candidates():
    """The 8-bit MLP: cheapest builds its 255-step layers as integer
    requantizers (block RAM of the thresholds gone, DSPs spent), auto keeps
    every resource within FINN's build, impl thresholds keeps the
    thresholds; the table lists every candidate and the winner's reason."""
    prepared = prepare(W8 + ".onnx", W8 + ".spec.json")
    auto, _, _ = estimate_prepared(prepared, "xc7z020clg400-1")
    cheapest, _, _ = estimate_prepared(prepared, "xc7z020clg400-1", impl="cheapest")
    thr, _, _ = estimate_prepared(prepared, "xc7z020clg400-1", impl="thresholds")
    assert cheapest["total"]["BRAM_18K"] < thr["total"]["BRAM_18K"] < auto["baseline"]["total"]["BRAM_18K"]
    assert cheapest["total"]["DSP"] > auto["baseline"]["total"]["DSP"]
    assert all(auto["total"][k] <= auto["baseline"]["total"][k] for k in ("LUT", "DSP", "BRAM_18K", "URAM"))
    assert auto["baseline"]["total"] == thr["baseline"]["total"] == cheapest["baseline"]["total"]  # FINN builds thresholds
    assert "integer" in {d["impl"]["chosen"] for d in cheapest["layers"].values() if "impl" in d}
    assert all(d["impl"]["chosen"] == "thresholds" for d in thr["layers"].values() if "impl" in d)
    text = estimate_table(auto)
    assert "requantizers" in text and "part share" in text and "more of a resource than FINN's layer" in text


@pytest.mark.parametrize("command", ["estimate", "build"])
def test_command_line_impl_option(command):
    args = [command, "m.onnx"] + (["-o", "out"] if command == "build" else [])
    assert build_parser().parse_args(args).impl == "auto"
    assert build_parser().parse_args(args + ["--impl", "integer"]).impl == "integer"
    with pytest.raises(SystemExit):
        build_parser().parse_args(args + ["--impl", "lut"])


@pytest.mark.slow
def test_explain_shows_the_implementation_of_a_threshold_layer():
    doc = explain(W8 + ".onnx", "Quant_4_out0", W8 + ".spec.json", samples=5)
    impl = doc["thresholds"]["implementation"]
    assert impl["available"] and set(impl["candidates"]) == {"thresholds", "integer"}
    # the integer form saves the thresholds' block RAM with DSPs FINN's layer does not use
    assert impl["chosen"] == "thresholds" and "more of a resource than FINN's layer" in impl["reason"]
    assert impl["candidates"]["integer"]["available"] and impl["candidates"]["integer"]["DSP"] > impl["candidates"]["thresholds"]["DSP"]
    assert "implementation of layer" in explain_text(doc)


def test_layer_json_carries_the_requantizer():
    (chosen,), _ = choose_implementations([mvau_8bit()])
    doc = chosen.to_json()
    assert doc["impl"] == "auto" and doc["requant"]["shift"] == chosen.requant.shift
    assert doc["requant"]["m"] == [int(v) for v in chosen.requant.m]


def test_requant_multiply_binding_is_the_cheaper_share_and_lint_agrees():
    """One wide multiply per PE goes to DSP or fabric by the part's share;
    the lint's resource bound binds it the same way as the cost."""
    from sira.devices import get_part
    from sira.lint import estimate_resources
    from sira.multipliers import cheaper_multiply

    part = get_part("xc7z020clg400-1")
    narrow, wide = cheaper_multiply(6, 6, part), cheaper_multiply(26, 21, part)
    assert (narrow.impl, wide.impl) == ("lut", "dsp")
    (chosen,), _ = choose_implementations([mvau_8bit()])
    cost = layer_cost(chosen, part)
    res, _ = estimate_resources(chosen, part)
    assert res["DSP"] == cost.dsp
