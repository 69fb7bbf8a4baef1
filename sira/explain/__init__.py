"""``sira explain``: why a tensor or a layer has the width it has.

:func:`explain` looks at one tensor (or the node producing it) and returns a
JSON-able document with the numbers behind its range and datatype;
:func:`explain_text` renders it for people. Four kinds of explanation:

* ``mac`` - the accumulator of a MatMul/Conv/Gemm with constant integer
  weights: the dot-product length ``K``, the input integer interval, per
  output channel the sums of positive and of negative weights and the proven
  accumulator interval, the channels that set the layer's maximum and
  minimum, the width rule with its numbers, the comparison with the A2Q
  datatype bound and FINN's weight-aware width, and two what-ifs computed
  exactly: the input one bit narrower (same scale, values clipped - the
  MAC's range rule re-run on that input), and the layer without the channel
  that sets its width.
* ``thresholds`` - a ``MultiThreshold`` of the model, or, on an original
  model, a tensor that ``sira optimize`` turns into thresholds (a quantizer
  on run-time data and the elementwise chain before it): the chain it
  replaced, the tensor it reads and the thresholds per channel. On an
  original model this runs :func:`sira.optimize` (``samples`` inputs for its
  final check).
* ``fallback`` - a tensor whose range came from an op without a rule: which
  op, and what that means for the tensors after it.
* ``tensor`` - anything else: range, integer range, scale, bias, datatype,
  and the producing op with the rule that computed them.

Every document also has the tensor's range entry exactly as
``sira analyze --format json`` writes it (``tensor``) and its producer
(``producer``: node, op type, rule, exactness).

Names: a tensor or node name of the model as :func:`sira.load` prepares it
(``MatMul_0``, ``MatMul_0_out0``, ``global_in``), or a name of the original
file (``fc0``, ``fc0_acc``, ``pixels``). An unknown name raises
:class:`~sira.errors.SiraError` listing close matches.

The package's modules: :mod:`.core` (names, the document), :mod:`.mac`,
:mod:`.thresholds`, :mod:`.text` (people's view) and :mod:`.command` (the
``sira explain`` subcommand). Names are imported from them on first use
(PEP 562), so registering the subcommand costs no numpy or qonnx.
"""

from __future__ import annotations

from ..lazy import lazy_getattr

#: random inputs of the final equivalence check when explain runs sira.optimize
DEFAULT_SAMPLES = 50

#: public name -> owning module
_EXPORTS = {
    "explain": "sira.explain.core",
    "resolve_name": "sira.explain.core",
    "loose_origins": "sira.explain.core",
    "explain_text": "sira.explain.text",
    "width_formula": "sira.explain.mac",
    "MAC_OPS": "sira.explain.mac",
    "add_parser": "sira.explain.command",
    "cmd_explain": "sira.explain.command",
}

__all__ = ["DEFAULT_SAMPLES", *_EXPORTS]


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())