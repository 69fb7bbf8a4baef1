"""Folding (sira.folding): cycles, bottleneck and fps by hand, FINN-format
folding files (validation and round trip), target-fps folding."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import sira
from sira import folding as F
from sira import hw
from sira.errors import SiraError
from sira.hw import StreamType
from tests.helpers import EXAMPLE, EXAMPLE_SPEC, mvau
from sira.transforms.to_hw import lower_to_hw

def thresholding(name="thr", channels=4):
    return hw.Thresholding(name=name, inputs=("x",), outputs=(name + "_out",), in_shape=(1, 5, 5, channels),
                           out_shape=(1, 5, 5, channels), in_type=StreamType(8, False), out_type=StreamType(2, False),
                           channels=channels, thresholds=np.array([[1, 2, 3]] * channels), threshold_type=StreamType(8, False))


def reshape(name="rs"):
    return hw.Reshape(name=name, inputs=("a",), outputs=("b",), in_shape=(1, 2, 2, 2), out_shape=(1, 8),
                      in_type=StreamType(2, False), out_type=StreamType(2, False))


@pytest.fixture(scope="module")
def example_layers():
    optimized, _ = sira.optimize(str(EXAMPLE), str(EXAMPLE_SPEC), samples=20)
    return lower_to_hw(optimized)


# -- cycles ----------------------------------------------------------------------


def test_cycles_bottleneck_fps_by_hand():
    layers = [thresholding(), mvau(nv=(3, 3)), reshape()]
    # Thresholding: 5*5 pixels * 4/1 channels = 100; MVAU: (6/1)*(8/1)*9 = 432; Reshape: 0
    assert [F.layer_cycles(l) for l in layers] == [100, 432, 0]
    assert F.bottleneck(layers) == ("mv", 432)
    assert F.throughput_fps(layers, 10) == pytest.approx(1e9 / (10 * 432))
    folded = [layers[0], layers[1].with_folding(pe=3, simd=4), layers[2]]  # (6/3)*(8/4)*9 = 36
    assert F.bottleneck(folded) == ("thr", 100)
    assert F.throughput_fps(folded, 5) == pytest.approx(2e6)
    assert F.throughput_fps([reshape()], 10) == math.inf
    with pytest.raises(SiraError, match="no hardware layers"):
        F.bottleneck([])
    with pytest.raises(SiraError, match="clock"):
        F.throughput_fps(layers, 0)


def test_example_cycles(example_layers):
    # MatMul_0 is 64 x 32: 2048 cycles at PE = SIMD = 1, the bottleneck
    assert F.bottleneck(example_layers) == ("MatMul_0", 64 * 32)
    assert F.throughput_fps(example_layers, 10) == pytest.approx(1e9 / (10 * 2048))


# -- folding files ----------------------------------------------------------------


def test_apply_folding_dict_and_defaults():
    layers = [thresholding(), mvau(), reshape()]
    out = F.apply_folding_file(layers, {
        "Defaults": {"ram_style": ["block", ["MVAU_hls"]], "mem_mode": ["internal_decoupled", "all"]},
        "mv": {"PE": 3, "SIMD": 4, "ram_style_thresholds": "distributed", "resType": "lut"},
        "thr": {"PE": 2},
    })
    thr, mv, rs = out
    assert (thr.pe, mv.pe, mv.simd, mv.mem_style, mv.threshold_mem_style) == (2, 3, 4, "block", "lut")
    assert rs is layers[2] and layers[1].pe == 1  # inputs untouched
    assert out.notes and "mem_mode" in out.notes[0] and "resType" in out.notes[0]


def test_folding_file_errors(tmp_path):
    layers = [thresholding(), mvau()]
    with pytest.raises(SiraError, match=r"layer 'mv' \(MVAU\): PE=4 does not divide MH=6; choose PE among 1, 2, 3, 6"):
        F.apply_folding_file(layers, {"mv": {"PE": 4}})
    with pytest.raises(SiraError, match=r"SIMD=3 does not divide MW=8; choose SIMD among 1, 2, 4, 8"):
        F.apply_folding_file(layers, {"mv": {"SIMD": 3}})
    with pytest.raises(SiraError, match=r"layer 'mv' \(MVAU\): PE=2.5 is not an integer; choose PE among 1, 2, 3, 6"):
        F.apply_folding_file(layers, {"mv": {"PE": 2.5}})
    with pytest.raises(SiraError, match=r"SIMD='4' is not an integer"):
        F.apply_folding_file(layers, {"mv": {"SIMD": "4"}})
    with pytest.raises(SiraError, match=r"PE=True is not an integer"):
        F.apply_folding_file(layers, {"mv": {"PE": True}})
    with pytest.raises(SiraError, match=r"unknown layer name\(s\) 'MatMul_9'.*thr, mv"):
        F.apply_folding_file(layers, {"MatMul_9": {"PE": 1}})
    with pytest.raises(SiraError, match=r"has no SIMD folding"):
        F.apply_folding_file(layers, {"thr": {"SIMD": 2}})
    with pytest.raises(SiraError, match=r"unknown folding key 'Pe'"):
        F.apply_folding_file(layers, {"mv": {"Pe": 2}})
    with pytest.raises(SiraError, match=r"ram_style='bram' is not one of"):
        F.apply_folding_file(layers, {"mv": {"ram_style": "bram"}})
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(SiraError, match="not valid JSON"):
        F.apply_folding_file(layers, bad)
    with pytest.raises(SiraError, match="cannot read folding file"):
        F.apply_folding_file(layers, tmp_path / "missing.json")


def test_finn_format_round_trip(tmp_path, example_layers):
    folded = F.fold_for_target_fps(example_layers, 200_000, 10)
    config = F.folding_json(folded)
    assert set(config) == {"Defaults"} | {l.name for l in example_layers}
    assert config["MatMul_0"]["PE"] * config["MatMul_0"]["SIMD"] >= 4 and "SIMD" not in config["Quant_0_MultiThreshold"]
    path = tmp_path / "folding.json"
    path.write_text(json.dumps(config))
    again = F.apply_folding_file(example_layers, str(path))
    assert [(l.name, l.pe, l.simd, l.mem_style) for l in again] == [(l.name, l.pe, l.simd, l.mem_style) for l in folded]
    assert F.folding_json(again) == config


# -- target fps ------------------------------------------------------------------------


def test_target_fps_reaches_target_with_fewest_lanes(example_layers):
    # 10 ns clock, 100k fps -> 1000 cycles per layer
    assert F.cycle_budget(100_000, 10) == 1000
    folded = F.fold_for_target_fps(example_layers, 100_000, 10)
    assert folded.target_reached and not folded.notes
    assert all(l.cycles <= 1000 for l in folded)
    assert F.throughput_fps(folded, 10) >= 100_000
    by = {l.name: l for l in folded}
    # MatMul_0: 2048 cycles -> SIMD=2 (1024) is too slow, SIMD=4 (512) fits; SIMD before PE
    assert (by["MatMul_0"].pe, by["MatMul_0"].simd) == (1, 4)
    # MatMul_1 (1024 cycles) needs 2 lanes; the others already fit at PE=SIMD=1
    assert (by["MatMul_1"].pe, by["MatMul_1"].simd) == (1, 2)
    assert all(by[n].pe == by[n].simd == 1 for n in ("MatMul_2", "Quant_0_MultiThreshold"))
    # minimality: one lane fewer would miss the budget
    for l in folded:
        for pe, simd in F._candidates(l):
            if pe * simd < l.pe * l.simd:
                assert F._cycles_with(l, pe, simd) > 1000


def test_target_fps_higher_target(example_layers):
    folded = F.fold_for_target_fps(example_layers, 1_250_000, 10)  # 80 cycles per layer
    assert folded.target_reached and max(l.cycles for l in folded) <= 80
    assert F.throughput_fps(folded, 10) >= 1_250_000


def test_target_fps_unreachable(example_layers):
    # 1 ns, 2e9 fps: budget 0 cycles; every working layer goes fully parallel
    folded = F.fold_for_target_fps(example_layers, 2e9, 1)
    assert not folded.target_reached and folded.achievable_fps == pytest.approx(1e9)
    assert all(l.cycles == 1 for l in folded)
    assert "not reachable" in folded.notes[0] and "MatMul_0" in folded.notes[0]
    with pytest.raises(SiraError, match=r"not reachable.*best achievable is 1e\+09 fps"):
        F.fold_for_target_fps(example_layers, 2e9, 1, strict=True)
    with pytest.raises(SiraError, match="target fps"):
        F.fold_for_target_fps(example_layers, -1, 10)
