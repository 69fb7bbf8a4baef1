"""Synthetic QONNX models for the benchmarks, built deterministically.

Every builder takes a ``seed`` and returns the same model for the same
arguments. The models are real QONNX graphs (``Quant`` nodes in the domain
``qonnx.custom_op.general``, float weights behind weight quantizers, shapes
inferred) as Brevitas-style exporters produce them:

* :func:`quant_mlp` — a fully connected stack of ``depth`` layers of width
  ``width``: an 8-bit input quantizer, then per layer a 4-bit weight ``Quant``
  (per-output-channel scales) -> ``MatMul`` -> ``Mul`` (per-channel scale) ->
  ``Add`` (bias) -> ``Relu`` -> 4-bit activation ``Quant``.
* :func:`mobilenet_like` — a depthwise-separable conv net on a 1x3x32x32
  image: a strided stem conv, then blocks of depthwise 3x3 ``Conv``
  (group = channels, pads 1, some strided) + 8-bit ``Quant`` and pointwise
  1x1 ``Conv`` + ``BatchNormalization`` + ``Relu`` + 4-bit ``Quant``; then
  ``GlobalAveragePool`` -> ``Flatten`` -> a 4-bit ``MatMul`` classifier.

Convolutions carry no bias input (BatchNormalization provides the shift):
qonnx 1.0.0's range analysis rejects a Conv with a bias.

Each builder also gives the input range the model is meant for
(:data:`MLP_INPUT_RANGE`, :data:`CONV_INPUT_RANGE`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper

QONNX_DOMAIN = "qonnx.custom_op.general"

#: input range of :func:`quant_mlp` (its input quantizer is signed 8-bit, scale 1/128)
MLP_INPUT_RANGE = (-1.0, 1.0)
#: input range of :func:`mobilenet_like` (image pixels; unsigned 8-bit quantizer, scale 1/255)
CONV_INPUT_RANGE = (0.0, 1.0)

#: (output channels, stride) of the depthwise-separable blocks of :func:`mobilenet_like`
MOBILENET_BLOCKS = ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2))
#: the same for MobileNet-v1 x1.0's 13 depthwise-separable blocks (3.2 M
#: parameters with this builder's 16-channel stem and 10 classes)
MOBILENET_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)) + ((512, 1),) * 5 + ((1024, 2), (1024, 1))


class _GraphBuilder:
    """Collects nodes and initializers with unique generated names."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, prefix: str, value) -> str:
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name=n))
        return n

    def node(self, op_type: str, inputs: list[str], domain: str = "", **attrs) -> str:
        out = self.name(op_type.lower() + "_out")
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.name(op_type), domain=domain, **attrs))
        return out

    def quant(self, x: str, scale, bits: int, signed: bool, narrow: bool = False) -> str:
        """A QONNX ``Quant`` with zero-point 0 and rounding ROUND."""
        s = self.const("scale", scale)
        z = self.const("zeropt", 0.0)
        b = self.const("bitwidth", float(bits))
        return self.node("Quant", [x, s, z, b], domain=QONNX_DOMAIN, signed=int(signed), narrow=int(narrow), rounding_mode="ROUND")

    def quant_weight(self, w: np.ndarray, channel_axis: int, bits: int = 4) -> str:
        """A float weight initializer behind a signed narrow-range ``Quant``
        with one scale per output channel (``channel_axis`` of ``w``)."""
        reduce_axes = tuple(i for i in range(w.ndim) if i != channel_axis)
        qmax = 2 ** (bits - 1) - 1
        scale = np.max(np.abs(w), axis=reduce_axes, keepdims=True) / qmax
        return self.quant(self.const("weight", w), scale.astype(np.float32), bits, signed=True, narrow=True)

    def batchnorm(self, x: str, channels: int) -> str:
        rng = self.rng
        gamma = self.const("bn_gamma", rng.uniform(0.5, 1.5, channels))
        beta = self.const("bn_beta", rng.normal(0.0, 0.1, channels))
        mean = self.const("bn_mean", rng.normal(0.0, 0.1, channels))
        var = self.const("bn_var", rng.uniform(0.5, 1.5, channels))
        return self.node("BatchNormalization", [x, gamma, beta, mean, var], epsilon=1e-5)

    def model(self, name: str, inp: str, in_shape: list[int], out: str, out_shape: Optional[list[int]] = None) -> ModelWrapper:
        from qonnx.transformation.infer_shapes import InferShapes

        graph = helper.make_graph(
            self.nodes,
            name,
            [helper.make_tensor_value_info(inp, TensorProto.FLOAT, in_shape)],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)],
            initializer=self.inits,
        )
        proto = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)],
            producer_name="sira-bench",
        )
        # onnxruntime <= 1.31 (used by qonnx to execute single nodes) reads IR <= 10
        proto.ir_version = min(proto.ir_version, 10)
        return ModelWrapper(proto).transform(InferShapes())


