"""Shared fixtures: the QONNX model zoo (read in place, never copied)."""

from __future__ import annotations

import pytest

from tests.helpers import ZOO_MODELS, zoo_path


@pytest.fixture(params=sorted(ZOO_MODELS))
def zoo_model(request):
    """(name, path, input spec) of each zoo model."""
    name = request.param
    return name, zoo_path(name), ZOO_MODELS[name][1]
