"""What sira knows about each ONNX/QONNX op type, in one table.

The analysis, the graph transforms, the hardware lowering and the reports
all ask questions of the kind "is this a MAC?", "does this op end an integer
chain?", "is this a pure reshape?". Each question is a :class:`Trait`; each
op type has the set of traits listed in :data:`OP_TRAITS`, and code asks
:func:`has_trait` or :func:`ops_with` instead of keeping its own list of op
names, so two passes can no longer disagree about what, say, a MAC is.

A trait says something true of the op itself, not of one pass's
capabilities: a pass that handles only some MACs (the width report lays out
MatMul, Gemm and Conv weights, not ConvTranspose) says so where it
dispatches.

Some traits mirror qonnx's own lists (:attr:`Trait.KEPT_BY_FOLDING`,
:attr:`Trait.QONNX_DOMAIN`, :attr:`Trait.TRANSPOSE_FOLDS_INTO`,
:attr:`Trait.INITIALIZERS_LAST`): loading reproduces qonnx's cleanup step by
step, so those sets follow qonnx (and sira's additions to its folding), not
what the op computes.
"""

from __future__ import annotations

import enum
import functools


class Trait(enum.Flag):
    """One property an op type may have. Combine with ``|``; an op has a
    combination when it has every trait in it."""

    # -- what kind of op it is -------------------------------------------------
    #: a sum of products with a weight operand: its output is an accumulator
    MAC = enum.auto()
    #: quantizes or dequantizes: a model without any is a float model
    QUANTIZER = enum.auto()
    #: output element i is computed from element i of each input (constants
    #: and per-channel parameters broadcast)
    ELEMENTWISE = enum.auto()
    #: moves, copies or selects elements without computing on them
    MOVEMENT = enum.auto()
    #: reduces windows or whole axes (pooling and Reduce*)
    POOLING = enum.auto()
    #: a function of whole slices along one axis (Softmax, ArgMax, TopK)
    ALONG_AXIS = enum.auto()

    # -- quantizers ------------------------------------------------------------
    #: output is a fresh integer grid whatever the input's grid: it ends an
    #: integer chain (and starts the next)
    REQUANTIZER = enum.auto()
    #: input 1 is the scale of the output grid (``x/s`` ... ``q*s``)
    SCALED_QUANTIZER = enum.auto()
    #: inputs (x, scale, zero point, bit width) and the attributes signed,
    #: narrow, rounding_mode
    INT_QUANTIZER = enum.auto()
    #: rounds real values (weights, activations) onto its grid, unlike Trunc,
    #: which drops low bits of a value that is already an integer
    REAL_QUANTIZER = enum.auto()

    # -- value semantics -------------------------------------------------------
    #: a float scale and bias of the input cannot be carried through it:
    #: scale/bias aggregation restores them before it
    NONLINEAR = enum.auto()
    #: with one constant operand, an affine map of the other (x*c, x/c, x+c,
    #: x-c, c-x): it changes the grid's scale or offset, never its integers
    AFFINE = enum.auto()
    #: output integers are input 0's integers - moved, selected, or clamped at
    #: the grid's zero - in the same grid coordinates
    KEEPS_INTEGERS = enum.auto()

    # -- data layout -----------------------------------------------------------
    #: one input, the same elements, possibly in another order (reshapes and
    #: transposes)
    LAYOUT = enum.auto()
    #: a layout op that keeps the row-major element order (a reshape)
    FLAT_ORDER = enum.auto()

    # -- hardware --------------------------------------------------------------
    #: may run on the host, after the dataflow, when it produces a graph output
    HOST = enum.auto()

    # -- qonnx's cleanup, reproduced by sira.model -----------------------------
    #: constant folding keeps it even when all its inputs are constant (sira
    #: reads a weight quantizer's integer grid from the node); qonnx keeps
    #: Quant, BipolarQuant, QuantizeLinear, DequantizeLinear, sira also IntQuant and Trunc
    KEPT_BY_FOLDING = enum.auto()
    #: qonnx's cleanup moves it into the qonnx domain (its "temporary fix")
    QONNX_DOMAIN = enum.auto()
    #: qonnx folds a Transpose of its constant output into its initializers
    #: (FoldTransposeIntoQuantInit)
    TRANSPOSE_FOLDS_INTO = enum.auto()
    #: qonnx puts its initializer inputs last (SortCommutativeInputsInitializerLast)
    INITIALIZERS_LAST = enum.auto()


_T = Trait
_QUANT = _T.QUANTIZER | _T.ELEMENTWISE | _T.NONLINEAR | _T.REQUANTIZER
_INT_QUANT = _QUANT | _T.SCALED_QUANTIZER | _T.INT_QUANTIZER | _T.REAL_QUANTIZER | _T.KEPT_BY_FOLDING
_NONLINEAR = _T.ELEMENTWISE | _T.NONLINEAR
_AFFINE = _T.ELEMENTWISE | _T.AFFINE
_RESHAPE = _T.MOVEMENT | _T.LAYOUT | _T.FLAT_ORDER | _T.KEEPS_INTEGERS
_MOVE = _T.MOVEMENT | _T.KEEPS_INTEGERS

