"""Sizing and fleet-report filters: same numbers as the modules, errors as AnsibleFilterError."""
import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.llmops.deploy.plugins.filter.sizing import FilterModule

FILTERS = FilterModule().filters()


def test_model_sizing_from_a_count():
    result = FILTERS["model_sizing"]("32B", "int8")
    assert (result["gpu_memory_gb"], result["cpu_memory_gb"]) == (48, 64)


def test_model_sizing_from_a_model_id():
    result = FILTERS["model_sizing"]("okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8")
    assert (result["precision"], result["param_memory_gb"]) == ("fp8", 32)


def test_gpu_plan_671b():
    plan = FILTERS["gpu_plan"]("671B", gpu="A100 80GB", precision="fp16")
    assert (plan["gpus"], plan["nodes"], plan["tensor_parallel_size"], plan["pipeline_parallel_size"]) == (32, 4, 8, 4)
    assert "across 4 nodes of 8" in plan["description"]


def test_gpu_plan_takes_a_sizing_dict():
    sized = FILTERS["model_sizing"]("7B", "fp16")
    assert FILTERS["gpu_plan"](sized, gpu_memory_mib=24564)["gpus"] == 1


@pytest.mark.parametrize("call, words", [
    (lambda: FILTERS["model_sizing"]("7B", "fp5"), ["llmops.deploy.model_sizing", "precision", "'fp5'"]),
    (lambda: FILTERS["model_sizing"]("seven", "fp16"), ["params", "'seven'"]),
    (lambda: FILTERS["gpu_plan"]("7B", precision="fp16"), ["llmops.deploy.gpu_plan", "gpu"]),
    (lambda: FILTERS["fleet_report"]("host1", {}), ["list of host names"]),
    (lambda: FILTERS["fleet_report_markdown"]({"nope": 1}), ["not a fleet report"]),
])
def test_errors_are_filter_errors_naming_the_value(call, words):
    with pytest.raises(AnsibleFilterError) as err:
        call()
    for word in words:
        assert word in str(err.value)


def _result(verdict, gpus, target="gpu"):
    return {"verdict": verdict, "gpus_needed": 2, "gpu_plan": None, "reasons": ["r-" + verdict], "warnings": [],
            "probed": ["gpus"], "target": target,
            "hardware": {"gpus": gpus, "memory_total_mib": 1024, "cpu_cores": 8, "disk_free_mib": 2048},
            "sizing": {"model": "o/M-7B", "method": "seed", "params": 7000000000, "params_label": "7B",
                       "precision": "fp16", "precision_label": "FP16", "reserve": 0.2, "param_memory_gb": 14.0,
                       "gpu_memory_gb": 21.0, "gpu_memory_gib": 19.56, "cpu_memory_gb": 28.0, "cpu_memory_gib": 26.08,
                       "disk_gb": 14.0, "cpu_cores": 8, "cpu_cores_max": None, "cpu_cores_label": "8"}}


def test_fleet_report_rows_totals_and_markdown():
    h100 = [{"name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559}] * 2
    hostvars = {
        "b-host": {"preflight_result": _result("fits", h100), "group_names": ["gpu_h100"]},
        "a-host": {"preflight_result": _result("insufficient", []), "group_names": ["cpu_only"]},
        "c-host": {"preflight_result": {"unreachable": True, "msg": "ssh timed out"}, "group_names": ["gpu_h100"]},
        "d-host": {"group_names": ["gpu_h100"]},
    }
    report = FILTERS["fleet_report"](["b-host", "a-host", "c-host", "d-host"], hostvars)
    assert [r["host"] for r in report["hosts"]] == ["a-host", "b-host", "c-host", "d-host"]
    assert report["totals"] == {"hosts": 4, "fits": 1, "tight": 0, "insufficient": 1, "failed": 0,
                                "unreachable": 2, "deployable": 1}
    b_row = report["hosts"][1]
    assert b_row["gpu_summary"] == "2 x NVIDIA H100 80GB HBM3" and b_row["gpu_memory_total_gb"] == 171.042
    assert report["hosts"][2]["reasons"] == ["ssh timed out"]
    text = FILTERS["fleet_report_markdown"](report)
    assert "| b-host | gpu_h100 | 2 x NVIDIA H100 80GB HBM3 | 171.042 |" in text
    assert "Model: **o/M-7B** - 7B parameters at FP16" in text
    lines = FILTERS["fleet_report_summary"](report)
    assert lines[0].startswith("o/M-7B at FP16: 4 host(s) - fits 1, tight 0, insufficient 1")
    assert "a-host: INSUFFICIENT (GPUs: none, needs 2 GPU(s)) - r-insufficient" in lines
