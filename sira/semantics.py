"""Exact semantics of the monotone elementwise ops, one entry per op type.

Each op that may sit between an integer tensor and the quantizer ending a
layer is defined here once, as a per-channel map of reals with three views:

* ``direction()``: +1 / -1 / 0 per channel (non-decreasing, non-increasing,
  constant), proved in the class docstring;
* ``bounds(lo, hi, ch)``: the float64 interval image, outward rounded, of
  the elementwise intervals [lo, hi] in channels ``ch`` (a vectorised screen;
  ``libm = True`` marks a screen that trusts libm's accuracy, as the
  analysis rules do, instead of proving it);
* ``enclose(c, lo, hi, prec)``: the exact rational interval image for
  channel ``c``: a point stays a point where the op is rational, irrational
  values (square roots, exp) are enclosed in rational intervals about
  2**-prec wide (integer square roots, mpmath's rigorous interval
  arithmetic).

Parameters are float64 vectors with one entry per channel; every float is
the rational it stores. :data:`SEMANTICS` maps an ONNX op type to how it
reads its parameters from a node and builds its map (:func:`semantics`
registers one). Threshold derivation builds its chains from this table;
the analysis rules take BatchNormalization's real bounds from
:func:`batchnorm_bounds` and Sigmoid's and Tanh's float evaluation and
codomain from their classes here, with :func:`libm_value_bounds` as the one
widening of libm results. So an op's meaning lives in one place: a new
activation is one entry here plus its analysis rule.
"""

from __future__ import annotations

import dataclasses
import functools
from fractions import Fraction
from math import isqrt
from typing import Callable, Optional

import numpy as np
from mpmath import iv

from . import numerics as nx
from .errors import SiraError
from .range import compact

#: float64 evaluations of libm-quality functions (exp, tanh, erf, log and a
#: handful of rounded + - * /) are within this many ulps of the exact value
LIBM_ULPS = 8.0


class NotMonotone(SiraError):
    """An op whose parameters (or whose operand order) give no monotone
    per-channel map; the message says why."""


def channel_fractions(v: np.ndarray) -> list[Fraction]:
    """A per-channel float vector as the exact rationals it stores."""
    return [Fraction(float(x)) for x in np.ravel(v)]


def _ordered(a: Fraction, b: Fraction) -> tuple[Fraction, Fraction]:
    return (a, b) if a <= b else (b, a)


