"""Per layer, how its requantizer is built: every exact implementation is
derived, costed, and the cheapest kept.

A layer with thresholds (an MVAU or VVAU with an embedded activation, a
standalone Thresholding) computes a proven step function of an integer.
Each entry of :data:`IMPLEMENTATIONS` derives one exact way to build it
from the layer's thresholds, or says why there is none:

* ``thresholds`` - compare with the thresholds (the unit the cost model
  picks: linear, binary search or hard-wired);
* ``integer`` - one multiply, add and shift per channel
  (:mod:`sira.requant`), when the steps have that form.

Cheapest means the smallest share of the part (:func:`sira.cost.part_fraction`:
each resource weighed by how much of it the device has), as for the
threshold unit's own form. Under the default policy ``auto`` only the
implementations that take no more of any resource (LUT, DSP, BRAM_18K,
URAM) than FINN's build of the same layer compete, so moving a model from
FINN to sira never grows a resource: an integer requantizer that saves
block RAMs by spending DSPs FINN does not use is not taken. ``cheapest``
drops that limit and takes the smallest share outright. A choice is
forced for the whole model (``impl``, the command line's ``--impl``) or
per layer (the layer's ``impl``, set by a folding file's ``"impl"`` key),
the layer's own winning; forcing a form a layer does not have is an error
naming it.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import numpy as np

from . import cost as C
from . import hw
from .devices import Part, get_part
from .errors import SiraError
from .layer_costs import layer_cost
from .requant import find_integer_requant

Derive = Callable[[hw.HWLayer], "tuple[Optional[hw.HWLayer], str]"]
#: implementation name -> (layer -> (the layer built that way or None, why not))
IMPLEMENTATIONS: dict[str, Derive] = {}


def implementation(name: str):
    """Register a way to build a layer's thresholds: a function returning the
    layer built that way (exactly equal to it), or None and the reason."""

    def register(fn: Derive) -> Derive:
        IMPLEMENTATIONS[name] = fn
        return fn

    return register


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One exact implementation of a layer: its cost and share of the part,
    or why the layer has none of this form (``cost`` None)."""

    impl: str
    cost: Optional[C.Cost]
    share: float
    why_not: str = ""


@dataclasses.dataclass(frozen=True)
class Choice:
    """What a layer's requantizer became, the candidates and why."""

    layer: str
    chosen: str
    candidates: tuple[Candidate, ...]
    reason: str

    def to_json(self) -> dict:
        cands = {}
        for c in self.candidates:
            if c.cost is None:
                cands[c.impl] = {"available": False, "why_not": c.why_not}
            else:
                cands[c.impl] = {"available": True, **{k: (v if isinstance(v, int) else str(v)) for k, v in c.cost.finn_dict().items()},
                                 "part_share": round(c.share, 9)}  # fmt: skip
        return {"chosen": self.chosen, "reason": self.reason, "candidates": cands}


def _input_range(layer: hw.HWLayer) -> Optional[tuple[int, int]]:
    """The integer range the thresholds compare, or None for a float input."""
    if isinstance(layer, hw.Thresholding):
        return (layer.in_type.min, layer.in_type.max) if layer.in_type.is_integer else None
    if getattr(layer, "acc_range", None) is None or not layer.in_type.is_integer:
        return None
    return tuple(layer.acc_range)


def has_choice(layer: hw.HWLayer) -> bool:
    """Whether ``layer`` has thresholds on an integer input to implement."""
    t = getattr(layer, "thresholds", None)
    return t is not None and t.shape[1] > 0 and _input_range(layer) is not None


@implementation("thresholds")
def _as_thresholds(layer):
    return dataclasses.replace(layer, requant=None), ""


@implementation("integer")
def _as_integer(layer):
    if layer.requant is not None:
        return layer, ""
    lo, hi = _input_range(layer)
    req = find_integer_requant(np.asarray(layer.thresholds), lo, hi)
    if req is None:
        return None, "its steps are not evenly spaced enough for clip((x*m + b) >> s) at any shift up to 40 (e.g. a sigmoid or tanh)"
    return dataclasses.replace(layer, requant=req, impl="auto" if layer.impl == "thresholds" else layer.impl), ""


RESOURCES = ("lut", "dsp", "bram18", "uram")


