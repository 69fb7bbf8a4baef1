"""Writing an HLS project: templates rendered from the dataflow, test
vectors, Vitis scripts, the estimate and a manifest, as one atomic folder.

Layout of a project folder::

    manifest.json          sira and dependency versions, model sha256, options, interface, ports, stages, files
    README.md              the top's interface: ports, their packing, how the host reads signed outputs
    firmware/              sira_common.hpp, top.hpp, top.cpp, one <stage>.hpp per stage
    tb/                    testbench.cpp (whole dataflow), tb_layers.cpp (stage by stage), tb_common.hpp,
                           testbench_dataflow.cpp and dataflow/hls_stream.h (stages concurrently over bounded FIFOs)
    tb_data/               input_<k>.txt, expected_<k>.txt (one sample per line), layers/ (first samples, per stage)
    report/estimate.json   the resource estimate (FINN's key names), SIRA and baseline
    report/analysis.json   the range analysis of the original model (as ``sira analyze --format json``)
    report/optimize.json   per MAC layer the accumulator widths: datatype bound, FINN's, sira's
    run_hls.tcl            vitis_hls -f run_hls.tcl
    hls_config.cfg         v++ -c --mode hls --config hls_config.cfg
    csim.sh                g++ C simulation without Vitis (--layers: stage by stage; --dataflow: concurrently)

The scripts find the project's files from their own folder, so they run
from any working directory.

The folder is assembled next to its destination and moved into place only
when complete; a rebuild replaces only the files the previous build wrote
and keeps everything else (:mod:`.folder`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
from importlib import metadata
from typing import Any, Optional

import jinja2

from .. import hw
from ..errors import SiraError
from ..report import GENERATOR, is_project
from ..version import __version__
from .dataflow import Dataflow, Stage
from .folder import Replacement, plan_replacement, write_folder
from .names import Namer
from .vectors import Vectors, write_lines

#: compiler flags of the Vitis scripts; each adds its include folders, found from its own location
CFLAGS = "-std=c++14"
GXX_FLAGS = "-std=c++14 -O2"
#: the dataflow C simulation (every stage a thread, bounded FIFOs): its folder of
#: headers (searched before the ap_types'), its defines and its sources
DATAFLOW_INCLUDE = "tb/dataflow"
DATAFLOW_FLAGS = "-DSIRA_DATAFLOW_CSIM -pthread"
DATAFLOW_SOURCES = ("tb/testbench_dataflow.cpp", "firmware/top.cpp")


def defines(df: Dataflow) -> str:
    """Compiler defines of every translation unit, the tools' own wrappers
    included (``sira_common.hpp`` defines the same for code compiled
    otherwise): ``AP_INT_MAX_W`` must be set before the first ``ap_int.h``,
    or words above 1024 bits do not compile."""
    return f"-DAP_INT_MAX_W={df.ap_int_max_w}"
DEPENDENCIES = ("onnx", "onnxruntime", "qonnx", "numpy", "sympy", "networkx", "jinja2", "hls4ml")


def templates_dir() -> str:
    """The ``hls_templates`` folder, inside the ``sira`` package both in a
    source checkout and in an installed wheel (package data)."""
    path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hls_templates"))
    if not os.path.isfile(os.path.join(path, "top.cpp.j2")):
        raise SiraError("sira's HLS templates (hls_templates/) are missing from this installation; reinstall sira")
    return path


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def versions() -> dict[str, str]:
    out = {"sira": __version__, "python": platform.python_version()}
    for dist in DEPENDENCIES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------


def _layer_file(stage: Stage, role: str, j: int) -> str:
    """Values of a stage's input (``role`` "in") or output ("out") ``j``, per
    sample, relative to ``tb_data/``."""
    return f"layers/{stage.id}.{role}{j}.txt"


def _stage_port(stage: Stage, df: Dataflow, sid: str, role: str, j: int) -> dict:
    return dict(df.streams[sid].port(), id=f"{role[0]}{j}", file=_layer_file(stage, role, j))


def _port_decl(df: Dataflow, sid: str) -> str:
    return f"hls::stream<sira::axis_word<{df.streams[sid].word_bits}> > &{sid}"


def port_stream(port_id: str) -> str:
    """The dataflow's stream behind a top-level port (``in_0_words``): the
    port itself carries AXI4-Stream beats. Unique: generated stream names
    all start with a stage prefix (``s_``, ``dup_``, ``dwc_``)."""
    return f"{port_id}_words"


def _axis_adapters(df: Dataflow, ports) -> list[dict]:
    return [{"port": p.id, "stream": port_stream(p.id), "word_bits": p.stream.word_bits, "words": p.stream.words} for p in ports]


#: Block-level control of the top function: ``none`` (FINN's choice) lets
#: the dataflow run free, started and paced by its AXI streams alone;
#: ``hs`` adds ap_ctrl_hs start/done/idle/ready, on an AXI-Lite slave so
#: a processor can drive them.
CONTROLS = ("none", "hs")


def check_control(control: str) -> str:
    if control not in CONTROLS:
        raise SiraError(f"block control '{control}' is not one of {', '.join(CONTROLS)} (none: free-running, hs: ap_ctrl_hs on AXI-Lite)")
    return control


def control_pragmas(control: str) -> list[str]:
    """The top function's ``INTERFACE`` pragmas for its return port."""
    if check_control(control) == "none":
        return ["INTERFACE ap_ctrl_none port=return"]
    return ["INTERFACE ap_ctrl_hs port=return", "INTERFACE s_axilite port=return bundle=control"]


