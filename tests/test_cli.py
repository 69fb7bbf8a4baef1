"""The sira command: output formats, input options, and bad input — every
user mistake is a one-line error with exit code 2 and nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sira.cli import main
from tests.helpers import make_model, quant_node

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "examples", "sira_mlp.onnx")
EXAMPLE_SPEC = os.path.join(HERE, "..", "examples", "sira_mlp.spec.json")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _save(model, path):
    onnx.save(model.model if hasattr(model, "model") else model, str(path))
    return str(path)


def _quant_model(scale=0.5, bits=4.0, init_extra=None, names=("x", "y")):
    x, y = names
    inits = {"s": np.float32(scale), "z": np.float32(0), "b": np.float32(bits)}
    inits.update(init_extra or {})
    nodes = [quant_node(x, "s", "z", "b", "q"), helper.make_node("Relu", ["q"], [y])]
    return make_model(nodes, {x: [1, 4]}, {y: [1, 4]}, inits)


# --------------------------------------------------------------------------
# happy paths
# --------------------------------------------------------------------------


def test_analyze_table_lists_every_dynamic_tensor(capsys):
    code, out, err = run(capsys, "analyze", EXAMPLE, "--input-spec", EXAMPLE_SPEC)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["tensor", "op", "shape", "range"]
    assert any(l.startswith("global_in ") and "UINT8" in l for l in lines)
    assert any(l.startswith("global_out ") for l in lines)


def test_analyze_json_shape(capsys, tmp_path):
    out_file = tmp_path / "r.json"
    code, _, err = run(capsys, "analyze", EXAMPLE, "--input-spec", EXAMPLE_SPEC, "--format", "json", "-o", str(out_file))
    assert code == 0, err
    doc = json.loads(out_file.read_text())
    assert set(doc) >= {"sira_version", "model", "inputs", "tensors", "warnings"}
    keys = {"op", "shape", "min", "max", "scaled_int", "int_min", "int_max", "scale", "bias", "datatype", "exact", "fallback"}
    for name, t in doc["tensors"].items():
        assert keys <= set(t), name
        if not t["scaled_int"]:
            assert t["int_min"] is None and t["scale"] is None
    inp = doc["tensors"]["global_in"]
    assert inp["op"] == "input" and inp["datatype"] == "UINT8" and inp["int_min"] == 0 and inp["int_max"] == 255
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".sira-")], "temporary file left behind"


def test_input_range_negative_value_and_alias(capsys, tmp_path):
    path = _save(_quant_model(), tmp_path / "m.onnx")
    code, out, err = run(capsys, "analyze", path, "--input-range", "-1,1", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["inputs"]["global_in"]["min"] == -1.0


def test_input_spec_may_use_original_input_name(capsys, tmp_path):
    path = _save(_quant_model(), tmp_path / "m.onnx")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"inputs": {"x": {"int_min": -4, "int_max": 4, "scale": "1/4"}}}))
    code, out, err = run(capsys, "analyze", path, "--input-spec", str(spec), "--format", "json")
    assert code == 0, err
    assert json.loads(out)["inputs"]["global_in"]["scaled_int"] is True


def test_verify_example_is_sound(capsys):
    code, out, err = run(capsys, "verify", EXAMPLE, "--input-spec", EXAMPLE_SPEC, "--samples", "20")
    assert code == 0, out + err
    assert out.startswith("SOUND")


def test_help_teaches_with_examples(capsys):
    for sub in ("analyze", "verify"):
        with pytest.raises(SystemExit) as e:
            main([sub, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out and f"sira {sub}" in out


# --------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written
# --------------------------------------------------------------------------


def _bad(capsys, tmp_path, argv, *needles):
    out_file = tmp_path / "out.json"
    code, out, err = run(capsys, *argv, "-o", str(out_file))
    assert code == 2, (out, err)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("sira: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n.lower() in err.lower(), err
    assert not out_file.exists()
    return err


def test_missing_file(capsys, tmp_path):
    _bad(capsys, tmp_path, ["analyze", str(tmp_path / "nope.onnx")], "not found")


def test_not_onnx(capsys, tmp_path):
    p = tmp_path / "m.onnx"
    p.write_text("hello, this is not a model\n" * 20)
    _bad(capsys, tmp_path, ["analyze", str(p), "--input-range", "0,1"], "not an onnx model")


def test_truncated_onnx(capsys, tmp_path):
    data = open(EXAMPLE, "rb").read()
    p = tmp_path / "t.onnx"
    p.write_bytes(data[: len(data) // 2])
    _bad(capsys, tmp_path, ["analyze", str(p), "--input-spec", EXAMPLE_SPEC], "truncated")


def test_float_model_without_quantizers_or_range(capsys, tmp_path):
    m = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": [1, 4]}, {"y": [1, 4]})
    _bad(capsys, tmp_path, ["analyze", _save(m, tmp_path / "f.onnx")], "float model", "--input-range")


def test_missing_input_range_says_how(capsys, tmp_path):
    _bad(capsys, tmp_path, ["analyze", _save(_quant_model(), tmp_path / "m.onnx")], "no range for input", "--input-range")


def test_nan_in_initializer(capsys, tmp_path):
    m = _quant_model(init_extra={"w": np.array([1.0, np.nan], dtype=np.float32)})
    m.graph.node.append(helper.make_node("Mul", ["y", "w2"], ["unused"]))
    m.graph.initializer.append(numpy_helper.from_array(np.array([np.nan, 1, 2, 3], dtype=np.float32), name="w2"))
    _bad(capsys, tmp_path, ["analyze", _save(m, tmp_path / "n.onnx"), "--input-range", "0,1"], "w2", "NaN")


@pytest.mark.parametrize("scale,word", [(0.0, "zero"), (-0.5, "negative")])
def test_bad_quant_scale(capsys, tmp_path, scale, word):
    _bad(capsys, tmp_path, ["analyze", _save(_quant_model(scale=scale), tmp_path / "s.onnx"), "--input-range", "0,1"], "Quant", word)


@pytest.mark.parametrize("bits", [0.0, 65.0])
def test_bad_bitwidth(capsys, tmp_path, bits):
    _bad(capsys, tmp_path, ["analyze", _save(_quant_model(bits=bits), tmp_path / "b.onnx"), "--input-range", "0,1"], "Quant", "bit width")


def test_cycle(capsys, tmp_path):
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["a"], name="n1"), helper.make_node("Relu", ["a"], ["b"], name="n2")],
        "cyc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    _bad(capsys, tmp_path, ["analyze", _save(m, tmp_path / "c.onnx"), "--input-range", "0,1"], "cycle")


def test_impossible_input_range(capsys, tmp_path):
    _bad(capsys, tmp_path, ["analyze", _save(_quant_model(), tmp_path / "m.onnx"), "--input-range", "1,0"], "impossible")


def test_input_range_is_never_evaluated(capsys, tmp_path):
    _bad(capsys, tmp_path, ["analyze", _save(_quant_model(), tmp_path / "m.onnx"), "--input-range", "__import__('os').getcwd(),1"], "not a number")


def test_spec_with_unknown_input(capsys, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text('{"inputs": {"nope": {"min": 0, "max": 1}}}')
    _bad(capsys, tmp_path, ["analyze", _save(_quant_model(), tmp_path / "m.onnx"), "--input-spec", str(spec)], "nope", "global_in")


def test_spec_not_json(capsys, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text("{min: 0")
    _bad(capsys, tmp_path, ["analyze", _save(_quant_model(), tmp_path / "m.onnx"), "--input-spec", str(spec)], "not valid JSON")


def test_hostile_tensor_names_are_neutralized(capsys, tmp_path):
    """Quotes, slashes and '..' in names are accepted: preparation gives every
    tensor a readable name, the JSON stays valid, and no file is created
    from a tensor name."""
    hostile_in = '../../x";system("rm -rf /")'
    hostile_out = "out/../../etc/passwd"
    m = _quant_model(names=(hostile_in, hostile_out))
    path = _save(m, tmp_path / "h.onnx")
    before = set(os.listdir(tmp_path))
    code, out, err = run(capsys, "analyze", path, "--input-range", "0,1", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert all(".." not in n and '"' not in n and "/" not in n for n in doc["tensors"])
    assert set(os.listdir(tmp_path)) == before
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"inputs": {hostile_in: {"min": 0, "max": 1}}}))
    code, out, err = run(capsys, "analyze", path, "--input-spec", str(spec), "--format", "json")
    assert code == 0, err


def test_console_script_has_no_traceback(tmp_path):
    """The installed entry point, as a user runs it."""
    r = subprocess.run(
        [sys.executable, "-m", "sira.cli", "analyze", str(tmp_path / "missing.onnx")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("sira: error:") and "Traceback" not in r.stderr


def test_color_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    import io

    from sira.cli import paint

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert paint("ok", "green", io.StringIO()) == "ok"
    assert paint("ok", "green", Tty()) == "\033[32mok\033[0m"
    monkeypatch.setenv("NO_COLOR", "1")
    assert paint("ok", "green", Tty()) == "ok"


def test_every_subcommand_help_has_examples():
    from sira.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        assert p.epilog and "examples:" in p.epilog and f"sira {name}" in p.epilog, name


def test_build_control_option():
    """``sira build --control``: free-running by default, hs on request, nothing else."""
    from sira.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["build", "m.onnx", "-o", "out"]).control == "none"
    assert parser.parse_args(["build", "m.onnx", "-o", "out", "--control", "hs"]).control == "hs"
    with pytest.raises(SystemExit):
        parser.parse_args(["build", "m.onnx", "-o", "out", "--control", "axi"])