def within(cost: C.Cost, limit: Optional[C.Cost]) -> bool:
    """Whether ``cost`` takes no more of any resource than ``limit`` (no
    limit, or a resource the limit cannot count, admits anything; a
    resource ``cost`` cannot count does not fit a counted limit)."""
    if limit is None:
        return True
    for key in RESOURCES:
        used, cap = getattr(cost, key), getattr(limit, key)
        if isinstance(cap, int) and (not isinstance(used, int) or used > cap):
            return False
    return True


def _pick(cands: list[Candidate], policy: str, limit: Optional[C.Cost]) -> tuple[Candidate, str]:
    """The candidate a policy takes, and the clause saying why."""
    available = [c for c in cands if c.cost is not None]
    if policy == "auto" and limit is not None:
        fitting = [c for c in available if within(c.cost, limit)]
        if fitting:
            return min(fitting, key=lambda c: c.share), "the smallest share of those using no more of any resource than FINN's layer"
        return min(available, key=lambda c: c.share), "none uses no more of every resource than FINN's layer; the smallest share"
    return min(available, key=lambda c: c.share), "the smallest share"


def choose(layer: hw.HWLayer, part: Part, mode: str, impl: str = "auto",
           limit: Optional[C.Cost] = None) -> tuple[hw.HWLayer, Choice]:
    """``layer`` built the way ``impl`` (or the layer's own ``impl``) asks,
    or by the policy it names under ``mode`` on ``part``: ``limit`` is the
    cost of FINN's build of the layer, which ``auto`` does not exceed in any
    resource where it can."""
    wanted = layer.impl if layer.impl != "auto" else impl
    if wanted not in hw.IMPLS:
        raise SiraError(f"unknown implementation '{wanted}'; use one of {', '.join(hw.IMPLS)}")
    cands, built = [], {}
    for name, derive in IMPLEMENTATIONS.items():
        variant, why_not = derive(layer)
        if variant is None:
            cands.append(Candidate(name, None, float("inf"), why_not))
            continue
        cost = layer_cost(variant, part, mode)
        built[name] = variant
        cands.append(Candidate(name, cost, C.part_fraction(cost, part)))
    if wanted not in hw.IMPL_POLICIES:
        if wanted not in built:
            why = next(c.why_not for c in cands if c.impl == wanted)
            raise SiraError(f"layer '{layer.name}' ({layer.kind}): impl '{wanted}' is impossible: {why}; "
                            "use impl 'auto' or 'thresholds' for this layer")
        source = "the layer's impl" if layer.impl != "auto" else "--impl"
        chosen, reason = wanted, f"forced by {source}"
    else:
        best, why = _pick(cands, wanted, limit)
        chosen = best.impl
        others = [c for c in cands if c.impl != chosen]
        reason = "; ".join(
            f"{c.impl}: {c.why_not}" if c.cost is None
            else f"{chosen} takes {best.share:.3g} of {part.name} vs {c.share:.3g} for {c.impl}"
            + ("" if within(c.cost, limit) or wanted != "auto" else " (which uses more of a resource than FINN's layer)")
            for c in others
        )
        reason = f"{why}: {reason}" if reason else "the only implementation"
    return built[chosen], Choice(layer.name, chosen, tuple(cands), reason)


def choose_implementations(layers: Sequence[hw.HWLayer], part=None, mode: str = "refined", impl: str = "auto",
                           limits: Optional[dict] = None) -> tuple[list[hw.HWLayer], dict[str, Choice]]:
    """Every layer with thresholds on an integer input built the exact way
    ``impl``'s policy picks (or as forced); other layers unchanged.
    ``limits`` maps a layer name to the cost of FINN's build of it (what
    ``auto`` does not exceed). Returns the layers and, per layer name, the
    :class:`Choice`."""
    if impl not in hw.IMPLS:
        raise SiraError(f"unknown implementation '{impl}'; use one of {', '.join(hw.IMPLS)}")
    C.check_mode(mode)
    p = part if isinstance(part, Part) else get_part(part)
    out, choices = [], {}
    for layer in layers:
        if has_choice(layer):
            layer, choices[layer.name] = choose(layer, p, mode, impl, (limits or {}).get(layer.name))
        elif getattr(layer, "impl", "auto") == "integer":
            raise SiraError(f"layer '{layer.name}' ({layer.kind}): impl 'integer' needs thresholds on an integer input; it has none")
        out.append(layer)
    return out, choices


__all__ = ["IMPLEMENTATIONS", "implementation", "Candidate", "Choice", "RESOURCES", "within", "has_choice", "choose",
           "choose_implementations"]
