"""What Vitis HLS needs beyond C simulation, checked without Vitis: the
generated code is inspected, and C-simulated bit-exactly where g++ meets the
same limit (ap_int wider than 1024 bits)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess

import pytest

from sira import hw
from sira import memory as M
from sira.errors import SiraError
from sira.folding import apply_folding_file
from sira.hls import build
from sira.hls.dataflow import Stage, Stream, ap_int_max_w, plan
from sira.hls.kernels import WidthConverter, kernel_for
from sira.hls.project import render
from sira.hls.simulate import unavailable
from sira.layer_costs import layer_cost
from sira.lint import ap_int_max_w_of, lint

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


# --------------------------------------------------------------------------
# URAM and initialized memories
# --------------------------------------------------------------------------

ZU7EV = "xczu7ev-ffvc1156-2-e"  # has URAM


def _ultra_mvau():
    """A 256 x 64 MVAU with 8-bit weights and thresholds, both asked for
    URAM by a folding file."""
    import numpy as np

    layer = mvau(mw=256, mh=64)
    layer = dataclasses.replace(layer, weights=np.arange(256 * 64).reshape(256, 64) % 200 - 100, weight_type=hw.StreamType(8, True),
                                thresholds=np.tile(np.arange(3) * 10 - 10, (64, 1)), out_type=hw.StreamType(2, False),
                                acc_type=hw.StreamType(24, True), threshold_type=hw.StreamType(24, True), acc_range=(-(1 << 20), 1 << 20))
    folding = {"mv": {"PE": 2, "SIMD": 8, "ram_style": "ultra", "ram_style_thresholds": "ultra"}}
    (folded,) = apply_folding_file([layer], folding)
    assert folded.mem_style == "ultra" and folded.threshold_mem_style == "ultra"
    return folded


def test_initialized_memories_asked_for_uram_are_built_and_priced_in_bram():
    layer = _ultra_mvau()
    cost = layer_cost(layer, ZU7EV)
    assert cost.uram == 0 and cost.bram18 > 0
    assert cost.storage["weights"] == "block" and all(v != "ultra" for v in cost.storage.values())
    code = kernel_for(layer).context(layer, cost)
    pragmas = code["pragmas"] + code["thr"]["pragmas"]
    assert "BIND_STORAGE variable=weights type=rom_2p impl=bram" in pragmas
    assert not [p for p in pragmas if "uram" in p]
    warnings = [i for i in lint([layer], ZU7EV) if "URAM cannot hold initialized constants" in i.message]
    assert [(i.severity, i.layer, i.message.split()[0]) for i in warnings] == [("warning", "mv", "thresholds"), ("warning", "mv", "weights")]
    assert "ram_style block" in warnings[1].fix and "ram_style_thresholds block" in warnings[0].fix


def test_memories_written_at_run_time_keep_uram():
    """A line buffer is written while the layer runs: URAM is fine there."""
    buffer = M.line_buffer(rows=4, row_words=4096, word_bits=72, style="ultra")
    assert M.built_style(buffer) == "ultra" and M.price(buffer, ZU7EV).uram > 0
    weights = M.weight_memory(pe=1, word_elements=9, depth=4096, w_bits=8, style="ultra")
    assert M.built_style(weights) == "block" and M.price(weights, ZU7EV).uram == 0


# --------------------------------------------------------------------------
# FIFO depths where branches meet again
# --------------------------------------------------------------------------

U4, S12 = hw.StreamType(4, False), hw.StreamType(12, True)


def _conv_branch(x: str) -> list:
    """A 3x3 'same' convolution of a 6x6x2 image: padding, sliding window,
    MVAU. Its first output needs two padded rows and three pixels."""
    import numpy as np

    pad = hw.FMPadding(name="pad", inputs=(x,), outputs=("padded",), in_shape=(1, 6, 6, 2), out_shape=(1, 8, 8, 2), in_type=U4,
                       out_type=U4, channels=2, padding=(1, 1, 1, 1))
    swg = hw.ConvolutionInputGenerator(name="swg", inputs=("padded",), outputs=("windows",), in_shape=(1, 8, 8, 2),
                                       out_shape=(1, 6, 6, 18), in_type=U4, out_type=U4, channels=2, ifm_dim=(8, 8),
                                       ofm_dim=(6, 6), kernel=(3, 3), stride=(1, 1))
    w = (np.arange(36).reshape(18, 2) % 5) - 2
    conv = hw.MVAU(name="conv", inputs=("windows",), outputs=("conv_out",), in_shape=(1, 6, 6, 18), out_shape=(1, 6, 6, 2),
                   in_type=U4, out_type=S12, mw=18, mh=2, num_input_vectors=(6, 6), weights=w, weight_type=hw.StreamType(3, True),
                   acc_type=S12, acc_range=(-600, 600))
    return [pad, swg, conv]


def _concat(bypass: str) -> hw.Concat:
    return hw.Concat(name="cat", inputs=("conv_out", bypass), outputs=("y",), in_shape=(1, 6, 6, 2), out_shape=(1, 6, 6, 4),
                     in_type=S12, out_type=S12, channels=(2, 2), in_types=(S12, U4))


def split_conv_concat() -> list:
    """Split -> (3x3 conv | bypass) -> Concat on a 6x6x4 image."""
    split = hw.Split(name="split", inputs=("x",), outputs=("left", "right"), in_shape=(1, 6, 6, 4), out_shape=(1, 6, 6, 2),
                     in_type=U4, out_type=U4, channels=(2, 2))
    return [split, *_conv_branch("left"), _concat("right")]


def duplicate_conv_concat() -> list:
    """One 6x6x2 image read by a 3x3 conv and by the Concat beside it."""
    return [*_conv_branch("x"), _concat("x")]


def _frames(n: int, shape=(1, 6, 6, 4)) -> list:
    import numpy as np

    rng = np.random.default_rng(0)
    return [{"x": rng.integers(0, 16, size=shape)} for _ in range(n)]


def test_a_split_whose_branches_meet_deadlocks_with_depth_2_and_not_with_its_lag():
    from sira.hls import fifos

    df = plan(split_conv_concat(), ["y"])
    bypass = next(s for s in df.streams.values() if s.tensor == "right")
    # the conv's first output needs the three padded rows its line buffer prefills and the 17 words it reads
    # while writing its first window (write before read): 17 of the split's 36 pixels, 2 words each
    assert fifos.lags(df.stages, df.streams)[bypass.id] == 34 and 34 < bypass.depth < bypass.words + 2
    assert [s.depth for s in df.streams.values() if s is not bypass] == [2] * (len(df.streams) - 1)
    old = {sid: 2 for sid in df.streams}
    stuck = fifos.simulate(df.stages, df.streams, old)
    assert stuck and "full" in stuck and "empty" in stuck
    assert fifos.simulate(df.stages, df.streams) is None


def test_a_duplicate_fifo_is_its_lag_not_a_frame():
    from sira.hls import fifos

    df = plan(duplicate_conv_concat(), ["y"])
    (dup,) = [st for st in df.stages if st.node.kind == "Duplicate"]
    depths = {df.streams[s].depth for s in dup.outputs}
    frame = df.streams[dup.outputs[0]].words
    assert min(depths) == 2 and 2 < max(depths) < frame + 2
    assert fifos.simulate(df.stages, df.streams, {sid: 2 for sid in df.streams}) is not None
    assert fifos.simulate(df.stages, df.streams) is None


@needs_csim
@pytest.mark.parametrize("net,shape", [(split_conv_concat, (1, 6, 6, 4)),
                                       pytest.param(duplicate_conv_concat, (1, 6, 6, 2), marks=pytest.mark.slow)])
def test_meeting_branches_are_bit_exact(net, shape, tmp_path):
    from sira.hls import build_layers

    r = build_layers(net(), str(tmp_path / net.__name__), _frames(4, shape), run_csim=True)
    assert r.csim.passed and r.csim.exact == r.csim.samples == 4, r.csim.summary()


def test_the_kernel_test_projects_do_not_deadlock():
    """Every fast kernel-test project runs two frames through its FIFOs."""
    from sira.hls import fifos
    from tests.test_hls_kernels import FAST, make_net

    for group, seed in FAST:
        net = make_net(group, seed)
        read = {t for layer in net.layers for t in layer.inputs}
        df = plan(net.layers, [t for layer in net.layers for t in layer.outputs if t not in read])
        assert fifos.simulate(df.stages, df.streams) is None, (group, seed)


# --------------------------------------------------------------------------
# scripts
# --------------------------------------------------------------------------

VITIS_COMMANDS = ("open_project", "set_top", "add_files", "open_solution", "set_part", "create_clock", "config_compile",
                  "csim_design", "csynth_design", "cosim_design", "export_design")


@pytest.mark.skipif(shutil.which("tclsh") is None, reason="no tclsh")
def test_run_hls_tcl_runs_from_any_folder(tmp_path):
    """run_hls.tcl, run by tclsh from another folder with the Vitis commands
    stubbed, names files that exist and takes the steps it is given."""
    layer = mvau()
    files = render(plan([layer], [layer.outputs[0]]), {}, top="top_m", model_id="m", part="xc7z020clg400-1", clock_ns=10.0)
    project = tmp_path / "project"
    for rel, text in files.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    (project / "tb_data").mkdir()
    stubs = "".join(f"proc {c} {{args}} {{ puts [list {c} {{*}}$args] }}\n" for c in VITIS_COMMANDS)
    driver = tmp_path / "driver.tcl"
    driver.write_text(stubs + f'set argv {{"csim=0 synth=1 cosim=0 export=0"}}\nsource {project / "run_hls.tcl"}\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(["tclsh", str(driver)], cwd=elsewhere, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    calls = [line.replace("{", " ").replace("}", " ").split() for line in done.stdout.splitlines()]
    assert [c[0] for c in calls if c[0].endswith("_design")] == ["csynth_design"]
    added = [c[1:] for c in calls if c[0] == "add_files"]
    paths = [a[1] if a[0] == "-tb" else a[0] for a in added]
    includes = [w[2:] for a in added for w in a if w.startswith("-I")]
    assert len(paths) == 3 and len(includes) == 3
    for path in paths + includes:
        assert os.path.isabs(path) and os.path.exists(path), path
    assert not os.listdir(elsewhere)
