# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report as data (plugins/plugin_utils/fleet_report.py) and its renderings: the preflight role's Markdown
and HTML templates, the console summary and the JSON agree (the browser look is in tests/browser).

The templates are rendered as ansible.builtin.template renders them (trim_blocks, the trailing newline kept);
tests/playbooks/test_preflight_playbook.py writes them through the role itself.
"""

import json
import os
import re
from html.parser import HTMLParser

import jinja2
import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.llmops.deploy.plugins.filter import fleet_report as fleet_filters
from ansible_collections.llmops.deploy.plugins.module_utils import capacity, model_selection, sizing
from ansible_collections.llmops.deploy.plugins.plugin_utils import fleet_report

REPO = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
FIXTURES = os.path.join(REPO, "tests", "fixtures", "configs")
TEMPLATES = os.path.join(REPO, "roles", "preflight", "templates")
HOSTILE = '<script>alert("x")</script>&co'
FILTERS = fleet_filters.FilterModule().filters()

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

ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, keep_trailing_newline=True,
                         undefined=jinja2.StrictUndefined)


def render(name, report):
    """``preflight.md`` or ``preflight.html`` of a report, as the role writes it."""
    return ENV.get_template(name + ".j2").render(__preflight_report=report)


def _items(candidates, hardware, method="seed", target="gpu"):
    judge = model_selection.hardware_judge(hardware, method=method, target=target)
    return [dict(judge(c), item=c) for c in candidates]


def candidates_report(scenario="enterprise", candidates=None, method="seed", fleet=None, targets=None):
    cands = model_selection.normalize_candidates(candidates or CANDIDATES, "bf16")
    rows = []
    for host, group in fleet or FLEET:
        if host == "down-1":
            items = [{"item": c, "unreachable": True, "msg": "ssh: connect to host down-1: No route to host"}
                     for c in cands]
        else:
            items = _items(cands, HARDWARE[group], method, (targets or {}).get(group, "gpu"))
        selection = model_selection.select_from_results(items, scenario)
        chosen = selection["chosen_candidate"]
        representative = items[chosen["index"]] if chosen else items[0]
        rows.append(fleet_report.host_row(host, representative, [group], selection))
    return fleet_report.build_report(rows, scenario=scenario, candidates=cands, reserve=0.2)


def single_report(model, fleet, target="gpu", scenario=None):
    """A one-model report of ``fleet`` ([(host, group)]) through the fleet_report filter, as the role builds it."""
    hostvars = {}
    for host, group in fleet:
        sized = sizing.size_model(model=model, default_precision="bf16", target=target)
        result = capacity.assess(sized, HARDWARE[group], target=target)
        result["sizing"] = sized
        result["selection"] = model_selection.single_selection(result, scenario)
        hostvars[host] = {"group_names": [group], "preflight_result": result}
    return FILTERS["fleet_report"]([host for host, _g in fleet], hostvars, model=model, scenario=scenario)


class Cells(HTMLParser):
    """The matrix cells of a page: (host, candidate, classes, text, title), and each host row's text."""

    def __init__(self):
        HTMLParser.__init__(self)
        self.cells, self.tags, self.rows, self._host, self._cell, self._row = [], [], {}, None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "tr" and "data-host" in attrs:
            self._host = attrs["data-host"]
            self._row = []
        if tag == "td" and "cell" in (attrs.get("class") or "").split():
            self._cell = [self._host, attrs["data-candidate"], attrs["class"].split(), "", attrs.get("title")]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[3] += data + " "
        elif self._row is not None:
            self._row.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append(tuple(self._cell))
            self._cell = None
        if tag == "tr" and self._row is not None:
            self.rows[self._host] = "".join(self._row)
            self._row = None


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
    # The words every rendering uses are in the data.
    cell = report["matrix"]["a100-small"]["Qwen/Qwen2.5-32B-Instruct"]
    assert (cell["state"], cell["note"], cell["text"]) == ("insufficient", "needs 4 GPUs, has 2",
                                                           "insufficient, needs 4 GPU(s)")
    assert report["matrix"]["a100-small"]["okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8"]["state"] == "unsupported"
    assert report["matrix"]["edge-1"]["Qwen2.5-32B INT4"]["detail"] == "1 GPU without reserve"
    assert report["candidates"][0]["owner"] == "Qwen/" and report["candidates"][0]["name"] == "Qwen2.5-32B-Instruct"
    json.loads(json.dumps(report))  # the report is plain JSON


