# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a reader of the fleet report learns about the calibration file: each measured constant a plan used with the
modelled value beside it, in the console, Markdown, HTML and JSON alike; and every measured figure no plan used,
named with the reason (another engine version, a GPU no host has, a host whose plan did not take it).

The templates are rendered as ansible.builtin.template renders them (trim_blocks, the trailing newline kept).
"""

import html
import json
import os
import re

import jinja2

from ansible_collections.llmops.deploy.plugins.filter import fleet_report as fleet_filters
from ansible_collections.llmops.deploy.plugins.module_utils import capacity, detailed_sizing, sizing
from ansible_collections.llmops.deploy.plugins.plugin_utils import fleet_report

GIB = 2 ** 30
REPO = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
TEMPLATES = os.path.join(REPO, "roles", "preflight", "templates")
ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, keep_trailing_newline=True,
                         undefined=jinja2.StrictUndefined)
# An A100 80GB trial as calibration_lookup_all returns it: recorded under nvidia-smi's name.
A100 = {"engine": "vllm", "engine_version": "0.32.0", "gpu": "NVIDIA A100-SXM4-80GB", "memory_total_mib": 81920,
        "gpu_class": "nvidia-a100-sxm4-80gb/81920MiB", "host": "a100-node-01", "date": "2026-11-30T10:00:00+00:00",
        "model": "Qwen/Qwen2.5-7B-Instruct", "activation_ratio": 2.0, "non_torch_bytes": GIB // 2,
        "cuda_graph_bytes": GIB // 4, "torch_total_bytes": 79 * GIB}
H200 = dict(A100, gpu="NVIDIA H200", memory_total_mib=143771, gpu_class="nvidia-h200/143771MiB", host="h200-lab")
# Declared as an inventory spells it: the catalog's A100 80GB (81920 MiB).
DECLARED = {"gpu_model": "A100 80GB", "gpu_count": 2, "memory_total_mib": 1 << 20, "cpu_cores": 64,
            "disk_free_mib": 1 << 21}


def render(name, report):
    return ENV.get_template(name + ".j2").render(__preflight_report=report)


def text_of(page):
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def llama(calibration=None):
    with open(os.path.join(REPO, "tests", "fixtures", "configs", "llama-3.1-8b.json")) as handle:
        config = json.load(handle)
    return sizing.size_model(model="LLM-Research/Meta-Llama-3.1-8B-Instruct", method="detailed", config=config,
                             context_length=8192, calibration=calibration)


def row_for(host, sized):
    result = capacity.assess(sized, DECLARED)
    result["sizing"] = sized
    return fleet_report.host_row(host, result, ["gpu_a100_80g"])


def test_the_note_names_each_measured_constant_with_the_modelled_value_beside():
    memory = detailed_sizing.plan(llama(A100), 81920, gpu_name="NVIDIA A100-SXM4-80GB")["engine_memory"]
    parts = dict((p["part"], p) for p in memory["calibration_parts"])
    assert sorted(parts) == ["activation", "cuda_graph", "non_torch", "torch_total"]
    modelled = memory["modelled_gib"]
    for key in parts:
        assert parts[key]["gib"] == memory[key + "_gib"] and parts[key]["modelled_gib"] == modelled[key + "_gib"]
    assert parts["non_torch"]["gib"] == 0.5 and parts["torch_total"]["gib"] == 79.0
    assert parts["activation"]["gib"] > parts["activation"]["modelled_gib"] > 0  # measured/modelled 2.0
    note = memory["calibration_note"]
    assert note.startswith("measured on a100-node-01, 2026-11-30T10:00:00+00:00 (vLLM 0.32.0, "
                           "nvidia-a100-sxm4-80gb/81920MiB): activation ")
    assert "activation %.2f GiB measured (modelled %.2f)" % (parts["activation"]["gib"], modelled["activation_gib"]) \
        in note
    assert "non-torch 0.50 GiB measured (modelled %.2f)" % modelled["non_torch_gib"] in note
    assert "CUDA graphs 0.25 GiB measured (modelled %.2f)" % modelled["cuda_graph_gib"] in note
    assert "device total 79.00 GiB measured (modelled %.2f)" % modelled["torch_total_gib"] in note
    assert "modelled beside" not in note  # the figures are beside, not a promise of them


def test_only_the_constants_the_trial_measured_are_named():
    partial = dict((k, v) for k, v in A100.items() if k not in ("activation_ratio", "cuda_graph_bytes",
                                                                "torch_total_bytes"))
    memory = detailed_sizing.plan(llama(partial), 81920)["engine_memory"]
    assert [p["part"] for p in memory["calibration_parts"]] == ["non_torch"]
    assert memory["calibration_note"].endswith(": non-torch 0.50 GiB measured (modelled %.2f)" % (
        memory["modelled_gib"]["non_torch_gib"]))
    nothing = dict((k, v) for k, v in partial.items() if k != "non_torch_bytes")
    memory = detailed_sizing.plan(llama(nothing), 81920)["engine_memory"]
    assert memory["calibration_parts"] == [] and "no constant it measured applies" in memory["calibration_note"]


def test_console_markdown_html_and_json_show_the_measured_and_the_modelled_figures():
    result = capacity.assess(llama(A100), DECLARED)
    result["sizing"] = llama(A100)
    report = fleet_filters.FilterModule().filters()["fleet_report"](
        ["a100-x"], {"a100-x": {"group_names": ["gpu_a100_80g"]}}, results={"a100-x": result},
        calibrations={"calibrations": [A100], "warnings": []})
    data = json.loads(json.dumps(report))
    json_row = data["hosts"][0]
    assert json_row["calibration"] == result["gpu_plan"]["engine_memory"]["calibration_note"]
    parts = dict((p["part"], p) for p in json_row["calibration_parts"])
    activation = "activation %.2f GiB measured (modelled %.2f)" % (parts["activation"]["gib"],
                                                                   parts["activation"]["modelled_gib"])
    assert activation in json_row["calibration"]
    assert data["calibration"] == {"hosts": ["a100-x"], "warnings": []}
    line = [ln for ln in fleet_report.summary_lines(report) if ln.startswith("a100-x: ")][0]
    assert "engine constants measured on a100-node-01" in line and activation in line
    assert "- **a100-x**: measured on a100-node-01" in render("preflight.md", report)
    assert activation in render("preflight.md", report)
    assert "Engine constants measured on a100-node-01" in text_of(render("preflight.html", report))
    assert activation in text_of(render("preflight.html", report))
    assert "Calibration" not in " ".join(fleet_report.summary_lines(report))  # nothing was left unused


def test_measured_figures_no_plan_used_are_named_in_every_rendering():
    """An entry of another engine version, constants of a GPU no host has, and a host whose plan did not take the
    constants measured on its GPU (declared as 'A100 80GB', measured as 'NVIDIA A100-SXM4-80GB'): each is a
    warning in the report, none is dropped silently."""
    stale = "calibration entry 3 ignored: measured with vllm 0.31.0 on a100-old, 2026-10-02; this plan is for vllm 0.32.0"
    rows = [row_for("a100-plain", llama())]
    report = fleet_report.build_report(rows, llama(), calibrations={"calibrations": [A100, H200], "warnings": [stale]})
    warnings = report["calibration"]["warnings"]
    assert warnings[0] == stale
    assert warnings[1].startswith("calibration for NVIDIA H200 (143771 MiB, measured on h200-lab, 2026-11-30")
    assert "no host of this run plans on that GPU (nvidia-h200/143771MiB)" in warnings[1]
    assert warnings[2].startswith("a100-plain: calibration not used by this plan although it was measured on this "
                                  "host's GPU (A100 80GB, 81920 MiB): NVIDIA A100-SXM4-80GB on a100-node-01")
    assert len(warnings) == 3 and report["calibration"]["hosts"] == []
    assert warnings[2].split(": ", 1)[1] in report["hosts"][0]["warnings"]
    lines = fleet_report.summary_lines(report)
    markdown = render("preflight.md", report)
    page = text_of(render("preflight.html", report))
    for warning in warnings:
        assert "Calibration: %s" % warning in lines
        assert "- %s" % warning in markdown
        assert "warning: %s" % warning in page
    # The constants of the host's own GPU used by its plan: no warning about them (H200 still has none here).
    used = fleet_report.build_report([row_for("a100-x", llama(A100))], llama(A100),
                                     calibrations={"calibrations": [A100, H200], "warnings": []})
    assert [w.split(" (")[0] for w in used["calibration"]["warnings"]] == ["calibration for NVIDIA H200"]
    # Without the lookup's result the report has no calibration warnings to give.
    alone = fleet_report.build_report([row_for("a100-plain", llama())], llama())
    assert alone["calibration"] == {"hosts": [], "warnings": []} and alone["hosts"][0]["warnings"] == []
