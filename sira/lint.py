"""Hardware lint: check a folded design against the part and the HLS tools
before anything is generated (docs/research/fpga_cost_and_hls.md §1, §2-3, §6).

:func:`lint` returns :class:`LintIssue` s (``error`` or ``warning``, the
layer, what is wrong, the fix); :func:`raise_on_errors` turns the errors into
one :class:`~sira.errors.SiraError`. Checks:

* **ap_int widths.** Every packed stream word (elements x PE or SIMD x
  bits), packed weight word (PE·SIMD·W), accumulator and threshold type is an
  ``ap_int``/``ap_uint``. Vitis HLS allows 1024 bits by default and up to
  :data:`AP_INT_MAX_W_LIMIT` = 4096 bits when ``AP_INT_MAX_W`` is defined
  before ``ap_int.h`` is included (FINN defines it per layer and asserts
  <= 8191; 4096 is the limit Vitis documents and the one we verified with
  g++, §4.1). Width > 1024 -> warning (the generated code defines
  AP_INT_MAX_W from its widest word by :func:`ap_int_max_w_of`, and wide words
  are slow to synthesize); width > ``ap_int_max_w`` (default 4096) -> error.
* **DSP operand widths.** A weight x input multiply wider than the part's DSP
  multiplier ports (DSP48E1 25x18, DSP48E2 27x18, DSP58 27x24; an unsigned
  operand needs one more port bit) -> warning: split over several DSPs, or
  LUTs.
* **URAM for constants.** An initialized memory (weights, thresholds, a
  constant operand) asked for ``ultra`` is built in block RAM, since a URAM
  has no initial contents -> warning.
* **Unroll factor.** PE·SIMD lanes above :data:`MAX_UNROLL` (4096) -> error
  (HLS unrolling and routing do not scale there).
* **Capacity of the part.** LUT, DSP, BRAM18 and URAM of each layer and of
  the whole design against the part. Uses the per-layer costs when given
  (``costs``: :class:`sira.cost.Cost` objects or FINN-style dicts, by layer
  name or in layer order); otherwise a lower bound estimated here - every
  memory of the layer as the generated code lays it out
  (:func:`sira.memory.layer_memories`) mapped with
  :func:`sira.memory.price`, multiplies bound with
  :func:`sira.multipliers.multiply` - so that a memory too large for the part is
  caught without the cost model. A single layer larger than the part ->
  error ("layer too large"); the design as a whole -> error; both with the
  fix (fewer PE/SIMD, another memory style, another part that fits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from . import memory as M
from .devices import PARTS, Part, get_part
from .errors import SiraError
from .hw import HWLayer, StreamType
from .multipliers import cheaper_multiply, multiply

#: Vitis HLS ap_int width without AP_INT_MAX_W.
AP_INT_DEFAULT_W = 1024
#: Largest ap_int width we allow with AP_INT_MAX_W defined.
AP_INT_MAX_W_LIMIT = 4096
#: Most PE·SIMD lanes we accept in one layer.
MAX_UNROLL = 4096

#: resource key -> (Part attribute, label)
_RESOURCES = {"LUT": ("lut", "LUT"), "DSP": ("dsp", "DSP"), "BRAM_18K": ("bram18", "BRAM18"), "URAM": ("uram", "URAM")}


@dataclass(frozen=True)
class LintIssue:
    """One finding: ``severity`` is ``"error"`` or ``"warning"``; ``layer``
    the layer name (``"<design>"`` for whole-design findings)."""

    severity: str
    layer: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.severity}: layer '{self.layer}': {self.message} (fix: {self.fix})"

    def to_json(self) -> dict:
        return {"severity": self.severity, "layer": self.layer, "message": self.message, "fix": self.fix}


# --------------------------------------------------------------------------
# widths
# --------------------------------------------------------------------------


def packed_widths(layer: HWLayer) -> list[tuple[str, int, str]]:
    """``(what, bits, fix)`` for every ap_int word ``layer`` uses."""
    if layer.kind == "Reshape":
        return []
    lin, lout = layer.in_lanes, layer.out_lanes
    par_in, par_out = layer.in_factors[0].upper(), layer.out_factors[0].upper()
    out: list[tuple[str, int, str]] = []
    for i, t in enumerate(layer.input_types):
        out.append((f"input stream {i} ({lin} x {t.name})", lin * t.bits, f"fewer {par_in}"))
    out.append((f"output stream ({lout} x {layer.out_type.name})", lout * layer.out_type.bits, f"fewer {par_out}"))
    w = getattr(layer, "weight_type", None)
    if w is not None:
        out.append((f"weight word (PE*SIMD = {layer.pe * layer.simd} x {w.name})", layer.pe * layer.simd * w.bits, "fewer PE or SIMD"))
    acc = getattr(layer, "acc_type", None)
    if acc is not None:
        out.append((f"accumulator ({acc.name})", acc.bits, "narrower weights/inputs, or an RTL kernel"))
    thr = getattr(layer, "threshold_type", None)
    if thr is not None and getattr(layer, "thresholds", None) is not None:
        out.append((f"threshold ({thr.name})", thr.bits, "narrower accumulator/input, or an RTL thresholding kernel"))
    req = getattr(layer, "requant", None)
    if req is not None:
        prod = StreamType.for_range(*req.product_range())
        out.append((f"integer requantizer product ({prod.name})", prod.bits, "impl thresholds for this layer"))
    return out


def ap_int_max_w_of(bits: int) -> int:
    """The ``AP_INT_MAX_W`` a generated project defines when its widest
    ap_int is ``bits`` wide: rounded up to a multiple of ap_int's default
    1024, so that a small change of folding keeps the same value (and the
    same compiled headers) instead of tracking every bit."""
    return max(1, -(-bits // AP_INT_DEFAULT_W)) * AP_INT_DEFAULT_W


def width_error(layer: str, what: str, bits: int, fix: str, limit: int = AP_INT_MAX_W_LIMIT) -> LintIssue:
    """The error of an ap_int wider than ``limit``, shared by the layer
    lint and the dataflow's own words (width converters)."""
    return LintIssue("error", layer, f"{what} is {bits} bits, above the ap_int limit of {limit} bits (the most AP_INT_MAX_W "
                     "Vitis HLS supports)", f"{fix} so that it is at most {limit} bits, or a lower target fps")


