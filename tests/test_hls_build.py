"""`sira build` / `sira csim`: whole models to HLS projects, C-simulated with
g++ and compared bit for bit with the original model's outputs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import sira
from sira import hw
from sira.errors import SiraError
from sira.hls.simulate import unavailable
from sira.hls import build, build_layers, csim
from sira.hls.names import Namer

from tests.helpers import ZOO_MODELS, zoo_path

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "examples")
MLP = os.path.join(EXAMPLES, "sira_mlp.onnx")
CONV = os.path.join(EXAMPLES, "sira_conv.onnx")


def _spec(name: str) -> dict:
    with open(os.path.join(EXAMPLES, f"{name}.spec.json")) as f:
        return json.load(f)




pytestmark = pytest.mark.skipif(bool(unavailable()), reason=f"C simulation unavailable: {unavailable()}")


@pytest.fixture(scope="module")
def mlp_project(example_build):
    return example_build("sira_mlp")


# --------------------------------------------------------------------------
# the project folder
# --------------------------------------------------------------------------


def test_example_is_bit_exact(mlp_project):
    r = mlp_project.csim
    assert r.passed and r.exact == r.samples == mlp_project.project.samples
    assert r.samples >= 30
    assert r.summary() == f"csim: {r.samples}/{r.samples} outputs bit-exact"


def test_project_layout(mlp_project):
    root = mlp_project.path
    for rel in ("manifest.json", "firmware/top.cpp", "firmware/top.hpp", "firmware/sira_common.hpp", "tb/testbench.cpp",
                "tb/tb_layers.cpp", "tb/tb_common.hpp", "tb_data/input_0.txt", "tb_data/expected_0.txt",
                "report/estimate.json", "report/csim.json", "run_hls.tcl", "hls_config.cfg", "csim.sh"):  # fmt: skip
        assert os.path.isfile(os.path.join(root, rel)), rel
    stages = mlp_project.project.dataflow.stages
    for st in stages:
        assert os.path.isfile(os.path.join(root, "firmware", f"{st.id}.hpp"))
    with open(os.path.join(root, "tb_data", "input_0.txt")) as f:
        lines = f.read().splitlines()
    assert len(lines) == mlp_project.project.samples and all(len(line.split()) == 64 for line in lines)
    assert not [n for n in os.listdir(os.path.dirname(root)) if n.startswith(".")], "no temporary folders left"


def test_manifest(mlp_project):
    with open(os.path.join(mlp_project.path, "manifest.json")) as f:
        doc = json.load(f)
    with open(MLP, "rb") as f:
        assert doc["model"]["sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert doc["generator"] == "sira" and doc["sira_version"] == sira.__version__
    for dep in ("onnx", "onnxruntime", "qonnx", "numpy", "jinja2", "hls4ml", "python"):
        assert doc["versions"][dep]
    assert doc["part"] == "xc7z020clg400-1" and doc["clock_ns"] == 10.0 and doc["options"]["samples"] == 30
    assert doc["top"] == mlp_project.project.top
    assert [s["layer"] for s in doc["stages"]] == ["Quant_0_MultiThreshold", "MatMul_0", "MatMul_1", "MatMul_2"]
    # the output scale and bias, exactly: the scale sources one after the other where float32 cannot hold their product
    tail = [t["name"] for t in doc["host"]["tail"]]
    assert tail and all(name.startswith("global_out_aggregate_") for name in tail), tail
    assert doc["ports"]["inputs"][0]["type"] == "UINT8" and doc["ports"]["outputs"][0]["type"] == "INT11"
    for rel, digest in doc["files"].items():
        with open(os.path.join(mlp_project.path, rel), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, rel


def test_vitis_scripts(mlp_project):
    top = mlp_project.project.top
    with open(os.path.join(mlp_project.path, "run_hls.tcl")) as f:
        tcl = f.read()
    for line in (f"open_project -reset $here/{top}_prj", f"set_top {top}", "add_files $here/firmware/top.cpp",
                 "add_files -tb $here/tb/testbench.cpp", "-I$here/firmware", "add_files -tb $here/tb_data",
                 "set here [file dirname [file normalize [info script]]]", "open_solution -reset solution1", "set_part xc7z020clg400-1",
                 "create_clock -period 10.0", "csim_design", "csynth_design", "cosim_design", "export_design -format ip_catalog"):  # fmt: skip
        assert line in tcl, line
    with open(os.path.join(mlp_project.path, "hls_config.cfg")) as f:
        cfg = f.read()
    assert "tclargs" not in tcl
    for line in ("part=xc7z020clg400-1", "[hls]", "relative_roots=file:.", f"syn.top={top}", "clock=10.0ns", "syn.file=firmware/top.cpp",
                 "tb.file=tb/testbench.cpp", "tb.file=tb_data"):  # fmt: skip
        assert re.search(rf"^{re.escape(line)}$", cfg, re.M), line
    with open(os.path.join(mlp_project.path, "firmware", "top.cpp")) as f:
        top_cpp = f.read()
    assert "#pragma HLS DATAFLOW" in top_cpp and "#pragma HLS INTERFACE axis port=in_0" in top_cpp
    assert re.search(r"#pragma HLS STREAM variable=\w+ depth=\d+", top_cpp)


def test_interface_is_free_running_by_default(mlp_project):
    """The top runs free on its AXI streams (ap_ctrl_none, as FINN builds
    it); the manifest and the README say how words are packed and how a
    host sign-extends a signed field."""
    with open(os.path.join(mlp_project.path, "firmware", "top.cpp")) as f:
        top_cpp = f.read()
    assert "#pragma HLS INTERFACE ap_ctrl_none port=return" in top_cpp
    assert "ap_ctrl_hs" not in top_cpp and "s_axilite" not in top_cpp
    doc = mlp_project.project.manifest
    assert doc["interface"]["control"] == "none" and doc["options"]["control"] == "none"
    assert "sign-extend" in doc["interface"]["signed"] and "TLAST" in doc["interface"]["streams"]
    out = doc["ports"]["outputs"][0]
    assert out["signed"] and out["words"] * out["lanes"] == out["elements"]
    with open(os.path.join(mlp_project.path, "README.md")) as f:
        readme = f.read()
    assert "sign-extend" in readme and "ap_ctrl_none" in readme
    assert f"| out | `{out['port']}` | INT11 | 11 | True | {out['lanes']} | {out['word_bits']} | {out['words']} |" in readme
    assert "README.md" in doc["files"]


def test_ports_are_axi_streams_with_tlast(mlp_project):
    """The top's ports carry AXI4-Stream beats (ap_axiu's fields): each
    input frame is unpacked into the dataflow's stream, each output frame
    packed with TLAST on its last word; the testbench feeds beats and
    checks TLAST, and the C simulation of the example passed with it."""
    df = mlp_project.project.dataflow
    with open(os.path.join(mlp_project.path, "firmware", "top.cpp")) as f:
        top_cpp = f.read()
    with open(os.path.join(mlp_project.path, "firmware", "sira_common.hpp")) as f:
        common = f.read()
    with open(os.path.join(mlp_project.path, "tb", "testbench.cpp")) as f:
        tb = f.read()
    for p in df.inputs:
        assert f"hls::stream<sira::axis_word<{p.stream.word_bits}> > &{p.id}" in top_cpp
        assert f"sira::axis_to_stream<{p.stream.word_bits}, {p.stream.words}u>({p.id}, {p.id}_words);" in top_cpp
    for p in df.outputs:
        assert f"hls::stream<sira::axis_word<{p.stream.word_bits}> > &{p.id}" in top_cpp
        assert f"sira::stream_to_axis<{p.stream.word_bits}, {p.stream.words}u>({p.id}_words, {p.id});" in top_cpp
        assert f"output {p.id} has TLAST wrong" in tb
    first = df.stages[0]
    assert f"{first.id}({df.inputs[0].id}_words" in top_cpp
    assert "beat.last = (w == WORDS - 1) ? 1 : 0;" in common and "ap_axiu<W, 0, 0, 0>" in common
    assert "beat.last = (w + 1 ==" in tb
    with open(os.path.join(mlp_project.path, "README.md")) as f:
        assert "TLAST on the last word of each frame" in f.read()
    assert mlp_project.csim.passed


@pytest.mark.slow
def test_a_missing_tlast_is_found(mlp_project, tmp_path):
    """An output that never sets TLAST fails C simulation, named; the same
    layers with ap_ctrl_hs simulate bit-exactly."""
    broken = tmp_path / "broken"
    shutil.copytree(mlp_project.path, broken)
    path = broken / "firmware" / "sira_common.hpp"
    path.write_text(path.read_text().replace("beat.last = (w == WORDS - 1) ? 1 : 0;", "beat.last = 0;"))
    result = csim(str(broken))
    out = mlp_project.project.dataflow.outputs[0].id
    assert not result.passed and f"output {out} has TLAST wrong on 1 of its words" in result.output
    layers = mlp_project.project.dataflow.layers
    frames = [{layers[0].inputs[0]: np.arange(np.prod(layers[0].in_shape)).reshape(layers[0].in_shape) % 7}]
    hs = build_layers(layers, str(tmp_path / "hs"), frames, control="hs", run_csim=True)
    assert hs.csim.passed and hs.csim.exact == 1


def test_sign_extension_in_the_readme_is_right():
    """The host-side formulas of the manifest, on every code of a 5-bit
    field: the Python one, and the C shift pair (here on 8 bits)."""
    from sira.hls.project import interface

    text = interface("none")["signed"]
    assert "v = f - (1 << bits) if f >> (bits - 1) else f" in text and "(int64_t)((uint64_t)f << (64 - bits)) >> (64 - bits)" in text
    bits = 5
    for f in range(1 << bits):
        v = f - (1 << bits) if f >> (bits - 1) else f
        assert v == int(np.array([f << (8 - bits)], dtype=np.uint8).view(np.int8)[0] >> (8 - bits))
        assert -16 <= v < 16 and v % 32 == f


def test_control_hs_adds_axi_lite(tmp_path):
    """``control="hs"``: ap_ctrl_hs on an AXI-Lite slave; an unknown
    control is the user's mistake."""
    layer = hw.Thresholding(name="t", inputs=("x",), outputs=("y",), in_shape=(1, 4), out_shape=(1, 4), in_type=hw.StreamType(4, False),
                            out_type=hw.StreamType(2, False), channels=4, pe=2, thresholds=np.array([[1, 5, 9]] * 4),
                            threshold_type=hw.StreamType(5, False))  # fmt: skip
    samples = [{"x": np.array([[0, 3, 9, 15]])}]
    result = build_layers([layer], str(tmp_path / "hs"), samples, control="hs")
    with open(os.path.join(result.path, "firmware", "top.cpp")) as f:
        top_cpp = f.read()
    assert "#pragma HLS INTERFACE ap_ctrl_hs port=return" in top_cpp
    assert "#pragma HLS INTERFACE s_axilite port=return bundle=control" in top_cpp and "ap_ctrl_none" not in top_cpp
    assert result.project.manifest["interface"]["control"] == "hs"
    with pytest.raises(SiraError, match="block control 'axi'"):
        build_layers([layer], str(tmp_path / "bad"), samples, control="axi")


