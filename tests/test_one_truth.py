"""One truth for widths: on every zoo and conformance model, the datatypes
the optimized model is annotated with (``finn_datatype``, the accumulator
metadata), the optimize report, the estimate rows and the types of the
generated HLS code state the same widths."""

from __future__ import annotations

import json
import pathlib

import pytest

import sira
from sira import hw
from sira.accumulation import accumulation
from sira.errors import SiraError
from sira.estimate import estimate_prepared, prepare
from sira.hls.cpp import codec, value_ctype
from sira.hls.kernels import kernel_for
from sira.transforms.widths import ACC_DTYPE_KEY

from tests.helpers import FAST_ZOO, ZOO_MODELS, prepared_zoo

MODELS = pathlib.Path(__file__).resolve().parent.parent / "examples" / "zoo" / "models"
CONFORMANCE = sorted(p.stem for p in MODELS.glob("*.onnx"))
#: conformance models small enough for the fast tier
SMALL = ("a2q_mlp_w4a4", "mlp_w8a8_perchannel_qcdq")


def _annotation(model, tensor: str):
    dt = model.get_tensor_datatype(tensor)
    return None if dt is None else dt.name


def _accumulator(model, layer) -> str:
    """The tensor a MAC layer accumulates into: its node's output, or the
    output of the +-1 sign Mul between it and its thresholds, which the
    lowering folds into the weights."""
    out = next(n for n in model.graph.node if n.name == layer.name).output[0]
    readers = model.find_consumers(out) or []
    if len(readers) == 1 and readers[0].op_type == "Mul":
        after = model.find_consumers(readers[0].output[0]) or []
        if len(after) == 1 and after[0].op_type == "MultiThreshold" and after[0].output[0] == layer.outputs[0]:
            return readers[0].output[0]
    return out


def _check(optimized, report_layers, layers, doc, costs) -> None:
    meta = json.loads(optimized.get_metadata_prop(ACC_DTYPE_KEY))
    # the optimize report states the widths the written model is annotated with
    assert {r["layer"]: r["sira_dtype"] for r in report_layers} == meta
    rows = {r["layer"]: r for r in report_layers}
    nodes = {n.name: n for n in optimized.graph.node}
    float_macs = set()  # MACs optimize could not make integer: no integer tensor to annotate, no hardware
    for name, dtype in meta.items():
        annotation = _annotation(optimized, nodes[name].output[0])
        if annotation in (None, "FLOAT32"):
            float_macs.add(name)
        elif rows[name]["accumulator"] == "popcount":
            # the tensor holds the +-1 sum 2 * popcount - K; the accumulator is the popcount
            lo, hi = rows[name]["sira_range"]
            K = rows[name]["K"]
            t = hw.StreamType.named(annotation)
            assert dtype.startswith("UINT") and t.min <= 2 * lo - K and 2 * hi - K <= t.max, name
        else:
            assert annotation == dtype, name
    if layers is None:
        return
    assert not float_macs & {layer.name for layer in layers}, float_macs
    tensors = {t.name for t in list(optimized.graph.value_info) + list(optimized.graph.input) + list(optimized.graph.output)}
    for layer in layers:
        if doc["layers"][layer.name].get("host"):
            continue
        context = kernel_for(layer).context(layer, costs[layer.name])
        # the streams the generated code reads and writes are the annotated types
        for tensor, lanes_key, stype in ((layer.inputs[0], "in", layer.in_type), (layer.outputs[0], "out", layer.out_type)):
            if tensor in tensors and stype.is_integer:
                assert _annotation(optimized, tensor) == stype.name, (layer.name, tensor)
                if isinstance(context.get(lanes_key), dict):
                    assert context[lanes_key]["codec"] == codec(hw.StreamType.named(stype.name)), (layer.name, tensor)
        if layer.kind in ("MVAU", "VVAU") and layer.in_type.is_integer:
            acc = _annotation(optimized, _accumulator(optimized, layer))
            assert layer.acc_type.name == acc, layer.name
            assert context["acc_type"] == value_ctype(hw.StreamType.named(acc)), layer.name
            # the accumulator register: the annotated sum, or the popcount the metadata states
            stages = accumulation(layer)
            entry, row = doc["layers"][layer.name]["accumulation"], rows[layer.name]
            register = hw.StreamType.named(meta[layer.name]).bits if stages.popcount else hw.StreamType.named(acc).bits
            assert doc["layers"][layer.name]["acc_bits"] == entry["acc_bits"] == stages.acc_bits == register, layer.name
            if stages.popcount:
                assert context["popcount_type"] == f"ap_uint<{register}>", layer.name
            # the adder tree: the estimate's width is the generated partial_t (MVAU; a VVAU sums one product a cycle)
            if layer.kind == "MVAU":
                assert context["partial_type"] == value_ctype(hw.StreamType.for_range(*entry["tree_range"])), layer.name
                assert hw.StreamType.for_range(*entry["tree_range"]).bits == entry["tree_bits"] == stages.partial_bits, layer.name
            assert (entry["a2q_bits"], entry["finn_bits"]) == (row["a2q_width"], row["finn_width"]), layer.name
            weight = nodes[layer.name].input[1]
            if layer.weight_type.kind == "bipolar":  # +-1 weights stay BIPOLAR, as FINN reads them
                assert _annotation(optimized, weight) == "BIPOLAR", layer.name


