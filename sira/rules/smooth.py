"""Smooth activations: Sigmoid, Tanh, Erf, Exp, Softplus, Elu, Selu, Celu,
HardSwish, Log, Sqrt.

Each is continuous and monotone between a few known critical points, so its
range over an interval is spanned by the values at the end points and at
the critical points inside. Those values come from float64 library
functions within a few ulps of the exact function and are rounded outward,
so the bounds hold for the mathematical semantics of the op. The integer
form does not survive a nonlinear map: outputs are real ranges, and reset
points for the scale/bias provenance.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np

from ..errors import RuleError
from ..range import ScaledIntRange
from ..semantics import LIBM_ULPS, Sigmoid, Tanh, libm_value_bounds
from .registry import EXACT, RuleContext, rule
from .elementwise import float_attr

_INF = np.inf

#: the float64 evaluations below are within a few ulps of the exact
#: function (see sira.semantics.LIBM_ULPS)
_ULPS = LIBM_ULPS


def _eval_bounds(f, lo, hi, critical: Sequence[float] = (), codomain=(-_INF, _INF), ulps=_ULPS):
    """Sound bounds of f over [lo, hi] for f continuous and monotone between
    consecutive ``critical`` points: the extremes are among f(lo), f(hi) and
    f(c) for critical c inside, each bounded by :func:`libm_value_bounds`;
    the result is clipped to the codomain, where f provably lies."""
    points = [lo, hi] + [np.where((lo < c) & (c < hi), c, lo) for c in critical]
    los, his = zip(*(libm_value_bounds(f, p, ulps) for p in points))
    return np.clip(functools.reduce(np.minimum, los), *codomain), np.clip(functools.reduce(np.maximum, his), *codomain)


def _smooth(ctx: RuleContext, f, critical: Sequence[float] = (), **kw):
    """Real bounds of a smooth activation; the integer form does not survive
    a nonlinear map. Loose only if an interior extremum is off the grid."""
    x = ctx.inp(0)
    lo, hi = _eval_bounds(f, x.lo, x.hi, critical, **kw)
    return [ScaledIntRange.derived(x.shape, lo, hi, (x,), exact=x.exact and not x.misses_any(critical))]


_erf_obj = np.frompyfunc(math.erf, 1, 1)


def _erf(x):
    return np.asarray(_erf_obj(x), dtype=np.float64)


@rule("Sigmoid", exactness=EXACT)
def sigmoid_rule(ctx: RuleContext):
    """y = 1/(1 + exp(-x)). Monotone: exact up to a few ulps of outward
    rounding, within [0, 1]."""
    return _smooth(ctx, Sigmoid.floats, codomain=Sigmoid.codomain)


@rule("Tanh", exactness=EXACT)
def tanh_rule(ctx: RuleContext):
    """y = tanh(x). Monotone: exact up to outward rounding, within [-1, 1]."""
    return _smooth(ctx, Tanh.floats, codomain=Tanh.codomain)


@rule("Erf", exactness=EXACT)
def erf_rule(ctx: RuleContext):
    """y = erf(x). Monotone: exact up to outward rounding, within [-1, 1]."""
    return _smooth(ctx, _erf, codomain=(-1.0, 1.0))


@rule("Exp", exactness=EXACT)
def exp_rule(ctx: RuleContext):
    """y = exp(x). Monotone: exact up to outward rounding, within [0, inf]."""
    return _smooth(ctx, np.exp, codomain=(0.0, _INF))


@rule("Softplus", exactness=EXACT)
def softplus_rule(ctx: RuleContext):
    """y = log(1 + exp(x)). Monotone: exact up to outward rounding."""
    return _smooth(ctx, lambda v: np.logaddexp(0.0, v), codomain=(0.0, _INF))


@rule("Elu", exactness=EXACT)
def elu_rule(ctx: RuleContext):
    """y = x (x > 0), alpha*(exp(x) - 1) (x <= 0). Monotone on each side of
    0 (for any alpha): exact up to outward rounding."""
    alpha = float_attr(ctx, "alpha", 1.0)
    return _smooth(ctx, lambda v: np.where(v > 0, v, alpha * np.expm1(v)), critical=(0.0,) if alpha < 0 else ())


@rule("Selu", exactness=EXACT)
def selu_rule(ctx: RuleContext):
    """y = gamma*x (x > 0), gamma*alpha*(exp(x) - 1) (x <= 0). Monotone on
    each side of 0: exact up to outward rounding."""
    alpha = float_attr(ctx, "alpha", 1.67326319217681884765625)
    gamma = float_attr(ctx, "gamma", 1.05070102214813232421875)
    monotone = gamma * alpha >= 0
    return _smooth(ctx, lambda v: np.where(v > 0, gamma * v, gamma * (alpha * np.expm1(v))), critical=() if monotone else (0.0,))


@rule("Celu", exactness=EXACT)
def celu_rule(ctx: RuleContext):
    """y = max(0, x) + min(0, alpha*(exp(x/alpha) - 1)), increasing for any
    alpha != 0: exact up to outward rounding (widened with |x/alpha|, the
    condition of exp at a rounded argument)."""
    alpha = float_attr(ctx, "alpha", 1.0)
    if alpha == 0:
        raise RuleError("alpha must be non-zero (the op divides by it)")
    return _smooth(
        ctx,
        lambda v: np.where(v > 0, v, alpha * np.expm1(v / alpha)),
        ulps=lambda v: _ULPS + np.where(np.isfinite(v), np.abs(v / alpha), 0.0),
    )


def _hard_swish(x):
    return np.where(x >= 3.0, x, np.where(x <= -3.0, 0.0, x * (x + 3.0) / 6.0))


@rule("HardSwish", exactness=EXACT)
def hard_swish_rule(ctx: RuleContext):
    """y = x * max(0, min(1, x/6 + 1/2)). Not monotone: decreasing on
    [-3, -1.5], increasing elsewhere (0 below -3), so the minimum over a
    range containing -1.5 is f(-1.5) = -0.375. Exact up to outward rounding."""
    return _smooth(ctx, _hard_swish, critical=(-1.5,))


def _domain_restricted(ctx: RuleContext, f, name: str, codomain) -> list:
    """A monotone function defined for x >= 0 (Log, Sqrt).

    A proven (finite) input range that reaches below 0 means the model
    computes NaN for some of its inputs: an error naming the node, since no
    range downstream would mean anything. An unknown lower bound (-inf, from
    an op without a rule) proves nothing: the bounds cover the inputs inside
    the domain, with a note, and are marked sound. An element whose whole
    range lies below 0 has no value in the domain: unbounded."""
    x = ctx.inp(0)
    if np.any(np.isfinite(x.lo) & (x.lo < 0)):
        raise RuleError(f"the input range reaches below 0 (min {np.min(x.lo[np.isfinite(x.lo)]):g}), where {name} is NaN; "
                        "fix the model (e.g. a Relu or an offset before it) or constrain its inputs")  # fmt: skip
    below = x.lo < 0
    lo, hi = _eval_bounds(f, np.maximum(x.lo, 0.0), np.maximum(x.hi, 0.0), codomain=codomain)
    none = x.hi < 0
    lo, hi = np.where(none, -_INF, lo), np.where(none, _INF, hi)
    notes = ()
    if np.any(below):
        notes = (f"{name}: the input range is unbounded below, and {name} is NaN below 0; the range covers only the "
                 "inputs inside the domain",)  # fmt: skip
    return [ScaledIntRange.derived(x.shape, lo, hi, (x,), exact=x.exact and not np.any(below), notes=notes)]


@rule("Log", exactness=EXACT)
def log_rule(ctx: RuleContext):
    """y = log(x). Increasing on [0, inf) (log 0 = -inf): exact up to
    outward rounding inside the domain; see ``_domain_restricted``."""
    return _domain_restricted(ctx, np.log, "Log", (-_INF, _INF))


@rule("Sqrt", exactness=EXACT)
def sqrt_rule(ctx: RuleContext):
    """y = sqrt(x). Increasing on [0, inf): exact up to outward rounding
    inside the domain; see ``_domain_restricted``."""
    return _domain_restricted(ctx, np.sqrt, "Sqrt", (0.0, _INF))