def quant_mlp(depth: int, width: int = 512, seed: int = 0) -> ModelWrapper:
    """Quantized MLP: input (1, width), ``depth`` identical-width layers
    (``1 + 6 * depth`` nodes)."""
    g = _GraphBuilder(seed)
    rng = g.rng
    x = g.quant("inp", 1.0 / 128, bits=8, signed=True)
    for _ in range(depth):
        w = rng.normal(0.0, 1.0 / np.sqrt(width), (width, width))
        y = g.node("MatMul", [x, g.quant_weight(w, channel_axis=1)])
        y = g.node("Mul", [y, g.const("chan_scale", rng.uniform(0.5, 1.5, (1, width)))])
        y = g.node("Add", [y, g.const("bias", rng.normal(0.0, 0.1, (1, width)))])
        y = g.node("Relu", [y])
        x = g.quant(y, 0.25, bits=4, signed=False)
    return g.model(f"quant_mlp_{depth}x{width}", "inp", [1, width], x, [1, width])


def mobilenet_like(seed: int = 0, blocks=MOBILENET_BLOCKS, size: int = 32) -> ModelWrapper:
    """Depthwise-separable conv net on a 1x3x``size``x``size`` image, 10
    classes (:data:`MOBILENET_V1_BLOCKS` for MobileNet-v1 x1.0's layers)."""
    g = _GraphBuilder(seed)
    rng = g.rng

    def conv(x: str, c_in: int, c_out: int, k: int, stride: int, group: int = 1) -> str:
        w = rng.normal(0.0, np.sqrt(2.0 / (k * k * c_in // group)), (c_out, c_in // group, k, k))
        pad = k // 2
        return g.node(
            "Conv",
            [x, g.quant_weight(w, channel_axis=0)],
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[pad] * 4,
            group=group,
        )

    def conv_bn_relu_quant(x: str, c_in: int, c_out: int, k: int, stride: int) -> str:
        y = g.node("Relu", [g.batchnorm(conv(x, c_in, c_out, k, stride), c_out)])
        return g.quant(y, 0.25, bits=4, signed=False)

    x = g.quant("inp", 1.0 / 255, bits=8, signed=False)
    c = 16
    x = conv_bn_relu_quant(x, 3, c, 3, 2)
    for c_out, stride in blocks:
        x = g.quant(conv(x, c, c, 3, stride, group=c), 1.0 / 16, bits=8, signed=True)
        x = conv_bn_relu_quant(x, c, c_out, 1, 1)
        c = c_out
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1)
    w = rng.normal(0.0, 1.0 / np.sqrt(c), (c, 10))
    out = g.node("MatMul", [x, g.quant_weight(w, channel_axis=1)])
    return g.model("mobilenet_like", "inp", [1, 3, size, size], out, [1, 10])


def benchmark_cases(zoo_models: dict, zoo_dir: str, extra=()):
    """(name, model or path, input spec) for every zoo model present under
    ``zoo_dir``, the bundled example, any ``extra`` cases, and the
    MobileNet-style conv net: the set the width and estimate benchmarks run."""
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    for name, (rel, spec) in sorted(zoo_models.items()):
        path = os.path.join(zoo_dir, rel)
        if os.path.exists(path):
            yield name, path, spec
    examples = os.path.join(here, "..", "examples")
    yield "sira_mlp", os.path.join(examples, "sira_mlp.onnx"), os.path.join(examples, "sira_mlp.spec.json")
    yield "sira_conv", os.path.join(examples, "sira_conv.onnx"), os.path.join(examples, "sira_conv.spec.json")
    yield from extra
    yield "mobilenet_like", mobilenet_like(), CONV_INPUT_RANGE
