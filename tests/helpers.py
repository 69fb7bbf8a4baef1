"""Shared helpers for tests: build small real ONNX/QONNX models, analyze them
and check ranges against execution; small hardware layers by hand."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper

import sira
from sira import hw
from sira.hw import StreamType
from sira.model import quiet

QONNX_DOMAIN = "qonnx.custom_op.general"

#: the QONNX model zoo, read in place (never copied)
HERE = os.path.dirname(os.path.abspath(__file__))
ZOO = os.environ.get("SIRA_ZOO", os.path.normpath(os.path.join(HERE, "..", "..", "shared", "models", "zoo")))

#: zoo model -> (relative path, input spec). Ranges from the zoo's README:
#: MNIST pixels are the uint8 grid scaled by 1/255; the keyword-spotting MLP
#: is clipped by its own 8-bit input quantizer (about +-105.4); jet-tagging
#: features are standardized (+-4); UNSW's input is annotated BIPOLAR.
ZOO_MODELS = {
    "TFC_1W1A": ("MNIST/Brevitas_FINN_TFC/TFC/TFC_1W1A.onnx", {"inputs": {"*": {"int_min": 0, "int_max": 255, "scale": "1/255"}}}),
    "TFC_1W2A": ("MNIST/Brevitas_FINN_TFC/TFC/TFC_1W2A.onnx", {"inputs": {"*": {"int_min": 0, "int_max": 255, "scale": "1/255"}}}),
    "TFC_2W2A": ("MNIST/Brevitas_FINN_TFC/TFC/TFC_2W2A.onnx", {"inputs": {"*": {"int_min": 0, "int_max": 255, "scale": "1/255"}}}),
    "kwsmlp_w3a3": ("GSCV2/kwsmlp_w3a3/kwsmlp_w3a3.onnx", (-106.0, 106.0)),
    "qkeras_jettagging": ("JetTagging/QKeras_hls4ml_3layer/qkeras_jettagging.onnx", (-4.0, 4.0)),
    "unsw_nb15_mlp_w2a2": ("UNSW_NB15/unsw_nb15_mlp_w2a2/unsw_nb15-mlp-w2a2.onnx", None),
}


#: zoo models every fast run checks; the whole zoo is the slow tier's
FAST_ZOO = ("TFC_2W2A", "unsw_nb15_mlp_w2a2")


#: FINN's committed estimates of the zoo models (finn-plus 1.6.1, estimate-only
#: flow, per layer at PE = SIMD = 1 and at 100k fps), read in place
FINN_RESULTS = os.environ.get("SIRA_FINN_RESULTS", os.path.normpath(os.path.join(ZOO, "..", "..", "peers", "finn_results")))

#: zoo model -> its file of FINN results
FINN_RESULT_FILES = {name: f"{name}.json" for name in ZOO_MODELS} | {"unsw_nb15_mlp_w2a2": "unsw_nb15-mlp-w2a2.json"}


def finn_results(name: str) -> dict:
    """FINN's committed results for zoo model ``name``; skips the test when absent."""
    import json

    path = os.path.join(FINN_RESULTS, FINN_RESULT_FILES[name])
    if not os.path.exists(path):
        pytest.skip(f"FINN results not found at {FINN_RESULTS} (set SIRA_FINN_RESULTS to their folder)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def finn_folding(layers: Sequence[hw.HWLayer], finn_layers: Sequence[dict]) -> dict:
    """FINN's recorded PE/SIMD as a folding config of sira's ``layers``:
    its MVAUs/VVAUs in dataflow order onto sira's MACs, its input
    Thresholding onto sira's when sira has one in the accelerator (otherwise
    the baseline adds it, folded as slowly as the dataflow allows)."""
    body = hw.host_partition(list(layers))[1]
    macs = [layer for layer in body if layer.kind in ("MVAU", "VVAU")]
    thresholds = [layer for layer in body if layer.kind == "Thresholding"]
    finn_macs = [f for f in finn_layers if f["op_type"].startswith(("MVAU", "VVAU"))]
    finn_thresholds = [f for f in finn_layers if f["op_type"].startswith("Thresholding")]
    if len(macs) != len(finn_macs):
        raise ValueError(f"{len(macs)} MAC layers here, {len(finn_macs)} in FINN's build")
    folding = {m.name: {"PE": f["PE"], "SIMD": f["SIMD"]} for m, f in zip(macs, finn_macs)}
    folding.update({t.name: {"PE": f["PE"]} for t, f in zip(thresholds, finn_thresholds)})
    return folding


_PREPARED: dict = {}


def prepared_zoo(name: str):
    """:func:`sira.estimate.prepare` of zoo model ``name`` (optimized once
    per test run: the optimize passes are the expensive part, and the
    estimate, baseline and width tests all start from them)."""
    if name not in _PREPARED:
        from sira.estimate import prepare

        _PREPARED[name] = prepare(zoo_path(name), ZOO_MODELS[name][1])
    return _PREPARED[name]


def zoo_path(name: str) -> str:
    """Where the zoo model ``name`` is; skips the test when the zoo is absent."""
    path = os.path.join(ZOO, ZOO_MODELS[name][0])
    if not os.path.exists(path):
        pytest.skip(f"QONNX model zoo not found at {ZOO} (set SIRA_ZOO to its folder); zoo tests need it")
    return path


#: the bundled MLP example and its input spec
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sira_mlp.onnx"
EXAMPLE_SPEC = EXAMPLE.with_name("sira_mlp.spec.json")


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: dict[str, Sequence[int]],
    outputs: dict[str, Optional[Sequence[int]]],
    initializers: Optional[dict[str, np.ndarray]] = None,
    opset: int = 13,
) -> ModelWrapper:
    """A ModelWrapper from nodes, graph inputs {name: shape}, graph outputs
    {name: shape or None} and initializers {name: array}. Shapes of
    intermediate tensors are inferred."""
    from qonnx.transformation.infer_shapes import InferShapes

    inits = [numpy_helper.from_array(np.asarray(v), name=k) for k, v in (initializers or {}).items()]
    graph = helper.make_graph(
        list(nodes),
        "test",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(s)) for k, s in inputs.items()],
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(s) if s is not None else None) for k, s in outputs.items()],
        initializer=inits,
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(QONNX_DOMAIN, 1)],
        producer_name="sira-tests",
    )
    proto.ir_version = min(proto.ir_version, 10)
    m = ModelWrapper(proto)
    with quiet():
        m = m.transform(InferShapes())
    return m


