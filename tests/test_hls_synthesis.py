"""What Vitis HLS needs beyond C simulation, checked without Vitis: the
generated code is inspected, and C-simulated bit-exactly where g++ meets the
same limit (ap_int wider than 1024 bits)."""

from __future__ import annotations

import os

import pytest

from sira import hw
from sira.errors import SiraError
from sira.hls import build
from sira.hls.dataflow import Stage, Stream, ap_int_max_w, plan
from sira.hls.kernels import WidthConverter, kernel_for
from sira.hls.project import render
from sira.hls.simulate import unavailable
from sira.lint import ap_int_max_w_of

from tests.helpers import ZOO_MODELS, mvau, zoo_path

needs_csim = pytest.mark.skipif(bool(unavailable()), reason=f"C simulation unavailable: {unavailable()}")

# --------------------------------------------------------------------------
# AP_INT_MAX_W
# --------------------------------------------------------------------------


def test_ap_int_max_w_rounds_up_to_a_multiple_of_1024():
    assert [ap_int_max_w_of(b) for b in (1, 1024, 1025, 1568, 3136, 4096)] == [1024, 1024, 2048, 2048, 4096, 4096]


def test_wide_words_define_ap_int_max_w_everywhere():
    """A 1280-bit input word (320 x 4 bits): every translation unit gets
    AP_INT_MAX_W before its first ap_int.h, from the header and the scripts."""
    layer = mvau(mw=320, mh=2, simd=320)
    df = plan([layer], [layer.outputs[0]])
    assert df.ap_int_max_w == 2048
    files = render(df, {}, top="top_m", model_id="m", part="xc7z020clg400-1", clock_ns=10.0)
    common = files["firmware/sira_common.hpp"]
    assert common.index("#define AP_INT_MAX_W 2048") < common.index("#include <ap_int.h>")
    assert files["tb/tb_common.hpp"].index('#include "sira_common.hpp"') < files["tb/tb_common.hpp"].index("#include <")
    for script in ("run_hls.tcl", "hls_config.cfg", "csim.sh"):
        assert "-DAP_INT_MAX_W=2048" in files[script], script


def test_a_narrow_project_keeps_the_default():
    layer = mvau()
    assert plan([layer], [layer.outputs[0]]).ap_int_max_w == 1024


def test_a_width_converter_wider_than_4096_bits_is_refused():
    """Re-folding 63 to 64 lanes gathers 4032 elements: 32256 bits."""
    t = hw.StreamType(8, True)
    streams = {"a": Stream("a", "x", t, 63, 4032), "b": Stream("b", "x", t, 64, 4032)}
    dwc = WidthConverter("dwc_x_to_64", ("a",), ("b",), t, 63, 64, 4032)
    stage = Stage(dwc.name, dwc, kernel_for(dwc), ["a"], ["b"])
    with pytest.raises(SiraError, match=r"layer 'dwc_x_to_64': width converter buffer of tensor 'a'.* 32256 bits, above the ap_int limit of 4096.*fix: fold"):
        ap_int_max_w([stage], streams)


@pytest.mark.slow
@needs_csim
def test_tfc_at_3m_fps_with_a_1568_bit_word_is_bit_exact(tmp_path):
    """TFC_2W2A folded for 3 million frames/s reads 784 2-bit inputs per
    word: beyond ap_int's default, bit-exact with AP_INT_MAX_W defined."""
    path, spec = zoo_path("TFC_2W2A"), ZOO_MODELS["TFC_2W2A"][1]
    r = build(path, str(tmp_path / "tfc"), spec, target_fps=3_000_000, samples=20, run_csim=True)
    widest = max(s.word_bits for s in r.project.dataflow.streams.values())
    assert widest > 1024 and r.project.dataflow.ap_int_max_w >= widest
    assert r.csim.passed and r.csim.exact == r.csim.samples, r.csim.summary()
    with open(os.path.join(r.path, "firmware", "sira_common.hpp")) as f:
        assert f"#define AP_INT_MAX_W {r.project.dataflow.ap_int_max_w}" in f.read()