def test_page_is_self_contained_and_escapes_user_text():
    page = render("preflight.html", candidates_report())
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    for outside in ("http://", "https://", "url(", "@import", "<link", "<img", "<script", "src=", "@font-face"):
        assert outside not in page, outside
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;co" in page
    parser = parse(page)
    assert "script" not in parser.tags
    assert HOSTILE in [cell[0] for cell in parser.cells]


def test_cells_colour_label_and_mark_the_choice():
    report = candidates_report()
    cells = dict(((host, key), (classes, text, title)) for host, key, classes, text, title in
                 parse(render("preflight.html", report)).cells)
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
    page = render("preflight.html", candidates_report(scenario="complex"))
    cells = dict(((host, key), (classes, text)) for host, key, classes, text, _t in parse(page).cells)
    classes, text = cells[("h100-a", "Qwen/Qwen2.5-7B-Instruct")]
    assert classes == ["cell", "band"] and "Out of band" in text and "outside 32B~70B" in text
    assert "for the <b>complex</b> scenario (Complex tasks: models <b>32B~70B</b> at <b>FP16</b>)" in page
    assert "INT8 not recommended for complex" in page  # column tag
    assert "keeping a <b>20%</b> reserve" in page


def test_groups_data_centre_first_then_consumer_then_cpu():
    report = candidates_report()
    groups = report["groups"]
    assert [(g["name"], g["gpu_class"]) for g in groups] == [
        ("gpu_a100_40g", "datacenter"), ("gpu_h100", "datacenter"), ("gpu_rtx4090", "consumer"),
        ("cpu_only", "none")]
    # The unreachable host sits in its group, which keeps the class its reachable hosts reported.
    assert [report["hosts"][i]["host"] for i in groups[1]["rows"]] == ["down-1", "h100-a"]
    page = render("preflight.html", report)
    assert page.index(">gpu_a100_40g<") < page.index(">gpu_h100<") < page.index(">gpu_rtx4090<") < page.index(
        ">cpu_only<")


def test_totals_reasons_and_rules_sections():
    page = render("preflight.html", candidates_report())
    assert re.search(r'<tfoot><tr><th scope="row">Totals</th>', page)
    assert '<span class="count chosen">chosen on 1</span>' in page
    assert '<div class="tile chosen"><div class="n">4</div><div class="l">with a model chosen</div></div>' in page
    # Hosts with the same outcome share one block; an unreachable host's rejections collapse into one line.
    assert "<h3>edge-1, &lt;script&gt;" in page or "<h3>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;co, " \
                                                   "edge-1</h3>" in page
    assert "<li>every candidate: host unreachable: ssh: connect to host down-1: No route to host</li>" in page
    assert "<li>over <span class=\"mono\">Qwen/Qwen2.5-7B-Instruct</span>: 32B is a larger model than 7B</li>" in page
    assert 'id="rules"' in page and "fits with the reserve before tight" in page


def test_rendering_is_deterministic():
    for name in ("preflight.html", "preflight.md"):
        assert render(name, candidates_report()) == render(name, candidates_report())


