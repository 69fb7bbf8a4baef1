"""sira: scaled-integer range analysis for quantized neural networks (QONNX).

Public API::

    import sira
    model = sira.load("model.onnx")                 # prepared ModelWrapper
    report = sira.analyze(model, input_spec=(0, 1))  # tensor -> ScaledIntRange
    result = sira.verify(model, input_spec=(0, 1), samples=200)
    optimized, report = sira.optimize(model, input_spec=(0, 1))
    doc = sira.estimate.estimate("model.onnx", input_spec=(0, 1))  # resources, SIRA vs FINN
    result = sira.build("model.onnx", "out", input_spec=(0, 1), run_csim=True)
    sira.csim("out")                                              # g++ C simulation

This module is a lazy facade (PEP 562): each name is imported from the
module that owns it on first use, so ``import sira`` and ``sira --help``
cost nothing, and no module of sira ever imports this one (the layers are
listed in ARCHITECTURE.md and enforced by ``tests/test_layering.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_getattr
from .version import __version__

#: public name -> owning module
_EXPORTS = {
    "SiraError": "sira.errors",
    "ScaledIntRange": "sira.range",
    "load": "sira.model",
    "analyze": "sira.analysis",
    "AnalysisWarning": "sira.analysis",
    "RangeReport": "sira.analysis",
    "RULES": "sira.rules",
    "RuleContext": "sira.rules",
    "rule": "sira.rules",
    "verify": "sira.verification",
    "VerifyResult": "sira.verification",
    "verify_equivalent": "sira.verification",
    "EquivalenceResult": "sira.verification",
    "optimize": "sira.transforms.pipeline",
    "build": "sira.hls.builder",
    "csim": "sira.hls.simulate",
}

#: submodules reachable as attributes (``sira.estimate.estimate(...)``)
_SUBMODULES = frozenset({
    "analysis", "cli", "cost", "devices", "diff", "errors", "estimate", "execute", "explain", "folding", "hls",
    "htmlreport", "hw", "inputspec", "lint", "model", "numerics", "range", "report", "rules", "steps",
    "verification",
})  # fmt: skip

__all__ = ["__version__", *_EXPORTS]


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals(), _SUBMODULES)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)


if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from sira.transforms.pipeline import optimize
    from .analysis import AnalysisWarning, RangeReport, analyze
    from .errors import SiraError
    from .hls.builder import build
    from .hls.simulate import csim
    from .model import load
    from .range import ScaledIntRange
    from .rules import RULES, RuleContext, rule
    from .verification import EquivalenceResult, VerifyResult, verify, verify_equivalent
