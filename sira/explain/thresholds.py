"""Threshold layers explained: the chain a MultiThreshold replaces and its
thresholds per channel.

Two sources: a ``MultiThreshold`` already in the model
(:func:`model_threshold_doc`), or, on an original model, a quantizer on
run-time data that ``sira optimize`` turns into thresholds together with the
elementwise chain before it (:func:`chain_quantizer` finds it,
:func:`optimize_threshold_doc` runs the optimization and reads what it made).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .. import numerics as nx
from ..errors import SiraError
from ..report import datatype_name
from .mac import MAC_OPS


def _dynamic_input(node, report) -> Optional[str]:
    for i in node.input:
        if i and i in report.ranges and not report[i].is_const:
            return i
    return None


def chain_quantizer(model, report, tensor: str) -> Optional[Any]:
    """The quantizer that ends the elementwise chain ``tensor`` belongs to
    (itself a quantizer output, or reaching one through single-reader chain
    ops), when that quantizer quantizes run-time data; else None."""
    from sira.transforms.thresholds import CHAIN_OPS, QUANTIZERS

    producers = {o: n for n in model.graph.node for o in n.output if o}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in model.graph.output}
    node = producers.get(tensor)
    if node is None or node.op_type not in QUANTIZERS | CHAIN_OPS:
        return None
    t = tensor
    for _ in range(64):
        if node.op_type in QUANTIZERS:
            data = node.input[0]
            return node if data in report.ranges and not report[data].is_const else None
        readers = consumers.get(t, [])
        if len(readers) != 1 or t in outputs:
            return None
        node = readers[0]
        if node.op_type not in QUANTIZERS | CHAIN_OPS:
            return None
        t = node.output[0]
    return None


def _chain_nodes(model, report, quant, start_node: Optional[str]) -> tuple[list, Optional[str]]:
    """Original nodes of the chain ending in ``quant`` (upstream first) and
    the tensor it reads: walking back from the quantizer to the node that
    produces the chain's start (``start_node``), a MAC, or a graph input."""
    producers = {o: n for n in model.graph.node for o in n.output if o}
    chain = [quant]
    t = quant.input[0]
    for _ in range(64):
        p = producers.get(t)
        if p is None or p.name == start_node or p.op_type in MAC_OPS:
            break
        d = _dynamic_input(p, report)
        if d is None:
            break
        chain.insert(0, p)
        t = d
    return chain, t


def _active_counts(thr: np.ndarray, lo: Sequence, hi: Sequence) -> list[int]:
    """Per channel, the thresholds inside the input's range (lo, hi]: the
    ones whose comparison can go either way."""
    rows = thr.shape[0]
    out = []
    for c in range(len(lo)):
        row = thr[c if rows == len(lo) else 0]
        out.append(int(np.sum((row > lo[c]) & (row <= hi[c]))))
    return out


def _mt_doc(model, report, mt) -> dict:
    """Thresholds of a MultiThreshold node of ``model`` (analyzed in ``report``)."""
    from ..model import node_attr

    thr = np.asarray(report[mt.input[1]].const_value(), dtype=np.float64)
    if thr.ndim != 2:
        thr = thr.reshape(thr.shape[0], -1)
    x = report[mt.input[0]]
    layout = node_attr(mt, "data_layout", "NCHW" if x.ndim == 4 else "NC")
    axis = layout.index("C") if isinstance(layout, str) and "C" in layout and len(layout) == x.ndim else min(1, x.ndim - 1)
    vb = x.integer_value_bounds()
    lo_a, hi_a = (vb if vb is not None else (x.lo, x.hi))
    C = x.shape[axis] if x.ndim else 1
    rx = x.replace(lo=np.asarray(lo_a, dtype=np.float64), hi=np.asarray(hi_a, dtype=np.float64))
    lo = [float(v) for v in rx.per_channel("lo", axis, "min")] if x.ndim else [float(np.min(lo_a))]
    hi = [float(v) for v in rx.per_channel("hi", axis, "max")] if x.ndim else [float(np.max(hi_a))]
    active = _active_counts(thr, lo, hi)
    out = report[mt.output[0]]
    doc = {
        "node": mt.name,
        "input": mt.input[0],
        "input_range": [_num(min(lo)), _num(max(hi))],
        "input_integer": vb is not None,
        "channels": int(C),
        "rows": int(thr.shape[0]),
        "thresholds_per_channel": int(thr.shape[1]),
        "active_per_channel": active,
        "out_dtype": node_attr(mt, "out_dtype", ""),
        "out_scale": float(node_attr(mt, "out_scale", 1.0)),
        "out_bias": float(node_attr(mt, "out_bias", 0.0)),
        "output": mt.output[0],
        "output_dtype": datatype_name(out),
    }
    return doc


