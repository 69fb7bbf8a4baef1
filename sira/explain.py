"""``sira explain``: why a tensor or a layer has the width it has.

:func:`explain` looks at one tensor (or the node producing it) and returns a
JSON-able document with the numbers behind its range and datatype;
:func:`explain_text` renders it for people. Four kinds of explanation:

* ``mac`` - the accumulator of a MatMul/Conv/Gemm with constant integer
  weights: the dot-product length ``K``, the input integer interval, per
  output channel the sums of positive and of negative weights and the proven
  accumulator interval, the channels that set the layer's maximum and
  minimum, the width rule with its numbers, the comparison with the A2Q
  datatype bound and FINN's weight-aware width, and two what-ifs computed
  exactly: the input one bit narrower (same scale, values clipped - the
  MAC's range rule re-run on that input), and the layer without the channel
  that sets its width.
* ``thresholds`` - a ``MultiThreshold`` of the model, or, on an original
  model, a tensor that ``sira optimize`` turns into thresholds (a quantizer
  on run-time data and the elementwise chain before it): the chain it
  replaced, the tensor it reads and the thresholds per channel. On an
  original model this runs :func:`sira.optimize` (``samples`` inputs for its
  final check).
* ``fallback`` - a tensor whose range came from an op without a rule: which
  op, and what that means for the tensors after it.
* ``tensor`` - anything else: range, integer range, scale, bias, datatype,
  and the producing op with the rule that computed them.

Every document also has the tensor's range entry exactly as
``sira analyze --format json`` writes it (``tensor``) and its producer
(``producer``: node, op type, rule, exactness).

Names: a tensor or node name of the model as :func:`sira.load` prepares it
(``MatMul_0``, ``MatMul_0_out0``, ``global_in``), or a name of the original
file (``fc0``, ``fc0_acc``, ``pixels``). An unknown name raises
:class:`~sira.errors.SiraError` listing close matches.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from typing import Any, Optional, Sequence

import numpy as np

from . import numerics as nx
from .errors import SiraError
from .ops import Trait, ops_with

#: ops whose output is an accumulator (with constant integer weights)
MAC_OPS = ops_with(Trait.MAC)
#: channels the text lists before it summarizes the rest
TEXT_CHANNELS = 12
#: random inputs of the final equivalence check when explain runs sira.optimize
DEFAULT_SAMPLES = 50


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def _plain(value):
    """A JSON-able copy (numpy scalars and arrays to Python)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if isinstance(v, np.generic) else v.tolist() if isinstance(v, np.ndarray) else str(v)))


def width_formula(lo: int, hi: int) -> str:
    """The width rule with numbers: ``bits([lo, hi]) = ... = n``."""
    lo, hi = int(lo), int(hi)
    bits = nx.int_type_width(lo, hi)
    if lo >= 0:
        return f"bits([{lo}, {hi}]) = ceil(log2({hi} + 1)) = {bits}" if hi >= 1 else f"bits([{lo}, {hi}]) = 1"
    m = max(-lo, hi + 1)
    return f"bits([{lo}, {hi}]) = 1 + ceil(log2(max({-lo}, {hi} + 1))) = 1 + ceil(log2({m})) = 1 + {(m - 1).bit_length()} = {bits}"


def a2q_formula(K: int, N: int, M: int, signed: bool, width: int) -> str:
    alpha = math.log2(K) + N + M - 1 - int(signed)
    return (
        f"alpha = log2({K}) + {N} + {M} - 1 - {int(signed)} = {alpha:.4g}; "
        f"P = ceil(alpha + 1 + log2(1 + 2^-alpha)) = {width}"
    )


def _narrower_type(dtype: str) -> Optional[tuple[str, int, int]]:
    """(name, min, max) of the integer type one bit narrower than ``dtype``
    with the same signedness, or None for one-bit types."""
    from qonnx.core.datatype import DataType

    dt = DataType[dtype]
    bits = int(dt.bitwidth())
    if bits <= 1 or not dt.is_integer():
        return None
    n = bits - 1
    if dt.signed():
        lo, hi = -(1 << (n - 1)), (1 << (n - 1)) - 1
        return (f"INT{n}" if n >= 2 else "1-bit signed"), lo, hi
    return ("BINARY" if n == 1 else f"UINT{n}"), 0, (1 << n) - 1


# --------------------------------------------------------------------------
# loading and names
# --------------------------------------------------------------------------