def _swap_where(neg: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.where(neg, hi, lo), np.where(neg, lo, hi)


def _increasing() -> np.ndarray:
    return np.ones(1, dtype=np.int64)


# --------------------------------------------------------------------------
# affine maps with a per-channel constant
# --------------------------------------------------------------------------


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
        return channel_fractions(self.k)

    def enclose(self, c, lo, hi, prec):
        return _ordered(lo * self._k[c], hi * self._k[c])


@dataclasses.dataclass(frozen=True, eq=False)
class Offset:
    """x + k (Add, and Sub with a constant subtrahend as k = -c). A
    translation: strictly increasing."""

    k: np.ndarray
    label: str = ""

    def direction(self):
        return _increasing()

    def bounds(self, lo, hi, ch):
        return nx.add_interval(lo, hi, self.k[ch])

    @functools.cached_property
    def _k(self):
        return channel_fractions(self.k)

    def enclose(self, c, lo, hi, prec):
        return lo + self._k[c], hi + self._k[c]


@dataclasses.dataclass(frozen=True, eq=False)
class Reflect:
    """k - x (Sub with the data as subtrahend). Strictly decreasing."""

    k: np.ndarray
    label: str = ""

    def direction(self):
        return -_increasing()

    def bounds(self, lo, hi, ch):
        return nx.add_down(self.k[ch], -hi), nx.add_up(self.k[ch], -lo)

    @functools.cached_property
    def _k(self):
        return channel_fractions(self.k)

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
        return channel_fractions(self.k)

    def enclose(self, c, lo, hi, prec):
        return _ordered(lo / self._k[c], hi / self._k[c])


# --------------------------------------------------------------------------
# BatchNormalization
# --------------------------------------------------------------------------


def batchnorm_factor(gamma, var, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Float64 bounds, outward rounded, of A = gamma / sqrt(var + eps)
    (var + eps > 0): sqrt is correctly rounded, so one step outward
    encloses the true root. A depends on the parameters alone, so a screen
    over many points computes it once per channel."""
    with np.errstate(all="ignore"):
        r_lo = np.nextafter(np.sqrt(nx.add_down(var, eps)), 0.0)
        r_hi = np.nextafter(np.sqrt(nx.add_up(var, eps)), np.inf)
    a_lo = np.minimum(nx.div_down(gamma, r_lo), nx.div_down(gamma, r_hi))
    a_hi = np.maximum(nx.div_up(gamma, r_lo), nx.div_up(gamma, r_hi))
    return a_lo, a_hi


def batchnorm_affine(lo, hi, a_lo, a_hi, beta, mean) -> tuple[np.ndarray, np.ndarray]:
    """Float64 bounds, outward rounded, of (x - mean) * A + beta over x in
    [lo, hi] and A in [a_lo, a_hi]."""
    d_lo, d_hi = nx.add_interval(lo, hi, -mean)
    y_lo, y_hi = nx.interval_mul(d_lo, d_hi, a_lo, a_hi)
    return nx.add_interval(y_lo, y_hi, beta)


def _down(v):
    return np.nextafter(v, -np.inf)


def _up(v):
    return np.nextafter(v, np.inf)


def batchnorm_screen(lo, hi, a_lo, a_hi, beta, mean) -> tuple[np.ndarray, np.ndarray]:
    """Float64 bounds of (x - mean) * A + beta over x in [lo, hi] (finite)
    and A in [a_lo, a_hi], for the threshold screen over many points: each
    operation rounded to nearest and stepped one float outward, which
    encloses its exact result (also across a binade, at an overflow to
    infinity and among subnormals), at a fraction of the cost of the exact
    directed roundings of :func:`batchnorm_affine`. The value is irrational
    wherever A is, so the bounds are an interval anyway, at most a few ulps
    wider; a level they do not decide is decided exactly."""
    with np.errstate(over="ignore", under="ignore"):
        d_lo, d_hi = _down(lo - mean), _up(hi - mean)
        # d * a is non-decreasing in a for d >= 0, non-increasing for d < 0:
        # the box's extremes are these corners
        p_lo = np.minimum(_down(d_lo * np.where(d_lo >= 0, a_lo, a_hi)), _down(d_hi * np.where(d_hi >= 0, a_lo, a_hi)))
        p_hi = np.maximum(_up(d_lo * np.where(d_lo >= 0, a_hi, a_lo)), _up(d_hi * np.where(d_hi >= 0, a_hi, a_lo)))
        return _down(p_lo + beta), _up(p_hi + beta)


def batchnorm_bounds(lo, hi, gamma, beta, mean, var, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Float64 bounds, outward rounded, of (x - mean) * A + beta over x in
    [lo, hi] with A = gamma / sqrt(var + eps) (var + eps > 0)."""
    return batchnorm_affine(lo, hi, *batchnorm_factor(gamma, var, eps), beta, mean)


def sqrt_enclosure(v: Fraction, prec: int) -> tuple[Fraction, Fraction]:
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
    the sign of gamma (var + eps > 0 is required). Its value is irrational
    only through the square root, and an irrational value is never on a
    rational rounding boundary."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float
    label: str = ""

    def direction(self):
        return np.sign(self.gamma).astype(np.int64)

    @functools.cached_property
    def _factor(self):
        return batchnorm_factor(self.gamma, self.var, self.eps)

    def bounds(self, lo, hi, ch):
        a_lo, a_hi = self._factor
        return batchnorm_screen(lo, hi, a_lo[ch], a_hi[ch], self.beta[ch], self.mean[ch])

    @functools.cached_property
    def _params(self):
        return list(zip(*(channel_fractions(p) for p in (self.gamma, self.beta, self.mean, self.var))))

    def enclose(self, c, lo, hi, prec):
        g, b, m, v = self._params[c]
        r_lo, r_hi = sqrt_enclosure(v + Fraction(self.eps), prec)
        a_lo, a_hi = _ordered(g / r_hi, g / r_lo)
        corners = [d * a for d in (lo - m, hi - m) for a in (a_lo, a_hi)]
        return min(corners) + b, max(corners) + b


# --------------------------------------------------------------------------
# piecewise-linear activations
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Relu:
    """max(x, 0): the maximum of two non-decreasing functions, non-decreasing."""

    label: str = ""

    def direction(self):
        return _increasing()

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
        return _increasing()

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
    op is read from its node)."""

    alpha: float
    label: str = ""

    def direction(self):
        return _increasing()

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


# --------------------------------------------------------------------------
# transcendental activations
# --------------------------------------------------------------------------


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


def interval_eval(fn, x: Fraction, prec: int) -> tuple[Fraction, Fraction]:
    """Rational bounds of fn(x), fn written in mpmath's interval arithmetic
    (rigorous, outward rounded) evaluated at ``prec`` bits."""
    old = iv.prec
    try:
        iv.prec = prec
        lo, hi = fn(iv, iv.mpf(x.numerator) / iv.mpf(x.denominator))._mpi_
    finally:
        iv.prec = old
    return _mpf_fraction(lo, prec, False), _mpf_fraction(hi, prec, True)


def libm_value_bounds(f, p: np.ndarray, ulps=LIBM_ULPS) -> tuple[np.ndarray, np.ndarray]:
    """Sound bounds of f(p) from f's float64 evaluation, widened by ``ulps``
    (a number or a function of the point); NaN leaves it unbounded. A 0
    computed at the point 0 is kept: the functions evaluated this way either
    vanish at 0 exactly or are far from 0 there (libm returns exact zeros for
    tanh, erf, expm1 at 0)."""
    with np.errstate(all="ignore"):
        v = f(p)
    w = ulps(p) if callable(ulps) else ulps
    lo, hi = nx.round_outward(v, v, rel_ops=w)
    exact_zero = (p == 0) & (v == 0)
    lo, hi = np.where(exact_zero, 0.0, lo), np.where(exact_zero, 0.0, hi)
    return np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)


@dataclasses.dataclass(frozen=True, eq=False)
class _Transcendental:
    """A strictly increasing function, exact at 0 (``at_zero``) and
    transcendental elsewhere (Lindemann-Weierstrass: exp of a non-zero
    rational is transcendental), so its value never sits exactly on a
    rational rounding boundary and refinement decides every comparison."""

    #: the float screen trusts libm's accuracy (see LIBM_ULPS)
    libm = True
    at_zero = Fraction(0)
    codomain = (-1.0, 1.0)

    label: str = ""

    def direction(self):
        return _increasing()

    def bounds(self, lo, hi, ch):
        a, _ = libm_value_bounds(self.floats, lo)
        _, b = libm_value_bounds(self.floats, hi)
        zero = float(self.at_zero)
        return np.clip(np.where(lo == 0, zero, a), *self.codomain), np.clip(np.where(hi == 0, zero, b), *self.codomain)

    def enclose(self, c, lo, hi, prec):
        def f(x, end):
            return self.at_zero if x == 0 else interval_eval(self.intervals, x, prec)[end]

        return f(lo, 0), f(hi, 1)


class Sigmoid(_Transcendental):
    """1 / (1 + exp(-x)): exp(-x) is strictly decreasing and positive, and
    1/(1 + E) strictly decreasing in E > 0, so Sigmoid is strictly
    increasing; 1/2 at 0."""

    at_zero = Fraction(1, 2)
    codomain = (0.0, 1.0)

    @staticmethod
    def floats(x):
        """Without overflow: exp of a non-positive argument only."""
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    @staticmethod
    def intervals(ctx, t):
        return 1 / (1 + ctx.exp(-t))


class Tanh(_Transcendental):
    """1 - 2 / (exp(2x) + 1): exp(2x) + 1 is strictly increasing and
    positive, so 2/(...) strictly decreases and Tanh strictly increases;
    0 at 0."""

    floats = staticmethod(np.tanh)

    @staticmethod
    def intervals(ctx, t):
        return 1 - 2 / (ctx.exp(2 * t) + 1)


# --------------------------------------------------------------------------
# the table: op type -> parameters read from the node, and the map
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class OpNode:
    """What an entry reads of one node: its ``label``, input names, the
    index ``data`` of its one run-time input, the data's ``shape``, its
    attributes (``attr(name, default)``, decoded) and its constant inputs
    (``const(i)``, float64, None when run-time)."""

    label: str
    inputs: tuple
    data: int
    shape: tuple
    attr: Callable[[str, object], object]
    const: Callable[[int], Optional[np.ndarray]]

    def has_input(self, i: int) -> bool:
        return i < len(self.inputs) and bool(self.inputs[i])

    def float32_attr(self, name: str, default: float) -> float:
        """A float attribute as the float32 number ONNX stores."""
        return float(np.float32(self.attr(name, default)))


@dataclasses.dataclass(frozen=True)
class OpSemantics:
    """How one op type becomes a monotone map. ``read(node)`` returns its
    constant parameters compact at the data's shape (the caller finds the
    channel axis from them and reduces each to one float64 per channel);
    ``build(node, params)`` returns the map (None for the identity) or
    raises NotMonotone. The run-time input may be other than input 0 only
    when ``any_operand``."""

    read: Callable[[OpNode], dict]
    build: Callable[[OpNode, dict], object]
    any_operand: bool = False


SEMANTICS: dict[str, OpSemantics] = {}


def _no_params(node: OpNode) -> dict:
    return {}


def semantics(*op_types: str, read=_no_params, any_operand: bool = False):
    """Register ``build`` as the exact semantics of ``op_types``."""

    def register(build):
        for t in op_types:
            SEMANTICS[t] = OpSemantics(read, build, any_operand)
        return build

    return register


def _operand(node: OpNode) -> dict:
    """The constant operand of a binary op, as ``k``."""
    return {"k": compact(node.const(1 - node.data), node.shape)}


def _batchnorm_params(node: OpNode) -> dict:
    """gamma, beta, mean, var laid along axis 1 (ONNX's channel axis)."""
    lay = (1, -1) + (1,) * (len(node.shape) - 2)
    return {k: node.const(i).reshape(lay) for k, i in (("gamma", 1), ("beta", 2), ("mean", 3), ("var", 4))}


def _clip_limits(node: OpNode) -> dict:
    """Clip's low / high: inputs 1 and 2 (opset >= 11) or the min / max
    attributes (older opsets); absent ones are left out."""
    out = {}
    for key, idx, attr in (("low", 1, "min"), ("high", 2, "max")):
        if node.has_input(idx):
            out[key] = node.const(idx).reshape(-1)[:1]
        elif (v := node.attr(attr, None)) is not None:
            out[key] = np.array([float(v)])
    return out


@semantics("Identity")
def _identity(node, p):
    return None


@semantics("Mul", read=_operand, any_operand=True)
def _mul(node, p):
    return Scale(p["k"], node.label)


@semantics("Add", read=_operand, any_operand=True)
def _add(node, p):
    return Offset(p["k"], node.label)


@semantics("Sub", read=_operand, any_operand=True)
def _sub(node, p):
    return Offset(-p["k"], node.label) if node.data == 0 else Reflect(p["k"], node.label)


@semantics("Div", read=_operand, any_operand=True)
def _div(node, p):
    if node.data != 0:
        raise NotMonotone(f"{node.label}: Div with the data as divisor is not monotone across 0")
    if np.any(p["k"] == 0):
        raise NotMonotone(f"{node.label}: division by zero")
    return Divide(p["k"], node.label)


@semantics("BatchNormalization", read=_batchnorm_params)
def _batchnorm(node, p):
    eps = node.float32_attr("epsilon", 1e-5)
    if node.attr("training_mode", 0):
        raise NotMonotone(f"{node.label}: training-mode BatchNormalization")
    if np.any(p["var"] + eps <= 0):
        raise NotMonotone(f"{node.label}: variance + epsilon is not positive")
    return BatchNorm(p["gamma"], p["beta"], p["mean"], p["var"], eps, node.label)


@semantics("Relu")
def _relu(node, p):
    return Relu(node.label)


@semantics("Clip", read=_clip_limits)
def _clip(node, p):
    low, high = (float(p[k][0]) if k in p else None for k in ("low", "high"))
    return Clip(low, high, node.label)


@semantics("LeakyRelu")
def _leaky_relu(node, p):
    alpha = node.float32_attr("alpha", 0.01)
    if alpha < 0:
        raise NotMonotone(f"{node.label}: LeakyRelu with alpha={alpha:g} < 0 is not monotone (it falls below 0 and rises above)")
    return LeakyRelu(alpha, node.label)


@semantics("HardSigmoid")
def _hard_sigmoid(node, p):
    return HardSigmoid(node.float32_attr("alpha", 0.2), node.float32_attr("beta", 0.5), node.label)


@semantics("Sigmoid")
def _sigmoid(node, p):
    return Sigmoid(node.label)


@semantics("Tanh")
def _tanh(node, p):
    return Tanh(node.label)
