"""Float64 execution (sira.execute, sira.exec_kernels).

Every whole-array kernel is checked against qonnx / onnxruntime on
single-node models: on integer data, where float32 and float64 are both
exact, the outputs must be identical; the quantizers are also checked
against qonnx's own float64 functions on arbitrary data (ties included).
Batched execution (``Executor.run_many``) must give exactly what running
one input at a time gives, also for nodes that cannot see a batch.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper
from qonnx.custom_op.general.bipolar_quant import binary_quant
from qonnx.custom_op.general.intquant import int_quant as qonnx_int_quant
from qonnx.custom_op.general.multithreshold import multithreshold as qonnx_multithreshold
from qonnx.custom_op.general.trunc import trunc_v1 as qonnx_trunc_v1
from qonnx.custom_op.general.trunc import trunc_v2 as qonnx_trunc_v2

import sira
from sira import exec_kernels as kernels
from sira.execute import Executor, execute_all, to_float64

from helpers import QONNX_DOMAIN, execute, make_model, quant_node

SETTINGS = settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
MODES = list(kernels.ROUNDERS)


def same_as_qonnx(model, feed: dict, names=("y",)) -> None:
    """The float64 execution of ``model`` equals qonnx's (float32) one."""
    ours = execute_all(to_float64(model), feed)
    theirs = execute(model, feed)
    for name in names:
        assert ours[name].dtype == np.float64
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


# --------------------------------------------------------------------------
# convolution, matmul, gemm
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x_shape, w_shape, attrs",
    [
        ((2, 4, 7, 6), (6, 4, 3, 3), {}),
        ((1, 4, 7, 6), (6, 4, 3, 3), {"pads": [1, 2, 0, 1], "strides": [2, 1]}),
        ((1, 4, 7, 6), (6, 2, 2, 3), {"pads": [1, 1, 1, 1], "dilations": [2, 1], "group": 2}),
        ((1, 4, 7, 6), (6, 4, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
        ((1, 4, 7, 6), (6, 4, 2, 2), {"auto_pad": "SAME_LOWER"}),
        ((1, 4, 7), (6, 4, 3), {"pads": [1, 0]}),
    ],
)
def test_conv_float64_matches_onnxruntime(x_shape, w_shape, attrs):
    rng = np.random.default_rng(0)
    conv = helper.make_node("Conv", ["x", "W", "B"], ["y"], kernel_shape=list(w_shape[2:]), **attrs)
    inits = {"W": rng.integers(-3, 4, size=w_shape).astype(np.float32), "B": rng.integers(-3, 4, size=w_shape[0]).astype(np.float32)}
    model = make_model([conv], {"x": x_shape}, {"y": None}, inits)
    x = rng.integers(-5, 6, size=x_shape).astype(np.float32)
    y64 = execute_all(to_float64(model), {"x": x})["y"]
    assert y64.dtype == np.float64
    np.testing.assert_array_equal(y64, execute(model, {"x": x})["y"])


@st.composite
def conv_cases(draw):
    """A Conv node's geometry: 1-D or 2-D, groups (depthwise included),
    strides and dilations up to 2, asymmetric pads, with or without bias."""
    nsp = draw(st.integers(1, 2))
    groups = draw(st.integers(1, 3))
    cg = draw(st.integers(1, 3))
    og = draw(st.integers(1, 3))
    if draw(st.booleans()):  # depthwise: one input channel per group
        cg, groups = 1, draw(st.integers(2, 5))
    kernel = [draw(st.integers(1, 3)) for _ in range(nsp)]
    strides = [draw(st.integers(1, 2)) for _ in range(nsp)]
    dilations = [draw(st.integers(1, 2)) for _ in range(nsp)]
    pads = [draw(st.integers(0, 2)) for _ in range(2 * nsp)]
    sizes = [(k - 1) * d + 1 + draw(st.integers(0, 4)) for k, d in zip(kernel, dilations)]
    batch = draw(st.integers(1, 3))
    attrs = {"kernel_shape": kernel, "strides": strides, "dilations": dilations, "pads": pads, "group": groups}
    return (batch, groups * cg, *sizes), (groups * og, cg, *kernel), attrs, draw(st.booleans()), draw(st.integers(0, 2**16))


@SETTINGS
@given(conv_cases())
def test_conv_kernel_matches_onnxruntime(case):
    x_shape, w_shape, attrs, with_bias, seed = case
    rng = np.random.default_rng(seed)
    inits = {"W": rng.integers(-4, 5, size=w_shape).astype(np.float32)}
    if with_bias:
        inits["B"] = rng.integers(-4, 5, size=w_shape[0]).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "W"] + (["B"] if with_bias else []), ["y"], **attrs)
    model = make_model([conv], {"x": x_shape}, {"y": None}, inits)
    feed = {"x": rng.integers(-8, 9, size=x_shape).astype(np.float32)}
    default = kernels.PER_SAMPLE_POSITIONS
    try:
        for positions in (default, 1):  # one product for the batch, then one per sample
            kernels.PER_SAMPLE_POSITIONS = positions
            same_as_qonnx(model, feed)
    finally:
        kernels.PER_SAMPLE_POSITIONS = default


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(1, 4), st.booleans(), st.integers(0, 2**16))
def test_matmul_kernel_matches_onnxruntime(lead, m, k, n, stacked, seed):
    """2-D and stacked (3-D times 2-D) MatMul on integers."""
    rng = np.random.default_rng(seed)
    a_shape = (lead, m, k) if stacked else (m, k)
    model = make_model([helper.make_node("MatMul", ["a", "B"], ["y"])], {"a": a_shape}, {"y": None}, {"B": rng.integers(-9, 10, (k, n)).astype(np.float32)})
    same_as_qonnx(model, {"a": rng.integers(-9, 10, a_shape).astype(np.float32)})