def test_bindings_follow_the_estimate(mlp_project):
    """Every multiply is bound as the cost model decided, every memory of a
    layer where the cost model mapped it."""
    est = mlp_project.project.estimate["layers"]
    for st in mlp_project.project.dataflow.stages:
        if st.node.kind != "MVAU":
            continue
        with open(os.path.join(mlp_project.path, "firmware", f"{st.id}.hpp")) as f:
            code = f.read()
        impl = est[st.node.name]["multiplies"][0]["impl"]
        assert f"BIND_OP variable=product op=mul impl={'dsp' if impl == 'dsp' else 'fabric'}" in code
        assert re.search(r"BIND_STORAGE variable=weights type=rom_2p impl=(lutram|bram|uram)", code)
    assert any(est[n]["multiplies"] and est[n]["multiplies"][0]["impl"] == "dsp" for n in est), "the example has a DSP multiply"


@pytest.mark.slow
def test_csim_is_cached_and_csim_sh_runs(mlp_project, tmp_path):
    again = csim(mlp_project.path)
    assert again.passed and again.cached
    env = dict(os.environ, PYTHON=sys.executable)  # the interpreter that has hls4ml
    done = subprocess.run(["sh", os.path.join(mlp_project.path, "csim.sh")], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"csim: {again.samples}/{again.samples} outputs bit-exact" in done.stdout
    layers = subprocess.run(["sh", "csim.sh", "--layers"], cwd=mlp_project.path, capture_output=True, text=True, env=env)
    assert layers.returncode == 0 and layers.stdout.count("bit-exact") == len(mlp_project.project.dataflow.stages)


@pytest.mark.slow
def test_a_wrong_layer_is_found(mlp_project, tmp_path):
    """A corrupted weight makes C-sim fail and names the layer."""
    broken = tmp_path / "broken"
    shutil.copytree(mlp_project.path, broken)
    stage = next(st for st in mlp_project.project.dataflow.stages if st.node.name == "MatMul_1")
    path = broken / "firmware" / f"{stage.id}.hpp"
    code = path.read_text()
    values = re.search(r"weights\[1\]\[\d+\]\[1\] = \{\{\{(-?\d+)\}", code)
    new = str((int(values.group(1)) + 3) % 16)
    path.write_text(code[: values.start(1)] + new + code[values.end(1) :])
    result = csim(str(broken))
    assert not result.passed and result.exact < result.samples
    assert result.first_mismatch_layer == "MatMul_1"


# --------------------------------------------------------------------------
# safety
# --------------------------------------------------------------------------


HOSTILE = '../../x";system("touch pwned");//\n*/'


def test_hostile_names_stay_inside(tmp_path):
    """Layer and tensor names become safe identifiers and file names."""
    u4 = hw.StreamType(4, False)
    w = np.array([[1, -2], [3, 1], [-1, 0]])
    layers = [
        hw.MVAU(name=HOSTILE + "mac", inputs=(HOSTILE + "in",), outputs=(HOSTILE,), in_shape=(1, 3), out_shape=(1, 2),
                in_type=u4, out_type=hw.StreamType.for_range(-30, 60), mw=3, mh=2, weights=w,
                weight_type=hw.StreamType(3, True), acc_type=hw.StreamType.for_range(-30, 60), acc_range=(-30, 60)),
        hw.Elementwise(name="main", op="Max", channels=2, param=np.zeros(1, dtype=np.int64), inputs=(HOSTILE,),
                       outputs=("int",), in_shape=(1, 2), out_shape=(1, 2), in_type=hw.StreamType.for_range(-30, 60),
                       out_type=hw.StreamType.for_range(0, 60)),
    ]  # fmt: skip
    rng = np.random.default_rng(0)
    samples = [{HOSTILE + "in": rng.integers(0, 16, size=(1, 3))} for _ in range(8)]
    dest = tmp_path / "out" / "proj"
    before = set(os.listdir(tmp_path))
    r = build_layers(layers, str(dest), samples, name=HOSTILE, run_csim=True)
    assert r.csim.passed and r.csim.exact == 8
    assert set(os.listdir(tmp_path)) == before | {"out"} and os.listdir(tmp_path / "out") == ["proj"]
    for root, _, files in os.walk(dest):
        for name in files:
            assert re.fullmatch(r"[a-z0-9_.]+", name) or name == "README.md", name
            assert os.path.realpath(os.path.join(root, name)).startswith(os.path.realpath(dest))
    code = "".join((dest / "firmware" / n).read_text() for n in os.listdir(dest / "firmware"))
    assert "system(" not in code and "../" not in code and "touch" not in code.replace("x_system_touch_pwned", "")


def test_namer_is_safe_and_unique():
    namer = Namer()
    names = [namer(raw) for raw in (HOSTILE, HOSTILE + "x", "int", "", "9lives", "a" * 200, "A-b", "a_b", "con", "ünï")]
    assert len(set(names)) == len(names)
    for n in names:
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,39}", n), n
    assert namer(HOSTILE) == names[0]
    assert "int" not in names and "con" not in names


