# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report as data, Markdown and a self-contained HTML page (the browser look is in tests/browser)."""

import json
import os
import re
from html.parser import HTMLParser

from ansible_collections.llmops.deploy.plugins.module_utils import fleet_report, fleet_report_html, model_selection

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs")
HOSTILE = '<script>alert("x")</script>&co'

HARDWARE = {
    "gpu_h100": {"gpu_model": "H100 80GB HBM3", "gpu_count": 8, "memory_total_mib": 2097152, "cpu_cores": 112,
                 "disk_free_mib": 7000000},
    "gpu_a100_40g": {"gpu_model": "A100 40GB", "gpu_count": 2, "memory_total_mib": 524288, "cpu_cores": 32,
                     "disk_free_mib": 1800000},
    "gpu_rtx4090": {"gpu_model": "RTX 4090", "gpu_count": 1, "memory_total_mib": 65536, "cpu_cores": 16,
                    "disk_free_mib": 900000},
    "cpu_only": {"gpus": [], "memory_total_mib": 262144, "cpu_cores": 64, "disk_free_mib": 1800000},
}
# The third is the guide's 32B at INT4 (table 2.2: 16 GB, 24 GB of GPU memory): only tight on one RTX 4090.
INT4 = {"model": "Qwen/Qwen2.5-32B-Instruct", "precision": "int4", "label": "Qwen2.5-32B INT4"}
CANDIDATES = ["Qwen/Qwen2.5-32B-Instruct", "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8", INT4,
              "Qwen/Qwen2.5-7B-Instruct", "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8"]
FLEET = [("h100-a", "gpu_h100"), ("a100-small", "gpu_a100_40g"), ("edge-1", "gpu_rtx4090"), (HOSTILE, "gpu_rtx4090"),
         ("cpu-1", "cpu_only"), ("down-1", "gpu_h100")]


def _items(candidates, hardware, method="seed"):
    judge = model_selection.hardware_judge(hardware, method=method)
    return [dict(judge(c), item=c) for c in candidates]


def candidates_report(scenario="enterprise", candidates=None, method="seed"):
    cands = model_selection.normalize_candidates(candidates or CANDIDATES, "bf16")
    rows = []
    for host, group in FLEET:
        if host == "down-1":
            items = [{"item": c, "unreachable": True, "msg": "ssh: connect to host down-1: No route to host"}
                     for c in cands]
        else:
            items = _items(cands, HARDWARE[group], method)
        selection = model_selection.select_from_results(items, scenario)
        chosen = selection["chosen_candidate"]
        representative = items[chosen["index"]] if chosen else items[0]
        rows.append(fleet_report.host_row(host, representative, [group], selection))
    return fleet_report.build_report(rows, scenario=scenario, candidates=cands, reserve=0.2)


class Cells(HTMLParser):
    """The matrix cells of a page: (host, candidate, classes, text)."""

    def __init__(self):
        HTMLParser.__init__(self)
        self.cells, self.tags, self._host, self._cell = [], [], None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "tr" and "data-host" in attrs:
            self._host = attrs["data-host"]
        if tag == "td" and "cell" in (attrs.get("class") or "").split():
            self._cell = [self._host, attrs["data-candidate"], attrs["class"].split(), "", attrs.get("title")]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[3] += data + " "

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append(tuple(self._cell))
            self._cell = None


def parse(page):
    parser = Cells()
    parser.feed(page)
    return parser


def test_report_data_matrix_and_totals():
    report = candidates_report()
    assert report["mode"] == "candidates" and report["reserve"] == 0.2
    assert [c["key"] for c in report["candidates"]] == [c if isinstance(c, str) else c["label"] for c in CANDIDATES]
    assert set(report["matrix"]) == set(host for host, _g in FLEET)
    assert dict((r["host"], r["chosen"]) for r in report["hosts"]) == {
        "h100-a": "Qwen/Qwen2.5-32B-Instruct", "a100-small": "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8",
        "edge-1": "Qwen/Qwen2.5-7B-Instruct", HOSTILE: "Qwen/Qwen2.5-7B-Instruct", "cpu-1": None, "down-1": None}
    down = [r for r in report["hosts"] if r["host"] == "down-1"][0]
    assert (down["verdict"], down["gpu_class"]) == ("unreachable", "unknown")
    assert report["totals"]["unreachable"] == 1 and report["totals"]["with_choice"] == 4
    int4 = report["candidates"][2]["totals"]
    assert (int4["fits"], int4["tight"], int4["insufficient"], int4["unreachable"], int4["chosen"]) == (2, 2, 1, 1, 0)
    assert report["candidates"][0]["gpu_memory_gb"] == 96.0
    assert all("cells" not in row for row in report["hosts"])  # the cells live in report["matrix"] only
    json.dumps(report)  # the report is plain JSON