@pytest.mark.parametrize("trans_a, trans_b, alpha, beta, c_shape", [(0, 0, 1.0, 1.0, (5,)), (1, 0, 2.0, 0.5, (3, 5)), (0, 1, 1.0, 0.0, (1, 5)), (1, 1, 0.25, 2.0, None)])
def test_gemm_kernel_matches_onnxruntime(trans_a, trans_b, alpha, beta, c_shape):
    rng = np.random.default_rng(1)
    a_shape = (4, 3) if trans_a else (3, 4)
    inits = {"B": rng.integers(-9, 10, (5, 4) if trans_b else (4, 5)).astype(np.float32)}
    if c_shape is not None:
        inits["C"] = rng.integers(-9, 10, c_shape).astype(np.float32)
    node = helper.make_node("Gemm", ["a", "B"] + (["C"] if c_shape else []), ["y"], transA=trans_a, transB=trans_b, alpha=alpha, beta=beta)
    model = make_model([node], {"a": a_shape}, {"y": None}, inits)
    same_as_qonnx(model, {"a": rng.integers(-9, 10, a_shape).astype(np.float32)})


def test_integer_products_are_exact_past_float64_precision():
    """Partial sums past 2**53 would lose the 1 in float64; the int64
    recomputation keeps it, in matmul and in convolution."""
    big = 2.0**53
    a = np.array([[big, 1.0, -big]])
    np.testing.assert_array_equal(kernels.dot(a, np.ones((3, 1))), [[1.0]])
    x = np.array([big, 1.0, -big]).reshape(1, 1, 3)
    y = kernels.conv(x, np.ones((1, 1, 3)), None, [1], [1], [(0, 0)], 1)
    np.testing.assert_array_equal(y, [[[1.0]]])


@pytest.mark.parametrize("top", [4689, 4701])
def test_integer_convolution_is_exact_around_the_float32_limit(top):
    """A convolution of integers with odd sums just below and just past
    2**24 (where float32 stops counting exactly: 7 * 4689 * 511 < 2**24 <
    7 * 4701 * 511) equals the integer result: float32 is taken only below
    the limit."""
    x = np.full((2, 2, 3, 3), float(top))
    x[1, 0, 1, 1] = top - 2.0
    w = np.full((1, 2, 2, 2), 511.0)
    w[0, 1, 0, 0] = 0.0
    y = kernels.conv(x, w, None, [1, 1], [1, 1], [(0, 0), (0, 0)], 1)
    xi, wi = x.astype(np.int64), w.astype(np.int64)
    expected = [[[[int(np.sum(xi[n, :, i : i + 2, j : j + 2] * wi[0])) for j in range(2)] for i in range(2)]] for n in range(2)]
    assert y.dtype == np.float64
    assert y.tolist() == expected