def interface(control: str) -> dict:
    """How the host talks to the top (the manifest's ``interface``, the
    project README): control, streams and the packing of elements into
    stream words, with the sign extension a signed field needs (the words
    are ``ap_uint``: nothing on the bus says which fields are signed)."""
    return {
        "control": check_control(control),
        "control_protocol": "ap_ctrl_none: free-running, no start/done, no AXI-Lite" if control == "none"
        else "ap_ctrl_hs on an AXI-Lite slave (s_axilite, bundle control): ap_start/ap_done/ap_idle/ap_ready registers",
        "streams": "AXI4-Stream with TDATA, TKEEP, TSTRB and TLAST (ap_axiu): one frame is a port's 'elements' / 'lanes' "
        "words; an output sets TLAST on the last word of each frame (a DMA ends its transfer there) and TKEEP, TSTRB all "
        "ones; an input reads a frame's words whatever its TLAST says (frames have a fixed length)",
        "packing": "lane i of a word is bits [(i+1)*bits-1 : i*bits] of TDATA, lane 0 in the low bits; TDATA is padded to a "
        "multiple of 8 bits",
        "signed": "a signed field is its 'bits'-wide two's complement code: sign-extend it, "
        "v = f - (1 << bits) if f >> (bits - 1) else f; in C, (int64_t)((uint64_t)f << (64 - bits)) >> (64 - bits)",
        "bipolar": "a bipolar field is 1 bit: 1 is +1, 0 is -1",
    }  # fmt: skip