def _check_widths(layer: HWLayer, limit: int) -> list[LintIssue]:
    issues = []
    for what, bits, fix in packed_widths(layer):
        if bits > limit:
            issues.append(width_error(layer.name, what, bits, fix, limit))
        elif bits > AP_INT_DEFAULT_W:
            issues.append(LintIssue("warning", layer.name, f"{what} is {bits} bits, above ap_int's default {AP_INT_DEFAULT_W} bits: "
                                    f"the project defines AP_INT_MAX_W = {ap_int_max_w_of(bits)}, and words this wide synthesize slowly",
                                    f"nothing needed, or {fix} for a narrower word"))
    return issues


# --------------------------------------------------------------------------
# multiplies and unrolling
# --------------------------------------------------------------------------


def _param_type(layer: HWLayer) -> Optional[StreamType]:
    p = getattr(layer, "param", None)
    if p is None or p.size == 0:
        return None
    if p.dtype == object or p.dtype.kind in "iub":
        vals = [int(v) for v in p.flat]
        return StreamType.for_range(min(vals), max(vals))
    return None  # float constants: not an integer multiply


MultipliesFn = Callable[[Any], list[tuple]]
MULTIPLIES: dict[str, MultipliesFn] = {}


def multiplies(*kinds: str):
    """Register the integer multiplies of the hardware layer ``kinds``: a
    function of the layer giving (operand a type, operand b type, instances)
    per multiply, with a fourth entry ``"cheaper"`` for one the cost model
    binds by :func:`sira.multipliers.cheaper_multiply`."""

    def register(fn: MultipliesFn) -> MultipliesFn:
        for kind in kinds:
            MULTIPLIES[kind] = fn
        return fn

    return register


def _multiplies(layer: HWLayer) -> list[tuple[StreamType, StreamType, int, str]]:
    """(operand a type, operand b type, instances, binding) of the integer
    multiplies (none for a kind that registered none); the binding is
    ``auto`` (§1.7's rule) unless the registered entry names ``cheaper``."""
    fn = MULTIPLIES.get(layer.kind)
    return [(e[0], e[1], e[2], e[3] if len(e) > 3 else "auto") for e in (fn(layer) if fn else [])]


def _bound(a: StreamType, b: StreamType, count: int, binding: str, part: Part):
    """A registered multiply, bound as the cost model binds it."""
    if binding == "cheaper":
        return cheaper_multiply(a.bits, b.bits, part, count=count, w_signed=a.signed, a_signed=b.signed)
    return multiply(a.bits, b.bits, part, count=count, w_signed=a.signed, a_signed=b.signed)


def _requant_multiplies(layer) -> list[tuple]:
    """The integer requantizer's multiply per PE: m (unsigned) x the input
    clamped to its active range, bound as the cost model binds it
    (:func:`sira.multipliers.cheaper_multiply`)."""
    req = getattr(layer, "requant", None)
    if req is None:
        return []
    m_type, _ = M.requant_params(req)
    return [(m_type, StreamType.for_range(req.lo, req.hi), layer.pe, "cheaper")]


@multiplies("MVAU", "VVAU")
def _mac_multiplies(layer) -> list[tuple]:
    return [(layer.weight_type, layer.in_type, layer.pe * layer.simd)] + _requant_multiplies(layer)


