"""The squeeze-excite product x * gate(x): a Mul of a feature map by a
per-channel gate computed from the same frame lowers to a GateMul, whose
branch FIFO holds the frame while the gate is computed (no deadlock), and
C-simulates bit-exactly; other broadcasts of two streams are refused."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import sira
from sira import hw
from sira.errors import SiraError
from sira.hls import fifos
from sira.hls.dataflow import plan
from sira.hls.simulate import unavailable
from sira.transforms.to_hw import lower_to_hw

from tests.helpers import make_model

SPEC = {"inputs": {"*": {"int_min": -8, "int_max": 7}}}
SHAPE = [1, 4, 3, 5]


def _gated():
    """x * ReduceSum(x) over the spatial axes (keepdims): one gate value
    per channel."""
    inits = {"axes": np.array([2, 3], dtype=np.int64)}
    nodes = [
        helper.make_node("ReduceSum", ["x", "axes"], ["g"], keepdims=1),
        helper.make_node("Mul", ["x", "g"], ["y"]),
    ]
    return sira.load(make_model(nodes, {"x": SHAPE}, {"y": SHAPE}, inits))


def test_squeeze_excite_product_lowers_to_a_gate_mul_with_its_proven_width():
    model = _gated()
    layers = lower_to_hw(model, SPEC)
    (gate,) = [layer for layer in layers if isinstance(layer, hw.GateMul)]
    (pool,) = [layer for layer in layers if isinstance(layer, hw.Pool)]
    assert gate.inputs == (model.graph.input[0].name, pool.outputs[0]) and gate.channels == 4 and gate.in_shape == (1, 3, 5, 4)
    # the gate is a sum of 15 values in [-8, 7]: [-120, 105]; the product of the two lies in [-840, 960]
    assert (gate.gate_type.min, gate.gate_type.max) == (-128, 127) and gate.out_type.bits == 11
    assert gate.cycles == 4 * (1 + 15)


def test_the_frame_waits_in_its_fifo_while_the_gate_is_computed():
    df = plan(lower_to_hw(_gated(), SPEC), ["y"])
    (dup,) = [st for st in df.stages if st.node.kind == "Duplicate"]
    frame = df.streams[dup.outputs[0]].words
    depths = sorted(df.streams[s].depth for s in dup.outputs)
    assert depths[0] == fifos.BASE_DEPTH and depths[1] >= frame, (depths, frame)
    assert fifos.simulate(df.stages, df.streams) is None
    stuck = fifos.simulate(df.stages, df.streams, {sid: fifos.BASE_DEPTH for sid in df.streams})
    assert stuck and "full" in stuck


def test_a_mul_of_streams_broadcast_otherwise_is_refused():
    """A row of the map (one value per pixel, not per channel) is no gate."""
    nodes = [helper.make_node("Mul", ["x", "z"], ["y"])]
    model = sira.load(make_model(nodes, {"x": SHAPE, "z": [1, 1, 3, 5]}, {"y": SHAPE}))
    with pytest.raises(SiraError, match=r"node 'Mul_0' \(Mul\): no hardware layer for Mul of streams of different shapes \[1, 4, 3, 5\] and \[1, 1, 3, 5\]"):
        lower_to_hw(model, SPEC)


@pytest.mark.slow
@pytest.mark.skipif(bool(unavailable()), reason="C simulation unavailable")
def test_gate_mul_is_bit_exact_in_c_simulation(tmp_path):
    from sira.hls import build_layers

    rng = np.random.default_rng(1)
    frames = [{"x": np.full(SHAPE, v)} for v in (-8, 7)] + [{"x": rng.integers(-8, 8, size=SHAPE)} for _ in range(4)]
    model = _gated()
    frames = [{model.graph.input[0].name: np.moveaxis(f["x"], 1, -1)} for f in frames]  # streams are channels-last
    r = build_layers(lower_to_hw(model, SPEC), str(tmp_path / "se"), frames, run_csim=True)
    assert r.csim.passed and r.csim.exact == r.csim.samples == len(frames), r.csim.summary()


def test_a_gate_with_an_integer_offset_keeps_the_product_integer():
    """A gate on a grid with an offset (thresholds whose first levels are
    always reached add a constant) still makes an exact integer product."""
    inits = {"axes": np.array([2, 3], dtype=np.int64), "three": np.float32(3.0)}
    nodes = [
        helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=1),
        helper.make_node("Add", ["s", "three"], ["g"]),
        helper.make_node("Mul", ["x", "g"], ["y"]),
    ]
    model = sira.load(make_model(nodes, {"x": SHAPE}, {"y": SHAPE}, inits))
    r = sira.analyze(model, SPEC)
    assert r[model.graph.output[0].name].integer_values() == (-8 * 108, 8 * 117)
    (gate,) = [layer for layer in lower_to_hw(model, SPEC) if isinstance(layer, hw.GateMul)]
    assert gate.out_type.is_integer and gate.out_type.bits == 11
