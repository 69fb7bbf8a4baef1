"""Shared fixtures: the QONNX model zoo (read in place, never copied)."""

from __future__ import annotations

import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ZOO = os.environ.get("SIRA_ZOO", os.path.normpath(os.path.join(HERE, "..", "..", "shared", "models", "zoo")))

#: zoo model -> (relative path, input spec). Ranges from the zoo's README:
#: MNIST pixels are the uint8 grid scaled by 1/255; the keyword-spotting MLP
#: is clipped by its own 8-bit input quantizer (about +-105.4); jet-tagging
#: features are standardized (+-4); UNSW's input is annotated BIPOLAR.
ZOO_MODELS = {
    "TFC_1W1A": ("MNIST/Brevitas_FINN_TFC/TFC/TFC_1W1A.onnx", {"inputs": {"*": {"int_min": 0, "int_max": 255, "scale": "1/255"}}}),
    "TFC_1W2A": ("MNIST/Brevitas_FINN_TFC/TFC/TFC_1W2A.onnx", {"inputs": {"*": {"int_min": 0, "int_max": 255, "scale": "1/255"}}}),
    "TFC_2W2A": ("MNIST/Brevitas_FINN_TFC/TFC/TFC_2W2A.onnx", {"inputs": {"*": {"int_min": 0, "int_max": 255, "scale": "1/255"}}}),
    "kwsmlp_w3a3": ("GSCV2/kwsmlp_w3a3/kwsmlp_w3a3.onnx", (-106.0, 106.0)),
    "qkeras_jettagging": ("JetTagging/QKeras_hls4ml_3layer/qkeras_jettagging.onnx", (-4.0, 4.0)),
    "unsw_nb15_mlp_w2a2": ("UNSW_NB15/unsw_nb15_mlp_w2a2/unsw_nb15-mlp-w2a2.onnx", None),
}


def zoo_path(name: str) -> str:
    path = os.path.join(ZOO, ZOO_MODELS[name][0])
    if not os.path.exists(path):
        pytest.skip(f"QONNX model zoo not found at {ZOO} (set SIRA_ZOO to its folder); zoo tests need it")
    return path


@pytest.fixture(params=sorted(ZOO_MODELS))
def zoo_model(request):
    """(name, path, input spec) of each zoo model."""
    name = request.param
    return name, zoo_path(name), ZOO_MODELS[name][1]
