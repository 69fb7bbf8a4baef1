"""Data-movement rules (sira/rules/movement.py) against onnxruntime.

Each test builds a real model x -> Quant (per-channel scale, sometimes a
per-channel zero-point) -> op, analyzes it with the input range SPEC and
executes it on random inputs and on the two corners (all inputs at the
spec's ends). Every output must lie in its range and on its grid; wherever
a range claims exactness the corners must hit its bounds element by element
(a saturated quantizer puts every element at its upper bound, and movement
only copies elements).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import sira
from sira.errors import RuleError, SiraError
from sira.range import ScaledIntRange
from sira.rules.movement import reshape_target, slice_bounds
from sira.rules.resize import ResizeSpec, nearest_candidates
from tests.helpers import assert_contains, execute, make_model, quant_node
from tests.rules_harness import assert_attains, check_ranges, corner_feeds, rule_outputs

SPEC = (-10.0, 10.0)
EXAMPLES = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------
# model building and checking
# --------------------------------------------------------------------------


def quant_params(data, shape, ch_axis: int, asymmetric: bool = False) -> dict:
    """Per-channel power-of-two scales along ``ch_axis`` (4-bit); with
    ``asymmetric`` an unsigned quantizer with a per-channel zero-point."""
    c = shape[ch_axis]
    pshape = [1] * len(shape)
    pshape[ch_axis] = c
    exps = data.draw(st.lists(st.integers(0, 3), min_size=c, max_size=c))
    scale = np.array([2.0**-e for e in exps], dtype=np.float32).reshape(pshape)
    zp = np.array(data.draw(st.lists(st.integers(0, 5), min_size=c, max_size=c)), dtype=np.float32).reshape(pshape) if asymmetric else np.float32(0)
    return {"s": scale, "z": zp, "bw": np.float32(4)}


def quantized(nodes, in_shape, outputs, params, inits=None, opset=13, signed=1):
    """x -> Quant -> q -> ``nodes``."""
    q = quant_node("x", "s", "z", "bw", "q", signed=signed)
    return make_model([q] + list(nodes), {"x": in_shape}, {o: None for o in outputs}, {**params, **(inits or {})}, opset=opset)


def check(model, outputs, exact=True, seed=0):
    """The corners and random inputs of SPEC through the shared harness.
    ``exact``: the ranges must claim exactness. Wherever they do, the
    all-high and all-low corners must attain the bounds everywhere (data
    movement is monotone)."""
    feeds = [{"x": x} for x in corner_feeds(model.get_tensor_shape("x"), SPEC, seed)]
    checked = check_ranges(model, SPEC, feeds, outputs, exact=exact)
    at_hi, at_lo = checked.runs[0], checked.runs[1]
    for o in outputs:
        r = checked[o]
        if r.exact:
            lo, hi = np.broadcast_to(r.lo, r.shape), np.broadcast_to(r.hi, r.shape)
            assert_attains(lo, hi, at_lo[o], at_hi[o], rtol=1e-6, name=o)
    return checked.report


def ints(name, values):
    return {name: np.asarray(values, dtype=np.int64)}


def shapes(min_rank=1, max_rank=4, max_dim=4):
    return st.lists(st.integers(1, max_dim), min_size=min_rank, max_size=max_rank)


def dyn(shape):
    return ScaledIntRange.scaled(shape, -8, 7, 0.5, 0.0)


# --------------------------------------------------------------------------
# shape-only movement
# --------------------------------------------------------------------------


@st.composite
def reshape_case(draw):
    shape = draw(shapes())
    total = math.prod(shape)
    target, rest = [], total
    for _ in range(draw(st.integers(0, 3))):
        d = draw(st.sampled_from([k for k in range(1, rest + 1) if rest % k == 0]))
        target.append(d)
        rest //= d
    target.append(rest)
    spec = list(target)
    if draw(st.booleans()):
        spec[draw(st.integers(0, len(spec) - 1))] = -1
    for i in range(min(len(spec), len(shape))):
        if spec[i] == shape[i] and draw(st.booleans()):
            spec[i] = 0
    return shape, spec, tuple(target)


@EXAMPLES
@given(st.data(), reshape_case())
def test_reshape(data, case):
    shape, spec, target = case
    params = quant_params(data, shape, data.draw(st.integers(0, len(shape) - 1)))
    m = quantized([helper.make_node("Reshape", ["q", "shp"], ["y"])], shape, ["y"], params, ints("shp", spec))
    rep = check(m, ["y"])
    assert rep["y"].shape == target and rep["y"].is_scaled_int


def test_reshape_target_allowzero_and_errors():
    assert reshape_target((2, 3, 4), [0, -1], allowzero=False) == (2, 12)
    assert reshape_target((2, 0, 3), [0, 3, 0], allowzero=True) == (0, 3, 0)
    with pytest.raises(RuleError, match="more than one -1"):
        reshape_target((2, 3), [-1, -1], allowzero=False)
    with pytest.raises(RuleError, match="cannot reshape"):
        reshape_target((2, 3), [4, 2], allowzero=False)


@EXAMPLES
@given(st.data(), shapes())
def test_flatten(data, shape):
    axis = data.draw(st.integers(-len(shape), len(shape)))
    params = quant_params(data, shape, data.draw(st.integers(0, len(shape) - 1)), asymmetric=True)
    m = quantized([helper.make_node("Flatten", ["q"], ["y"], axis=axis)], shape, ["y"], params)
    check(m, ["y"])


@EXAMPLES
@given(st.data(), st.lists(st.integers(1, 3), min_size=1, max_size=4), st.sampled_from([11, 13]))
def test_squeeze_unsqueeze(data, shape, opset):
    ones = [i for i, d in enumerate(shape) if d == 1]
    squeeze = sorted(data.draw(st.sets(st.sampled_from(ones))) if ones else [])
    squeeze = [a - len(shape) if data.draw(st.booleans()) else a for a in squeeze] or None
    out_rank = len(shape) - (len(squeeze) if squeeze else len(ones))
    unsq = data.draw(st.lists(st.integers(0, out_rank), min_size=1, max_size=2, unique=True))
    unsq = [a - (out_rank + len(unsq)) if data.draw(st.booleans()) else a for a in unsq]
    params = quant_params(data, shape, data.draw(st.integers(0, len(shape) - 1)))
    inits = {}
    if opset >= 13:
        sq = helper.make_node("Squeeze", ["q", "sq_axes"] if squeeze else ["q"], ["s1"])
        us = helper.make_node("Unsqueeze", ["s1", "us_axes"], ["y"])
        inits = {**(ints("sq_axes", squeeze) if squeeze else {}), **ints("us_axes", unsq)}
    else:
        sq = helper.make_node("Squeeze", ["q"], ["s1"], **({"axes": squeeze} if squeeze else {}))
        us = helper.make_node("Unsqueeze", ["s1"], ["y"], axes=unsq)
    check(quantized([sq, us], shape, ["s1", "y"], params, inits, opset=opset), ["s1", "y"])


@EXAMPLES
@given(st.data(), shapes())
def test_transpose(data, shape):
    perm = data.draw(st.none() | st.permutations(range(len(shape))))
    params = quant_params(data, shape, data.draw(st.integers(0, len(shape) - 1)), asymmetric=True)
    m = quantized([helper.make_node("Transpose", ["q"], ["y"], **({"perm": list(perm)} if perm is not None else {}))], shape, ["y"], params)
    check(m, ["y"])


def test_per_tensor_range_stays_compact():
    """A per-tensor range is never materialized by pure reshuffling."""
    shape = [2, 3, 4, 5]
    nodes = [
        helper.make_node("Reshape", ["q", "shp"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[2, 0, 1]),
        helper.make_node("Flatten", ["t"], ["f"], axis=2),
        helper.make_node("Unsqueeze", ["f", "ax"], ["u"]),
        helper.make_node("Slice", ["u", "st", "en"], ["y"]),
    ]
    params = {"s": np.float32(0.25), "z": np.float32(0), "bw": np.float32(4)}
    inits = {**ints("shp", [6, 4, 5]), **ints("ax", [0]), **ints("st", [0, 1]), **ints("en", [1, -1])}
    rep = check(quantized(nodes, shape, ["r", "t", "f", "u", "y"], params, inits), ["r", "t", "f", "u", "y"])
    for name in ["r", "t", "f", "u", "y"]:
        r = rep[name]
        assert all(getattr(r, f).size == 1 for f in ("lo", "hi", "int_lo", "int_hi", "scale", "bias")), name


def test_per_channel_range_is_not_materialized():
    """Movements that leave the channel axis alone keep per-channel fields
    per channel, on a tensor big enough that per-element would show."""
    shape = (1, 8, 64, 64)
    x = ScaledIntRange.scaled(shape, -8, 7, (2.0 ** -np.arange(8)).reshape(1, 8, 1, 1), 0.0)
    C = ScaledIntRange.constant
    cases = [
        ("Transpose", [x], {"perm": [0, 2, 3, 1]}, (1, 1, 1, 8)),
        ("Slice", [x, C(np.array([1])), C(np.array([-1])), C(np.array([2]))], {}, (1, 8, 1, 1)),
        ("Gather", [x, C(np.array([[3, -5]]))], {"axis": 3}, (1, 8, 1, 1, 1)),
        ("Pad", [x, C(np.array([0, 0, 1, 2, 0, 0, 1, 2]))], {"mode": "reflect"}, (1, 8, 1, 1)),
        ("Resize", [x, None, C(np.array([1, 1, 2, 2], dtype=np.float32))], {"mode": "nearest"}, (1, 8, 1, 1)),
        ("Tile", [x, C(np.array([2, 1, 2, 2]))], {}, (1, 8, 1, 1)),
        ("Expand", [x, C(np.array([3, 1, 1, 1, 1]))], {}, (1, 1, 8, 1, 1)),
    ]
    for op, inputs, attrs, compact_shape in cases:
        (r,) = rule_outputs(op, inputs, attrs=attrs)
        assert r.scale.shape == compact_shape and r.lo.shape == compact_shape, op
        assert r.int_lo.size == 1, op
    (padded,) = rule_outputs("Pad", [x, C(np.array([0, 0, 1, 1, 0, 0, 1, 1]))])
    assert padded.scale.shape == (1, 8, 1, 1) and padded.int_lo.shape == (1, 1, 66, 66)


def test_flatten_scatters_per_channel_fields():
    shape = [1, 3, 2, 2]
    params = {"s": np.array([1, 0.5, 0.25], dtype=np.float32).reshape(1, 3, 1, 1), "z": np.float32(0), "bw": np.float32(4)}
    rep = check(quantized([helper.make_node("Flatten", ["q"], ["y"])], shape, ["y"], params), ["y"])
    assert rep["y"].scale.shape == (1, 12)
    np.testing.assert_array_equal(rep["y"].scale.reshape(-1), np.repeat([1, 0.5, 0.25], 4))


@EXAMPLES
@given(st.data(), shapes(max_rank=3, max_dim=3))
def test_expand_tile(data, shape):
    target = [data.draw(st.sampled_from([1, 2])) if d == 1 else d for d in shape]
    target = [data.draw(st.integers(1, 2))] + target
    reps = data.draw(st.lists(st.integers(1, 3), min_size=len(target), max_size=len(target)))
    params = quant_params(data, shape, data.draw(st.integers(0, len(shape) - 1)))
    nodes = [helper.make_node("Expand", ["q", "shp"], ["e"]), helper.make_node("Tile", ["e", "reps"], ["y"])]
    check(quantized(nodes, shape, ["e", "y"], params, {**ints("shp", target), **ints("reps", reps)}), ["e", "y"])


@EXAMPLES
@given(st.data(), st.integers(1, 3), st.sampled_from(["DCR", "CRD"]))
def test_depth_space(data, bs, mode):
    shape = [data.draw(st.integers(1, 2)), bs * bs * data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))]
    params = quant_params(data, shape, 1, asymmetric=True)
    nodes = [helper.make_node("DepthToSpace", ["q"], ["d"], blocksize=bs, mode=mode), helper.make_node("SpaceToDepth", ["d"], ["y"], blocksize=bs)]
    check(quantized(nodes, shape, ["d", "y"], params), ["d", "y"])


# --------------------------------------------------------------------------
# joining and splitting
# --------------------------------------------------------------------------


@EXAMPLES
@given(st.data(), shapes(max_rank=3))
def test_concat_keeps_grid_with_different_scales(data, shape):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    params = quant_params(data, shape, data.draw(st.integers(0, len(shape) - 1)), asymmetric=True)
    kshape = list(shape)
    kshape[axis] = data.draw(st.integers(1, 3))
    k = np.asarray(data.draw(st.lists(st.integers(-4, 4), min_size=math.prod(kshape), max_size=math.prod(kshape))), dtype=np.float32).reshape(kshape)
    nodes = [
        quant_node("x", "s2", "z2", "bw", "q2"),
        helper.make_node("Concat", ["q", "k", "q2"], ["y"], axis=axis),
    ]
    inits = {"k": k, "s2": np.float32(0.375), "z2": np.float32(0)}
    rep = check(quantized(nodes, shape, ["y"], params, inits), ["y"])
    assert rep["y"].is_scaled_int


@EXAMPLES
@given(st.data(), shapes(max_dim=5), st.sampled_from([11, 13, 18]))
def test_split(data, shape, opset):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    dim = shape[axis]
    params = quant_params(data, shape, data.draw(st.integers(0, len(shape) - 1)))
    attrs, inputs, inits = {"axis": axis}, ["q"], {}
    mode = data.draw(st.sampled_from(["sizes", "num_outputs"] if opset >= 18 else ["sizes", "equal"]))
    if mode == "sizes":
        cuts = sorted(data.draw(st.lists(st.integers(0, dim), min_size=1, max_size=2)))
        sizes = [b - a for a, b in zip([0] + cuts, cuts + [dim])]
        n = len(sizes)
        if opset >= 13:
            inputs, inits = ["q", "split"], ints("split", sizes)
        else:
            attrs["split"] = sizes
    elif mode == "equal":
        n = data.draw(st.sampled_from([k for k in (1, 2, 3) if dim % k == 0]))
    else:
        n = data.draw(st.integers(1, dim))
        if dim - (n - 1) * -(-dim // n) <= 0:
            n = 1
        attrs["num_outputs"] = n
    outs = [f"y{i}" for i in range(n)]
    node = helper.make_node("Split", inputs, outs, **attrs)
    rep = check(quantized([node], shape, outs, params, inits, opset=opset), outs)
    assert all(rep[o].is_scaled_int for o in outs)


@EXAMPLES
@given(st.data(), shapes(max_dim=6))
def test_slice(data, shape):
    r = len(shape)
    axes = data.draw(st.lists(st.integers(0, r - 1), min_size=1, max_size=r, unique=True))
    big = 2**62
    starts, ends, steps, signed_axes = [], [], [], []
    for a in axes:
        d = shape[a]
        starts.append(data.draw(st.integers(-d - 2, d + 2) | st.sampled_from([-big, big])))
        ends.append(data.draw(st.integers(-d - 2, d + 2) | st.sampled_from([-big, big])))
        steps.append(data.draw(st.sampled_from([-3, -2, -1, 1, 2, 3])))
        signed_axes.append(a - r if data.draw(st.booleans()) else a)
    params = quant_params(data, shape, data.draw(st.integers(0, r - 1)), asymmetric=True)
    node = helper.make_node("Slice", ["q", "st", "en", "ax", "sp"], ["y"])
    inits = {**ints("st", starts), **ints("en", ends), **ints("ax", signed_axes), **ints("sp", steps)}
    check(quantized([node], shape, ["y"], params, inits), ["y"])


def test_slice_opset9_attributes():
    shape = [2, 5]
    params = {"s": np.array([[1.0], [0.5]], dtype=np.float32), "z": np.float32(0), "bw": np.float32(4)}
    node = helper.make_node("Slice", ["q"], ["y"], starts=[-4], ends=[100], axes=[1])
    rep = check(quantized([node], shape, ["y"], params, opset=9), ["y"])
    assert rep["y"].shape == (2, 4)


def test_slice_bounds_match_python():
    for dim in range(0, 5):
        for start in range(-7, 8):
            for end in range(-7, 8):
                for step in (-3, -1, 1, 2):
                    sl, n = slice_bounds(dim, start, end, step)
                    assert len(range(dim)[sl]) == n


@EXAMPLES
@given(st.data(), shapes(max_dim=5))
def test_gather_constant_indices(data, shape):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    dim = shape[axis]
    ishape = data.draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    idx = np.asarray(data.draw(st.lists(st.integers(-dim, dim - 1), min_size=math.prod(ishape), max_size=math.prod(ishape))), dtype=np.int64).reshape(ishape)
    params = quant_params(data, shape, data.draw(st.integers(0, len(shape) - 1)), asymmetric=True)
    m = quantized([helper.make_node("Gather", ["q", "idx"], ["y"], axis=axis)], shape, ["y"], params, {"idx": idx})
    rep = check(m, ["y"])
    assert rep["y"].is_scaled_int


def test_gather_dynamic_indices_gives_loose_hull():
    shape = [2, 4, 3]
    params = {"s": np.array([1.0, 0.5], dtype=np.float32).reshape(2, 1, 1), "z": np.float32(0), "bw": np.float32(4)}
    nodes = [
        quant_node("i", "one", "zero", "two", "iq", signed=0),
        helper.make_node("Cast", ["iq"], ["idx"], to=TensorProto.INT64),
        helper.make_node("Gather", ["q", "idx"], ["y"], axis=1),
    ]
    inits = {"one": np.float32(1), "zero": np.float32(0), "two": np.float32(2)}
    m = make_model([quant_node("x", "s", "z", "bw", "q")] + nodes, {"x": shape, "i": [2, 2]}, {"y": None}, {**params, **inits})
    rep = sira.analyze(m, SPEC)
    y = rep["y"]
    assert y.shape == (2, 2, 2, 3) and not y.exact and y.is_scaled_int
    assert any("computed at run time" in n for n in y.notes)
    assert rep["idx"].exact and rep["idx"].int_bounds() == (0, 3)
    rng = np.random.default_rng(1)
    for _ in range(3):
        ctx = execute(m, {"x": rng.uniform(*SPEC, shape), "i": rng.uniform(-1, 4, [2, 2])})
        assert_contains(y, ctx["y"])


# --------------------------------------------------------------------------
# Pad
# --------------------------------------------------------------------------


@EXAMPLES
@given(st.data(), shapes(max_dim=4), st.sampled_from(["constant", "reflect", "edge"]), st.sampled_from([10, 13, 18]))
def test_pad(data, shape, mode, opset):
    r = len(shape)
    if mode == "constant":  # negative pads crop, keeping at least one element
        begins = [data.draw(st.integers(-d + 1, 3)) for d in shape]
        ends = [data.draw(st.integers(-d + 1 + max(-b, 0), 3)) for d, b in zip(shape, begins)]
        pads = begins + ends
    else:
        pads = [data.draw(st.integers(0, d - 1)) for d in shape + shape]
    value = data.draw(st.sampled_from([0.0, 1.0, -2.0, 0.75, 0.3]))
    params = quant_params(data, shape, data.draw(st.integers(0, r - 1)), asymmetric=data.draw(st.booleans()))
    if opset < 11:
        node = helper.make_node("Pad", ["q"], ["y"], mode=mode, pads=pads, value=value)
        inits = {}
    else:
        axes = None
        if opset >= 18 and data.draw(st.booleans()):
            axes = data.draw(st.lists(st.integers(0, r - 1), min_size=1, max_size=r, unique=True))
            pads = [pads[a] for a in axes] + [pads[r + a] for a in axes]
        names = ["q", "pads", "cv"] + (["axes"] if axes else [])
        node = helper.make_node("Pad", names, ["y"], mode=mode)
        inits = {**ints("pads", pads), "cv": np.array(value, dtype=np.float32), **(ints("axes", [a - r for a in axes]) if axes else {})}
    rep = check(quantized([node], shape, ["y"], params, inits, opset=opset), ["y"])
    if mode != "constant":
        assert rep["y"].is_scaled_int


def test_pad_constant_on_and_off_grid():
    """Scales 1, 1/2, 1/4 with zero-points 0, 3, 1: the grids are s*Z - s*z =
    Z, Z/2, Z/4. 1.0 and -2.0 lie on all of them, 0.75 and 0.3 do not."""
    shape = [1, 3, 2, 2]
    params = {
        "s": np.array([1, 0.5, 0.25], dtype=np.float32).reshape(1, 3, 1, 1),
        "z": np.array([0, 3, 1], dtype=np.float32).reshape(1, 3, 1, 1),
        "bw": np.float32(4),
    }
    for value, on_grid in [(0.0, True), (1.0, True), (-2.0, True), (0.75, False), (0.3, False)]:
        node = helper.make_node("Pad", ["q", "pads", "cv"], ["y"], mode="constant")
        inits = {**ints("pads", [0, 0, 1, 0, 0, 0, 0, 2]), "cv": np.array(value, dtype=np.float32)}
        y = check(quantized([node], shape, ["y"], params, inits, signed=0), ["y"])["y"]
        assert y.is_scaled_int == on_grid, value
        c = float(np.float32(value))
        assert np.all(y.lo[..., 0, :] == c) and np.all(y.hi[..., :, -2:] == c)
        if on_grid:
            assert not np.any(np.isnan(y.scale)) and y.scale.shape == (1, 3, 1, 1)
        else:
            assert any("not on the input's integer grid" in n for n in y.notes)


def test_pad_only_along_channels_checks_only_padded_channels():
    """A per-channel grid where a channel that is not next to the padding has
    an incompatible grid does not matter: only padded positions count."""
    shape = [1, 2, 2]
    params = {"s": np.array([1, 0.5], dtype=np.float32).reshape(1, 2, 1), "z": np.float32(0), "bw": np.float32(4)}
    node = helper.make_node("Pad", ["q", "pads", "cv"], ["y"], mode="constant")
    inits = {**ints("pads", [0, 0, 0, 0, 1, 0]), "cv": np.array(0.5, dtype=np.float32)}
    y = check(quantized([node], shape, ["y"], params, inits), ["y"])["y"]
    assert y.is_scaled_int and y.shape == (1, 3, 2)


# --------------------------------------------------------------------------
# Resize / Upsample
# --------------------------------------------------------------------------

COORD_MODES = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn"]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


@EXAMPLES
@given(st.data(), st.sampled_from(COORD_MODES), st.sampled_from(NEAREST_MODES), st.booleans())
def test_resize_nearest(data, coord, nearest, by_sizes):
    shape = [1, data.draw(st.integers(1, 3)), data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))]
    params = quant_params(data, shape, 1, asymmetric=True)
    if by_sizes:
        sizes = [1, shape[1], data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))]
        names, inits = ["q", "", "", "sizes"], ints("sizes", sizes)
    else:
        sc = [1.0, 1.0] + [data.draw(st.sampled_from([0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 2.5])) for _ in range(2)]
        names, inits = ["q", "", "scales"], {"scales": np.array(sc, dtype=np.float32)}
    node = helper.make_node("Resize", names, ["y"], mode="nearest", coordinate_transformation_mode=coord, nearest_mode=nearest)
    y = check(quantized([node], shape, ["y"], params, inits, opset=19), ["y"], exact=False)["y"]
    assert y.is_scaled_int


@pytest.mark.parametrize(
    "op,opset,factors",
    [
        ("Resize", 10, [1.0, 1.0, 2.0, 3.0]),
        ("Resize", 10, [1.0, 1.0, 0.5, 1.5]),
        ("Upsample", 9, [1.0, 1.0, 2.0, 1.5]),
        ("Upsample", 7, [1.0, 1.0, 3.0, 2.0]),
    ],
)
def test_legacy_nearest(op, opset, factors):
    shape = [1, 2, 4, 4]
    params = {"s": np.array([1, 0.25], dtype=np.float32).reshape(1, 2, 1, 1), "z": np.float32(0), "bw": np.float32(4)}
    if opset == 7:
        node = helper.make_node(op, ["q"], ["y"], mode="nearest", scales=factors)
        inits = {}
    else:
        node = helper.make_node(op, ["q", "scales"], ["y"], mode="nearest")
        inits = {"scales": np.array(factors, dtype=np.float32)}
    rep = check(quantized([node], shape, ["y"], params, inits, opset=opset), ["y"])
    assert rep["y"].shape == (1, 2, int(4 * factors[2]), int(4 * factors[3]))


@EXAMPLES
@given(st.data(), st.sampled_from(["linear", "cubic"]), st.sampled_from(COORD_MODES[:5]), st.sampled_from([-0.75, -0.5]))
def test_resize_interpolating_is_sound(data, mode, coord, a):
    shape = [1, 2, data.draw(st.integers(2, 5)), data.draw(st.integers(2, 5))]
    params = quant_params(data, shape, 1, asymmetric=True)
    sc = [1.0, 1.0] + [data.draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0])) for _ in range(2)]
    node = helper.make_node("Resize", ["q", "", "scales"], ["y"], mode=mode, coordinate_transformation_mode=coord, cubic_coeff_a=a)
    m = quantized([node], shape, ["y"], params, {"scales": np.array(sc, dtype=np.float32)}, opset=13)
    y = check(m, ["y"], exact=False)["y"]
    assert not y.exact and not y.is_scaled_int and np.all(np.isfinite(y.hi))
    # sharp input (alternating extremes) makes cubic overshoot; it must stay inside
    x = np.where(np.indices(shape).sum(axis=0) % 2 == 0, SPEC[1], SPEC[0])
    assert_contains(y, execute(m, {"x": x})["y"])


def test_resize_nearest_common_factors_are_exact_repeats():
    spec = ResizeSpec("nearest", "asymmetric", "floor", (np.float32(2),), (8,), None)
    lo, hi = nearest_candidates(spec, 0, 4)
    np.testing.assert_array_equal(lo, np.repeat(np.arange(4), 2))
    np.testing.assert_array_equal(lo, hi)


@pytest.mark.parametrize("coord,nearest,L,M", [("asymmetric", "round_prefer_ceil", 7, 2), ("half_pixel_symmetric", "floor", 3, 1), ("half_pixel_symmetric", "floor", 5, 3)])
def test_resize_nearest_near_ties_are_sound(coord, nearest, L, M):
    """Coordinates within float32 rounding of a tie: onnxruntime picks a
    neighbour that correctly rounded float32 would not; both are admitted."""
    shape = [1, 2, 1, L]
    params = {"s": np.array([1, 0.25], dtype=np.float32).reshape(1, 2, 1, 1), "z": np.float32(0), "bw": np.float32(4)}
    node = helper.make_node("Resize", ["q", "", "", "sizes"], ["y"], mode="nearest", coordinate_transformation_mode=coord, nearest_mode=nearest)
    m = quantized([node], shape, ["y"], params, ints("sizes", [1, 2, 1, M]), opset=19)
    rep = sira.analyze(m, SPEC)
    assert not rep["y"].exact and rep["y"].is_scaled_int
    x = np.broadcast_to(np.linspace(-8, 7, L) * 0.999, shape)
    assert_contains(rep["y"], execute(m, {"x": x})["y"])
    assert_contains(rep["y"], execute(m, {"x": x[..., ::-1]})["y"])


def test_resize_tf_crop_and_resize_includes_extrapolation():
    shape = [1, 1, 4, 4]
    params = {"s": np.float32(0.5), "z": np.float32(0), "bw": np.float32(4)}
    node = helper.make_node("Resize", ["q", "roi", "scales"], ["y"], mode="nearest", coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=9.0)
    inits = {"roi": np.array([0, 0, -0.5, 0, 1, 1, 1.5, 1], dtype=np.float32), "scales": np.array([1, 1, 2, 1], dtype=np.float32)}
    y = check(quantized([node], shape, ["y"], params, inits), ["y"], exact=False)["y"]
    assert np.all(y.hi == 9.0) and np.all(y.lo == -4.0)


def test_cubic_negative_mass_bound():
    """The per-axis bound -a/4 on the negative taps of the Keys kernel."""
    for a in (-0.5, -0.75, -1.0, -2.0):
        t = np.linspace(0, 1, 1001)
        d = np.stack([1 + t, t, 1 - t, 2 - t])
        w = np.where(d <= 1, (a + 2) * d**3 - (a + 3) * d**2 + 1, a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a)
        np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-12)
        assert -np.minimum(w, 0).sum(axis=0).max() <= -a / 4 + 1e-12


# --------------------------------------------------------------------------
# Cast
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "to,exact,grid",
    [
        (TensorProto.INT8, True, True),
        (TensorProto.INT32, True, True),
        (TensorProto.FLOAT, True, True),
        (TensorProto.DOUBLE, True, True),
        (TensorProto.FLOAT16, True, False),
        (TensorProto.BOOL, False, True),
        (TensorProto.UINT8, False, True),
    ],
)
def test_cast(to, exact, grid):
    shape = [1, 3, 2]
    params = {"s": np.array([1, 0.3, 0.25], dtype=np.float32).reshape(1, 3, 1), "z": np.float32(0), "bw": np.float32(4)}
    nodes = [helper.make_node("Cast", ["q"], ["c"], to=to), helper.make_node("Cast", ["c"], ["y"], to=TensorProto.FLOAT)]
    rep = check(quantized(nodes, shape, ["y"], params), ["c", "y"], exact=exact)
    assert rep["c"].exact == exact and rep["c"].is_scaled_int == grid
    if to == TensorProto.UINT8:
        assert rep["c"].int_bounds() == (0, 255) and rep["c"].notes


def test_cast_to_int_covers_float32_rounding():
    """0.7f * 10 is 6.99999988 exactly but 7.0 in float32: the cast sees 7."""
    params = {"s": np.float32(0.7), "z": np.float32(0), "bw": np.float32(5)}
    nodes = [helper.make_node("Cast", ["q"], ["c"], to=TensorProto.INT32), helper.make_node("Cast", ["c"], ["y"], to=TensorProto.FLOAT)]
    m = quantized(nodes, [2], ["y"], params, signed=0)
    c = sira.analyze(m, (0.0, 7.0))["c"]
    assert c.int_bounds() == (0, 7) and not c.exact
    assert_contains(c, execute(m, {"x": np.full([2], 7.0)})["c"])


# --------------------------------------------------------------------------
# malformed nodes
# --------------------------------------------------------------------------


def test_dynamic_reshape_shape_is_an_error():
    with pytest.raises(RuleError, match=r"shape \(input 1\) must be a constant"):
        rule_outputs("Reshape", [dyn((2, 3)), ScaledIntRange.real((2,), 1, 6)])


def test_dynamic_reshape_shape_in_a_model_names_the_node():
    shape = [2, 3]
    params = {"s": np.float32(0.5), "z": np.float32(0), "bw": np.float32(4)}
    nodes = [
        quant_node("x", "s", "z", "bw", "q"),
        quant_node("t", "one", "z", "bw", "tq", signed=0),
        helper.make_node("Cast", ["tq"], ["shp"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["q", "shp"], ["y"], name="reshape_me"),
    ]
    m = make_model(nodes, {"x": shape, "t": [2]}, {"y": None}, {**params, "one": np.float32(1)})
    with pytest.raises(SiraError, match=r"reshape_me.*must be a constant"):
        sira.analyze(m, SPEC)


@pytest.mark.parametrize(
    "op,inputs,attrs,match",
    [
        ("Transpose", [dyn((2, 3, 4))], {"perm": [0, 0, 1]}, "not a permutation"),
        ("Transpose", [dyn((2, 3))], {"perm": [1, 0, 2]}, "not a permutation"),
        ("Reshape", [dyn((2, 3)), ScaledIntRange.constant(np.array([4, -1]))], {}, "cannot infer"),
        ("Squeeze", [dyn((2, 3)), ScaledIntRange.constant(np.array([1]))], {}, "length 3, not 1"),
        ("Gather", [dyn((2, 3)), ScaledIntRange.constant(np.array([3]))], {"axis": 1}, "outside"),
        ("Slice", [dyn((4,)), *(ScaledIntRange.constant(np.array([v])) for v in (0, 4, 0, 0))], {}, "step is 0"),
        ("Concat", [dyn((2, 3)), dyn((3, 3))], {"axis": 1}, "differ outside"),
        ("Flatten", [dyn((2, 3))], {"axis": 3}, "out of range"),
        ("Pad", [dyn((2, 3)), ScaledIntRange.constant(np.array([1, 1]))], {}, "begin and an end"),
        ("Resize", [dyn((1, 2)), None, None, None], {}, "either scales or sizes"),
        ("DepthToSpace", [dyn((1, 3, 2, 2))], {"blocksize": 2}, "divisible"),
    ],
)
def test_malformed_parameters(op, inputs, attrs, match):
    with pytest.raises(RuleError, match=match):
        rule_outputs(op, inputs, attrs=attrs)


def test_split_bad_sizes_and_shape_mismatch():
    with pytest.raises(RuleError, match="summing to the axis length 5"):
        rule_outputs("Split", [dyn((5, 2)), ScaledIntRange.constant(np.array([2, 2]))], [None, None])
    with pytest.raises(RuleError, match="shape inference says"):
        rule_outputs("Transpose", [dyn((2, 3))], [(2, 3)])