def test_context_is_shown_when_the_sizing_gives_it():
    with open(os.path.join(FIXTURES, "qwen2.5-7b.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    candidates = [{"model": "Qwen/Qwen2.5-7B-Instruct", "config": config}, "Qwen/Qwen2.5-7B-Instruct-AWQ"]
    report = candidates_report(candidates=candidates, method="auto")
    cell = report["matrix"]["h100-a"]["Qwen/Qwen2.5-7B-Instruct"]
    assert cell["max_context_length"] == 131072
    assert report["matrix"]["h100-a"]["Qwen/Qwen2.5-7B-Instruct-AWQ"]["max_context_length"] is None
    page = render("preflight.html", report)
    cells = dict(((host, key), text) for host, key, _c, text, _t in parse(page).cells)
    assert "ctx 128k" in cells[("h100-a", "Qwen/Qwen2.5-7B-Instruct")]
    assert "ctx -" in cells[("h100-a", "Qwen/Qwen2.5-7B-Instruct-AWQ")]
    assert "ctx: the largest context that fits" in page
    assert "ctx 128k" in render("preflight.md", report)
    assert fleet_report.context_label(30975) == "31.0k" and fleet_report.context_label(None) == "-"


def test_single_model_report_has_one_column():
    report = single_report("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", [("a100-small", "gpu_a100_40g")])
    assert report["mode"] == "single" and report["matrix"]["a100-small"]["deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"][
        "verdict"] == "insufficient"
    page = render("preflight.html", report)
    assert "<title>Fleet preflight: deepseek-ai/DeepSeek-R1-Distill-Qwen-32B</title>" in page
    assert len(parse(page).cells) == 1 and "Needs GPU memory <b>96.0 GB</b>" in page
    assert 'id="rules"' not in page


def test_markdown_and_summary_with_candidates():
    report = candidates_report()
    text = render("preflight.md", report)
    assert text.startswith("# Fleet preflight\n\nScenario: **enterprise**")
    assert "Scenario: **enterprise** - Enterprise general-purpose, models 7B~32B at INT8/FP8/FP16 (guide 3.1)." in text
    assert "- `Qwen/Qwen2.5-32B-Instruct` - 32B parameters at BF16, GPU memory 96.0 GB; chosen on 1 host(s)\n" in text
    assert "| a100-small | gpu_a100_40g | 2 x A100 40GB | 85.899 |" in text
    assert text.count("| Chosen |") == 1 and "| Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8 |\n" in text
    assert "| a100-small | insufficient, needs 4 GPU(s) | **CHOSEN: fits, 2 GPU(s)** |" in text
    assert "unsupported: FP8 needs compute capability 8.9, A100 40GB has 8.0" in text
    assert "| &lt;" not in text and "| %s |" % HOSTILE.replace("|", "\\|") in text  # Markdown is not HTML-escaped
    lines = fleet_report.summary_lines(report)
    assert lines[0] == ("5 candidate(s) for the enterprise scenario: 6 host(s) - a model chosen on 4, fits 4, "
                        "tight 0, insufficient 1, failed 0, unreachable 1")
    assert "cpu-1: no candidate (INSUFFICIENT) - every candidate: no GPU found" in lines
    assert "a100-small: Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8 (FITS, 2 GPU(s))" in lines


def _agree(report):
    """Console, Markdown, HTML and JSON say the same verdict, choice and totals for every host."""
    lines = fleet_report.summary_lines(report)
    markdown = render("preflight.md", report)
    page = parse(render("preflight.html", report))
    data = json.loads(json.dumps(report))
    t = data["totals"]
    assert "fits %d, tight %d, insufficient %d, failed %d, unreachable %d" % (
        t["fits"], t["tight"], t["insufficient"], t["failed"], t["unreachable"]) in lines[0]
    assert "Hosts: %d - fits %d, tight %d, insufficient %d, failed %d, unreachable %d." % (
        t["hosts"], t["fits"], t["tight"], t["insufficient"], t["failed"], t["unreachable"]) in markdown
    html = render("preflight.html", report)
    for number, label in ((t["hosts"], "hosts"), (t["with_choice"], "with a model chosen"), (t["fits"], "fit with "
                          "the reserve"), (t["tight"], "tight (no reserve)"), (t["insufficient"], "insufficient")):
        assert '<div class="n">%d</div><div class="l">%s</div>' % (number, label) in html
    assert len(page.rows) == t["hosts"] == len(data["hosts"])
    for row in data["hosts"]:
        line = [ln for ln in lines[1:] if ln.startswith(row["host"] + ": ")]
        assert len(line) == 1, row["host"]
        if data["mode"] == "single":  # one model: the line says the verdict
            assert line[0].startswith("%s: %s (" % (row["host"], row["verdict"].upper()))
        elif row["chosen"]:
            assert line[0].startswith("%s: %s (%s" % (row["host"], row["chosen"], row["verdict"].upper()))
        else:
            assert line[0].startswith("%s: no candidate (%s)" % (row["host"], row["verdict"].upper()))
        md_row = [ln for ln in markdown.splitlines() if ln.startswith("| %s | " % row["host"])][0]
        assert "| **%s** |" % row["verdict"] in md_row
        if data["mode"] == "candidates":
            assert md_row.endswith(" %s |" % (row["chosen"] or "none"))
        chosen_cells = [key for host, key, classes, _t, _ti in page.cells if host == row["host"] and "chosen" in classes]
        assert chosen_cells == ([row["chosen"]] if row["chosen"] else [])
        verdicts = dict((key, data["matrix"][row["host"]][key]["state"]) for key in data["matrix"][row["host"]])
        for host, key, classes, text, _title in page.cells:
            if host == row["host"]:
                assert {"fits": "Fits", "tight": "Tight", "insufficient": "Insufficient", "unsupported": "Unsupported",
                        "band": "Out of band", "unreachable": "Unreachable", "failed": "Check failed",
                        "unchecked": "Not checked"}[verdicts[key]] in text
        assert ("%s (%s)" % ("no candidate fits" if data["mode"] == "candidates" else "not deployable", row["verdict"])
                in page.rows[row["host"]]) == (not row["chosen"])


def test_console_markdown_html_and_json_agree_with_candidates():
    _agree(candidates_report())
    _agree(candidates_report(scenario="complex"))


def test_console_markdown_html_and_json_agree_for_one_model_outside_the_band():
    # The README's example: one AWQ 72B on the example fleet, the enterprise band 7B~32B. A model given alone is
    # checked as given: every rendering says where it can be deployed, none calls it out of band.
    fleet = [("h100-a", "gpu_h100"), ("a100-small", "gpu_a100_40g"), ("edge-1", "gpu_rtx4090")]
    report = single_report("Qwen/Qwen2.5-72B-Instruct-AWQ", fleet, scenario="enterprise")
    assert report["totals"]["deployable"] == report["totals"]["with_choice"] == 2
    _agree(report)
    assert not [cell for cell in parse(render("preflight.html", report)).cells if "band" in cell[2]]
    assert '<div class="n">2</div><div class="l">with a model chosen</div>' in render("preflight.html", report)


def test_cpu_target_shows_the_cpu_plan_and_no_gpu_figure():
    report = single_report("Qwen/Qwen2.5-7B-Instruct", [("cpu-1", "cpu_only")], target="cpu")
    row = report["hosts"][0]
    plan = row["cpu_plan"]
    assert row["target"] == "cpu" and report["targets"] == ["cpu"] and row["verdict"] == "fits"
    assert plan["host_ram_gb"] == round(plan["weights_gb"] + plan["kv_cache_space_gib"] * 1.073741824
                                        + plan["runtime_gb"], 3)
    assert plan["guide_cpu_memory_gb"] == 2 * plan["weights_gb"] and plan["cpu_cores_label"]
    assert report["sizing"]["cpu_plan"]["text"] == plan["text"]
    words = ["host RAM %s GB" % plan["host_ram_gb"], "weights %s GB" % plan["weights_gb"],
             "KV-cache space %s GiB" % plan["kv_cache_space_gib"], "runtime %s GB" % plan["runtime_gb"],
             "%s cores" % plan["cpu_cores_label"],
             "the guide's CPU-memory rule (parameter memory x 2): %s GB" % plan["guide_cpu_memory_gb"]]
    markdown = render("preflight.md", report)
    page = render("preflight.html", report)
    console = "\n".join(fleet_report.summary_lines(report))
    for text in (markdown, page.replace("&#39;", "'"), console):
        for word in words:
            assert word in text
        assert "GPU memory" not in text and "VRAM" not in text.replace("VRAM (GB)", "")
    assert "| cpu-1 | cpu_only | not used (CPU target) | - | 274.878 | 64 | 1887.437 | **fits** | - |" in markdown
    assert "(guide 2.1)" not in page and "GPU" not in parse(page).rows["cpu-1"].replace("no GPU", "")


def test_cpu_hosts_among_gpu_hosts_with_candidates():
    fleet = [("h100-a", "gpu_h100"), ("cpu-1", "cpu_only")]
    report = candidates_report(fleet=fleet, targets={"cpu_only": "cpu"})
    rows = dict((row["host"], row) for row in report["hosts"])
    assert rows["cpu-1"]["chosen"] == "Qwen/Qwen2.5-32B-Instruct" and rows["cpu-1"]["gpu_class"] == "cpu"
    assert rows["cpu-1"]["cpu_plan"]["weights_gb"] == 64.0 and rows["h100-a"]["cpu_plan"] is None
    assert "CPU target: host RAM %s GB" % rows["cpu-1"]["cpu_plan"]["host_ram_gb"] in "\n".join(
        fleet_report.summary_lines(report))
    assert "- **cpu-1** (Qwen/Qwen2.5-32B-Instruct): host RAM" in render("preflight.md", report)
    page = parse(render("preflight.html", report))
    assert "CPU plan: host RAM" in page.rows["cpu-1"] and "CPU plan" not in page.rows["h100-a"]
    _agree(report)


def test_filters_return_data_and_name_a_bad_report():
    assert sorted(FILTERS) == ["fleet_report", "fleet_report_summary"]  # the pages are templates
    here = os.path.dirname(fleet_filters.__file__)
    for name in FILTERS:
        assert os.path.exists(os.path.join(here, name + ".yml")), name
    with pytest.raises(AnsibleFilterError, match="llmops.deploy.fleet_report_summary: not a fleet report"):
        FILTERS["fleet_report_summary"]({"nope": 1})
    with pytest.raises(AnsibleFilterError, match="list of host names"):
        FILTERS["fleet_report"]("host1", {})


# Reports show the guide's seed figures beside the detailed method's where the two differ.

def detailed_llama(**options):
    with open(os.path.join(FIXTURES, "llama-3.1-8b.json")) as handle:
        config = json.load(handle)
    return sizing.size_model(model="LLM-Research/Meta-Llama-3.1-8B-Instruct", method="detailed", config=config,
                             **options)


def one_host_report(sized):
    result = capacity.assess(sized, {"gpu_model": "H100", "gpu_count": 8, "memory_total_mib": 1 << 21,
                                     "cpu_cores": 64, "disk_free_mib": 1 << 21})
    result["sizing"] = sized
    row = fleet_report.host_row("h100-1", result, ["gpu_h100"])
    return fleet_report.build_report([row], sized)


def test_seed_comparison_of_a_detailed_sizing():
    sized = detailed_llama(context_length=32768, concurrency=8)
    seed = sizing.seed_comparison(sized)
    assert seed["differs"] is True
    assert seed["gpu_memory_gb"] == sizing.size_model(params=sized["params"], precision="bf16")["gpu_memory_gb"]
    assert seed["ratio"] == sized["gpu_memory_ratio_to_seed"] > 1


def test_seed_sizing_has_no_comparison():
    assert sizing.seed_comparison(sizing.size_model(params="8B", precision="bf16")) is None


def test_markdown_and_html_show_both_when_they_differ():
    sized = detailed_llama(context_length=32768, concurrency=8)
    report = one_host_report(sized)
    line = "Guide's rule (seed method): GPU memory %s GB; the detailed method says %s GB (x%s)." % (
        sizing.seed_comparison(sized)["gpu_memory_gb"], sized["gpu_memory_gb"], sized["gpu_memory_ratio_to_seed"])
    assert report["sizing"]["seed_line"] == line
    assert line in render("preflight.md", report)
    assert line.replace("'", "&#39;") in render("preflight.html", report)


def test_nothing_extra_when_they_agree():
    sized = detailed_llama(context_length=8192, concurrency=1)
    if sized["differs_from_seed"]:
        sized = dict(sized, differs_from_seed=False)
    report = one_host_report(sized)
    assert report["sizing"]["seed_line"] is None
    assert "Guide's rule" not in render("preflight.md", report) and "Guide&#39;s rule" not in render(
        "preflight.html", report)


def test_candidate_column_carries_the_guide_figure():
    sized = detailed_llama(context_length=32768, concurrency=8)
    item = {"key": "LLM-Research/Meta-Llama-3.1-8B-Instruct", "method": "detailed",
            "gpu_memory_gb": sized["gpu_memory_gb"], "seed": sizing.seed_comparison(sized)}
    report = fleet_report.build_report([], candidates=[item])
    column = report["candidates"][0]
    seed = sizing.seed_comparison(sized)["gpu_memory_gb"]
    assert column["seed_gpu_memory"] == fleet_report.gb_glance(seed)
    assert "guide's rule: %s GB</span>" % fleet_report.gb_glance(seed) in render("preflight.html", report)