def _load(model_or_path):
    """(prepared model, path or None)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from .model import load

    if isinstance(model_or_path, ModelWrapper) and model_or_path.get_metadata_prop("sira_prepared") == "1":
        return model_or_path, None
    if isinstance(model_or_path, (str, os.PathLike)):
        path = os.fspath(model_or_path)
        if not os.path.exists(path):
            raise SiraError(f"model file '{path}' not found; give the path to a QONNX .onnx file")
        return load(path), path
    return load(model_or_path), None


def resolve_name(model, report, name: str) -> tuple[str, Optional[Any], str]:
    """(tensor name, producing node or None, how ``name`` was matched).

    Tries, in order: a tensor name, a node name (its first output), a graph
    input alias, a name of the original file, a unique case-insensitive
    match; raises SiraError with close matches otherwise."""
    from .model import input_aliases, original_names

    producers = {o: n for n in model.graph.node for o in n.output if o}
    nodes = {n.name: n for n in model.graph.node if n.name}

    def hit(tensor: str, via: str):
        return tensor, producers.get(tensor), via

    if name in report.ranges:
        return hit(name, "tensor")
    if name in nodes:
        node = nodes[name]
        out = next((o for o in node.output if o), None)
        if out is not None and out in report.ranges:
            return out, node, "node"
    aliases = input_aliases(model)
    if name in aliases and aliases[name] in report.ranges:
        return hit(aliases[name], "original input name")
    originals = original_names(model)
    if originals:
        mapped = originals.get(name)
        if mapped is not None:
            if mapped in report.ranges:
                return hit(mapped, "original tensor name")
            if mapped in nodes:
                out = next((o for o in nodes[mapped].output if o), None)
                if out in report.ranges:
                    return out, nodes[mapped], "original node name"
    candidates = list(dict.fromkeys(list(report.ranges) + list(nodes)))
    folded = [c for c in candidates if c.lower() == name.lower()]
    if len(folded) == 1:
        tensor, node, _ = resolve_name(model, report, folded[0])
        return tensor, node, "case-insensitive match"
    close = difflib.get_close_matches(name, list(dict.fromkeys(candidates + list(originals))), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise SiraError(
        f"no tensor or node named '{name}' in the model{hint} "
        "(list the tensor names with: sira analyze MODEL, constants too with --all)"
    )


# --------------------------------------------------------------------------
# the parts of an explanation
# --------------------------------------------------------------------------


def _producer_doc(report, tensor: str, node) -> dict:
    from .rules import RULES

    op = report.producers.get(tensor, "?")
    doc: dict[str, Any] = {"node": node.name if node is not None else None, "op": op}
    if op == "input":
        doc["source"] = "the input spec or the input's datatype annotation"
        return doc
    if op == "initializer":
        doc["source"] = "a constant of the model"
        return doc
    rule = RULES.get(op)
    if rule is None:
        doc["rule"] = None
        return doc
    summary = rule.doc.split("\n\n")[0]
    doc["rule"] = {"op_type": op, "exactness": rule.exactness, "summary": " ".join(summary.split())}
    if node is not None:
        doc["inputs"] = [i for i in node.input if i]
    return doc


def _tensor_entry(report, tensor: str) -> dict:
    from .report import summarize

    r = report[tensor]
    op = report.producers.get(tensor, "?")
    entry = {"op": op, "constant": r.is_const}
    entry.update(summarize(r, const_scalar=(op == "initializer")))
    vr = r.integer_values()
    entry["value_range"] = list(vr) if vr is not None else None
    return _plain(entry)


def _mac_doc(model, report, node, row: dict) -> dict:
    """The ``mac`` section: see the module docstring."""
    from transforms.widths import _channel_ranges, _weight_layout, range_width

    wi, W, axis = _weight_layout(node, report)
    x, y = report[row["input"]], report[row["output"]]
    xlo, xhi = x.int_bounds()
    uniform = bool(np.all(x.int_lo == xlo) and np.all(x.int_hi == xhi))
    ch_lo, ch_hi = _channel_ranges(y, axis)
    C = len(ch_lo)
    Wi = nx.as_int(W)
    zero = np.zeros((), dtype=Wi.dtype)
    pos = [int(v) for v in np.asarray(nx.int_sum(np.where(Wi > 0, Wi, zero), axis=0)).reshape(-1)]
    neg = [int(v) for v in np.asarray(nx.int_sum(np.where(Wi < 0, Wi, zero), axis=0)).reshape(-1)]
    sums = len(pos) == C
    channels = []
    for c in range(C):
        entry: dict[str, Any] = {"channel": c, "interval": [ch_lo[c], ch_hi[c]], "width": range_width(ch_lo[c], ch_hi[c])}
        if sums:
            p, n = pos[c], neg[c]
            entry.update(pos_sum=p, neg_sum=n, from_sums=[p * xlo + n * xhi, p * xhi + n * xlo])
        channels.append(entry)
    interval = [int(v) for v in row["sira_range"]]
    width = int(row["sira_width"])
    max_ch = int(np.argmax(np.asarray(ch_hi, dtype=object)))
    min_ch = int(np.argmin(np.asarray(ch_lo, dtype=object)))
    K, N, M, signed = int(row["K"]), int(row["N"]), int(row["M"]), bool(row["signed_input"])
    doc: dict[str, Any] = {
        "layer": row["layer"],
        "op": row["op"],
        "input": row["input"],
        "weight": row["weight"],
        "output": row["output"],
        "K": K,
        "input_interval": [xlo, xhi],
        "input_uniform": uniform,
        "input_dtype": row["input_dtype"],
        "input_dtype_source": row["input_dtype_source"],
        "weight_dtype": row["weight_dtype"],
        "channel_axis": axis,
        "channels": channels,
        "max_channel": max_ch,
        "min_channel": min_ch,
        "limiting_channel": int(row["limiting_channel"]),
        "interval": interval,
        "width": width,
        "dtype": row["sira_dtype"],
        "formula": width_formula(*interval),
        "tight_from_sums": bool(sums and all(ch["from_sums"] == ch["interval"] for ch in channels)),
        "factors": {"input_bits": N, "weight_bits": M, "log2_K": round(math.log2(K), 4), "signed_input": signed,
                    "sum": round(N + M + math.log2(K), 4)},  # fmt: skip
        "a2q": {"width": int(row["a2q_width"]), "dtype": row["a2q_dtype"], "formula": a2q_formula(K, N, M, signed, int(row["a2q_width"]))},
        "finn": {"range": [int(v) for v in row["finn_range"]], "width": int(row["finn_width"]), "dtype": row["finn_dtype"],
                 "formula": width_formula(*row["finn_range"])},  # fmt: skip
        "saved_vs_a2q": int(row["a2q_width"]) - width,
        "saved_vs_finn": int(row["finn_width"]) - width,
    }
    doc["what_if"] = {
        "input_one_bit_less": _what_if_narrower_input(model, report, node, wi, axis, row, width),
        "without_widest_channel": _what_if_without_channel(ch_lo, ch_hi, int(row["limiting_channel"]), width),
    }
    return doc


def _float_mac_reason(report, node) -> str:
    """Why a MatMul/Gemm/Conv has no integer accumulator in the analysis."""
    ins = [i for i in node.input[:2] if i]
    consts = [i for i in ins if report[i].is_const]
    dynamic = [i for i in ins if not report[i].is_const]
    if len(consts) != 1:
        return "it has no constant weight operand (sira sizes accumulators of MACs with constant integer weights)"
    w, x = report[consts[0]], report[dynamic[0]]
    if not (w.is_scaled_int and np.all(w.int_lo == w.int_hi)) or w.zero_bias_form() is None:
        return f"its weights '{consts[0]}' are not on an integer grid (no weight quantizer)"
    if not x.is_scaled_int:
        return f"its input '{dynamic[0]}' has no integer grid (no quantizer before it, or an input range without one)"
    y = report[node.output[0]]
    reason = "; ".join(dict.fromkeys(n for n in y.notes if "scale" in n or "grid" in n))
    return reason or "the input or weight scale varies along the dot product, so no common integer grid exists"


def _what_if_narrower_input(model, report, node, wi: int, axis, row: dict, width: int) -> dict:
    """The accumulator with the input one bit narrower: same scale, every
    input element clipped to the narrower type (what a narrower saturating
    quantizer gives), through the MAC's own range rule."""
    from transforms.widths import _channel_ranges, range_width

    from .analysis import default_opset
    from .range import ScaledIntRange
    from .rules import RULES, RuleContext

    narrower = _narrower_type(row["input_dtype"])
    if narrower is None:
        return {"applicable": False, "reason": f"the input datatype {row['input_dtype']} has one bit"}
    name, tlo, thi = narrower
    x = report[row["input"]]
    qlo = np.minimum(np.maximum(x.int_lo, tlo), thi)
    qhi = np.minimum(np.maximum(x.int_hi, tlo), thi)
    clipped = ScaledIntRange.scaled(x.shape, nx.as_int(qlo), nx.as_int(qhi), x.scale, x.bias, exact=x.exact)
    inputs = [report[i] if i else None for i in node.input]
    inputs[1 - wi] = clipped
    y = report[row["output"]]
    ctx = RuleContext(node=node, inputs=inputs, out_shapes=[y.shape], out_datatypes=[None], opset=default_opset(model))
    try:
        out = RULES[node.op_type].fn(ctx)[0]
    except SiraError as e:
        return {"applicable": False, "reason": str(e)}
    if not out.is_scaled_int:
        return {"applicable": False, "reason": "the MAC has no integer form with that input"}
    lo, hi = _channel_ranges(out, axis)
    interval = [min(lo), max(hi)]
    new = range_width(*interval)
    return {"applicable": True, "input_dtype": name, "input_clip": [tlo, thi], "interval": interval, "width": new, "delta": new - width,
            "formula": width_formula(*interval)}  # fmt: skip