def test_page_is_self_contained_and_escapes_user_text():
    page = fleet_report_html.render_html(candidates_report())
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    for outside in ("http://", "https://", "url(", "@import", "<link", "<img", "<script", "src=", "@font-face"):
        assert outside not in page, outside
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;co" in page
    parser = parse(page)
    assert "script" not in parser.tags
    assert HOSTILE in [cell[0] for cell in parser.cells]


def test_cells_colour_label_and_mark_the_choice():
    report = candidates_report()
    cells = dict(((host, key), (classes, text, title)) for host, key, classes, text, title in
                 parse(fleet_report_html.render_html(report)).cells)
    assert len(cells) == len(FLEET) * len(CANDIDATES)
    classes, text, title = cells[("a100-small", "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8")]
    assert classes == ["cell", "fits", "chosen"] and "Fits" in text and "2 GPUs" in text and "CHOSEN" in text
    classes, text, title = cells[("a100-small", "Qwen/Qwen2.5-32B-Instruct")]
    assert classes == ["cell", "insufficient"] and "needs 4 GPUs, has 2" in text
    assert title.startswith("needs 96.0 GB of GPU memory, host has 85.899 GB")
    classes, text, title = cells[("a100-small", "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8")]
    assert classes == ["cell", "insufficient"] and "Unsupported" in text and "FP8 needs compute capability 8.9" in text
    classes, text, _title = cells[("edge-1", "Qwen2.5-32B INT4")]
    assert classes == ["cell", "tight"] and "1 GPU without reserve" in text
    classes, text, _title = cells[("down-1", "Qwen/Qwen2.5-7B-Instruct")]
    assert classes == ["cell", "unreachable"] and "Unreachable" in text and "no connection" in text
    classes, text, _title = cells[("cpu-1", "Qwen/Qwen2.5-7B-Instruct")]
    assert classes == ["cell", "insufficient"] and "no GPU" in text
    assert sum(1 for classes, _t, _ti in cells.values() if "chosen" in classes) == 4
    # Without a context from the sizing, no 'ctx' is shown at all.
    assert "ctx" not in " ".join(text for _c, text, _t in cells.values())


def test_out_of_band_cells_and_scenario_header():
    page = fleet_report_html.render_html(candidates_report(scenario="complex"))
    cells = dict(((host, key), (classes, text)) for host, key, classes, text, _t in parse(page).cells)
    classes, text = cells[("h100-a", "Qwen/Qwen2.5-7B-Instruct")]
    assert classes == ["cell", "band"] and "Out of band" in text and "outside 32B~70B" in text
    assert "for the <b>complex</b> scenario (Complex tasks: models <b>32B~70B</b> at <b>FP16</b>)" in page
    assert "INT8 not recommended for complex" in page  # column tag
    assert "keeping a <b>20%</b> reserve" in page


def test_groups_data_centre_first_then_consumer_then_cpu():
    groups = fleet_report_html.group_rows(candidates_report()["hosts"])
    assert [(name, cls) for name, cls, _s, _m in groups] == [
        ("gpu_a100_40g", "datacenter"), ("gpu_h100", "datacenter"), ("gpu_rtx4090", "consumer"),
        ("cpu_only", "none")]
    # The unreachable host sits in its group, which keeps the class its reachable hosts reported.
    assert [r["host"] for r in groups[1][3]] == ["down-1", "h100-a"]
    page = fleet_report_html.render_html(candidates_report())
    assert page.index(">gpu_a100_40g<") < page.index(">gpu_h100<") < page.index(">gpu_rtx4090<") < page.index(
        ">cpu_only<")