@pytest.mark.parametrize("name", [n if n in FAST_ZOO or n == "TFC_1W1A" else pytest.param(n, marks=pytest.mark.slow) for n in sorted(ZOO_MODELS)])
def test_zoo_widths_agree(name):
    prepared = prepared_zoo(name)
    doc, layers, costs = estimate_prepared(prepared, "xc7z020clg400-1")
    _check(prepared[0], prepared[1], layers, doc, costs)
    # folded (SIMD > 1): the adder tree's width too
    doc, layers, costs = estimate_prepared(prepared, "xc7z020clg400-1", target_fps=100000)
    assert any(layer.kind == "MVAU" and layer.simd > 1 for layer in layers)
    _check(prepared[0], prepared[1], layers, doc, costs)


def test_bipolar_stays_bipolar():
    """TFC_1W1A: the BipolarQuant outputs and the +-1 weights are BIPOLAR in
    the written model; the +-1 sums are as wide as their values (11/8/8/8
    bits, the layers' acc_type, which the thresholds compare), while the
    accumulator the report and the metadata state is the popcount the
    hardware counts (10/7/7/7 bits, as FINN's)."""
    optimized, report_layers, layers, _ = prepared_zoo("TFC_1W1A")
    macs = [layer for layer in layers if layer.kind == "MVAU"]
    assert [layer.acc_type.name for layer in macs] == ["INT11", "INT8", "INT8", "INT8"]
    assert [r["sira_dtype"] for r in report_layers] == ["UINT10", "UINT7", "UINT7", "UINT7"]
    assert [r["accumulator"] for r in report_layers] == ["popcount"] * 4
    assert [accumulation(layer).acc_bits for layer in macs] == [10, 7, 7, 7]
    assert [r["finn_dtype"] for r in report_layers] == ["INT10", "INT7", "INT7", "INT7"]  # FINN's XNOR popcount
    for layer in macs:
        assert layer.weight_type.kind == "bipolar" and _annotation(optimized, layer.inputs[0]) == "BIPOLAR"


@pytest.mark.parametrize("name", [n if n in SMALL else pytest.param(n, marks=pytest.mark.slow) for n in CONFORMANCE])
def test_conformance_widths_agree(name):
    optimized, report = sira.optimize(sira.load(str(MODELS / f"{name}.onnx")), str(MODELS / f"{name}.spec.json"), samples=20)
    try:
        prepared = prepare(optimized)
    except SiraError:  # a model the hardware flow refuses: its annotations and report still agree
        _check(optimized, report.layers, None, None, None)
        return
    # re-reading the written model gives the report's widths back
    assert [r["sira_dtype"] for r in prepared[1]] == [r["sira_dtype"] for r in report.layers]
    doc, layers, costs = estimate_prepared(prepared, "xc7z020clg400-1")
    _check(optimized, report.layers, layers, doc, costs)
