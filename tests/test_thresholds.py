"""Elementwise chains to exact thresholds (sira/transforms/thresholds/).

Unit tests compare the thresholds of a chain, on every integer of its
range, with references that do not share the module's code: qonnx's own
``int_quant`` in float64 on dyadic parameters (where float64 is exact, so
rounding ties are really hit), Python fractions, and mpmath at 60 digits for
the transcendental activations. Graph tests convert small models and check
them with ``sira.verify_equivalent`` and by feeding every integer of the
accumulator range.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper
from qonnx.custom_op.general.intquant import int_quant

import sira
from sira import numerics as nx
from sira.execute import execute_all, to_float64
from sira.rules.quant import int_limits
from tests.helpers import ZOO_MODELS, zoo_path
from tests.helpers import make_model, quant_node
from sira.transforms.thresholds import (
    BatchNorm,
    Chain,
    Clip,
    ConvertChainsToThresholds,
    ConvertInputQuantToThresholds,
    Divide,
    HardSigmoid,
    LeakyRelu,
    LevelOracle,
    NotConvertible,
    Offset,
    Reflect,
    Relu,
    Requantizer,
    Scale,
    Sigmoid,
    Tanh,
    build_chain,
    convert_chain,
    verify_encoding,
)

MODES = ["ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN"]


def requant(C, scale, zeropt=0.0, bits=2, signed=False, narrow=False, mode="ROUND"):
    """A multi-bit quantizer on C channels, per-tensor scale and zero-point."""
    qmin, qmax = int_limits(signed, narrow, bits)
    return Requantizer(np.full(C, scale, dtype=np.float64), np.full(C, zeropt, dtype=np.float64), qmin, qmax, mode, False, "X")


def chain(ops, rq, C=1):
    return Chain(np.ones(C), np.zeros(C), tuple(ops), rq, C)


def converted_levels(conv, rq, q):
    """Quantizer levels the conversion gives for integer inputs q (C, M)."""
    x = conv.sign[:, None] * q
    return rq.level0 + rq.level_step * conv.encoding.count(x)


def qonnx_levels(v, rq, c=0, bits=2, signed=False, narrow=False):
    """qonnx's float64 Quant on pre-quantizer values v (a reference)."""
    y = int_quant(np.asarray(v, np.float64), rq.scale[c], rq.zeropt[c], np.float64(bits), int(signed), int(narrow), rq.mode)
    return np.round(y / rq.scale[c] + rq.zeropt[c]).astype(np.int64)


# --------------------------------------------------------------------------
# unit: the chain evaluation and the thresholds
# --------------------------------------------------------------------------


def test_half_even_tie_example():
    """round(0.5*acc + 0.5) on [0, 3]: ties at odd acc go to even, giving
    [1, 2, 5]; the midpoint thresholds [0, 2, 4] would be wrong at 0 and 4."""
    rq = requant(1, 1.0, bits=2)
    conv = convert_chain(chain([Scale(np.array([0.5])), Offset(np.array([0.5]))], rq), [-8], [8])
    assert conv.encoding.rows.tolist() == [[1, 2, 5]]
    q = np.arange(-8, 9)[None, :]
    want = qonnx_levels(0.5 * q[0] + 0.5, rq)
    assert np.array_equal(converted_levels(conv, rq, q)[0], want)
    midpoint = (q[0][:, None] >= np.array([0, 2, 4])).sum(axis=1)
    assert not np.array_equal(midpoint, want)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("signed,narrow,zeropt", [(False, False, 0.0), (False, True, 1.0), (True, False, 0.0), (True, True, -1.0)])
def test_rounding_modes_signed_narrow_zeropoint(mode, signed, narrow, zeropt):
    """Every mode, on dyadic parameters whose float64 evaluation is exact and
    lands on ties: agrees with qonnx's int_quant at every integer."""
    k, b, s = np.array([0.375, -0.25]), np.array([0.5, 0.125]), 0.25
    Q = dict(bits=3, signed=signed, narrow=narrow)
    rq = requant(2, s, zeropt, mode=mode, **Q)
    conv = convert_chain(chain([Scale(k), Offset(b)], rq, C=2), [-40, -40], [40, 40])
    q = np.tile(np.arange(-40, 41), (2, 1))
    got = converted_levels(conv, rq, q)
    for c in range(2):
        assert np.array_equal(got[c], qonnx_levels(q[c] * k[c] + b[c], rq, c, **Q)), (mode, c)
    assert conv.sign.tolist() == [1, -1]