def _what_if_without_channel(ch_lo: list, ch_hi: list, limiting: int, width: int) -> dict:
    from transforms.widths import limiting_channel, range_width

    if len(ch_lo) < 2:
        return {"applicable": False, "reason": "the layer has one output channel"}
    keep = [c for c in range(len(ch_lo)) if c != limiting]
    lo, hi = [ch_lo[c] for c in keep], [ch_hi[c] for c in keep]
    interval = [min(lo), max(hi)]
    new = range_width(*interval)
    return {"applicable": True, "removed_channel": limiting, "interval": interval, "width": new, "delta": new - width,
            "next_limiting_channel": keep[limiting_channel(lo, hi)], "formula": width_formula(*interval)}  # fmt: skip


# --------------------------------------------------------------------------
# thresholds
# --------------------------------------------------------------------------


def _dynamic_input(node, report) -> Optional[str]:
    for i in node.input:
        if i and i in report.ranges and not report[i].is_const:
            return i
    return None


def _chain_quantizer(model, report, tensor: str) -> Optional[Any]:
    """The quantizer that ends the elementwise chain ``tensor`` belongs to
    (itself a quantizer output, or reaching one through single-reader chain
    ops), when that quantizer quantizes run-time data; else None."""
    from transforms.thresholds import CHAIN_OPS, QUANTIZERS

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
    from .model import node_attr

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
        "output_dtype": _datatype(out),
    }
    return doc