#: op type -> its traits
OP_TRAITS: dict[str, Trait] = {
    # MACs
    "MatMul": _T.MAC,
    "Gemm": _T.MAC,
    "Conv": _T.MAC,
    "ConvTranspose": _T.MAC,
    # quantizers
    "Quant": _INT_QUANT | _T.QONNX_DOMAIN | _T.TRANSPOSE_FOLDS_INTO,
    "IntQuant": _INT_QUANT,
    "BipolarQuant": _QUANT | _T.SCALED_QUANTIZER | _T.REAL_QUANTIZER | _T.KEPT_BY_FOLDING | _T.QONNX_DOMAIN | _T.TRANSPOSE_FOLDS_INTO,
    "Trunc": _QUANT | _T.SCALED_QUANTIZER | _T.KEPT_BY_FOLDING | _T.QONNX_DOMAIN,
    "MultiThreshold": _QUANT,
    "QuantizeLinear": _QUANT | _T.KEPT_BY_FOLDING,
    "DequantizeLinear": _T.QUANTIZER | _T.ELEMENTWISE | _T.KEPT_BY_FOLDING,
    "FloatQuant": _T.QUANTIZER | _T.ELEMENTWISE,
    # elementwise, affine with a constant operand
    "Add": _AFFINE | _T.INITIALIZERS_LAST,
    "Sub": _AFFINE,
    "Mul": _AFFINE | _T.INITIALIZERS_LAST,
    "Div": _AFFINE,
    # other elementwise
    "Neg": _T.ELEMENTWISE,
    "BatchNormalization": _T.ELEMENTWISE,
    "Sum": _T.ELEMENTWISE | _T.INITIALIZERS_LAST,
    "And": _T.ELEMENTWISE | _T.INITIALIZERS_LAST,
    "Or": _T.ELEMENTWISE | _T.INITIALIZERS_LAST,
    "Xor": _T.ELEMENTWISE | _T.INITIALIZERS_LAST,
    "Min": _T.ELEMENTWISE,
    "Max": _T.ELEMENTWISE,
    "Abs": _T.ELEMENTWISE,
    "Cast": _T.ELEMENTWISE,
    "Relu": _NONLINEAR | _T.KEEPS_INTEGERS,
    "LeakyRelu": _NONLINEAR,
    "Clip": _NONLINEAR,
    "HardSigmoid": _NONLINEAR,
    "HardSwish": _NONLINEAR,
    "Floor": _NONLINEAR,
    "Ceil": _NONLINEAR,
    "Round": _NONLINEAR,
    "Sign": _NONLINEAR,
    "Sigmoid": _NONLINEAR,
    "Tanh": _NONLINEAR,
    "Erf": _NONLINEAR,
    "Exp": _NONLINEAR,
    "Log": _NONLINEAR,
    "Sqrt": _NONLINEAR,
    "Softplus": _NONLINEAR,
    "Elu": _NONLINEAR,
    "Selu": _NONLINEAR,
    "Celu": _NONLINEAR,
    # data movement
    "Identity": _RESHAPE,
    "Reshape": _RESHAPE,
    "Flatten": _RESHAPE,
    "Squeeze": _RESHAPE,
    "Unsqueeze": _RESHAPE,
    "Transpose": _T.MOVEMENT | _T.LAYOUT | _T.KEEPS_INTEGERS,
    "Expand": _MOVE,
    "Tile": _MOVE,
    "DepthToSpace": _MOVE,
    "SpaceToDepth": _MOVE,
    "Split": _MOVE,
    "Slice": _MOVE,
    "Gather": _MOVE,
    "Pad": _MOVE,
    "Im2Col": _MOVE,
    "Concat": _T.MOVEMENT,
    "Resize": _T.MOVEMENT,
    "Upsample": _T.MOVEMENT,
    # pooling and reductions
    "MaxPool": _T.POOLING | _T.KEEPS_INTEGERS,
    "GlobalMaxPool": _T.POOLING | _T.KEEPS_INTEGERS,
    "MaxPoolNHWC": _T.POOLING | _T.KEEPS_INTEGERS,
    "AveragePool": _T.POOLING,
    "GlobalAveragePool": _T.POOLING,
    "ReduceMax": _T.POOLING,
    "ReduceMin": _T.POOLING,
    "ReduceMean": _T.POOLING,
    "ReduceSum": _T.POOLING,
    # functions along an axis
    "Softmax": _T.ALONG_AXIS | _T.NONLINEAR | _T.HOST,
    "LogSoftmax": _T.ALONG_AXIS | _T.NONLINEAR | _T.HOST,
    "ArgMax": _T.ALONG_AXIS | _T.NONLINEAR | _T.HOST,
    "ArgMin": _T.ALONG_AXIS | _T.NONLINEAR,
    "TopK": _T.ALONG_AXIS | _T.NONLINEAR | _T.HOST,
}

#: the traits that say what kind of op it is; every op in the table has one
KINDS = Trait.MAC | Trait.QUANTIZER | Trait.ELEMENTWISE | Trait.MOVEMENT | Trait.POOLING | Trait.ALONG_AXIS


def traits(op_type: str) -> Trait:
    """The traits of ``op_type``; none for an op sira does not know."""
    return OP_TRAITS.get(op_type, Trait(0))


def has_trait(op_type: str, trait: Trait) -> bool:
    """Whether ``op_type`` has every trait in ``trait``."""
    return trait in traits(op_type)


@functools.cache
def ops_with(trait: Trait) -> frozenset[str]:
    """The op types that have every trait in ``trait``."""
    return frozenset(op for op, own in OP_TRAITS.items() if trait in own)


def is_mac(op_type: str) -> bool:
    """A MAC (MatMul, Gemm, Conv, ConvTranspose): its output is an accumulator."""
    return has_trait(op_type, Trait.MAC)


def is_quantizer(op_type: str) -> bool:
    """A quantizer or dequantizer: a model without any is a float model."""
    return has_trait(op_type, Trait.QUANTIZER)


def is_requantizer(op_type: str) -> bool:
    """A quantizer whose output is a fresh integer grid: it ends an integer chain."""
    return has_trait(op_type, Trait.REQUANTIZER)


__all__ = ["Trait", "OP_TRAITS", "KINDS", "traits", "has_trait", "ops_with", "is_mac", "is_quantizer", "is_requantizer"]