def test_negative_scale_is_thresholded_on_negated_input():
    rq = requant(3, 0.5, bits=3)
    k = np.array([0.25, -0.25, -0.0625])
    conv = convert_chain(chain([Scale(k), Relu()], rq, C=3), [-30, -30, -30], [30, 30, 30])
    assert conv.sign.tolist() == [1, -1, -1]
    q = np.tile(np.arange(-30, 31), (3, 1))
    ref = np.stack([qonnx_levels(np.maximum(q[c] * k[c], 0), rq, bits=3) for c in range(3)])
    assert np.array_equal(converted_levels(conv, rq, q), ref)


def test_worked_example_stuck_channel():
    """sira_reference 12.2: channel 0 gives [1, 3, 5]; channel 1
    (0.05 - 0.025*acc on [-6, 6]) always quantizes to 0 - stuck."""
    rq = requant(2, 0.5, bits=2)
    ops = [Scale(np.array([0.25, -0.025])), Offset(np.array([0.2, 0.05])), Relu()]
    conv = convert_chain(chain(ops, rq, C=2), [-8, -6], [8, 6])
    enc = conv.encoding
    assert enc.stuck == (1,)
    assert enc.rows[0].tolist() == [1, 3, 5]
    q = np.array([np.arange(-8, 9), np.clip(np.arange(-8, 9), -6, 6)])
    assert converted_levels(conv, rq, q)[1].tolist() == [0] * 17


def test_identical_rows_merge_and_unreached_levels_drop():
    """Relu into a signed 4-bit quantizer: the negative levels are reached
    everywhere, so their thresholds drop into out_bias; equal channels share
    one row."""
    rq = requant(4, 1.0, bits=4, signed=True)
    conv = convert_chain(chain([Scale(np.full(4, 0.5)), Relu()], rq, C=4), [-10] * 4, [10] * 4)
    enc = conv.encoding
    assert enc.merged and enc.skipped == 8 and enc.dropped_top == 2
    assert enc.rows.tolist() == [[2, 3, 6, 7, 10]]  # round(q/2), half-even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2


def _fraction_levels(f, rq, qs, c=0):
    """Reference: exact rational chain f(q), then clip and round."""
    s, z = Fraction(float(rq.scale[c])), Fraction(float(rq.zeropt[c]))
    return [nx.round_fraction(min(max(f(Fraction(q)) / s + z, Fraction(rq.qmin)), Fraction(rq.qmax)), rq.mode) for q in qs]


@pytest.mark.parametrize(
    "op,fn",
    [
        (LeakyRelu(float(np.float32(0.1))), lambda v: v if v >= 0 else Fraction(float(np.float32(0.1))) * v),
        (HardSigmoid(float(np.float32(0.2)), 0.5), lambda v: min(max(Fraction(float(np.float32(0.2))) * v + Fraction(1, 2), Fraction(0)), Fraction(1))),
        (Clip(-1.5, 2.25), lambda v: min(max(v, Fraction(-3, 2)), Fraction(9, 4))),
    ],
    ids=["LeakyRelu(0.1)", "HardSigmoid", "Clip"],
)
def test_piecewise_activations(op, fn):
    rq = requant(1, 0.1, bits=4, signed=True)
    k = float(np.float32(0.07))
    conv = convert_chain(chain([Scale(np.array([k])), op], rq), [-60], [60])
    qs = np.arange(-60, 61)
    want = _fraction_levels(lambda q: fn(Fraction(k) * q), rq, qs)
    assert converted_levels(conv, rq, qs[None, :])[0].tolist() == want


F32 = st.floats(-4, 4, width=32).filter(lambda v: abs(v) > 2**-10)


def _f(v) -> Fraction:
    return Fraction(float(v))