def _num(v):
    f = float(v)
    return int(f) if f == int(f) and abs(f) < 2**53 else f


def _datatype(r) -> str:
    from .report import datatype_name

    return datatype_name(r)


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


def _model_threshold_doc(model, report, mt) -> dict:
    doc = _mt_doc(model, report, mt)
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


def _optimize_threshold_doc(model, report, quant, input_spec, samples: int, seed: int) -> dict:
    """The thresholds ``sira optimize`` makes of the chain ending in ``quant``."""
    import sira

    from .model import quiet

    try:
        with quiet():
            optimized, orep = sira.optimize(model, input_spec, samples=samples, seed=seed)
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
        oreport = sira.analyze(optimized, _optimized_spec(optimized, input_spec))
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
    return doc


# --------------------------------------------------------------------------
# fallback
# --------------------------------------------------------------------------


def _fallback_doc(report, tensor: str, node) -> dict:
    op = report.producers.get(tensor, "?")
    warning = next((w for w in report.fallbacks if node is not None and w.node == node.name), None)
    return {
        "node": node.name if node is not None else None,
        "op": op,
        "message": warning.message if warning else f"no range rule for {op}",
        "meaning": (
            f"sira has no range rule for {op}, so '{tensor}' gets the widest range that is still sound: its integer "
            "datatype annotation if it has one, else unbounded. Precision is lost until the next quantizer bounds the "
            "values again; tensors in between are marked fallback or loose, and MACs reading them may stay on floats. "
            f"A rule for {op} (sira/rules/, registered with @sira.rule) restores exact ranges."
        ),
    }