def quant_node(inp: str, scale: str, zeropt: str, bitwidth: str, out: str, signed=1, narrow=0, rounding_mode="ROUND"):
    return helper.make_node(
        "Quant", [inp, scale, zeropt, bitwidth], [out], domain=QONNX_DOMAIN, signed=signed, narrow=narrow, rounding_mode=rounding_mode
    )


def execute(model: ModelWrapper, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every tensor of ``model`` for one input feed (qonnx execution)."""
    from qonnx.core.onnx_exec import execute_onnx

    with quiet():
        return execute_onnx(model, {k: np.asarray(v, dtype=np.float32) for k, v in feed.items()}, return_full_exec_context=True)


def assert_contains(r: sira.ScaledIntRange, value: np.ndarray, tol: float = 1e-6, name: str = "") -> None:
    """Every element of ``value`` lies in ``r`` (real bounds, with a small
    relative tolerance for float32 execution) and, for scaled-int ranges, on
    its integer grid within [int_lo, int_hi]."""
    v = np.asarray(value, dtype=np.float64)
    lo = np.broadcast_to(r.lo, r.shape)
    hi = np.broadcast_to(r.hi, r.shape)
    slack = tol * np.maximum(1.0, np.abs(v))
    bad = (v < lo - slack) | (v > hi + slack)
    assert not np.any(bad), f"{name}: values outside range, e.g. {v[bad][:5]} vs lo {lo[bad][:5]} hi {hi[bad][:5]}"
    if r.is_scaled_int:
        s = np.broadcast_to(r.scale, r.shape)
        b = np.broadcast_to(r.bias, r.shape)
        q = (v - b) / s
        qr = np.round(q)
        err = np.abs(q - qr)
        qtol = 1e-3 + tol * (np.abs(v) + np.abs(b)) / np.abs(s)
        assert np.all(err <= qtol), f"{name}: values off the integer grid, max error {err.max()}"
        qlo = np.broadcast_to(r.int_lo, r.shape).astype(np.float64)
        qhi = np.broadcast_to(r.int_hi, r.shape).astype(np.float64)
        assert np.all((qr >= qlo) & (qr <= qhi)), f"{name}: integer parts outside [int_lo, int_hi]"



def mvau(name="mv", mw=8, mh=6, nv=(), **kw) -> hw.MVAU:
    """A small matrix-vector unit (4-bit unsigned in, 2-bit weights of 1)
    for folding and lint checks that need a layer, not a model."""
    return hw.MVAU(name=name, inputs=("x",), outputs=(name + "_out",), in_shape=(1, mw), out_shape=(1, mh),
                   in_type=StreamType(4, False), out_type=StreamType(12, True), mw=mw, mh=mh, num_input_vectors=nv,
                   weights=np.ones((mw, mh), dtype=np.int64), weight_type=StreamType(2, True),
                   acc_type=StreamType(12, True), acc_range=(-100, 100), **kw)
