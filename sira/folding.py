"""Folding: PE/SIMD per hardware layer, cycles, bottleneck and throughput.

Every layer of :mod:`sira.hw` starts fully folded (``PE = SIMD = 1``). Three
ways to change that:

* :func:`apply_folding_file` applies a user's choice, given in FINN's
  folding-config JSON shape (``ApplyConfig``)::

      {"Defaults": {"ram_style": ["block", ["MVAU"]]},
       "MatMul_0": {"PE": 4, "SIMD": 8, "ram_style": "distributed"}}

  Per-layer keys: ``PE``, ``SIMD``, ``ram_style`` (``auto``/``block``/
  ``distributed``/``ultra``, or sira's ``lut``) and ``ram_style_thresholds``
  (MVAU/VVAU), and sira's ``impl`` (``auto``/``thresholds``/``integer``:
  how the layer's thresholds are built, see :mod:`sira.implementation`;
  layers with thresholds only). FINN keys sira does not model (``mem_mode``, ``resType``,
  FIFO depths, ``preferred_impl_style`` ...) are accepted and ignored (listed
  in the result's ``notes``). ``Defaults`` entries are FINN's
  ``[value, [op types]]`` (or ``[value, "all"]``), or a bare value meaning
  every layer that has the key; FINN op type names (``MVAU_hls``,
  ``MatrixVectorActivation``, ``Thresholding_Batch`` ...) are understood.
  Unknown layer names, unknown keys and invalid values (a PE that does not
  divide, a non-integer) raise :class:`~sira.errors.SiraError` naming the
  layer and the allowed values.
* :func:`fold_for_target_fps` picks the folding, FINN's ``SetFolding`` idea:
  per layer the smallest parallelism whose cycles fit the clock budget.
* :func:`folding_json` writes a folding back in FINN's format (round trip
  with :func:`apply_folding_file`).

Cycles are :attr:`sira.hw.HWLayer.cycles` (FINN's expected-cycles formulas,
docs/research/fpga_cost_and_hls.md §1); the throughput of a dataflow
pipeline is set by its slowest layer: ``fps = 1e9 / (clock_ns * max cycles)``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from .errors import SiraError
from .hw import IMPLS, HWLayer
from .memory import MEM_STYLE_OF_RAM_STYLE, RAM_STYLE_OF_MEM_STYLE

#: FINN ``ram_style`` value -> sira ``mem_style``.
RAM_STYLES = MEM_STYLE_OF_RAM_STYLE
#: sira ``mem_style`` -> FINN ``ram_style``.
FINN_RAM_STYLE = RAM_STYLE_OF_MEM_STYLE

#: keys of a FINN folding config that sira models
MODELLED_KEYS = ("PE", "SIMD", "ram_style", "ram_style_thresholds", "impl")
#: FINN keys that sira accepts but does not model (ignored, reported in notes)
IGNORED_KEYS = (
    "mem_mode", "resType", "runtime_writeable_weights", "inFIFODepths", "outFIFODepths",
    "preferred_impl_style", "parallel_window", "impl_style", "depth_trigger_uram",
    "depth_trigger_bram", "noActivation", "binaryXnorMode",
)

#: FINN op type names (without the _hls/_rtl suffix) -> sira kinds
FINN_OP_TYPES = {
    "MVAU": "MVAU", "MatrixVectorActivation": "MVAU", "StreamingFCLayer_Batch": "MVAU",
    "VVAU": "VVAU", "VectorVectorActivation": "VVAU", "Vector_Vector_Activate_Batch": "VVAU",
    "Thresholding": "Thresholding", "Thresholding_Batch": "Thresholding",
    "ConvolutionInputGenerator": "ConvolutionInputGenerator",
    "ConvolutionInputGenerator1D": "ConvolutionInputGenerator",
    "FMPadding": "FMPadding", "FMPadding_Batch": "FMPadding", "FMPadding_Pixel": "FMPadding",
    "StreamingMaxPool": "StreamingMaxPool", "StreamingMaxPool_Batch": "StreamingMaxPool",
    "Pool": "Pool", "Pool_Batch": "Pool",
    "AddStreams": "AddStreams", "AddStreams_Batch": "AddStreams",
    "StreamingConcat": "Concat", "Concat": "Concat",
    "StreamingSplit": "Split", "Split": "Split",
    "ElementwiseBinaryOperation": "Elementwise", "Elementwise": "Elementwise",
    "ElementwiseAdd": "Elementwise", "ElementwiseSub": "Elementwise", "ElementwiseMul": "Elementwise",
    "ElementwiseDiv": "Elementwise", "ElementwiseMaximum": "Elementwise", "ElementwiseMinimum": "Elementwise",
    "Reshape": "Reshape",
}


class FoldedLayers(list):
    """A list of layers (dataflow order) plus ``notes``: what the folding step
    wants the user to know (ignored FINN keys, a target that was not
    reached). ``target_reached`` and ``achievable_fps`` are set by
    :func:`fold_for_target_fps`."""

    def __init__(self, layers: Iterable[HWLayer] = (), notes: Sequence[str] = (),
                 target_reached: Optional[bool] = None, achievable_fps: Optional[float] = None):
        super().__init__(layers)
        self.notes = list(notes)
        self.target_reached = target_reached
        self.achievable_fps = achievable_fps


# --------------------------------------------------------------------------
# cycles
# --------------------------------------------------------------------------


def layer_cycles(layer: HWLayer) -> int:
    """Clock cycles one input spends in ``layer`` (its initiation interval)."""
    return int(layer.cycles)


def bottleneck(layers: Sequence[HWLayer]) -> tuple[str, int]:
    """``(name, cycles)`` of the slowest layer (the first one on a tie)."""
    layers = list(layers)
    if not layers:
        raise SiraError("no hardware layers: nothing to fold or time")
    best = max(layers, key=layer_cycles)  # max keeps the first maximum
    return best.name, layer_cycles(best)


def _check_clock(clock_ns: Any) -> float:
    if isinstance(clock_ns, bool) or not isinstance(clock_ns, (int, float, np.integer, np.floating)) \
            or not math.isfinite(clock_ns) or clock_ns <= 0:
        raise SiraError(f"clock period must be a positive number of ns, got {clock_ns!r}")
    return float(clock_ns)


def throughput_fps(layers: Sequence[HWLayer], clock_ns: float) -> float:
    """Inputs per second of the pipeline: ``1e9 / (clock_ns * bottleneck
    cycles)``; ``inf`` when every layer is free wiring (0 cycles)."""
    clock_ns = _check_clock(clock_ns)
    _, cycles = bottleneck(layers)
    return math.inf if cycles == 0 else 1e9 / (clock_ns * cycles)


def cycle_budget(target_fps: float, clock_ns: float) -> int:
    """Largest per-layer cycle count meeting ``target_fps`` at ``clock_ns``:
    ``floor(1e9 / (clock_ns * target_fps))`` (0 when even one cycle is too
    slow: no layer doing work can meet the target)."""
    clock_ns = _check_clock(clock_ns)
    if isinstance(target_fps, bool) or not isinstance(target_fps, (int, float, np.integer, np.floating)) \
            or not math.isfinite(target_fps) or target_fps <= 0:
        raise SiraError(f"target fps must be a positive number, got {target_fps!r}")
    # a tiny tolerance so that e.g. 1e9/(10*1e5) = 1000 is not floored to 999
    return math.floor(1e9 / (clock_ns * float(target_fps)) * (1 + 1e-12))


# --------------------------------------------------------------------------
# applying a folding config
# --------------------------------------------------------------------------


def _kind_of(op_type: str) -> str:
    base = op_type
    for suffix in ("_hls", "_rtl"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return FINN_OP_TYPES.get(base, base)


def _has_key(layer: HWLayer, key: str) -> bool:
    if key == "PE":
        return "pe" in layer.fold_dims()
    if key == "SIMD":
        return "simd" in layer.fold_dims()
    if key == "ram_style_thresholds":
        return hasattr(layer, "threshold_mem_style")
    if key == "impl":
        return getattr(layer, "thresholds", None) is not None
    return True


def _int_value(layer: HWLayer, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        dims = layer.fold_dims()
        factor = key.lower()
        if factor in dims:
            dim, size = dims[factor]
            allowed = ", ".join(str(d) for d in range(1, size + 1) if size % d == 0)
            hint = f"choose {key} among {allowed} (divisors of {dim}={size})"
        else:
            hint = f"layer has no {key} folding; use 1"
        raise SiraError(f"layer '{layer.name}' ({layer.kind}): {key}={value!r} is not an integer; {hint}")
    return int(value)


def _ram_style(layer: HWLayer, key: str, value: Any) -> str:
    if not isinstance(value, str) or value not in RAM_STYLES:
        raise SiraError(f"layer '{layer.name}' ({layer.kind}): {key}={value!r} is not one of "
                        f"{', '.join(k for k in RAM_STYLES if k != 'lut')}")
    return RAM_STYLES[value]


def _apply(layer: HWLayer, settings: Mapping[str, Any], where: str, ignored: set) -> HWLayer:
    changes: dict[str, Any] = {}
    for key, value in settings.items():
        if key in IGNORED_KEYS:
            ignored.add(key)
            continue
        if key not in MODELLED_KEYS:
            raise SiraError(f"{where}: unknown folding key '{key}' for layer '{layer.name}' ({layer.kind}); "
                            f"sira uses {', '.join(MODELLED_KEYS)} (and ignores {', '.join(IGNORED_KEYS[:5])}, ...)")
        if key in ("PE", "SIMD"):
            changes[key.lower()] = _int_value(layer, key, value)
        elif key == "ram_style":
            changes["mem_style"] = _ram_style(layer, key, value)
        elif key == "impl":
            if getattr(layer, "thresholds", None) is None:
                raise SiraError(f"{where}: layer '{layer.name}' ({layer.kind}) has no thresholds; "
                                "impl applies to layers with thresholds (MVAU/VVAU with an activation, Thresholding)")
            if value not in IMPLS:
                raise SiraError(f"{where}: layer '{layer.name}' ({layer.kind}): impl={value!r} is not one of {', '.join(IMPLS)}")
            changes["impl"] = value
        else:  # ram_style_thresholds
            if not hasattr(layer, "threshold_mem_style"):
                raise SiraError(f"{where}: layer '{layer.name}' ({layer.kind}) has no embedded thresholds; "
                                "ram_style_thresholds applies to MVAU/VVAU layers only")
            changes["threshold_mem_style"] = _ram_style(layer, key, value)
    if not changes:
        return layer
    try:
        return dataclasses.replace(layer, **changes)  # re-validates (hw.py raises a SiraError naming the layer)
    except SiraError as e:
        raise SiraError(f"{where}: {e}") from None


def _load_config(path_or_dict: Union[str, os.PathLike, Mapping]) -> tuple[dict, str]:
    if isinstance(path_or_dict, Mapping):
        return dict(path_or_dict), "folding config"
    path = os.fspath(path_or_dict)
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except OSError as e:
        raise SiraError(f"cannot read folding file '{path}': {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise SiraError(f"folding file '{path}' is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(config, dict):
        raise SiraError(f"folding file '{path}' must hold a JSON object of layer name -> settings")
    return config, f"folding file '{path}'"


def _defaults(config: Mapping, where: str) -> list[tuple[str, Any, Optional[set]]]:
    """``Defaults`` as (key, value, kinds or None for every layer)."""
    raw = config.get("Defaults", {})
    if not isinstance(raw, Mapping):
        raise SiraError(f"{where}: 'Defaults' must be an object of key -> [value, [op types]]")
    out = []
    for key, entry in raw.items():
        if isinstance(entry, list) and len(entry) == 2 and (isinstance(entry[1], list) or entry[1] == "all"):
            value, scope = entry
            kinds = None if scope == "all" else {_kind_of(str(t)) for t in scope}
        else:
            value, kinds = entry, None
        out.append((key, value, kinds))
    return out


def apply_folding_file(layers: Sequence[HWLayer], path_or_dict: Union[str, os.PathLike, Mapping]) -> FoldedLayers:
    """``layers`` re-folded as a FINN folding config says (a JSON file path
    or the parsed dict); see the module docstring for the format. Defaults
    apply first (a bare default only to layers that have the key), then the
    per-layer entries. Returns a :class:`FoldedLayers` (the layers, new
    objects where changed, plus ``notes``)."""
    config, where = _load_config(path_or_dict)
    by_name = {l.name: i for i, l in enumerate(layers)}
    unknown = [k for k in config if k != "Defaults" and k not in by_name]
    if unknown:
        names = [l.name for l in layers]
        shown = ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")
        raise SiraError(f"{where}: unknown layer name(s) {', '.join(repr(u) for u in unknown)}; "
                        f"the hardware layers are: {shown}")
    ignored: set = set()
    out = list(layers)
    for key, value, kinds in _defaults(config, where):
        for i, layer in enumerate(out):
            if kinds is not None and layer.kind not in kinds:
                continue
            if kinds is None and not _has_key(layer, key):
                continue
            out[i] = _apply(layer, {key: value}, f"{where} (Defaults)", ignored)
    for name, settings in config.items():
        if name == "Defaults":
            continue
        if not isinstance(settings, Mapping):
            raise SiraError(f"{where}: entry for layer '{name}' must be an object like {{\"PE\": 2, \"SIMD\": 4}}")
        i = by_name[name]
        out[i] = _apply(out[i], settings, where, ignored)
    notes = []
    if ignored:
        notes.append(f"{where}: keys not modelled by sira, ignored: {', '.join(sorted(ignored))}")
    return FoldedLayers(out, notes)


def folding_json(layers: Sequence[HWLayer]) -> dict:
    """The folding of ``layers`` in FINN's folding-config format: one entry
    per layer with a folding factor (``PE``/``SIMD`` where the layer has
    them, ``ram_style``, ``ram_style_thresholds`` for MVAU/VVAU)."""
    out: dict[str, Any] = {"Defaults": {}}
    for layer in layers:
        dims = layer.fold_dims()
        if not dims:
            continue
        entry: dict[str, Any] = {}
        if "pe" in dims:
            entry["PE"] = int(layer.pe)
        if "simd" in dims:
            entry["SIMD"] = int(layer.simd)
        entry["ram_style"] = FINN_RAM_STYLE[layer.mem_style]
        if hasattr(layer, "threshold_mem_style"):
            entry["ram_style_thresholds"] = FINN_RAM_STYLE[layer.threshold_mem_style]
        if getattr(layer, "impl", "auto") != "auto":
            entry["impl"] = layer.impl
        out[layer.name] = entry
    return out


# --------------------------------------------------------------------------
# choosing a folding for a target throughput
# --------------------------------------------------------------------------


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _candidates(layer: HWLayer) -> list[tuple[int, int]]:
    """Every valid (pe, simd) of ``layer``, ordered by preference: fewest
    lanes (PE·SIMD, what the cost grows with) first; on a tie FINN's order -
    SIMD before PE for an MVAU (wider dot products, fewer output lanes), PE
    before SIMD for a VVAU (FINN raises a VVAU's SIMD only at full PE, since
    SIMD > 1 needs a parallel-window sliding window)."""
    dims = layer.fold_dims()
    pes = _divisors(dims["pe"][1]) if "pe" in dims else [1]
    simds = _divisors(dims["simd"][1]) if "simd" in dims else [1]
    pairs = [(p, s) for p in pes for s in simds]
    if layer.kind == "VVAU":
        return sorted(pairs, key=lambda ps: (ps[0] * ps[1], ps[1]))
    return sorted(pairs, key=lambda ps: (ps[0] * ps[1], ps[0]))


def _cycles_with(layer: HWLayer, pe: int, simd: int) -> int:
    """``layer.cycles`` at another (valid) folding, without re-validating or
    copying the parameter arrays (a shallow copy; only used to read cycles)."""
    probe = copy.copy(layer)
    object.__setattr__(probe, "pe", pe)
    object.__setattr__(probe, "simd", simd)
    return int(probe.cycles)


def fold_for_target_fps(layers: Sequence[HWLayer], target_fps: float, clock_ns: float, *,
                        strict: bool = False) -> FoldedLayers:
    """Fold every layer as little as possible to reach ``target_fps`` at a
    clock period of ``clock_ns`` (FINN's ``SetFolding`` idea).

    Budget: ``floor(1e9 / (clock_ns * target_fps))`` cycles per layer. Each
    layer gets the valid (PE, SIMD) - divisors of the dimensions
    :meth:`~sira.hw.HWLayer.fold_dims` names - with the fewest lanes whose
    cycles fit the budget (ties: SIMD first for MVAUs, as FINN; see
    :func:`_candidates`). Layers are re-folded from scratch (their current
    folding is ignored); memory styles are kept.

    **Unreachable targets** (a layer slower than the budget even fully
    unrolled): by default the layer is folded maximally and the result says
    so - ``target_reached`` is False, ``achievable_fps`` is the best the
    design can do, and ``notes`` names the limiting layers. With
    ``strict=True`` a :class:`~sira.errors.SiraError` with the achievable fps
    is raised instead.
    """
    budget = cycle_budget(target_fps, clock_ns)
    out = FoldedLayers()
    short: list[tuple[str, int]] = []
    for layer in layers:
        if not layer.fold_dims():
            out.append(layer)
            continue
        chosen = None
        fastest = None
        for pe, simd in _candidates(layer):
            cycles = _cycles_with(layer, pe, simd)
            if fastest is None or cycles < fastest[0]:
                fastest = (cycles, pe, simd)
            if cycles <= budget:
                chosen = (cycles, pe, simd)
                break
        if chosen is None:
            chosen = fastest
            short.append((layer.name, fastest[0]))
        out.append(layer.with_folding(pe=chosen[1], simd=chosen[2]))
    name, cycles = bottleneck(out) if out else ("", 0)
    fps = math.inf if cycles == 0 else 1e9 / (float(clock_ns) * cycles)
    out.target_reached = not short
    out.achievable_fps = fps
    if short:
        limiting = ", ".join(f"'{n}' ({c} cycles)" for n, c in short)
        message = (f"target of {target_fps:g} fps at {clock_ns:g} ns ({budget} cycles per layer) is not reachable: "
                   f"fully unrolled, {limiting} still exceed the budget; best achievable is {fps:.6g} fps "
                   f"(bottleneck '{name}', {cycles} cycles); those layers are folded maximally")
        if strict:
            raise SiraError(message + "; lower --target-fps, raise the clock (smaller --clock-ns), or split the layer")
        out.notes.append(message)
    return out


__all__ = [
    "FoldedLayers", "layer_cycles", "bottleneck", "throughput_fps", "cycle_budget",
    "apply_folding_file", "folding_json", "fold_for_target_fps", "RAM_STYLES", "FINN_RAM_STYLE",
]