def test_non_integer_products_stay_float64():
    a = np.array([[0.1, 0.2, 0.3]])
    np.testing.assert_array_equal(kernels.dot(a, np.ones((3, 1))), a @ np.ones((3, 1)))


# --------------------------------------------------------------------------
# quantizers: against qonnx's float64 functions and its node execution
# --------------------------------------------------------------------------


def tricky_values(rng, shape) -> np.ndarray:
    """Random reals with exact ties (k + 1/2), integers, zeros and values
    past every clip limit."""
    x = rng.uniform(-300, 300, shape)
    kind = rng.integers(0, 4, shape)
    x = np.where(kind == 0, np.round(x) + 0.5, x)
    x = np.where(kind == 1, np.round(x), x)
    return np.where(kind == 2, 0.0, x)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("signed, narrow", [(1, 0), (1, 1), (0, 0), (0, 1)])
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_int_quant_equals_qonnx(mode, signed, narrow, bits):
    rng = np.random.default_rng(bits * 7 + signed * 3 + narrow)
    x = tricky_values(rng, (3, 4, 5))
    scale = rng.choice([0.5, 1.0, 0.3, 2.0], size=(1, 4, 1))
    for zeropt in (np.float64(0.0), np.float64(3.0)):
        bitwidth = np.float64(bits)
        want = qonnx_int_quant(x, scale, zeropt, bitwidth, signed, narrow, mode)
        np.testing.assert_array_equal(kernels.int_quant(x, scale, zeropt, bitwidth, signed, narrow, mode), want)


def test_rounding_modes_equal_qonnx_on_float_edge_cases():
    """qonnx's float formulas, quirks included (|y| + 0.5 rounds up in
    float64 just below a half)."""
    from qonnx.custom_op.general.intquant import resolve_rounding_mode

    y = np.array([0.49999999999999994, -0.49999999999999994, 0.5, -0.5, 1.5, -2.5, 2.5000000000000004, -0.0, 0.0, 1e300, np.nan, -np.inf])
    for mode in MODES + ["round", "half_up"]:
        np.testing.assert_array_equal(kernels.rounder(mode)(y), resolve_rounding_mode(mode)(y), err_msg=mode)
    with pytest.raises(ValueError, match="unknown rounding mode"):
        kernels.rounder("STOCHASTIC")


def test_bipolar_quant_and_trunc_equal_qonnx():
    rng = np.random.default_rng(3)
    x = tricky_values(rng, (2, 3, 4))
    scale = np.array([0.5, 0.25, 1.0]).reshape(1, 3, 1)
    np.testing.assert_array_equal(kernels.bipolar_quant(x, scale), binary_quant(x, scale))
    z, in_bits, out_bits = np.float64(2.0), np.float64(12.0), np.float64(5.0)
    for mode in MODES:
        np.testing.assert_array_equal(kernels.trunc_v1(x, scale, z, in_bits, out_bits, mode), qonnx_trunc_v1(x, scale, z, in_bits, out_bits, mode))
        for signed, narrow in ((1, 0), (0, 1)):
            want = qonnx_trunc_v2(x, scale, z, in_bits, narrow, signed, np.float64(4.0), out_bits, mode)
            np.testing.assert_array_equal(kernels.trunc_v2(x, scale, z, np.float64(4.0), out_bits, signed, narrow, mode), want)


@pytest.mark.parametrize("mode", MODES)
def test_quant_node_matches_qonnx_execution(mode):
    """A Quant node per channel, on values that float32 represents exactly
    (multiples of 1/8, power-of-two scales): ties land the same in both."""
    rng = np.random.default_rng(5)
    inits = {"s": np.array([0.25, 0.5, 1.0], np.float32).reshape(1, 3, 1), "z": np.float32(1.0), "b": np.float32(4.0)}
    model = make_model([quant_node("x", "s", "z", "b", "y", signed=1, narrow=0, rounding_mode=mode)], {"x": (2, 3, 5)}, {"y": None}, inits)
    same_as_qonnx(model, {"x": (rng.integers(-40, 41, (2, 3, 5)) / 8).astype(np.float32)})


