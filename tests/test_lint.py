"""Hardware lint (sira.lint): each violation kind on constructed layers, and
no errors on the zoo-sized examples for the default part."""

from __future__ import annotations

import numpy as np
import pytest

import sira
from sira import cost as C
from sira import hw
from sira.errors import SiraError
from sira.hw import StreamType
from sira.lint import LintIssue, lint, raise_on_errors
from tests.helpers import ZOO_MODELS, zoo_path
from tests.helpers import EXAMPLE, EXAMPLE_SPEC, mvau
from sira.transforms.to_hw import lower_to_hw

Z7, ZU = "xc7z020clg400-1", "xczu7ev-ffvc1156-2-e"


def big_mvau(name="big", mw=1024, mh=1024, w_bits=8, a_bits=8, **kw):
    return hw.MVAU(name=name, inputs=("x",), outputs=(name + "_out",), in_shape=(1, mw), out_shape=(1, mh),
                   in_type=StreamType(a_bits, True), out_type=StreamType(24, True), mw=mw, mh=mh,
                   weights=np.zeros((mw, mh), dtype=np.int64), weight_type=StreamType(w_bits, True),
                   acc_type=StreamType(24, True), acc_range=(-100, 100), **kw)


def kinds(issues, severity):
    return [i for i in issues if i.severity == severity]


def test_clean_small_layer():
    assert lint([mvau()], Z7) == []
    raise_on_errors([])


def test_ap_int_width_error_and_warning():
    # stream word SIMD * 8 bits: 256*8 = 2048 > 1024 -> warning; weight word PE*SIMD*8 = 4*256*8 = 8192 > 4096 -> error
    layer = big_mvau(mw=256, mh=64, pe=4, simd=256)
    issues = lint([layer], ZU)
    err = [i for i in kinds(issues, "error") if "ap_int limit" in i.message]
    assert err and err[0].layer == "big" and "8192 bits" in err[0].message and "fewer PE or SIMD" in err[0].fix
    warn = [i for i in kinds(issues, "warning") if "input stream" in i.message]
    assert warn and "2048 bits" in warn[0].message and "defines AP_INT_MAX_W = 2048" in warn[0].message
    # a raised limit turns the error off
    assert not [i for i in lint([layer], ZU, ap_int_max_w=8192) if "ap_int limit" in i.message]


def test_wide_accumulator_error():
    layer = hw.Pool(name="pool", inputs=("x",), outputs=("y",), in_shape=(1, 4, 4, 2), out_shape=(1, 1, 1, 2),
                    in_type=StreamType(8, False), out_type=StreamType(12, False), channels=2, ifm_dim=(4, 4),
                    ofm_dim=(1, 1), kernel=(4, 4), stride=(1, 1), acc_type=StreamType(5000, True))
    [issue] = kinds(lint([layer], Z7), "error")
    assert issue.layer == "pool" and "accumulator" in issue.message and "RTL kernel" in issue.fix


def test_dsp_operand_width_warning():
    # 30-bit x 20-bit does not fit DSP48E1 25x18: split
    layer = big_mvau(mw=4, mh=4, w_bits=30, a_bits=20)
    [warn] = [i for i in lint([layer], Z7) if "DSP48E1" in i.message]
    assert warn.severity == "warning" and "split over" in warn.message and "LUTs" in warn.message
    assert not [i for i in lint([big_mvau(mw=4, mh=4, w_bits=8, a_bits=8)], Z7) if "ports" in i.message]


def test_unroll_limit():
    layer = big_mvau(mw=1024, mh=8, w_bits=1, a_bits=1, pe=8, simd=1024)
    issues = lint([layer], "xcvc1902-vsva2197-2MP-e-S")
    assert any(i.severity == "error" and "unroll limit" in i.message and "8192" in i.message for i in issues)