@multiplies("Thresholding")
def _thresholding_multiplies(layer) -> list[tuple]:
    return _requant_multiplies(layer)


@multiplies("GateMul")
def _gate_mul_multiplies(layer) -> list[tuple[StreamType, StreamType, int]]:
    return [(layer.in_type, layer.gate_type, layer.pe)]


@multiplies("Elementwise")
def _elementwise_multiplies(layer) -> list[tuple[StreamType, StreamType, int]]:
    if layer.op != "Mul":
        return []
    rhs = layer.rhs_type if len(layer.inputs) > 1 else _param_type(layer)
    return [] if rhs is None else [(layer.in_type, rhs, layer.pe)]


def _check_dsp(layer: HWLayer, part: Part) -> list[LintIssue]:
    issues = []
    dsp = part.dsp_primitive
    for a, b, count, binding in _multiplies(layer):
        if not (a.is_integer and b.is_integer) or a.kind == "bipolar" or b.kind == "bipolar":
            continue
        if binding == "cheaper" and _bound(a, b, count, binding, part).impl != "dsp":
            continue  # bound to fabric: no DSP to split
        m = multiply(a.bits, b.bits, part, count=count, binding="dsp", w_signed=a.signed, a_signed=b.signed)
        if m.dsp > 1:
            issues.append(LintIssue(
                "warning", layer.name,
                f"{a.name} x {b.name} multiply is wider than the {dsp.name} ports ({dsp.mult_a_bits}x{dsp.mult_b_bits} signed): "
                f"each of the {count} multiplies is split over {m.dsp} DSPs or goes to LUTs",
                "narrower weights/inputs, accept LUT multipliers, or a part with wider DSPs"))
    return issues


def _check_rom_styles(layer: HWLayer) -> list[LintIssue]:
    """A warning per initialized memory asked for URAM: it is built in
    block RAM (:func:`sira.memory.built_style`), and the estimate prices that."""
    asked = [m for m in M.layer_memories(layer) if m.style == "ultra" and M.built_style(m) != "ultra"]
    kinds = sorted({"thresholds" if m.name.startswith("thresholds") else m.name for m in asked})
    return [LintIssue("warning", layer.name, f"{kind} ask for ram_style ultra, but a URAM cannot hold initialized constants "
                      "(Vitis HLS has no initial contents for it): they are built, and estimated, in block RAM",
                      f"ram_style{'_thresholds' if kind == 'thresholds' and layer.kind in ('MVAU', 'VVAU') else ''} block "
                      "to ask for what is built") for kind in kinds]


def _check_unroll(layer: HWLayer, max_unroll: int) -> list[LintIssue]:
    lanes = layer.pe * layer.simd
    if lanes > max_unroll:
        return [LintIssue("error", layer.name, f"PE*SIMD = {layer.pe}*{layer.simd} = {lanes} parallel lanes, above the unroll limit of {max_unroll}",
                          f"fewer PE/SIMD (at most {max_unroll} lanes per layer)")]
    return []


# --------------------------------------------------------------------------
# resources
# --------------------------------------------------------------------------


def estimate_resources(layer: HWLayer, part: Part) -> tuple[dict[str, int], list[LintIssue]]:
    """A lower bound of ``layer``'s LUT/DSP/BRAM_18K/URAM (memories and DSP
    multiplies only), and the issues found while mapping (e.g. URAM asked
    for on a part without URAM)."""
    res = {"LUT": 0, "DSP": 0, "BRAM_18K": 0, "URAM": 0}
    issues: list[LintIssue] = []
    for layout in M.layer_memories(layer):
        try:
            mem = M.price(layout, part)
        except SiraError:
            what = layout.name.replace("_", " ")
            issues.append(LintIssue("error", layer.name, f"{what} use mem_style 'ultra' but part {part.name} ({part.family.name}) has no URAM",
                                    "mem_style block or lut, or a part with URAM"))
            mem = M.price(layout, part, "block")
        res["LUT"] += mem.lut
        res["BRAM_18K"] += mem.bram18
        res["URAM"] += mem.uram
    for a, b, count, binding in _multiplies(layer):
        if not (a.is_integer and b.is_integer):
            continue
        m = _bound(a, b, count, binding, part)
        res["DSP"] += m.dsp * m.count
        res["LUT"] += m.lut * m.count
    return res, issues


def _amounts(c: Any) -> dict[str, Optional[int]]:
    """FINN-keyed amounts of a cost (a :class:`sira.cost.Cost` or a dict);
    None where unknown."""
    if isinstance(c, Mapping):
        raw = {k: c.get(k, c.get(attr)) for k, (attr, _) in _RESOURCES.items()}
    else:
        raw = {k: getattr(c, attr, None) for k, (attr, _) in _RESOURCES.items()}
    return {k: (int(v) if isinstance(v, (int, np.integer, float)) and not isinstance(v, bool) else None) for k, v in raw.items()}


