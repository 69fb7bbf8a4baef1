"""Multi-stage accumulation (sira.accumulation): the adder tree's partial
sum and the fold accumulator of a folded MVAU/VVAU, their proven ranges
checked exhaustively on small layers, and the wrap-around argument that
makes the narrower registers exact, replayed with two's-complement
arithmetic of the stated widths."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sira import hw
from sira.accumulation import accumulation, tree_level_bits
from sira.cost import mvau as mvau_cost
from sira.errors import SiraError
from sira.hw import StreamType
from sira.layer_costs import layer_cost
from sira.multipliers import adder_tree


def mvau(weights, in_type, bounds, simd, pe=1, acc_range=None, **kw):
    w = np.asarray(weights, dtype=np.int64)
    mw, mh = w.shape
    if acc_range is None:
        lo, hi = (np.asarray(b, dtype=np.int64).reshape(-1, 1) for b in bounds)
        acc_range = (int(np.minimum(w * lo, w * hi).sum(axis=0).min()), int(np.maximum(w * lo, w * hi).sum(axis=0).max()))
    acc_type = StreamType.for_range(*acc_range)
    wtype = StreamType.bipolar() if np.all(np.abs(w) == 1) else StreamType.for_range(int(w.min()), int(w.max()))
    return hw.MVAU(name="mv", inputs=("x",), outputs=("y",), in_shape=(1, mw), out_shape=(1, mh), in_type=in_type,
                   out_type=acc_type, mw=mw, mh=mh, weights=w, weight_type=wtype, acc_type=acc_type, acc_range=acc_range,
                   pe=pe, simd=simd, input_bounds=None if bounds is None else np.asarray(bounds), **kw)  # fmt: skip


def wrap(v: int, bits: int, signed: bool) -> int:
    """``v`` assigned to an ap_int/ap_uint of ``bits`` (AP_WRAP: modulo 2**bits)."""
    v &= (1 << bits) - 1
    return v - (1 << bits) if signed and v >> (bits - 1) else v


def kernel_sums(layer, x) -> tuple[list, bool]:
    """The dot products as the generated MVAU computes them: each chunk's
    terms added one by one into partial_t, the chunks into the accumulator,
    every assignment wrapped to its proven width; and whether any running
    sum left its register's range on the way (so the wrap mattered)."""
    a = accumulation(layer)
    p_type, acc_type = StreamType.for_range(*a.partial_range), StreamType.for_range(*a.acc_range)
    left = False
    out = []
    for j in range(layer.mh):
        acc = 0
        for f in range(a.folds):
            partial = 0
            for s in range(a.simd):
                exact = partial + int(layer.weights[f * a.simd + s, j]) * int(x[f * a.simd + s])
                partial = wrap(exact, p_type.bits, p_type.signed)
                left |= exact != partial
            exact = acc + partial
            acc = wrap(exact, acc_type.bits, acc_type.signed)
            left |= exact != acc
        out.append(acc)
    return out, left


#: inputs in [1, 2] of a UINT2 stream, weights +1 then -1 (as in tests/test_hls_kernels.py)
ADVERSARIAL = dict(weights=[[1, 1], [-1, 1], [1, -1], [-1, -1]], in_type=StreamType(2, False), bounds=[[1] * 4, [2] * 4], simd=2)


def test_adversarial_prefix_is_exact_under_wrap_around():
    """Column 0 sums +x - x per chunk (partial in [-1, 1], but its first
    product reaches 2); column 1's first chunk reaches 4 while its total
    stays in [-2, 2]. The proven registers are narrower than the prefixes,
    and wrapped arithmetic still gives every exact dot product."""
    layer = mvau(**ADVERSARIAL)
    a = accumulation(layer)
    assert a.proven and a.term_range == (-2, 2) and a.term_bits == 3
    assert (a.partial_lo, a.partial_hi) == ((-1, -4), (1, 4)) and a.partial_bits == 4
    assert (a.acc_lo, a.acc_hi) == ((-2, -2), (2, 2)) and a.acc_range == (-2, 2) and a.acc_bits == 3
    assert a.partial_channel_bits == [2, 4] and a.acc_channel_bits == [3, 3]
    assert a.tree_level_bits == (4,)
    wrapped = False
    for x in itertools.product((1, 2), repeat=4):
        got, left = kernel_sums(layer, x)
        assert got == [int(v) for v in np.asarray(x) @ layer.weights]
        wrapped |= left
    assert wrapped  # some prefix did leave its register: the wrap was needed


