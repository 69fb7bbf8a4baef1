"""Per-layer FPGA resource cost: FINN's formulas and sira's refined model.

Every function here is a pure function of plain parameters (bit widths,
folding, shapes; no graph access) and returns a :class:`Cost` with FINN's key
names (``LUT``, ``DSP``, ``BRAM_18K``, ``URAM`` via :meth:`Cost.finn_dict`).
Two modes (section numbers refer to docs/research/fpga_cost_and_hls.md):

``"finn"``
    FINN's analytical estimates exactly as §1 gives them, so numbers can be
    diffed against FINN's ``estimate_layer_resources.json``. Where FINN has
    no estimate for a layer it reports 0 (its base class default, §1.0); finn
    mode reproduces that 0 and says so in :attr:`Cost.note`.

``"refined"`` (default)
    The §6 model: each op decomposed into the primitives of §6.2 (adders,
    comparators, fabric or DSP multipliers, adder trees, popcounts, memories
    mapped to LUTRAM/BRAM18/URAM by geometry), with an explicit DSP-or-LUT
    decision for every multiply (:class:`Multiply`) against the part's DSP
    operand widths. A non-trivial layer never costs 0; a cost the notes give
    no formula for is :data:`UNKNOWN`, never 0.

Closed-form formulas are written once, as sympy expressions in
:data:`sira.formulas.FORMULAS` (``formula(name)`` returns one for reports);
they are evaluated exactly (integers and rationals, ``floor``/``ceiling``),
so FINN's ``int(...)`` truncations are reproduced without float rounding.
Tables and branches (memory aspect ratios, resource-style conditions) are
Python. Memories are laid out by :mod:`sira.memory` (the layout the
generated code builds) and mapped to primitives there; multiplies are bound
by :mod:`sira.multipliers`.

This module gathers the model under one name: the results
(:mod:`sira.cost_result`), the dot-product and threshold layers
(:mod:`sira.cost_mac`) and the streaming layers (:mod:`sira.cost_stream`).
"""

from __future__ import annotations

from .cost_mac import a2q_acc_bits, integer_requant, mvau, thresholding, vvau
from .cost_result import (MODES, UNKNOWN, Amount, Cost, check_mode, finn_zero, part_fraction, refined_cost,
                          resolve_part, stored, sum_amounts)
from .cost_stream import (MAXPOOL_CONTROL_LUT, add_streams, duplicate_streams, dwc, elementwise_binary, fifo,
                          fmpadding, global_pool, lookup, pool, stream_mux, streaming_maxpool, swg_hls, swg_rtl)
from .devices import Part
from .formulas import FORMULAS, formula
from .memory import Memory, bram18_finn, map_memory
from .multipliers import Multiply, adder_tree, multiply

__all__ = [
    "MODES", "UNKNOWN", "Amount", "Cost", "Memory", "Multiply", "Part", "FORMULAS", "formula",
    "check_mode", "finn_zero", "part_fraction", "refined_cost", "resolve_part", "stored", "sum_amounts",
    "bram18_finn", "map_memory", "multiply", "adder_tree", "a2q_acc_bits",
    "mvau", "vvau", "thresholding", "integer_requant", "elementwise_binary", "add_streams", "duplicate_streams",
    "MAXPOOL_CONTROL_LUT", "streaming_maxpool", "global_pool", "pool", "fmpadding",
    "swg_hls", "swg_rtl", "fifo", "dwc", "stream_mux", "lookup",
]  # fmt: skip
