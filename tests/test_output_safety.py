"""sira never loses what it did not write.

* A rebuild into a project folder replaces only the files the previous build
  wrote (its manifest lists them with their sha256) and keeps the rest: a
  Vitis solution folder, the user's notes.
* A folder that is not verifiably sira's - no manifest, a hand-written one,
  generated files edited since - is refused before any work, naming what
  would go; ``--force`` replaces it and lists what went.
* One build at a time per folder; temporary folders of a killed build are
  removed by the next; an interrupted write leaves the old project.
* ``sira optimize -o`` does not overwrite its input model without
  ``--force``; an output path that cannot be written is refused before the
  work, with the reason.
"""

from __future__ import annotations

import fcntl
import json
import os

import numpy as np
import pytest

from sira import hw
from sira.cli import main
from sira.errors import SiraError
from sira.hls import build_layers
from sira.hls.folder import survey, write_folder

HERE = os.path.dirname(os.path.abspath(__file__))
MLP = os.path.join(HERE, "..", "examples", "sira_mlp.onnx")
MLP_SPEC = os.path.join(HERE, "..", "examples", "sira_mlp.spec.json")


def _layers(shift: int = 0) -> list:
    """A two-stage dataflow (MVAU, then a Max) small enough to build in a moment."""
    u4 = hw.StreamType(4, False)
    acc = hw.StreamType.for_range(-30, 60)
    w = np.array([[1, -2], [3, 1], [-1, 0]]) + shift
    return [
        hw.MVAU(name="mac", inputs=("x",), outputs=("acc",), in_shape=(1, 3), out_shape=(1, 2), in_type=u4, out_type=acc,
                mw=3, mh=2, weights=w, weight_type=hw.StreamType(3, True), acc_type=acc, acc_range=(-30, 60)),
        hw.Elementwise(name="relu", op="Max", channels=2, param=np.zeros(1, dtype=np.int64), inputs=("acc",), outputs=("y",),
                       in_shape=(1, 2), out_shape=(1, 2), in_type=acc, out_type=hw.StreamType.for_range(0, 60)),
    ]  # fmt: skip


SAMPLES = [{"x": np.array([[1, 2, 3]])}, {"x": np.array([[15, 0, 7]])}]


def _build(dest, shift: int = 0, **kw):
    return build_layers(_layers(shift), str(dest), SAMPLES, **kw)


def _files(root) -> dict[str, bytes]:
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            out[os.path.relpath(path, root)] = open(path, "rb").read()
    return out


def test_a_rebuild_keeps_what_sira_did_not_write(tmp_path):
    dest = tmp_path / "proj"
    _build(dest)
    (dest / "notes.txt").write_text("my notes")
    solution = dest / "top_prj" / "solution1" / "syn" / "report"
    solution.mkdir(parents=True)
    (solution / "csynth.rpt").write_text("hours of synthesis")
    (dest / "firmware" / "my_helper.hpp").write_text("// mine")
    (dest / "empty_folder_of_mine").mkdir()
    result = _build(dest, shift=1)
    assert (dest / "notes.txt").read_text() == "my notes"
    assert (solution / "csynth.rpt").read_text() == "hours of synthesis"
    assert (dest / "firmware" / "my_helper.hpp").read_text() == "// mine"
    assert (dest / "empty_folder_of_mine").is_dir()
    assert set(result.project.replacement.kept) == {"notes.txt", "top_prj/", "firmware/my_helper.hpp", "empty_folder_of_mine/"}
    manifest = json.loads((dest / "manifest.json").read_text())
    assert survey(str(dest)).changed == () and manifest["files"] and manifest["data_files"]
    fresh = tmp_path / "fresh"
    _build(fresh, shift=1)
    ours = {k: v for k, v in _files(dest).items() if k not in ("notes.txt", os.path.join("firmware", "my_helper.hpp"))
            and not k.startswith("top_prj")}  # fmt: skip
    assert ours.keys() == _files(fresh).keys(), "exactly the new build's files, none of the old one's"
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")], "no temporary folders or lock files left"


def test_a_foreign_or_hand_made_folder_is_refused_and_force_lists_what_goes(tmp_path):
    dest = tmp_path / "proj"
    dest.mkdir()
    (dest / "manifest.json").write_text('{"generator": "sira"}')
    (dest / "thesis.tex").write_text("irreplaceable")
    with pytest.raises(SiraError, match="not a sira project.*thesis.tex.*--force"):
        _build(dest)
    assert (dest / "thesis.tex").read_text() == "irreplaceable"
    result = _build(dest, force=True)
    assert set(result.project.replacement.removed) == {"manifest.json", "thesis.tex"}
    assert not (dest / "thesis.tex").exists() and (dest / "firmware").is_dir()