def _num(v):
    f = float(v)
    return int(f) if f == int(f) and abs(f) < 2**53 else f


def _reads(model, report, tensor: str) -> dict:
    """What a MultiThreshold reads: its input, through a sign Mul, back to a MAC."""
    producers = {o: n for n in model.graph.node for o in n.output if o}
    t, via = tensor, []
    for _ in range(4):
        p = producers.get(t)
        if p is None or p.op_type != "Mul":
            break
        via.append(p.name)
        t = _dynamic_input(p, report) or p.input[0]
    p = producers.get(t)
    doc: dict[str, Any] = {"tensor": t, "node": p.name if p is not None else None, "op": p.op_type if p is not None else "input", "via": via}
    vr = report[t].integer_values()
    if vr is not None:
        doc["integer_range"] = list(vr)
        doc["dtype"] = nx.narrowest_int_type(*vr)
    return doc


def implementation_doc(optimized, spec, mt) -> dict:
    """How the hardware layer holding ``mt`` builds its thresholds: every
    exact implementation with its refined cost on the default part and why
    the winner won (:mod:`sira.implementation`), as ``sira estimate`` picks
    it with PE = SIMD = 1: within what FINN's build of the layer uses."""
    from ..analysis import analyze
    from ..baseline import baseline_layers
    from ..devices import DEFAULT_PART, get_part
    from ..implementation import choose, has_choice
    from ..layer_costs import layer_cost
    from ..model import quiet
    from sira.transforms.to_hw import lower_to_hw
    from sira.transforms.widths import mac_width_report

    try:
        with quiet():
            layers = lower_to_hw(optimized, spec)
    except SiraError as e:
        return {"available": False, "reason": f"the model does not lower to hardware layers ({e})"}
    layer = next((l for l in layers if mt.output[0] in l.outputs), None)
    if layer is None or not has_choice(layer):
        return {"available": False, "reason": "its hardware layer compares a float input (no integer implementation)"}
    part = get_part(DEFAULT_PART)
    with quiet():
        base = baseline_layers(layers, mac_width_report(analyze(optimized, spec)), {i.name for i in optimized.graph.input})
    limit = next((layer_cost(b, part, "refined") for b in base if b.name == layer.name and b.name not in base.host), None)
    built, choice = choose(layer, part, "refined", limit=limit)
    doc = {"available": True, "layer": layer.name, "kind": layer.kind, "part": DEFAULT_PART, **choice.to_json()}
    if built.requant is not None:
        r = built.requant
        doc["integer"] = {"shift": r.shift, "rows": r.rows, "active_range": [r.lo, r.hi],
                          "m_range": [min(int(v) for v in r.m), max(int(v) for v in r.m)],
                          "b_range": [min(int(v) for v in r.b), max(int(v) for v in r.b)]}  # fmt: skip
    return doc


def model_threshold_doc(model, report, mt) -> dict:
    doc = _mt_doc(model, report, mt)
    doc["implementation"] = implementation_doc(model, None, mt)
    doc["source"] = "model"
    doc["reads"] = _reads(model, report, mt.input[0])
    nodes = {n.name: n for n in model.graph.node}
    for name in doc["reads"]["via"]:
        consts = [i for i in nodes[name].input if i in report.ranges and report[i].is_const]
        if len(consts) == 1:
            sign = np.asarray(report[consts[0]].const_value(), dtype=np.float64).reshape(-1)
            if np.all(np.abs(sign) == 1) and np.any(sign < 0):
                doc["negated_channels"] = [int(c) for c in np.nonzero(sign < 0)[0]]
    doc["chain"] = None
    return doc


