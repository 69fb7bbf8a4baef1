"""What the report's last sections show: the range table of the original
model, the float islands, warnings and host layers, and the manifest. Each
function returns the view of one section; the templates lay it out."""

from __future__ import annotations

import json
from typing import Optional

from ..report import _hull_text, _param_text, fmt_num
from .inputs import ProjectFiles
from .text import DASH, flatten, is_number, joined, mapping, num, shape_text, short_json
from ..ops import Trait, ops_with

#: op types of MAC layers in the range analysis
MAC_OPS = ops_with(Trait.MAC)
#: how exact a range is, and what that means
MARKS = {
    "exact": "the bounds are attained",
    "loose": "a sound bound that may not be attained",
    "fallback": "the rule fell back to a safe but coarser range",
}


# --------------------------------------------------------------------------
# ranges
# --------------------------------------------------------------------------


def mark(t: dict) -> str:
    if t.get("fallback"):
        return "fallback"
    return "exact" if t.get("exact") else "loose"


def _tensor_row(name: str, t: dict) -> dict:
    """A tensor as ``sira analyze`` prints it (six significant digits), its
    exact bounds kept for the tooltip."""
    gran = t.get("granularity")
    scaled = bool(t.get("scaled_int"))
    try:
        rng = _hull_text(t.get("min"), t.get("max"))
        irng = _hull_text(t.get("int_min"), t.get("int_max")) if scaled else DASH
        scale = _param_text(t.get("scale")) if scaled else DASH
        bias = _param_text(t.get("bias")) if scaled else DASH
    except (TypeError, ValueError, KeyError):
        rng, irng, scale, bias = "?", "?", "?", "?"
    m = mark(t)
    dtype = str(t.get("datatype", "?"))
    return {
        "name": name,
        "mark": m,
        "mark_cls": f"mark-{m}",
        "why": MARKS[m],
        "notes": [str(n) for n in t.get("notes") or []],
        "op": t.get("op", "?"),
        "shape": shape_text(t.get("shape")),
        "exact": json.dumps({"min": t.get("min"), "max": t.get("max")}),
        "range": rng,
        "per": "" if gran in ("tensor", None) else ("per-ch" if gran == "channel" else "per-elem"),
        "int_range": irng,
        "scale": scale,
        "bias": bias,
        "datatype": dtype,
        "datatype_cls": "dtype float" if dtype == "FLOAT32" else "dtype",
    }


def ranges_view(files: ProjectFiles) -> Optional[dict]:
    """The tensors of ``report/analysis.json``, run-time ones first;
    None when the file is missing."""
    a = files.analysis
    if a is None or not isinstance(a.get("tensors"), dict):
        return None
    tensors = {k: v for k, v in a["tensors"].items() if isinstance(v, dict)}
    live = [_tensor_row(n, t) for n, t in tensors.items() if not t.get("constant")]
    return {
        "counts": {m: sum(1 for row in live if row["mark"] == m) for m in MARKS},
        "live": live,
        "constants": [_tensor_row(n, t) for n, t in tensors.items() if t.get("constant")],
    }


# --------------------------------------------------------------------------
# float islands, warnings and host layers
# --------------------------------------------------------------------------


def float_islands(files: ProjectFiles) -> Optional[list[dict]]:
    """MAC layers left on floats: ``float_islands`` of optimize.json when it
    has them, else the MAC nodes of the analysis that the width report does
    not list (sira could not put them on integers). None: cannot tell."""
    opt, a = files.optimize, files.analysis
    if opt is not None and isinstance(opt.get("float_islands"), list):
        return [i for i in opt["float_islands"] if isinstance(i, dict)]
    if opt is None or a is None or not isinstance(a.get("tensors"), dict):
        return None
    done = {layer.get("output") for layer in opt.get("layers") or [] if isinstance(layer, dict)}
    return [
        {"node": "", "tensor": n, "reason": "MAC output with no integer accumulator in the width report"}
        for n, t in a["tensors"].items()
        if isinstance(t, dict) and t.get("op") in MAC_OPS and not t.get("constant") and n not in done
    ]


def _island(i: dict) -> dict:
    node, tensor = i.get("node"), i.get("tensor")
    return {"name": node or i.get("tensor", "?"), "tensor": tensor if node and tensor else None, "reason": i.get("reason", "")}