def test_refuses_to_overwrite_other_folders(tmp_path, capsys):
    from sira.cli import main

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not lose me")
    code = main(["build", MLP, "--input-spec", os.path.join(EXAMPLES, "sira_mlp.spec.json"), "-o", str(precious), "-q"])
    assert code == 2 and "refusing to overwrite" in capsys.readouterr().err
    assert os.listdir(precious) == ["thesis.tex"]


def test_failed_build_leaves_nothing(tmp_path):
    dest = tmp_path / "proj"
    folding = tmp_path / "folding.json"
    folding.write_text(json.dumps({"Defaults": {}, "MatMul_0": {"PE": 7}}))
    with pytest.raises(SiraError):
        build(MLP, str(dest), _spec("sira_mlp"), folding=str(folding), samples=2)
    assert os.listdir(tmp_path) == ["folding.json"]


def test_cli_build_and_csim(tmp_path, capsys):
    from sira.cli import main

    dest = tmp_path / "p"
    code = main(["build", MLP, "--input-spec", os.path.join(EXAMPLES, "sira_mlp.spec.json"), "-o", str(dest), "--csim", "--samples", "5", "-q"])
    out = capsys.readouterr().out
    assert code == 0 and re.search(r"csim: (\d+)/\1 outputs bit-exact", out), out
    assert main(["csim", str(dest)]) == 0
    assert main(["csim", str(tmp_path)]) == 2
    assert "not a sira HLS project" in capsys.readouterr().err
    # rebuilding over a sira project replaces it
    assert main(["build", MLP, "--input-spec", os.path.join(EXAMPLES, "sira_mlp.spec.json"), "-o", str(dest), "--samples", "3", "-q"]) == 0


