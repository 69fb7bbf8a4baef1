"""Op rules: one small pure function per op type.

A rule receives a :class:`RuleContext` (the node, the ranges of its inputs,
attribute and constant accessors, the inferred output shapes) and returns one
:class:`~sira.range.ScaledIntRange` per output. Rules are registered with
:func:`rule`, which records whether the rule is *exact* (bounds attained for
exact inputs) or *sound* (may be loose); adding an op is one function in one
module.

The families live in the submodules imported at the bottom of this file.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import numpy as np
from onnx import NodeProto

from ..errors import RuleError
from ..model import node_attr
from ..range import ScaledIntRange

EXACT = "exact"
SOUND = "sound"


@dataclasses.dataclass(frozen=True)
class Rule:
    op_type: str
    fn: Callable[["RuleContext"], Sequence[ScaledIntRange]]
    exactness: str
    #: the rule wants to see constant inputs (e.g. a weight Quant whose
    #: integer grid matters) instead of the driver folding the node
    handles_constants: bool = False

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip()


#: op type -> rule
RULES: dict[str, Rule] = {}


def rule(*op_types: str, exactness: str = EXACT, handles_constants: bool = False):
    """Register the decorated function as the rule for ``op_types``."""
    if exactness not in (EXACT, SOUND):
        raise ValueError(f"exactness must be {EXACT!r} or {SOUND!r}")

    def register(fn):
        for op in op_types:
            if op in RULES:
                raise ValueError(f"duplicate rule for {op}")
            RULES[op] = Rule(op, fn, exactness, handles_constants)
        return fn

    return register


@dataclasses.dataclass
class RuleContext:
    """What a rule may look at. Built by the analysis driver."""

    node: NodeProto
    #: one range per input; None for an absent optional input ("")
    inputs: list[Optional[ScaledIntRange]]
    #: inferred shape per output (None where shape inference gave none)
    out_shapes: list[Optional[tuple]]
    #: finn_datatype annotation per output (None where absent)
    out_datatypes: list[Optional[str]]
    #: opset version of the default ONNX domain
    opset: int = 13

    @property
    def op_type(self) -> str:
        return self.node.op_type

    def attr(self, name: str, default=None):
        """Attribute value (ints, floats, strings decoded, lists as lists)."""
        return node_attr(self.node, name, default)

    def has_input(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] is not None

    def inp(self, i: int) -> ScaledIntRange:
        if not self.has_input(i):
            raise RuleError(f"input {i} is missing")
        return self.inputs[i]

    def is_const(self, i: int) -> bool:
        return self.has_input(i) and self.inputs[i].is_const

    def const(self, i: int, what: str = "") -> np.ndarray:
        """Value of constant input ``i``; a clear error if it is dynamic."""
        r = self.inp(i)
        if not r.is_const:
            label = what or f"input {i} ('{self.node.input[i]}')"
            raise RuleError(f"{label} must be a constant (an initializer), but it is computed at run time")
        return r.value

    def input_name(self, i: int) -> str:
        return self.node.input[i] if i < len(self.node.input) else ""

    def out_shape(self, i: int = 0, fallback=None) -> tuple:
        s = self.out_shapes[i] if i < len(self.out_shapes) else None
        if s is None:
            if fallback is None:
                raise RuleError(f"output {i} has no inferred shape; run shape inference first")
            return tuple(fallback)
        return tuple(s)


# the rule families register themselves on import
from . import quant, linear, elementwise, smooth, pooling, movement, resize, misc  # noqa: E402,F401