def loose_origins(model, report, tensor: str, limit: int = 5) -> list[dict]:
    """Where a range that is sound but not exact became so: walking upstream
    through inputs that are not exact, the tensors made by an op without a
    rule (``fallback``), by a rule that is only sound (``sound rule``), or
    by an exact rule whose inputs were all exact (``rule note``: the rule
    itself had to give up tightness, e.g. correlated operands)."""
    from .rules import EXACT, RULES

    producers = {o: n for n in model.graph.node for o in n.output if o}
    found, seen, todo = [], set(), [tensor]
    while todo and len(found) < limit:
        t = todo.pop(0)
        if t in seen or t not in report.ranges:
            continue
        seen.add(t)
        r = report[t]
        if r.exact:
            continue
        node = producers.get(t)
        if node is None:
            found.append({"tensor": t, "node": None, "op": report.producers.get(t, "input"), "why": "input range given as sound, not exact"})
            continue
        ins = [i for i in node.input if i and i in report.ranges and not report[i].is_const]
        loose_ins = [i for i in ins if not report[i].exact]
        rule = RULES.get(node.op_type)
        if r.fallback or rule is None:
            found.append({"tensor": t, "node": node.name, "op": node.op_type, "why": "fallback: no range rule"})
        elif rule.exactness != EXACT:
            found.append({"tensor": t, "node": node.name, "op": node.op_type, "why": "the rule is sound, not exact"})
        elif not loose_ins:
            if len(set(ins)) >= 2:
                why = ("two operands computed at run time: the bounds are exact for independent operands, but the "
                       "operands may be correlated (e.g. a residual join of two branches of one tensor)")  # fmt: skip
            else:
                why = "; ".join(dict.fromkeys(r.notes)) or "the rule could not keep the bounds tight"
            found.append({"tensor": t, "node": node.name, "op": node.op_type, "why": why})
        todo.extend(loose_ins)
    return found


# --------------------------------------------------------------------------
# the API
# --------------------------------------------------------------------------


