"""The result of a cost-model function: a :class:`Cost` per layer, in FINN's
resource vocabulary, and the helpers every cost function shares (mode check,
the refined-mode "never all zero" rule, FINN's zero for layers it has no
estimate for, the storage map the HLS backend binds memories by)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Union

from .devices import Part, get_part
from .errors import SiraError
from .memory import Memory
from .multipliers import Multiply

MODES = ("finn", "refined")


class _Unknown:
    """Marker for a cost the model has no formula for (never read as 0)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "unknown"


UNKNOWN = _Unknown()
Amount = Union[int, _Unknown]


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    """Resources of one layer. ``breakdown`` splits the LUT count by term."""

    kind: str
    mode: str
    lut: Amount
    dsp: Amount
    bram18: Amount
    uram: Amount
    breakdown: Mapping[str, Amount] = field(default_factory=dict)
    multiplies: tuple[Multiply, ...] = ()
    note: str = ""
    free: bool = False
    #: where each memory of the layer was mapped (``"weights"``,
    #: ``"thresholds"``, ``"line_buffer"``, ... -> ``"distributed"``,
    #: ``"block"`` or ``"ultra"``): the HLS backend binds each the same way
    storage: Mapping[str, str] = field(default_factory=dict)
    #: how a threshold unit is built: ``"linear"`` (every comparator at
    #: once), ``"binary"`` (binary search, one memory per stage) or
    #: ``"constant"`` (hard-wired shared thresholds); "" without thresholds
    threshold_unit: str = ""

    def finn_dict(self) -> dict[str, Amount]:
        """The numbers under FINN's key names."""
        return {"BRAM_18K": self.bram18, "LUT": self.lut, "URAM": self.uram, "DSP": self.dsp}


def sum_amounts(values) -> Amount:
    values = list(values)
    if any(v is UNKNOWN for v in values):
        return UNKNOWN
    return sum(values)


def refined_cost(kind: str, breakdown: dict[str, Amount], dsp: Amount = 0, bram18: Amount = 0,
             uram: Amount = 0, multiplies: tuple[Multiply, ...] = (), note: str = "") -> Cost:
    """A refined-mode result; a non-free layer must not come out as all zeros."""
    cost = Cost(kind, "refined", sum_amounts(breakdown.values()), dsp, bram18, uram, breakdown, multiplies, note)
    if all(v == 0 for v in (cost.lut, cost.dsp, cost.bram18, cost.uram)):
        raise AssertionError(f"refined cost of {kind} came out as 0; it must be modelled or unknown")
    return cost


def finn_zero(kind: str) -> Cost:
    """FINN has no estimate for ``kind``: its base class reports 0 (§1.0, §1.6)."""
    return Cost(kind, "finn", 0, 0, 0, 0, note=f"FINN has no resource estimate for {kind}; it reports 0")


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise SiraError(f"unknown cost mode '{mode}'; use one of {', '.join(MODES)}")


def resolve_part(part: Part | str | None) -> Part:
    return part if isinstance(part, Part) else get_part(part)


def stored(**memories: Memory) -> dict[str, str]:
    """The storage map of a cost: memory name -> primitive style (memories
    that turned out empty are left out)."""
    return {name: m.style for name, m in memories.items() if m.style != "none"}


def part_fraction(cost: Cost, part: Part) -> float:
    """The share of ``part`` a cost takes, summed over its resource kinds
    (LUT/LUTs of the part + BRAM18/BRAM18s + ...): one number that weighs a
    block RAM against LUTs by how scarce each is on the chosen device."""
    share = 0.0
    for used, available in ((cost.lut, part.lut), (cost.dsp, part.dsp), (cost.bram18, part.bram18), (cost.uram, part.uram)):
        if used:
            share += float(used) / available if available else math.inf
    return share


__all__ = ["MODES", "UNKNOWN", "Amount", "Cost", "sum_amounts", "refined_cost", "finn_zero", "check_mode",
           "resolve_part", "stored", "part_fraction"]
