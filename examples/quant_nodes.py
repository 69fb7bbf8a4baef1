"""QONNX building blocks shared by the example builders (build_mlp.py,
build_conv.py): the custom-op domain, a ``Quant`` node whose scale, zero
point and bit width are initializers, as Brevitas exports them, the model
around a graph, and the command line that writes it."""

from __future__ import annotations

import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

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


def qonnx_model(name: str, nodes: list, inputs: dict, outputs: dict, inits: dict) -> onnx.ModelProto:
    """A checked QONNX model (opset 13 plus the QONNX domain, IR 8) of
    ``nodes``; ``inputs``/``outputs`` map float tensor names to shapes."""
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in outputs.items()],
        initializer=[numpy_helper.from_array(v, name=k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)], producer_name="sira-examples")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_main(build, default_output: str, doc: str) -> None:
    """``python build_*.py [-o OUT.onnx]``: write the model ``build()`` makes."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default=default_output)
    args = ap.parse_args()
    onnx.save(build(), args.output)
    print(f"wrote {args.output}")
