"""The dataflow C simulation: every stage a thread over FIFOs of the
generated depths (tb/dataflow/hls_stream.h), so that a design that
deadlocks in hardware deadlocks here too, and is reported on one line
naming every blocked stage and its stream instead of hanging.

* a Split whose branches meet again in a Concat (one side a 3x3
  convolution, the other a bypass) passes with the depths sira generates
  and deadlocks with every FIFO 2 deep, as the old depths were (one g++
  compile, both runs; the CLI exits with 3);
* the slow tier runs it on the kernel tests' plumbing project (fan-out
  through Duplicate, Split/Concat, residual AddStreams, PE/SIMD above 1),
  on a Duplicate feeding a convolution and the Concat beside it, and on
  every zoo and conformance model at a high frame rate (their build tests
  run it at fold 1)."""

from __future__ import annotations

import concurrent.futures
import json
import re
import subprocess

import pytest

from sira.errors import DeadlockError, SiraError
from sira.hls import build, build_layers, csim
from sira.hls.project import port_stream
from sira.hls.simulate import unavailable
from tests.helpers import ZOO_MODELS, zoo_path
from tests.test_hls_synthesis import _frames, duplicate_conv_concat, split_conv_concat

_SKIP = unavailable()
needs_csim = pytest.mark.skipif(bool(_SKIP), reason=f"C simulation unavailable: {_SKIP}")


@pytest.fixture(scope="module")
def split_concat(tmp_path_factory):
    """The Split -> (conv | bypass) -> Concat project, its dataflow C-simulated."""
    path = tmp_path_factory.mktemp("dataflow") / "split_concat"
    return build_layers(split_conv_concat(), str(path), _frames(4), run_csim=True, dataflow=True)


def _check_depths_and_progress(result, cs) -> None:
    """The run used exactly the generated depths; every stream carried its
    words for every frame and never held more than its depth."""
    df = result.project.dataflow
    seen = {s.stream: s for s in cs.streams}
    # a top-level port is an AXI stream of beats and, behind its adapter, the dataflow's stream of words
    behind_ports = {port_stream(p.id): df.streams[p.id] for p in df.inputs + df.outputs}
    assert set(seen) == set(df.streams) | set(behind_ports)
    for sid, stream in [*df.streams.items(), *behind_ports.items()]:
        s = seen[sid]
        assert s.depth == stream.depth, sid
        assert s.written == s.read == stream.words * cs.samples, sid
        assert 1 <= s.peak <= s.depth
    assert {st.stage for st in cs.stages} >= {st.id for st in df.stages}
    assert all(st.finished for st in cs.stages)


@needs_csim
@pytest.mark.prebuild
def test_split_concat_passes_with_the_generated_depths(split_concat):
    cs = split_concat.csim
    assert cs.mode == "dataflow" and cs.passed and cs.exact == cs.samples == 4, cs.summary()
    _check_depths_and_progress(split_concat, cs)
    bypass = next(s for s in split_concat.project.dataflow.streams.values() if s.tensor == "right")
    assert bypass.depth > 2  # the deep FIFO is the one the run filled beyond the old depth
    assert next(s for s in cs.streams if s.stream == bypass.id).peak > 2
    with open(f"{split_concat.path}/report/csim.json") as f:
        doc = json.load(f)
    assert doc["mode"] == "dataflow" and doc["passed"] and len(doc["streams"]) == len(cs.streams)


@needs_csim
def test_split_concat_deadlocks_with_the_old_depths(split_concat):
    df = split_concat.project.dataflow
    bypass = next(s for s in df.streams.values() if s.tensor == "right")
    split = next(st for st in df.stages if st.node.kind == "Split")
    concat = next(st for st in df.stages if st.node.kind == "Concat")
    with pytest.raises(DeadlockError) as info:
        csim(split_concat.path, dataflow=True, fifo_depth=2)
    e = info.value
    assert "forced to depth 2" in str(e) and "\n" not in str(e)
    # the split waits on the full bypass while the concat starves on the convolution's side
    assert f"{split.id} waits to write {bypass.id} (full, depth 2" in e.blocked
    assert re.search(rf"{concat.id} waits to read {concat.inputs[0]} \(empty", e.blocked)
    # every stream inside the top (those behind the port adapters too) is forced; the testbench's ports are not
    inside = [sid for sid in df.streams if sid not in ("in_0", "out_0")] + [port_stream("in_0"), port_stream("out_0")]
    assert {s.stream: s.depth for s in e.streams if s.stream not in ("in_0", "out_0")} == {sid: 2 for sid in inside}
    assert not all(st.finished for st in e.stages)
    with open(f"{split_concat.path}/report/csim.json") as f:
        assert json.load(f)["deadlock"] == e.blocked


