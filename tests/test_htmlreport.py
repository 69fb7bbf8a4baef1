"""The HTML report of a project folder (sira.htmlreport): the numbers it shows
are the JSON files' numbers, it parses, loads nothing from the network,
escapes every name from the model, survives missing optional inputs, and a
real headless browser renders its charts and runs its script without errors."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from typing import Optional

import pytest

from sira.errors import SiraError
from sira.hls.simulate import unavailable
from sira.htmlreport import REPORT_PATH, render_report, write_report

HOSTILE = "<script>alert(1)</script>"
HOSTILE_QUOTES = "x\" onmouseover=\"alert(2)' <marquee>"
NO_BROWSER = "no headless browser installed; .ci/run installs Debian's chromium"




@pytest.fixture(scope="module")
def projects(example_build) -> dict[str, str]:
    """The two examples built (and C-simulated where g++ can), shared with the other tests."""
    return {name: example_build(name).path for name in ("sira_mlp", "sira_conv")}


@pytest.fixture(params=["sira_mlp", "sira_conv"])
def project(request, projects) -> str:
    return projects[request.param]


def _json(root: str, rel: str) -> dict:
    with open(os.path.join(root, rel)) as f:
        return json.load(f)


# --------------------------------------------------------------------------
# a small DOM from html.parser
# --------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
SVG_EMPTY = {"rect", "line", "path", "circle"}


class Node:
    def __init__(self, tag: str, attrs: dict, parent: Optional["Node"]):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list = []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: Optional[str] = None, **attrs) -> list["Node"]:
        want = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [n for n in self.iter() if (tag is None or n.tag == tag) and all(n.attrs.get(k) == v for k, v in want.items())]

    def find(self, tag: Optional[str] = None, **attrs) -> "Node":
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag}> with {attrs}"
        return found[0]


class TreeBuilder(HTMLParser):
    """A tree, checking that every element is closed in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: (v if v is not None else "") for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, {k: (v if v is not None else "") for k, v in attrs}, self.cur))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if self.cur.tag != tag:
            self.errors.append(f"</{tag}> closes <{self.cur.tag}>")
            return
        self.cur = self.cur.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse(text: str) -> Node:
    p = TreeBuilder()
    p.feed(text)
    p.close()
    assert not p.errors, p.errors[:5]
    assert p.cur is p.root, f"unclosed <{p.cur.tag}>"
    return p.root


def _number(text: str) -> float:
    m = re.match(r"\s*([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)", text)
    assert m, f"no number in {text!r}"
    return float(m.group(1))


@pytest.fixture
def page(project) -> tuple[str, str, Node]:
    text = render_report(project)
    return project, text, parse(text)


# --------------------------------------------------------------------------
# the page and its numbers
# --------------------------------------------------------------------------


def test_page_parses_with_sections_and_charts(page):
    _, text, dom = page
    assert text.startswith("<!DOCTYPE html>")
    ids = {n.attrs.get("id") for n in dom.iter()}
    for section in ("summary", "csim", "widths", "resources", "ranges", "warnings", "manifest"):
        assert section in ids, section
    charts = dom.find_all("svg")
    kinds = {svg.attrs.get("data-chart") for svg in charts}
    assert {"widths", "resources"} <= kinds
    for svg in charts:
        assert svg.attrs.get("data-chart"), "every chart names itself"
        title = svg.find("title")
        assert title.text().strip(), "every chart has a title"
        assert svg.find_all("rect"), "every chart has bars"


def test_self_contained_no_network(page):
    _, text, dom = page
    assert "http://" not in text and "https://" not in text
    for node in dom.iter():
        for attr in ("src", "href", "srcset", "action", "data", "poster"):
            value = node.attrs.get(attr)
            if value is not None:
                assert value.startswith("#"), f"<{node.tag} {attr}={value!r}> is not a link inside the page"
    assert not dom.find_all("link") and not dom.find_all("img") and not dom.find_all("iframe")
    assert "@import" not in text and "url(" not in text
    scripts = dom.find_all("script")
    assert len(scripts) == 1 and "src" not in scripts[0].attrs
    csp = dom.find("meta", http_equiv="Content-Security-Policy")
    assert "default-src 'none'" in csp.attrs["content"]