#: (module op, exact reference) pairs drawn by hypothesis
OPS = st.one_of(
    F32.map(lambda k: (Scale(np.array([k])), lambda v, k=k: v * _f(k))),
    F32.map(lambda k: (Offset(np.array([k])), lambda v, k=k: v + _f(k))),
    F32.map(lambda k: (Reflect(np.array([k])), lambda v, k=k: _f(k) - v)),
    F32.map(lambda k: (Divide(np.array([k])), lambda v, k=k: v / _f(k))),
    st.just((Relu(), lambda v: max(v, Fraction(0)))),
    st.tuples(F32, F32).map(sorted).map(lambda ab: (Clip(*ab), lambda v, ab=ab: min(max(v, _f(ab[0])), _f(ab[1])))),
    F32.map(abs).map(lambda a: (LeakyRelu(a), lambda v, a=a: v if v >= 0 else _f(a) * v)),
    st.tuples(F32, F32).map(lambda ab: (HardSigmoid(*ab), lambda v, ab=ab: min(max(_f(ab[0]) * v + _f(ab[1]), Fraction(0)), Fraction(1)))),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(OPS, min_size=0, max_size=4),
    scale=st.floats(0.015625, 4, width=32),
    zeropt=st.sampled_from([0.0, 1.0, -2.0, 0.5]),
    bits=st.integers(1, 4),
    signed=st.booleans(),
    narrow=st.booleans(),
    mode=st.sampled_from(MODES),
)
def test_random_rational_chains(ops, scale, zeropt, bits, signed, narrow, mode):
    """Random chains of the rational ops (float32 parameters, so neither
    the float screen nor the search can rely on exact float arithmetic)
    agree with a pure-Fraction reference at every integer."""
    if bits == 1 and signed:
        rq = Requantizer(np.array([scale]), np.array([zeropt]), -1, 1, "ROUND", True, "BIPOLAR")
    else:
        rq = requant(1, scale, zeropt, bits=bits, signed=signed, narrow=narrow, mode=mode)
    conv = convert_chain(chain([op for op, _ in ops], rq), [-64], [64])
    qs = range(-64, 65)
    want = []
    for q in qs:
        v = Fraction(q)
        for _, f in ops:
            v = f(v)
        v = v / _f(scale) + _f(zeropt)
        if rq.bipolar:
            want.append(1 if v >= 0 else -1)
        else:
            want.append(nx.round_fraction(min(max(v, Fraction(rq.qmin)), Fraction(rq.qmax)), mode))
    assert converted_levels(conv, rq, np.arange(-64, 65)[None, :])[0].tolist() == want


def _mp_levels(f, rq, qs, c=0):
    """Reference at 60 decimal digits (no value here is that close to a
    rounding boundary)."""
    with mpmath.workdps(60):
        out = []
        for q in qs:
            v = f(mpmath.mpf(int(q))) / mpmath.mpf(float(rq.scale[c])) + mpmath.mpf(float(rq.zeropt[c]))
            v = min(max(v, rq.qmin), rq.qmax)
            out.append(int(mpmath.nint(v)))  # ROUND: nint is half-even, and no ties occur here
        return out


@pytest.mark.parametrize(
    "op,fn,rq",
    [
        (Sigmoid(), lambda v: 1 / (1 + mpmath.exp(-v)), requant(2, 1 / 16, bits=4)),
        (Tanh(), mpmath.tanh, requant(2, 0.125, bits=4, signed=True, narrow=True)),
    ],
    ids=["Sigmoid", "Tanh"],
)
def test_transcendental_activations(op, fn, rq):
    k = np.array([float(np.float32(0.013)), -float(np.float32(0.029))])
    conv = convert_chain(chain([Scale(k), op], rq, C=2), [-300, -300], [300, 300])
    qs = np.arange(-300, 301)
    got = converted_levels(conv, rq, np.tile(qs, (2, 1)))
    for c in range(2):
        assert got[c].tolist() == _mp_levels(lambda v: fn(mpmath.mpf(k[c]) * v), rq, qs), c


@pytest.mark.parametrize("mode,at_zero", [("ROUND", 2), ("HALF_UP", 3)])
def test_exact_tie_after_sigmoid(mode, at_zero):
    """5 * Sigmoid(0) = 2.5 is an exact tie: the rounding mode decides it
    (half-even 2, half-up 3). Interval refinement alone could never
    separate it from the boundary; Sigmoid is exact at 0."""
    rq = requant(1, 1.0, bits=3, mode=mode)
    conv = convert_chain(chain([Scale(np.array([0.5])), Sigmoid(), Scale(np.array([5.0]))], rq), [-4], [4])
    qs = np.arange(-4, 5)
    got = converted_levels(conv, rq, qs[None, :])[0].tolist()
    assert got[4] == at_zero
    others = _mp_levels(lambda v: 5 / (1 + mpmath.exp(-v / 2)), rq, qs)
    assert got[:4] + got[5:] == others[:4] + others[5:]


