"""Reports show the guide's seed figures beside the detailed method's where the two differ."""
import json
import os

from ansible_collections.llmops.deploy.plugins.module_utils import capacity, fleet_report, fleet_report_html, sizing

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs")


def detailed_llama(**options):
    with open(os.path.join(CONFIGS, "llama-3.1-8b.json")) as handle:
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
    assert line in fleet_report.render_markdown(report)
    assert line.replace("'", "&#x27;") in fleet_report_html.render_html(report)


def test_nothing_extra_when_they_agree():
    sized = detailed_llama(context_length=8192, concurrency=1)
    if sized["differs_from_seed"]:
        sized = dict(sized, differs_from_seed=False)
    report = one_host_report(sized)
    assert "Guide's rule" not in fleet_report.render_markdown(report)


def test_candidate_column_carries_the_guide_figure():
    sized = detailed_llama(context_length=32768, concurrency=8)
    column = fleet_report.candidate_entry({"key": "LLM-Research/Meta-Llama-3.1-8B-Instruct", "method": "detailed",
                                           "gpu_memory_gb": sized["gpu_memory_gb"],
                                           "seed": sizing.seed_comparison(sized)})
    header = fleet_report_html._column_header(column, None)  # pylint: disable=protected-access
    assert "guide's rule: %s GB" % fleet_report_html._gb(  # pylint: disable=protected-access
        sizing.seed_comparison(sized)["gpu_memory_gb"]) in header
