"""HLS backend: a QONNX model to a Vitis HLS C++ project, proven bit-exact by
C simulation with g++.

    result = sira.build("model.onnx", "out/model_hls", input_spec=spec, csim=True)
    print(result.csim.summary())        # csim: 108/108 outputs bit-exact

:func:`build` optimizes the model, lowers it to hardware layers, folds and
costs them (:func:`sira.estimate.estimate_prepared`, refined mode: its DSP or
fabric multiplies and memory primitives are what the code binds), plans the
dataflow (:mod:`.dataflow`), takes test vectors from the original model
(:mod:`.vectors`), renders the templates of ``sira/hls_templates/`` and writes the
project folder atomically (:mod:`.project`). :func:`csim` compiles and runs
its testbench (:mod:`.simulate`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_getattr

#: public name -> owning module (imported on first use, PEP 562: importing
#: ``sira.hls.dataflow`` from the estimate must not pull in the builder)
_EXPORTS = {
    "build": "sira.hls.builder",
    "build_layers": "sira.hls.builder",
    "BuildResult": "sira.hls.builder",
    "csim": "sira.hls.simulate",
    "CsimResult": "sira.hls.simulate",
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from .builder import BuildResult, build, build_layers
    from .simulate import CsimResult, csim