def render(df: Dataflow, costs: dict, *, top: str, model_id: str, part: str, clock_ns: float,
           control: str = "none") -> dict[str, str]:
    """Every generated text file of the project, by relative path."""
    env = environment()
    base = {"version": __version__, "top": top, "model_id": model_id}
    files: dict[str, str] = {}
    nodes = []
    inner = {p.id: port_stream(p.id) for p in df.inputs + df.outputs}
    for stage in df.stages:
        ctx = stage.kernel.context(stage.node, costs.get(getattr(stage.node, "name", ""), None) if isinstance(stage.node, hw.HWLayer) else None)
        ctx.update(base, id=stage.id, guard=f"{stage.id.upper()}_HPP")
        path = f"firmware/{stage.id}.hpp"
        files[path] = env.get_template(stage.kernel.template).render(**ctx)
        tb_in = [_stage_port(stage, df, s, "in", j) for j, s in enumerate(stage.inputs)]
        tb_out = [_stage_port(stage, df, s, "out", j) for j, s in enumerate(stage.outputs)]
        nodes.append({
            "id": stage.id, "file": f"{stage.id}.hpp", "args": [inner.get(s, s) for s in stage.inputs + stage.outputs],
            "tb_inputs": tb_in, "tb_outputs": tb_out, "tb_args": [p["id"] for p in tb_in + tb_out],
        })  # fmt: skip
    ports = [_port_decl(df, p.id) for p in df.inputs + df.outputs]
    streams = [{"id": inner.get(s.id, s.id), "word_bits": s.word_bits, "depth": s.depth} for s in df.streams.values()]
    top_ctx = dict(base, nodes=nodes, ports=ports, port_names=[p.id for p in df.inputs + df.outputs], streams=streams,
                   control_pragmas=control_pragmas(control), axis_in=_axis_adapters(df, df.inputs),
                   axis_out=_axis_adapters(df, df.outputs))
    files["firmware/sira_common.hpp"] = env.get_template("sira_common.hpp.j2").render(**base, ap_int_max_w=df.ap_int_max_w)
    files["firmware/top.hpp"] = env.get_template("top.hpp.j2").render(**top_ctx)
    files["firmware/top.cpp"] = env.get_template("top.cpp.j2").render(**top_ctx)
    tb_inputs = [dict(p.stream.port(), id=p.id, file=f"input_{k}.txt", depth=p.stream.depth) for k, p in enumerate(df.inputs)]
    tb_outputs = [dict(p.stream.port(), id=p.id, file=f"expected_{k}.txt", result=f"csim_output_{k}.txt", depth=p.stream.depth)
                  for k, p in enumerate(df.outputs)]  # fmt: skip
    tb_ctx = dict(base, inputs=tb_inputs, outputs=tb_outputs, call_args=[p.id for p in df.inputs + df.outputs], nodes=nodes)
    files["README.md"] = env.get_template("README.md.j2").render(
        **base, interface=interface(control), inputs=[_port_doc(p) for p in df.inputs], outputs=[_port_doc(p) for p in df.outputs])
    files["tb/tb_common.hpp"] = env.get_template("tb_common.hpp.j2").render(**base)
    files["tb/testbench.cpp"] = env.get_template("testbench.cpp.j2").render(**tb_ctx)
    files["tb/tb_layers.cpp"] = env.get_template("tb_layers.cpp.j2").render(**tb_ctx)
    files.update(_dataflow_files(env, base, tb_ctx, ports))
    tool_ctx = dict(base, part=part, clock_ns=clock_ns, cflags=f"{CFLAGS} {defines(df)}", gxx_flags=f"{GXX_FLAGS} {defines(df)}")
    files["run_hls.tcl"] = env.get_template("run_hls.tcl.j2").render(**tool_ctx)
    files["hls_config.cfg"] = env.get_template("hls_config.cfg.j2").render(**tool_ctx)
    files["csim.sh"] = env.get_template("csim.sh.j2").render(**tool_ctx, dataflow_flags=DATAFLOW_FLAGS, dataflow_include=DATAFLOW_INCLUDE,
                                                             dataflow_sources=" ".join(DATAFLOW_SOURCES))
    return files


def _dataflow_files(env: jinja2.Environment, base: dict, tb_ctx: dict, ports: list[str]) -> dict[str, str]:
    """The dataflow C simulation's sources (:data:`DATAFLOW_SOURCES`): its
    testbench (its threads: a stage per layer and per port adapter) and the bounded, blocking ``hls_stream.h`` that replaces the
    ap_types' one in that mode only (its folder comes first on the include
    path, :data:`DATAFLOW_FLAGS`)."""
    return {
        "tb/testbench_dataflow.cpp": env.get_template("testbench_dataflow.cpp.j2").render(**tb_ctx, call_ports=ports,
                                                                                          stages=len(tb_ctx["nodes"]) + len(tb_ctx["inputs"]) + len(tb_ctx["outputs"])),
        f"{DATAFLOW_INCLUDE}/hls_stream.h": env.get_template("dataflow_stream.h.j2").render(**base),
    }


def _write_vectors(root: str, df: Dataflow, vectors: Vectors) -> None:
    data = os.path.join(root, "tb_data")
    os.makedirs(os.path.join(data, "layers"), exist_ok=True)
    for k, rows in enumerate(vectors.inputs):
        write_lines(os.path.join(data, f"input_{k}.txt"), rows)
    for k, rows in enumerate(vectors.outputs):
        write_lines(os.path.join(data, f"expected_{k}.txt"), rows)
    with open(os.path.join(data, "samples.txt"), "w") as f:
        f.write("\n".join(vectors.labels) + "\n")
    for stage in df.stages:
        for role, sids in (("in", stage.inputs), ("out", stage.outputs)):
            for j, sid in enumerate(sids):
                tensor = df.streams[sid].tensor
                write_lines(os.path.join(data, _layer_file(stage, role, j)), [env[tensor] for env in vectors.frames])


def _layer_summary(layer: hw.HWLayer) -> dict:
    out: dict[str, Any] = {"name": layer.name, "kind": layer.kind, "inputs": list(layer.inputs), "outputs": list(layer.outputs)}
    for field in ("op", "param", "rounding", "clip_lo", "clip_hi"):
        if hasattr(layer, field) and getattr(layer, field) is not None:
            v = getattr(layer, field)
            out[field] = v.tolist() if hasattr(v, "tolist") else v
    out["in_type"], out["out_type"] = layer.in_type.name, layer.out_type.name
    return out