@pytest.mark.parametrize("qonnx_opset, inputs, attrs", [(1, 5, {}), (2, 6, {"signed": 0, "narrow": 0})])
def test_trunc_node_matches_qonnx_execution(qonnx_opset, inputs, attrs):
    """Trunc in the version qonnx picks for the model's opset (v1: 5
    inputs, v2: 6)."""
    rng = np.random.default_rng(6)
    names = ["x", "s", "z", "in_bits", "out_scale", "out_bits"] if inputs == 6 else ["x", "s", "z", "in_bits", "out_bits"]
    inits = {"s": np.float32(0.25), "z": np.float32(0.0), "in_bits": np.float32(8.0), "out_bits": np.float32(4.0), "out_scale": np.float32(4.0)}
    node = helper.make_node("Trunc", names, ["y"], domain=QONNX_DOMAIN, rounding_mode="FLOOR", **attrs)
    model = make_model([node], {"x": (2, 7)}, {"y": None}, {k: inits[k] for k in names[1:]})
    for opset in model.model.opset_import:
        if opset.domain == QONNX_DOMAIN:
            opset.version = qonnx_opset
    same_as_qonnx(model, {"x": (rng.integers(0, 256, (2, 7)) / 4).astype(np.float32)})


@pytest.mark.parametrize(
    "shape, rows, steps, layout",
    [
        ((2, 3, 4, 4), 3, 3, ""),  # NCHW, few thresholds: counted by comparison
        ((2, 3, 4, 4), 3, 40, ""),  # many sorted thresholds: binary search
        ((2, 3, 4, 4), 1, 40, ""),  # one row for every channel
        ((2, 5, 3), 3, 20, ""),  # rank 3 is NWC: channels last
        ((4, 6), 6, 7, ""),
        ((2, 4, 4, 3), 3, 20, "NHWC"),
    ],
)
def test_multithreshold_equals_qonnx(shape, rows, steps, layout):
    rng = np.random.default_rng(steps)
    x = np.round(rng.normal(0, 20, shape))
    x.flat[::7] = np.nan
    thresholds = np.sort(np.round(rng.normal(0, 20, (rows, steps))), axis=1)
    axis = kernels.multithreshold_channel_axis(layout, len(shape))
    default = kernels.COUNT_BLOCK
    try:
        for block in (default, 5):  # the whole batch in one block, then a block per sample
            kernels.COUNT_BLOCK = block
            for t in (thresholds, thresholds[:, ::-1]):  # sorted, then not
                want = np.swapaxes(qonnx_multithreshold(np.swapaxes(x, axis, 1), t, 0.5, -3.0), axis, 1)
                np.testing.assert_array_equal(kernels.multithreshold(x, t, 0.5, -3.0, layout), want)
    finally:
        kernels.COUNT_BLOCK = default


@pytest.mark.parametrize("shape, rows, steps", [((2, 3, 4, 4), 3, 40), ((2, 3, 4, 4), 1, 255), ((4, 6), 6, 7), ((2, 5, 3), 3, 30)])
def test_threshold_distance_equals_the_minimum_over_every_threshold(shape, rows, steps):
    """The binary search measures only the thresholds around x; the result
    is the direct minimum's, bit for bit (ties, NaN, infinities, values on a
    threshold and outside every row, rows in any order)."""
    rng = np.random.default_rng(steps)
    x = np.round(rng.normal(0, 20, shape), 1)
    x.flat[::7] = np.nan
    x.flat[3::11] = np.inf
    x.flat[5::13] = -np.inf
    t = np.round(rng.normal(0, 20, (rows, steps)), 1)
    x.flat[1::5] = rng.choice(t.ravel(), x.flat[1::5].size)  # values on a threshold
    axis = kernels.multithreshold_channel_axis("", len(shape))
    channel = tuple(rows if i == axis else 1 for i in range(len(shape)))
    want = np.full(shape, np.inf)
    for j in range(steps):
        want = np.minimum(want, np.abs(x - t[:, j].reshape(channel)))
    np.testing.assert_array_equal(kernels.threshold_distance(x, t, axis), want)


@pytest.mark.parametrize("shape, steps", [((1, 3, 4, 4), 3), ((2, 5, 3), 30), ((3, 6), 20)])
def test_multithreshold_node_matches_qonnx_execution(shape, steps):
    rng = np.random.default_rng(9)
    channels = shape[-1] if len(shape) == 3 else shape[1]
    inits = {"T": np.sort(rng.integers(-30, 30, (channels, steps)), axis=1).astype(np.float32)}
    node = helper.make_node("MultiThreshold", ["x", "T"], ["y"], domain=QONNX_DOMAIN, out_dtype="UINT8", out_scale=2.0, out_bias=-1.0)
    model = make_model([node], {"x": shape}, {"y": None}, inits)
    same_as_qonnx(model, {"x": rng.integers(-35, 35, shape).astype(np.float32)})


