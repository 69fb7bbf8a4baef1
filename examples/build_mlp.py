"""Build sira's bundled example: a small quantized MLP in QONNX.

    python examples/build_mlp.py            # writes examples/sira_mlp.onnx

The model is what a Brevitas user exports for an 8x8-pixel digit
classifier, built deterministically with onnx helpers (no training
framework needed):

    pixels (uint8 / 255) -> Quant 8b unsigned
      -> MatMul(Quant 4b weights, per-output-channel scales) -> BatchNorm -> Relu -> Quant 4b unsigned
      -> MatMul(Quant 4b weights, per-channel scales)        -> BatchNorm -> Relu -> Quant 4b unsigned
      -> MatMul(Quant 4b weights, per-channel scales) -> Add(bias) -> logits

Its input spec (``sira_mlp.spec.json``) says the input lives on the uint8
grid scaled by 1/255, as pixels do.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper
from quant_nodes import qonnx_model, quant, write_main

HERE = os.path.dirname(os.path.abspath(__file__))


def build(sizes=(64, 32, 32, 10), seed: int = 2026) -> onnx.ModelProto:
    """The example model; deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    nodes = []
    inits: dict[str, np.ndarray] = {}
    nodes.append(quant("pixels", "x0", 1.0 / 255.0, 8, False, False, inits, "input_quant"))
    x = "x0"
    n_layers = len(sizes) - 1
    for i in range(n_layers):
        k, n = sizes[i], sizes[i + 1]
        w = rng.normal(0.0, 1.0 / np.sqrt(k), size=(k, n)).astype(np.float32)
        w_scale = (np.abs(w).max(axis=0, keepdims=True) / 7.0).astype(np.float32)  # per output channel
        inits[f"fc{i}_weight"] = w
        nodes.append(quant(f"fc{i}_weight", f"fc{i}_wq", w_scale, 4, True, True, inits, f"fc{i}_weight_quant"))
        nodes.append(helper.make_node("MatMul", [x, f"fc{i}_wq"], [f"fc{i}_acc"], name=f"fc{i}"))
        if i < n_layers - 1:
            inits[f"bn{i}_gamma"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
            inits[f"bn{i}_gamma"][:: max(n // 4, 1)] *= -1.0  # a few decreasing channels
            inits[f"bn{i}_beta"] = rng.normal(0.0, 0.2, n).astype(np.float32)
            inits[f"bn{i}_mean"] = rng.normal(0.0, 0.5, n).astype(np.float32)
            inits[f"bn{i}_var"] = rng.uniform(0.5, 2.0, n).astype(np.float32)
            nodes.append(
                helper.make_node(
                    "BatchNormalization",
                    [f"fc{i}_acc", f"bn{i}_gamma", f"bn{i}_beta", f"bn{i}_mean", f"bn{i}_var"],
                    [f"bn{i}_out"],
                    name=f"bn{i}",
                    epsilon=1e-5,
                )
            )
            nodes.append(helper.make_node("Relu", [f"bn{i}_out"], [f"relu{i}_out"], name=f"relu{i}"))
            nodes.append(quant(f"relu{i}_out", f"act{i}", 0.25, 4, False, False, inits, f"act{i}_quant"))
            x = f"act{i}"
        else:
            inits["fc_out_bias"] = rng.normal(0.0, 0.1, n).astype(np.float32)
            nodes.append(helper.make_node("Add", [f"fc{i}_acc", "fc_out_bias"], ["logits"], name="fc_out_bias_add"))
    return qonnx_model("sira_mlp", nodes, {"pixels": [1, sizes[0]]}, {"logits": [1, sizes[-1]]}, inits)


if __name__ == "__main__":
    write_main(build, os.path.join(HERE, "sira_mlp.onnx"), __doc__)