def test_totals_reasons_and_rules_sections():
    page = fleet_report_html.render_html(candidates_report())
    assert re.search(r'<tfoot><tr><th scope="row">Totals</th>', page)
    assert '<span class="count chosen">chosen on 1</span>' in page
    assert '<div class="tile chosen"><div class="n">4</div><div class="l">with a model chosen</div></div>' in page
    # Hosts with the same outcome share one block; an unreachable host's rejections collapse into one line.
    assert "<h3>edge-1, &lt;script&gt;" in page or "<h3>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;co, " \
                                                   "edge-1</h3>" in page
    assert "<li>every candidate: host unreachable: ssh: connect to host down-1: No route to host</li>" in page
    assert "<li>over <span class=\"mono\">Qwen/Qwen2.5-7B-Instruct</span>: 32B is a larger model than 7B</li>" in page
    assert 'id="rules"' in page and "fits with the reserve before tight" in page


def test_rendering_is_deterministic():
    assert fleet_report_html.render_html(candidates_report()) == fleet_report_html.render_html(candidates_report())


def test_context_is_shown_when_the_sizing_gives_it():
    with open(os.path.join(FIXTURES, "qwen2.5-7b.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    candidates = [{"model": "Qwen/Qwen2.5-7B-Instruct", "config": config}, "Qwen/Qwen2.5-7B-Instruct-AWQ"]
    report = candidates_report(candidates=candidates, method="auto")
    cell = report["matrix"]["h100-a"]["Qwen/Qwen2.5-7B-Instruct"]
    assert cell["max_context_length"] == 131072
    assert report["matrix"]["h100-a"]["Qwen/Qwen2.5-7B-Instruct-AWQ"]["max_context_length"] is None
    cells = dict(((host, key), text) for host, key, _c, text, _t in
                 parse(fleet_report_html.render_html(report)).cells)
    assert "ctx 128k" in cells[("h100-a", "Qwen/Qwen2.5-7B-Instruct")]
    assert "ctx -" in cells[("h100-a", "Qwen/Qwen2.5-7B-Instruct-AWQ")]
    assert "ctx: the largest context that fits" in fleet_report_html.render_html(report)
    assert fleet_report.context_label(30975) == "31.0k" and fleet_report.context_label(None) == "-"


def test_single_model_report_has_one_column():
    judge = model_selection.hardware_judge(HARDWARE["gpu_a100_40g"])
    result = judge(model_selection.normalize_candidate("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", 0, "bf16"))
    row = fleet_report.host_row("a100-small", result, ["gpu_a100_40g"],
                                fleet_report.single_model_selection(result))
    report = fleet_report.build_report([row], result["sizing"], "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B")
    assert report["mode"] == "single" and report["matrix"]["a100-small"]["deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"][
        "verdict"] == "insufficient"
    page = fleet_report_html.render_html(report)
    assert "<title>Fleet preflight: deepseek-ai/DeepSeek-R1-Distill-Qwen-32B</title>" in page
    assert len(parse(page).cells) == 1 and "Needs GPU memory <b>96.0 GB</b>" in page
    assert 'id="rules"' not in page


def test_markdown_and_summary_with_candidates():
    report = candidates_report()
    text = fleet_report.render_markdown(report)
    assert "Scenario: **enterprise** - Enterprise general-purpose, models 7B~32B at INT8/FP8/FP16 (guide 3.1)." in text
    assert "| a100-small | gpu_a100_40g | 2 x A100 40GB | 85.899 |" in text
    assert text.count("| Chosen |") == 1 and "| Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8 |\n" in text
    assert "| a100-small | insufficient, needs 4 GPU(s) | **CHOSEN: fits, 2 GPU(s)** |" in text
    assert "unsupported: FP8 needs compute capability 8.9, A100 40GB has 8.0" in text
    lines = fleet_report.summary_lines(report)
    assert lines[0] == ("5 candidate(s) for the enterprise scenario: 6 host(s) - a model chosen on 4, fits 4, "
                        "tight 0, insufficient 1, failed 0, unreachable 1")
    assert "cpu-1: no candidate (INSUFFICIENT) - every candidate: no GPU found" in lines
    assert "a100-small: Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8 (FITS, 2 GPU(s))" in lines