def _converted_node(optimized, start: str, quant_name: str):
    """The MultiThreshold a threshold pass made of a chain starting at
    ``start``: it reads ``start`` directly or through the sign Mul, and is
    named after the quantizer it replaced when several qualify."""
    oprod = {o: n for n in optimized.graph.node for o in n.output if o}
    found = []
    for n in optimized.graph.node:
        if n.op_type != "MultiThreshold":
            continue
        src = oprod.get(n.input[0])
        if n.input[0] == start or (src is not None and src.op_type == "Mul" and start in src.input):
            found.append(n)
    named = [n for n in found if n.name.startswith(f"{quant_name}_")]
    return (named or found or [None])[0]


def _optimized_spec(optimized, input_spec):
    """The input spec of an optimized model (as ``sira estimate`` does it):
    none when every input carries an integer datatype (a converted input is
    fed raw integers), else the original one."""
    ints = [optimized.get_tensor_datatype(i.name) for i in optimized.graph.input]
    if all(dt is not None and dt.is_integer() for dt in ints):
        return None
    return input_spec


def optimize_threshold_doc(model, report, quant, input_spec, samples: int, seed: int) -> dict:
    """The thresholds ``sira optimize`` makes of the chain ending in ``quant``."""
    from sira.transforms.pipeline import optimize

    from ..analysis import analyze
    from ..model import quiet

    try:
        with quiet():
            optimized, orep = optimize(model, input_spec, samples=samples, seed=seed)
    except SiraError as e:
        return {"converted": False, "quantizer": quant.name, "reason": f"sira optimize does not run on this model ({e})"}
    entry, pass_name, unconverted = None, None, None
    for p in orep.passes:
        for c in p.get("converted", []):
            if c["quantizer"] == quant.name:
                entry, pass_name = c, p["pass"]
        for u in p.get("unconverted", []):
            if u["quantizer"] == quant.name and entry is None:
                unconverted = u
    if entry is None:
        reason = unconverted["reason"] if unconverted else "sira optimize left this quantizer as it is"
        return {"converted": False, "quantizer": quant.name, "reason": reason}
    oprod = {o: n for n in optimized.graph.node for o in n.output if o}
    start = oprod.get(entry["input"])
    chain, reads = _chain_nodes(model, report, quant, start.name if start is not None else None)
    mt = _converted_node(optimized, entry["input"], quant.name)
    with quiet():
        oreport = analyze(optimized, _optimized_spec(optimized, input_spec))
    doc = _mt_doc(optimized, oreport, mt) if mt is not None else {}
    doc.update(
        converted=True,
        source="optimize",
        samples=orep.samples,
        pass_name=pass_name,
        quantizer=quant.name,
        chain=[{"node": n.name, "op": n.op_type, "output": n.output[0]} for n in chain],
        lowered_chain=list(entry["nodes"]),
        negated_channels=list(entry["negated_channels"]),
        stuck_channels=list(entry["stuck_channels"]),
        dropped_always_reached=entry["dropped_always_reached"],
        dropped_never_reached=entry["dropped_never_reached"],
        verified=entry["verified"],
    )
    rd: dict[str, Any] = {"tensor": reads, "node": None, "op": "input"}
    producers = {o: n for n in model.graph.node for o in n.output if o}
    if reads in producers:
        rd.update(node=producers[reads].name, op=producers[reads].op_type)
    vr = report[reads].integer_values()
    if vr is not None:
        rd.update(integer_range=list(vr), dtype=nx.narrowest_int_type(*vr))
    elif report[reads].is_scaled_int:
        qlo, qhi = report[reads].int_bounds()
        rd.update(integer_range=[qlo, qhi], dtype=nx.narrowest_int_type(qlo, qhi), grid=True)
    doc["reads"] = rd
    doc["chain_tensor_count"] = len(chain)
    if mt is not None:
        doc["implementation"] = implementation_doc(optimized, _optimized_spec(optimized, input_spec), mt)
    return doc


__all__ = ["chain_quantizer", "implementation_doc", "model_threshold_doc", "optimize_threshold_doc"]