@needs_csim
def test_cli_reports_a_deadlock_on_one_line_with_exit_3(split_concat, capsys):
    from sira.cli import main

    assert main(["csim", split_concat.path, "--dataflow", "--fifo-depth", "2"]) == 3
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sira: error: the dataflow of") and "waits to write" in lines[0]
    assert main(["csim", split_concat.path, "--dataflow"]) == 0
    out = capsys.readouterr().out
    bypass = next(s for s in split_concat.project.dataflow.streams.values() if s.tensor == "right")
    assert "no deadlock" in out and re.search(rf"FIFO {bypass.id}: at most \d+ of its {bypass.depth} words held", out)


@needs_csim
def test_option_mistakes_are_one_line_errors(split_concat, tmp_path):
    from sira.cli import main

    assert main(["csim", str(tmp_path), "--fifo-depth", "2"]) == 2
    assert main(["csim", str(tmp_path), "--dataflow", "--layers"]) == 2
    for depth, dataflow in ((0, True), (True, True), (2, False)):
        with pytest.raises(SiraError, match="forced FIFO depth must be a positive integer"):
            csim(split_concat.path, dataflow=dataflow, fifo_depth=depth)


@needs_csim
def test_synthesis_top_is_unchanged_by_the_dataflow_block(split_concat):
    """The top's synthesis form keeps its STREAM pragmas and plain calls; the
    threads live under SIRA_DATAFLOW_CSIM only, with the same depths."""
    with open(f"{split_concat.path}/firmware/top.cpp") as f:
        top = f.read()
    synthesis, dataflow = top.split("#ifdef SIRA_DATAFLOW_CSIM")
    assert "std::thread" not in synthesis and "sira::df" not in synthesis
    pragmas = dict(re.findall(r"#pragma HLS STREAM variable=(\w+) depth=(\d+)", synthesis))
    declared = dict(re.findall(r'hls::stream<ap_uint<\d+> > (\w+)\("\w+", sira::df::depth\((\d+)\)\);', dataflow))
    assert pragmas == declared and pragmas
    df = split_concat.project.dataflow
    ports = {p.id for p in df.inputs + df.outputs}
    assert {port_stream(sid) if sid in ports else sid: str(s.depth) for sid, s in df.streams.items()} == pragmas


# --------------------------------------------------------------------------
# slow tier: every topology kind, every zoo and conformance model
# --------------------------------------------------------------------------


@needs_csim
@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_plumbing_projects_run_concurrently(seed, tmp_path):
    """Fan-out (Duplicate, width converters), Split/Concat, a residual
    AddStreams, padding, windows and pools, folded above 1."""
    from tests.test_hls_kernels import make_net

    net = make_net("movement", seed)
    r = build_layers(net.layers, str(tmp_path / "p"), net.samples(4), run_csim=True, dataflow=True)
    assert r.csim.passed and r.csim.exact == 4, r.csim.summary()
    kinds = {st.node.kind for st in r.project.dataflow.stages}
    assert {"Duplicate", "Split", "Concat", "AddStreams"} <= kinds
    _check_depths_and_progress(r, r.csim)


@needs_csim
@pytest.mark.slow
def test_duplicate_concat_deadlocks_only_with_the_old_depths(tmp_path):
    r = build_layers(duplicate_conv_concat(), str(tmp_path / "p"), _frames(3, (1, 6, 6, 2)), run_csim=True, dataflow=True)
    assert r.csim.passed, r.csim.summary()
    with pytest.raises(DeadlockError, match=r"dup_\w+ waits to write"):
        csim(r.path, dataflow=True, fifo_depth=2)


#: the frame rates the sweep tries, highest first: 1e6 inferences/s at 10 ns leaves
#: 100 cycles per layer, every layer of the MLPs as parallel as its dimensions
#: allow; a CNN gets the first rate whose folding the lint accepts on the
#: default part (stream and weight words within 4096 bits, LUTs within the
#: part) and the kernels generate: the most parallel build the part allows,
#: the most stages running at once, the shortest FIFO lags
FPS_LADDER = (1e6, 5e5, 2e5, 1e5, 5e4, 2e4, 1e4, 5e3, 2e3, 1e3)
SWEEP_SAMPLES = 8


def highest_fps(path: str, spec) -> float:
    """The first rate of :data:`FPS_LADDER` whose folding passes the lint
    and the kernels generate (the model optimized once, then folded,
    linted, planned and rendered per rate, as the build does)."""
    from sira.devices import DEFAULT_PART
    from sira.estimate import estimate_prepared, prepare
    from sira.hls.dataflow import plan
    from sira.hls.project import render

    prepared = prepare(path, spec)
    for fps in FPS_LADDER:
        try:
            _doc, layers, costs = estimate_prepared(prepared, DEFAULT_PART, target_fps=fps)
            render(plan(layers, [o.name for o in prepared[0].graph.output]), costs, top="t", model_id="m", part=DEFAULT_PART,
                   clock_ns=10.0)  # fmt: skip
            return fps
        except SiraError:
            continue
    raise SiraError(f"no rate of {FPS_LADDER} builds '{path}' on {DEFAULT_PART}")


def _sweep_models() -> list[str]:
    from tests.test_conformance_zoo import HARDWARE

    return sorted(ZOO_MODELS) + HARDWARE


