"""Elementwise chains to exact integer thresholds (qonnx ``MultiThreshold``).

A *chain* is the run of elementwise ops between an integer tensor - a MAC
accumulator, or a graph input on an integer grid - and the quantizer that
ends the layer::

    acc -> Mul(s) -> Add(b) -> BatchNormalization -> Relu -> Quant(s2, 4 bit)

Per channel ``c`` the chain maps the integer ``q`` monotonically to one of
the quantizer's levels ``lvl0 + n``, so it *is* a threshold function:
``n_c(q) = #{k : q >= T[c, k]}``, ``T[c, k]`` the smallest integer reaching
level index ``k``. qonnx's MultiThreshold computes exactly that count
(``y = out_scale * #{i : x >= T[c, i]} + out_bias``). The conversion is
exact, not sampled:

* **Monotonicity is proved per op** (each op class says why it is monotone
  and in which direction); the chain's direction per channel is the
  product. A non-monotone op (LeakyRelu with a negative slope, a Div by the
  data) leaves the chain unconverted with the reason.
* **Levels follow the exact QONNX semantics**: ``x/s + z``, clip to the
  integer limits (narrow range included), then round with the node's mode
  (ROUND is half-to-even), all on exact rationals (every float constant is
  the rational it stores). Irrational intermediates - the square root in
  BatchNormalization, ``exp`` in Sigmoid and Tanh - are enclosed in rational
  intervals (integer square roots; mpmath's rigorous interval arithmetic),
  refined until the quantizer's decision is the same at both ends of the
  interval (see :meth:`LevelOracle.exact`). A tie can only be met exactly by a
  rational value, and rational values are computed exactly, so ties are
  always resolved by the rounding mode, never by float noise.
* **Thresholds by bisection** over the accumulator's proven integer range,
  vectorized over channels and levels on a float64 interval screen (outward
  rounded); comparisons the screen cannot decide are decided exactly.
* **Decreasing channels by negation**: MultiThreshold only counts
  ``x >= T``, a non-decreasing function of ``x``, and its ``out_scale`` is
  one scalar for all channels. A channel whose chain decreases is therefore
  thresholded on ``-q``: a ``Mul`` by a per-channel sign vector (+-1, exact
  in any float format) is placed before the MultiThreshold - the scalar -1
  when every channel decreases. FINN's streamlining absorbs such sign
  factors into the weights of the producing MAC.
* **Verification**: every threshold is confirmed exactly (the level at
  ``T - 1`` is below ``k``, at ``T`` it is reached), which with the proved
  monotonicity is a proof of the whole step function; ranges with fewer
  than ``exhaustive_limit`` (channel, value) pairs are also compared at
  every integer against qonnx's own MultiThreshold on the float32 thresholds
  as stored. A mismatch raises.

Levels reached on a channel's whole range and levels it never reaches have
thresholds outside the range; columns that are so for every channel are
dropped (``out_bias`` absorbs the always-reached ones), the rest stay
clipped to the union of the channel ranges. Thresholds are searched over
that union for every channel, so channels computing the same function get
identical rows, which are merged into one ``(1, S)`` row.

The output reproduces the quantizer's values: ``out_scale``/``out_bias``
carry its scale and zero-point when they are per-tensor and the products are
exact float32 numbers; otherwise the MultiThreshold emits the integer levels
and an explicit ``Add(-z)``/``Mul(s)`` repeats the quantizer's own float
arithmetic ``(L - z) * s``.

Two passes use this: :class:`ConvertChainsToThresholds` for chains that
start at an integer tensor (integer scale and bias, e.g. scale 1 and bias 0
after scale/bias aggregation, or the levels of an earlier threshold) and :class:`ConvertInputQuantToThresholds` for the first
quantizer on a graph input that the input spec puts on an integer grid
(``uint8 / 255``): the input becomes the raw integer, thresholded directly.
"""

from __future__ import annotations

import dataclasses
import functools
from fractions import Fraction
from math import isqrt
from typing import Optional

import numpy as np
from onnx import NodeProto, helper, numpy_helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

import sira
from sira import numerics as nx
from sira.errors import SiraError
from sira.inputspec import load_spec
from sira.model import input_aliases, node_attr, quiet
from sira.range import compact
from sira.rules.quant import int_limits

QONNX_DOMAIN = "qonnx.custom_op.general"

#: elementwise ops a chain may contain (each modelled below)
CHAIN_OPS = {"Mul", "Add", "Sub", "Div", "BatchNormalization", "Relu", "Clip", "LeakyRelu", "HardSigmoid", "Identity", "Sigmoid", "Tanh"}
#: quantizers that end a chain
QUANTIZERS = {"Quant", "IntQuant", "BipolarQuant"}
#: ops that only move data: between a graph input and its first chain they
#: carry the raw integers once the input is converted
MOVEMENT_OPS = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity"}

#: integers beyond 2**53 are not exact in float64 (the screen) and thresholds
#: beyond 2**24 are not exact in float32 (their storage)
FLOAT64_EXACT = 2**53
FLOAT32_EXACT = 2**24
#: working precision (bits) of the first exact evaluation, and the last
#: refinement tried before an irrational value is declared undecidable
START_PREC = 64
MAX_PREC = 4096
#: relative widening of float64 exp/tanh (libm is accurate to a few ulps;
#: this screens only - every threshold is confirmed exactly)
_LIBM_REL = 2.0**-44


class NotConvertible(SiraError):
    """A chain that cannot be turned into thresholds exactly; the message
    says why. The passes report it and leave the chain as it is."""


# --------------------------------------------------------------------------
# the chain: per-channel monotone maps of reals
# --------------------------------------------------------------------------
#
# Every op offers the same three views of itself:
#   direction()             +1 / -1 / 0 per channel (non-decreasing,
#                           non-increasing, constant); proved in the docstring
#   bounds(lo, hi, ch)      float64 interval image, outward rounded, of the
#                           elementwise intervals [lo, hi] in channels ch
#   enclose(c, lo, hi, p)   exact rational interval image for channel c;
#                           irrational results enclosed with about p bits
# Parameters are float64 vectors with one entry per channel.


def _frac(v: np.ndarray) -> list[Fraction]:
    return [Fraction(float(x)) for x in np.ravel(v)]


def _ordered(a: Fraction, b: Fraction) -> tuple[Fraction, Fraction]:
    return (a, b) if a <= b else (b, a)


