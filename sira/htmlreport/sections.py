"""What the report's first sections show, decided from the project's JSON
files: the summary header, the C-simulation verdict, the accumulator widths
per MAC layer and the resources of both flows. Each function returns the
view of one section (plain values and chart geometry); the templates
``sira/templates/*.j2`` lay it out."""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

from ..report import fmt_num
from .charts import WIDTH_ROWS, ChartIds, resources_chart, widths_chart
from .inputs import ProjectFiles
from .text import DASH, bits, delta_class, is_number, mapping, num, pct, range_text

#: resources of the tables
RESOURCES = ("LUT", "DSP", "BRAM_18K", "URAM")
#: column heads of the per-layer table where they differ from the key
RESOURCE_LABELS = {"BRAM_18K": "BRAM18"}
#: the accumulator widths summed in the widths section
WIDTH_SUMS = ("a2q_width", "finn_width", "sira_width")


def page_title(files: ProjectFiles, folder: str) -> str:
    m = files.manifest
    return f"sira report: {mapping(m, 'model').get('file') or m.get('top') or folder}"


def folder_name(root: str) -> str:
    """The project folder's own name (never its absolute path: the page is
    the same wherever the folder is)."""
    return os.path.basename(os.path.normpath(os.path.abspath(root))) or "DIR"


# --------------------------------------------------------------------------
# header and C simulation
# --------------------------------------------------------------------------


def header_view(files: ProjectFiles) -> dict:
    m = files.manifest
    model = mapping(m, "model")
    sha = str(model.get("sha256") or "")
    clock = m.get("clock_ns")
    fps = mapping(files.estimate, "performance").get("estimated_throughput_fps")
    return {
        "title": model.get("file") or m.get("top") or "model",
        "model": model.get("file", DASH),
        "sha256": sha,
        "sha256_short": sha[:12] or DASH,
        "sira_version": m.get("sira_version", DASH),
        "part": m.get("part") or DASH,
        "clock_ns": num(clock) if is_number(clock) and clock > 0 else None,
        "clock_mhz": fmt_num(1000.0 / clock, 4) if is_number(clock) and clock > 0 else None,
        "top": m.get("top") or DASH,
        "stages": num(len(m["stages"])) if isinstance(m.get("stages"), list) else DASH,
        "samples": num(m.get("samples")),
        "fps": num(fps) if fps is not None else None,
    }


def csim_view(files: ProjectFiles) -> Optional[dict]:
    """The verdict of ``report/csim.json``; None when C simulation has not run."""
    c = files.csim
    if c is None:
        return None
    samples = c.get("samples")
    details = [f"{num(samples)} test vectors through the whole dataflow, compared bit for bit with the original model"]
    if c.get("mode") == "dataflow":
        details.append("every stage a thread over FIFOs of " + (f"depth {c['fifo_depth']}" if c.get("fifo_depth") else "the generated depths"))
    if c.get("deadlock"):
        details = [f"deadlock: {c['deadlock']}"] + details[1:]
    if isinstance(c.get("seconds"), (int, float)):
        details.append(f"{num(c['seconds'])} s" + (" (cached binary)" if c.get("cached") else ""))
    passed = bool(c.get("passed"))
    return {
        "passed": passed,
        "status": "passed" if passed else "failed",
        "kind": "pass" if passed else "fail",
        "exact": num(c.get("exact")),
        "samples": num(samples),
        "exact_attr": _attr(c.get("exact")),
        "samples_attr": _attr(samples),
        "first_mismatch": c.get("first_mismatch_layer") or None,
        "details": "; ".join(details),
    }


def _attr(value: Any) -> Optional[str]:
    """An attribute's value, or None to leave the attribute out."""
    return None if value is None or value is False else str(value)


# --------------------------------------------------------------------------
# accumulator widths
# --------------------------------------------------------------------------


