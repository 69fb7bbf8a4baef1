"""Exact elementwise semantics (sira/semantics.py) and QONNX rounding
(sira/numerics.py).

Each op's three views must agree: the float64 screen ``bounds`` encloses the
exact value ``enclose`` gives, and exact values move in the op's proved
``direction``. References are independent: Python fractions for rational
ops, mpmath at 200 digits for the transcendental ones, qonnx's own
``resolve_rounding_mode`` for the float rounding qonnx executes.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qonnx.custom_op.general.intquant import resolve_rounding_mode

from sira import numerics as nx
from sira.errors import RuleError
from sira.range import ScaledIntRange
from sira.semantics import (
    SEMANTICS,
    BatchNorm,
    Clip,
    Divide,
    HardSigmoid,
    LeakyRelu,
    NotMonotone,
    Offset,
    OpNode,
    Reflect,
    Relu,
    Scale,
    Sigmoid,
    Tanh,
    batchnorm_bounds,
)
from tests.helpers import quant_node
from tests.rules_harness import rule_outputs
from sira.transforms.thresholds import CHAIN_OPS

MODES = list(nx.ROUNDING_MODES)
F32 = st.floats(-4, 4, width=32).filter(lambda v: abs(v) > 2**-10)
POINT = st.floats(-300, 300, width=32)

#: one instance of every op class, with parameters that exercise its sign
OPS = [
    Scale(np.array([-0.375])),
    Offset(np.array([0.1])),
    Reflect(np.array([2.5])),
    Divide(np.array([-3.0])),
    BatchNorm(np.array([-0.7]), np.array([0.25]), np.array([1.5]), np.array([0.3]), float(np.float32(1e-5))),
    Relu(),
    Clip(-1.5, 2.25),
    LeakyRelu(float(np.float32(0.1))),
    HardSigmoid(float(np.float32(0.2)), 0.5),
    Sigmoid(),
    Tanh(),
]


def _screen(op, x: float) -> tuple[float, float]:
    lo, hi = op.bounds(np.array([x]), np.array([x]), np.array([0]))
    return float(np.ravel(lo)[0]), float(np.ravel(hi)[0])


def test_every_chain_op_has_one_semantics_entry():
    assert CHAIN_OPS == frozenset(SEMANTICS)
    assert {"Mul", "Add", "Sub", "Div", "BatchNormalization", "Relu", "Clip", "LeakyRelu", "HardSigmoid", "Sigmoid", "Tanh", "Identity"} <= CHAIN_OPS


@pytest.mark.parametrize("op", OPS, ids=lambda op: type(op).__name__)
@settings(max_examples=40, deadline=None)
@given(x=POINT)
def test_screen_encloses_the_exact_value(op, x):
    """At 512 bits the exact enclosure is far narrower than the screen's
    outward rounding, so it must lie inside it."""
    lo, hi = op.enclose(0, Fraction(x), Fraction(x), 512)
    s_lo, s_hi = _screen(op, x)
    assert Fraction(s_lo) <= lo <= hi <= Fraction(s_hi)


@pytest.mark.parametrize("op", OPS, ids=lambda op: type(op).__name__)
@settings(max_examples=40, deadline=None)
@given(a=POINT, b=POINT)
def test_exact_values_move_in_the_proved_direction(op, a, b):
    a, b = sorted((Fraction(a), Fraction(b)))
    ya, yb = op.enclose(0, a, a, 200), op.enclose(0, b, b, 200)
    d = int(np.ravel(op.direction())[0])
    if d > 0:
        assert ya[0] <= yb[1]
    elif d < 0:
        assert yb[0] <= ya[1]
    else:
        assert ya == yb


@pytest.mark.parametrize(
    "op, reference",
    [(Sigmoid(), lambda v: 1 / (1 + mpmath.exp(-v))), (Tanh(), mpmath.tanh)],
    ids=["Sigmoid", "Tanh"],
)
@pytest.mark.parametrize("x", [-40.0, -3.0, -2**-20, 0.0, 0.75, 5.5, 200.0])
def test_transcendental_enclosures_hold_the_true_value(op, reference, x):
    with mpmath.workdps(200):
        want = reference(mpmath.mpf(x))
        for prec in (16, 64, 256):
            lo, hi = op.enclose(0, Fraction(x), Fraction(x), prec)
            assert mpmath.mpf(lo.numerator) / lo.denominator <= want <= mpmath.mpf(hi.numerator) / hi.denominator
            if x != 0:
                assert hi - lo < Fraction(1, 2 ** (prec // 2))


@settings(max_examples=60, deadline=None)
@given(gamma=F32, beta=F32, mean=F32, var=st.floats(2**-10, 16, width=32), lo=POINT, hi=POINT)
def test_batchnorm_bounds_enclose_the_exact_map(gamma, beta, mean, var, lo, hi):
    """The bounds of the BatchNormalization rule (exact directed roundings)
    and of the threshold screen (each step rounded and moved one float
    outward), on an interval and on a point."""
    lo, hi = sorted((lo, hi))
    eps = float(np.float32(1e-5))
    bn = BatchNorm(*(np.array([v]) for v in (gamma, beta, mean, var)), eps)
    ch = np.zeros(1, dtype=np.int64)
    boxes = [batchnorm_bounds(np.array(lo), np.array(hi), gamma, beta, mean, var, eps), bn.bounds(np.array([lo]), np.array([hi]), ch)]
    with mpmath.workdps(60):
        root = mpmath.sqrt(mpmath.mpf(var) + mpmath.mpf(eps))
        for x in (lo, hi):
            y = (mpmath.mpf(x) - mpmath.mpf(mean)) * mpmath.mpf(gamma) / root + mpmath.mpf(beta)
            for b_lo, b_hi in boxes + [bn.bounds(np.array([x]), np.array([x]), ch)]:
                assert mpmath.mpf(float(np.ravel(b_lo)[0])) <= y <= mpmath.mpf(float(np.ravel(b_hi)[0]))


def _node(op_type: str, inputs=("x",), consts=None, data=0, shape=(1, 3), **attrs) -> OpNode:
    consts = consts or {}
    return OpNode(
        f"{op_type}_0",
        tuple(inputs),
        data,
        shape,
        lambda name, default: attrs.get(name, default),
        lambda i: None if consts.get(i) is None else np.asarray(consts[i], dtype=np.float64),
    )


def _build(op_type: str, node: OpNode):
    entry = SEMANTICS[op_type]
    params = {k: np.broadcast_to(v, (1, node.shape[1])).reshape(-1) if v.size > 1 else v.reshape(-1) for k, v in entry.read(node).items()}
    return entry.build(node, params)


def test_entries_read_their_parameters_from_the_node():
    sub = _build("Sub", _node("Sub", ("c", "x"), {0: [[1.0, 2.0, 3.0]]}, data=1))
    assert isinstance(sub, Reflect) and list(sub.k) == [1.0, 2.0, 3.0]
    sub = _build("Sub", _node("Sub", ("x", "c"), {1: [[1.0, 2.0, 3.0]]}))
    assert isinstance(sub, Offset) and list(sub.k) == [-1.0, -2.0, -3.0]
    clip = _build("Clip", _node("Clip", ("x", "", "hi"), {2: 6.0}))
    assert (clip.low, clip.high) == (None, 6.0)
    clip = _build("Clip", _node("Clip", min=-1.0, max=1.0))
    assert (clip.low, clip.high) == (-1.0, 1.0)
    assert _build("LeakyRelu", _node("LeakyRelu", alpha=0.1)).alpha == float(np.float32(0.1))
    assert _build("Identity", _node("Identity")) is None


@pytest.mark.parametrize(
    "op_type, node, reason",
    [
        ("Div", _node("Div", ("c", "x"), {0: 2.0}, data=1), "divisor"),
        ("Div", _node("Div", ("x", "c"), {1: 0.0}), "division by zero"),
        ("LeakyRelu", _node("LeakyRelu", alpha=-0.5), "not monotone"),
        ("BatchNormalization", _node("BatchNormalization", ("x", "g", "b", "m", "v"), {1: 1.0, 2: 0.0, 3: 0.0, 4: -1.0}), "variance"),
    ],
)
def test_entries_reject_what_is_not_monotone(op_type, node, reason):
    with pytest.raises(NotMonotone, match=reason):
        _build(op_type, node)


# --------------------------------------------------------------------------
# one QONNX rounding
# --------------------------------------------------------------------------

TIES = [0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994, -0.49999999999999994, 2.0**52 + 1, 0.0, -0.0, 3.75, -3.25]


@pytest.mark.parametrize("mode", MODES)
def test_float_rounding_is_the_exact_rounding_of_each_float(mode):
    v = np.array(TIES + list(np.linspace(-5, 5, 81)))
    want = [nx.round_fraction(Fraction(float(x)), mode) for x in v]
    assert nx.round_floats(v, mode).tolist() == want


@settings(max_examples=200, deadline=None)
@given(x=st.floats(-1e6, 1e6), mode=st.sampled_from(MODES))
def test_float_rounding_agrees_with_rational_rounding(x, mode):
    assert int(nx.round_floats(np.array([x]), mode)[0]) == nx.round_fraction(Fraction(x), mode)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
def test_rounding_as_qonnx_executes_it_is_qonnx_bit_for_bit(mode, dtype):
    v = np.concatenate([np.array(TIES), np.linspace(-5, 5, 81), np.nextafter(np.array([0.5, -0.5, 2.5]), 0)]).astype(dtype)
    got = nx.round_floats(v, mode, as_qonnx_executes=True)
    want = resolve_rounding_mode(mode)(v)
    assert got.dtype == want.dtype and np.array_equal(got, want)


def test_qonnx_half_up_can_differ_from_the_exact_rounding():
    """qonnx adds 0.5 in float: 0.49999999999999994 + 0.5 rounds to 1."""
    v = np.array([0.49999999999999994])
    assert nx.round_floats(v, "HALF_UP")[0] == 0 == nx.round_fraction(Fraction(float(v[0])), "HALF_UP")
    assert nx.round_floats(v, "HALF_UP", as_qonnx_executes=True)[0] == 1


def test_unknown_rounding_modes_are_rejected_everywhere():
    for call in (lambda: nx.round_fraction(Fraction(1, 2), "NEAREST"), lambda: nx.round_floats(np.zeros(1), "NEAREST"), lambda: nx.rounding_mode("NEAREST")):
        with pytest.raises(ValueError, match="unknown rounding mode"):
            call()
    assert nx.rounding_mode("half_even") == "HALF_EVEN"


@pytest.mark.parametrize("mode", MODES)
def test_quantize_fraction_clips_then_rounds(mode):
    s, z = Fraction(1, 4), Fraction(1, 2)
    for x in [Fraction(k, 8) for k in range(-40, 41)]:
        v = min(max(x / s + z, Fraction(-4)), Fraction(3))
        assert nx.quantize_fraction(x, s, z, -4, 3, mode) == nx.round_fraction(v, mode)


def test_trunc_step_is_the_power_of_two_nearest_in_log():
    assert nx.trunc_step(np.array([0.25, 1.0]), np.array([1.0, 0.7])).tolist() == [4.0, 0.5]


def test_a_quant_node_with_an_unknown_mode_is_a_rule_error():
    node = quant_node("x", "s", "z", "b", "y", signed=1, rounding_mode="NEAREST")
    args = [ScaledIntRange.real((1,), -1.0, 1.0)] + [ScaledIntRange.constant(np.asarray(v, dtype=np.float32)) for v in (0.25, 0.0, 4.0)]
    with pytest.raises(RuleError, match="unknown rounding_mode"):
        rule_outputs(node, args, [(1,)])