def test_layer_too_large_and_design_too_large():
    # 2048 x 2048 x 8-bit weights = 32 Mbit > 280 BRAM18 (5 Mbit)
    layer = big_mvau(mw=2048, mh=2048)
    issues = lint([layer], Z7)
    too_large = [i for i in issues if "too large" in i.message]
    assert too_large and too_large[0].layer == "big" and "BRAM18" in too_large[0].message
    assert "another part" in too_large[0].fix
    assert any(i.layer == "<design>" and "BRAM18" in i.message for i in issues)
    with pytest.raises(SiraError, match=r"hardware lint found \d+ error\(s\): layer 'big': layer too large"):
        raise_on_errors(issues)
    # two layers each fitting, together not: only the design error
    halves = [big_mvau("a", mw=512, mh=1024), big_mvau("b", mw=512, mh=1024)]  # 256 BRAM18 each
    issues = lint(halves, Z7)
    assert not [i for i in issues if "too large" in i.message]
    [design] = [i for i in issues if i.layer == "<design>"]
    assert "BRAM18" in design.message and "fewer PE/SIMD" in design.fix and "xczu7ev" in design.fix


def test_uram_on_part_without_uram():
    """Memories written at run time (a pool's running values) can be URAM;
    weights cannot (a URAM has no initial contents): block RAM, and a warning."""
    pool = hw.Pool(name="pool", inputs=("x",), outputs=("y",), in_shape=(1, 4, 4, 2), out_shape=(1, 1, 1, 2),
                   in_type=StreamType(8, False), out_type=StreamType(12, False), channels=2, ifm_dim=(4, 4),
                   ofm_dim=(1, 1), kernel=(4, 4), stride=(1, 1), acc_type=StreamType(12, False), mem_style="ultra")
    [err] = kinds(lint([pool], Z7), "error")
    assert "no URAM" in err.message and "block" in err.fix
    assert lint([pool], ZU) == []
    layer = mvau(mem_style="ultra")
    for part in (Z7, ZU):
        [warn] = lint([layer], part)
        assert warn.severity == "warning" and "weights ask for ram_style ultra" in warn.message and "block RAM" in warn.message


def test_costs_input():
    layers = [mvau("a"), mvau("b")]
    costs = {"a": C.Cost("MVAU", "refined", 30_000, 10, 2, 0), "b": {"LUT": 30_000, "DSP": 10, "BRAM_18K": 2, "URAM": 0}}
    [err] = lint(layers, Z7, costs=costs)
    assert err.layer == "<design>" and "60000 LUT" in err.message and "cost model" in err.message
    assert lint(layers, Z7, costs=[{"LUT": 100}, {"LUT": C.UNKNOWN}]) == []
    with pytest.raises(SiraError, match="no cost given"):
        lint(layers, Z7, costs={"a": {}})


def test_unknown_part():
    with pytest.raises(SiraError, match="unknown FPGA part 'xc7a35t'"):
        lint([mvau()], "xc7a35t")


def test_issue_str():
    i = LintIssue("error", "l", "too wide", "fewer PE")
    assert str(i) == "error: layer 'l': too wide (fix: fewer PE)"
    assert i.to_json()["fix"] == "fewer PE"


@pytest.mark.parametrize("name", ["example", "TFC_2W2A", "kwsmlp_w3a3"])  # ~2 s each
def test_no_errors_on_examples(name):
    from sira.folding import fold_for_target_fps

    if name == "example":
        path, spec = str(EXAMPLE), str(EXAMPLE_SPEC)
    else:
        path, spec = zoo_path(name), ZOO_MODELS[name][1]
    optimized, _ = sira.optimize(path, spec, samples=5)
    layers = lower_to_hw(optimized, spec if name == "kwsmlp_w3a3" else None)  # kws: float input
    assert kinds(lint(layers, Z7), "error") == []
    folded = fold_for_target_fps(layers, 100_000, 10)
    assert kinds(lint(folded, Z7), "error") == []