def test_header_shows_the_manifest(page):
    root, _, dom = page
    m = _json(root, "manifest.json")
    head = dom.find(id="summary")
    assert head.find(data_key="model").text() == m["model"]["file"]
    sha = head.find(data_key="sha256")
    assert sha.attrs["data-value"] == m["model"]["sha256"] and m["model"]["sha256"].startswith(sha.text())
    assert head.find(data_key="part").text() == m["part"]
    assert head.find(data_key="top").text() == m["top"]
    assert head.find(data_key="sira_version").text() == m["sira_version"]
    assert _number(head.find(data_key="clock_ns").text()) == m["clock_ns"]
    perf = _json(root, "report/estimate.json")["performance"]
    assert _number(head.find(data_key="estimated_throughput_fps").text()) == perf["estimated_throughput_fps"]


def test_csim_verdict(page):
    root, _, dom = page
    verdict = dom.find(id="csim-verdict")
    summary = dom.find(id="csim-summary").text()
    path = os.path.join(root, "report", "csim.json")
    if not os.path.exists(path):
        assert verdict.attrs["data-status"] == "not-run" and "not run" in summary
        pytest.skip(f"C simulation unavailable: {unavailable()}")
    c = _json(root, "report/csim.json")
    assert summary == f"csim: {c['exact']}/{c['samples']} outputs bit-exact"
    assert verdict.attrs["data-status"] == ("passed" if c["passed"] else "failed")
    assert c["passed"] and c["samples"] >= 10 and "PASSED" in verdict.text()


def test_widths_equal_optimize_json(page):
    root, _, dom = page
    layers = _json(root, "report/optimize.json")["layers"]
    assert layers
    table = dom.find("table", id="widths-table")
    rows = {r.attrs["data-layer"]: r for r in table.find_all("tr") if "data-layer" in r.attrs}
    assert list(rows) == [layer["layer"] for layer in layers]
    for layer in layers:
        row = rows[layer["layer"]]
        for key in ("K", "N", "M", "a2q_width", "finn_width", "sira_width"):
            assert _number(row.find(data_key=key).text()) == layer[key], (layer["layer"], key)
        svg = dom.find("svg", data_chart="widths", data_layer=layer["layer"])
        for key in ("N", "M", "a2q_width", "finn_width", "sira_width"):
            assert _number(svg.find("text", data_key=key).text()) == layer[key], (layer["layer"], key)
            assert int(svg.find("rect", data_key=key).attrs["data-value"]) == layer[key]
    sums = dom.find(id="widths")
    for key in ("a2q_width", "finn_width", "sira_width"):
        assert _number(sums.find(data_key=f"sum_{key}").text()) == sum(layer[key] for layer in layers)


def test_resource_totals_equal_estimate_json(page):
    root, _, dom = page
    est = _json(root, "report/estimate.json")
    total, base = est["total"], est["baseline"]["total"]
    chart = dom.find("svg", data_chart="resources")
    for key in ("LUT", "DSP", "BRAM_18K"):
        for flow, t in (("sira", total), ("baseline", base)):
            assert float(chart.find("rect", data_resource=key, data_flow=flow).attrs["data-value"]) == t[key]
            assert _number(chart.find("text", data_resource=key, data_flow=flow).text()) == t[key]
        panel = chart.find("g", data_resource=key)
        assert _number(panel.find(data_key="delta").text()) == est["delta"][key]
    totals = dom.find("table", id="resource-totals")
    for key in ("LUT", "DSP", "BRAM_18K", "URAM", "acc_bits"):
        row = totals.find("tr", data_resource=key)
        assert _number(row.find(data_flow="sira").text()) == total[key]
        assert _number(row.find(data_flow="baseline").text()) == base[key]
        if est["delta"][key] is not None:
            assert _number(row.find(data_key="delta").text()) == est["delta"][key]
    foot = dom.find("table", id="layer-table").find("tfoot")
    for key in ("LUT", "DSP", "BRAM_18K", "URAM"):
        assert _number(foot.find(data_flow="sira", data_key=key).text()) == total[key]
        assert _number(foot.find(data_flow="baseline", data_key=key).text()) == base[key]


def test_per_layer_table_equals_estimate_json(page):
    root, _, dom = page
    est = _json(root, "report/estimate.json")
    table = dom.find("table", id="layer-table")
    rows = {r.attrs["data-layer"]: r for r in table.find_all("tr") if "data-layer" in r.attrs}
    sira_layers, base_layers = est["layers"], est["baseline"]["layers"]
    assert set(rows) == set(sira_layers) | set(base_layers)
    for flow, layers in (("sira", sira_layers), ("baseline", base_layers)):
        for name, d in layers.items():
            for key in ("LUT", "DSP", "BRAM_18K", "URAM"):
                cell = rows[name].find("td", data_flow=flow, data_key=key).text()
                if d[key] == "unknown":  # e.g. a float layer FINN builds and no formula prices
                    assert "unknown" in cell, (name, flow, key)
                else:
                    assert _number(cell) == d[key], (name, flow, key)
    for name in rows:
        d = sira_layers.get(name) or base_layers[name]
        classes = rows[name].attrs.get("class", "").split()
        assert ("host" in classes) == bool(d.get("host")), name
        assert ("plumbing" in classes) == bool(d.get("plumbing")), name
        if name not in sira_layers:
            assert "baseline-only" in classes and "baseline only" in rows[name].text()
    hosts = [n for n, d in sira_layers.items() if d.get("host")]
    assert hosts, "the examples end in float tails that run on the host"
    assert all("host CPU" in rows[n].text() for n in hosts)