def test_ranges_are_attained_and_wrapped_sums_exact():
    """Random small layers: enumerating every input inside the bounds
    reaches exactly the proven partial-sum and accumulator ranges per
    channel, and the wrapped two-stage sums equal the exact ones."""
    rng = np.random.default_rng(7)
    for _ in range(6):
        mw, mh, simd = 6, 3, int(rng.choice([2, 3]))
        lo = rng.integers(-3, 2, size=mw)
        bounds = np.stack([lo, lo + rng.integers(0, 3, size=mw)])
        w = rng.integers(-3, 4, size=(mw, mh))
        layer = mvau(w, StreamType(3, True), bounds, simd)
        a = accumulation(layer)
        chunks_seen = [set() for _ in range(mh)]
        sums_seen = [set() for _ in range(mh)]
        for x in itertools.product(*[range(int(bounds[0, i]), int(bounds[1, i]) + 1) for i in range(mw)]):
            x = np.asarray(x)
            exact = x @ w
            got, _ = kernel_sums(layer, x)
            assert got == [int(v) for v in exact]
            for j in range(mh):
                sums_seen[j].add(int(exact[j]))
                for f in range(mw // simd):
                    chunks_seen[j].add(int(x[f * simd:(f + 1) * simd] @ w[f * simd:(f + 1) * simd, j]))
        assert [min(c) for c in chunks_seen] == list(a.partial_lo) and [max(c) for c in chunks_seen] == list(a.partial_hi)
        assert [min(c) for c in sums_seen] == list(a.acc_lo) and [max(c) for c in sums_seen] == list(a.acc_hi)


def test_xnor_layers_count_agreements():
    """An XNOR MVAU's terms are agreement bits: the tree counts up to SIMD,
    the accumulator up to MW (FINN's popcount width), and a stuck input
    narrows both."""
    w = np.array([[1, -1], [1, 1], [-1, 1], [1, 1], [-1, -1], [1, -1], [1, 1], [-1, 1]])
    layer = mvau(w, StreamType.bipolar(), [[-1] * 8, [1] * 8], simd=4)
    a = accumulation(layer)
    assert a.popcount and a.term_range == (0, 1) and a.partial_range == (0, 4) and a.acc_range == (0, 8)
    assert (a.partial_bits, a.acc_bits) == (3, 4) == (3, layer.popcount_bits)
    stuck = mvau(w, StreamType.bipolar(), [[1] * 4 + [-1] * 4, [1] * 8], simd=4)
    b = accumulation(stuck)  # the first chunk's inputs are all +1: 3 agreements per column, fixed by the weights
    assert (b.partial_lo, b.partial_hi) == ((0, 0), (4, 4)) and (b.acc_lo, b.acc_hi) == ((3, 3), (7, 7))
    assert b.acc_range == (3, 7) and b.acc_bits == 3 < layer.popcount_bits


def test_tree_levels_and_their_cost():
    assert tree_level_bits(1, 5, 5) == ()
    assert tree_level_bits(5, 3, 5) == (4, 5, 5)  # capped at the partial-sum width from level 2
    assert tree_level_bits(8, 8, 16) == (9, 10, 11)
    assert adder_tree(8, 8) == adder_tree(8, 8, cap=16) and adder_tree(8, 8, cap=10) < adder_tree(8, 8)
    # refined: the tree priced from the proven widths, FINN mode unchanged by them
    w = np.ones((16, 4), dtype=np.int64)
    proven = mvau(w, StreamType(4, False), [[0] * 16, [1] * 16], simd=8)
    loose = mvau(w, StreamType(4, False), None, simd=8, acc_range=proven.acc_range)
    a = accumulation(proven)
    assert (a.term_bits, a.partial_bits) == (1, 4)
    assert layer_cost(proven, mode="refined").breakdown["adder_tree"] == adder_tree(8, 1, 4) < layer_cost(loose, mode="refined").breakdown["adder_tree"]
    assert layer_cost(proven, mode="finn").lut == layer_cost(loose, mode="finn").lut
    assert mvau_cost(mw=16, mh=4, pe=1, simd=8, w_bits=1, a_bits=4, mode="finn", tree=(1, 4)).lut == mvau_cost(
        mw=16, mh=4, pe=1, simd=8, w_bits=1, a_bits=4, mode="finn").lut


def test_vvau_sums_its_window_per_channel():
    w = np.array([[1, -2, 3, 1], [2, 2, -1, -1]])  # (channels, window)
    layer = hw.VVAU(name="dw", inputs=("x",), outputs=("y",), in_shape=(1, 1, 1, 8), out_shape=(1, 1, 1, 2),
                    in_type=StreamType(3, True), out_type=StreamType(6, True), channels=2, kernel=(2, 2), weights=w,
                    weight_type=StreamType(3, True), acc_type=StreamType(6, True), acc_range=(-16, 16), simd=2,
                    num_input_vectors=(1, 1), input_bounds=np.array([[0, -1], [2, 1]]))  # fmt: skip
    a = accumulation(layer)
    # channel 0, x in [0, 2]: chunks (1, -2) -> [-4, 2], (3, 1) -> [0, 8]; channel 1, x in [-1, 1]: (2, 2), (-1, -1)
    assert (a.partial_lo, a.partial_hi) == ((-4, -4), (8, 4))
    assert (a.acc_lo, a.acc_hi) == ((-4, -6), (10, 6))


def test_input_bounds_are_checked():
    with pytest.raises(SiraError, match="input_bounds are"):
        mvau(np.ones((4, 2)), StreamType(2, False), [[0] * 3, [1] * 3], simd=2, acc_range=(0, 4))
    with pytest.raises(SiraError, match="inside the input type"):
        mvau(np.ones((4, 2)), StreamType(2, False), [[0] * 4, [4] * 4], simd=2, acc_range=(0, 16))
    with pytest.raises(SiraError, match="inside the input type"):
        mvau(np.ones((4, 2)), StreamType(2, False), [[2] * 4, [1] * 4], simd=2, acc_range=(0, 16))


def test_wide_terms_stay_exact():
    """Products past 2**63 are bounded with Python integers, not wrapped int64."""
    big = 1 << 40
    w = np.array([[big, -big], [big, big]], dtype=np.int64)
    x_hi = (1 << 30) - 1
    acc = (-(big * x_hi), 2 * big * x_hi)
    layer = mvau(w, StreamType(32, True), [[0, 0], [x_hi, x_hi]], simd=1, acc_range=acc)
    a = accumulation(layer)
    assert a.term_range == (-big * x_hi, big * x_hi) and a.acc_range == acc
    assert (a.partial_lo, a.partial_hi) == ((0, -big * x_hi), (big * x_hi, big * x_hi))
    assert (a.acc_lo, a.acc_hi) == ((0, -big * x_hi), (2 * big * x_hi, big * x_hi))
