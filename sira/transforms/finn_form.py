"""The forms FINN's conversions expect, for a model sira optimized.

sira's optimized graph computes exactly what the original computes; FINN's
tidy-up, streamlining and conversion to hardware layers read it through
their own conventions, and reject or mis-read what does not follow them:

* **MultiThreshold ``out_dtype``.** FINN takes a MultiThreshold's output
  datatype from its ``out_dtype`` attribute (its datatype inference
  overwrites the annotation), and refuses a signed type unless
  ``out_bias < 0``. After sira moved a MultiThreshold's bias downstream
  (aggregation), its output counts from 0 and the attribute still names the
  quantizer's signed type: the attribute becomes the datatype sira proved
  for the output (the ``finn_datatype`` annotation), which then agrees with
  ``out_bias``.
* **``out_scale``.** FINN converts a MultiThreshold to hardware only with
  ``out_scale = 1`` (or the bipolar form ``2, -1`` after a MAC). A
  MultiThreshold with another integer scale ``s`` and bias ``b`` (values
  ``s*count + b``) becomes ``MultiThreshold(out_scale=1, out_bias=b/s)``
  followed by ``Mul(s)`` when ``b/s`` is an integer, else
  ``MultiThreshold(out_scale=1, out_bias=0)``, ``Mul(s)``, ``Add(b)``: the
  same values, and FINN's streamlining moves the ``Mul``/``Add`` on.
* **Bipolar weights.** FINN turns a MatMul into an XNOR-popcount unit only
  when input *and* weights are annotated ``BIPOLAR``. Integer weights that
  are all +-1 and multiply a ``BIPOLAR`` input get that annotation.
* **A self-consistent wrapper.** Every tensor has its ValueInfo (shapes
  inferred again), every node a unique non-empty name: FINN's tidy-up
  renames tensors after node names and looks them up by name.

Every rewrite keeps the values of every tensor FINN reads; datatype
annotations only change where sira proved them.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from sira.model import fresh_name, node_attr, reinfer_shapes, transform
from sira.numerics import narrowest_int_type

#: the form of a bipolar MultiThreshold that FINN's MAC conversion accepts
_BIPOLAR_FORM = (2.0, -1.0)


def _set_attr(node, name: str, value) -> None:
    for a in node.attribute:
        if a.name == name:
            node.attribute.remove(a)
            break
    node.attribute.append(helper.make_attribute(name, value))


def split_out_scale(scale: float, bias: float) -> tuple[int, list[tuple[str, float]]]:
    """(integer ``out_bias`` of a MultiThreshold with ``out_scale = 1``, the
    ops after it as (op, constant)) with the values ``scale*count + bias``.
    Exact: ``b/s`` is tested as a rational."""
    ratio = Fraction(bias) / Fraction(scale)
    if ratio.denominator == 1:
        return int(ratio), [("Mul", scale)]
    return 0, [("Mul", scale), ("Add", bias)]


def _names(model: ModelWrapper) -> set:
    g = model.graph
    names = {n.name for n in g.node} | {t.name for t in g.initializer}
    names |= {v.name for v in (*g.input, *g.output, *g.value_info)}
    return names | {t for n in g.node for t in (*n.input, *n.output)}


def _unit_scale(model: ModelWrapper, node, index: int, taken: set) -> None:
    """Rewrite a MultiThreshold with an integer ``out_scale`` other than 1
    (and not the bipolar form) into ``out_scale = 1`` and a Mul (and Add)."""
    scale, bias = float(node_attr(node, "out_scale", 1.0)), float(node_attr(node, "out_bias", 0.0))
    out = node.output[0]
    if scale == 1.0 or ((scale, bias) == _BIPOLAR_FORM and model.get_tensor_datatype(out) == DataType["BIPOLAR"]):
        return
    if not (scale.is_integer() and scale > 0):
        return  # a fractional step: FINN keeps such an activation on floats whatever the form
    new_bias, ops = split_out_scale(scale, bias)
    steps = int(model.get_initializer(node.input[1]).shape[1])
    count_out = fresh_name(f"{node.name}_count", taken)
    _set_attr(node, "out_scale", 1.0)
    _set_attr(node, "out_bias", float(new_bias))
    node.output[0] = count_out
    cur = count_out
    model.set_tensor_datatype(count_out, DataType[narrowest_int_type(new_bias, new_bias + steps)])  # out_dtype follows it
    for k, (op, value) in enumerate(ops):
        const = fresh_name(f"{node.name}_{op.lower()}_param", taken)
        model.set_initializer(const, np.asarray(value, dtype=np.float32))
        target = out if k == len(ops) - 1 else fresh_name(f"{node.name}_{op.lower()}_out", taken)
        model.graph.node.insert(index + 1 + k, helper.make_node(op, [cur, const], [target], name=fresh_name(f"{node.name}_{op}", taken)))
        cur = target


def _out_dtype(model: ModelWrapper, node) -> None:
    """The ``out_dtype`` attribute names the datatype sira proved for the
    output (when it proved an integer one)."""
    dt = model.get_tensor_datatype(node.output[0])
    if dt is None or not dt.is_integer():
        return
    if node_attr(node, "out_dtype") != dt.name:
        _set_attr(node, "out_dtype", dt.name)


def _bipolar_weights(model: ModelWrapper, node) -> None:
    if node.op_type != "MatMul" or model.get_tensor_datatype(node.input[0]) != DataType["BIPOLAR"]:
        return
    w = model.get_initializer(node.input[1])
    if w is not None and w.size and np.all(np.abs(w) == 1):
        model.set_tensor_datatype(node.input[1], DataType["BIPOLAR"])


def _unique_node_names(model: ModelWrapper) -> None:
    seen: set = set()
    taken = {n.name for n in model.graph.node}
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = fresh_name(f"{node.op_type}_{i}", taken)
        seen.add(node.name)


class FinnForm(Transformation):
    """Put an optimized model into the forms FINN's conversions expect (see
    the module docstring); one application does all of it."""

    def apply(self, model: ModelWrapper):
        _unique_node_names(model)
        taken = _names(model)
        index = 0
        while index < len(model.graph.node):
            node = model.graph.node[index]
            if node.op_type == "MultiThreshold":
                _unit_scale(model, node, index, taken)
                _out_dtype(model, node)
            _bipolar_weights(model, node)
            index += 1
        return reinfer_shapes(model), False


def finn_form(model: ModelWrapper) -> ModelWrapper:
    """A copy of ``model`` in FINN's forms (:class:`FinnForm`)."""
    return transform(model, FinnForm())
