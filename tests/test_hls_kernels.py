"""C simulation of every HLS kernel on seeded-random hardware layers.

Each project builds layers of :mod:`sira.hw` directly (random shapes, widths,
signedness and folding, consistent with what :mod:`sira.transforms.to_hw`
produces), places many of them side by side (one g++ compile per project)
and checks with ``build_layers(..., run_csim=True)`` that the generated C++
is bit-exact with the integer reference on inputs spanning the whole input
type range: all-min, all-max and alternating frames, frames that drive every
MAC accumulator to both ends of its range, and random frames with the
extremes present.

* ``test_kernels_bit_exact``: four project groups (``mac``, ``elementwise``,
  ``movement``, ``wide``) on a few seeds, compiled concurrently;
* ``test_kernels_bit_exact_sweep`` (slow): more seeds, bigger shapes, more
  samples, and a ``ring`` group of line buffers whose rings are not a power
  of two rows;
* ``test_generated_loops_are_flat_and_divider_free``: every kernel's code is
  one pipelined loop at II=1 (two for a line buffer: its prefill first),
  with no '%' and no loop around a pipelined one (no compiler);
* ``test_references_match_plain_numpy`` and the hand examples: the integer
  references against straightforward loop implementations (no compiler).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import json
import math
import os
from typing import Optional

import numpy as np
import pytest

from sira import hw
from sira import memory as M
from sira.accumulation import accumulation
from sira.devices import get_part
from sira.estimate import layer_cost
from sira.hw import StreamType
from sira.hls.kernels import KERNELS
from sira.lint import estimate_resources
from sira.requant import find_integer_requant
from sira.hls.simulate import unavailable


_SKIP = unavailable()
pytestmark = pytest.mark.skipif(bool(_SKIP), reason=f"C simulation unavailable: {_SKIP}")


# --------------------------------------------------------------------------
# random building blocks
# --------------------------------------------------------------------------

BIPOLAR = StreamType.bipolar()


def pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def fold(rng, n: int) -> int:
    """A legal folding factor of a dimension of size ``n``, more than 1
    whenever ``n`` allows it (1 is covered by the many odd sizes)."""
    ds = divisors(n)
    return pick(rng, ds[1:] if len(ds) > 1 and rng.random() < 0.8 else ds)


def int_type(rng, signed: Optional[bool] = None, lo_bits: int = 1, hi_bits: int = 8) -> StreamType:
    signed = bool(rng.integers(2)) if signed is None else signed
    bits = int(rng.integers(max(lo_bits, 2 if signed else 1), hi_bits + 1))
    return StreamType(bits, signed)


def any_type(rng, bipolar: float = 0.2, hi_bits: int = 8) -> StreamType:
    if rng.random() < bipolar:
        return BIPOLAR
    return int_type(rng, hi_bits=hi_bits)


def type_of(lo: int, hi: int, widen: int = 0) -> StreamType:
    t = StreamType.for_range(lo, hi)
    return StreamType(t.bits + widen, t.signed) if widen else t


def span(types) -> tuple[int, int]:
    return min(t.min for t in types), max(t.max for t in types)


def rand_values(rng, shape, lo: int, hi: int) -> np.ndarray:
    """Integers in [lo, hi], the two extremes always present when there is room."""
    v = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    if v.size >= 2:
        flat = v.reshape(-1)
        flat[int(rng.integers(flat.size))] = lo
        flat[int(rng.integers(flat.size))] = hi
    return v


def weights_of(rng, shape, kind: str, bits: int) -> tuple[np.ndarray, StreamType]:
    """Weights of ``kind`` (bipolar, signed, unsigned) and their type, as
    to_hw types them (bipolar when +-1 only, else the narrowest range type)."""
    if kind == "bipolar":
        w = rng.choice(np.array([-1, 1]), size=shape)
        w.reshape(-1)[0], w.reshape(-1)[-1] = -1, 1
        return w.astype(np.int64), BIPOLAR
    t = StreamType(bits, kind == "signed")
    w = rand_values(rng, shape, t.min, t.max)
    if kind == "signed" and np.all(np.abs(w) == 1):
        w.reshape(-1)[0] = 0  # keep it an integer (not bipolar) weight set
    return w, StreamType.for_range(int(w.min()), int(w.max()))


def mac_corners(w: np.ndarray, in_type: StreamType, axis: int, vectors: int) -> list[np.ndarray]:
    """Two inputs of a MAC whose accumulators reach the ends of
    :func:`mac_range`: each input at the extreme its weight's sign asks for
    (for the output with the largest, then the smallest, reachable sum).
    ``axis`` 0: ``w`` is (MW, MH), every vector serves one output; 1: ``w``
    is (C, K), the window (K, C) serves every channel at once."""
    lo, hi = in_type.min, in_type.max
    w = w.astype(np.int64)
    frames = []
    for sign in (1, -1):
        if axis == 0:
            reach = (np.where(w > 0, hi, lo) * w).sum(axis=0) if sign > 0 else (np.where(w > 0, lo, hi) * w).sum(axis=0)
            j = int(np.argmax(reach)) if sign > 0 else int(np.argmin(reach))
            vec = np.where(w[:, j] > 0, hi, lo) if sign > 0 else np.where(w[:, j] > 0, lo, hi)
        else:
            vec = (np.where(w > 0, hi, lo) if sign > 0 else np.where(w > 0, lo, hi)).T.reshape(-1)  # (K, C) order
        frames.append(np.tile(vec, vectors))
    return frames


def mac_range(w: np.ndarray, in_type: StreamType, axis: int) -> tuple[int, int]:
    """Exact accumulator range: per output, the sum over the reduced axis of
    the smallest/largest product over the input range."""
    w = w.astype(object)
    lo_prod = np.minimum(w * in_type.min, w * in_type.max)
    hi_prod = np.maximum(w * in_type.min, w * in_type.max)
    return int(lo_prod.sum(axis=axis).min()), int(hi_prod.sum(axis=axis).max())


@dataclasses.dataclass
class Activation:
    thresholds: np.ndarray
    threshold_type: StreamType
    bias: int
    scale: int
    out_type: StreamType

    requant: object = None

    def fields(self) -> dict:
        return dict(thresholds=self.thresholds, threshold_type=self.threshold_type, activation_bias=self.bias, activation_scale=self.scale,
                    requant=self.requant)


def activation(rng, rows: int, lo: int, hi: int, steps: int, bipolar_out: bool = False, hits=None) -> Activation:
    """Unsorted thresholds with repeats around [lo, hi] (some always fire,
    some never), a random bias/scale and the output type they need.
    ``hits[channel]`` are values the compared input takes on the all-min
    and all-max frames: they become thresholds too, so ``x == t`` occurs."""
    t = rng.integers(lo - 2, hi + 3, size=(rows, steps), dtype=np.int64)
    if steps >= 3:
        t[:, 1] = t[:, 0]  # a repeated threshold in every row
    if t.size:
        t.reshape(-1)[0] = lo  # always fires
    if hits is not None and steps >= 2:
        for r in range(rows):
            for k, v in enumerate(hits[r][: steps - 1]):
                t[r, steps - 1 - k] = int(v)
    ttype = StreamType.for_range(min(int(t.min(initial=lo)), lo), max(int(t.max(initial=hi)), hi))
    if bipolar_out:
        assert steps == 1
        return Activation(t, ttype, -1, 2, BIPOLAR)
    bias, scale = pick(rng, [(0, 1), (0, 1), (int(rng.integers(-4, 5)), pick(rng, [1, 2, -1, 3]))])
    ends = (bias, bias + scale * steps)
    return Activation(t, ttype, bias, scale, type_of(min(ends), max(ends), widen=int(rng.integers(2))))


def integer_activation(rng, rows: int, lo: int, hi: int, steps: int) -> Activation:
    """Evenly spaced steps n(x) = clip(floor((p*x + r) / d), 0, steps) per
    row (random p, d, r spanning [lo, hi], as a scale/bias/quantizer chain
    gives), with the integer requantizer that computes them: ``fields()``
    then builds the layer with an integer unit."""
    T = []
    for _ in range(rows):
        d = int(rng.integers(1, 40))
        p = max(1, int(round(steps * d / max(1, hi - lo) * rng.uniform(0.5, 2.0))))
        r = int(rng.integers(-p * hi, -p * lo + 1)) if hi > lo else 0
        # T_k = the least x with p*x + r >= k*d, clipped to the range as the lowering does
        T.append([min(max(-((r - k * d) // p), lo), hi + 1) for k in range(1, steps + 1)])
    t = np.array(T, dtype=np.int64)
    act = Activation(t, StreamType.for_range(min(int(t.min()), lo), max(int(t.max()), hi)), 0, 1, StreamType.for_range(0, steps))
    act.requant = find_integer_requant(t, lo, hi)
    assert act.requant is not None
    return act


# --------------------------------------------------------------------------
# a project of independent layers
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Source:
    shape: tuple[int, ...]
    type: StreamType
    multiple: int = 1  # values are multiples of this (exact division tests)
    corners: tuple = ()  # frames reaching a reader's extreme results (its accumulator range)
    bounds: Optional[np.ndarray] = None  # (2, last axis): every element's own proven range inside the type


class Net:
    """Layers in dataflow order and the input tensors they read."""

    def __init__(self, rng, big: bool = False):
        self.rng = rng
        self.big = big
        self.layers: list[hw.HWLayer] = []
        self.sources: dict[str, Source] = {}
        self.count = 0

    def name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}{self.count}"

    def source(self, shape, t: StreamType, multiple: int = 1, corners=()) -> str:
        name = f"in{len(self.sources)}_{self.count}"
        self.sources[name] = Source(tuple(shape), t, multiple, tuple(corners))
        return name

    def add(self, layer: hw.HWLayer) -> tuple[str, ...]:
        self.layers.append(layer)
        return layer.outputs

    def size(self, small: list[int], large: list[int]) -> int:
        return pick(self.rng, small + large if self.big else small)

    def samples(self, n: int) -> list[dict[str, np.ndarray]]:
        """``n`` frames: every input at its minimum, at its maximum,
        alternating min/max, the inputs' corner frames (where they have
        some), then random values with both extremes present."""
        frames = []
        for k in range(n):
            frame = {}
            for name, s in self.sources.items():
                if s.type.kind == "bipolar":
                    lo, hi = -1, 1
                else:
                    lo = -((-s.type.min) // s.multiple) * s.multiple
                    hi = (s.type.max // s.multiple) * s.multiple
                size = int(np.prod(s.shape))
                if s.bounds is not None:  # element-wise ranges: the same kinds of frames within them
                    lo, hi = (np.broadcast_to(b, s.shape).reshape(-1) for b in s.bounds)
                if s.bounds is not None and k >= 3 + len(s.corners):
                    v = lo + (self.rng.random(size) * (hi - lo + 1)).astype(np.int64)
                elif k == 0:
                    v = np.full(size, lo)
                elif k == 1:
                    v = np.full(size, hi)
                elif k == 2:
                    v = np.where(np.arange(size) % 2 == 0, lo, hi)
                elif k - 3 < len(s.corners):
                    v = np.asarray(s.corners[k - 3]).reshape(-1)
                elif s.type.kind == "bipolar":
                    v = self.rng.choice(np.array([-1, 1]), size=size)
                else:
                    v = rand_values(self.rng, size, lo // s.multiple, hi // s.multiple) * s.multiple
                frame[name] = np.asarray(v, dtype=np.int64).reshape(s.shape)
            frames.append(frame)
        return frames


def image(net: Net, hi: int = 5, cs=(1, 2, 3, 4, 6)) -> tuple[int, int, int]:
    rng = net.rng
    return int(rng.integers(1, hi + 1)), int(rng.integers(1, hi + 1)), net.size(list(cs), [8, 12])


def niv_shape(net: Net) -> tuple[int, ...]:
    return pick(net.rng, [(), (), (2,), (2, 3)] + ([(4, 5)] if net.big else []))


# -- compute layers ----------------------------------------------------------


def add_mvau(net: Net, *, in_type=None, w_kind=None, thr: Optional[str] = None, steps: Optional[int] = None, x: Optional[str] = None,
             mw: Optional[int] = None, niv: Optional[tuple] = None, pe=None, simd=None, bipolar_out: bool = False,
             thr_mem: str = "auto", mh: Optional[int] = None, integer: bool = False) -> str:
    """An MVAU; ``thr`` is None (raw accumulator), ``channel`` (a row per
    output) or ``shared`` (one row); ``integer`` builds evenly spaced
    thresholds as an integer requantizer. Thresholds in block RAM (``thr_mem``)
    make the cost model pick the linear threshold unit over binary search."""
    rng = net.rng
    in_type = in_type or any_type(rng)
    mw = mw or net.size([2, 3, 4, 6, 8, 12], [16, 24, 36])
    mh = mh or net.size([1, 2, 3, 4, 6], [8, 10, 16])
    niv = niv_shape(net) if niv is None else tuple(niv)
    w_kind = w_kind or pick(rng, ["bipolar", "signed", "unsigned"])
    w, wtype = weights_of(rng, (mw, mh), w_kind, int(rng.integers(1 if w_kind == "unsigned" else 2, 5)))
    acc_range = mac_range(w, in_type, axis=0)
    acc_type = StreamType.for_range(*acc_range)
    fields, out_type = {}, acc_type
    if thr:
        steps = steps if steps is not None else pick(rng, [1, 3, 4, 7])
        colsum = w.sum(axis=0)
        hits = [(in_type.min * int(cs), in_type.max * int(cs)) for cs in colsum]
        rows = mh if thr == "channel" else 1
        act = integer_activation(rng, rows, *acc_range, steps) if integer else activation(rng, rows, *acc_range, steps, bipolar_out, hits)
        fields, out_type = act.fields(), act.out_type
    if x is None:
        x = net.source((1, *niv, mw), in_type, corners=mac_corners(w, in_type, 0, int(np.prod(niv))))
    name = net.name("mvau")
    return net.add(hw.MVAU(
        name=name, inputs=(x,), outputs=(f"{name}_out",), in_shape=(1, *niv, mw), out_shape=(1, *niv, mh), in_type=in_type,
        out_type=out_type, mw=mw, mh=mh, num_input_vectors=niv, weights=w, weight_type=wtype, acc_type=acc_type,
        acc_range=acc_range, pe=pe or fold(rng, mh), simd=simd or fold(rng, mw), mem_style=pick(rng, ["auto", "lut", "block"]),
        threshold_mem_style=thr_mem, **fields,
    ))[0]  # fmt: skip


def add_bounded_mvau(net: Net, *, weights: np.ndarray, in_type: StreamType, bounds: np.ndarray, simd: int, pe: int = 1) -> str:
    """An MVAU whose inputs have proven per-row ranges (``bounds``, (2, MW))
    inside a wider ``in_type``: its adder tree and accumulator get the
    widths :mod:`sira.accumulation` proves from them. The frames stay inside
    the bounds and include, per output, the inputs that reach its extremes."""
    mw, mh = weights.shape
    lo, hi = (np.asarray(b, dtype=np.int64).reshape(-1, 1) for b in bounds)
    w = weights.astype(np.int64)
    sums_lo, sums_hi = np.minimum(w * lo, w * hi).sum(axis=0), np.maximum(w * lo, w * hi).sum(axis=0)
    acc_lo, acc_hi = int(sums_lo.min()), int(sums_hi.max())
    top, bottom = int(np.argmax(sums_hi)), int(np.argmin(sums_lo))  # the outputs reaching the layer's extremes
    corners = [np.where(w[:, top] > 0, hi[:, 0], lo[:, 0]), np.where(w[:, bottom] > 0, lo[:, 0], hi[:, 0])]
    acc_type = StreamType.for_range(acc_lo, acc_hi)
    wtype = BIPOLAR if np.all(np.abs(w) == 1) else StreamType.for_range(int(w.min()), int(w.max()))
    x = net.source((1, mw), in_type, corners=corners)
    if in_type.kind != "bipolar":  # (+-1 inputs span their type anyway)
        net.sources[x] = dataclasses.replace(net.sources[x], bounds=np.asarray(bounds))
    name = net.name("mvau")
    return net.add(hw.MVAU(
        name=name, inputs=(x,), outputs=(f"{name}_out",), in_shape=(1, mw), out_shape=(1, mh), in_type=in_type,
        out_type=acc_type, mw=mw, mh=mh, weights=w, weight_type=wtype, acc_type=acc_type, acc_range=(acc_lo, acc_hi),
        pe=pe, simd=simd, input_bounds=bounds,
    ))[0]  # fmt: skip


#: inputs in [1, 2] of a UINT2 stream, weights +1 then -1: every first
#: product of a chunk (and the first chunk of column 1) leaves the final
#: range, which wrap-around arithmetic must bring back exactly
ADVERSARIAL = dict(weights=np.array([[1, 1], [-1, 1], [1, -1], [-1, -1]]), in_type=StreamType(2, False),
                   bounds=np.array([[1, 1, 1, 1], [2, 2, 2, 2]]), simd=2)


def multistage_layers(net: Net) -> None:
    """MVAUs whose proven adder-tree width is strictly narrower than their
    accumulator's (SIMD > 1, SF > 1), an XNOR one, and the adversarial prefix."""
    rng = net.rng
    add_bounded_mvau(net, **ADVERSARIAL)
    mw = 24
    bound_lo = rng.integers(-6, 3, size=mw)
    bounds = np.stack([bound_lo, bound_lo + rng.integers(0, 5, size=mw)])
    w, _ = weights_of(rng, (mw, 4), "signed", 3)
    add_bounded_mvau(net, weights=w, in_type=StreamType(4, True), bounds=bounds, simd=4, pe=2)
    w, _ = weights_of(rng, (16, 3), "bipolar", 1)
    add_bounded_mvau(net, weights=w, in_type=BIPOLAR, bounds=np.array([[-1] * 16, [1] * 16]), simd=4)