# --------------------------------------------------------------------------
# every model, >= 100 inputs each
# --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ZOO_MODELS))
def test_zoo_model_is_bit_exact(name, tmp_path):
    """Built and C-simulated with its stages running concurrently over FIFOs
    of the generated depths (test_hls_dataflow checks the high folding)."""
    path, spec = zoo_path(name), ZOO_MODELS[name][1]
    r = build(path, str(tmp_path / name), spec, samples=100, run_csim=True, dataflow=True)
    assert r.csim.passed and r.csim.mode == "dataflow" and r.csim.exact == r.csim.samples >= 100, r.csim.summary()
    with open(os.path.join(r.path, "report", "report.html")) as f:
        page = f.read()
    assert f"csim: {r.csim.exact}/{r.csim.samples} outputs bit-exact" in page and "every stage a thread" in page
    for layer, doc in r.project.estimate["layers"].items():
        if doc["op_type"] in ("MVAU", "VVAU") and not doc.get("host"):
            assert layer in page and f">{doc['LUT']}<" in page, layer


@pytest.mark.slow
@pytest.mark.parametrize("example", ["sira_mlp", "sira_conv"])
def test_example_model_is_bit_exact(example, tmp_path):
    r = build(os.path.join(EXAMPLES, f"{example}.onnx"), str(tmp_path / example), _spec(example), samples=100, run_csim=True)
    assert r.csim.passed and r.csim.exact == r.csim.samples >= 100, r.csim.summary()