def test_an_edited_generated_file_is_refused(tmp_path):
    dest = tmp_path / "proj"
    _build(dest)
    top = dest / "firmware" / "top.cpp"
    top.write_text(top.read_text() + "\n// my tweak\n")
    with pytest.raises(SiraError, match=r"edited or removed since the build \(firmware/top.cpp\)"):
        _build(dest, shift=1)
    assert top.read_text().endswith("// my tweak\n")
    _build(dest, shift=1, force=True)
    assert "my tweak" not in top.read_text()


def test_a_foreign_file_where_the_new_build_writes_is_refused(tmp_path):
    dest = tmp_path / "proj"
    _build(dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    victim = next(rel for rel in manifest["files"] if rel.startswith("firmware/") and rel != "firmware/top.cpp")
    del manifest["files"][victim]  # the previous build did not write it: it is the user's now
    (dest / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SiraError, match="the new build writes .*which sira did not write"):
        _build(dest)


def test_a_second_build_into_the_same_folder_is_refused(tmp_path):
    dest = tmp_path / "proj"
    with open(tmp_path / ".proj.lock", "w") as held:  # another build holds the folder
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(SiraError, match="another sira build is writing"):
            _build(dest)
    assert not dest.exists()
    _build(dest)


def test_temporary_folders_of_a_killed_build_are_removed(tmp_path):
    dest = tmp_path / "proj"
    for stale in (".proj.building-abc123", ".proj.old-def456"):
        (tmp_path / stale / "firmware").mkdir(parents=True)
    (tmp_path / ".other.building-zzz").mkdir()  # another folder's: not ours to remove
    _build(dest)
    assert sorted(os.listdir(tmp_path)) == [".other.building-zzz", "proj"]


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, SystemExit, OSError])
def test_an_interrupted_write_leaves_the_old_project(tmp_path, interruption):
    dest = tmp_path / "proj"
    _build(dest)
    before = _files(dest)

    def fill(root):
        (open(os.path.join(root, "manifest.json"), "w")).write("{}")
        raise interruption()

    with pytest.raises((interruption, SiraError)):
        write_folder(str(dest), fill)
    assert _files(dest) == before
    assert sorted(os.listdir(tmp_path)) == ["proj"]


def test_optimize_does_not_overwrite_its_input(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    model.write_bytes(open(MLP, "rb").read())
    before = model.read_bytes()
    code = main(["optimize", str(model), "--input-spec", MLP_SPEC, "-o", str(model), "--samples", "5"])
    assert code == 2 and "refusing to overwrite the input" in capsys.readouterr().err
    assert model.read_bytes() == before
    assert main(["optimize", str(model), "--input-spec", MLP_SPEC, "-o", str(model), "--samples", "5", "--force", "-q"]) == 0
    assert model.read_bytes() != before


@pytest.mark.parametrize("command", [
    ["optimize", MLP, "--input-spec", MLP_SPEC, "--samples", "5", "-o"],
    ["analyze", MLP, "--input-spec", MLP_SPEC, "-o"],
    ["build", MLP, "--input-spec", MLP_SPEC, "--samples", "5", "-o"],
])  # fmt: skip
def test_unwritable_outputs_are_refused_before_the_work(tmp_path, capsys, command):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for target, message in ((a_file / "out", "is a file, not a folder"),):
        assert main(command + [str(target)]) == 2
        err = capsys.readouterr().err
        assert message in err and "internal error" not in err
    if command[0] != "build":
        assert main(command + [str(tmp_path)]) == 2
        assert "is a folder" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the check cannot be observed as root")
def test_a_read_only_folder_is_refused_before_the_work(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(["build", MLP, "--input-spec", MLP_SPEC, "-o", str(ro / "proj")]) == 2
        assert "not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)


def test_a_spent_time_budget_names_the_chain(tmp_path, capsys):
    """The threshold search stops once its budget is spent, naming the chain
    it had reached; a budget that is not a positive number is refused."""
    from sira.budget import TimeBudget
    from sira.transforms.thresholds import ConvertChainsToThresholds

    import sira

    model = sira.load(MLP)
    with pytest.raises(SiraError, match=r"time budget of 1e-09 s ran out at the chain of .* \(0 of \d+ chains converted\)"):
        model.transform(ConvertChainsToThresholds(MLP_SPEC, budget=TimeBudget(1e-9)))
    assert main(["optimize", MLP, "--input-spec", MLP_SPEC, "-o", str(tmp_path / "x.onnx"), "--time-budget", "0"]) == 2
    assert "time budget must be a positive number" in capsys.readouterr().err


def test_optimize_stops_within_its_time_budget(tmp_path, capsys):
    out = tmp_path / "opt.onnx"
    code = main(["optimize", MLP, "--input-spec", MLP_SPEC, "-o", str(out), "--time-budget", "0.000001"])
    err = capsys.readouterr().err
    assert code == 2 and "time budget of 1e-06 s ran out before the pass" in err and not out.exists()