def _swap_where(neg: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.where(neg, hi, lo), np.where(neg, lo, hi)


@dataclasses.dataclass(frozen=True, eq=False)
class Scale:
    """x * k. Monotone with the sign of k (constant for k = 0)."""

    k: np.ndarray
    label: str = ""

    def direction(self):
        return np.sign(self.k).astype(np.int64)

    def bounds(self, lo, hi, ch):
        return nx.interval_mul(lo, hi, self.k[ch], self.k[ch])

    @functools.cached_property
    def _k(self):
        return _frac(self.k)

    def enclose(self, c, lo, hi, prec):
        return _ordered(lo * self._k[c], hi * self._k[c])


@dataclasses.dataclass(frozen=True, eq=False)
class Offset:
    """x + k (Add, and Sub with a constant subtrahend as k = -c). A
    translation: strictly increasing."""

    k: np.ndarray
    label: str = ""

    def direction(self):
        return np.ones(1, dtype=np.int64)

    def bounds(self, lo, hi, ch):
        return nx.add_down(lo, self.k[ch]), nx.add_up(hi, self.k[ch])

    @functools.cached_property
    def _k(self):
        return _frac(self.k)

    def enclose(self, c, lo, hi, prec):
        return lo + self._k[c], hi + self._k[c]


@dataclasses.dataclass(frozen=True, eq=False)
class Reflect:
    """k - x (Sub with the data as subtrahend). Strictly decreasing."""

    k: np.ndarray
    label: str = ""

    def direction(self):
        return -np.ones(1, dtype=np.int64)

    def bounds(self, lo, hi, ch):
        return nx.add_down(self.k[ch], -hi), nx.add_up(self.k[ch], -lo)

    @functools.cached_property
    def _k(self):
        return _frac(self.k)

    def enclose(self, c, lo, hi, prec):
        return self._k[c] - hi, self._k[c] - lo


@dataclasses.dataclass(frozen=True, eq=False)
class Divide:
    """x / k for a constant k != 0: multiplication by 1/k, monotone with the
    sign of k. (Kept apart from Scale: float x/k is not float x*(1/k).)"""

    k: np.ndarray
    label: str = ""

    def direction(self):
        return np.sign(self.k).astype(np.int64)

    def bounds(self, lo, hi, ch):
        k = self.k[ch]
        a, b = _swap_where(k < 0, lo, hi)
        return nx.div_down(a, k), nx.div_up(b, k)

    @functools.cached_property
    def _k(self):
        return _frac(self.k)

    def enclose(self, c, lo, hi, prec):
        return _ordered(lo / self._k[c], hi / self._k[c])


def _sqrt_bounds(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 bounds of sqrt(v), v > 0: the correctly rounded root, stepped
    one ulp outward unless it is exact."""
    r = np.sqrt(v)
    lo = np.where(nx.mul_up(r, r) <= v, r, np.nextafter(r, 0.0))
    hi = np.where(nx.mul_down(r, r) >= v, r, np.nextafter(r, np.inf))
    return lo, hi


def _sqrt_enclosure(v: Fraction, prec: int) -> tuple[Fraction, Fraction]:
    """Rational bounds of sqrt(v), v > 0, at most 2**-prec apart; exact
    (a point) when v is the square of a rational."""
    rn, rd = isqrt(v.numerator), isqrt(v.denominator)
    if rn * rn == v.numerator and rd * rd == v.denominator:
        root = Fraction(rn, rd)
        return root, root
    unit = 1 << prec
    low = Fraction(isqrt(v.numerator * unit * unit // v.denominator), unit)
    return low, low + Fraction(1, unit)


@dataclasses.dataclass(frozen=True, eq=False)
class BatchNorm:
    """Inference BatchNormalization: (x - mean) * A + beta with
    A = gamma / sqrt(var + eps), an affine map per channel: monotone with
    the sign of gamma (var + eps > 0 is required)."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float
    label: str = ""

    def direction(self):
        return np.sign(self.gamma).astype(np.int64)

    def bounds(self, lo, hi, ch):
        g, v = self.gamma[ch], self.var[ch]
        r_lo, _ = _sqrt_bounds(nx.add_down(v, self.eps))
        _, r_hi = _sqrt_bounds(nx.add_up(v, self.eps))
        a_lo = np.minimum(nx.div_down(g, r_lo), nx.div_down(g, r_hi))
        a_hi = np.maximum(nx.div_up(g, r_lo), nx.div_up(g, r_hi))
        d_lo, d_hi = nx.add_down(lo, -self.mean[ch]), nx.add_up(hi, -self.mean[ch])
        y_lo, y_hi = nx.interval_mul(d_lo, d_hi, a_lo, a_hi)
        return nx.add_down(y_lo, self.beta[ch]), nx.add_up(y_hi, self.beta[ch])

    @functools.cached_property
    def _params(self):
        return list(zip(*(_frac(p) for p in (self.gamma, self.beta, self.mean, self.var))))

    def enclose(self, c, lo, hi, prec):
        g, b, m, v = self._params[c]
        r_lo, r_hi = _sqrt_enclosure(v + Fraction(self.eps), prec)
        a_lo, a_hi = _ordered(g / r_hi, g / r_lo)
        corners = [d * a for d in (lo - m, hi - m) for a in (a_lo, a_hi)]
        return min(corners) + b, max(corners) + b


@dataclasses.dataclass(frozen=True, eq=False)
class Relu:
    """max(x, 0): the maximum of two non-decreasing functions, non-decreasing."""

    label: str = ""

    def direction(self):
        return np.ones(1, dtype=np.int64)

    def bounds(self, lo, hi, ch):
        return np.maximum(lo, 0.0), np.maximum(hi, 0.0)

    def enclose(self, c, lo, hi, prec):
        return max(lo, Fraction(0)), max(hi, Fraction(0))


@dataclasses.dataclass(frozen=True, eq=False)
class Clip:
    """ONNX Clip: min(max(x, low), high) (absent bounds are None). Max and
    min with constants are non-decreasing, so is their composition."""

    low: Optional[float]
    high: Optional[float]
    label: str = ""

    def direction(self):
        return np.ones(1, dtype=np.int64)

    def _apply(self, v, fmax, fmin, conv):
        if self.low is not None:
            v = fmax(v, conv(self.low))
        if self.high is not None:
            v = fmin(v, conv(self.high))
        return v

    def bounds(self, lo, hi, ch):
        return tuple(self._apply(v, np.maximum, np.minimum, float) for v in (lo, hi))

    def enclose(self, c, lo, hi, prec):
        return tuple(self._apply(v, max, min, Fraction) for v in (lo, hi))


@dataclasses.dataclass(frozen=True, eq=False)
class LeakyRelu:
    """x for x >= 0, alpha*x below. Both pieces are non-decreasing for
    alpha >= 0 and meet at 0, so the whole is; a negative alpha makes it
    decrease below 0 and increase above (not monotone: rejected when the
    chain is built)."""

    alpha: float
    label: str = ""

    def direction(self):
        return np.ones(1, dtype=np.int64)

    def bounds(self, lo, hi, ch):
        return np.where(lo >= 0, lo, nx.mul_down(self.alpha, lo)), np.where(hi >= 0, hi, nx.mul_up(self.alpha, hi))

    def enclose(self, c, lo, hi, prec):
        a = Fraction(self.alpha)
        return tuple(v if v >= 0 else a * v for v in (lo, hi))


@dataclasses.dataclass(frozen=True, eq=False)
class HardSigmoid:
    """max(0, min(1, alpha*x + beta)): an affine map (monotone with the sign
    of alpha) followed by a clamp (non-decreasing)."""

    alpha: float
    beta: float
    label: str = ""

    def direction(self):
        return np.array([int(np.sign(self.alpha))], dtype=np.int64)

    def bounds(self, lo, hi, ch):
        a = np.float64(self.alpha)
        y_lo, y_hi = nx.interval_mul(lo, hi, a, a)
        y_lo, y_hi = nx.add_down(y_lo, self.beta), nx.add_up(y_hi, self.beta)
        return np.clip(y_lo, 0.0, 1.0), np.clip(y_hi, 0.0, 1.0)

    def enclose(self, c, lo, hi, prec):
        a, b = Fraction(self.alpha), Fraction(self.beta)
        y_lo, y_hi = _ordered(a * lo + b, a * hi + b)
        return tuple(min(max(y, Fraction(0)), Fraction(1)) for y in (y_lo, y_hi))


def _mpf_fraction(t: tuple, prec: int, upper: bool) -> Fraction:
    """An mpmath raw mpf (sign, man, exp, bc) as a rational, rounded outward
    to 0 or +-2**(-2 prec) when its magnitude is below that (Sigmoid(-1e8)
    would otherwise be a fraction with a 10**8-bit denominator)."""
    sign, man, exp, bc = t
    if man == 0:
        return Fraction(0)
    if exp + bc < -2 * prec:
        tiny = Fraction(1, 1 << (2 * prec))
        return (Fraction(0) if sign else tiny) if upper else (-tiny if sign else Fraction(0))
    v = Fraction(man << exp) if exp >= 0 else Fraction(man, 1 << -exp)
    return -v if sign else v


def _interval_eval(fn, x: Fraction, prec: int) -> tuple[Fraction, Fraction]:
    """Rational bounds of fn(x), fn written in mpmath's interval arithmetic
    (rigorous, outward rounded) evaluated at ``prec`` bits."""
    from mpmath import iv

    old = iv.prec
    try:
        iv.prec = prec
        lo, hi = fn(iv, iv.mpf(x.numerator) / iv.mpf(x.denominator))._mpi_
    finally:
        iv.prec = old
    return _mpf_fraction(lo, prec, False), _mpf_fraction(hi, prec, True)


def _widen_libm(y: np.ndarray, lo_limit: float, hi_limit: float) -> tuple[np.ndarray, np.ndarray]:
    pad = np.abs(y) * _LIBM_REL + np.finfo(np.float64).tiny
    return np.clip(y - pad, lo_limit, hi_limit), np.clip(y + pad, lo_limit, hi_limit)


@dataclasses.dataclass(frozen=True, eq=False)
class Sigmoid:
    """1 / (1 + exp(-x)): exp(-x) is strictly decreasing and positive, and
    1/(1 + E) strictly decreasing in E > 0, so Sigmoid is strictly
    increasing. Exact at 0 (1/2); elsewhere its value is
    transcendental (Lindemann-Weierstrass), so it never sits exactly on a
    rational rounding boundary and refinement decides every comparison."""

    #: its float screen trusts libm's accuracy (see _LIBM_REL)
    libm = True

    label: str = ""

    def direction(self):
        return np.ones(1, dtype=np.int64)

    def bounds(self, lo, hi, ch):
        with np.errstate(over="ignore"):
            y_lo, y_hi = 1.0 / (1.0 + np.exp(-lo)), 1.0 / (1.0 + np.exp(-hi))
        a, _ = _widen_libm(y_lo, 0.0, 1.0)
        _, b = _widen_libm(y_hi, 0.0, 1.0)
        return np.where(lo == 0, 0.5, a), np.where(hi == 0, 0.5, b)

    def enclose(self, c, lo, hi, prec):
        def f(x, end):
            if x == 0:
                return Fraction(1, 2)
            return _interval_eval(lambda iv, t: 1 / (1 + iv.exp(-t)), x, prec)[end]

        return f(lo, 0), f(hi, 1)


@dataclasses.dataclass(frozen=True, eq=False)
class Tanh:
    """1 - 2 / (exp(2x) + 1): exp(2x) + 1 is strictly increasing and
    positive, so 2/(...) strictly decreases and Tanh strictly increases.
    Exact at 0; transcendental elsewhere (as for Sigmoid)."""

    libm = True

    label: str = ""

    def direction(self):
        return np.ones(1, dtype=np.int64)

    def bounds(self, lo, hi, ch):
        a, _ = _widen_libm(np.tanh(lo), -1.0, 1.0)
        _, b = _widen_libm(np.tanh(hi), -1.0, 1.0)
        return np.where(lo == 0, 0.0, a), np.where(hi == 0, 0.0, b)

    def enclose(self, c, lo, hi, prec):
        def f(x, end):
            if x == 0:
                return Fraction(0)
            return _interval_eval(lambda iv, t: 1 - 2 / (iv.exp(2 * t) + 1), x, prec)[end]

        return f(lo, 0), f(hi, 1)


# --------------------------------------------------------------------------
# the quantizer that ends the chain
# --------------------------------------------------------------------------


def _round_floats(v: np.ndarray, mode: str) -> np.ndarray:
    """QONNX rounding of float64 values, exact (qonnx's HALF_UP adds 0.5 in
    float, which can round; here ties are detected exactly)."""
    m = mode.upper()
    if m in ("ROUND", "HALF_EVEN"):
        return np.round(v)
    if m == "CEIL":
        return np.ceil(v)
    if m == "FLOOR":
        return np.floor(v)
    if m == "UP":
        return np.where(v > 0, np.ceil(v), np.floor(v))
    if m == "DOWN":
        return np.trunc(v)
    if m in ("HALF_UP", "HALF_DOWN"):
        tie = (v - np.floor(v)) == 0.5
        away = np.where(v > 0, np.ceil(v), np.floor(v))
        toward = np.trunc(v)
        return np.where(tie, away if m == "HALF_UP" else toward, np.round(v))
    raise NotConvertible(f"unknown rounding_mode {mode!r}")


@dataclasses.dataclass(frozen=True, eq=False)
class Requantizer:
    """QONNX Quant / BipolarQuant as a level index n in [0, steps].

    Multi-bit: n = R(clip(x/s + z, qmin, qmax)) - qmin; the value is
    s * (qmin + n - z). Clip and every rounding mode are non-decreasing, so
    n is (s > 0 is required). Bipolar (BipolarQuant, or a 1-bit signed
    Quant as qonnx executes it): n = [x/s + z >= 0], value s * (2n - 1 - z).
    """

    scale: np.ndarray
    zeropt: np.ndarray
    qmin: int
    qmax: int
    mode: str
    bipolar: bool
    out_dtype: str
    label: str = ""

    @property
    def steps(self) -> int:
        return 1 if self.bipolar else self.qmax - self.qmin

    @property
    def level0(self) -> int:
        return -1 if self.bipolar else self.qmin

    @property
    def level_step(self) -> int:
        return 2 if self.bipolar else 1

    def _index_floats(self, v: np.ndarray) -> np.ndarray:
        if self.bipolar:
            return (v >= 0).astype(np.int64)
        return _round_floats(np.clip(v, self.qmin, self.qmax), self.mode).astype(np.int64) - self.qmin

    def bounds(self, lo, hi, ch):
        s, z = self.scale[ch], self.zeropt[ch]
        v_lo = nx.add_down(nx.div_down(lo, s), z)
        v_hi = nx.add_up(nx.div_up(hi, s), z)
        return self._index_floats(v_lo), self._index_floats(v_hi)

    @functools.cached_property
    def _params(self):
        return list(zip(_frac(self.scale), _frac(self.zeropt)))

    def index(self, c: int, x: Fraction) -> int:
        s, z = self._params[c]
        v = x / s + z
        if self.bipolar:
            return int(v >= 0)
        return nx.round_fraction(min(max(v, Fraction(self.qmin)), Fraction(self.qmax)), self.mode) - self.qmin

    def decide(self, c: int, lo: Fraction, hi: Fraction) -> Optional[int]:
        """The level index of every value in [lo, hi], or None when the
        interval straddles a decision boundary."""
        a = self.index(c, lo)
        return a if lo == hi or a == self.index(c, hi) else None


@dataclasses.dataclass(frozen=True, eq=False)
class Chain:
    """x = in_scale * q + in_bias (q the integer input), then ``ops``, then
    ``requant``; all parameters per channel (length ``channels``)."""

    in_scale: np.ndarray
    in_bias: np.ndarray
    ops: tuple
    requant: Requantizer
    channels: int

    @property
    def screen_is_rigorous(self) -> bool:
        """Whether the float64 screen is a proof by itself: outward-rounded
        IEEE arithmetic and sqrt are; libm's exp and tanh are only close."""
        return not any(getattr(op, "libm", False) for op in self.ops)

    @property
    def unit_grid(self) -> bool:
        return bool(np.all(self.in_scale == 1) and np.all(self.in_bias == 0))

    def direction(self) -> np.ndarray:
        """Per channel: +1 non-decreasing, -1 non-increasing, 0 constant."""
        d = np.sign(self.in_scale).astype(np.int64)
        for op in self.ops:
            d = d * op.direction()
        return np.broadcast_to(d, (self.channels,)).copy()


# --------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------


class LevelOracle:
    """Exact level indices of a chain on oriented inputs ``x = sign_c * q``
    (so every channel is non-decreasing in x).

    ``levels`` screens whole arrays in float64 interval arithmetic and
    decides the rest exactly; ``exact`` is the exact evaluation alone."""

    def __init__(self, chain: Chain, sign: np.ndarray):
        self.chain = chain
        self.sign = np.asarray(sign, dtype=np.int64)
        self._cache: dict[tuple[int, int], int] = {}
        self._in = list(zip(_frac(chain.in_scale), _frac(chain.in_bias)))

    @property
    def steps(self) -> int:
        return self.chain.requant.steps

    def screen(self, ch: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounds [n_lo, n_hi] of the level index per element."""
        q = (self.sign[ch] * x).astype(np.float64)
        if self.chain.unit_grid:
            lo, hi = q, q
        else:
            s, b = self.chain.in_scale[ch], self.chain.in_bias[ch]
            lo, hi = nx.interval_mul(q, q, s, s)
            lo, hi = nx.add_down(lo, b), nx.add_up(hi, b)
        for op in self.chain.ops:
            lo, hi = op.bounds(lo, hi, ch)
        return self.chain.requant.bounds(lo, hi, ch)

    def exact(self, c: int, x: int) -> int:
        """The level index at channel c, oriented input x, exactly.

        Rational ops keep a point exact; an irrational op widens it to an
        interval of width about 2**-prec, and the quantizer's decision is
        accepted only when it is the same at both ends. Irrational values
        are never on a rational boundary (see Sigmoid, Tanh, BatchNorm), so
        refinement terminates; MAX_PREC bounds it anyway."""
        key = (c, int(x))
        if key in self._cache:
            return self._cache[key]
        s, b = self._in[c]
        v0 = s * (int(self.sign[c]) * int(x)) + b
        prec = START_PREC
        while prec <= MAX_PREC:
            lo = hi = v0
            for op in self.chain.ops:
                lo, hi = op.enclose(c, lo, hi, prec)
            n = self.chain.requant.decide(c, lo, hi)
            if n is not None:
                self._cache[key] = n
                return n
            prec *= 4
        raise NotConvertible(f"channel {c}, input {x}: the level is not decided at {MAX_PREC} bits of precision")

    def levels(self, ch: np.ndarray, x: np.ndarray, exact_only: bool = False) -> np.ndarray:
        ch, x = np.broadcast_arrays(np.asarray(ch), np.asarray(x))
        if exact_only:
            out = np.empty(x.shape, dtype=np.int64)
            for idx in np.ndindex(*x.shape):
                out[idx] = self.exact(int(ch[idx]), int(x[idx]))
            return out
        lo, hi = self.screen(ch, x)
        for idx in zip(*np.nonzero(lo != hi)):
            lo[idx] = self.exact(int(ch[idx]), int(x[idx]))
        return lo

    def at_least(self, ch: np.ndarray, x: np.ndarray, k: np.ndarray) -> np.ndarray:
        """n(x) >= k elementwise, exactly."""
        lo, hi = self.screen(ch, x)
        res = lo >= k
        for idx in zip(*np.nonzero((lo < k) & (hi >= k))):
            res[idx] = self.exact(int(ch[idx]), int(x[idx])) >= k[idx]
        return res


def find_thresholds(oracle: LevelOracle, lo: int, hi: int) -> np.ndarray:
    """T[c, k-1] = the smallest x in [lo, hi] with n_c(x) >= k (k = 1..steps),
    or hi + 1 when no x there reaches it. Bisection on all (channel, level)
    pairs at once: invariant n(below) < k <= n(above), with the virtual
    values n(lo - 1) = -inf and n(hi + 1) = +inf."""
    C, S = oracle.chain.channels, oracle.steps
    ch = np.repeat(np.arange(C), S)
    k = np.tile(np.arange(1, S + 1), C)
    below = np.full(C * S, lo - 1, dtype=np.int64)
    above = np.full(C * S, hi + 1, dtype=np.int64)
    while True:
        open_ = np.nonzero(above - below > 1)[0]
        if open_.size == 0:
            return above.reshape(C, S)
        mid = below[open_] + (above[open_] - below[open_]) // 2
        reached = oracle.at_least(ch[open_], mid, k[open_])
        above[open_] = np.where(reached, mid, above[open_])
        below[open_] = np.where(reached, below[open_], mid)


@dataclasses.dataclass(frozen=True)
class Encoding:
    """Thresholds as stored: ``rows`` (1 or C, width) on the oriented input;
    level index n = ``skipped`` + #{j : x >= rows[c, j]}."""

    rows: np.ndarray
    skipped: int
    dropped_top: int
    stuck: tuple

    @property
    def merged(self) -> bool:
        return self.rows.shape[0] == 1

    def count(self, x: np.ndarray) -> np.ndarray:
        """Level indices from qonnx's own MultiThreshold on float32 thresholds
        (x: (C, M) oriented inputs)."""
        from qonnx.custom_op.general.multithreshold import multithreshold

        T = self.rows.astype(np.float32)
        return multithreshold(np.asarray(x, dtype=np.float64).T, T).T.astype(np.int64) + self.skipped


def encode(T: np.ndarray, xlo: np.ndarray, xhi: np.ndarray) -> Encoding:
    """Drop the columns reached on every channel's whole range (a prefix:
    rows are sorted) and those no channel reaches (a suffix), keeping at
    least one column; merge the rows when they are all equal."""
    always = T <= xlo[:, None]
    never = T > xhi[:, None]
    stuck = tuple(int(c) for c in np.nonzero(np.all(always | never, axis=1))[0])
    S = T.shape[1]
    d = 0
    while d < S - 1 and np.all(always[:, d]):
        d += 1
    e = 0
    while S - d - e > 1 and np.all(never[:, S - 1 - e]):
        e += 1
    kept = T[:, d : S - e]
    if np.all(kept == kept[:1]):
        kept = kept[:1]
    return Encoding(kept, d, e, stuck)


def verify_encoding(oracle: LevelOracle, enc: Encoding, xlo: np.ndarray, xhi: np.ndarray, exhaustive_limit: int) -> str:
    """Check the stored thresholds against the chain; raise on a mismatch.

    Always: at both ends of each channel's range and at T - 1, T of every
    threshold inside it, exactly (the rigorous screen deciding where it
    can, see Chain.screen_is_rigorous). Between two consecutive such points
    the count is constant and the chain is monotone, so agreement there
    proves agreement everywhere. When the range holds fewer than
    ``exhaustive_limit`` (channel, value) pairs, also at every one of them.
    Returns how it was verified."""
    C = oracle.chain.channels
    rows = np.broadcast_to(enc.rows, (C, enc.rows.shape[1]))
    points = []
    for c in range(C):
        cand = np.concatenate([[xlo[c], xhi[c]], rows[c] - 1, rows[c]])
        points.append(np.unique(cand[(cand >= xlo[c]) & (cand <= xhi[c])]))
    width = max(len(p) for p in points)
    x = np.stack([np.pad(p, (0, width - len(p)), mode="edge") for p in points])
    ch = np.arange(C)[:, None]
    _compare(oracle.levels(ch, x, exact_only=not oracle.chain.screen_is_rigorous), enc.count(x), ch, x, oracle)
    how = f"exact at {sum(len(p) for p in points)} points (range ends, thresholds -1/+0)"
    lo, hi = int(xlo.min()), int(xhi.max())
    if C * (hi - lo + 1) < exhaustive_limit:
        x = np.broadcast_to(np.arange(lo, hi + 1, dtype=np.int64), (C, hi - lo + 1))
        inside = (x >= xlo[:, None]) & (x <= xhi[:, None])
        got = np.where(inside, enc.count(x), 0)
        want = np.where(inside, oracle.levels(np.broadcast_to(ch, x.shape), x), 0)
        _compare(want, got, ch, x, oracle)
        how += f"; exhaustive over {int(inside.sum())} (channel, value) pairs"
    return how


def _compare(want: np.ndarray, got: np.ndarray, ch: np.ndarray, x: np.ndarray, oracle: LevelOracle) -> None:
    bad = np.argwhere(want != got)
    if bad.size:
        i, j = bad[0]
        c = int(np.broadcast_to(ch, x.shape)[i, j])
        raise SiraError(
            f"threshold conversion of '{oracle.chain.requant.label}' is wrong at channel {c}, integer input "
            f"{int(oracle.sign[c] * x[i, j])}: the chain gives level index {int(want[i, j])}, the thresholds {int(got[i, j])}"
        )


@dataclasses.dataclass(frozen=True)
class Conversion:
    """A chain's thresholds, proven: ``sign`` per channel (-1 = thresholded
    on -q), the encoding, and how it was verified."""

    sign: np.ndarray
    encoding: Encoding
    verified: str


def convert_chain(chain: Chain, qlo: np.ndarray, qhi: np.ndarray, exhaustive_limit: int = 2**20) -> Conversion:
    """Thresholds for ``chain`` on integer inputs q in [qlo_c, qhi_c] per
    channel. Raises NotConvertible when thresholds could not be stored
    exactly (float32) or a value is undecidable."""
    qlo = np.asarray(qlo, dtype=object)
    qhi = np.asarray(qhi, dtype=object)
    if max(abs(int(v)) for v in np.concatenate([qlo, qhi])) >= FLOAT64_EXACT:
        raise NotConvertible("the integer input range exceeds 2**53, beyond exact float64 evaluation")
    qlo, qhi = qlo.astype(np.int64), qhi.astype(np.int64)
    sign = np.where(chain.direction() < 0, -1, 1)
    xlo = np.where(sign > 0, qlo, -qhi)
    xhi = np.where(sign > 0, qhi, -qlo)
    oracle = LevelOracle(chain, sign)
    T = find_thresholds(oracle, int(xlo.min()), int(xhi.max()))
    enc = encode(T, xlo, xhi)
    if np.any(np.abs(enc.rows) >= FLOAT32_EXACT):
        raise NotConvertible("a threshold reaches 2**24 in magnitude, which float32 thresholds cannot hold exactly")
    return Conversion(sign, enc, verify_encoding(oracle, enc, xlo, xhi, exhaustive_limit))


# --------------------------------------------------------------------------
# from nodes to a Chain
# --------------------------------------------------------------------------


def _node_label(node: NodeProto) -> str:
    return node.name or f"{node.op_type}({node.output[0]})"


def _const(ra, name: str) -> Optional[np.ndarray]:
    r = ra.ranges.get(name) if name else None
    return None if r is None or not r.is_const else np.asarray(r.value, dtype=np.float64)


def data_input(node: NodeProto, ra) -> Optional[int]:
    """Index of the one run-time input of a chain op (the others constant),
    or None when the node is not a chain op."""
    if node.op_type not in CHAIN_OPS and node.op_type not in QUANTIZERS:
        return None
    if len([o for o in node.output if o]) != 1:
        return None
    dynamic = [i for i, name in enumerate(node.input) if name and _const(ra, name) is None]
    if len(dynamic) != 1:
        return None
    idx = dynamic[0]
    if idx != 0 and node.op_type not in ("Mul", "Add", "Sub", "Div"):
        return None
    if ra[node.input[idx]].shape != ra[node.output[0]].shape:
        return None  # a constant operand that broadcasts the data is not elementwise on it
    return idx


def _params(node: NodeProto, ra, rank: int) -> dict[str, np.ndarray]:
    """The node's constant parameters, compact at the data's rank (numpy
    broadcasting; BatchNormalization's along axis 1)."""
    shape = ra[node.output[0]].shape
    if node.op_type == "BatchNormalization":
        lay = (1, -1) + (1,) * (rank - 2)
        return {k: _const(ra, node.input[i]).reshape(lay) for k, i in (("gamma", 1), ("beta", 2), ("mean", 3), ("var", 4))}
    names = {"Quant": ("scale", "zeropt"), "IntQuant": ("scale", "zeropt"), "BipolarQuant": ("scale",)}.get(node.op_type)
    if names:
        return {k: compact(_const(ra, node.input[i + 1]), shape) for i, k in enumerate(names)}
    if node.op_type in ("Mul", "Add", "Sub", "Div"):
        d = data_input(node, ra)
        return {"k": compact(_const(ra, node.input[1 - d]), shape)}
    return {}


def _channel_vector(a: np.ndarray, C: int) -> np.ndarray:
    """A compact array varying along the channel axis at most, as C floats."""
    return np.full(C, float(a.reshape(-1)[0])) if a.size == 1 else a.reshape(-1).astype(np.float64)


def _scalar(node: NodeProto, ra, idx: int, attr: str) -> Optional[float]:
    if idx < len(node.input) and node.input[idx]:
        return float(_const(ra, node.input[idx]).reshape(-1)[0])
    v = node_attr(node, attr)
    return None if v is None else float(v)


def _make_op(node: NodeProto, ra, p: dict):
    """The ChainOp of a node (None for Identity), with per-channel vectors."""
    label = _node_label(node)
    t = node.op_type
    if t == "Mul":
        return Scale(p["k"], label)
    if t == "Add":
        return Offset(p["k"], label)
    if t == "Sub":
        return Offset(-p["k"], label) if data_input(node, ra) == 0 else Reflect(p["k"], label)
    if t == "Div":
        if data_input(node, ra) != 0:
            raise NotConvertible(f"{label}: Div with the data as divisor is not monotone across 0")
        if np.any(p["k"] == 0):
            raise NotConvertible(f"{label}: division by zero")
        return Divide(p["k"], label)
    if t == "BatchNormalization":
        eps = float(np.float32(node_attr(node, "epsilon", 1e-5)))
        if node_attr(node, "training_mode", 0):
            raise NotConvertible(f"{label}: training-mode BatchNormalization")
        if np.any(p["var"] + eps <= 0):
            raise NotConvertible(f"{label}: variance + epsilon is not positive")
        return BatchNorm(p["gamma"], p["beta"], p["mean"], p["var"], eps, label)
    if t == "Relu":
        return Relu(label)
    if t == "Clip":
        return Clip(_scalar(node, ra, 1, "min"), _scalar(node, ra, 2, "max"), label)
    if t == "LeakyRelu":
        alpha = float(np.float32(node_attr(node, "alpha", 0.01)))
        if alpha < 0:
            raise NotConvertible(f"{label}: LeakyRelu with alpha={alpha:g} < 0 is not monotone (it falls below 0 and rises above)")
        return LeakyRelu(alpha, label)
    if t == "HardSigmoid":
        return HardSigmoid(float(np.float32(node_attr(node, "alpha", 0.2))), float(np.float32(node_attr(node, "beta", 0.5))), label)
    if t == "Sigmoid":
        return Sigmoid(label)
    if t == "Tanh":
        return Tanh(label)
    return None  # Identity


def _make_requantizer(node: NodeProto, ra, p: dict, C: int) -> Requantizer:
    label = _node_label(node)
    scale = p["scale"]
    if np.any(scale <= 0):
        raise NotConvertible(f"{label}: the quantizer scale must be positive")
    zeropt = p.get("zeropt", np.zeros(C))
    if node.op_type == "BipolarQuant":
        return Requantizer(scale, zeropt, -1, 1, "ROUND", True, "BIPOLAR", label)
    bits_v = _const(ra, node.input[3])
    if bits_v is None or bits_v.size != 1 or not float(bits_v.reshape(-1)[0]).is_integer():
        raise NotConvertible(f"{label}: the bit width must be a constant integer")
    bits = int(bits_v.reshape(-1)[0])
    signed, narrow = bool(node_attr(node, "signed", 1)), bool(node_attr(node, "narrow", 0))
    if bits == 1 and signed:
        return Requantizer(scale, zeropt, -1, 1, "ROUND", True, "BIPOLAR", label)
    qmin, qmax = int_limits(signed, narrow, bits)
    mode = str(node_attr(node, "rounding_mode", "ROUND")).upper()
    if mode not in nx.ROUNDING_MODES:
        raise NotConvertible(f"{label}: unknown rounding_mode {mode!r}")
    dtype = f"INT{bits}" if signed else ("BINARY" if bits == 1 else f"UINT{bits}")
    return Requantizer(scale, zeropt, qmin, qmax, mode, False, dtype, label)


def _varying_axes(a: np.ndarray) -> set[int]:
    return {i for i, d in enumerate(a.shape) if d > 1}


def build_chain(nodes: list, ra, start: str, on_grid: bool) -> tuple[Chain, int]:
    """The Chain of ``nodes`` (ops in order, the quantizer last) reading the
    tensor ``start``, and its channel axis: the one axis along which any
    parameter varies (axis 1 when none does). With ``on_grid`` the chain's
    integer input is the grid index q of ``start`` (x = scale*q + bias),
    else the tensor's own (integer) values."""
    r = ra[start]
    shape = r.shape
    rank = len(shape)
    if rank < 2:
        raise NotConvertible(f"tensor '{start}' has rank {rank}; MultiThreshold needs a channel axis in a tensor of rank >= 2")
    params = [_params(n, ra, rank) for n in nodes]
    unit = np.ones((1,) * rank)
    grid = {"scale": compact(r.scale, shape), "bias": compact(r.bias, shape)} if on_grid else {"scale": unit, "bias": 0 * unit}
    axes = set().union(*(_varying_axes(a) for p in params + [grid] for a in p.values()))
    if len(axes) > 1:
        raise NotConvertible(f"parameters vary along axes {sorted(axes)}; thresholds can be per channel (one axis) only")
    axis = axes.pop() if axes else 1
    C = shape[axis]
    vec = [{k: _channel_vector(a, C) for k, a in p.items()} for p in params]
    ops = tuple(op for n, p in zip(nodes[:-1], vec[:-1]) if (op := _make_op(n, ra, p)) is not None)
    requant = _make_requantizer(nodes[-1], ra, vec[-1], C)
    chain = Chain(_channel_vector(grid["scale"], C), _channel_vector(grid["bias"], C), ops, requant, C)
    return chain, axis


def _per_channel(a: np.ndarray, axis: int, C: int, reduce) -> np.ndarray:
    """A compact array reduced over every axis but ``axis``, as C ints."""
    others = tuple(i for i in range(a.ndim) if i != axis)
    red = np.asarray(reduce(a, axis=others) if others else a).reshape(-1)
    return np.array([int(v) for v in np.broadcast_to(red, (C,))], dtype=object)


def integer_values(r) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Compact exact bounds of a dynamic tensor whose every value is an
    integer (see ScaledIntRange.integer_value_bounds); None for constants."""
    return None if r.is_const else r.integer_value_bounds()


# --------------------------------------------------------------------------
# graph surgery
# --------------------------------------------------------------------------


@dataclasses.dataclass
class ConvertedChain:
    quantizer: str
    nodes: list
    input: str
    channels: int
    rows: int
    thresholds_per_row: int
    dropped_always_reached: int
    dropped_never_reached: int
    negated_channels: list
    stuck_channels: list
    verified: str


@dataclasses.dataclass
class UnconvertedChain:
    quantizer: str
    nodes: list
    reason: str


@dataclasses.dataclass
class ThresholdReport:
    """What a threshold pass did: each converted chain and each chain left
    as it was, with the reason."""

    converted: list = dataclasses.field(default_factory=list)
    unconverted: list = dataclasses.field(default_factory=list)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _Candidate:
    quant: NodeProto
    #: chain ops upstream of the quantizer, nearest the start first
    ops: list
    #: the tensors the chain could start at, upstream-most first
    starts: list


def _graph_maps(model: ModelWrapper):
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in model.graph.output}
    return producers, consumers, outputs


def _candidates(model: ModelWrapper, ra) -> list[_Candidate]:
    """Every quantizer on run-time data, with the longest run of chain ops
    before it whose intermediate tensors nothing else reads."""
    producers, consumers, outputs = _graph_maps(model)
    found = []
    for quant in model.graph.node:
        if quant.op_type not in QUANTIZERS or data_input(quant, ra) != 0:
            continue
        ops, starts = [], [quant.input[0]]
        t = quant.input[0]
        while True:
            p = producers.get(t)
            if p is None or p.op_type not in CHAIN_OPS or len(consumers.get(t, ())) != 1 or t in outputs:
                break
            d = data_input(p, ra)
            if d is None:
                break
            ops.insert(0, p)
            t = p.input[d]
            starts.insert(0, t)
        found.append(_Candidate(quant, ops, starts))
    return found


def _input_path(model: ModelWrapper, tensor: str) -> Optional[str]:
    """The graph input whose values reach ``tensor`` through movement ops
    only, every tensor on the way read by one node (so converting the input
    to raw integers changes nothing else); None if there is none."""
    producers, consumers, outputs = _graph_maps(model)
    inputs = {i.name for i in model.graph.input} - {i.name for i in model.graph.initializer}
    t = tensor
    if len(consumers.get(t, ())) != 1:
        return None
    while t not in inputs:
        p = producers.get(t)
        if p is None or p.op_type not in MOVEMENT_OPS or t in outputs:
            return None
        t = p.input[0]
        if len(consumers.get(t, ())) != 1:
            return None
    return t if len(consumers.get(t, ())) == 1 and t not in outputs else None


def _unique(model: ModelWrapper, stem: str) -> str:
    names = set(model.get_all_tensor_names()) | {n.name for n in model.graph.node}
    name, i = stem, 0
    while name in names:
        i += 1
        name = f"{stem}_{i}"
    return name


def _layout(rank: int, axis: int) -> str:
    """A data_layout string with C at ``axis`` (qonnx reads only the C)."""
    others = iter({2: "N", 3: "NW", 4: "NHW", 5: "NDHW"}.get(rank, "N" + "X" * (rank - 2)))
    return "".join("C" if i == axis else next(others) for i in range(rank))


def _laid(v: np.ndarray, rank: int, axis: int) -> np.ndarray:
    """A per-channel vector as a float32 tensor broadcasting along ``axis``
    (a scalar when all entries are equal)."""
    if np.all(v == v[0]):
        return np.asarray(v[0], dtype=np.float32)
    shape = [1] * rank
    shape[axis] = v.size
    return v.astype(np.float32).reshape(shape)


def _f32_exact(v: Fraction) -> bool:
    return Fraction(float(np.float32(float(v)))) == v


def _output_nodes(model, requant: Requantizer, enc: Encoding, mt_in: str, thr: str, out: str, rank: int, axis: int, stem: str):
    """MultiThreshold plus what reproduces the quantizer's output values."""
    lvl0 = requant.level0 + requant.level_step * enc.skipped
    s, z = requant.scale, requant.zeropt
    uniform = bool(np.all(s == s[0]) and np.all(z == z[0]))
    if uniform:
        sf, zf = Fraction(float(s[0])), Fraction(float(z[0]))
        out_scale, out_bias = sf * requant.level_step, sf * (lvl0 - zf)
        if _f32_exact(out_scale) and _f32_exact(out_bias):
            return [_mt_node(model, mt_in, thr, out, requant, float(out_scale), float(out_bias), rank, axis, stem)], {}
    levels = _unique(model, f"{stem}_levels")
    nodes = [_mt_node(model, mt_in, thr, levels, requant, float(requant.level_step), float(lvl0), rank, axis, stem)]
    inits = {}
    cur = levels
    if np.any(z != 0):
        zname, shifted = _unique(model, f"{stem}_neg_zeropt"), _unique(model, f"{stem}_shifted")
        inits[zname] = _laid(-z, rank, axis)
        nodes.append(helper.make_node("Add", [cur, zname], [shifted], name=_unique(model, f"{stem}_Add")))
        cur = shifted
    sname = _unique(model, f"{stem}_scale")
    inits[sname] = _laid(s, rank, axis)
    nodes.append(helper.make_node("Mul", [cur, sname], [out], name=_unique(model, f"{stem}_Mul")))
    return nodes, inits


def _mt_node(model, inp, thr, out, requant, out_scale, out_bias, rank, axis, stem):
    return helper.make_node(
        "MultiThreshold",
        [inp, thr],
        [out],
        domain=QONNX_DOMAIN,
        name=_unique(model, f"{stem}_MultiThreshold"),
        out_dtype=requant.out_dtype,
        out_scale=out_scale,
        out_bias=out_bias,
        data_layout=_layout(rank, axis),
    )


def _rewrite(model: ModelWrapper, nodes: list, start: str, chain: Chain, conv: Conversion, rank: int, axis: int) -> None:
    """Replace ``nodes`` (chain ops and quantizer) by
    [Mul(sign)] -> MultiThreshold [-> Add(-z) -> Mul(s)], writing the
    quantizer's output tensor. Nodes are matched by output name (protobuf
    copies messages, so identities do not survive a rewrite)."""
    quant = nodes[-1]
    stem = quant.name or quant.output[0]
    new_nodes, inits = [], {}
    mt_in = start
    if np.any(conv.sign < 0):
        sname, oriented = _unique(model, f"{stem}_sign"), _unique(model, f"{stem}_oriented")
        inits[sname] = _laid(conv.sign.astype(np.float64), rank, axis)
        new_nodes.append(helper.make_node("Mul", [start, sname], [oriented], name=_unique(model, f"{stem}_Sign")))
        mt_in = oriented
    thr = _unique(model, f"{stem}_thresholds")
    inits[thr] = conv.encoding.rows.astype(np.float32)
    out_nodes, out_inits = _output_nodes(model, chain.requant, conv.encoding, mt_in, thr, quant.output[0], rank, axis, stem)
    new_nodes += out_nodes
    inits.update(out_inits)
    for name, value in inits.items():
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    drop = {n.output[0] for n in nodes}
    kept = []
    for n in model.graph.node:
        if n.output[0] == quant.output[0]:
            kept.extend(new_nodes)
        elif n.output[0] not in drop:
            kept.append(n)
    del model.graph.node[:]
    model.graph.node.extend(kept)


def _finish(model: ModelWrapper) -> ModelWrapper:
    from qonnx.transformation.general import RemoveUnusedTensors
    from qonnx.transformation.infer_shapes import InferShapes

    with quiet():
        model = model.transform(RemoveUnusedTensors())
        return model.transform(InferShapes())


class _ThresholdPass(Transformation):
    """Shared driver: analyze, pick each chain's start, convert, rewrite.

    One application converts every convertible chain and returns
    ``modified=False`` (qonnx's fixed-point loop then runs it once; a second
    run finds only chains it already explained). ``self.report`` lists the
    conversions and the chains left as they were."""

    #: the chain's integer is the start tensor's grid index (True) or its value
    on_grid = False

    def __init__(self, input_spec=None, exhaustive_limit: int = 2**20, max_bits: int = 8):
        super().__init__()
        self.input_spec = input_spec
        self.exhaustive_limit = exhaustive_limit
        self.max_bits = max_bits
        self.report = ThresholdReport()

    def _start(self, model, ra, cand: _Candidate) -> tuple[Optional[str], Optional[str]]:
        """(start tensor, "") to convert, (None, reason) to report the chain
        as unconverted, (None, None) when the chain is another pass's."""
        raise NotImplementedError

    def _int_range(self, r, axis: int, C: int) -> tuple[np.ndarray, np.ndarray]:
        """Per channel, the proven range of the integer the chain reads."""
        lo, hi = (r.int_lo, r.int_hi) if self.on_grid else integer_values(r)
        return _per_channel(lo, axis, C, np.min), _per_channel(hi, axis, C, np.max)

    def _converted(self, model, ra, start: str) -> None:
        """Hook after a chain on ``start`` was rewritten."""

    def apply(self, model: ModelWrapper):
        ra = sira.analyze(model, self.input_spec)
        model = ra.model
        self.report = ThresholdReport()
        rewritten = False
        for cand in _candidates(model, ra):
            start, reason = self._start(model, ra, cand)
            nodes = cand.ops[cand.starts.index(start) :] + [cand.quant] if start else cand.ops + [cand.quant]
            names = [_node_label(n) for n in nodes]
            if start is None:
                if reason is not None:
                    self.report.unconverted.append(UnconvertedChain(_node_label(cand.quant), names, reason))
                continue
            try:
                chain, axis = build_chain(nodes, ra, start, self.on_grid)
                if chain.requant.steps >= 2**self.max_bits:
                    raise NotConvertible(f"{chain.requant.steps + 1} levels: wider than max_bits={self.max_bits}")
                conv = convert_chain(chain, *self._int_range(ra[start], axis, chain.channels), self.exhaustive_limit)
            except NotConvertible as e:
                self.report.unconverted.append(UnconvertedChain(_node_label(cand.quant), names, str(e)))
                continue
            _rewrite(model, nodes, start, chain, conv, len(ra[start].shape), axis)
            self._converted(model, ra, start)
            rewritten = True
            enc = conv.encoding
            self.report.converted.append(
                ConvertedChain(
                    quantizer=_node_label(cand.quant),
                    nodes=names,
                    input=start,
                    channels=chain.channels,
                    rows=int(enc.rows.shape[0]),
                    thresholds_per_row=int(enc.rows.shape[1]),
                    dropped_always_reached=enc.skipped,
                    dropped_never_reached=enc.dropped_top,
                    negated_channels=[int(c) for c in np.nonzero(conv.sign < 0)[0]],
                    stuck_channels=list(enc.stuck),
                    verified=conv.verified,
                )
            )
        return (_finish(model) if rewritten else model), False


class ConvertChainsToThresholds(_ThresholdPass):
    """Every chain that starts at an integer tensor (every value an integer:
    integer scale and bias - a MAC accumulator after scale/bias aggregation,
    or an earlier threshold's levels) and ends in a Quant/BipolarQuant
    becomes one MultiThreshold on that tensor. The start is the
    upstream-most integer tensor of the chain.

    ``input_spec`` is what :func:`sira.analyze` takes; quantizers wider than
    ``max_bits`` (2**bits - 1 thresholds) are left as they are."""

    def _start(self, model, ra, cand):
        for t in cand.starts:
            if integer_values(ra[t]) is not None:
                return t, ""
        first = cand.starts[0]
        r = ra[first]
        src = _input_path(model, first)
        if src is not None and r.is_scaled_int:
            return None, f"the chain reads graph input '{src}' on its grid (scale {float(np.ravel(r.scale)[0]):g}); ConvertInputQuantToThresholds converts it"
        what = "has no integer grid" if not r.is_scaled_int else "has a scale or bias that is not an integer"
        return None, f"chain input '{first}' {what}; aggregate its scale and bias first (AggregateScaleBias)"


class ConvertInputQuantToThresholds(_ThresholdPass):
    """The first quantizer on a graph input that the input spec puts on an
    integer grid (``x = s*q + b``, e.g. uint8 pixels times 1/255) becomes
    integer thresholds on the raw ``q``: the input then takes ``q`` itself
    (annotated with its integer datatype) and its movement ops (Reshape,
    Flatten, ...) carry integers.

    After ``apply``: ``feed_map(feed)`` turns a feed of the original model
    into one of the converted model (``q = round((x - b)/s)``), for
    :func:`sira.verify_equivalent`; ``output_spec`` is the input spec of the
    converted model (the converted inputs as integer ranges). Both are
    usable before ``apply`` has run (``output_spec`` is filled in place), so
    a pipeline may pass them on up front."""

    on_grid = True

    def __init__(self, input_spec=None, exhaustive_limit: int = 2**20, max_bits: int = 8):
        super().__init__(input_spec, exhaustive_limit, max_bits)
        self.output_spec: dict = {}
        self._grids: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _start(self, model, ra, cand):
        first = cand.starts[0]
        src = _input_path(model, first)
        if src is None:
            return None, None
        if not ra[first].is_scaled_int:
            return None, f"graph input '{src}' has no integer grid in the input spec (give e.g. datatype UINT8 with scale 1/255)"
        return first, ""

    def _converted(self, model, ra, start):
        src = _input_path(model, start)
        r = ra.input_ranges[src]
        lo, hi = r.int_bounds()
        model.set_tensor_datatype(src, DataType[nx.narrowest_int_type(lo, hi)])
        self._grids[src] = (np.broadcast_to(r.scale, r.shape), np.broadcast_to(r.bias, r.shape))
        self.output_spec[src] = {"int_min": int(lo), "int_max": int(hi)}

    def apply(self, model: ModelWrapper):
        self._grids.clear()
        self.output_spec.clear()
        self.output_spec.update(load_spec(self.input_spec) or {})
        aliases = input_aliases(model)
        model, modified = super().apply(model)
        for alias, name in aliases.items():
            if name in self._grids:
                self.output_spec.pop(alias, None)
        return model, modified

    def feed_map(self, feed: dict) -> dict:
        """A feed of the original model -> the same inputs as raw integers."""
        out = dict(feed)
        for name, (s, b) in self._grids.items():
            if name in out:
                out[name] = np.rint((np.asarray(out[name], dtype=np.float64) - b) / s)
        return out
