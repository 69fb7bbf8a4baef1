"""Shared helpers for tests: build small real ONNX/QONNX models, analyze them
and check ranges against execution."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper

import sira
from sira.model import quiet

QONNX_DOMAIN = "qonnx.custom_op.general"


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


def run_rule(node: onnx.NodeProto, inputs: Sequence, out_shapes: Sequence, out_datatypes: Optional[Sequence] = None):
    """Call the registered rule for ``node`` directly on given input ranges
    (None for absent inputs); returns its list of output ranges."""
    from sira.rules import RULES, RuleContext

    ctx = RuleContext(
        node=node,
        inputs=list(inputs),
        out_shapes=[tuple(s) if s is not None else None for s in out_shapes],
        out_datatypes=list(out_datatypes or [None] * len(out_shapes)),
    )
    return RULES[node.op_type].fn(ctx)