def test_range_table_equals_analysis_json(page):
    root, _, dom = page
    a = _json(root, "report/analysis.json")
    table = dom.find("table", id="range-table")
    rows = {r.attrs["data-tensor"]: r for r in table.find_all("tr") if "data-tensor" in r.attrs}
    live = {n: t for n, t in a["tensors"].items() if not t["constant"]}
    assert list(rows) == list(live)
    for name, t in live.items():
        cells = rows[name].find_all("td")
        assert cells[1].text() == t["op"]
        assert cells[2].text() == ("x".join(map(str, t["shape"])) or "scalar")
        assert cells[7].text() == t["datatype"]
        mark = "fallback" if t["fallback"] else ("exact" if t["exact"] else "loose")
        assert cells[8].text() == mark and f"m-{mark}" in rows[name].attrs["class"]
        if t["scaled_int"] and not isinstance(t["int_min"], list) and not isinstance(t["int_max"], list):
            assert cells[4].text() == f"[{t['int_min']}, {t['int_max']}]"
    consts = dom.find("table", id="constant-table")
    assert {r.attrs["data-tensor"] for r in consts.find_all("tr") if "data-tensor" in r.attrs} == {n for n, t in a["tensors"].items() if t["constant"]}


def test_warnings_host_layers_and_manifest(page):
    root, _, dom = page
    m = _json(root, "manifest.json")
    host = dom.find("table", id="host-table")
    names = [r.attrs["data-layer"] for r in host.find_all("tr") if "data-layer" in r.attrs]
    assert names == [layer["name"] for layer in m["host"]["head"] + m["host"]["tail"]]
    islands = dom.find(id="warnings")
    assert "every MAC layer computes on integers" in islands.text()
    versions = dom.find("table", id="versions-table")
    assert {r.find("th").text(): r.find("td").text() for r in versions.find_all("tr")} == m["versions"]
    ports = dom.find("table", id="ports-table")
    assert [r.attrs["data-port"] for r in ports.find_all("tr") if "data-port" in r.attrs] == [
        p["port"] for p in m["ports"]["inputs"] + m["ports"]["outputs"]
    ]
    options = dom.find("table", id="options-table")
    assert [r.find("th").text() for r in options.find_all("tr")] == list(m["options"])


def test_reproducible_and_written_atomically(project):
    first = render_report(project)
    assert render_report(project) == first
    path = write_report(project)
    assert path == os.path.join(project, REPORT_PATH)
    with open(path, encoding="utf-8") as f:
        assert f.read() == first
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".sira-")]
    # the page written into the folder does not change the next page
    assert render_report(project) == first
    assert os.path.abspath(project) not in first


# --------------------------------------------------------------------------
# hostile names, missing inputs, failures
# --------------------------------------------------------------------------


def _copy(projects, tmp_path, name: str = "sira_mlp") -> str:
    dest = str(tmp_path / "copy")
    shutil.copytree(projects[name], dest)
    return dest


def _edit(root: str, rel: str, change) -> None:
    path = os.path.join(root, rel)
    with open(path) as f:
        doc = json.load(f)
    change(doc)
    with open(path, "w") as f:
        json.dump(doc, f)


