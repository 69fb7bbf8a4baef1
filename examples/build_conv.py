"""Build sira's bundled convolutional example: a small quantized CNN in QONNX.

    python examples/build_conv.py           # writes examples/sira_conv.onnx

The model is what a Brevitas user exports for a 10x10-pixel RGB image
classifier with one residual block, built deterministically with onnx
helpers (fixed seed, no training framework needed):

    pixels (uint8 / 255, 1x3x10x10) -> Quant 8b unsigned
      -> Conv 3x3 pad 1 (Quant 4b weights, per-output-channel scales)
         -> BatchNorm -> Relu -> Quant 4b unsigned (scale 1/4)            = x
      -> residual block:
           Conv 3x3 pad 1 -> BatchNorm -> Relu -> Quant 4b unsigned (scale 1/8)
           Add(block output, x) -> Quant 5b unsigned (scale 1/4)
      -> MaxPool 2x2 stride 2
      -> depthwise Conv 3x3 pad 1 (group = channels) -> BatchNorm -> Relu -> Quant 4b unsigned
      -> GlobalAveragePool -> Flatten
      -> MatMul(Quant 4b weights, per-channel scales) -> Add(bias) -> logits

The two operands of the residual Add are quantized with scales 1/8 and 1/4
(a ratio of 2), so after ``sira optimize`` the join is an addition of
integers. Some BatchNorm gammas are negative (decreasing channels).

Its input spec (``sira_conv.spec.json``) says the input lives on the uint8
grid scaled by 1/255, as pixels do.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper
from quant_nodes import qonnx_model, quant, write_main

HERE = os.path.dirname(os.path.abspath(__file__))


def _weightquant(w, channel_axis, inits, prefix, bits=4):
    """A float weight behind a signed narrow-range Quant, one scale per
    output channel (``channel_axis``): returns (nodes, quantized tensor)."""
    reduce_axes = tuple(i for i in range(w.ndim) if i != channel_axis)
    qmax = 2 ** (bits - 1) - 1
    scale = (np.abs(w).max(axis=reduce_axes, keepdims=True) / qmax).astype(np.float32)
    inits[f"{prefix}_weight"] = w.astype(np.float32)
    return quant(f"{prefix}_weight", f"{prefix}_wq", scale, bits, True, True, inits, f"{prefix}_weight_quant"), f"{prefix}_wq"


def _batchnorm(inp, out, channels, rng, inits, prefix):
    gamma = rng.uniform(0.5, 1.5, channels).astype(np.float32)
    gamma[:: max(channels // 3, 1)] *= -1.0  # a few decreasing channels
    inits[f"{prefix}_gamma"] = gamma
    inits[f"{prefix}_beta"] = rng.normal(0.0, 0.2, channels).astype(np.float32)
    inits[f"{prefix}_mean"] = rng.normal(0.0, 0.5, channels).astype(np.float32)
    inits[f"{prefix}_var"] = rng.uniform(0.5, 2.0, channels).astype(np.float32)
    return helper.make_node(
        "BatchNormalization",
        [inp, f"{prefix}_gamma", f"{prefix}_beta", f"{prefix}_mean", f"{prefix}_var"],
        [out],
        name=prefix,
        epsilon=1e-5,
    )


def build(image=(3, 10, 10), channels: int = 8, classes: int = 10, seed: int = 2026) -> onnx.ModelProto:
    """The example model; deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    c_in, height, width = image
    c = channels
    nodes = []
    inits: dict[str, np.ndarray] = {}

    def conv_bn_reluquant(x, k_in, name, act_scale, group=1):
        w = rng.normal(0.0, np.sqrt(2.0 / (9 * k_in // group)), size=(c, k_in // group, 3, 3)).astype(np.float32)
        wq_node, wq = _weightquant(w, 0, inits, name)
        nodes.append(wq_node)
        nodes.append(helper.make_node(
            "Conv", [x, wq], [f"{name}_out"], name=name, kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], group=group,
        ))  # fmt: skip
        bn = name.replace("conv", "bn")
        nodes.append(_batchnorm(f"{name}_out", f"{bn}_out", c, rng, inits, bn))
        relu = name.replace("conv", "relu")
        nodes.append(helper.make_node("Relu", [f"{bn}_out"], [f"{relu}_out"], name=relu))
        act = name.replace("conv", "act")
        nodes.append(quant(f"{relu}_out", act, act_scale, 4, False, False, inits, f"{act}_quant"))
        return act

    nodes.append(quant("pixels", "x0", 1.0 / 255.0, 8, False, False, inits, "input_quant"))
    x = conv_bn_reluquant("x0", c_in, "conv0", 0.25)
    # residual block: the branch's quantizer has half the skip's scale
    branch = conv_bn_reluquant(x, c, "conv1", 0.125)
    nodes.append(helper.make_node("Add", [branch, x], ["res_sum"], name="res_add"))
    nodes.append(quant("res_sum", "res_out", 0.25, 5, False, False, inits, "res_quant"))
    nodes.append(helper.make_node("MaxPool", ["res_out"], ["pool_out"], name="maxpool", kernel_shape=[2, 2], strides=[2, 2]))
    x = conv_bn_reluquant("pool_out", c, "conv2_dw", 0.25, group=c)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap_out"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap_out"], ["flat"], name="flatten", axis=1))
    w = rng.normal(0.0, 1.0 / np.sqrt(c), size=(c, classes)).astype(np.float32)
    wq_node, wq = _weightquant(w, 1, inits, "fc")
    nodes.append(wq_node)
    nodes.append(helper.make_node("MatMul", ["flat", wq], ["fc_acc"], name="fc"))
    inits["fc_bias"] = rng.normal(0.0, 0.1, classes).astype(np.float32)
    nodes.append(helper.make_node("Add", ["fc_acc", "fc_bias"], ["logits"], name="fc_bias_add"))

    return qonnx_model("sira_conv", nodes, {"pixels": [1, c_in, height, width]}, {"logits": [1, classes]}, inits)


if __name__ == "__main__":
    write_main(build, os.path.join(HERE, "sira_conv.onnx"), __doc__)