def _parts_that_fit(need: Mapping[str, int]) -> list[str]:
    return [p.name for p in PARTS.values()
            if all(need.get(k, 0) <= getattr(p, attr) for k, (attr, _) in _RESOURCES.items())]


def _capacity_fix(part: Part, resource: str, need: Mapping[str, int], per_layer: bool) -> str:
    fixes = []
    if resource in ("LUT", "DSP"):
        fixes.append("fewer PE/SIMD")
    if resource == "BRAM_18K":
        if part.family.has_uram:
            fixes.append("mem_style ultra (URAM) for the large memories")
        fixes.append("fewer PE/SIMD (less BRAM width padding)")
    if resource == "URAM":
        fixes.append("mem_style block for some memories")
    if resource == "DSP":
        fixes.append("LUT multipliers")
    fits = [n for n in _parts_that_fit(need) if n != part.name]
    fixes.append(f"another part ({', '.join(fits)})" if fits else "another part (larger than any known part: none of them fits)")
    return "; ".join(fixes)


def _check_capacity(layers: Sequence[HWLayer], part: Part, costs: Any) -> list[LintIssue]:
    issues: list[LintIssue] = []
    per_layer: list[tuple[str, dict[str, Optional[int]]]] = []
    if costs is None:
        for layer in layers:
            res, found = estimate_resources(layer, part)
            issues += found
            per_layer.append((layer.name, dict(res)))
        basis = "lower-bound estimate (memories and DSP multiplies)"
    else:
        if isinstance(costs, Mapping):
            missing = [l.name for l in layers if l.name not in costs]
            if missing:
                raise SiraError(f"lint: no cost given for layer(s) {', '.join(missing)}")
            per_layer = [(l.name, _amounts(costs[l.name])) for l in layers]
        else:
            costs = list(costs)
            if len(costs) != len(layers):
                raise SiraError(f"lint: {len(costs)} costs for {len(layers)} layers")
            per_layer = [(l.name, _amounts(c)) for l, c in zip(layers, costs)]
        basis = "cost model"
    total = {k: 0 for k in _RESOURCES}
    for name, res in per_layer:
        for key, (attr, label) in _RESOURCES.items():
            amount = res.get(key)
            if amount is None:
                continue
            total[key] += amount
            capacity = getattr(part, attr)
            if amount > capacity:
                issues.append(LintIssue("error", name,
                                        f"layer too large for the part: needs {amount} {label} ({basis}), "
                                        f"part {part.name} has {capacity}",
                                        _capacity_fix(part, key, {key: amount}, True)))
    for key, (attr, label) in _RESOURCES.items():
        capacity = getattr(part, attr)
        if total[key] > capacity:
            issues.append(LintIssue("error", "<design>",
                                    f"design needs {total[key]} {label} ({basis}), part {part.name} has {capacity}",
                                    _capacity_fix(part, key, total, False)))
    return issues


# --------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------


def lint(layers: Sequence[HWLayer], part: Union[Part, str, None] = None, *,
         costs: Union[Mapping[str, Any], Sequence[Any], None] = None,
         ap_int_max_w: int = AP_INT_MAX_W_LIMIT, max_unroll: int = MAX_UNROLL) -> list[LintIssue]:
    """Every violation of ``layers`` (folded) against ``part`` (a
    :class:`~sira.devices.Part` or a part name; unknown names raise) and the
    HLS limits; errors first, then warnings, each in layer order."""
    part = part if isinstance(part, Part) else get_part(part)
    issues: list[LintIssue] = []
    for layer in layers:
        issues += _check_widths(layer, ap_int_max_w)
        issues += _check_unroll(layer, max_unroll)
        issues += _check_dsp(layer, part)
        issues += _check_rom_styles(layer)
    issues += _check_capacity(layers, part, costs)
    order = {l.name: i for i, l in enumerate(layers)}
    return sorted(issues, key=lambda i: (i.severity != "error", order.get(i.layer, len(order))))


def raise_on_errors(issues: Sequence[LintIssue]) -> None:
    """Raise one :class:`~sira.errors.SiraError` listing every error of
    ``issues`` (warnings are not errors); return quietly when there is none."""
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        lines = "; ".join(f"layer '{i.layer}': {i.message} (fix: {i.fix})" for i in errors)
        raise SiraError(f"hardware lint found {len(errors)} error(s): {lines}")


__all__ = ["LintIssue", "lint", "raise_on_errors", "estimate_resources", "packed_widths", "ap_int_max_w_of", "width_error",
           "AP_INT_DEFAULT_W", "AP_INT_MAX_W_LIMIT", "MAX_UNROLL"]