def _port_doc(p) -> dict:
    s = p.stream
    return {"port": p.id, "tensor": p.tensor, "type": s.type.name, "bits": s.type.bits, "signed": s.type.signed,
            "lanes": s.lanes, "word_bits": s.word_bits, "shape": list(p.shape), "elements": s.elements,
            "words": s.elements // s.lanes}  # fmt: skip


def manifest(df: Dataflow, *, top: str, model_bytes: bytes, model_name: str, options: dict, files: dict[str, bytes],
             samples: int) -> dict:
    return {
        "generator": GENERATOR,
        "sira_version": versions()["sira"],
        "versions": versions(),
        "model": {"file": model_name, "sha256": _sha256(model_bytes)},
        "options": options,
        "part": options.get("part"),
        "clock_ns": options.get("clock_ns"),
        "top": top,
        "interface": interface(options.get("control", "none")),
        "ports": {"inputs": [_port_doc(p) for p in df.inputs], "outputs": [_port_doc(p) for p in df.outputs]},
        "stages": [
            {"id": st.id, "kind": st.node.kind, "layer": st.node.name, "inputs": st.inputs, "outputs": st.outputs}
            for st in df.stages
        ],
        "host": {"head": [_layer_summary(layer) for layer in df.head], "tail": [_layer_summary(layer) for layer in df.tail]},
        "samples": samples,
        "files": {path: _sha256(data) for path, data in sorted(files.items())},
    }


# --------------------------------------------------------------------------
# atomic folder
# --------------------------------------------------------------------------


def check_destination(path: str, force: bool = False) -> Replacement:
    """Fail before any work if writing a project to ``path`` would lose
    something sira did not write (see :func:`.folder.plan_replacement`)."""
    return plan_replacement(path, force)


@dataclasses.dataclass
class Project:
    path: str
    top: str
    dataflow: Dataflow
    estimate: dict
    manifest: dict
    samples: int
    #: what the build kept in, or (with ``force``) removed from, the folder
    replacement: Replacement = dataclasses.field(default_factory=Replacement)


def emit(dest: str, df: Dataflow, costs: dict, vectors: Vectors, estimate_doc: dict, *, model_bytes: bytes, model_name: str,
         options: dict, namer: Optional[Namer] = None, reports: Optional[dict] = None, force: bool = False) -> Project:
    """Write the whole project folder (see the module docstring) atomically;
    ``reports`` adds ``report/<name>.json`` documents (the analysis, the
    optimization's widths)."""
    namer = namer or Namer()
    model_id = namer(os.path.splitext(os.path.basename(model_name))[0] or "model", "m_")
    top = namer(os.path.splitext(os.path.basename(model_name))[0] or "model", "top_")
    texts = render(df, costs, top=top, model_id=model_id, part=options["part"], clock_ns=options["clock_ns"],
                   control=options.get("control", "none"))
    doc: dict = {}

    def fill(root: str) -> None:
        written: dict[str, bytes] = {}
        for rel, text in texts.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            data = text.encode()
            with open(path, "wb") as f:
                f.write(data)
            written[rel] = data
        os.chmod(os.path.join(root, "csim.sh"), 0o755)
        _write_vectors(root, df, vectors)
        os.makedirs(os.path.join(root, "report"), exist_ok=True)
        for name, content in {"estimate": estimate_doc, **(reports or {})}.items():
            data = json.dumps(content, indent=2).encode()
            with open(os.path.join(root, "report", f"{name}.json"), "wb") as f:
                f.write(data)
            written[f"report/{name}.json"] = data
        doc.update(manifest(df, top=top, model_bytes=model_bytes, model_name=model_name, options=options, files=written,
                            samples=len(vectors.labels)))  # fmt: skip
        doc["data_files"] = _data_hashes(root)
        with open(os.path.join(root, "manifest.json"), "w") as f:
            json.dump(doc, f, indent=2)

    replacement = write_folder(dest, fill, force)
    return Project(os.path.abspath(dest), top, df, estimate_doc, doc, len(vectors.labels), replacement)


def _data_hashes(root: str) -> dict[str, str]:
    """sha256 of every test-vector file, by path relative to the project."""
    out = {}
    for folder, _, files in os.walk(os.path.join(root, "tb_data")):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root).replace(os.sep, "/")] = _sha256(f.read())
    return dict(sorted(out.items()))


__all__ = ["CONTROLS", "emit", "render", "check_control", "control_pragmas", "interface", "Project", "is_project", "check_destination", "templates_dir", "versions"]