def test_hostile_names_are_escaped(projects, tmp_path):
    root = _copy(projects, tmp_path)

    def analysis(doc):
        entry = dict(doc["tensors"]["Quant_0_out0"])
        doc["tensors"][HOSTILE] = dict(entry, op=HOSTILE, notes=[HOSTILE])
        doc["tensors"][HOSTILE_QUOTES] = entry
        doc["warnings"].append({"kind": "warning", "node": HOSTILE, "op_type": HOSTILE_QUOTES, "message": HOSTILE})

    def estimate(doc):
        doc["layers"][HOSTILE] = dict(doc["layers"]["MatMul_1"], note=HOSTILE)
        doc["lint"].append(f"warning: layer '{HOSTILE}': too wide (fix: {HOSTILE_QUOTES})")

    def optimize(doc):
        doc["layers"][0]["layer"] = HOSTILE_QUOTES
        doc["layers"][1]["layer"] = HOSTILE

    _edit(root, "report/analysis.json", analysis)
    _edit(root, "report/estimate.json", estimate)
    _edit(root, "report/optimize.json", optimize)
    text = render_report(root)
    assert HOSTILE not in text and HOSTILE_QUOTES not in text
    assert html.escape(HOSTILE) in text and html.escape(HOSTILE_QUOTES) in text
    assert text.count("<script") == 1 and "alert(" not in text.split("<script>")[1]
    dom = parse(text)
    assert len(dom.find_all("script")) == 1 and not dom.find_all("marquee")
    assert not any("onmouseover" in n.attrs for n in dom.iter())
    # the names come back intact when the page is read
    assert dom.find("tr", data_tensor=HOSTILE).find("code").text() == HOSTILE
    assert dom.find("tr", data_tensor=HOSTILE_QUOTES)
    assert dom.find("svg", data_chart="widths", data_layer=HOSTILE)
    assert dom.find("tr", data_layer=HOSTILE)
    # and the page says which generated files were edited after the build
    warnings = dom.find(id="warnings").text()
    assert "report/analysis.json changed since sira build wrote it" in warnings


def test_missing_optional_inputs(projects, tmp_path):
    root = _copy(projects, tmp_path)
    for rel in ("report/csim.json", "report/analysis.json", "report/optimize.json"):
        if os.path.exists(os.path.join(root, rel)):
            os.unlink(os.path.join(root, rel))
    dom = parse(render_report(root))
    assert dom.find(id="csim-verdict").attrs["data-status"] == "not-run"
    assert dom.find(id="csim-summary").text() == "csim: not run"
    for section in ("widths", "ranges"):
        assert "not available" in dom.find(id=section).text()
    assert dom.find("svg", data_chart="resources")
    os.unlink(os.path.join(root, "report", "estimate.json"))
    with open(os.path.join(root, "report", "analysis.json"), "w") as f:
        f.write("{ not json")
    dom = parse(render_report(root))
    assert "not available" in dom.find(id="resources").text()
    assert "report/analysis.json could not be read" in dom.find(id="warnings").text()
    assert write_report(root).endswith(os.path.join("report", "report.html"))


def test_failed_csim_names_the_layer(projects, tmp_path):
    root = _copy(projects, tmp_path)
    with open(os.path.join(root, "report", "csim.json"), "w") as f:
        json.dump({"passed": False, "exact": 7, "samples": 10, "seconds": 0.5, "cached": False, "first_mismatch_layer": "MatMul_1"}, f)
    dom = parse(render_report(root))
    verdict = dom.find(id="csim-verdict")
    assert verdict.attrs["data-status"] == "failed" and "FAILED" in verdict.text()
    assert dom.find(id="csim-summary").text() == "csim: 7/10 outputs bit-exact"
    assert dom.find(id="csim-first-mismatch").text() == "MatMul_1"


def test_not_a_project(tmp_path):
    for path in (tmp_path, tmp_path / "missing"):
        with pytest.raises(SiraError, match="not a sira HLS project.*sira build"):
            render_report(str(path))
    (tmp_path / "manifest.json").write_text(json.dumps({"generator": "something else"}))
    with pytest.raises(SiraError, match="sira build MODEL -o DIR"):
        write_report(str(tmp_path))
    assert not (tmp_path / "report").exists()


# --------------------------------------------------------------------------
# a real browser
# --------------------------------------------------------------------------


def _browser() -> Optional[str]:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_renders_in_headless_browser(projects, tmp_path):
    browser = _browser()
    if browser is None:
        print(NO_BROWSER)
        pytest.skip(NO_BROWSER)
    path = write_report(projects["sira_conv"])
    cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    url = "file://" + os.path.abspath(path)
    done = subprocess.run(cmd + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    for chart in ("widths", "resources"):
        svgs = re.findall(rf'<svg[^>]*data-chart="{chart}".*?</svg>', dom, flags=re.S)
        assert svgs and all("<rect" in svg for svg in svgs), chart
    assert re.search(r'<html[^>]*data-ready="1"', dom), "the page's script did not run"
    assert re.search(r'<th[^>]*tabindex="0"', dom), "the tables were not made sortable"
    logged = subprocess.run(cmd + ["--enable-logging=stderr", "--v=0", "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert logged.returncode == 0
    console = [line for line in logged.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line or "SyntaxError" in line]
    assert not [line for line in console if "Uncaught" in line or "SyntaxError" in line], console
    assert not [line for line in console if "Refused to" in line], console