def test_batchnorm_with_irrational_multiplier():
    gamma, beta, mean, var = (np.array([v], dtype=np.float64) for v in (0.7, 0.1, 3.0, 2.0))
    bn = BatchNorm(gamma, beta, mean, var, float(np.float32(1e-5)))
    rq = requant(1, 0.25, bits=4, signed=True)
    conv = convert_chain(chain([bn], rq), [-40], [40])
    qs = np.arange(-40, 41)
    eps = mpmath.mpf(float(np.float32(1e-5)))
    want = _mp_levels(lambda v: (v - 3) * mpmath.mpf(0.7) / mpmath.sqrt(2 + eps) + mpmath.mpf(0.1), rq, qs)
    assert converted_levels(conv, rq, qs[None, :])[0].tolist() == want


def test_wrong_thresholds_are_caught():
    """The verification is independent of the search: a threshold moved by
    one is reported, whether checked exhaustively or at thresholds +-1."""
    rq = requant(1, 1.0, bits=2)
    ch = chain([Scale(np.array([0.5])), Offset(np.array([0.5]))], rq)
    enc = convert_chain(ch, [-8], [8]).encoding
    bad = dataclasses.replace(enc, rows=np.array([[1, 2, 4]]))
    oracle = LevelOracle(ch, np.ones(1, dtype=np.int64))
    for limit in (2**20, 0):
        with pytest.raises(sira.SiraError, match="integer input 4: the chain gives level index 2, the thresholds 3"):
            verify_encoding(oracle, bad, np.array([-8]), np.array([8]), limit)


def test_thresholds_beyond_float32_are_stored_in_float64():
    """A wide accumulator (a join aligned on a fine common grid) has
    thresholds float32 cannot hold: they are kept, stored as float64, and
    the stored encoding is verified like any other."""
    from sira.transforms.thresholds.search import storage_dtype

    rq = requant(1, 2.0**22, bits=4, signed=True)  # level 7 from 6.5 * 2**22 on
    conv = convert_chain(chain([], rq), [-(2**25)], [2**25])
    rows = conv.encoding.rows
    assert storage_dtype(rows) is np.float64 and int(rows.max()) == 13 * 2**21 + 1  # 6.5 rounds to even
    assert np.array_equal(rows.astype(np.float64).astype(np.int64), rows)
    assert storage_dtype(np.array([[2**24 - 1]])) is np.float32
    with pytest.raises(NotConvertible, match="2\\*\\*53"):
        convert_chain(chain([], rq), [-(2**53)], [0])


def test_bipolar_requantizer():
    rq = Requantizer(np.ones(1), np.zeros(1), -1, 1, "ROUND", True, "BIPOLAR")
    conv = convert_chain(chain([Offset(np.array([-2.5]))], rq), [-5], [5])
    assert conv.encoding.rows.tolist() == [[3]]
    assert converted_levels(conv, rq, np.array([[2, 3]]))[0].tolist() == [-1, 1]


# --------------------------------------------------------------------------
# graph level
# --------------------------------------------------------------------------

INT4_SPEC = {"inputs": {"*": {"datatype": "INT4"}}}


def layer_model(tail_nodes, tail_inits, K=6, N=4, seed=0, batch=1, x_input=False):
    """x (int4) -> Quant(unit) -> MatMul(integer W) -> tail -> 'y'; with
    ``x_input`` the tail reads the graph input directly (an integer input
    standing for the accumulator)."""
    rng = np.random.default_rng(seed)
    inits = {"one": np.float32(1.0), "zero": np.float32(0.0), "four": np.float32(4.0)}
    inits.update(tail_inits)
    if x_input:
        nodes = list(tail_nodes)
        return make_model(nodes, {"acc": [batch, N]}, {"y": [batch, N]}, inits)
    inits["W"] = rng.integers(-3, 4, size=(K, N)).astype(np.float32)
    nodes = [quant_node("x", "one", "zero", "four", "xq"), helper.make_node("MatMul", ["xq", "W"], ["acc"])] + list(tail_nodes)
    return make_model(nodes, {"x": [batch, K]}, {"y": [batch, N]}, inits)


