"""Pooling, reduction, Softmax, TopK and ArgMax rules, checked against
execution: random shapes and geometries (hypothesis), per-channel real
ranges, scaled-integer grids (input specs with positive and negative
scales, and Quant nodes). Every model is executed on a batch holding the
corner inputs (all-lo, all-hi), a random lo/hi mixture and a random interior
point; every value must lie inside its range and on its integer grid, and
exact rules must attain their bounds at the corners."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import sira
from sira import ScaledIntRange
from sira.errors import RuleError, SiraError
from tests.helpers import make_model, quant_node
from tests.rules_harness import assert_attains, check_ranges, rule_outputs

BATCH = 4  # all-lo, all-hi, lo/hi mixture, random interior
SETTINGS = settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
SCALES = [0.25, 0.5, 1.0, 2.0]


# --------------------------------------------------------------------------
# model inputs: per-channel real ranges, grids, or a Quant in front
# --------------------------------------------------------------------------


@st.composite
def input_source(draw, channels: int, allow_negative_scale: bool = True):
    """(spec entry for input 'x', extra nodes, initializers, name of the
    tensor the op under test reads)."""
    kind = draw(st.sampled_from(["real", "grid", "quant"]))
    if kind == "real":
        a = draw(st.lists(st.integers(-64, 64), min_size=channels, max_size=channels))
        w = draw(st.lists(st.integers(0, 64), min_size=channels, max_size=channels))
        lo = [v / 8 for v in a]
        return {"min": lo, "max": [v + d / 8 for v, d in zip(lo, w)], "axis": 1}, [], {}, "x"
    if kind == "grid":
        signs = [-1.0, 1.0] if allow_negative_scale else [1.0]
        scale = [draw(st.sampled_from(SCALES)) * draw(st.sampled_from(signs)) for _ in range(channels)]
        bias = [draw(st.integers(-8, 8)) / 4 for _ in range(channels)]
        qlo = draw(st.integers(-20, 20))
        return {"int_min": qlo, "int_max": qlo + draw(st.integers(0, 30)), "scale": scale, "bias": bias, "axis": 1}, [], {}, "x"
    bits = draw(st.integers(2, 6))
    signed = draw(st.booleans())
    scale = np.array([draw(st.sampled_from(SCALES)) for _ in range(channels)], dtype=np.float32)
    inits = {"qs": scale, "qz": np.float32(0), "qb": np.float32(bits)}
    lo, hi = sorted(draw(st.integers(-40, 40)) / 4 for _ in range(2))
    return {"min": lo, "max": hi}, [quant_node("x", "qs", "qz", "qb", "xq", signed=int(signed))], inits, "xq"


def _reshape_quant_scale(inits: dict, ndim: int) -> dict:
    """Lay a per-channel Quant scale along axis 1 of a rank-``ndim`` input."""
    if "qs" in inits:
        inits = dict(inits, qs=inits["qs"].reshape((1, -1) + (1,) * (ndim - 2)))
    return inits


def corner_batch(r: ScaledIntRange, rng: np.random.Generator) -> np.ndarray:
    """Batch of inputs inside ``r`` (batch axis 0 of size BATCH): all-lo,
    all-hi, a random lo/hi mixture and a random point (on the grid if any)."""
    shape = (1,) + r.shape[1:]
    lo, hi = np.broadcast_to(r.lo[:1], shape), np.broadcast_to(r.hi[:1], shape)
    mix = np.where(rng.random(shape) < 0.5, lo, hi)
    if r.is_scaled_int:
        qlo, qhi = np.broadcast_to(r.int_lo[:1], shape), np.broadcast_to(r.int_hi[:1], shape)
        q = rng.integers(qlo, qhi + 1)
        inner = np.broadcast_to(r.scale[:1], shape) * q + np.broadcast_to(r.bias[:1], shape)
    else:
        inner = rng.uniform(lo, hi)
    return np.concatenate([lo, hi, mix, inner]).astype(np.float32)


def check(model, spec: dict, outputs: list[str], attained: list[str] = (), seed: int = 0):
    """The corner batch of the analyzed input through the shared harness:
    containment (and the grid) of every output, and attainment of lo/hi by
    batch elements 0/1 for the ``attained`` ones."""
    checked = check_ranges(model, {"x": spec}, lambda report: [{"x": corner_batch(report["x"], np.random.default_rng(seed))}], outputs)
    values = checked.runs[0]
    for name in attained:
        r = checked[name]
        lo, hi = np.broadcast_to(r.lo, r.shape)[0], np.broadcast_to(r.hi, r.shape)[0]
        assert_attains(lo, hi, values[name][0], values[name][1], rtol=1e-6, atol=1e-6, name=name)
    return checked.report, values


# --------------------------------------------------------------------------
# pooling geometry
# --------------------------------------------------------------------------


@st.composite
def pool_case(draw, dilations: bool):
    """Input shape and MaxPool/AveragePool attributes (valid for onnxruntime:
    pads smaller than the kernel, kernel extent within the padded input)."""
    nsp = draw(st.integers(1, 2))
    sizes = [draw(st.integers(1, 7)) for _ in range(nsp)]
    kernel = [draw(st.integers(1, 3)) for _ in range(nsp)]
    strides = [draw(st.integers(1, 3)) for _ in range(nsp)]
    dil = [draw(st.integers(1, 2)) if dilations else 1 for _ in range(nsp)]
    attrs = {"kernel_shape": kernel, "strides": strides}
    if dilations:
        attrs["dilations"] = dil
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto_pad == "NOTSET":
        pads = [draw(st.integers(0, k - 1)) for k in kernel] + [draw(st.integers(0, k - 1)) for k in kernel]
        attrs["pads"] = pads
        attrs["ceil_mode"] = draw(st.integers(0, 1))
    else:
        attrs["auto_pad"] = auto_pad
        pads = [0] * (2 * nsp)
    for i in range(nsp):
        extent = (kernel[i] - 1) * dil[i] + 1
        assume(extent <= sizes[i] + (pads[i] + pads[i + nsp] if auto_pad == "NOTSET" else 0) or auto_pad.startswith("SAME"))
        if auto_pad.startswith("SAME"):
            # onnxruntime pads SAME for the undilated kernel (its output shape
            # then disagrees with ONNX shape inference) and fails on a negative
            # total padding instead of clamping it to 0
            total = (-(-sizes[i] // strides[i]) - 1) * strides[i] + extent - sizes[i]
            assume(dil[i] == 1 and extent <= sizes[i] and total >= 0)
    channels = draw(st.integers(1, 3))
    return (BATCH, channels, *sizes), attrs


def _pool_model(op: str, shape, attrs, src, indices: bool = False, opset: int = 13):
    spec, nodes, inits, tensor = src
    outs = ["y", "idx"] if indices else ["y"]
    nodes = nodes + [helper.make_node(op, [tensor], outs, **attrs)]
    graph_out = {"y": None}
    if indices:
        nodes.append(helper.make_node("Cast", ["idx"], ["idxf"], to=TensorProto.FLOAT))
        graph_out["idxf"] = None
    return make_model(nodes, {"x": shape}, graph_out, _reshape_quant_scale(inits, len(shape)), opset=opset), spec


def _analyze_or_skip(model, spec):
    """Analysis, skipping geometries where a window covers only padding."""
    try:
        return sira.analyze(model, {"x": spec})
    except SiraError as e:
        assume("covers only padding" not in str(e))
        raise


@SETTINGS
@given(case=pool_case(dilations=True), data=st.data())
def test_maxpool_contains_and_attains(case, data):
    shape, attrs = case
    src = data.draw(input_source(shape[1]))
    model, spec = _pool_model("MaxPool", shape, attrs, src, indices=data.draw(st.booleans()))
    _analyze_or_skip(model, spec)
    outs = ["y"] + (["idx"] if len(model.graph.output) > 1 else [])
    report, _ = check(model, spec, outs, attained=["y"])
    r_in, r = report[src[3]], report["y"]
    assert r.exact
    if r_in.is_scaled_int:
        assert r.is_scaled_int, r.notes
        assert r.scale.shape[2:] == (1,) * (len(shape) - 2), "per-channel scale must stay per channel"
    if "idx" in outs:
        assert report["idx"].int_bounds() == (0, int(np.prod(shape)) - 1)


@SETTINGS
@given(case=pool_case(dilations=False), include_pad=st.integers(0, 1), data=st.data())
def test_averagepool_contains_and_attains(case, include_pad, data):
    shape, attrs = case
    src = data.draw(input_source(shape[1]))
    model, spec = _pool_model("AveragePool", shape, dict(attrs, count_include_pad=include_pad), src)
    _analyze_or_skip(model, spec)
    report, _ = check(model, spec, ["y"], attained=["y"])
    r_in, r = report[src[3]], report["y"]
    if r_in.is_scaled_int:
        assert r.is_scaled_int, r.notes
        # q is the integer window sum: its bounds are integers, at most
        # window-size times the input's
        k = int(np.prod(attrs["kernel_shape"]))
        assert r.int_lo.dtype.kind in "iO"
        assert np.all(np.abs(r.int_hi) <= k * max(abs(np.max(r_in.int_hi)), abs(np.min(r_in.int_lo))))


@SETTINGS
@given(op=st.sampled_from(["GlobalMaxPool", "GlobalAveragePool"]), nsp=st.integers(1, 2), data=st.data())
def test_global_pooling(op, nsp, data):
    shape = (BATCH, data.draw(st.integers(1, 3))) + tuple(data.draw(st.integers(1, 6)) for _ in range(nsp))
    src = data.draw(input_source(shape[1]))
    model, spec = _pool_model(op, shape, {}, src)
    report, _ = check(model, spec, ["y"], attained=["y"])
    r = report["y"]
    assert r.lo.shape[2:] == (1,) * nsp
    if report[src[3]].is_scaled_int:
        assert r.is_scaled_int and r.int_lo.shape[2:] == (1,) * nsp


def _grid_input(scale, bias, qlo, qhi):
    return {"int_min": qlo, "int_max": qhi, "scale": scale, "bias": bias, "axis": 1}


@pytest.mark.parametrize("include_pad", [0, 1])
def test_averagepool_borders(include_pad):
    """3x3 window, pad 1, on a 4x4 grid input q in [0, 15], scale 0.5: the
    corner sees 4 inputs. With count_include_pad=0 its divisor is 4 (scale
    0.5/4), with 1 it is 9; the integer part is the sum (0..60) either way."""
    shape = (BATCH, 1, 4, 4)
    attrs = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=include_pad)
    spec = _grid_input([0.5], [0.0], 0, 15)
    model = make_model([helper.make_node("AveragePool", ["x"], ["y"], **attrs)], {"x": shape}, {"y": None})
    report, values = check(model, spec, ["y"], attained=["y"])
    r = report["y"]
    scale = np.broadcast_to(r.scale, r.shape)[0, 0]
    qhi = np.broadcast_to(r.int_hi, r.shape)[0, 0]
    assert scale[1, 1] == 0.5 / 9 and qhi[1, 1] == 9 * 15
    assert scale[0, 0] == (0.5 / 4 if include_pad == 0 else 0.5 / 9) and qhi[0, 0] == 4 * 15
    assert scale[0, 1] == (0.5 / 6 if include_pad == 0 else 0.5 / 9) and qhi[0, 1] == 6 * 15
    corner_hi = np.broadcast_to(r.hi, r.shape)[0, 0, 0, 0]
    assert corner_hi == pytest.approx(7.5 * 4 / (4 if include_pad == 0 else 9))
    assert values["y"][1, 0, 0, 0] == pytest.approx(corner_hi)


def test_averagepool_stays_per_channel_without_padding():
    shape = (BATCH, 3, 6, 6)
    spec = _grid_input([0.25, 0.5, 2.0], [0.0, 1.0, -2.0], -8, 7)
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    model = make_model([node], {"x": shape}, {"y": None})
    report, _ = check(model, spec, ["y"], attained=["y"])
    r = report["y"]
    for field in ("lo", "hi", "int_lo", "int_hi", "scale", "bias"):
        assert getattr(r, field).shape[2:] == (1, 1), field
    assert r.int_bounds() == (-32, 28)
    np.testing.assert_array_equal(r.scale.reshape(-1), [0.0625, 0.125, 0.5])


def test_maxpool_negative_scale_uses_integer_min():
    """y = -0.5*q: the max of the reals is -0.5 times the min of the ints."""
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2])
    model = make_model([node], {"x": (BATCH, 1, 4)}, {"y": None})
    report, _ = check(model, _grid_input([-0.5], [0.0], -3, 5), ["y"], attained=["y"])
    r = report["y"]
    assert r.int_bounds() == (-3, 5) and r.scale.item() == -0.5
    assert r.lo.item() == -2.5 and r.hi.item() == 1.5


# --------------------------------------------------------------------------
# reductions
# --------------------------------------------------------------------------


@SETTINGS
@given(
    op=st.sampled_from(["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"]),
    opset=st.sampled_from([13, 18]),
    rank=st.integers(2, 4),
    keepdims=st.integers(0, 1),
    data=st.data(),
)
def test_reduce_contains_and_attains(op, opset, rank, keepdims, data):
    shape = (BATCH,) + tuple(data.draw(st.integers(1, 4)) for _ in range(rank - 1))
    axes = sorted(data.draw(st.sets(st.integers(1, rank - 1), min_size=1)))
    if data.draw(st.booleans()):
        axes = [a - rank for a in axes]  # negative axes
    src = data.draw(input_source(shape[1]))
    spec, nodes, inits, tensor = src
    inits = _reshape_quant_scale(inits, rank)
    inputs = [tensor]
    attrs = {"keepdims": keepdims}
    if op == "ReduceSum" and opset >= 13 or opset >= 18:
        inits["axes"] = np.array(axes, dtype=np.int64)
        inputs.append("axes")
    else:
        attrs["axes"] = axes
    nodes = nodes + [helper.make_node(op, inputs, ["y"], **attrs)]
    model = make_model(nodes, {"x": shape}, {"y": None}, inits, opset=opset)
    report, _ = check(model, spec, ["y"], attained=["y"])
    r, r_in = report["y"], report[tensor]
    uniform = all(r_in.is_scaled_int and r_in.scale.shape[a % rank] == r_in.bias.shape[a % rank] == 1 for a in axes)
    if r_in.is_scaled_int and (op in ("ReduceSum", "ReduceMean") or uniform):
        # sums keep it even across per-channel scales (all multiples of the smallest)
        assert r.is_scaled_int, r.notes


def test_reduce_sum_is_integer_sum_and_mean_divides_scale():
    spec = _grid_input([0.25, 0.5], [1.0, -1.0], -4, 3)
    inits = {"axes": np.array([2, 3], dtype=np.int64)}
    nodes = [helper.make_node("ReduceSum", ["x", "axes"], ["s"]), helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0)]
    model = make_model(nodes, {"x": (BATCH, 2, 3, 5)}, {"s": None, "m": None}, inits)
    report, _ = check(model, spec, ["s", "m"], attained=["s", "m"])
    s, m = report["s"], report["m"]
    assert s.int_bounds() == (-60, 45)
    np.testing.assert_array_equal(s.scale.reshape(-1), [0.25, 0.5])
    np.testing.assert_array_equal(s.bias.reshape(-1), [15.0, -15.0])
    assert m.shape == (BATCH, 2) and m.int_bounds() == (-60, 45)
    np.testing.assert_allclose(m.scale.reshape(-1), [0.25 / 15, 0.5 / 15])


def test_reduce_over_channels_with_different_scales():
    """Per-channel scales 0.25 and -0.5 summed over channels: common unit 0.25,
    q = q0 - 2*q1. Scales 0.25 and 0.375 have no integer ratio: real only."""
    node = helper.make_node("ReduceSum", ["x", "axes"], ["y"])
    inits = {"axes": np.array([1], dtype=np.int64)}
    model = make_model([node], {"x": (BATCH, 2, 3)}, {"y": None}, inits)
    report, _ = check(model, _grid_input([0.25, -0.5], [0.0, 0.5], -4, 3), ["y"], attained=["y"])
    r = report["y"]
    assert r.int_bounds() == (-4 - 6, 3 + 8) and r.scale.item() == 0.25 and r.bias.item() == 0.5
    x = ScaledIntRange.scaled((2, 2, 3), -4, 3, np.array([0.25, 0.375]).reshape(1, 2, 1), 0.0)
    loose = rule_outputs(node, [x, ScaledIntRange.constant(inits["axes"])], [(2, 1, 3)])[0]
    assert not loose.is_scaled_int and "no integer multiples" in loose.notes[-1]
    assert (loose.lo.item(), loose.hi.item()) == (-2.5, 1.875)


def test_reduce_noop_with_empty_axes():
    node = helper.make_node("ReduceSum", ["x", "axes"], ["y"], noop_with_empty_axes=1)
    model = make_model([node], {"x": (BATCH, 3)}, {"y": None}, {"axes": np.zeros((0,), dtype=np.int64)})
    report, _ = check(model, {"min": -1, "max": 2}, ["y"], attained=["y"])
    assert report["y"].shape == (BATCH, 3)


# --------------------------------------------------------------------------
# Softmax / LogSoftmax
# --------------------------------------------------------------------------


@SETTINGS
@given(
    op=st.sampled_from(["Softmax", "LogSoftmax"]),
    opset=st.sampled_from([11, 13]),
    rank=st.integers(2, 3),
    data=st.data(),
)
def test_softmax_contains(op, opset, rank, data):
    shape = (BATCH,) + tuple(data.draw(st.integers(1, 5)) for _ in range(rank - 1))
    axis = data.draw(st.integers(-rank, rank - 1))
    channels = shape[1]
    lo = [data.draw(st.integers(-40, 40)) / 2 for _ in range(channels)]
    hi = [v + data.draw(st.sampled_from([0, 0.5, 3, 20, 80])) for v in lo]
    spec = {"min": lo, "max": hi, "axis": 1}
    model = make_model([helper.make_node(op, ["x"], ["y"], axis=axis)], {"x": shape}, {"y": None}, opset=opset)
    report, _ = check(model, spec, ["y"])
    r = report["y"]
    if op == "Softmax":
        assert np.all(r.lo >= 0) and np.all(r.hi <= 1)
    else:
        assert np.all(r.hi <= 0)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_bounds_are_attained(op):
    """Element i is smallest with x_i = lo_i and the others at hi; checked
    against a 50-digit evaluation. The rigorous rounding margin grows like
    eps * n * max|x|, hence the relative slack of 1e-11 at |x| = 700."""
    import mpmath

    mpmath.mp.dps = 50
    lo, hi = np.array([-1.0, 0.0, 2.0, -700.0]), np.array([1.0, 0.5, 30.0, -650.0])
    r = rule_outputs(helper.make_node(op, ["x"], ["y"], axis=-1), [ScaledIntRange.real((4,), lo, hi)], [(4,)])[0]

    def exact(v, i):
        y = mpmath.exp(v[i]) / mpmath.fsum(mpmath.exp(mpmath.mpf(float(t))) for t in v)
        return y if op == "Softmax" else mpmath.log(y)

    for i in range(4):
        low = exact(np.where(np.arange(4) == i, lo, hi), i)
        high = exact(np.where(np.arange(4) == i, hi, lo), i)
        assert r.lo[i] <= low and low - r.lo[i] <= 1e-11 * max(1, abs(low))
        assert r.hi[i] >= high and r.hi[i] - high <= 1e-11 * max(1, abs(high))


def test_softmax_extreme_and_infinite_inputs():
    lo = np.array([-np.inf, -1e6, 0.0, 700.0])
    hi = np.array([0.0, -1e6, 1e6, np.inf])
    r = rule_outputs(helper.make_node("Softmax", ["x"], ["y"]), [ScaledIntRange.real((4,), lo, hi)], [(4,)])[0]
    assert np.all(r.lo >= 0) and np.all(r.hi <= 1) and np.all(r.lo <= r.hi)
    np.testing.assert_array_equal(r.lo, 0.0)
    assert r.hi[1] == pytest.approx(0.0, abs=1e-300) and r.hi[3] == 1.0
    # one element: softmax is exactly 1, log-softmax exactly 0, whatever the range
    for op, value in (("Softmax", 1.0), ("LogSoftmax", 0.0)):
        one = rule_outputs(helper.make_node(op, ["x"], ["y"]), [ScaledIntRange.real((2, 1), -np.inf, 1e300)], [(2, 1)])[0]
        assert one.lo.item() == value and one.hi.item() == value


# --------------------------------------------------------------------------
# TopK / ArgMax / ArgMin
# --------------------------------------------------------------------------


def _topk_model(shape, k, attrs, src, opset=13):
    spec, nodes, inits, tensor = src
    inits = dict(_reshape_quant_scale(inits, len(shape)), k=np.array([k], dtype=np.int64))
    nodes = nodes + [
        helper.make_node("TopK", [tensor, "k"], ["vals", "idx"], **attrs),
        helper.make_node("Cast", ["idx"], ["idxf"], to=TensorProto.FLOAT),
    ]
    return make_model(nodes, {"x": shape}, {"vals": None, "idxf": None}, inits, opset=opset), spec


@SETTINGS
@given(rank=st.integers(2, 3), largest=st.integers(0, 1), ordered=st.integers(0, 1), data=st.data())
def test_topk_values_and_indices(rank, largest, ordered, data):
    shape = (BATCH,) + tuple(data.draw(st.integers(1, 5)) for _ in range(rank - 1))
    axis = data.draw(st.integers(1, rank - 1))
    n = shape[axis]
    k = data.draw(st.integers(1, n))
    src = data.draw(input_source(shape[1]))
    model, spec = _topk_model(shape, k, {"axis": axis, "largest": largest, "sorted": ordered}, src)
    report, _ = check(model, spec, ["vals", "idx"], attained=["vals"] if ordered else [])
    vals, idx, r_in = report["vals"], report["idx"], report[src[3]]
    assert idx.int_bounds() == (0, n - 1) and idx.scale.item() == 1.0
    assert np.all(vals.lo >= np.min(r_in.lo)) and np.all(vals.hi <= np.max(r_in.hi))
    if r_in.is_scaled_int and axis != 1:
        assert vals.is_scaled_int


def test_topk_values_are_not_indices():
    """Defect D1 of the reference: the index range belongs on output 1."""
    x = ScaledIntRange.real((1, 10), -5.0, 5.0)
    k = ScaledIntRange.constant(np.array([3], dtype=np.int64))
    vals, idx = rule_outputs(helper.make_node("TopK", ["x", "k"], ["v", "i"]), [x, k], [(1, 3), (1, 3)])
    assert float(vals.lo.min()) == -5.0 and float(vals.hi.max()) == 5.0 and not vals.is_scaled_int
    assert idx.int_bounds() == (0, 9)


@SETTINGS
@given(op=st.sampled_from(["ArgMax", "ArgMin"]), keepdims=st.integers(0, 1), last=st.integers(0, 1), data=st.data())
def test_argmax_is_exact(op, keepdims, last, data):
    n = data.draw(st.integers(1, 6))
    lo = np.array([data.draw(st.integers(-6, 6)) for _ in range(n)], dtype=np.float64)
    hi = lo + np.array([data.draw(st.sampled_from([0, 0, 1, 3, 10])) for _ in range(n)])
    spec = {"min": lo.tolist(), "max": hi.tolist(), "axis": 1}
    nodes = [
        helper.make_node(op, ["x"], ["y"], axis=1, keepdims=keepdims, select_last_index=last),
        helper.make_node("Cast", ["y"], ["yf"], to=TensorProto.FLOAT),
    ]
    model = make_model(nodes, {"x": (BATCH, n)}, {"yf": None})
    report, _ = check(model, spec, ["y"])
    qlo, qhi = report["y"].int_bounds()
    # brute force over all corner inputs: the attained argmax set
    sign = 1 if op == "ArgMax" else -1
    seen = set()
    for mask in range(2**n):
        v = sign * np.where([(mask >> i) & 1 for i in range(n)], hi, lo)
        seen.add(int(n - 1 - np.argmax(v[::-1])) if last else int(np.argmax(v)))
    assert (qlo, qhi) == (min(seen), max(seen))


# --------------------------------------------------------------------------
# malformed nodes
# --------------------------------------------------------------------------


def test_maxpool_without_kernel_shape_is_rejected():
    x = ScaledIntRange.real((1, 1, 4, 4), 0.0, 1.0)
    with pytest.raises(RuleError, match="kernel_shape.*required"):
        rule_outputs(helper.make_node("MaxPool", ["x"], ["y"]), [x], [None])


@pytest.mark.parametrize(
    "node, inputs, message",
    [
        (helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2]), [ScaledIntRange.real((1, 1, 4, 4), 0, 1)], "kernel_shape has 1 values; expected 2"),
        (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[0, 1]), [ScaledIntRange.real((1, 1, 4, 4), 0, 1)], "strides"),
        (helper.make_node("ReduceMax", ["x"], ["y"], axes=[1, -1]), [ScaledIntRange.real((2, 3), 0, 1)], "twice"),
        (helper.make_node("TopK", ["x", "k"], ["v", "i"]), [ScaledIntRange.real((2, 3), 0, 1), ScaledIntRange.constant(np.array([4]))], r"K=4 is outside \[1, 3\]"),
        (helper.make_node("TopK", ["x", "k"], ["v", "i"]), [ScaledIntRange.real((2, 3), 0, 1), ScaledIntRange.real((1,), 1, 2)], "must be a constant"),
    ],
)
def test_malformed_nodes(node, inputs, message):
    with pytest.raises(RuleError, match=message):
        rule_outputs(node, inputs, [None] * len(node.output))
