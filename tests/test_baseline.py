"""The FINN baseline of `sira estimate` against what FINN 1.6.1 itself
estimates for the same zoo models (../shared/peers/finn_results): every
layer and the totals within 5 % (LUT, BRAM_18K, DSP), at FINN's own
folding (PE = SIMD = 1, and the folding FINN chose for 100k fps), and the
accumulators FINN minimized; plus FINN's rules one by one."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from sira import hw
from sira.baseline import FLOAT_BITS, FinnThresholding
from sira.estimate import estimate_prepared, prepare
from sira.layer_costs import layer_cost
from sira.transforms.widths import finn_input_datatype, finn_weight_datatype, xnor_mode

from tests.helpers import FAST_ZOO, ZOO_MODELS, finn_folding, finn_results, prepared_zoo

KEYS = ("LUT", "BRAM_18K", "DSP")
#: the tolerance of a layer or a total against FINN's number
TOLERANCE = 0.05


def _close(ours, finn) -> bool:
    return abs(ours - finn) <= TOLERANCE * abs(finn)


@pytest.mark.parametrize("fold", ["fold1", "fps100k"])
@pytest.mark.parametrize("name", [n if n in FAST_ZOO else pytest.param(n, marks=pytest.mark.slow) for n in sorted(ZOO_MODELS)])
def test_baseline_is_what_finn_builds(name, fold):
    """Per layer and in total, the baseline column (finn mode) is FINN's own
    estimate within 5 %; its accumulators are the ones FINN minimized; a
    step sira runs on the host is in the baseline as the layer FINN builds."""
    finn = finn_results(name)["finn"][fold]
    prepared = prepared_zoo(name)
    doc, _, _ = estimate_prepared(prepared, "xc7z020clg400-1", 10.0, "finn", folding=finn_folding(prepared[2], finn["layers"]))
    base, finn_res = doc["baseline"]["layers"], finn["estimate_layer_resources"]
    macs = [n for n, d in base.items() if d["op_type"] in ("MVAU", "VVAU") and not d.get("host")]
    thresholds = [n for n, d in base.items() if d["op_type"] == "Thresholding_rtl"]
    matched = 0
    for layer in finn["layers"]:
        ours = None
        if layer["op_type"].startswith(("MVAU", "VVAU")):
            ours = base[macs.pop(0)]
            assert ours["acc_bits"] == int(layer["accDataType"].removeprefix("U").removeprefix("INT")), layer["name"]
        elif layer["op_type"].startswith("Thresholding"):
            ours = base[thresholds.pop(0)]
            assert ours["PE"] == layer["PE"], layer["name"]
        if ours is None:
            assert all(finn_res[layer["name"]][k] == 0 for k in KEYS), layer["name"]  # reshapes, elementwise tails, softmax
            continue
        matched += 1
        for k in KEYS:
            assert _close(ours[k], finn_res[layer["name"]][k]), (layer["name"], k, ours[k], finn_res[layer["name"]][k])
    assert matched and not macs and not thresholds
    for k in KEYS:  # FINN's report predates FIFO insertion: the stream plumbing is left out
        total = doc["baseline"]["total"][k] - doc["baseline"]["total"]["plumbing"][k]
        assert _close(total, finn_res["total"][k]), (k, total, finn_res["total"][k])
    for lname, d in doc["layers"].items():
        if d.get("host") and lname in base and base[lname]["op_type"] == "Thresholding_rtl":
            assert not base[lname].get("host") and base[lname]["LUT"] > 0


def test_finn_weight_and_input_types():
    """+-1 weights are INT2 to FINN unless the input is bipolar too (XNOR:
    both one bit, inputs counted as {0, 1}); other weights get FINN's
    minimization (the narrowest signed type holding min and -max - 1)."""
    pm1 = np.array([[1, -1], [-1, 1]])
    assert finn_weight_datatype(pm1, "INT2") == "INT2"
    assert finn_weight_datatype(pm1, "BIPOLAR") == "BINARY"
    assert xnor_mode("BIPOLAR", "BIPOLAR") and not xnor_mode("BIPOLAR", "INT2")
    assert finn_input_datatype("BIPOLAR", "BIPOLAR").name == "BINARY"
    assert finn_input_datatype("BIPOLAR", "INT2").name == "BIPOLAR"
    assert finn_weight_datatype(np.array([[-4, 2]]), "UINT4") == "INT3"
    assert finn_weight_datatype(np.array([[-3, 3]]), "UINT4") == "INT3"
    assert finn_weight_datatype(np.array([[-1, 2]]), "UINT4") == "INT3"
    assert finn_weight_datatype(np.array([[0, 5]]), "UINT4") == "UINT3"


@pytest.mark.parametrize("channels, steps, pe, lut", [(784, 2, 1, 1216), (784, 1, 1, 416), (1, 254, 1, 288), (64, 63, 1, 2016)])
def test_float_input_thresholding_is_finns_rtl_estimate(channels, steps, pe, lut):
    """FINN's Thresholding_rtl on a float input: per PE and output bit s one
    32-bit threshold memory of CF * 2^s words in LUTRAM (the numbers FINN
    reports for the zoo's input quantizers); the refined model prices the
    comparators too."""
    layer = FinnThresholding(
        name="t", inputs=("x",), outputs=("y",), in_shape=(1, channels), out_shape=(1, channels), in_type=hw.StreamType.float32(),
        out_type=hw.StreamType.for_range(0, steps), channels=channels, steps=steps, threshold_type=hw.StreamType(FLOAT_BITS, True), pe=pe,
    )  # fmt: skip
    finn = layer_cost(layer, mode="finn")
    assert (finn.lut, finn.bram18, finn.dsp) == (lut, 0, 0)
    refined = layer_cost(layer, mode="refined")
    assert refined.lut > 0 and refined.kind == "Thresholding_rtl"


CONFORMANCE = sorted(p.stem for p in (pathlib.Path(__file__).resolve().parent.parent / "examples" / "zoo" / "models").glob("*.onnx"))


def _assert_no_resource_grows(doc: dict, where: str) -> None:
    """SIRA's dataflow uses no more LUT, DSP, BRAM_18K or URAM than the
    baseline (what FINN builds from the same model) in total, and a layer
    that chose its implementation within FINN's layer is within it."""
    for name, d in doc["layers"].items():
        if "impl" in d and not d["impl"]["reason"].startswith("none uses"):
            b = doc["baseline"]["layers"][name]
            assert all(d[k] <= b[k] for k in KEYS + ("URAM",)), (where, name, d["impl"]["chosen"], {k: (d[k], b[k]) for k in KEYS})
    total, base = doc["total"], doc["baseline"]["total"]
    assert all(total[k] <= base[k] for k in KEYS + ("URAM",)), (where, {k: (total[k], base[k]) for k in KEYS})


@pytest.mark.parametrize("fold", ["fold1", "fps100k"])
@pytest.mark.parametrize("name", [n if n in FAST_ZOO else pytest.param(n, marks=pytest.mark.slow) for n in sorted(ZOO_MODELS)])
def test_no_resource_grows_on_the_zoo(name, fold):
    """At FINN's own foldings, the refined estimate of SIRA's build is
    within the baseline's in every resource (the implementation policy
    ``auto`` keeps each requantizer within FINN's layer)."""
    prepared = prepared_zoo(name)
    folding = finn_folding(prepared[2], finn_results(name)["finn"][fold]["layers"])
    doc, _, _ = estimate_prepared(prepared, "xc7z020clg400-1", 10.0, "refined", folding=folding)
    _assert_no_resource_grows(doc, f"{name} {fold}")


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFORMANCE)
def test_no_resource_grows_on_the_conformance_zoo(name):
    models = pathlib.Path(__file__).resolve().parent.parent / "examples" / "zoo" / "models"
    prepared = prepare(str(models / f"{name}.onnx"), str(models / f"{name}.spec.json"))
    doc, _, _ = estimate_prepared(prepared, "xc7z020clg400-1", 10.0, "refined")
    _assert_no_resource_grows(doc, name)