def standard_tail(s, b, s2=0.5, bits=4, act="Relu"):
    nodes = [helper.make_node("Mul", ["acc", "s"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"])]
    nodes.append(helper.make_node(act, ["a"], ["r"]))
    nodes.append(quant_node("r", "s2", "zero", "bits", "y", signed=0))
    return nodes, {"s": np.asarray(s, np.float32), "b": np.asarray(b, np.float32), "s2": np.float32(s2), "bits": np.float32(bits)}


def ops_of(model):
    return [n.op_type for n in model.graph.node]


def test_layer_to_multithreshold_verified():
    nodes, inits = standard_tail([0.125, 0.0625, -0.25, 0.03125], [0.5, -1.25, 0.0, 2.0])
    m = layer_model(nodes, inits)
    p = ConvertChainsToThresholds(INT4_SPEC)
    out = m.transform(p)
    assert "Quant" not in ops_of(out) and ops_of(out).count("MultiThreshold") == 2
    layer = next(c for c in p.report.converted if c.input == "acc")
    assert layer.nodes[-1].startswith("Quant") and len(layer.nodes) == 4
    assert layer.negated_channels == [2] and "exhaustive" in layer.verified
    result = sira.verify_equivalent(m, out, INT4_SPEC, samples=200, label="thresholds")
    assert result.ok


def _exhaustive(m, out, spec_lo, spec_hi, N):
    """Feed every integer of [lo, hi] to every channel of both models."""
    x = np.repeat(np.arange(spec_lo, spec_hi + 1, dtype=np.float64)[:, None], N, axis=1)
    a = execute_all(to_float64(m), {"acc": x})["y"]
    b = execute_all(to_float64(out), {"acc": x})["y"]
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "act,s,b,s2,bits",
    [
        ("Relu", [0.1, -0.07, 0.013, 0.5], [0.3, 0.2, -1.0, 0.0], 0.25, 4),
        ("Sigmoid", [0.02, -0.03, 0.05, 0.001], [0.0, 0.1, -0.2, 0.0], 1 / 16, 4),
        ("Tanh", [0.01, 0.02, -0.04, 0.3], [0.0, 0.0, 0.05, 0.0], 1 / 8, 3),
    ],
)
def test_every_accumulator_value(act, s, b, s2, bits):
    """The accumulator as an integer graph input: every integer of its
    range, original (float64) vs converted, bit-identical."""
    lo, hi = -400, 400
    nodes, inits = standard_tail(s, b, s2, bits, act)
    N = 4
    batch = hi - lo + 1
    m = layer_model(nodes, inits, x_input=True, batch=batch)
    spec = {"inputs": {"acc": {"int_min": lo, "int_max": hi}}}
    out = m.transform(ConvertChainsToThresholds(spec))
    assert ops_of(out).count("MultiThreshold") == 1 and "Quant" not in ops_of(out)
    _exhaustive(m, out, lo, hi, N)


@pytest.mark.parametrize(
    "shape,param_shape,layout",
    [((1, 3, 2, 2), (3, 1, 1), b"NCHW"), ((1, 5, 3), (3,), b"NWC"), ((2, 3, 4), (3, 1), b"NCW")],
)
def test_channel_axis_follows_the_parameters(shape, param_shape, layout):
    """The channel axis is where the per-channel parameters vary (numpy
    broadcasting), written into data_layout for qonnx's MultiThreshold."""
    C = int(np.prod(param_shape))
    nodes = [helper.make_node("Mul", ["acc", "s"], ["m"]), helper.make_node("Relu", ["m"], ["r"]), quant_node("r", "s2", "zero", "bits", "y", signed=0)]
    inits = {"s": np.linspace(-0.3, 0.4, C).astype(np.float32).reshape(param_shape), "s2": np.float32(0.5), "zero": np.float32(0.0), "bits": np.float32(3)}
    m = make_model(nodes, {"acc": list(shape)}, {"y": list(shape)}, inits)
    spec = {"inputs": {"acc": {"int_min": -30, "int_max": 30}}}
    p = ConvertChainsToThresholds(spec)
    out = m.transform(p)
    (mt,) = [n for n in out.graph.node if n.op_type == "MultiThreshold"]
    assert helper.get_attribute_value(next(a for a in mt.attribute if a.name == "data_layout")) == layout
    assert p.report.converted[0].rows == C
    assert sira.verify_equivalent(m, out, spec, samples=100).ok


def test_per_channel_quantizer_and_zero_point_keep_float_arithmetic():
    """A per-channel quantizer scale cannot be a scalar out_scale: the
    MultiThreshold gives levels, Add(-z) and Mul(s) repeat (L - z) * s."""
    nodes = [helper.make_node("Mul", ["acc", "s"], ["m"]), quant_node("m", "s2", "z", "bits", "y", signed=1, narrow=1, rounding_mode="HALF_UP")]
    inits = {"s": np.float32(0.1), "s2": np.array([0.5, 0.25, 0.75, 1.0], np.float32), "z": np.float32(2.0), "bits": np.float32(4)}
    m = layer_model(nodes, inits, x_input=True, batch=301)
    spec = {"inputs": {"acc": {"int_min": -150, "int_max": 150}}}
    out = m.transform(ConvertChainsToThresholds(spec))
    assert ops_of(out) == ["MultiThreshold", "Add", "Mul"]
    _exhaustive(m, out, -150, 150, 4)


def test_batchnorm_layer_and_scalar_output_attributes():
    nodes = [
        helper.make_node("BatchNormalization", ["acc", "g", "be", "mu", "var"], ["bn"], epsilon=1e-3),
        quant_node("bn", "s2", "zero", "bits", "y", signed=1),
    ]
    rng = np.random.default_rng(3)
    inits = {
        "g": rng.uniform(-2, 2, 4).astype(np.float32),
        "be": rng.uniform(-1, 1, 4).astype(np.float32),
        "mu": rng.uniform(-5, 5, 4).astype(np.float32),
        "var": rng.uniform(0.5, 30, 4).astype(np.float32),
        "s2": np.float32(0.125),
        "bits": np.float32(3),
    }
    m = layer_model(nodes, inits)
    p = ConvertChainsToThresholds(INT4_SPEC)
    out = m.transform(p)
    mt = [n for n in out.graph.node if n.op_type == "MultiThreshold"][-1]
    attrs = {a.name: helper.get_attribute_value(a) for a in mt.attribute}
    assert attrs["out_scale"] == pytest.approx(0.125) and attrs["data_layout"] == b"NC"
    assert sira.verify_equivalent(m, out, INT4_SPEC, samples=200).ok


def test_non_monotone_chain_is_left_with_a_note():
    nodes = [helper.make_node("LeakyRelu", ["acc"], ["l"], alpha=-0.5), quant_node("l", "s2", "zero", "bits", "y", signed=0)]
    m = layer_model(nodes, {"s2": np.float32(0.5), "bits": np.float32(4)})
    p = ConvertChainsToThresholds(INT4_SPEC)
    out = m.transform(p)
    assert ops_of(out).count("LeakyRelu") == 1 and ops_of(out).count("MultiThreshold") == 1  # the input quantizer only
    (note,) = p.report.unconverted
    assert "not monotone" in note.reason and note.nodes[0].startswith("LeakyRelu")
    with pytest.raises(NotConvertible, match="not monotone"):
        ra = sira.analyze(m, INT4_SPEC)
        build_chain([n for n in m.graph.node if n.op_type in ("LeakyRelu", "Quant")][-2:], ra, "acc", on_grid=False)


def test_fork_ends_the_chain_and_non_integer_start_is_reported():
    """The scaled tensor 'm' is also a graph output, so the chain cannot
    absorb the Mul; its own input 'm' is not an integer."""
    nodes = [helper.make_node("Mul", ["acc", "s"], ["m"]), helper.make_node("Relu", ["m"], ["r"]), quant_node("r", "s2", "zero", "bits", "y", signed=0)]
    inits = {"s": np.float32(0.3), "s2": np.float32(0.5), "zero": np.float32(0.0), "bits": np.float32(4)}
    m = make_model(nodes, {"acc": [1, 4]}, {"y": [1, 4], "m": [1, 4]}, inits)
    p = ConvertChainsToThresholds({"inputs": {"acc": {"int_min": -9, "int_max": 9}}})
    out = m.transform(p)
    assert "MultiThreshold" not in ops_of(out)
    assert "aggregate" in p.report.unconverted[0].reason


# --------------------------------------------------------------------------
# the input quantizer
# --------------------------------------------------------------------------

PIXELS = {"inputs": {"*": {"datatype": "UINT8", "scale": "1/255"}}}


def tfc_like():
    """uint8/255 pixels -> Reshape -> Mul(2) -> Sub(1) -> 2-bit narrow
    Quant (as in the TFC zoo models) -> MatMul -> BatchNorm -> Quant."""
    rng = np.random.default_rng(7)
    inits = {
        "shape": np.array([1, -1], dtype=np.int64),
        "two": np.float32(2.0),
        "one": np.float32(1.0),
        "zero": np.float32(0.0),
        "bits": np.float32(2.0),
        "W": rng.integers(-1, 2, size=(12, 5)).astype(np.float32),
        "g": rng.uniform(0.5, 2, 5).astype(np.float32) * np.array([1, -1, 1, 1, -1], np.float32),
        "be": rng.uniform(-1, 1, 5).astype(np.float32),
        "mu": rng.uniform(-2, 2, 5).astype(np.float32),
        "var": rng.uniform(1, 9, 5).astype(np.float32),
    }
    nodes = [
        helper.make_node("Reshape", ["img", "shape"], ["flat"]),
        helper.make_node("Mul", ["flat", "two"], ["x2"]),
        helper.make_node("Sub", ["x2", "one"], ["centered"]),
        quant_node("centered", "one", "zero", "bits", "xq", signed=1, narrow=1),
        helper.make_node("MatMul", ["xq", "W"], ["acc"]),
        helper.make_node("BatchNormalization", ["acc", "g", "be", "mu", "var"], ["bn"]),
        quant_node("bn", "one", "zero", "bits", "y", signed=1, narrow=1),
    ]
    return make_model(nodes, {"img": [1, 1, 3, 4]}, {"y": [1, 5]}, inits)


def test_input_quantizer_becomes_thresholds_on_raw_pixels():
    m = tfc_like()
    p = ConvertInputQuantToThresholds(PIXELS)
    spec_ref = p.output_spec  # filled in place by apply
    out = m.transform(p)
    assert ops_of(out)[:2] == ["Reshape", "MultiThreshold"]
    (conv,) = p.report.converted
    assert conv.nodes[0].startswith("Mul") and conv.rows == 1
    thr = next(i for i in out.graph.initializer if i.name == out.graph.node[1].input[1])
    # 2q/255 - 1 reaches -0.5 at q = 63.75 and 0.5 at q = 191.25
    assert np.frombuffer(thr.raw_data, np.float32).tolist() == [64.0, 192.0]
    assert out.get_tensor_datatype("img").name == "UINT8"
    assert spec_ref["img"] == {"int_min": 0, "int_max": 255}
    feed = {"img": np.array([[[[0, 1, 63, 64], [191, 192, 254, 255], [7, 100, 128, 200]]]]) / 255.0}
    assert p.feed_map(feed)["img"].ravel().tolist() == [0, 1, 63, 64, 191, 192, 254, 255, 7, 100, 128, 200]
    assert sira.verify_equivalent(m, out, PIXELS, samples=200, feed_map=p.feed_map, label="input").ok
    # the converted model analyzes with the new spec; the layer converts next
    p2 = ConvertChainsToThresholds(spec_ref)
    final = out.transform(p2)
    assert ops_of(final).count("MultiThreshold") == 2 and "Quant" not in ops_of(final)
    assert p2.report.converted[0].negated_channels == [1, 4]
    assert sira.verify_equivalent(m, final, PIXELS, samples=200, feed_map=p.feed_map, label="layers").ok


def test_input_without_grid_is_reported():
    m = tfc_like()
    p = ConvertInputQuantToThresholds((0.0, 1.0))
    out = m.transform(p)
    assert ops_of(out) == ops_of(m)
    assert "no integer grid" in p.report.unconverted[0].reason


def test_zoo_tfc_fully_thresholded():
    """TFC_2W2A: the input quantizer and all three hidden layers (BatchNorm
    with negative gammas) become MultiThresholds, equivalent on samples."""
    path = zoo_path("TFC_2W2A")
    spec = ZOO_MODELS["TFC_2W2A"][1]
    m = sira.load(path)
    p = ConvertInputQuantToThresholds(spec)
    mid = m.transform(p)
    p2 = ConvertChainsToThresholds(p.output_spec)
    out = mid.transform(p2)
    assert len(p.report.converted) == 1 and len(p2.report.converted) == 3 and not p2.report.unconverted
    assert ops_of(out).count("MultiThreshold") == 4
    assert sira.verify_equivalent(m, out, spec, samples=10, feed_map=p.feed_map).ok


@pytest.mark.parametrize("mode, zeropt", [("FLOOR", 0.0), ("ROUND", 2.0), ("CEIL", -3.0)])
def test_trunc_v2_chain_becomes_exact_thresholds(mode, zeropt):
    """A TruncAvgPool-style Trunc (v2: rounding to its input grid, division by
    the power of two its output scale implies, clip, rounding mode) after an
    integer MatMul becomes a MultiThreshold; optimize checks it against the
    reference semantics on every input."""
    from tests.helpers import QONNX_DOMAIN, make_model, quant_node

    rng = np.random.default_rng(11)
    inits = {
        "s": np.float32(0.5), "z": np.float32(0), "b": np.float32(4),
        "w": rng.integers(-3, 4, size=(6, 4)).astype(np.float32),
        "ts": np.float32(0.5), "tz": np.float32(zeropt), "ib": np.float32(10), "os": np.float32(0.5 * 8), "ob": np.float32(4),
    }  # fmt: skip
    nodes = [
        quant_node("x", "s", "z", "b", "q", signed=0),
        helper.make_node("MatMul", ["q", "w"], ["acc"]),
        helper.make_node("Trunc", ["acc", "ts", "tz", "ib", "os", "ob"], ["y"], domain=QONNX_DOMAIN, rounding_mode=mode, signed=1),
    ]
    m = make_model(nodes, {"x": (1, 6)}, {"y": None}, inits)
    next(o for o in m.model.opset_import if o.domain == QONNX_DOMAIN).version = 2
    optimized, report = sira.optimize(m, (0.0, 8.0), samples=200)
    kinds = [n.op_type for n in optimized.graph.node]
    assert "Trunc" not in kinds and "MultiThreshold" in kinds, kinds


@pytest.mark.parametrize("out_scale,out_bias,out_dtype", [(1.0, 0.0, "UINT2"), (1.0, -2.0, "INT2"), (2.0, -1.0, "BIPOLAR")])
def test_affine_chain_into_an_existing_multithreshold(out_scale, out_bias, out_dtype):
    """A float MultiThreshold after elementwise ops (FINN's tidied form of a
    quantizer, the layer's scale and bias in front of it) ends a chain: the
    ops and its float thresholds become one MultiThreshold on the integer,
    every integer of the range giving the same output."""
    steps = 1 if out_dtype == "BIPOLAR" else 3
    thresholds = np.array([[-0.8, 0.1, 0.75], [0.0, 0.5, 1.0], [-2.0, -0.25, 3.5], [0.3, 0.3, 0.9]], dtype=np.float32)[:, :steps]
    nodes = [helper.make_node("Mul", ["acc", "s"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("MultiThreshold", ["a", "t"], ["y"], domain="qonnx.custom_op.general", out_dtype=out_dtype,
                              out_scale=out_scale, out_bias=out_bias, data_layout="NC")]  # fmt: skip
    inits = {"s": np.array([0.013, -0.02, 0.0075, 0.031], np.float32), "b": np.array([0.2, -0.1, 0.0, 0.05], np.float32), "t": thresholds}
    lo, hi = -300, 300
    m = make_model(nodes, {"acc": [hi - lo + 1, 4]}, {"y": [hi - lo + 1, 4]}, inits)
    spec = {"inputs": {"acc": {"int_min": lo, "int_max": hi}}}
    p = ConvertChainsToThresholds(spec)
    out = m.transform(p)
    assert ops_of(out).count("MultiThreshold") == 1 and "Add" not in ops_of(out)
    (conv,) = p.report.converted
    assert conv.nodes[-1] == "MultiThreshold(y)" and conv.negated_channels == [1]
    _exhaustive(m, out, lo, hi, 4)


def test_a_multithreshold_alone_is_no_chain():
    """A MultiThreshold right on the integer is left as it is."""
    t = np.array([[1, 2, 3]] * 4, dtype=np.float32)
    mt = helper.make_node("MultiThreshold", ["acc", "t"], ["y"], domain="qonnx.custom_op.general", out_dtype="UINT2", data_layout="NC")
    m = make_model([mt], {"acc": [1, 4]}, {"y": [1, 4]}, {"t": t})
    p = ConvertChainsToThresholds({"inputs": {"acc": {"int_min": -5, "int_max": 5}}})
    m.transform(p)
    assert not p.report.converted and not p.report.unconverted
