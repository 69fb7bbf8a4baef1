"""sira: scaled-integer range analysis for quantized neural networks (QONNX).

Public API::

    import sira
    model = sira.load("model.onnx")                 # prepared ModelWrapper
    report = sira.analyze(model, input_spec=(0, 1))  # tensor -> ScaledIntRange
    result = sira.verify(model, input_spec=(0, 1), samples=200)
    optimized, report = sira.optimize(model, input_spec=(0, 1))
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import SiraError
from .range import ScaledIntRange
from .model import load
from .analysis import AnalysisWarning, RangeReport, analyze
from .rules import RULES, RuleContext, rule
from .verify import EquivalenceResult, VerifyResult, verify, verify_equivalent



def optimize(model, input_spec=None, **options):
    """The SIRA pipeline (lower, aggregate, thresholds, annotate), every pass
    verified bit-exact: returns ``(optimized ModelWrapper, OptimizeReport)``.
    See :func:`transforms.pipeline.optimize` for the options. Imported on
    use: the analysis itself never depends on the transforms."""
    from transforms.pipeline import optimize as run

    return run(model, input_spec, **options)


__all__ = [
    "optimize",
    "__version__",
    "SiraError",
    "ScaledIntRange",
    "load",
    "analyze",
    "AnalysisWarning",
    "RangeReport",
    "RULES",
    "RuleContext",
    "rule",
    "verify",
    "VerifyResult",
    "verify_equivalent",
    "EquivalenceResult",
]