def explain(model_or_path, name: str, input_spec=None, *, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> dict:
    """Why tensor or layer ``name`` of a model has its range and width.

    ``model_or_path`` is a QONNX file or a ModelWrapper; ``input_spec`` what
    :func:`sira.analyze` takes. ``samples`` and ``seed`` are passed to
    :func:`sira.optimize` when the answer needs the optimized model (a
    quantizer chain that becomes thresholds). Returns the JSON-able document
    described in the module docstring; raises SiraError for an unknown name.
    """
    from . import __version__
    from .analysis import analyze
    from transforms.widths import mac_width_report

    if samples < 1:
        raise SiraError(f"samples must be at least 1, got {samples}")
    model, path = _load(model_or_path)
    report = analyze(model, input_spec)
    tensor, node, via = resolve_name(model, report, name)
    r = report[tensor]
    doc: dict[str, Any] = {
        "sira_version": __version__,
        "model": path,
        "name": name,
        "resolved": {"tensor": tensor, "node": node.name if node is not None else None, "via": via},
        "kind": "tensor",
        "tensor": dict(_tensor_entry(report, tensor), name=tensor),
        "producer": _producer_doc(report, tensor, node),
        "notes": [],
    }
    op = node.op_type if node is not None else None
    if op in MAC_OPS:
        row = next((row for row in mac_width_report(report) if row["output"] == tensor), None)
        if row is not None:
            doc["kind"] = "mac"
            doc["mac"] = _plain(_mac_doc(model, report, node, row))
        else:
            doc["notes"].append(f"{node.name} computes on floats, so it has no accumulator width: {_float_mac_reason(report, node)}")
    elif op == "MultiThreshold":
        doc["kind"] = "thresholds"
        doc["thresholds"] = _plain(_model_threshold_doc(model, report, node))
        doc["notes"].append("the chain a MultiThreshold replaced is not recorded in an optimized model; explain the quantizer in the original model to see it")
    elif r.fallback:
        doc["kind"] = "fallback"
        doc["fallback"] = _fallback_doc(report, tensor, node)
    else:
        quant = _chain_quantizer(model, report, tensor)
        if quant is not None:
            th = _optimize_threshold_doc(model, report, quant, input_spec, samples, seed)
            if th.get("converted") and any(c["output"] == tensor for c in th["chain"]):
                doc["kind"] = "thresholds"
                doc["thresholds"] = _plain(th)
            elif not th.get("converted"):
                doc["notes"].append(f"quantizer {quant.name} does not become thresholds: {th['reason']}")
            else:
                doc["notes"].append(f"quantizer {quant.name} becomes thresholds on '{th['reads']['tensor']}', after this tensor")
    if not r.exact and doc["kind"] != "fallback":
        doc["loose_because"] = loose_origins(model, report, tensor)
    if r.notes:
        doc["tensor"].setdefault("notes", list(dict.fromkeys(r.notes)))
    return doc


# --------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------

#: width of the label column of the text
LABEL = 27


def _kv(label: str, text: str, indent: str = "  ") -> str:
    return f"{indent}{label.ljust(LABEL)}{text}" if len(label) < LABEL else f"{indent}{label}  {text}"


def _range_lines(t: dict) -> list[str]:
    from .report import _hull_text, _param_text

    per = "" if t["granularity"] == "tensor" else (" per channel" if t["granularity"] == "channel" else " per element")
    status = "fallback (op without a rule)" if t["fallback"] else ("exact (bounds attained)" if t["exact"] else "sound (bounds may be loose)")
    out = [_kv("range", f"{_hull_text(t['min'], t['max'])}{per}, {status}")]
    if t["scaled_int"]:
        out.append(_kv("integers", f"{_hull_text(t['int_min'], t['int_max'])}, scale {_param_text(t['scale'])}, bias {_param_text(t['bias'])}"))
    else:
        out.append(_kv("integers", "none (no integer grid)"))
    out.append(_kv("datatype", t["datatype"]))
    return out


def _producer_line(p: dict) -> str:
    if p["op"] in ("input", "initializer"):
        return f"{p['op']} ({p['source']})"
    rule = p.get("rule")
    head = f"{p['node']} ({p['op']})"
    if rule is None:
        return f"{head}, no range rule"
    return f"{head}, rule {rule['exactness']}: {rule['summary']}"


def _channel_rows(m: dict) -> tuple[list[str], list[list[str]], tuple, list[int]]:
    chans = m["channels"]
    keep = {m["max_channel"], m["min_channel"], m["limiting_channel"]}
    order = sorted(range(len(chans)), key=lambda c: (-chans[c]["width"], -max(-chans[c]["interval"][0], chans[c]["interval"][1] + 1), c))
    for c in order:
        if len(keep) >= TEXT_CHANNELS:
            break
        keep.add(c)
    shown = sorted(keep) if len(chans) > TEXT_CHANNELS else list(range(len(chans)))
    has_sums = bool(chans) and "pos_sum" in chans[0]
    differs = has_sums and not m["tight_from_sums"]
    headers = ["channel"] + (["P", "N"] if has_sums else []) + (["bound from P, N"] if differs else []) + ["accumulator", "bits", ""]
    rows = []
    for c in shown:
        ch = chans[c]
        tags = [label for label, k in (("sets max", "max_channel"), ("sets min", "min_channel"), ("sets width", "limiting_channel")) if m[k] == c]
        row = [str(c)] + ([str(ch["pos_sum"]), str(ch["neg_sum"])] if has_sums else [])
        row += [f"[{ch['from_sums'][0]}, {ch['from_sums'][1]}]"] if differs else []
        row += [f"[{ch['interval'][0]}, {ch['interval'][1]}]", str(ch["width"]), ", ".join(tags)]
        rows.append(row)
    right = (0, 1, 2, len(headers) - 2) if has_sums else (0, len(headers) - 2)
    return headers, rows, right, shown


def _short(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _mac_text(m: dict) -> list[str]:
    from .report import format_table

    lo, hi = m["input_interval"]
    chans = m["channels"]
    out = ["", f"why {m['dtype']}: {m['op']} layer {m['layer']} accumulates {m['K']} products per output"]
    out.append(_kv("K", f"{m['K']} terms per dot product"))
    spread = "for every term" if m["input_uniform"] else "hull; the bounds vary per input element"
    out.append(_kv("input integers", f"[{lo}, {hi}] {spread} ({m['input']}, datatype {m['input_dtype']} from {m['input_dtype_source']})"))
    out.append(_kv("weights", f"{m['weight_dtype']} integers ({m['weight']})"))
    has_sums = bool(chans) and "pos_sum" in chans[0]
    if has_sums:
        out.append(_kv("per output channel", "P = sum of positive weights, N = sum of negative weights,"))
        out.append(_kv("", f"accumulator [P*{lo} + N*{hi}, P*{hi} + N*{lo}]" + ("" if m["tight_from_sums"] else " or narrower (proven)")))
    headers, rows, right, shown = _channel_rows(m)
    out += ["    " + line for line in format_table(headers, rows, right=right).splitlines()]
    if len(shown) < len(chans):
        out.append(f"    ({len(chans) - len(shown)} more channels; --format json lists all {len(chans)})")
    if has_sums and not m["tight_from_sums"]:
        out.append("    the proven intervals are narrower than the P, N bound: the input's bounds vary per element "
                   "(per-channel input ranges, zero padding), so not every term reaches its extreme")  # fmt: skip
    a, b = m["interval"]
    out.append(_kv("layer accumulator", f"[{a}, {b}]: the maximum from channel {m['max_channel']}, the minimum from channel {m['min_channel']}"))
    out.append(_kv("width", m["formula"]))
    f = m["factors"]
    out += ["", "against bounds that know less:"]
    out.append(_kv("bits per factor", f"input {f['input_bits']} + weights {f['weight_bits']} + log2 K {_short(f['log2_K'])} = {_short(f['sum'])}"))
    out.append(_kv("A2Q datatype bound", f"{m['a2q']['dtype']}: {m['a2q']['formula']}"))
    out.append(_kv("FINN weight-aware", f"{m['finn']['dtype']} (inputs anywhere in {m['input_dtype']}): {m['finn']['formula']}"))
    out.append(_kv("sira (proven)", f"{m['dtype']}: {m['saved_vs_a2q']} bit(s) fewer than A2Q, {m['saved_vs_finn']} fewer than FINN"))
    out += ["", "what if (computed exactly):"]
    w1 = m["what_if"]["input_one_bit_less"]
    if w1["applicable"]:
        c0, c1 = w1["input_clip"]
        out.append(_kv("input one bit narrower", f"{w1['input_dtype']} (inputs clipped to [{c0}, {c1}]): accumulator "
                       f"[{w1['interval'][0]}, {w1['interval'][1]}], {w1['width']} bits ({w1['delta']:+d})"))  # fmt: skip
    else:
        out.append(_kv("input one bit narrower", f"not applicable: {w1['reason']}"))
    w2 = m["what_if"]["without_widest_channel"]
    if w2["applicable"]:
        out.append(_kv(f"without channel {w2['removed_channel']}", f"accumulator [{w2['interval'][0]}, {w2['interval'][1]}], "
                       f"{w2['width']} bits ({w2['delta']:+d}); channel {w2['next_limiting_channel']} then sets the width"))  # fmt: skip
    else:
        out.append(_kv("without the widest channel", f"not applicable: {w2['reason']}"))
    return out


def _thresholds_text(t: dict) -> list[str]:
    out = [""]
    if t.get("source") == "optimize":
        out.append(f"thresholds: sira optimize replaces quantizer {t['quantizer']} and the chain before it by "
                   f"{t.get('node') or 'a MultiThreshold'}")  # fmt: skip
        out.append(_kv("chain replaced", " -> ".join(f"{c['node']} ({c['op']})" for c in t["chain"])))
        out.append(_kv("as lowered", " -> ".join(t["lowered_chain"])))
    else:
        out.append(f"thresholds: MultiThreshold {t['node']}")
    rd = t.get("reads", {})
    what = f"{rd.get('tensor')}" + (f", output of {rd['node']} ({rd['op']})" if rd.get("node") else " (graph input)")
    if rd.get("via"):
        what += f" through {', '.join(rd['via'])}"
    if rd.get("integer_range") is not None:
        what += f"; integers [{rd['integer_range'][0]}, {rd['integer_range'][1]}]" + (f" ({rd['dtype']})" if rd.get("dtype") else "")
    out.append(_kv("reads", what))
    if "thresholds_per_channel" in t:
        act = t["active_per_channel"]
        rows = "one row per channel" if t["rows"] == t["channels"] and t["rows"] > 1 else "one row shared by all channels" if t["rows"] == 1 else f"{t['rows']} rows"
        out.append(_kv("thresholds", f"{t['thresholds_per_channel']} per channel x {t['channels']} channels ({rows})"))
        out.append(_kv("within the input's range", f"{min(act)}..{max(act)} per channel (the others are always or never reached)"))
        out.append(_kv("output", f"{t['out_dtype']}: value = {t['out_scale']:g} * (thresholds reached) + {t['out_bias']:g}"))
    if t.get("negated_channels"):
        out.append(_kv("decreasing channels", f"{', '.join(str(c) for c in t['negated_channels'])} (compared on the negated input)"))
    if t.get("stuck_channels"):
        out.append(_kv("constant channels", ", ".join(str(c) for c in t["stuck_channels"])))
    if t.get("verified"):
        out.append(_kv("checked", t["verified"]))
    return out


def explain_text(doc: dict) -> str:
    """People's view of an :func:`explain` document."""
    t = doc["tensor"]
    res = doc["resolved"]
    prod = doc["producer"]
    if doc["kind"] == "mac":
        title = f"accumulator of {doc['mac']['layer']} ({doc['mac']['op']})"
    elif doc["kind"] == "thresholds":
        th = doc["thresholds"]
        title = f"thresholds of {th['node']}" if th.get("source") == "model" else f"becomes thresholds (quantizer {th['quantizer']})"
    elif doc["kind"] == "fallback":
        title = f"range from a fallback: {prod['op']} has no rule"
    else:
        title = "input" if prod["op"] == "input" else "constant" if prod["op"] == "initializer" else f"output of {prod['node']} ({prod['op']})"
    out = [f"{res['tensor']}: {title}"]
    if doc["name"] != res["tensor"]:
        out.append(_kv("asked for", f"{doc['name']} ({res['via']})"))
    out.append(_kv("shape", "x".join(str(d) for d in t["shape"]) or "scalar"))
    out += _range_lines(t)
    out.append(_kv("produced by", _producer_line(prod)))
    if doc["kind"] == "mac":
        out += _mac_text(doc["mac"])
    elif doc["kind"] == "thresholds":
        out += _thresholds_text(doc["thresholds"])
    elif doc["kind"] == "fallback":
        f = doc["fallback"]
        out += ["", f"fallback: {f['node']} ({f['op']}) has no range rule", _kv("warning", f["message"]), _kv("what it means", f["meaning"])]
    if doc.get("loose_because"):
        out.append("")
        out.append("not exact because (upstream, nearest first):")
        for o in doc["loose_because"]:
            where = f"{o['node']} ({o['op']})" if o["node"] else o["op"]
            out.append(_kv(o["tensor"], f"{where}: {o['why']}"))
    notes = list(dict.fromkeys(t.get("notes", []) + doc["notes"]))
    if notes:
        out.append("")
        out += [f"note: {n}" for n in notes]
    return "\n".join(out)


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------

EPILOG = """\
examples:
  sira explain mlp.onnx MatMul_0 --input-spec spec.json          (a MAC layer: why its accumulator width)
  sira explain mlp.onnx Quant_4_out0 --input-spec spec.json      (a quantizer that becomes thresholds)
  sira explain mlp.onnx fc0_acc --input-spec spec.json           (names of the original file work too)
  sira explain mlp_sira.onnx MultiThreshold_1                    (a threshold layer of an optimized model)
  sira explain mlp.onnx MatMul_0 --input-range 0,1 --format json -o why.json

Names are those of sira analyze MODEL (tensors) and of the prepared model's
nodes (MatMul_0, Quant_4, ...), or the original file's names.
"""


def add_parser(sub, common) -> None:
    """Register ``sira explain`` on an argparse subparsers object."""
    import argparse

    from .cli import _add_input_options, _add_model

    p = sub.add_parser(
        "explain",
        parents=[common],
        help="why a tensor or layer has its range and width",
        description="Explain one tensor or layer: for a MAC layer the numbers behind its accumulator width (K, input "
        "interval, per-channel weight sums, the channels that set the range, A2Q and FINN widths, exact what-ifs); for "
        "a threshold layer the chain it replaces and its thresholds per channel; for a fallback range the op without a "
        "rule; for any other tensor its range, grid and the rule that computed it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_model(p)
    p.add_argument("name", metavar="NAME", help="tensor or node name (as listed by sira analyze MODEL), or an original name of the file")
    _add_input_options(p)
    p.add_argument("--format", choices=("text", "json"), default="text", help="text for people (default), json for tools")
    p.add_argument("-o", "--output", metavar="FILE", help="write the result to FILE (atomically) instead of standard output")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
                   help=f"random inputs for the final check when sira optimize runs (threshold layers; default {DEFAULT_SAMPLES})")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args) -> int:
    from .cli import EXIT_OK, _check_model_path, _emit, _input_spec

    if args.samples < 1:
        raise SiraError(f"--samples must be at least 1, got {args.samples}")
    _check_model_path(args.model)
    doc = explain(args.model, args.name, _input_spec(args), samples=args.samples)
    _emit(args, json.dumps(doc, indent=2) if args.format == "json" else explain_text(doc))
    return EXIT_OK


__all__ = ["explain", "explain_text", "add_parser", "cmd_explain", "resolve_name", "width_formula"]
