"""QONNX building blocks shared by the example builders (build_mlp.py,
build_conv.py): the custom-op domain and a ``Quant`` node whose scale,
zero point and bit width are initializers, as Brevitas exports them."""

from __future__ import annotations

import numpy as np
from onnx import helper

QONNX = "qonnx.custom_op.general"


def quant(inp: str, out: str, scale, bits: int, signed: bool, narrow: bool, inits: dict, prefix: str):
    """A ``Quant`` node ``prefix`` (rounding half to even) from ``inp`` to
    ``out``; its parameters are added to ``inits`` as float32 arrays."""
    inits[f"{prefix}_scale"] = np.asarray(scale, dtype=np.float32)
    inits[f"{prefix}_zeropt"] = np.zeros((), dtype=np.float32)
    inits[f"{prefix}_bits"] = np.asarray(bits, dtype=np.float32)
    return helper.make_node(
        "Quant",
        [inp, f"{prefix}_scale", f"{prefix}_zeropt", f"{prefix}_bits"],
        [out],
        name=prefix,
        domain=QONNX,
        signed=int(signed),
        narrow=int(narrow),
        rounding_mode="ROUND",
    )
