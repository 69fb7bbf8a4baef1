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


def build(model, out_dir, input_spec=None, **options):
    """The Vitis HLS project of a model, optionally C-simulated; see
    :func:`sira.hls.build`."""
    from .hls import build as run

    return run(model, out_dir, input_spec, **options)


def csim(project_dir, **options):
    """C simulation of a project made by :func:`build`; see :func:`sira.hls.csim`."""
    from .hls import csim as run

    return run(project_dir, **options)


__all__ = [
    "optimize",
    "build",
    "csim",
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
