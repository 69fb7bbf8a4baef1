"""Resource and performance estimate of a model's dataflow, SIRA versus a FINN baseline.

:func:`estimate` optimizes a model (:func:`sira.optimize`), lowers it to
hardware layers (:func:`sira.transforms.to_hw.lower_to_hw`), folds them, lints
them, and costs every layer with :mod:`sira.cost` (``mode`` ``"refined"`` or
``"finn"``). The result uses FINN's report vocabulary
(``estimate_layer_resources.json``: per node ``LUT``, ``DSP``, ``BRAM_18K``,
``URAM`` plus ``total``; ``estimate_network_performance.json``:
``max_cycles``, ``max_cycles_node_name``, ``estimated_throughput_fps``).

Costing (:func:`sira.layer_costs.layer_cost`) dispatches each hardware
kind to its cost function with the layer's widths and folding. Every multiply gets an explicit
DSP-or-LUT binding (:class:`sira.cost.Multiply`); :func:`multiply_bindings`
and the ``multiplies`` entry of every layer in the JSON carry it, so the HLS
backend binds each multiply the way it was costed. A cost the model has no
formula for is ``"unknown"`` in the JSON, never 0; totals add the known
values and count the layers with an unknown part (``unknown_layers``).

The FINN baseline (:func:`sira.baseline.baseline_layers`) is the dataflow
FINN 1.6.1 builds from the same model, costed by the same formulas; a step
SIRA runs on the host (``"host": true``) is costed in the baseline as what
FINN builds for it. :func:`estimate_table` (:mod:`sira.estimate_table`)
renders a document as text.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Optional, Sequence

from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

from sira.transforms.pipeline import optimize
from sira.transforms.to_hw import lower_to_hw
from sira.transforms.widths import ACC_DTYPE_KEY, mac_width_report

from . import cost as C
from . import folding as F
from . import hw
from . import lint as L
from .accumulation import accumulation
from .analysis import analyze
from .baseline import baseline_layers
from .devices import DEFAULT_PART, get_part
from .errors import SiraError
from .estimate_table import estimate_table
from .finn_hw import NODE_COSTED, PLUMBING, POOL_FUNCTIONS, finn_layers, has_finn_hw
from .hls.dataflow import plan
from .hls.kernels import Duplicate, WidthConverter
from .implementation import choose_implementations
from .layer_costs import LAYER_COSTS, costs, layer_cost, multiply_bindings
from .model import load

#: FINN's key names, in FINN's order
RESOURCE_KEYS = ("BRAM_18K", "LUT", "URAM", "DSP")


def _amount(v) -> Any:
    return "unknown" if v is C.UNKNOWN else int(v)


def _acc_bits(layer: hw.HWLayer) -> Optional[int]:
    """Accumulator width of a layer that has one (MACs, pooling sums): the
    register the hardware adds into, the popcount of an XNOR layer sira
    lowered (whose ``acc_type`` is the +-1 sum the thresholds compare; a
    node read from FINN's graph states its popcount type itself)."""
    acc = getattr(layer, "acc_type", None)
    if acc is None:
        return None
    popcount = getattr(layer, "xnor", False) and layer.input_bounds is not None
    return accumulation(layer).acc_bits if popcount else acc.bits


def _accumulation_json(layer: hw.HWLayer) -> Optional[dict]:
    """The proven stages of a MAC layer with proven input bounds
    (:mod:`sira.accumulation`): the adder tree's partial sum (range, width,
    per level, per channel) and the fold accumulator (range, width, per
    channel); the A2Q bound and FINN's width are added from the width
    report (:func:`add_width_bounds`)."""
    if getattr(layer, "input_bounds", None) is None:
        return None
    a = accumulation(layer)
    if a is None:
        return None
    return {
        "accumulator": "popcount" if a.popcount else "sum",
        "term_bits": a.term_bits,
        "tree_range": list(a.partial_range),
        "tree_bits": a.partial_bits,
        "tree_level_bits": list(a.tree_level_bits),
        "tree_channel_bits": a.partial_channel_bits,
        "acc_range": list(a.acc_range),
        "acc_bits": a.acc_bits,
        "acc_channel_bits": a.acc_channel_bits,
    }


def add_width_bounds(docs: dict, report_layers: Sequence[dict]) -> None:
    """Beside each MAC layer's proven stages, the A2Q data-type bound and
    FINN's weight-aware width of its accumulator, from the width report of
    the same model (:func:`sira.transforms.widths.mac_width_report`)."""
    for row in report_layers:
        entry = docs.get(row["layer"], {}).get("accumulation")
        if entry is not None:
            entry.update(a2q_bits=int(row["a2q_width"]), finn_bits=int(row["finn_width"]))


def _layer_json(layer: hw.HWLayer, c: C.Cost, host: bool = False) -> dict:
    d: dict[str, Any] = {"op_type": layer.kind if not isinstance(layer, hw.Elementwise) else f"Elementwise{layer.op}"}
    for k, v in c.finn_dict().items():
        d[k] = _amount(v)
    d["cycles"] = 0 if host else int(layer.cycles)
    d["acc_bits"] = _acc_bits(layer)
    stages = None if host else _accumulation_json(layer)
    if stages is not None:
        d["accumulation"] = stages
    d["PE"], d["SIMD"] = int(layer.pe), int(layer.simd)
    d["multiplies"] = [
        {"name": m.name, "w_bits": m.w_bits, "a_bits": m.a_bits, "impl": m.impl, "LUT": m.lut, "DSP": m.dsp, "count": m.count, "reason": m.reason}
        for m in c.multiplies
    ]
    if c.note:
        d["note"] = c.note
    if c.free:
        d["free"] = True
    if host:
        d["host"] = True
    return d


def _totals(layer_docs: dict) -> dict:
    total: dict[str, Any] = {}
    unknown: dict[str, int] = {}
    for k in RESOURCE_KEYS:
        vals = [d[k] for d in layer_docs.values()]
        total[k] = sum(v for v in vals if v != "unknown")
        unknown[k] = sum(1 for v in vals if v == "unknown")
    # accumulators built in the accelerator (a float MAC on the host has none)
    accs = [d["acc_bits"] for d in layer_docs.values() if d["acc_bits"] is not None and d["op_type"] in ("MVAU", "VVAU") and not d.get("host")]
    total["acc_bits"] = round(sum(accs) / len(accs), 3) if accs else None
    total["acc_bits_sum"] = sum(accs)
    total["cycles"] = max((d["cycles"] for d in layer_docs.values()), default=0)
    total["unknown_layers"] = unknown
    total["complete"] = not any(unknown.values())
    # the stream plumbing's share (FIFOs, width converters, stream copies):
    # FINN's estimate report, written before FIFO insertion, leaves it out
    total["plumbing"] = {k: sum(d[k] for d in layer_docs.values() if d.get("plumbing") and d[k] != "unknown") for k in RESOURCE_KEYS}
    return total


def _pct(new, old) -> Optional[float]:
    if new is None or old is None or old == 0:
        return None
    return round(100.0 * (new - old) / old, 2)


def plumbing_docs(layers: Sequence[hw.HWLayer], graph_outputs: Sequence[str], mode: str, notes: list) -> dict:
    """Per-stage JSON of what the dataflow adds between the layers, as the
    HLS backend builds it (:func:`sira.hls.dataflow.plan`): a stream copy
    for each tensor read by several layers (``DuplicateStreams``), a width
    converter where a reader folds a stream otherwise than its producer
    (``StreamingDataWidthConverter``), and a FIFO per stream
    (``StreamingFIFO``, its depth and word width). The same plumbing serves
    both flows, so it is added to the SIRA and the baseline columns alike."""
    try:
        df = plan(list(layers), graph_outputs)
    except SiraError as e:
        notes.append(f"stream plumbing not estimated: {e}")
        return {}
    docs: dict = {}

    def entry(kind: str, c: C.Cost, cycles: int = 0) -> dict:
        d: dict[str, Any] = {"op_type": kind, **{k: _amount(v) for k, v in c.finn_dict().items()}, "cycles": cycles,
                             "acc_bits": None, "PE": 1, "SIMD": 1, "multiplies": [], "plumbing": True}  # fmt: skip
        if c.free:
            d["free"] = True
        return d

    for stage in df.stages:
        node = stage.node
        if isinstance(node, Duplicate):
            docs[stage.id] = entry("DuplicateStreams", C.duplicate_streams(mode=mode), node.elements // node.lanes)
        elif isinstance(node, WidthConverter):
            c = C.dwc(in_width=node.in_lanes * node.type.bits, out_width=node.out_lanes * node.type.bits, mode=mode)
            docs[stage.id] = entry("StreamingDataWidthConverter", c, node.elements // min(node.in_lanes, node.out_lanes))
    for s in df.streams.values():
        docs[f"fifo_{s.id}"] = entry("StreamingFIFO", C.fifo(depth=s.depth, width=s.word_bits, mode=mode))
    return docs


def host_cost(layer: hw.HWLayer, mode: str) -> C.Cost:
    """A float layer before or after the integer dataflow runs on the host
    CPU, as in a FINN partition (see :func:`sira.hw.host_partition`)."""
    return C.Cost(layer.kind, mode, 0, 0, 0, 0, {"host": 0}, note="float, outside the integer dataflow: runs on the host CPU", free=True)


def _host_names(layers: Sequence[hw.HWLayer], host: Optional[frozenset]) -> set:
    """The layers that run on the host: ``host`` when given (the baseline
    names what FINN leaves outside its dataflow), else the float head and
    tail of the model (:func:`sira.hw.host_partition`)."""
    if host is not None:
        return set(host)
    head, _, tail = hw.host_partition(list(layers))
    return {layer.name for layer in head + tail}


def cost_layers(layers: Sequence[hw.HWLayer], part=DEFAULT_PART, mode: str = "refined",
                host: Optional[frozenset] = None) -> tuple[dict, dict[str, C.Cost]]:
    """(per-layer JSON with totals-ready entries, per-layer Cost) in dataflow
    order; host layers (see :func:`_host_names`) cost no FPGA resources."""
    on_host = _host_names(layers, host)
    docs, costs = {}, {}
    for layer in layers:
        c = host_cost(layer, mode) if layer.name in on_host else layer_cost(layer, part, mode)
        costs[layer.name] = c
        docs[layer.name] = _layer_json(layer, c, host=layer.name in on_host)
    return docs, costs


def _performance(layers: Sequence[hw.HWLayer], clock_ns: float, host: Optional[frozenset] = None) -> dict:
    """Bottleneck and throughput of the FPGA part (host layers excluded)."""
    on_host = _host_names(layers, host)
    body = [layer for layer in layers if layer.name not in on_host]
    if not body:
        return {"max_cycles": 0, "max_cycles_node_name": None, "estimated_throughput_fps": None, "clock_ns": clock_ns}
    name, cycles = F.bottleneck(body)
    fps = F.throughput_fps(body, clock_ns)
    if fps is not None and not math.isfinite(fps):
        fps = None
    return {
        "max_cycles": int(cycles),
        "max_cycles_node_name": name,
        "estimated_throughput_fps": None if fps is None else round(float(fps), 3),
        "clock_ns": clock_ns,
    }


def _fold(layers: list, target_fps, folding, clock_ns: float) -> list:
    if target_fps is not None and folding is not None:
        raise SiraError("give either a target fps or a folding file, not both")
    if target_fps is None and folding is None:
        return list(layers)
    if target_fps is not None:
        if not target_fps or target_fps <= 0:
            raise SiraError(f"target fps must be positive, got {target_fps}")
        return list(F.fold_for_target_fps(layers, target_fps, clock_ns))
    return list(F.apply_folding_file(layers, folding))


def _lint(layers, part, costs=None) -> list:
    issues = L.lint(layers, part, costs=costs)
    L.raise_on_errors(issues)
    return [str(i) for i in issues]


def prepare(model_or_path, input_spec=None, *, samples: int = 100, seed: int = 0, progress=None, time_budget=None):
    """(optimized model, report layers list, hw layers, graph input names).

    An already optimized model (metadata ``sira_acc_dtype``) is not
    optimized again; its FINN widths come from analysing it."""
    model = model_or_path
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        if not os.path.exists(model):
            raise SiraError(f"model file '{model}' not found; give the path to a QONNX .onnx file")
        model = load(model)
    if model.get_metadata_prop(ACC_DTYPE_KEY):
        optimized = model
        lowered_spec = input_spec
        report_layers = mac_width_report(analyze(optimized, lowered_spec))
    else:
        optimized, rep = optimize(model, input_spec, samples=samples, seed=seed, progress=progress, time_budget=time_budget)
        report_layers = rep.layers
        lowered_spec = None
    if lowered_spec is None:
        ints = [optimized.get_tensor_datatype(i.name) for i in optimized.graph.input]
        if not all(dt is not None and dt.is_integer() for dt in ints):
            lowered_spec = input_spec
    layers = lower_to_hw(optimized, lowered_spec)
    return optimized, report_layers, layers, {i.name for i in optimized.graph.input}


def estimate(model_or_path, input_spec=None, part: str = DEFAULT_PART, clock_ns: float = 10.0, mode: str = "refined",
             target_fps: Optional[float] = None, folding=None, *, samples: int = 100, seed: int = 0, progress=None,
             time_budget: Optional[float] = None, impl: str = "auto") -> dict:
    """Resource and throughput estimate of ``model_or_path`` (a QONNX model,
    optimized first unless it already is), SIRA versus the FINN baseline.

    Folding: PE = SIMD = 1 by default, or ``target_fps`` (at ``clock_ns``),
    or ``folding`` (a FINN-style folding file path or dict). Lint errors raise
    :class:`SiraError`. Returns FINN-vocabulary JSON: ``layers`` (per node
    ``op_type, LUT, DSP, BRAM_18K, URAM, cycles, acc_bits, PE, SIMD,
    multiplies``; a MAC layer with proven input bounds also
    ``accumulation``: its adder tree's and fold accumulator's proven widths
    beside the A2Q bound and FINN's width), ``total``, ``baseline`` (``layers``, ``total``), ``delta``
    (SIRA vs baseline, % of the baseline) and ``performance``. ``progress``
    is called with each step's name (the optimize passes, then
    ``estimate``); ``time_budget`` limits the optimize passes (seconds).
    ``impl`` builds every requantizer as ``thresholds``, ``integer`` or
    the cheaper of the two (``auto``, :mod:`sira.implementation`); each
    layer's choice and its candidates are its ``impl`` entry."""
    t0 = time.perf_counter()
    C.check_mode(mode)
    p = get_part(part)
    if not (isinstance(clock_ns, (int, float)) and clock_ns > 0):
        raise SiraError(f"clock period must be positive, got {clock_ns} ns")
    finn_graph = _finn_graph(model_or_path)
    if finn_graph is not None:
        if target_fps is not None or folding is not None:
            raise SiraError("a FINN hardware graph carries its own folding (FINN's PE/SIMD attributes); give no target fps or folding file")
        doc = estimate_finn_graph(finn_graph, input_spec, p, clock_ns, mode)
        doc["seconds"] = round(time.perf_counter() - t0, 3)
        return doc
    prepared = prepare(model_or_path, input_spec, samples=samples, seed=seed, progress=progress, time_budget=time_budget)
    if progress:
        progress("estimate")
    doc, _, _ = estimate_prepared(prepared, p, clock_ns, mode, target_fps, folding, impl)
    doc["seconds"] = round(time.perf_counter() - t0, 3)
    return doc


def _finn_graph(model_or_path):
    """The model as FINN built it when it holds FINN hardware nodes (read
    as it is: sira's preparation would need FINN's ops), else None."""
    if isinstance(model_or_path, ModelWrapper):
        return model_or_path if has_finn_hw(model_or_path) else None
    if isinstance(model_or_path, (str, bytes)) or hasattr(model_or_path, "__fspath__"):
        if not os.path.exists(model_or_path):
            raise SiraError(f"model file '{model_or_path}' not found; give the path to a QONNX .onnx file")
        try:
            model = ModelWrapper(os.fspath(model_or_path))
        except Exception:  # not a readable ONNX file: load() reports it
            return None
        return model if has_finn_hw(model) else None
    return None


def _finn_node_doc(node, kind: str, mode: str) -> dict:
    """Cost of a FINN node that is no sira layer: stream plumbing from its
    widths, FINN's window reduction (``Pool``) from its window, lanes and
    input width, any other (elementwise, softmax, label selection) unknown."""
    attrs = {a.name: a for a in node.attribute}
    if kind == "Pool":
        function = attrs["Function"].s.decode()
        if function not in POOL_FUNCTIONS:
            raise SiraError(f"node '{node.name}' ({node.op_type}): pooling function '{function}' is not one sira costs ({', '.join(POOL_FUNCTIONS)})")
        c = C.pool(function=POOL_FUNCTIONS[function], window=math.prod(attrs["KernelSize"].ints), pe=int(attrs["PE"].i),
                   a_bits=DataType[attrs["InputDataType"].s.decode()].bitwidth(), mode=mode)  # fmt: skip
    elif kind == "StreamingDataWidthConverter":
        c = C.dwc(in_width=int(attrs["inWidth"].i), out_width=int(attrs["outWidth"].i), mode=mode)
    elif kind == "StreamingFIFO":
        folded = list(attrs["folded_shape"].ints)
        width = DataType[attrs["dataType"].s.decode()].bitwidth() * int(folded[-1])
        c = C.fifo(depth=int(attrs["depth"].i), width=width, mode=mode)
    else:
        c = C.Cost(node.op_type, mode, C.UNKNOWN, C.UNKNOWN, C.UNKNOWN, C.UNKNOWN, note=f"{node.op_type}: sira has no cost formula for it")
    d = {"op_type": node.op_type, **{k: _amount(v) for k, v in c.finn_dict().items()}, "cycles": 0, "acc_bits": None, "PE": 1, "SIMD": 1,
         "multiplies": [], "plumbing": kind in PLUMBING}  # fmt: skip
    if c.note:
        d["note"] = c.note
    return d


def estimate_finn_graph(model, input_spec, part, clock_ns: float = 10.0, mode: str = "refined") -> dict:
    """The estimate of a graph FINN converted to hardware (``MVAU_hls``,
    ``Thresholding_rtl``, ...): every node read with FINN's own folding and
    datatypes (:func:`sira.finn_hw.finn_layers`) and costed with sira's
    formulas of ``mode``. The graph is what FINN builds, so it is its own
    baseline (``baseline`` repeats it, ``delta`` is 0)."""
    p = part if isinstance(part, C.Part) else get_part(part)
    layers, others = finn_layers(model, input_spec)
    docs, costs = cost_layers(layers, p, mode)
    for node, kind in others:
        docs[node.name] = _finn_node_doc(node, kind, mode)
    order = {n.name: i for i, n in enumerate(model.graph.node)}
    docs = dict(sorted(docs.items(), key=lambda kv: order.get(kv[0], len(order))))
    total = _totals(docs)
    performance = _performance(layers, clock_ns)
    return {
        "part": p.name,
        "clock_ns": clock_ns,
        "mode": mode,
        "source": "FINN hardware graph",
        "layers": docs,
        "total": total,
        "baseline": {"layers": docs, "total": total, "performance": performance},
        "delta": {k: 0.0 for k in RESOURCE_KEYS + ("acc_bits",)},
        "performance": performance,
        "lint": _lint(layers, p, costs if mode == "refined" else None),
        "notes": [f"{n.name} ({n.op_type}): cost unknown" for n, kind in others if kind not in NODE_COSTED],
    }


def estimate_prepared(prepared, part, clock_ns: float = 10.0, mode: str = "refined", target_fps: Optional[float] = None,
                      folding=None, impl: str = "auto") -> tuple[dict, list, dict]:
    """The estimate of an already prepared model (:func:`prepare`'s result):
    (the estimate document, the folded hardware layers, their costs by layer
    name). The HLS backend builds exactly these layers with these costs.
    The baseline is derived from the layers before their requantizers are
    chosen (FINN builds thresholds)."""
    optimized, report_layers, layers, graph_inputs = prepared
    p = part if isinstance(part, C.Part) else get_part(part)
    layers = _fold(layers, target_fps, folding, clock_ns)
    notes = list(getattr(layers, "notes", []))
    base = baseline_layers(layers, report_layers, graph_inputs)
    base_docs, base_costs = cost_layers(base, p, mode, host=base.host)
    layers, choices = choose_implementations(layers, p, mode, impl, limits=base_costs)
    docs, costs = cost_layers(layers, p, mode)
    for name, choice in choices.items():
        docs[name]["impl"] = choice.to_json()
    add_width_bounds(docs, report_layers)
    lint_notes = _lint(layers, p, costs if mode == "refined" else None)
    plumbing = plumbing_docs(layers, [o.name for o in optimized.graph.output], mode, notes)
    docs.update(plumbing)
    base_docs.update(plumbing)
    total, base_total = _totals(docs), _totals(base_docs)
    delta = {k: _pct(total[k], base_total[k]) for k in RESOURCE_KEYS + ("acc_bits",)}
    doc = {
        "part": p.name,
        "clock_ns": clock_ns,
        "mode": mode,
        "layers": docs,
        "total": total,
        "baseline": {"layers": base_docs, "total": base_total, "performance": _performance(base, clock_ns, base.host)},
        "delta": delta,
        "performance": _performance(layers, clock_ns),
        "lint": lint_notes,
        "notes": notes,
    }
    return doc, layers, costs


__all__ = ["RESOURCE_KEYS", "LAYER_COSTS", "costs", "layer_cost", "multiply_bindings", "baseline_layers", "cost_layers",
           "host_cost", "plumbing_docs", "estimate", "estimate_prepared", "estimate_finn_graph", "estimate_table", "prepare"]
