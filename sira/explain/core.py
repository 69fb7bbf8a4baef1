"""The explanation of one tensor or layer: :func:`explain` resolves the
name, analyzes the model and assembles the document (see :mod:`sira.explain`)
from the MAC (:mod:`.mac`) and threshold (:mod:`.thresholds`) sections, or
the fallback and the origins of a loose range, which live here.
"""

from __future__ import annotations

import difflib
import json
import os
from typing import Any, Optional

import numpy as np

from ..errors import SiraError
from ..version import __version__
from . import DEFAULT_SAMPLES
from .mac import MAC_OPS, float_mac_reason, mac_doc
from .thresholds import chain_quantizer, model_threshold_doc, optimize_threshold_doc


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def _plain(value):
    """A JSON-able copy (numpy scalars and arrays to Python)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if isinstance(v, np.generic) else v.tolist() if isinstance(v, np.ndarray) else str(v)))


# --------------------------------------------------------------------------
# loading and names
# --------------------------------------------------------------------------


def _load(model_or_path):
    """(prepared model, path or None)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from ..model import load

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
    from ..model import input_aliases, original_names

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
    from ..rules import RULES

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
    from ..report import summarize

    r = report[tensor]
    op = report.producers.get(tensor, "?")
    entry = {"op": op, "constant": r.is_const}
    entry.update(summarize(r, const_scalar=(op == "initializer")))
    vr = r.integer_values()
    entry["value_range"] = list(vr) if vr is not None else None
    return _plain(entry)


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
    from ..rules import EXACT, RULES

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
    from ..analysis import analyze
    from sira.transforms.widths import mac_width_report

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
            doc["mac"] = _plain(mac_doc(model, report, node, row))
        elif op == "ConvTranspose" and report[tensor].is_scaled_int:
            doc["notes"].append(f"{node.name} is a ConvTranspose: the width report does not size its accumulator "
                                "(its dot products are not laid out per output channel)")  # fmt: skip
        else:
            doc["notes"].append(f"{node.name} computes on floats, so it has no accumulator width: {float_mac_reason(report, node)}")
    elif op == "MultiThreshold":
        doc["kind"] = "thresholds"
        doc["thresholds"] = _plain(model_threshold_doc(model, report, node))
        doc["notes"].append("the chain a MultiThreshold replaced is not recorded in an optimized model; explain the quantizer in the original model to see it")
    elif r.fallback:
        doc["kind"] = "fallback"
        doc["fallback"] = _fallback_doc(report, tensor, node)
    else:
        quant = chain_quantizer(model, report, tensor)
        if quant is not None:
            th = optimize_threshold_doc(model, report, quant, input_spec, samples, seed)
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


__all__ = ["explain", "resolve_name", "loose_origins"]