def widths_view(files: ProjectFiles, ids: ChartIds) -> Optional[dict]:
    """Per MAC layer of ``report/optimize.json`` its width chart and table
    row; None when the file is missing."""
    if files.optimize is None:
        return None
    layers = [layer for layer in files.optimize.get("layers") or [] if isinstance(layer, dict)]
    max_bits = max([b for layer in layers for _, _, key, _ in WIDTH_ROWS if (b := bits(layer.get(key))) is not None] + [1])
    return {
        "legend": [(label, cls) for label, _, _, cls in WIDTH_ROWS],
        "sums": {key: sum(bits(layer.get(key)) or 0 for layer in layers) for key in WIDTH_SUMS},
        "cards": [_width_card(layer, widths_chart(ids, layer, max_bits)) for layer in layers],
        "rows": [_width_row(layer) for layer in layers],
    }


def _width_card(layer: dict, chart) -> dict:
    facts = [str(layer.get("op", "?")), f"K = {num(layer.get('K'))}"]
    cw = layer.get("channel_widths")
    if isinstance(cw, list) and cw and layer.get("limiting_channel") is not None:
        facts.append(f"widest channel {num(layer.get('limiting_channel'))} of {len(cw)}")
    extra = []
    if layer.get("input_dtype_source"):
        extra.append(f"input type from {layer['input_dtype_source']}")
    if isinstance(layer.get("sira_range"), list):
        extra.append(f"proven accumulator range {range_text(layer['sira_range'])}")
    if isinstance(layer.get("finn_range"), list):
        extra.append(f"FINN's {range_text(layer['finn_range'])}")
    return {"layer": str(layer.get("layer", "?")), "facts": facts, "chart": chart, "extra": "; ".join(extra)}


def _width_row(layer: dict) -> dict:
    finn, sira_w = bits(layer.get("finn_width")), bits(layer.get("sira_width"))
    return {
        "layer": str(layer.get("layer", "?")),
        "op": layer.get("op", "?"),
        "K": num(layer.get("K")),
        "input_dtype": layer.get("input_dtype") or DASH,
        "N": num(layer.get("N")),
        "weight_dtype": layer.get("weight_dtype") or DASH,
        "M": num(layer.get("M")),
        "a2q_width": num(layer.get("a2q_width")),
        "finn_width": num(layer.get("finn_width")),
        "sira_width": num(layer.get("sira_width")),
        "saved": num(finn - sira_w if finn is not None and sira_w is not None else None),
        "output_dtype": layer.get("output_dtype") or DASH,
    }


# --------------------------------------------------------------------------
# resources
# --------------------------------------------------------------------------


def merged_order(first: Sequence[str], second: Sequence[str]) -> list[str]:
    """Names of ``first`` in order, with those only in ``second`` inserted
    after the name that precedes them in ``second``."""
    out = list(first)
    present = set(out)
    prev: Optional[str] = None
    for name in second:
        if name not in present:
            at = out.index(prev) + 1 if prev is not None else 0
            out.insert(at, name)
            present.add(name)
        prev = name
    return out


def resources_view(files: ProjectFiles, ids: ChartIds) -> Optional[dict]:
    """Both flows of ``report/estimate.json``: the chart, the design totals
    and the per-layer table; None when the file is missing."""
    est = files.estimate
    if est is None or not isinstance(est.get("layers"), dict):
        return None
    total, baseline, delta = mapping(est, "total"), mapping(est, "baseline"), mapping(est, "delta")
    base_total, base_layers = mapping(baseline, "total"), mapping(baseline, "layers")
    perf, base_perf = mapping(est, "performance"), mapping(baseline, "performance")
    sira_layers = est["layers"]
    order = merged_order(list(sira_layers), list(base_layers))
    is_plumbing = {n: bool((sira_layers.get(n) or base_layers.get(n) or {}).get("plumbing")) for n in order}
    return {
        "part": est.get("part", DASH),
        "clock_ns": num(est.get("clock_ns")),
        "mode": est.get("mode", "?"),
        "chart": resources_chart(ids, base_total, total, delta),
        "totals": _total_rows(total, base_total, delta, perf, base_perf),
        "unknown": [(label, parts) for label, t in (("SIRA", total), ("baseline", base_total)) if (parts := _unknown_costs(t))],
        "bottleneck": (perf["max_cycles_node_name"], num(perf.get("max_cycles"))) if perf.get("max_cycles_node_name") else None,
        "resource_labels": [RESOURCE_LABELS.get(key, key) for key in RESOURCES],
        "layers": [_layer_row(n, sira_layers.get(n), base_layers.get(n)) for n in order if not is_plumbing[n]],
        "plumbing": [_layer_row(n, sira_layers.get(n), base_layers.get(n)) for n in order if is_plumbing[n]],
        "foot": {
            "sira": [(key, num(total.get(key))) for key in RESOURCES],
            "baseline": [(key, num(base_total.get(key))) for key in RESOURCES],
            "cycles": num(total.get("cycles")),
            "acc_sira": num(total.get("acc_bits")),
            "acc_baseline": num(base_total.get("acc_bits")),
        },
    }