# --------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------


def _feeds(shape, count, seed=0):
    rng = np.random.default_rng(seed)
    return [{"x": rng.integers(-8, 9, shape).astype(np.float64)} for _ in range(count)]


def assert_batched_equals_single(model, feeds) -> Executor:
    """Batched and one-at-a-time runs agree: integer-valued tensors exactly,
    float ones up to the summation order of BLAS (4 units in the last place
    of the tensor's largest magnitude)."""
    executor = Executor(model)
    batched = list(executor.run_many(feeds))
    assert len(batched) == len(feeds)
    for feed, ctx in zip(feeds, batched):
        single = executor.run(feed)
        for name, value in single.items():
            if not isinstance(value, np.ndarray):
                continue
            if value.dtype.kind != "f" or np.array_equal(value, np.rint(value)):
                np.testing.assert_array_equal(ctx[name], value, err_msg=name)
            else:
                np.testing.assert_allclose(ctx[name], value, rtol=0, atol=4 * np.spacing(np.max(np.abs(value))), err_msg=name)
    return executor


def test_run_many_equals_run_through_batch_mixing_nodes():
    """Nodes that would mix samples (a transpose that moves the batch axis, a
    flatten of everything, a reshape that moves it) run sample by sample
    inside the batch; the rest runs once per batch."""
    inits = {
        "W": np.arange(-8, 10, dtype=np.float32).reshape(2, 1, 3, 3) / 4,
        "s": np.float32(0.5),
        "z": np.float32(0.0),
        "b": np.float32(4.0),
        "flat": np.array([1, -1], np.int64),
        "swap": np.array([2, 1, 4, 4], np.int64),
        "M": np.arange(32, dtype=np.float32).reshape(32, 1) / 8,
    }
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        quant_node("c", "s", "z", "b", "q"),
        helper.make_node("Transpose", ["q"], ["t"], perm=[1, 0, 2, 3]),
        helper.make_node("Reshape", ["t", "swap"], ["r"]),
        helper.make_node("Reshape", ["r", "flat"], ["f"]),
        helper.make_node("Flatten", ["f"], ["g"], axis=0),
        helper.make_node("MatMul", ["g", "M"], ["y"]),
    ]
    model = make_model(nodes, {"x": (1, 1, 4, 4)}, {"y": None}, inits)
    executor = assert_batched_equals_single(model, _feeds((1, 1, 4, 4), 9))
    assert executor.batch_size > 1


def test_run_many_reshapes_to_a_computed_shape_sample_by_sample():
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Reshape", ["r", "s"], ["y"])]
    model = make_model(nodes, {"x": (2, 3)}, {"y": None})
    assert_batched_equals_single(model, _feeds((2, 3), 5))


def test_run_many_falls_back_to_single_runs_for_scalar_tensors():
    """A tensor without a batch axis (a full reduction) cannot be stacked."""
    nodes = [helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0)]
    model = make_model(nodes, {"x": (2, 3)}, {"y": None})
    assert_batched_equals_single(model, _feeds((2, 3), 5))


def test_run_many_on_a_quantized_cnn_equals_run():
    model = sira.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "sira_conv.onnx"))
    rng = np.random.default_rng(4)
    feeds = [{model.graph.input[0].name: rng.integers(0, 256, (1, 3, 10, 10)) / 255.0} for _ in range(6)]
    assert_batched_equals_single(model, feeds)


def test_a_feed_may_override_an_initializer():
    """Nodes on constants are computed once, but a feed that replaces a
    constant sees them recomputed."""
    nodes = [helper.make_node("Mul", ["k", "c"], ["kc"]), helper.make_node("Add", ["x", "kc"], ["y"])]
    model = make_model(nodes, {"x": (2,)}, {"y": None}, {"k": np.float32(3.0), "c": np.float32(3.0)})
    executor = Executor(model)
    np.testing.assert_array_equal(executor.run({"x": np.zeros(2)})["y"], [9.0, 9.0])
    np.testing.assert_array_equal(executor.run({"x": np.zeros(2), "k": np.float64(2.0)})["y"], [6.0, 6.0])
    ctxs = list(executor.run_many([{"x": np.ones(2)}, {"x": np.ones(2), "k": np.float64(2.0)}]))
    assert [list(c["y"]) for c in ctxs] == [[10.0, 10.0], [7.0, 7.0]]


