"""Float64 execution (sira.execute): the kernels sira supplies where
onnxruntime has none for double agree with onnxruntime's float32 kernels on
integer data (exact in both precisions)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from sira.execute import execute_all, to_float64

from helpers import execute, make_model


@pytest.mark.parametrize(
    "x_shape, w_shape, attrs",
    [
        ((2, 4, 7, 6), (6, 4, 3, 3), {}),
        ((1, 4, 7, 6), (6, 4, 3, 3), {"pads": [1, 2, 0, 1], "strides": [2, 1]}),
        ((1, 4, 7, 6), (6, 2, 2, 3), {"pads": [1, 1, 1, 1], "dilations": [2, 1], "group": 2}),
        ((1, 4, 7, 6), (6, 4, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
        ((1, 4, 7, 6), (6, 4, 2, 2), {"auto_pad": "SAME_LOWER"}),
        ((1, 4, 7), (6, 4, 3), {"pads": [1, 0]}),
    ],
)
def test_conv_float64_matches_onnxruntime(x_shape, w_shape, attrs):
    rng = np.random.default_rng(0)
    conv = helper.make_node("Conv", ["x", "W", "B"], ["y"], kernel_shape=list(w_shape[2:]), **attrs)
    inits = {"W": rng.integers(-3, 4, size=w_shape).astype(np.float32), "B": rng.integers(-3, 4, size=w_shape[0]).astype(np.float32)}
    model = make_model([conv], {"x": x_shape}, {"y": None}, inits)
    x = rng.integers(-5, 6, size=x_shape).astype(np.float32)
    y64 = execute_all(to_float64(model), {"x": x})["y"]
    assert y64.dtype == np.float64
    np.testing.assert_array_equal(y64, execute(model, {"x": x})["y"])
