"""sira against qonnx 1.0.0's range analysis on the zoo models.

For every model of the QONNX model-zoo subset in ``shared/models/zoo`` (the
tests skip when that folder is absent; the models are never copied into the
repository) and for the benchmark's synthetic conv net, both tools analyze
the same prepared model (:func:`sira.load`) for the same input range, and
for every tensor both report:

* sira's real range is never wider than qonnx's, per channel as qonnx
  reports it, beyond the float32 rounding of qonnx's numbers;
* the model is executed (qonnx's executor) on random and corner inputs;
  every value seen lies inside sira's range, and the tensors where qonnx's
  range misses a seen value (qonnx unsound, sira sound) are exactly the ones
  listed in :data:`QONNX_UNSOUND`.

Tensors qonnx does not cover (it skips ops it has no rule for, and folds the
weight quantizers away) are not compared. Tensors where sira falls back to
its no-rule range must be listed in :data:`EXPECTED_FALLBACKS`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

import sira
from sira.model import quiet
from tests.helpers import FAST_ZOO, execute

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # the benchmark's synthetic models
#: the zoo lives in shared/ beside the repository; SIRA_ZOO overrides
ZOO = Path(os.environ.get("SIRA_ZOO", ROOT.parent / "shared" / "models" / "zoo"))

#: model path in the zoo -> input range (lo, hi) for every input, or None
#: for the input's own datatype annotation. From the zoo README: TFC takes
#: MNIST pixels in [0, 1]; kwsmlp's first op is an 8-bit Quant clipping at
#: about +-105.4; the jet tagger takes standardized features (+-4); UNSW's
#: input is annotated BIPOLAR.
ZOO_MODELS: dict[str, Optional[tuple[float, float]]] = {
    "MNIST/Brevitas_FINN_TFC/TFC/TFC_1W1A.onnx": (0.0, 1.0),
    "MNIST/Brevitas_FINN_TFC/TFC/TFC_1W2A.onnx": (0.0, 1.0),
    "MNIST/Brevitas_FINN_TFC/TFC/TFC_2W2A.onnx": (0.0, 1.0),
    "GSCV2/kwsmlp_w3a3/kwsmlp_w3a3.onnx": (-105.5, 105.5),
    "JetTagging/QKeras_hls4ml_3layer/qkeras_jettagging.onnx": (-4.0, 4.0),
    "UNSW_NB15/unsw_nb15_mlp_w2a2/unsw_nb15-mlp-w2a2.onnx": None,
}

#: model -> tensors (names after sira.load) where sira uses its no-rule range
EXPECTED_FALLBACKS: dict[str, set[str]] = {}

#: model -> tensors where execution showed values outside qonnx's range
QONNX_UNSOUND: dict[str, set[str]] = {}

#: float32 rounding allowed, relative to the magnitude of the tensor (the
#: largest |bound| qonnx gives it). qonnx computes its bounds in float32 and
#: the model executes in float32: dot products are summed naively (kwsmlp's
#: 490-term MatMul_0 is off by up to 4.1e-6 of its magnitude; the worst case is
#: n * 2**-24) and BatchNormalization cancels (a constant channel of UNSW's
#: BatchNormalization_2 is 2**-19 in qonnx, 2.356e-6 exactly): relative to
#: the channel's own bound these errors are unbounded
RTOL = 1e-5
#: executions per model (besides the all-lo and all-hi corners)
SAMPLES = 14
SEED = 20240601


def _zoo_path(rel: str) -> Path:
    if not ZOO.is_dir():
        pytest.skip(f"zoo folder {ZOO} is absent (set SIRA_ZOO to its location)")
    path = ZOO / rel
    if not path.is_file():
        pytest.skip(f"zoo model {rel} is absent from {ZOO}")
    return path


def _qonnx_ranges(model, irange) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """qonnx's range analysis: tensor -> (lo, hi) as float64 arrays, of size
    1 (per tensor) or one value per channel (axis 1)."""
    from qonnx.util.range_analysis import range_analysis

    with quiet():
        raw = range_analysis(model, irange=irange if irange is not None else "", report_mode="range")
    return {k: (np.asarray(lo, dtype=np.float64).reshape(-1), np.asarray(hi, dtype=np.float64).reshape(-1)) for k, (lo, hi) in raw.items()}


def _feeds(model, irange, rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """Input samples: both corners, random corners and uniform values for a
    real range; random +-1 vectors (and both constants) for BIPOLAR."""
    feeds = []
    for inp in model.graph.input:
        shape = model.get_tensor_shape(inp.name)
        if irange is None:
            assert model.get_tensor_datatype(inp.name).name == "BIPOLAR", "only BIPOLAR inputs go without a range"
            lo, hi = -1.0, 1.0
            random = [rng.choice([lo, hi], size=shape) for _ in range(SAMPLES)]
        else:
            lo, hi = irange
            random = [rng.choice([lo, hi], size=shape) for _ in range(SAMPLES // 2)]
            random += [rng.uniform(lo, hi, size=shape) for _ in range(SAMPLES - len(random))]
        samples = [np.full(shape, lo), np.full(shape, hi)] + random
        if not feeds:
            feeds = [{} for _ in samples]
        for feed, x in zip(feeds, samples):
            feed[inp.name] = x.astype(np.float32)
    return feeds


def _per_channel(arr: np.ndarray, shape: tuple, n: int, reduce) -> np.ndarray:
    """``arr`` (broadcastable to ``shape``) reduced to qonnx's layout: one
    value (n == 1) or one per index of axis 1 (n == shape[1])."""
    full = np.broadcast_to(arr, shape)
    if n == 1:
        return np.asarray(reduce(full)).reshape(1)
    assert len(shape) >= 2 and shape[1] == n, f"qonnx range of {n} values for a tensor of shape {shape}"
    return reduce(np.moveaxis(full, 1, 0).reshape(n, -1), axis=1)


def _compare(name: str, model, irange) -> None:
    """The checks of this module for one prepared model (see the top)."""
    report = sira.analyze(model, irange)
    qonnx = _qonnx_ranges(model, irange)

    fallbacks = {t for t, r in report.items() if r.fallback}
    assert fallbacks == EXPECTED_FALLBACKS.get(name, set()), f"{name}: tensors with sira's no-rule fallback range"
    missing = set(qonnx) - set(report)
    assert not missing, f"{name}: tensors qonnx reports but sira does not: {sorted(missing)}"
    compared = sorted(set(qonnx) - fallbacks)
    assert compared, f"{name}: no tensor to compare"

    contexts = [execute(model, feed) for feed in _feeds(model, irange, np.random.default_rng(SEED))]

    wider, unsound, outside = [], set(), []
    for t in compared:
        r = report[t]
        qlo, qhi = qonnx[t]
        n = qlo.size
        slack = RTOL * max(float(np.max(np.abs(qlo))), float(np.max(np.abs(qhi))))
        slo = _per_channel(r.lo, r.shape, n, np.min)
        shi = _per_channel(r.hi, r.shape, n, np.max)

        seen = [np.asarray(ctx[t], dtype=np.float64) for ctx in contexts]
        lo, hi = np.broadcast_to(r.lo, r.shape), np.broadcast_to(r.hi, r.shape)
        for v in seen:
            bad = (v < lo - slack) | (v > hi + slack)
            if np.any(bad):
                outside.append(f"{t}: {v[bad][:3]} outside sira's [{lo[bad][:3]}, {hi[bad][:3]}]")
                break
        seen_lo = np.min([_per_channel(v, r.shape, n, np.min) for v in seen], axis=0)
        seen_hi = np.max([_per_channel(v, r.shape, n, np.max) for v in seen], axis=0)
        if np.any(seen_lo < qlo - slack) or np.any(seen_hi > qhi + slack):
            unsound.add(t)
        elif np.any(slo < qlo - slack) or np.any(shi > qhi + slack):
            bad = np.flatnonzero((slo < qlo - slack) | (shi > qhi + slack))
            c = bad[0]
            wider.append(f"{t}[{c}]: sira [{slo[c]!r}, {shi[c]!r}] vs qonnx [{qlo[c]!r}, {qhi[c]!r}] ({bad.size} of {n} channels)")

    assert not outside, f"{name}: sira unsound, executed values outside its range:\n  " + "\n  ".join(outside)
    assert not wider, f"{name}: sira wider than qonnx on {len(wider)} tensors:\n  " + "\n  ".join(wider)
    assert unsound == QONNX_UNSOUND.get(name, set()), f"{name}: tensors where execution leaves qonnx's range"


@pytest.mark.parametrize(
    "rel", [pytest.param(rel, marks=() if Path(rel).stem.replace("-", "_") in FAST_ZOO else pytest.mark.slow) for rel in sorted(ZOO_MODELS)], ids=lambda r: Path(r).stem
)
def test_zoo_model(rel):
    _compare(Path(rel).stem, sira.load(_zoo_path(rel)), ZOO_MODELS[rel])


def test_synthetic_conv_net():
    """The benchmark's depthwise-separable conv net: Conv (dense, depthwise,
    strided, zero-padded), BatchNormalization, GlobalAveragePool and Flatten,
    which no zoo model has."""
    import models

    _compare("mobilenet_like", sira.load(models.mobilenet_like()), models.CONV_INPUT_RANGE)


def test_every_zoo_model_has_an_input_range():
    if not ZOO.is_dir():
        pytest.skip(f"zoo folder {ZOO} is absent (set SIRA_ZOO to its location)")
    found = {p.relative_to(ZOO).as_posix() for p in ZOO.rglob("*.onnx")}
    assert found <= set(ZOO_MODELS), f"zoo models without an entry in ZOO_MODELS: {sorted(found - set(ZOO_MODELS))}"