@pytest.mark.slow
@pytest.mark.parametrize("example,fps", [("sira_conv", 20000), ("sira_mlp", 2_000_000)])
def test_folded_example_is_bit_exact(example, fps, tmp_path):
    """Folding for a throughput target (PE and SIMD above 1, width converters
    between differently folded layers) keeps C-sim bit-exact."""
    r = build(os.path.join(EXAMPLES, f"{example}.onnx"), str(tmp_path / example), _spec(example), target_fps=fps, samples=100, run_csim=True)
    folded = [st.node for st in r.project.dataflow.stages if isinstance(st.node, hw.HWLayer) and (st.node.pe > 1 or st.node.simd > 1)]
    assert folded, "the target needs some parallelism"
    assert r.csim.passed and r.csim.exact == r.csim.samples >= 100, r.csim.summary()


def test_build_and_csim_keep_the_html_report(mlp_project, capsys):
    from sira.cli import main

    page = os.path.join(mlp_project.path, "report", "report.html")
    with open(page) as f:
        html = f.read()
    r = mlp_project.csim
    assert f"csim: {r.samples}/{r.samples} outputs bit-exact" in html
    assert main(["report", mlp_project.path]) == 0 and page in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("name,fps", [("mlp_w8a8_perchannel", None), ("cnn_w8a8_perchannel", None), ("mlp_w8a8_perchannel", 1_000_000)])
def test_integer_requantizers_on_8_bit_models_are_bit_exact(name, fps, tmp_path):
    """8-bit conformance models, whose 255-step layers ``impl cheapest``
    builds as integer requantizers (folded too): C simulation stays bit-exact."""
    base = os.path.join(EXAMPLES, "zoo", "models", name)
    r = build(base + ".onnx", str(tmp_path / name), base + ".spec.json", target_fps=fps, samples=100, run_csim=True,
              impl="cheapest")
    est = r.project.estimate["layers"]
    chosen = [d["impl"]["chosen"] for d in est.values() if "impl" in d]
    assert "integer" in chosen, chosen
    assert r.csim.passed and r.csim.exact == r.csim.samples >= 100, r.csim.summary()
    for st in r.project.dataflow.stages:
        if getattr(st.node, "requant", None) is None:
            continue
        with open(os.path.join(r.path, "firmware", f"{st.id}.hpp")) as f:
            code = f.read()
        (m,) = [m for m in est[st.node.name]["multiplies"] if m["name"].startswith("accumulator x requant")]
        assert f"BIND_OP variable=scaled op=mul impl={'dsp' if m['impl'] == 'dsp' else 'fabric'}" in code
