"""Elementwise chains to exact integer thresholds (qonnx ``MultiThreshold``).

A *chain* is the run of elementwise ops between an integer tensor - a MAC
accumulator, or a graph input on an integer grid - and the quantizer that
ends the layer::

    acc -> Mul(s) -> Add(b) -> BatchNormalization -> Relu -> Quant(s2, 4 bit)

Per channel ``c`` the chain maps the integer ``q`` monotonically to one of
the quantizer's levels ``lvl0 + n``, so it *is* a threshold function:
``n_c(q) = #{k : q >= T[c, k]}``, ``T[c, k]`` the smallest integer reaching
level index ``k``. qonnx's MultiThreshold computes exactly that count
(``y = out_scale * #{i : x >= T[c, i]} + out_bias``). The conversion is
exact, not sampled:

* **Monotonicity is proved per op** (each op's entry in
  :mod:`sira.semantics` says why it is monotone and in which direction);
  the chain's direction per channel is the product. A non-monotone op (LeakyRelu with a negative slope, a Div by the
  data) leaves the chain unconverted with the reason.
* **Levels follow the exact QONNX semantics**: ``x/s + z``, clip to the
  integer limits (narrow range included), then round with the node's mode
  (ROUND is half-to-even), all on exact rationals (every float constant is
  the rational it stores). Irrational intermediates - the square root in
  BatchNormalization, ``exp`` in Sigmoid and Tanh - are enclosed in rational
  intervals (integer square roots; mpmath's rigorous interval arithmetic),
  refined until the quantizer's decision is the same at both ends of the
  interval (see :meth:`LevelOracle.exact`). A tie can only be met exactly by a
  rational value, and rational values are computed exactly, so ties are
  always resolved by the rounding mode, never by float noise.
* **Thresholds by bisection** over the accumulator's proven integer range,
  vectorized over channels and levels on a float64 interval screen (outward
  rounded); comparisons the screen cannot decide are decided exactly.
* **Decreasing channels by negation**: MultiThreshold only counts
  ``x >= T``, a non-decreasing function of ``x``, and its ``out_scale`` is
  one scalar for all channels. A channel whose chain decreases is therefore
  thresholded on ``-q``: a ``Mul`` by a per-channel sign vector (+-1, exact
  in any float format) is placed before the MultiThreshold - the scalar -1
  when every channel decreases. FINN's streamlining absorbs such sign
  factors into the weights of the producing MAC.
* **Verification**: every threshold is confirmed exactly (the level at
  ``T - 1`` is below ``k``, at ``T`` it is reached), which with the proved
  monotonicity is a proof of the whole step function; as a cross-check,
  ranges with fewer than ``exhaustive_limit`` (channel, value) pairs
  (:data:`search.EXHAUSTIVE_PAIRS` by default) are also compared at every
  integer against a MultiThreshold (sira's kernel, equal to qonnx's) on
  the thresholds as stored (float32, or float64 past 2**24). A mismatch
  raises.

Levels reached on a channel's whole range and levels it never reaches have
thresholds outside the range; columns that are so for every channel are
dropped (``out_bias`` absorbs the always-reached ones), the rest stay
clipped to the union of the channel ranges. Thresholds are searched over
that union for every channel, so channels computing the same function get
identical rows, which are merged into one ``(1, S)`` row.

The output reproduces the quantizer's values: ``out_scale``/``out_bias``
carry its scale and zero-point when they are per-tensor and the products are
exact float32 numbers; otherwise the MultiThreshold emits the integer levels
and an explicit ``Add(-z)``/``Mul(s)`` repeats the quantizer's own float
arithmetic ``(L - z) * s``.

Two passes use this: :class:`ConvertChainsToThresholds` for chains that
start at an integer tensor (integer scale and bias, e.g. scale 1 and bias 0
after scale/bias aggregation, or the levels of an earlier threshold) and :class:`ConvertInputQuantToThresholds` for the first
quantizer on a graph input that the input spec puts on an integer grid
(``uint8 / 255``): the input becomes the raw integer, thresholded directly.

Non-monotone elementwise sub-graphs of one integer tensor (SiLU) become
two such counts, of the rising and of the falling breakpoints
(:class:`ConvertDagsToPiecewiseThresholds`, :mod:`.piecewise`).

Modules: :mod:`.chain` (a chain read from the graph, the quantizer's
levels), :mod:`.search` (the level oracle, bisection, encoding and
verification), :mod:`.passes` (the graph rewrite). The elementwise maps are
:mod:`sira.semantics`'s, re-exported here.
"""

from sira.semantics import BatchNorm, Clip, Divide, HardSigmoid, LeakyRelu, Offset, Reflect, Relu, Scale, Sigmoid, Tanh

from .chain import CHAIN_OPS, MOVEMENT_OPS, QUANTIZERS, Chain, NotConvertible, Requantizer, build_chain, data_input, integer_values
from .piecewise import ConvertDagsToPiecewiseThresholds, ElementwiseDag, Piecewise, breakpoints, build_dag, find_dag
from .passes import ConvertChainsToThresholds, ConvertedChain, ConvertInputQuantToThresholds, ThresholdReport, UnconvertedChain
from .search import FLOAT32_EXACT, FLOAT64_EXACT, Conversion, Encoding, LevelOracle, convert_chain, encode, find_thresholds, verify_encoding

__all__ = [
    "BatchNorm",
    "CHAIN_OPS",
    "Chain",
    "Clip",
    "Conversion",
    "ConvertChainsToThresholds",
    "ConvertDagsToPiecewiseThresholds",
    "ConvertInputQuantToThresholds",
    "ConvertedChain",
    "Divide",
    "ElementwiseDag",
    "Encoding",
    "FLOAT32_EXACT",
    "FLOAT64_EXACT",
    "HardSigmoid",
    "LeakyRelu",
    "LevelOracle",
    "MOVEMENT_OPS",
    "NotConvertible",
    "Offset",
    "Piecewise",
    "QUANTIZERS",
    "Reflect",
    "Relu",
    "Requantizer",
    "Scale",
    "Sigmoid",
    "Tanh",
    "ThresholdReport",
    "UnconvertedChain",
    "breakpoints",
    "build_chain",
    "build_dag",
    "convert_chain",
    "data_input",
    "encode",
    "find_dag",
    "find_thresholds",
    "integer_values",
    "verify_encoding",
]