def add_vvau(net: Net, *, thr: bool, in_type=None, x: Optional[str] = None, channels=None, kernel=None, ovec=None, pe=None,
             steps=None, thr_mem: str = "auto", integer: bool = False) -> str:
    rng = net.rng
    in_type = in_type or any_type(rng)
    c = channels or net.size([1, 2, 3, 4, 6], [8, 12])
    kernel = kernel or pick(rng, [(1, 2), (2, 2), (3, 1), (3, 3), (2, 3)])
    k = kernel[0] * kernel[1]
    ovec = ovec or (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    w_kind = pick(rng, ["bipolar", "signed", "unsigned"])
    w, wtype = weights_of(rng, (c, k), w_kind, int(rng.integers(1 if w_kind == "unsigned" else 2, 5)))
    acc_range = mac_range(w, in_type, axis=1)
    acc_type = StreamType.for_range(*acc_range)
    fields, out_type = {}, acc_type
    if thr:
        hits = [(in_type.min * int(rs), in_type.max * int(rs)) for rs in w.sum(axis=1)]
        steps = steps if steps is not None else pick(rng, [1, 2, 3, 6])
        act = integer_activation(rng, c, *acc_range, steps) if integer else activation(rng, c, *acc_range, steps, hits=hits)
        fields, out_type = act.fields(), act.out_type
    in_shape = (1, *ovec, k * c)
    if x is None:
        x = net.source(in_shape, in_type, corners=mac_corners(w, in_type, 1, int(np.prod(ovec))))
    name = net.name("vvau")
    return net.add(hw.VVAU(
        name=name, inputs=(x,), outputs=(f"{name}_out",), in_shape=in_shape, out_shape=(1, *ovec, c), in_type=in_type,
        out_type=out_type, channels=c, kernel=kernel, num_input_vectors=ovec, weights=w, weight_type=wtype, acc_type=acc_type,
        acc_range=acc_range, pe=pe or fold(rng, c), simd=1, mem_style=pick(rng, ["auto", "lut", "block"]), threshold_mem_style=thr_mem,
        **fields,
    ))[0]  # fmt: skip


def add_thresholding(net: Net, *, shared: bool, in_type=None, shape=None, x: Optional[str] = None, steps=None, pe=None,
                     integer: bool = False, mem: str = "auto") -> str:
    rng = net.rng
    in_type = in_type or any_type(rng, bipolar=0.15, hi_bits=10)
    if shape is None:
        h, w, c = image(net)
        shape = pick(rng, [(1, c), (1, h, w, c), (1, w, c)])
    c = shape[-1]
    steps = steps if steps is not None else pick(rng, [0, 1, 2, 3, 5, 8])  # 0: a constant output
    if integer:
        act = integer_activation(rng, 1 if shared else c, in_type.min, in_type.max, steps)
    else:
        act = activation(rng, 1 if shared else c, in_type.min, in_type.max, steps, hits=[(in_type.min, in_type.max)] * c)
    if x is None:
        x = net.source(shape, in_type)
    name = net.name("thr")
    return net.add(hw.Thresholding(
        name=name, inputs=(x,), outputs=(f"{name}_out",), in_shape=shape, out_shape=shape, in_type=in_type,
        out_type=act.out_type, channels=c, pe=pe or fold(rng, c), mem_style=mem, **act.fields(),
    ))[0]  # fmt: skip


def add_identity_thresholding(net: Net, *, shared: bool, in_type: StreamType, shape=(1, 2, 4)) -> str:
    """A Thresholding that outputs its input (thresholds lo+1..hi, bias lo;
    per channel, one or two thresholds at or below lo taken into the bias):
    a wire in the generated code."""
    c, lo, hi = shape[-1], in_type.min, in_type.max
    below = 0 if shared else 2
    row = np.concatenate([np.full(below, lo), np.arange(lo + 1, hi + 1)])
    x = net.source(shape, in_type)
    name = net.name("thr")
    return net.add(hw.Thresholding(
        name=name, inputs=(x,), outputs=(f"{name}_out",), in_shape=shape, out_shape=shape, in_type=in_type,
        out_type=in_type, channels=c, pe=2, thresholds=row[None, :] if shared else np.tile(row, (c, 1)),
        threshold_type=StreamType(in_type.bits + 1, True), activation_bias=lo - below,
    ))[0]  # fmt: skip


# -- elementwise ----------------------------------------------------------------


def _op_range(op: str, a: tuple[int, int], b_values) -> tuple[int, int]:
    """Exact output range of ``a <op> b`` for a in the interval ``a`` and b in
    ``b_values`` (every op is monotone or linear in a)."""
    outs = []
    for x in a:
        for y in b_values:
            x, y = int(x), int(y)
            outs.append({"Add": x + y, "Sub": x - y, "Mul": x * y, "Min": min(x, y), "Max": max(x, y), "Div": x // y if y else 0}[op])
    return min(outs), max(outs)


def add_elementwise_const(net: Net, op: str, style: str, *, x: Optional[str] = None, shape=None, in_type=None, pe=None) -> str:
    """``x <op> param`` with ``param`` one value (``scalar``), one per channel
    (``channel``, as (C,) or (1, 1, 1, C)), or one per element (``element``);
    a quarter of the params hold their integer values in a float64 array,
    which the kernel accepts too. ``Div`` reads multiples of 6 (exact division)."""
    rng = net.rng
    if shape is None:
        h, w, c = image(net, hi=4)
        if style == "channel":
            c = max(c, 2)  # one value per channel, not all equal
        if style == "element" and h * w == 1:
            w = 2  # one value per element, not one per channel
        shape = pick(rng, [(1, c), (1, h, w, c)]) if style != "element" else (1, h, w, c)
    c = shape[-1]
    in_type = in_type or (int_type(rng, hi_bits=6) if op != "Mul" else any_type(rng, bipolar=0.2, hi_bits=6))
    multiple = 1
    if op == "Div":
        in_type = int_type(rng, lo_bits=4, hi_bits=7)
        values = np.array([-3, -2, -1, 1, 2, 3, 6])
        multiple = 6
    elif op == "Mul":
        values = np.arange(-4, 5)
    else:
        values = np.arange(-9, 10)
    if style == "scalar":
        param = np.array(pick(rng, list(values)), dtype=np.int64).reshape(pick(rng, [(), (1,), (1, 1)]))
    elif style == "channel":
        param = rng.choice(values, size=c)
        if c > 1:
            param[0] = values[0] if param[1] != values[0] else values[-1]  # not all equal
        if len(shape) == 4 and rng.random() < 0.5:
            param = param.reshape(1, 1, 1, c)
    else:
        param = rng.choice(values, size=shape[1:] if rng.random() < 0.5 else shape)
        flat = param.reshape(-1)
        if flat.size > 1:
            flat[0] = values[0] if flat[1] != values[0] else values[-1]
    param = np.asarray(param, dtype=np.int64)
    if rng.random() < 0.25:
        param = param.astype(np.float64)  # integer values, float storage
    a_range = (in_type.min, in_type.max) if in_type.kind != "bipolar" else (-1, 1)
    if multiple > 1:
        a_range = (-((-a_range[0]) // multiple) * multiple, (a_range[1] // multiple) * multiple)
    lo, hi = _op_range(op, a_range, np.unique(param.astype(np.int64)))
    if x is None:
        x = net.source(shape, in_type, multiple)
    name = net.name(f"{op.lower()}_{style}")
    return net.add(hw.Elementwise(
        name=name, inputs=(x,), outputs=(f"{name}_out",), in_shape=shape, out_shape=shape, in_type=in_type,
        out_type=type_of(lo, hi, widen=int(rng.integers(2))), op=op, channels=c, param=param, pe=pe or fold(rng, c),
    ))[0]  # fmt: skip


def add_elementwise_streams(net: Net, op: str, *, a: Optional[str] = None, b: Optional[str] = None, shape=None, in_type=None,
                            rhs_type=None, pe=None) -> str:
    rng = net.rng
    if shape is None:
        h, w, c = image(net, hi=4)
        shape = pick(rng, [(1, c), (1, h, w, c)])
    c = shape[-1]
    in_type = in_type or any_type(rng, bipolar=0.1 if op == "Mul" else 0.0, hi_bits=7)
    rhs_type = rhs_type or any_type(rng, bipolar=0.15 if op == "Mul" else 0.0, hi_bits=7)
    lo, hi = _op_range(op, (in_type.min, in_type.max), (rhs_type.min, rhs_type.max))
    a = a or net.source(shape, in_type)
    b = b or net.source(shape, rhs_type)
    name = net.name(f"{op.lower()}_streams")
    return net.add(hw.Elementwise(
        name=name, inputs=(a, b), outputs=(f"{name}_out",), in_shape=shape, out_shape=shape, in_type=in_type,
        out_type=type_of(lo, hi), op=op, channels=c, rhs_type=rhs_type, pe=pe or fold(rng, c),
    ))[0]  # fmt: skip


def add_roundclip(net: Net, *, x: Optional[str] = None, shape=None, in_type=None, far: bool = False) -> str:
    rng = net.rng
    if shape is None:
        h, w, c = image(net, hi=4)
        shape = pick(rng, [(1, c), (1, h, w, c)])
    c = shape[-1]
    in_type = in_type or int_type(rng, lo_bits=3, hi_bits=10)
    lo, hi = in_type.min, in_type.max
    # a quantizer narrower than the stream, one that clips on one side only, or (far) one whose
    # range lies beyond the stream's: every value is clipped to a bound the stream cannot hold
    d = hi - lo
    q = pick(rng, [(hi + 3 * d + 64, hi + 4 * d + 64), (lo - 4 * d - 64, lo - 3 * d - 64)] if far else
             [(-4, 3), (0, 7), (-8, 7), (0, 15), (-1, 1), (lo, max(lo, hi // 2)), (lo + (hi - lo) // 3, hi)])
    clip_lo, clip_hi = min(q), max(q)
    out_lo, out_hi = min(max(lo, clip_lo), clip_hi), min(max(hi, clip_lo), clip_hi)
    x = x or net.source(shape, in_type)
    name = net.name("roundclip")
    return net.add(hw.Elementwise(
        name=name, inputs=(x,), outputs=(f"{name}_out",), in_shape=shape, out_shape=shape, in_type=in_type,
        out_type=type_of(out_lo, out_hi), op="RoundClip", channels=c, rounding=pick(rng, ["ROUND", "FLOOR", "CEIL"]),
        clip_lo=clip_lo, clip_hi=clip_hi, pe=fold(rng, c),
    ))[0]  # fmt: skip


def add_addstreams(net: Net, *, a: Optional[str] = None, b: Optional[str] = None, shape=None, in_type=None, in_type2=None, pe=None) -> str:
    rng = net.rng
    if shape is None:
        h, w, c = image(net, hi=4)
        shape = pick(rng, [(1, c), (1, h, w, c)])
    c = shape[-1]
    in_type = in_type or any_type(rng, bipolar=0.1, hi_bits=9)
    in_type2 = in_type2 or any_type(rng, bipolar=0.1, hi_bits=9)
    a = a or net.source(shape, in_type)
    b = b or net.source(shape, in_type2)
    name = net.name("addstreams")
    return net.add(hw.AddStreams(
        name=name, inputs=(a, b), outputs=(f"{name}_out",), in_shape=shape, out_shape=shape, in_type=in_type,
        in_type2=in_type2, out_type=type_of(in_type.min + in_type2.min, in_type.max + in_type2.max), channels=c, pe=pe or fold(rng, c),
    ))[0]  # fmt: skip


# -- padding, windows, pooling -----------------------------------------------


def add_gatemul(net: Net, *, x: Optional[str] = None, gate: Optional[str] = None, shape=None, in_type=None, gate_type=None, pe=None) -> str:
    """A feature map times a per-channel gate (squeeze-excite); ``gate`` may
    be a stream of shape (1, 1, 1, C) computed from ``x``."""
    rng = net.rng
    if shape is None:
        h, w, c = image(net, hi=4)
        shape = (1, h, w, c)
    c = shape[-1]
    in_type = in_type or int_type(rng, hi_bits=7)
    gate_type = gate_type or int_type(rng, hi_bits=6)
    lo, hi = _op_range("Mul", (in_type.min, in_type.max), (gate_type.min, gate_type.max))
    x = x or net.source(shape, in_type)
    gate = gate or net.source((1, 1, 1, c), gate_type)
    name = net.name("gatemul")
    return net.add(hw.GateMul(
        name=name, inputs=(x, gate), outputs=(f"{name}_out",), in_shape=shape, out_shape=shape, in_type=in_type,
        out_type=type_of(lo, hi), channels=c, gate_type=gate_type, pe=pe or fold(rng, c),
    ))[0]  # fmt: skip


def add_fmpadding(net: Net, *, x: Optional[str] = None, shape=None, in_type=None, padding=None, simd=None, value=None) -> str:
    rng = net.rng
    if shape is None:
        h, w, c = image(net)
        shape = (1, h, w, c)
    in_type = in_type or int_type(rng, hi_bits=9)
    padding = padding or tuple(int(v) for v in rng.integers(0, 3, size=4))
    if value is None:
        value = 0 if rng.random() < 0.6 else int(rng.integers(in_type.min, in_type.max + 1))
    pt, pl, pb, pr = padding
    out_shape = (1, shape[1] + pt + pb, shape[2] + pl + pr, shape[3])
    x = x or net.source(shape, in_type)
    name = net.name("pad")
    return net.add(hw.FMPadding(
        name=name, inputs=(x,), outputs=(f"{name}_out",), in_shape=shape, out_shape=out_shape, in_type=in_type, out_type=in_type,
        channels=shape[3], padding=padding, value=value, simd=simd or fold(rng, shape[3]),
    ))[0]  # fmt: skip


def window_geometry(rng, big: bool, dilation: bool, dilated: bool = False, skewed: bool = False):
    """(kernel, stride, dilation, ifm, ofm) of a random window; ``dilated``
    forces a kernel of at least 2x2 with dilation above 1 on both axes,
    ``skewed`` other strides on the two axes and at least 2x2 outputs."""
    kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    if kernel == (1, 1):
        kernel = pick(rng, [(1, 2), (2, 1), (3, 2)])
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    if skewed and stride[0] == stride[1]:
        stride = (stride[0], stride[0] % 3 + 1)
    dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if dilation else (1, 1)
    if dilated:
        kernel = (int(rng.integers(2, 4)), int(rng.integers(2, 4)))
        dil = (int(rng.integers(2, 4)), int(rng.integers(2, 4)))
    span_ = ((kernel[0] - 1) * dil[0] + 1, (kernel[1] - 1) * dil[1] + 1)
    extra = 6 if big else 3
    ifm = (span_[0] + int(rng.integers(0, extra + 1)), span_[1] + int(rng.integers(0, extra + 1)))
    if skewed:
        ifm = (max(ifm[0], span_[0] + stride[0]), max(ifm[1], span_[1] + stride[1]))
    ofm = ((ifm[0] - span_[0]) // stride[0] + 1, (ifm[1] - span_[1]) // stride[1] + 1)
    return kernel, stride, dil, ifm, ofm


def add_swg(net: Net, *, x: Optional[str] = None, in_type=None, channels=None, geometry=None, simd=None, depthwise=None,
            dilated: bool = False) -> str:
    rng = net.rng
    kernel, stride, dil, ifm, ofm = geometry or window_geometry(rng, net.big, dilation=True, dilated=dilated, skewed=not dilated)
    c = channels or net.size([1, 2, 3, 4, 6], [8])
    in_type = in_type or any_type(rng, bipolar=0.15)
    x = x or net.source((1, *ifm, c), in_type)
    name = net.name("swg")
    return net.add(hw.ConvolutionInputGenerator(
        name=name, inputs=(x,), outputs=(f"{name}_out",), in_shape=(1, *ifm, c), out_shape=(1, *ofm, kernel[0] * kernel[1] * c),
        in_type=in_type, out_type=in_type, channels=c, ifm_dim=ifm, ofm_dim=ofm, kernel=kernel, stride=stride, dilation=dil,
        depthwise=bool(rng.integers(2)) if depthwise is None else depthwise, simd=simd or fold(rng, c),
    ))[0]  # fmt: skip


def add_maxpool(net: Net, *, x: Optional[str] = None, in_type=None, channels=None, pe=None, geometry=None) -> str:
    rng = net.rng
    kernel, stride, _, ifm, ofm = geometry or window_geometry(rng, net.big, dilation=False, skewed=True)
    if geometry is None and rng.random() < 0.4:  # the usual non-overlapping pool
        stride = kernel
        ifm = (kernel[0] * int(rng.integers(1, 4)), kernel[1] * int(rng.integers(1, 4)))
        ofm = (ifm[0] // kernel[0], ifm[1] // kernel[1])
    c = channels or net.size([1, 2, 3, 4, 6], [8])
    in_type = in_type or any_type(rng, bipolar=0.15, hi_bits=9)
    x = x or net.source((1, *ifm, c), in_type)
    name = net.name("maxpool")
    return net.add(hw.StreamingMaxPool(
        name=name, inputs=(x,), outputs=(f"{name}_out",), in_shape=(1, *ifm, c), out_shape=(1, *ofm, c), in_type=in_type,
        out_type=in_type, channels=c, ifm_dim=ifm, ofm_dim=ofm, kernel=kernel, stride=stride, pe=pe or fold(rng, c),
    ))[0]  # fmt: skip


def add_pool(net: Net, *, glob: bool, x: Optional[str] = None, in_type=None, geometry=None, channels=None, pe=None) -> str:
    rng = net.rng
    if glob:
        h, w, _ = image(net)
        if h * w == 1:  # a 1x1 "window" has no adder (and no cost model): keep a real reduction
            w = 2
        kernel = stride = ifm = (h, w)
        ofm = (1, 1)
    else:
        kernel, stride, _, ifm, ofm = geometry or window_geometry(rng, net.big, dilation=False, skewed=True)
    c = channels or net.size([1, 2, 3, 4, 6], [8])
    in_type = in_type or int_type(rng, hi_bits=9)
    k = kernel[0] * kernel[1]
    out_type = type_of(k * in_type.min, k * in_type.max)
    x = x or net.source((1, *ifm, c), in_type)
    name = net.name("gpool" if glob else "pool")
    return net.add(hw.Pool(
        name=name, inputs=(x,), outputs=(f"{name}_out",), in_shape=(1, *ifm, c), out_shape=(1, *ofm, c), in_type=in_type,
        out_type=out_type, channels=c, ifm_dim=ifm, ofm_dim=ofm, kernel=kernel, stride=stride, function="sum",
        acc_type=out_type if rng.random() < 0.7 else None, pe=pe or fold(rng, c),
    ))[0]  # fmt: skip


# -- plumbing -------------------------------------------------------------------


def add_concat(net: Net, n: int, *, xs=None, in_types=None, spatial=None) -> str:
    rng = net.rng
    g = pick(rng, [1, 2, 3, 4])
    channels = tuple(g * int(rng.integers(1, 4)) for _ in range(n))
    in_types = in_types or tuple(any_type(rng, bipolar=0.25, hi_bits=9) for _ in range(n))
    spatial = spatial if spatial is not None else pick(rng, [(), (2,), (2, 3)])
    lo, hi = span(in_types)
    xs = xs or [net.source((1, *spatial, c), t) for c, t in zip(channels, in_types)]
    name = net.name("concat")
    return net.add(hw.Concat(
        name=name, inputs=tuple(xs), outputs=(f"{name}_out",), in_shape=(1, *spatial, channels[0]),
        out_shape=(1, *spatial, sum(channels)), in_type=in_types[0], out_type=type_of(lo, hi), channels=channels, in_types=in_types,
        simd=fold(rng, math.gcd(*channels)),
    ))[0]  # fmt: skip


def add_split(net: Net, n: int, *, x: Optional[str] = None, in_type=None) -> tuple[str, ...]:
    rng = net.rng
    g = pick(rng, [1, 2, 3])
    channels = tuple(g * int(rng.integers(1, 4)) for _ in range(n))
    in_type = in_type or any_type(rng, bipolar=0.2, hi_bits=9)
    spatial = pick(rng, [(), (3,), (2, 2)])
    x = x or net.source((1, *spatial, sum(channels)), in_type)
    name = net.name("split")
    return net.add(hw.Split(
        name=name, inputs=(x,), outputs=tuple(f"{name}_out{j}" for j in range(n)), in_shape=(1, *spatial, sum(channels)),
        out_shape=(1, *spatial, channels[0]), in_type=in_type, out_type=in_type, channels=channels, simd=fold(rng, math.gcd(*channels)),
    ))  # fmt: skip


def add_reshape(net: Net, x: str, in_shape, out_shape, t: StreamType) -> str:
    name = net.name("reshape")
    return net.add(hw.Reshape(
        name=name, inputs=(x,), outputs=(f"{name}_out",), in_shape=tuple(in_shape), out_shape=tuple(out_shape), in_type=t, out_type=t,
    ))[0]  # fmt: skip


def layer_of(net: Net, tensor: str) -> hw.HWLayer:
    return next(layer for layer in net.layers if tensor in layer.outputs)


# --------------------------------------------------------------------------
# the projects
# --------------------------------------------------------------------------


def mac_project(net: Net) -> None:
    """MVAU, VVAU and Thresholding variants, and two convolution chains."""
    rng = net.rng
    add_mvau(net, in_type=int_type(rng, signed=False), w_kind="signed")  # raw accumulator, unsigned input
    # step counts short of 2^B - 1: the binary search runs into its padding (never-firing thresholds)
    add_mvau(net, in_type=int_type(rng, signed=True), w_kind="bipolar", thr="channel", steps=pick(rng, [2, 4, 5, 6]))
    add_mvau(net, in_type=BIPOLAR, w_kind="bipolar", thr="channel", steps=1, bipolar_out=True)  # binarized layer (XNOR)
    add_mvau(net, in_type=BIPOLAR, w_kind="bipolar", mw=net.size([12, 16], [64]))  # XNOR-popcount, the dot product streamed
    add_mvau(net, in_type=BIPOLAR, w_kind=pick(rng, ["signed", "unsigned"]))
    add_mvau(net, in_type=int_type(rng, signed=True, lo_bits=4), w_kind="signed", thr="channel", steps=15, niv=(2, 3),
             mw=net.size([8, 12], [32, 48]))  # many thresholds: a binary-search unit
    add_mvau(net, in_type=int_type(rng, signed=False), w_kind="unsigned", thr="shared", steps=pick(rng, [2, 4, 6, 10]))
    add_mvau(net, thr="channel", steps=7, mh=4, pe=2, thr_mem="block")  # linear threshold unit
    add_vvau(net, thr=False)
    add_vvau(net, thr=True, channels=4, pe=2, steps=6, thr_mem="block")  # linear threshold unit
    if net.big:  # the sweep: more random variants
        add_mvau(net, in_type=any_type(rng), thr=pick(rng, [None, "channel", "shared"]), steps=int(rng.integers(0, 6)))
        add_vvau(net, thr=True)
    add_thresholding(net, shared=False)
    add_thresholding(net, shared=True)
    add_thresholding(net, shared=bool(rng.integers(2)), in_type=BIPOLAR, steps=pick(rng, [1, 2]))
    add_thresholding(net, shared=False, shape=(1, 2, 4), steps=3, pe=2, mem="block")  # one block RAM word a channel: linear
    # one row for every channel, searched by each PE over 4 channel folds: a binary unit holding the row once
    add_thresholding(net, shared=True, in_type=int_type(rng, signed=True, lo_bits=14, hi_bits=16), shape=(1, 2, 8), steps=63, pe=2)
    # convolution: padding -> sliding window -> MVAU with other folding (width converters)
    h, w, c = image(net, hi=4, cs=(2, 3, 4))
    t = int_type(rng, hi_bits=4)
    pad = add_fmpadding(net, shape=(1, h, w, c), in_type=t, padding=(1, 1, 1, 1), value=0)
    geometry = window_geometry(rng, False, dilation=False)
    kernel, stride = geometry[0], geometry[1]
    ifm = (h + 2, w + 2)
    if ifm[0] < kernel[0] or ifm[1] < kernel[1]:
        kernel = (min(kernel[0], ifm[0]), min(kernel[1], ifm[1]))
    ofm = ((ifm[0] - kernel[0]) // stride[0] + 1, (ifm[1] - kernel[1]) // stride[1] + 1)
    win = add_swg(net, x=pad, in_type=t, channels=c, geometry=(kernel, stride, (1, 1), ifm, ofm), depthwise=False)
    add_mvau(net, x=win, in_type=t, mw=kernel[0] * kernel[1] * c, niv=ofm, thr="channel")
    # depthwise convolution: padding -> sliding window (depthwise) -> VVAU
    h, w, c = image(net, hi=4, cs=(2, 4, 6))
    t = int_type(rng, signed=True, hi_bits=4)
    pad = add_fmpadding(net, shape=(1, h, w, c), in_type=t, padding=(1, 0, 1, 2), value=0)
    ifm = (h + 2, w + 2)
    kernel = (min(2, ifm[0]), min(3, ifm[1]))
    ofm = (ifm[0] - kernel[0] + 1, ifm[1] - kernel[1] + 1)
    win = add_swg(net, x=pad, in_type=t, channels=c, geometry=(kernel, (1, 1), (1, 1), ifm, ofm), depthwise=True)
    add_vvau(net, thr=True, in_type=t, x=win, channels=c, kernel=kernel, ovec=ofm)
    # identity thresholds (an input quantizer on the input's own grid): wires
    add_identity_thresholding(net, shared=True, in_type=StreamType(4, False))
    add_identity_thresholding(net, shared=False, in_type=StreamType(3, True))
    # integer requantizers: per channel and shared, an 8-bit output, folded
    add_mvau(net, in_type=int_type(rng, signed=True, lo_bits=3), w_kind="signed", thr="channel", steps=255, integer=True,
             mw=net.size([8, 12], [32, 48]), mh=4, pe=2)
    add_mvau(net, in_type=int_type(rng, signed=False), w_kind="unsigned", thr="shared", steps=pick(rng, [3, 15]), integer=True)
    add_vvau(net, thr=True, channels=4, pe=2, steps=15, integer=True)
    add_thresholding(net, shared=False, in_type=int_type(rng, signed=True, lo_bits=4, hi_bits=10), steps=7, integer=True)
    multistage_layers(net)


ELEMENTWISE_CONST_OPS = ("Add", "Sub", "Mul", "Min", "Max", "Div")
STYLES = ("scalar", "channel", "element")


def elementwise_project(net: Net, seed: int) -> None:
    """Elementwise ops with every kind of constant and with a second
    stream, RoundClip, AddStreams."""
    rng = net.rng
    for k, op in enumerate(ELEMENTWISE_CONST_OPS):
        add_elementwise_const(net, op, STYLES[(k + seed) % 3])  # rotating: the sweep gives every op every style
    for style in STYLES:
        add_elementwise_const(net, pick(rng, ELEMENTWISE_CONST_OPS), style)  # every style in every seed
    for op in ("Sub", "Mul", "Min", "Max") + (("Add",) if net.big else ()):
        add_elementwise_streams(net, op)
    add_roundclip(net)
    add_roundclip(net, far=True)
    add_addstreams(net, in_type=int_type(rng, signed=False), in_type2=int_type(rng, signed=True))
    if net.big:
        add_addstreams(net)
    c = pick(rng, [4, 6])
    add_gatemul(net, shape=(1, 2, 3, c), pe=pick(rng, divisors(c)[1:]))  # a folded gate product
    # squeeze-excite: the frame's global sum gates the frame itself (a fan-out whose branches meet)
    h, w, c = image(net, hi=4, cs=(2, 4))
    w = max(w, 2)  # a real reduction (a 1x1 "window" has no cost model)
    t = int_type(rng, hi_bits=4)
    x = net.source((1, h, w, c), t)
    gsum, acc = net.name("gpool"), type_of(h * w * t.min, h * w * t.max)
    net.add(hw.Pool(
        name=gsum, inputs=(x,), outputs=(f"{gsum}_out",), in_shape=(1, h, w, c), out_shape=(1, 1, 1, c), in_type=t, out_type=acc,
        channels=c, ifm_dim=(h, w), ofm_dim=(1, 1), kernel=(h, w), stride=(h, w), function="sum", acc_type=acc,
    ))  # fmt: skip
    add_gatemul(net, x=x, gate=f"{gsum}_out", shape=(1, h, w, c), in_type=t, gate_type=acc)


def movement_project(net: Net) -> None:
    """Padding, sliding windows, pooling, concat/split, width converters
    behind a reshape, fan-out (Duplicate) and a residual join."""
    rng = net.rng
    add_fmpadding(net)
    add_swg(net, depthwise=False)
    add_swg(net, depthwise=True, dilated=True)
    c = pick(rng, [2, 4, 6])
    add_maxpool(net, channels=c, pe=pick(rng, divisors(c)[1:]))
    add_pool(net, glob=True)
    add_pool(net, glob=False)
    add_concat(net, pick(rng, [2, 3]))
    add_split(net, pick(rng, [2, 3]))
    # reshape between two layers with other folding: Thresholding (PE) -> flatten -> MVAU (SIMD)
    h, w = pick(rng, [(2, 2), (2, 3), (3, 2)])
    c = pick(rng, [2, 4])
    thr = add_thresholding(net, shared=False, shape=(1, h, w, c), in_type=int_type(rng, hi_bits=6), pe=c)
    flat = add_reshape(net, thr, (1, h, w, c), (1, h * w * c), layer_of(net, thr).out_type)
    mw = h * w * c
    add_mvau(net, x=flat, in_type=layer_of(net, thr).out_type, mw=mw, niv=(), thr=pick(rng, [None, "channel"]),
             simd=pick(rng, [d for d in divisors(mw) if d != c]))
    # a reshape as the last layer: the output port is the reshaped tensor
    y = add_mvau(net, in_type=int_type(rng), mw=6, niv=(), thr=None)
    mh = layer_of(net, y).mh
    add_reshape(net, y, (1, mh), (1, 1, 1, mh), layer_of(net, y).out_type)
    # fan-out of a graph input to four reads of different lanes (Duplicate + WidthConverter)
    shape = (1, 2, 3, pick(rng, [4, 6, 12]))
    t = int_type(rng, hi_bits=7)
    x = net.source(shape, t)
    add_thresholding(net, shared=False, shape=shape, in_type=t, x=x, pe=1)
    add_elementwise_const(net, "Max", "channel", x=x, shape=shape, in_type=t, pe=shape[-1])
    add_addstreams(net, a=x, b=x, shape=shape, in_type=t, in_type2=t, pe=2)  # x + x: one layer reads x twice
    # residual: u = x + c; v = threshold(u); u + v (u read twice, by other folding than its producer's)
    shape = (1, 3, 2, pick(rng, [2, 4, 6]))
    c = shape[-1]
    t = int_type(rng, signed=True, hi_bits=6)
    u = add_elementwise_const(net, "Add", "channel", shape=shape, in_type=t, pe=pick(rng, divisors(c)[1:]))
    ut = layer_of(net, u).out_type
    v = add_thresholding(net, shared=True, shape=shape, in_type=ut, x=u, pe=1)
    add_addstreams(net, a=u, b=v, shape=shape, in_type=ut, in_type2=layer_of(net, v).out_type, pe=c)


def wide_project(net: Net) -> None:
    """Streams, accumulators and thresholds of 20 to 50 bits (beyond 32-bit
    C types and ap_int's single-word fast path)."""
    rng = net.rng

    def wide(lo=20, hi=50, signed=None):
        return int_type(rng, signed=signed, lo_bits=lo, hi_bits=hi)

    add_thresholding(net, shared=bool(rng.integers(2)), in_type=wide(), steps=5)
    add_mvau(net, in_type=wide(16, 22, signed=True), w_kind="unsigned", mw=12, thr="channel", steps=15)
    add_addstreams(net, in_type=wide(), in_type2=wide())
    add_mvau(net, in_type=wide(16, 22, signed=True), w_kind="signed", mw=12, mh=2, thr="channel", steps=255, integer=True)
    add_elementwise_streams(net, pick(rng, ["Mul", "Sub", "Max"]), in_type=wide(16, 30), rhs_type=wide(16, 30))
    add_pool(net, glob=True, in_type=wide(20, 45))
    add_concat(net, 2, in_types=(wide(), int_type(rng)))
    if net.big:
        add_mvau(net, in_type=wide(16, 24), w_kind="signed", mw=16, thr=None)
        add_vvau(net, thr=True, in_type=wide(16, 30))
        add_elementwise_const(net, pick(rng, ["Mul", "Add", "Min"]), pick(rng, STYLES), in_type=wide(20, 40))
        add_roundclip(net, in_type=wide(), far=bool(rng.integers(2)))


def fit_geometry(kernel, stride, ifm, dilation=(1, 1)):
    """(kernel, stride, dilation, ifm, ofm) of a window that fits ``ifm``."""
    span_ = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    ofm = tuple((i - s_) // st + 1 for i, s_, st in zip(ifm, span_, stride))
    return tuple(kernel), tuple(stride), tuple(dilation), tuple(ifm), ofm


def ring_project(net: Net) -> None:
    """Line buffers whose rings are not a power of two rows (3x3 stride 2:
    5 rows, 5x5: 6, dilated 3x3: 7), folded by more than 1, and running
    values over several channel folds (VVAU, global pooling)."""
    rng = net.rng
    add_swg(net, geometry=fit_geometry((3, 3), (2, 2), (9, 7)), channels=4, simd=2, depthwise=False)
    add_swg(net, geometry=fit_geometry((5, 5), (1, 1), (7, 6)), channels=6, simd=3, depthwise=True)
    add_swg(net, geometry=fit_geometry((3, 3), (2, 1), (9, 8), dilation=(2, 2)), channels=2, simd=1, depthwise=False)
    add_maxpool(net, geometry=fit_geometry((3, 3), (2, 2), (7, 9)), channels=6, pe=2)
    add_pool(net, glob=False, geometry=fit_geometry((5, 5), (1, 1), (6, 7)), channels=4, pe=2)
    add_pool(net, glob=False, geometry=fit_geometry((3, 3), (2, 2), (7, 7)), channels=3, pe=1)
    add_vvau(net, thr=bool(rng.integers(2)), channels=6, pe=2, kernel=(3, 3))
    add_pool(net, glob=True, channels=4, pe=2)


PROJECTS = ("mac", "elementwise", "movement", "wide", "ring")
SEEDS = (0, 1)
#: (group, seed) of the fast tier: every group on two seeds, the wide one on one; the ring one in the sweep only
FAST = [(g, s) for g in PROJECTS if g not in ("wide", "ring") for s in SEEDS] + [("wide", 0)]
SWEEP = [(g, s) for g in PROJECTS for s in range(10, 13)]


def make_net(group: str, seed: int, big: bool = False) -> Net:
    net = Net(np.random.default_rng([seed, PROJECTS.index(group), int(big)]), big=big)
    {"mac": mac_project, "elementwise": lambda n: elementwise_project(n, seed), "movement": movement_project, "wide": wide_project,
     "ring": ring_project}[group](net)  # fmt: skip
    return net


def describe(layer) -> str:
    doc = layer.to_json()
    for key in ("weights", "thresholds", "param"):
        if isinstance(doc.get(key), list) and len(json.dumps(doc[key])) > 400:
            doc[key] = f"<{np.asarray(getattr(layer, key)).shape} array>"
    return json.dumps(doc)


@dataclasses.dataclass
class Outcome:
    net: Net
    path: str
    samples: int
    result: object = None
    error: Optional[BaseException] = None


def build_and_simulate(group: str, seed: int, big: bool, out_dir: str, samples: int) -> Outcome:
    from sira.hls import build_layers

    net = make_net(group, seed, big)
    outcome = Outcome(net, out_dir, samples)
    try:
        outcome.result = build_layers(net.layers, out_dir, net.samples(samples), name=f"{group}{seed}", run_csim=True)
    except Exception as e:  # reported by the test of this project
        outcome.error = e
    return outcome


def check(outcome: Outcome) -> None:
    if outcome.error is not None:
        raise outcome.error
    cs = outcome.result.csim
    if not (cs.passed and cs.exact == cs.samples == outcome.samples):
        culprit = next((layer for layer in outcome.net.layers if layer.name == cs.first_mismatch_layer), None)
        detail = describe(culprit) if culprit is not None else "(no single layer named)"
        pytest.fail(f"{cs.summary()} in {outcome.path}\nfirst mismatching layer: {detail}\n{cs.output[-2000:]}")
    assert cs.passed and cs.exact == cs.samples == outcome.samples


def simulate_selected(request, tmp_path_factory, test_name: str, big: bool, samples: int) -> dict:
    """Build and simulate, concurrently (g++ runs in parallel), the
    (group, seed) projects of the selected tests named ``test_name``."""
    selected = getattr(request.node.listchain()[0], "items", [])  # the collection root holds the selected tests
    keys = [(item.callspec.params["group"], item.callspec.params["seed"]) for item in selected
            if getattr(item, "originalname", None) == test_name and hasattr(item, "callspec")]  # fmt: skip
    root = tmp_path_factory.mktemp(test_name)
    workers = max(1, min(len(keys), os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {key: pool.submit(build_and_simulate, key[0], key[1], big, str(root / f"{key[0]}_{key[1]}"), samples) for key in keys}
        done = {key: f.result() for key, f in futures.items()}

    class Lazy(dict):
        def __missing__(self, key):  # a test the selection did not list
            self[key] = build_and_simulate(key[0], key[1], big, str(root / f"{key[0]}_{key[1]}"), samples)
            return self[key]

    return Lazy(done)


# --------------------------------------------------------------------------
# C simulation tests
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fast_projects(request, tmp_path_factory):
    return simulate_selected(request, tmp_path_factory, "test_kernels_bit_exact", big=False, samples=6)


@pytest.fixture(scope="module")
def sweep_projects(request, tmp_path_factory):
    return simulate_selected(request, tmp_path_factory, "test_kernels_bit_exact_sweep", big=True, samples=10)


@pytest.mark.prebuild
@pytest.mark.parametrize("group,seed", FAST)
def test_kernels_bit_exact(group, seed, fast_projects):
    """Every layer of a seeded-random project is bit-exact in C simulation
    (the projects are built and compiled concurrently by the fixture)."""
    check(fast_projects[(group, seed)])


@pytest.mark.slow
@pytest.mark.parametrize("group,seed", SWEEP)
def test_kernels_bit_exact_sweep(group, seed, sweep_projects):
    """More seeds, bigger shapes and more samples."""
    check(sweep_projects[(group, seed)])


def test_multistage_layers_of_the_projects():
    """The C-simulated mac projects hold MVAUs with proven input bounds:
    the adversarial prefix (a partial sum wider than the accumulator, both
    narrower than their prefixes), and SIMD > 1 over several folds with the
    adder tree strictly narrower than the accumulator (sum and popcount)."""
    for seed in SEEDS:
        bounded = [layer for layer in make_net("mac", seed).layers if getattr(layer, "input_bounds", None) is not None]
        stages = [accumulation(layer) for layer in bounded]
        assert len(stages) == 3 and all(a.proven and a.simd > 1 and a.folds > 1 for a in stages)
        adversarial, plain, xnor = stages
        assert adversarial.partial_range == (-4, 4) and adversarial.acc_range == (-2, 2) and adversarial.term_range == (-2, 2)
        assert plain.partial_bits < plain.acc_bits <= bounded[1].acc_type.bits
        assert xnor.popcount and xnor.partial_bits < xnor.acc_bits < bounded[2].acc_type.bits


def test_coverage_of_the_projects():
    """The fast projects reach every kind, folding above 1, every threshold
    unit and the plumbing stages the dataflow inserts."""
    from sira.estimate import cost_layers
    from sira.hls.dataflow import plan
    from sira.hls.kernels import _elementwise_param

    kinds, units, plumbing, folded = set(), set(), set(), set()
    ops, styles = set(), set()
    for group, seed in FAST:
        net = make_net(group, seed)
        _, costs = cost_layers(net.layers)
        read = {t for layer in net.layers for t in layer.inputs}
        df = plan(net.layers, [t for layer in net.layers for t in layer.outputs if t not in read])
        for st in df.stages:
            if st.node.kind in ("Duplicate", "WidthConverter"):
                plumbing.add(st.node.kind)
                continue
            layer = st.node
            if max(layer.pe, layer.simd) > 1:
                folded.add(layer.kind)
                if getattr(layer, "xnor", False):
                    folded.add("MVAU:xnor")
            if getattr(layer, "thresholds", None) is not None:
                ctx = KERNELS[layer.kind].context(layer, costs[layer.name])
                units.add(f"{layer.kind}:{'wire' if ctx.get('identity') else ctx['thr']['unit']}")
            if getattr(layer, "xnor", False):
                units.add(f"MVAU:xnor:{'thresholds' if layer.has_thresholds else 'dot product'}")
        for layer in net.layers:
            kinds.add(layer.kind)
            if isinstance(layer, hw.Elementwise):
                ops.add(f"{layer.op}:{layer.rhs_style}")
                if layer.param is not None:
                    styles.add(f"{layer.op}:{_elementwise_param(layer)[1]}")
    every = set(hw.LAYER_KINDS) - {"HostOp"}
    assert every <= kinds, every - kinds
    assert every - {"Reshape"} <= folded, every - {"Reshape"} - folded
    assert {"Duplicate", "WidthConverter"} <= plumbing
    assert {"MVAU:linear", "MVAU:binary", "VVAU:linear", "VVAU:binary", "Thresholding:linear", "Thresholding:constant",
            "Thresholding:wire", "MVAU:integer", "VVAU:integer", "Thresholding:integer"} <= units, units
    assert {"MVAU:xnor:thresholds", "MVAU:xnor:dot product"} <= units and "MVAU:xnor" in folded, (units, folded)
    assert {f"{op}:const" for op in ELEMENTWISE_CONST_OPS} | {f"{op}:input" for op in ("Sub", "Mul", "Min", "Max")} <= ops, ops
    assert "RoundClip:const" in ops
    # constants with one value ("0"), one per channel ("nf") and one per element ("i"), each op with two of them
    assert {row for _, row in (x.split(":") for x in styles)} == {"0", "nf", "i"}, styles
    assert all(len({x for x in styles if x.startswith(f"{op}:")}) >= 2 for op in ELEMENTWISE_CONST_OPS), styles


# --------------------------------------------------------------------------
# the loop forms of the generated code (no compiler)
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Loop:
    line: str
    parent: Optional["Loop"]
    pipelined: bool = False
    unrolled: bool = False


def loops_of(code: str) -> list[Loop]:
    """The ``for`` loops of generated C++, each with its enclosing loop and
    whether a ``PIPELINE`` or ``UNROLL`` pragma stands directly in its body
    (the generated code opens a loop's body on the ``for`` line)."""
    found: list[Loop] = []
    blocks: list[Optional[Loop]] = []  # open braces: the loop a brace opens, or None

    def innermost() -> Optional[Loop]:
        return next((b for b in reversed(blocks) if b is not None), None)

    for raw in code.splitlines():
        line = raw.split("//")[0].strip()
        if line.startswith("#pragma HLS PIPELINE") and blocks and blocks[-1] is not None:
            blocks[-1].pipelined = True
        if line.startswith("#pragma HLS UNROLL") and blocks and blocks[-1] is not None:
            blocks[-1].unrolled = True
        loop = Loop(line, innermost()) if line.startswith("for (") else None
        for ch in line:
            if ch == "{":
                blocks.append(loop)
                if loop is not None:
                    found.append(loop)
                loop = None
            elif ch == "}":
                blocks.pop()
    assert not blocks, "unbalanced braces"
    return found


def loop_form_problems(code: str) -> list[str]:
    """What keeps a kernel's loops from II=1 across a frame: a ``%`` (a
    divider on a runtime index), a pipelined loop inside another loop
    (the outer one is not pipelined: the inner pipeline drains every
    trip), or a loop neither pipelined nor unrolled in a pipelined one."""
    problems = [f"'%' in: {line.strip()}" for line in code.splitlines() if "%" in line.split("//")[0]]
    for loop in loops_of(code):
        if loop.pipelined and loop.parent is not None:
            problems.append(f"pipelined loop inside a loop: {loop.line}")
        unrolled_inside = loop.unrolled and loop.parent is not None and (loop.parent.pipelined or loop.parent.unrolled)
        if not (loop.pipelined or unrolled_inside):
            problems.append(f"loop neither pipelined nor unrolled in a pipelined one: {loop.line}")
    return problems


def test_loop_form_problems_are_found():
    """The checker itself: a group loop around pipelined loops (the old
    width converter) and a ring indexed with '%' are reported."""
    nested = """void f() {
    for (unsigned i = 0; i < 4; i++) {
        for (unsigned j = 0; j < 3; j++) {
#pragma HLS PIPELINE II=1
            x[j % 3] = 0;
        }
    }
}"""
    problems = loop_form_problems(nested)
    assert any("'%'" in p for p in problems) and any("inside a loop" in p for p in problems)
    assert any("neither" in p and "i < 4" in p for p in problems)
    flat = """void f() {
    for (unsigned i = 0; i < 12; i++) {
#pragma HLS PIPELINE II=1
        for (unsigned p = 0; p < 2; p++) {
#pragma HLS UNROLL
            if (c) { y = 1; } else { y = 2; }
        }
    }
}"""
    assert loop_form_problems(flat) == []


@pytest.mark.parametrize("group,seed", FAST + [("ring", 0)])
def test_generated_loops_are_flat_and_divider_free(group, seed):
    """Every kernel of a project (every kind, folding above 1, rings of 5,
    6 and 7 rows) is one or two pipelined loops with II=1 and no '%'; the
    running values and line buffers state their real dependences."""
    from sira.estimate import cost_layers
    from sira.hls.dataflow import plan
    from sira.hls.project import render

    net = make_net(group, seed)
    _, costs = cost_layers(net.layers)
    read = {t for layer in net.layers for t in layer.inputs}
    df = plan(net.layers, [t for layer in net.layers for t in layer.outputs if t not in read])
    files = render(df, costs, top="top", model_id=group, part="xczu7ev-ffvc1156-2-e", clock_ns=10.0)
    kinds = {st.node.kind for st in df.stages}
    assert {"ConvolutionInputGenerator", "StreamingMaxPool", "Pool", "VVAU"} <= kinds or group != "ring"
    for st in df.stages:
        code = files[f"firmware/{st.id}.hpp"]
        assert any(loop.pipelined for loop in loops_of(code)), f"{st.node.kind} {st.id}: no pipelined loop found"
        assert loop_form_problems(code) == [], f"{st.node.kind} {st.id}"
        if st.node.kind == "VVAU" and st.node.channel_folds > 1:
            assert f"DEPENDENCE variable=acc type=inter direction=RAW distance={st.node.channel_folds} dependent=true" in code
        if st.node.kind == "Pool" and st.node.is_global and st.node.channel_folds > 1:
            assert f"DEPENDENCE variable=r type=inter direction=RAW distance={st.node.channel_folds} dependent=true" in code


def test_every_kind_has_its_loop_form_checked():
    """The projects of the loop-form test cover every kernel kind with
    folding above 1 and the non-power-of-two rings."""
    from sira.hls.dataflow import plan

    kinds, folded, rings = set(), set(), set()
    for group, seed in FAST + [("ring", 0)]:
        net = make_net(group, seed)
        read = {t for layer in net.layers for t in layer.inputs}
        for st in plan(net.layers, [t for layer in net.layers for t in layer.outputs if t not in read]).stages:
            kinds.add(st.node.kind)
            if isinstance(st.node, hw.HWLayer) and max(st.node.pe, st.node.simd) > 1:
                folded.add(st.node.kind)
            if hasattr(st.node, "buffer_rows") and not getattr(st.node, "is_global", False):
                rings.add((st.node.kind, st.node.buffer_rows))
    assert set(KERNELS) - {"Reshape"} <= kinds, set(KERNELS) - kinds
    assert set(KERNELS) - {"Reshape", "Duplicate", "WidthConverter"} <= folded
    assert {("ConvolutionInputGenerator", 5), ("ConvolutionInputGenerator", 6), ("ConvolutionInputGenerator", 7),
            ("StreamingMaxPool", 5), ("Pool", 6)} <= rings, rings  # fmt: skip


def test_line_buffer_dependence_only_where_false():
    """``DEPENDENCE inter false`` on the ring when a word's write and read
    are far apart, not on a one-word-wide image where the word written
    last is read next."""
    from sira.hls.kernels import LINE_BUFFER_SAFE_DISTANCE, line_buffer_pragmas, ring_distance, _swg_window

    def swg(ifm, kernel, stride, c=4, simd=1):
        kernel, stride, dil, ifm, ofm = fit_geometry(kernel, stride, ifm)
        return hw.ConvolutionInputGenerator(
            name="swg", inputs=("x",), outputs=("y",), in_shape=(1, *ifm, c), out_shape=(1, *ofm, kernel[0] * kernel[1] * c),
            in_type=StreamType(4, False), out_type=StreamType(4, False), channels=c, ifm_dim=ifm, ofm_dim=ofm, kernel=kernel,
            stride=stride, dilation=dil, depthwise=False, simd=simd)  # fmt: skip

    wide_ = swg((16, 16), (3, 3), (2, 2))
    assert ring_distance(wide_, 3, _swg_window(wide_)) >= LINE_BUFFER_SAFE_DISTANCE
    assert "DEPENDENCE variable=rows type=inter dependent=false" in line_buffer_pragmas(wide_, None, 3, _swg_window(wide_))
    thin = swg((6, 1), (1, 1), (1, 1), c=1)
    assert ring_distance(thin, 1, _swg_window(thin)) < LINE_BUFFER_SAFE_DISTANCE
    assert not any(p.startswith("DEPENDENCE") for p in line_buffer_pragmas(thin, None, 1, _swg_window(thin)))


# --------------------------------------------------------------------------
# the integer references against plain NumPy
# --------------------------------------------------------------------------


def naive_count(acc: int, row) -> int:
    return sum(1 for t in row if acc >= int(t))


def naive_activate(layer, acc: int, channel: int) -> int:
    if layer.thresholds is None:
        return acc
    t = layer.thresholds
    row = t[channel if t.shape[0] > 1 else 0]
    return layer.activation_bias + layer.activation_scale * naive_count(acc, row)


def naive_accumulators(layer, x: np.ndarray) -> np.ndarray:
    """(vectors, outputs) accumulators of an MVAU or VVAU, one product at a time."""
    if isinstance(layer, hw.MVAU):
        v = x.reshape(-1, layer.mw)
        acc = [[sum(int(v[n, i]) * int(layer.weights[i, j]) for i in range(layer.mw)) for j in range(layer.mh)] for n in range(v.shape[0])]
    else:
        k, c = int(np.prod(layer.kernel)), layer.channels
        v = x.reshape(-1, k, c)  # window in (kernel position, channel) order
        acc = [[sum(int(v[n, p, ch]) * int(layer.weights[ch, p]) for p in range(k)) for ch in range(c)] for n in range(v.shape[0])]
    acc = np.array(acc, dtype=object)
    assert np.all((acc >= layer.acc_range[0]) & (acc <= layer.acc_range[1])), f"{layer.name}: accumulator outside acc_range"
    return acc


def naive_mac(layer, x: np.ndarray) -> np.ndarray:
    acc = naive_accumulators(layer, x)
    out = np.array([[naive_activate(layer, a, j) for j, a in enumerate(row)] for row in acc], dtype=object)
    return out.reshape(layer.out_shape)


def naive_thresholding(layer: hw.Thresholding, x: np.ndarray) -> np.ndarray:
    v = x.reshape(-1, layer.channels)
    out = np.array([[naive_activate(layer, int(v[n, ch]), ch) for ch in range(layer.channels)] for n in range(v.shape[0])], dtype=object)
    return out.reshape(layer.out_shape)


def naive_swg(layer: hw.ConvolutionInputGenerator, x: np.ndarray) -> np.ndarray:
    (kh, kw), (sh, sw), (dh, dw), (oh, ow), c = layer.kernel, layer.stride, layer.dilation, layer.ofm_dim, layer.channels
    out = np.zeros((1, oh, ow, kh * kw * c), dtype=object)
    for oy, ox, ky, kx, ch in itertools.product(range(oh), range(ow), range(kh), range(kw), range(c)):
        out[0, oy, ox, (ky * kw + kx) * c + ch] = x[0, oy * sh + ky * dh, ox * sw + kx * dw, ch]
    return out


def naive_pool(layer, x: np.ndarray, reduce) -> np.ndarray:
    (kh, kw), (sh, sw), (oh, ow), c = layer.kernel, layer.stride, layer.ofm_dim, layer.channels
    out = np.zeros((1, oh, ow, c), dtype=object)
    for oy, ox, ch in itertools.product(range(oh), range(ow), range(c)):
        out[0, oy, ox, ch] = reduce([int(x[0, oy * sh + ky, ox * sw + kx, ch]) for ky in range(kh) for kx in range(kw)])
    return out


def naive_elementwise(layer: hw.Elementwise, a: np.ndarray, b: Optional[np.ndarray]) -> np.ndarray:
    if layer.op == "RoundClip":
        return np.vectorize(lambda v: min(max(int(v), layer.clip_lo), layer.clip_hi), otypes=[object])(a)
    if b is None:
        p = np.asarray(layer.param).astype(np.int64)
        b = np.broadcast_to(p.reshape((1,) * (a.ndim - p.ndim) + p.shape), a.shape)
    fn = {"Add": lambda x, y: x + y, "Sub": lambda x, y: x - y, "Mul": lambda x, y: x * y, "Min": min, "Max": max,
          "Div": lambda x, y: x // y}[layer.op]  # fmt: skip
    out = np.zeros(a.shape, dtype=object)
    for idx in np.ndindex(a.shape):
        out[idx] = fn(int(a[idx]), int(b[idx]))
    return out


def naive_fmpadding(layer: hw.FMPadding, x: np.ndarray) -> np.ndarray:
    pt, pl, _, _ = layer.padding
    out = np.full(layer.out_shape, layer.value, dtype=object)
    h, w = layer.in_shape[1:3]
    for y, xx, ch in itertools.product(range(h), range(w), range(layer.channels)):
        out[0, pt + y, pl + xx, ch] = x[0, y, xx, ch]
    return out


def naive(layer, args: list[np.ndarray]) -> Optional[list[np.ndarray]]:
    """Loop implementation of a layer, or None for a kind not checked here."""
    x = args[0]
    if isinstance(layer, (hw.MVAU, hw.VVAU)):
        return [naive_mac(layer, x)]
    if isinstance(layer, hw.Thresholding):
        return [naive_thresholding(layer, x)]
    if isinstance(layer, hw.ConvolutionInputGenerator):
        return [naive_swg(layer, x)]
    if isinstance(layer, hw.StreamingMaxPool):
        return [naive_pool(layer, x, max)]
    if isinstance(layer, hw.Pool):
        return [naive_pool(layer, x, sum)]
    if isinstance(layer, hw.Elementwise):
        return [naive_elementwise(layer, x, args[1] if len(args) > 1 else None)]
    if isinstance(layer, hw.AddStreams):
        return [np.vectorize(lambda p, q: int(p) + int(q), otypes=[object])(x, args[1])]
    if isinstance(layer, hw.GateMul):
        out = np.zeros(x.shape, dtype=object)
        for idx in np.ndindex(x.shape):
            out[idx] = int(x[idx]) * int(args[1].reshape(-1)[idx[-1]])
        return [out]
    if isinstance(layer, hw.FMPadding):
        return [naive_fmpadding(layer, x)]
    if isinstance(layer, hw.Concat):
        return [np.concatenate(args, axis=-1)]
    if isinstance(layer, hw.Split):
        bounds = np.cumsum((0,) + layer.channels)
        return [x[..., bounds[j] : bounds[j + 1]] for j in range(len(layer.channels))]
    return None


def in_type_range(t: StreamType) -> tuple[int, int]:
    return (-1, 1) if t.kind == "bipolar" else (t.min, t.max)


@pytest.mark.parametrize("seed,big", [(0, False), (1, False), (2, False), (3, False), (10, True), (11, True)])
@pytest.mark.parametrize("group", PROJECTS)
def test_references_match_plain_numpy(group, seed, big):
    """Every layer's integer reference equals a loop implementation, and its
    outputs lie in the layer's output type, on min/max/alternating/corner/random inputs."""
    net = make_net(group, seed, big)
    checked = 0
    reached: dict[str, set] = {}  # MAC layers reading a graph input: the accumulator values seen
    for frame in net.samples(6):
        env = dict(frame)
        for layer in net.layers:
            args = [np.asarray(env[t]) for t in layer.inputs]
            if isinstance(layer, (hw.MVAU, hw.VVAU)) and layer.inputs[0] in net.sources:
                reached.setdefault(layer.name, set()).update(naive_accumulators(layer, args[0]).reshape(-1).tolist())
            for arg, t in zip(args, layer.input_types):
                lo, hi = in_type_range(t)
                assert lo <= int(arg.min()) and int(arg.max()) <= hi, layer.name
                if t.kind == "bipolar":
                    assert np.all(np.abs(arg) == 1)
            outs = KERNELS[layer.kind].reference(layer, args)
            want = naive(layer, args)
            if want is not None:
                checked += 1
                for got, exp in zip(outs, want):
                    assert got.shape == exp.shape, layer.name
                    assert np.array_equal(np.asarray(got, dtype=object), np.asarray(exp, dtype=object)), describe(layer)
            for name, got in zip(layer.outputs, outs):
                lo, hi = in_type_range(layer.out_type)
                assert lo <= int(np.min(got)) and int(np.max(got)) <= hi, f"{layer.name}: output outside {layer.out_type.name}"
                if layer.out_type.kind == "bipolar":
                    assert np.all(np.abs(got) == 1)
                env[name] = got
    assert checked
    # the corner frames drive every such accumulator to both ends of its (exact) range
    for layer in net.layers:
        if layer.name in reached:
            assert {layer.acc_range[0], layer.acc_range[1]} <= reached[layer.name], layer.name


def test_mvau_reference_hand_example():
    """x @ W then count(acc >= t) on unsorted thresholds with a repeat."""
    w = np.array([[1, -2], [3, 0], [-1, 2]])
    t = np.array([[5, -1, 5], [0, 10, 2]])
    layer = hw.MVAU(
        name="m", inputs=("x",), outputs=("y",), in_shape=(1, 2, 3), out_shape=(1, 2, 2), in_type=StreamType(3, True),
        out_type=StreamType(4, True), mw=3, mh=2, num_input_vectors=(2,), weights=w, weight_type=StreamType(3, True),
        acc_type=StreamType(6, True), acc_range=(-20, 20), thresholds=t, threshold_type=StreamType(6, True),
        activation_bias=-1, activation_scale=2,
    )  # fmt: skip
    x = np.array([[[1, 2, 3], [-4, 0, 3]]])
    acc = x.reshape(2, 3) @ w  # [[4, 4], [-7, 14]]
    assert acc.tolist() == [[4, 4], [-7, 14]]
    # counts: 4 vs (5, -1, 5) -> 1; 4 vs (0, 10, 2) -> 2; -7 -> 0; 14 vs (0, 10, 2) -> 3
    expected = -1 + 2 * np.array([[1, 2], [0, 3]])
    got = KERNELS["MVAU"].reference(layer, [x])[0]
    assert got.reshape(2, 2).tolist() == expected.tolist()


def test_swg_reference_hand_example():
    """A 2x3 window, stride (1, 2), dilation (2, 1) on a 5x6 image of 2 channels."""
    x = np.arange(5 * 6 * 2).reshape(1, 5, 6, 2)
    layer = hw.ConvolutionInputGenerator(
        name="s", inputs=("x",), outputs=("y",), in_shape=(1, 5, 6, 2), out_shape=(1, 3, 2, 12), in_type=StreamType(7, False),
        out_type=StreamType(7, False), channels=2, ifm_dim=(5, 6), ofm_dim=(3, 2), kernel=(2, 3), stride=(1, 2), dilation=(2, 1),
    )  # fmt: skip
    got = KERNELS["ConvolutionInputGenerator"].reference(layer, [x])[0]
    # window of output (1, 1): rows 1 and 3, columns 2..4, channels interleaved last
    rows = [x[0, 1, 2:5], x[0, 3, 2:5]]
    assert got[0, 1, 1].tolist() == np.concatenate(rows).reshape(-1).tolist()
    assert np.array_equal(got, naive_swg(layer, x).astype(np.int64))


def test_pool_references_hand_example():
    x = np.array([[1, -5, 2, 7], [3, 4, -8, 0], [6, -1, 5, 5]]).reshape(1, 3, 4, 1)
    common = dict(inputs=("x",), outputs=("y",), in_shape=(1, 3, 4, 1), in_type=StreamType(5, True), channels=1, ifm_dim=(3, 4))
    mp = hw.StreamingMaxPool(name="mp", out_shape=(1, 1, 2, 1), out_type=StreamType(5, True), ofm_dim=(1, 2), kernel=(2, 2), stride=(2, 2), **common)
    assert KERNELS["StreamingMaxPool"].reference(mp, [x])[0].reshape(-1).tolist() == [4, 7]
    gp = hw.Pool(name="gp", out_shape=(1, 1, 1, 1), out_type=StreamType(9, True), ofm_dim=(1, 1), kernel=(3, 4), stride=(3, 4), **common)
    assert KERNELS["Pool"].reference(gp, [x])[0].reshape(-1).tolist() == [int(x.sum())]
    wp = hw.Pool(name="wp", out_shape=(1, 2, 2, 1), out_type=StreamType(7, True), ofm_dim=(2, 2), kernel=(2, 3), stride=(1, 1), **common)
    assert KERNELS["Pool"].reference(wp, [x])[0].reshape(-1).tolist() == [1 - 5 + 2 + 3 + 4 - 8, -5 + 2 + 7 + 4 - 8 + 0,
                                                                          3 + 4 - 8 + 6 - 1 + 5, 4 - 8 + 0 - 1 + 5 + 5]  # fmt: skip


def test_identity_thresholds_are_a_wire():
    """An input quantizer on the input's own grid (UINT8 in steps of 1/255,
    re-quantized to UINT8 with scale 1/255: thresholds 0.5..254.5) becomes a
    Thresholding that outputs its input: the generated kernel has no
    thresholds and no comparator, the refined estimate prices it at 0 and
    no memory, as the code builds it (FINN's baseline still builds its
    comparators). A threshold moved by one, or a bias off by one, is no
    identity. The mac projects C-simulate such layers bit-exactly."""
    import sira
    from onnx import helper
    from sira.estimate import estimate
    from sira.hls.project import environment
    from sira.transforms.to_hw import lower_to_hw
    from tests.helpers import make_model, quant_node

    w = np.random.default_rng(0).integers(-7, 8, (8, 4)).astype(np.float32) * np.float32(0.125)
    model = make_model(
        [quant_node("x", "s_in", "z", "b8", "xq", signed=0), quant_node("w", "s_w", "z", "b4", "wq", signed=1, narrow=1),
         helper.make_node("MatMul", ["xq", "wq"], ["acc"]), helper.make_node("Relu", ["acc"], ["r"]),
         quant_node("r", "s_out", "z", "b4", "y", signed=0)],
        {"x": [1, 8]}, {"y": [1, 4]},
        {"s_in": np.float32(1 / 255), "z": np.float32(0), "b8": np.float32(8), "b4": np.float32(4), "s_w": np.float32(0.125),
         "w": w, "s_out": np.float32(0.25)},
    )  # fmt: skip
    optimized, _ = sira.optimize(model, {"inputs": {"*": {"int_min": 0, "int_max": 255, "scale": "1/255"}}}, samples=10)
    layers = lower_to_hw(optimized)
    (thr,) = [layer for layer in layers if layer.kind == "Thresholding"]
    assert thr.is_identity and thr.thresholds.shape[1] == 255 and thr.in_type == StreamType(8, False)
    doc = estimate(optimized)["layers"][thr.name]
    assert (doc["LUT"], doc["BRAM_18K"], doc["URAM"], doc["DSP"]) == (0, 0, 0, 0) and "wire" in doc["note"]
    assert M.layer_memories(thr) == ()
    cost = layer_cost(thr)
    code = environment().get_template(KERNELS["Thresholding"].template).render(
        **KERNELS["Thresholding"].context(thr, cost), version="", id="l_t", guard="L_T_HPP")
    body = code.split("{", 1)[1]
    assert "value = a;" in body and "thr" not in body and ">=" not in body and "(identity thresholds: a wire)" in code
    assert layer_cost(thr, mode="finn").lut > 0
    kw = {f: getattr(thr, f) for f in ("name", "inputs", "outputs", "in_shape", "out_shape", "in_type", "out_type", "channels", "pe", "threshold_type")}
    row = np.arange(1, 256)
    assert hw.Thresholding(**kw, thresholds=row[None, :]).is_identity
    assert not hw.Thresholding(**kw, thresholds=np.where(row == 7, 8, row)[None, :]).is_identity
    assert not hw.Thresholding(**kw, thresholds=row[None, :], activation_bias=1).is_identity
    assert not hw.Thresholding(**kw, thresholds=(row - 1)[None, :], activation_bias=-1).is_identity  # 255 -> 254
    assert hw.Thresholding(**kw, thresholds=np.arange(0, 256)[None, :], activation_bias=-1).is_identity


def test_arrays_are_the_memories_the_estimate_prices():
    """The generated weight array, the lint's lower bound and the refined
    estimate all follow the one layout of sira.memory: one memory per PE."""
    mw, mh, pe, simd = 64, 64, 4, 4
    layer = hw.MVAU(name="mv", inputs=("x",), outputs=("y",), in_shape=(1, mw), out_shape=(1, mh),
                    in_type=StreamType(3, False), out_type=StreamType(12, True), mw=mw, mh=mh, pe=pe, simd=simd,
                    weights=np.ones((mw, mh), dtype=np.int64), weight_type=StreamType(3, True),
                    acc_type=StreamType(12, True), acc_range=(-2000, 2000), mem_style="block")  # fmt: skip
    (weights,) = M.layer_memories(layer)
    assert (weights.count, weights.width, weights.depth) == (pe, simd * 3, (mw // simd) * (mh // pe))
    cost = layer_cost(layer, "xczu7ev-ffvc1156-2-e")
    ctx = KERNELS["MVAU"].context(layer, cost)
    assert (ctx["weight_memories"], ctx["weight_depth"], ctx["simd"]) == (weights.count, weights.depth, simd)
    assert "ARRAY_PARTITION variable=weights complete dim=1" in ctx["pragmas"]
    # 4 PEs x one BRAM18 each (256 x 12 bits), not one 48-bit x 256 memory (2 BRAM18)
    assert cost.bram18 == 4 == M.price(weights, "xczu7ev-ffvc1156-2-e").bram18
    resources, _ = estimate_resources(layer, get_part("xczu7ev-ffvc1156-2-e"))
    assert resources["BRAM_18K"] == 4