def _model(name: str) -> tuple[str, object]:
    from tests.test_conformance_zoo import MODELS, _spec

    if name in ZOO_MODELS:
        return zoo_path(name), ZOO_MODELS[name][1]
    with open(_spec(name)) as f:
        return str(MODELS / f"{name}.onnx"), json.load(f)


def _build_and_run(name: str, folder: str):
    """The dataflow C simulation of one model at its :func:`highest_fps`
    (an exception is returned, to be raised by its own test)."""
    try:
        path, spec = _model(name)
        r = build(path, folder, spec, samples=SWEEP_SAMPLES, target_fps=highest_fps(path, spec))
        return r, csim(r.path, dataflow=True, write_report=False)
    except (Exception, pytest.skip.Exception) as e:  # reported by the test of this case
        return e


@pytest.fixture(scope="module")
def sweep(request, tmp_path_factory):
    """Every selected sweep model built and simulated, two at a time (g++
    runs on both cores while the next model is built)."""
    selected = getattr(request.node.listchain()[0], "items", [])
    names = [item.callspec.params["name"] for item in selected
             if getattr(item, "originalname", None) == "test_models_run_concurrently_at_a_high_frame_rate"]  # fmt: skip
    root = tmp_path_factory.mktemp("sweep")
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_build_and_run, name, str(root / name)) for name in names}
        return {name: f.result() for name, f in futures.items()}


@needs_csim
@pytest.mark.slow
@pytest.mark.parametrize("name", _sweep_models())
def test_models_run_concurrently_at_a_high_frame_rate(name, sweep, tmp_path):
    """Every zoo and conformance model at its highest frame rate (at fold 1 their build
    tests, test_hls_build and test_conformance_zoo, run the same C
    simulation): no deadlock with the generated depths, every output
    bit-exact, every stream carrying its words and within its depth."""
    outcome = sweep.get(name) or _build_and_run(name, str(tmp_path / "p"))
    if isinstance(outcome, BaseException):
        raise outcome
    r, cs = outcome
    assert cs.passed and cs.exact == cs.samples, cs.summary()
    _check_depths_and_progress(r, cs)


STRESS = r"""
#include <hls_stream.h>
#include <cstring>
// "cycle": two stages that each read the other's empty stream first; else a chain of stages at depth 2 moving many words
int main(int argc, char **argv) {
    if (argc > 1 && !std::strcmp(argv[1], "cycle")) {
        hls::stream<int> a("a", 4), b("b", 4);
        sira::df::expect(2);
        sira::df::Group g;
        g.spawn("left", [&]() { for (int i = 0; i < 10; i++) b.write(a.read() + 1); });
        g.spawn("right", [&]() { for (int i = 0; i < 10; i++) a.write(b.read() + 1); });
        g.join();
        return 0;
    }
    const int stages = 8, words = 50000;
    hls::stream<long> s[stages + 1];
    sira::df::expect(stages + 2);
    sira::df::Group g;
    g.spawn("feed", [&]() { for (long i = 0; i < words; i++) s[0] << i; });
    for (int k = 0; k < stages; k++) g.spawn("stage", [&, k]() { for (int i = 0; i < words; i++) { long v; s[k] >> v; s[k + 1].write(v + 1); } });
    long sum = 0;
    g.spawn("drain", [&]() { for (int i = 0; i < words; i++) sum += s[stages].read(); });
    g.join();
    return sum == (long)words * (words - 1) / 2 + (long)stages * words ? 0 : 1;
}
"""


@needs_csim
@pytest.mark.slow
def test_the_stream_header_finds_a_cycle_and_never_a_false_deadlock(tmp_path):
    """The header alone: two stages waiting on each other are reported at
    once (exit 3); a chain of ten threads passing 50000 words through
    FIFOs of depth 2, with every interleaving the scheduler makes, never is."""
    from sira.hls.project import environment
    from sira.hls.simulate import DEADLOCK_EXIT, compiler

    (tmp_path / "hls_stream.h").write_text(environment().get_template("dataflow_stream.h.j2").render(top="t", version="test"))
    (tmp_path / "t.cpp").write_text(STRESS)
    binary = str(tmp_path / "t")
    subprocess.run([compiler(), "-std=c++14", "-O1", "-pthread", "-I", str(tmp_path), str(tmp_path / "t.cpp"), "-o", binary], check=True)
    cycle = subprocess.run([binary, "cycle"], capture_output=True, text=True, timeout=60)
    assert cycle.returncode == DEADLOCK_EXIT
    assert cycle.stdout.splitlines()[0] == ("dataflow csim: deadlock: left waits to read a (empty, depth 4, 0 written, 0 read); "
                                            "right waits to read b (empty, depth 4, 0 written, 0 read)")  # fmt: skip
    for _ in range(3):
        chain = subprocess.run([binary], capture_output=True, text=True, timeout=120)
        assert chain.returncode == 0, chain.stdout