def _total_rows(total: dict, base_total: dict, delta: dict, perf: dict, base_perf: dict) -> list[dict]:
    """The design totals: resources and accumulator bits with their change,
    then the bottleneck and the throughput (no change in %)."""

    def row(key: str, label: str, base: Any, sira: Any, changed: bool) -> dict:
        d = delta.get(key)
        return {"key": key, "label": label, "baseline": num(base), "sira": num(sira),
                "delta": pct(d) if changed else None, "delta_cls": delta_class(d)}  # fmt: skip

    rows = [row(key, key, base_total.get(key), total.get(key), True) for key in RESOURCES]
    rows.append(row("acc_bits", "accumulator bits (mean of MAC layers)", base_total.get("acc_bits"), total.get("acc_bits"), True))
    rows.append(row("max_cycles", "bottleneck cycles", base_perf.get("max_cycles"), perf.get("max_cycles"), False))
    rows.append(row("fps", "throughput (inferences/s)", base_perf.get("estimated_throughput_fps"), perf.get("estimated_throughput_fps"), False))
    return rows


def _unknown_costs(total: dict) -> str:
    unk = total.get("unknown_layers")
    if not isinstance(unk, dict):
        return ""
    return ", ".join(f"{k} in {num(v)} layer(s)" for k, v in unk.items() if v)


def _resource_cells(d: Optional[dict], flow: str) -> list[dict]:
    """One flow's resources of a layer; a layer the flow lacks is "absent",
    a cost the model does not know is "unknown"."""
    cells = []
    for key in RESOURCES:
        if d is None:
            cells.append({"cls": "n absent", "flow": flow, "key": key, "text": DASH})
            continue
        v = d.get(key)
        cls = "n unknown" if v == "unknown" else ("n zero" if v == 0 else "n")
        cells.append({"cls": cls, "flow": flow, "key": key, "text": num(v)})
    return cells


def _layer_row(name: str, s: Optional[dict], b: Optional[dict]) -> dict:
    """A layer of either flow (``s``: SIRA, ``b``: the baseline, None when
    the flow has no such layer), with the badges that say what it is."""
    d = s if s is not None else b or {}
    marks, classes = [], []
    if d.get("host"):
        marks.append(("host CPU", "host", "float step outside the integer dataflow: runs on the host CPU"))
        classes.append("host")
    if d.get("plumbing"):
        marks.append(("plumbing", "plumb", "stream plumbing added by the dataflow; the same in both flows"))
        classes.append("plumbing")
    if d.get("free") and not d.get("host"):
        marks.append(("free", "free", "no hardware of its own"))
    if s is None:
        marks.append(("baseline only", "baseonly", "in the FINN baseline only: sira folds it into thresholds"))
        classes.append("baseline-only")
    elif b is None:
        marks.append(("SIRA only", "siraonly", None))
    return {
        "name": name,
        "cls": " ".join(classes) or None,
        "marks": marks,
        "notes": [n for n in dict.fromkeys([(s or {}).get("note"), (b or {}).get("note")]) if n],
        "op_type": d.get("op_type", "?"),
        "PE": num(d.get("PE")),
        "SIMD": num(d.get("SIMD")),
        "cells": _resource_cells(s, "sira") + _resource_cells(b, "baseline"),
        "cycles": num(d.get("cycles")),
        "acc_sira": num((s or {}).get("acc_bits")),
        "acc_baseline": num((b or {}).get("acc_bits")),
    }


__all__ = ["RESOURCES", "page_title", "folder_name", "header_view", "csim_view", "widths_view", "resources_view", "merged_order"]