def notices(files: ProjectFiles, changed: dict[str, str]) -> list[tuple[str, str, str]]:
    """(source, badge kind, text) of everything the page warns about: files
    it could not read or that changed since the build, the analysis'
    warnings and fallbacks, the estimate's notes and the lint findings."""
    items = [("file", "fail", p) for p in files.problems]
    items += [("file", "warnbadge", f"{rel} {what} since sira build wrote it") for rel, what in changed.items()]
    a = files.analysis or {}
    for w in a.get("warnings") or []:
        if isinstance(w, dict):
            where = f"{w.get('node', '?')} ({w.get('op_type', '?')})"
            items.append((f"analysis: {w.get('kind', 'warning')}", "warnbadge", f"{where}: {w.get('message', '')}"))
    for n, t in mapping(a, "tensors").items():
        if isinstance(t, dict) and t.get("fallback"):
            items.append(("analysis: fallback", "fail", f"{n}: " + ("; ".join(map(str, t.get("notes") or [])) or "range from a fallback rule")))
    est = files.estimate or {}
    items += [("estimate", "info", str(note)) for note in est.get("notes") or []]
    for note in est.get("lint") or []:
        text = note if isinstance(note, str) else json.dumps(note, sort_keys=True)
        items.append(("lint", "fail" if text.startswith("error") else "warnbadge", text))
    return items


def _parameter_text(param) -> str:
    """A host layer's parameter: its value, or the count and span of many."""
    if param is None:
        return DASH
    nums = [v for v in flatten(param) if is_number(v)]
    if len(nums) == 1:
        return num(nums[0])
    if nums:
        return f"{len(nums)} values, {fmt_num(min(nums), 4)}..{fmt_num(max(nums), 4)}"
    return DASH


def _host_rows(side: str, layers: list) -> list[dict]:
    return [
        {
            "side": side,
            "name": layer.get("name", "?"),
            "kind": layer.get("kind", "?"),
            "op": layer.get("op", DASH),
            "in_type": layer.get("in_type", "?"),
            "out_type": layer.get("out_type", "?"),
            "inputs": joined(layer.get("inputs")),
            "outputs": joined(layer.get("outputs")),
            "parameter": _parameter_text(layer.get("param")),
        }
        for layer in layers
        if isinstance(layer, dict)
    ]


def warnings_view(files: ProjectFiles, changed: dict[str, str]) -> dict:
    islands = float_islands(files)
    tensors = mapping(files.analysis, "tensors")
    floats = [(n, t.get("op", "?"), "; ".join(map(str, t.get("notes") or [])) or "float") for n, t in tensors.items()
              if isinstance(t, dict) and not t.get("constant") and not t.get("scaled_int") and t.get("op") != "input"]  # fmt: skip
    host = mapping(files.manifest, "host")
    return {
        "islands": None if islands is None else [_island(i) for i in islands],
        "notices": notices(files, changed),
        "floats": floats,
        "host": _host_rows("head", host.get("head") or []) + _host_rows("tail", host.get("tail") or []),
    }


# --------------------------------------------------------------------------
# manifest
# --------------------------------------------------------------------------


def _port_rows(ports: dict) -> list[dict]:
    return [
        {
            "direction": side[:-1],
            "port": p.get("port", "?"),
            "tensor": p.get("tensor", "?"),
            "type": p.get("type", "?"),
            "bits": num(p.get("bits")),
            "lanes": num(p.get("lanes")),
            "word_bits": num(p.get("word_bits")),
            "shape": shape_text(p.get("shape")),
            "elements": num(p.get("elements")),
        }
        for side in ("inputs", "outputs")
        for p in ports.get(side) or []
        if isinstance(p, dict)
    ]


def manifest_view(files: ProjectFiles, changed: dict[str, str]) -> dict:
    m = files.manifest
    model = mapping(m, "model")
    stages = [s for s in m.get("stages") or [] if isinstance(s, dict)]
    return {
        "generator": m.get("generator", DASH),
        "sira_version": m.get("sira_version", DASH),
        "model": model.get("file", DASH),
        "sha256": model.get("sha256", DASH),
        "part": m.get("part") or DASH,
        "clock_ns": num(m.get("clock_ns")),
        "top": m.get("top") or DASH,
        "samples": num(m.get("samples")),
        "versions": list(mapping(m, "versions").items()),
        "options": [(k, short_json(v)) for k, v in mapping(m, "options").items()],
        "ports": _port_rows(mapping(m, "ports")),
        "stages": [{"id": s.get("id", "?"), "kind": s.get("kind", "?"), "layer": s.get("layer", "?"), "inputs": joined(s.get("inputs")),
                    "outputs": joined(s.get("outputs"))} for s in stages],  # fmt: skip
        "files": [(rel, digest, changed.get(rel)) for rel, digest in mapping(m, "files").items()],
        "changed": len(changed),
    }


__all__ = ["MAC_OPS", "MARKS", "mark", "ranges_view", "float_islands", "notices", "warnings_view", "manifest_view"]