def test_verification_runs_no_qonnx_node_for_ops_with_a_kernel(monkeypatch):
    """Quant, BipolarQuant, Trunc and MultiThreshold execute on sira's
    kernels: qonnx's node execution is never reached."""
    from qonnx.custom_op import registry

    inits = {"s": np.float32(0.5), "z": np.float32(0.0), "b": np.float32(4.0), "T": np.array([[0.0, 1.0, 2.0]], np.float32), "ob": np.float32(2.0)}
    nodes = [
        quant_node("x", "s", "z", "b", "q"),
        helper.make_node("BipolarQuant", ["q", "s"], ["p"], domain=QONNX_DOMAIN),
        helper.make_node("Trunc", ["q", "s", "z", "b", "ob"], ["t"], domain=QONNX_DOMAIN, rounding_mode="FLOOR"),
        helper.make_node("Add", ["p", "t"], ["a"]),
        helper.make_node("MultiThreshold", ["a", "T"], ["y"], domain=QONNX_DOMAIN, out_dtype="UINT2"),
    ]
    model = make_model(nodes, {"x": (1, 4)}, {"y": None}, inits)
    executor = Executor(model)
    monkeypatch.setattr(registry, "getCustomOp", lambda *a, **k: pytest.fail("qonnx node execution"))
    ctxs = list(executor.run_many(_feeds((1, 4), 4)))
    assert all(ctx["y"].shape == (1, 4) for ctx in ctxs)


# --------------------------------------------------------------------------
# correctly rounded elementwise ops in numpy
# --------------------------------------------------------------------------


@pytest.mark.parametrize("op, arity", [("Add", 2), ("Sub", 2), ("Mul", 2), ("Div", 2), ("Max", 3), ("Min", 2), ("Sum", 3),
                                       ("Neg", 1), ("Abs", 1), ("Relu", 1), ("Identity", 1), ("Floor", 1), ("Ceil", 1),
                                       ("Sqrt", 1)])  # fmt: skip
def test_numpy_elementwise_kernels_equal_onnxruntime_in_float64(op, arity):
    """Bit for bit, NaN and infinities included, with broadcasting: these
    ops are IEEE-exact, so numpy and onnxruntime must agree exactly."""
    import onnxruntime as ort

    rng = np.random.default_rng(3)
    names = [f"x{i}" for i in range(arity)]
    shapes = [(2, 3, 4), (1, 3, 1), (4,)][:arity]
    model = to_float64(make_model([helper.make_node(op, names, ["y"])], dict(zip(names, shapes)), {"y": None}))
    special = np.array([0.0, -0.0, 0.5, -0.5, 1e308, -1e308, np.inf, -np.inf, np.nan, 1e-320, 3.0, -7.25])
    feed = {n: np.where(rng.random(s) < 0.4, rng.choice(special, s), rng.normal(0, 1e3, s)) for n, s in zip(names, shapes)}
    ours = execute_all(model, feed)["y"]
    session = ort.InferenceSession(model.model.SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = session.run(["y"], feed)[0]
    np.testing.assert_array_equal(ours, theirs)


def test_quiet_silences_only_the_threads_inside_it(capsys):
    """Two threads entering and leaving ``quiet`` out of order leave stdout
    as it was; a thread outside it prints while another is inside."""
    import sys
    import threading

    from sira.model import quiet

    stdout = sys.stdout
    entered, leave = threading.Event(), threading.Event()

    def worker():
        with quiet():
            entered.set()
            print("from the quiet worker")
            leave.wait()

    thread = threading.Thread(target=worker)
    thread.start()
    entered.wait()
    context = quiet()
    context.__enter__()  # the main thread enters after the worker...
    print("from the quiet main thread")
    leave.set()
    thread.join()  # ...and leaves after it
    context.__exit__(None, None, None)
    print("after")
    with quiet():
        other = threading.Thread(target=lambda: print("from a thread outside quiet"))
        other.start()
        other.join()
    assert sys.stdout is stdout
    assert capsys.readouterr().out == "after\nfrom a thread outside quiet\n"
