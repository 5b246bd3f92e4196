"""Sizing, fleet-report and model-selection filters: same numbers as the modules, errors as AnsibleFilterError."""
import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.llmops.deploy.plugins.filter import fleet_report, model_selection, sizing

FILTERS = dict(sizing.FilterModule().filters())
FILTERS.update(fleet_report.FilterModule().filters())
FILTERS.update(model_selection.FilterModule().filters())


def test_every_filter_has_its_sidecar_documentation():
    import os
    here = os.path.dirname(fleet_report.__file__)
    for name in FILTERS:
        assert os.path.exists(os.path.join(here, name + ".yml")), name


def test_model_sizing_from_a_count():
    result = FILTERS["model_sizing"]("32B", "int8")
    assert (result["gpu_memory_gb"], result["cpu_memory_gb"]) == (48, 64)


def test_model_sizing_from_a_model_id():
    result = FILTERS["model_sizing"]("okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8")
    assert (result["precision"], result["param_memory_gb"]) == ("fp8", 34.322)  # FP8 + 16-bit embeddings


def test_gpu_plan_671b():
    plan = FILTERS["gpu_plan"]("671B", gpu="A100 80GB", precision="fp16")
    assert (plan["gpus"], plan["nodes"], plan["tensor_parallel_size"], plan["pipeline_parallel_size"]) == (32, 4, 8, 4)
    assert "across 4 nodes of 8" in plan["description"]


def test_gpu_plan_takes_a_sizing_dict():
    sized = FILTERS["model_sizing"]("7B", "fp16")
    assert FILTERS["gpu_plan"](sized, gpu_memory_mib=24564)["gpus"] == 1


def test_gpu_plan_plans_a_detailed_sizing_per_gpu_as_the_module_does():
    import json
    import os
    from ansible_collections.llmops.deploy.plugins.module_utils import sizing as sizing_utils
    config = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs", "llama-3.1-8b.json")
    with open(config) as handle:
        sized = sizing_utils.size_model(method="detailed", config=json.load(handle), context_length=8192)
    a100 = FILTERS["gpu_plan"](sized, gpu="A100 80GB")
    h100 = FILTERS["gpu_plan"](sized, gpu="H100")
    assert a100 == sizing_utils.plan_gpus(sized, 81920, gpu_name="A100 80GB")
    assert a100["method"] == "detailed" and a100["gpus"] == 1 and a100["max_concurrency"] > 1
    # The engine's profiling batch follows the GPU: an A100 80GB keeps the smaller one.
    assert (a100["engine_memory"]["max_num_batched_tokens"], h100["engine_memory"]["max_num_batched_tokens"]) == (
        2048, 8192)
    assert a100["start_refused"] is None
    cpu = sizing_utils.size_model(params="7B", precision="fp16", target="cpu")
    with pytest.raises(AnsibleFilterError, match="llmops.deploy.gpu_plan: target"):
        FILTERS["gpu_plan"](cpu, gpu="H100")


@pytest.mark.parametrize("call, words", [
    (lambda: FILTERS["model_sizing"]("7B", "fp5"), ["llmops.deploy.model_sizing", "precision", "'fp5'"]),
    (lambda: FILTERS["model_sizing"]("seven", "fp16"), ["params", "'seven'"]),
    (lambda: FILTERS["gpu_plan"]("7B", precision="fp16"), ["llmops.deploy.gpu_plan", "gpu"]),
    (lambda: FILTERS["fleet_report"]("host1", {}), ["list of host names"]),
    (lambda: FILTERS["model_candidates"](["Qwen/Qwen2.5-7B-Instruct"]),
     ["llmops.deploy.model_candidates", "candidates[0].precision", "does not say its precision"]),
    (lambda: FILTERS["model_candidates"](["o/M-7B-AWQ", {"model": "o/M-7B-AWQ"}]),
     ["candidates[1]", "each candidate once", "candidates[0]"]),
    (lambda: FILTERS["model_candidates"]([{"params": "7B", "precision": "fp16", "size": 1}]),
     ["candidates[0]", "unknown key(s): size"]),
    (lambda: FILTERS["select_model"](["o/M-7B-AWQ"]), ["llmops.deploy.select_model", "hardware="]),
    (lambda: FILTERS["select_model"](["o/M-7B-AWQ"], hardware={"gpu_model": "A100 80GB", "gpu_count": 1},
                                     scenario="tiny"), ["scenario: invalid value 'tiny'", "edge"]),
    (lambda: FILTERS["select_model"](["o/M-7B-AWQ"], hardware={"gpus": "many"}), ["hardware.gpus", "'many'"]),
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


def test_fleet_report_rows_totals_matrix_and_summary():
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
                                "unreachable": 2, "deployable": 1, "chosen": {"o/M-7B": 1}, "with_choice": 1,
                                "without_choice": 3}
    b_row = report["hosts"][1]
    assert b_row["gpu_summary"] == "2 x NVIDIA H100 80GB HBM3" and b_row["gpu_memory_total_gb"] == 171.042
    assert report["hosts"][2]["reasons"] == ["ssh timed out"]
    # The Markdown and HTML renderings are the preflight role's templates (tests/unit/plugins/plugin_utils/test_fleet_report.py).
    lines = FILTERS["fleet_report_summary"](report)
    assert lines[0].startswith("o/M-7B at FP16: 4 host(s) - fits 1, tight 0, insufficient 1")
    assert "a-host: INSUFFICIENT (GPUs: none, needs 2 GPU(s)) - r-insufficient" in lines
    # One model: one matrix column; chosen where it fits.
    assert [c["key"] for c in report["candidates"]] == ["o/M-7B"] and report["mode"] == "single"
    assert report["matrix"]["b-host"]["o/M-7B"]["status"] == "chosen" and b_row["chosen"] == "o/M-7B"
    assert report["matrix"]["c-host"]["o/M-7B"]["verdict"] == "unreachable"
    assert report["matrix"]["d-host"]["o/M-7B"]["reason"] == "host did not report (unreachable or skipped)"
    assert report["totals"]["chosen"] == {"o/M-7B": 1} and report["totals"]["with_choice"] == 1


def test_fleet_report_reads_a_failed_hosts_plan_from_the_fallback_variable():
    """A host whose check failed has no preflight_result fact; its registered result is its plan."""
    failed = dict(_result("insufficient", []), failed=True, msg="no GPU can hold it")
    hostvars = {
        "ok-host": {"preflight_result": _result("fits", [{"name": "H100", "memory_total_mib": 81559}] * 2),
                    "__check": {"ansible_facts": {}}, "group_names": []},
        "bad-host": {"__check": failed, "group_names": []},
        "gone-host": {"group_names": []},
    }
    report = FILTERS["fleet_report"](["ok-host", "bad-host", "gone-host"], hostvars, fallback_var="__check")
    rows = dict((row["host"], row) for row in report["hosts"])
    assert rows["ok-host"]["verdict"] == "fits" and rows["bad-host"]["verdict"] == "insufficient"
    assert rows["gone-host"]["verdict"] == "unreachable"
    without = FILTERS["fleet_report"](["ok-host", "bad-host"], hostvars)
    assert dict((row["host"], row["verdict"]) for row in without["hosts"])["bad-host"] == "unreachable"


def test_model_candidates_reads_names_and_takes_the_default_precision():
    found = FILTERS["model_candidates"](["Qwen/Qwen2.5-32B-Instruct", "Qwen/Qwen2.5-32B-Instruct-AWQ",
                                         {"model": "Qwen/Qwen2.5-32B-Instruct", "precision": "int8"},
                                         {"params": "1.5B", "precision": "fp16"}], "bf16")
    assert [(c["key"], c["params"], c["precision"], c["precision_source"]) for c in found] == [
        ("Qwen/Qwen2.5-32B-Instruct", 32 * 10 ** 9, "bf16", "default"),
        ("Qwen/Qwen2.5-32B-Instruct-AWQ", 32 * 10 ** 9, "int4", "name"),
        ("Qwen/Qwen2.5-32B-Instruct (INT8)", 32 * 10 ** 9, "int8", "given"),
        ("1.5B FP16", 1500000000, "fp16", "given"),
    ]
    assert FILTERS["model_candidates"]([]) == [] and FILTERS["model_candidates"](None) == []


def test_select_model_on_declared_hardware():
    chosen = FILTERS["select_model"](
        ["Qwen/Qwen2.5-32B-Instruct", "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8", "Qwen/Qwen2.5-7B-Instruct"],
        hardware={"gpu_model": "A100 40GB", "gpu_count": 2, "memory_total_mib": 524288, "cpu_cores": 32,
                  "disk_free_mib": 1800000}, scenario="enterprise", default_precision="bf16")
    assert chosen["chosen"] == "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8" and chosen["assessment"] is None
    assert chosen["rejected"][0]["key"] == "Qwen/Qwen2.5-32B-Instruct"


def test_select_model_on_a_registered_loop_and_on_one_result():
    def result(verdict, model, precision):
        return {"verdict": verdict, "gpus_needed": 1, "target": "gpu", "reasons": ["r"],
                "resources": {"gpu_memory": {"verdict": verdict, "reason": "g", "required": 24.0, "available": 25.7,
                                             "gpus_used": 1}},
                "hardware": {"gpus": [{"name": "NVIDIA GeForce RTX 4090", "vendor": "nvidia",
                                       "compute_capability": "8.9", "memory_total_mib": 24564}]},
                "sizing": {"model": model, "params": 7 * 10 ** 9, "precision": precision, "reserve": 0.2}}
    cands = FILTERS["model_candidates"](["o/M-7B-AWQ", "o/M-7B"], "bf16")
    loop = {"results": [dict(result("fits", "o/M-7B-AWQ", "int4"), item=cands[0]),
                        dict(result("fits", "o/M-7B", "bf16"), item=cands[1])]}
    chosen = FILTERS["select_model"](loop)
    # Consumer GPU: the low-precision variant (guide 6.2).
    assert chosen["chosen"] == "o/M-7B-AWQ" and chosen["assessment"] is loop["results"][0]
    assert chosen["preferred_over"] == [{"key": "o/M-7B", "criterion": "gpu_class_precision",
                                         "why": "consumer GPUs take low precision (guide 6.2): INT4 rather than BF16"}]
    one = FILTERS["select_model"](result("insufficient", "o/M-7B", "bf16"))
    assert one["chosen"] is None and one["verdict"] == "insufficient"
    lost = FILTERS["select_model"]({"unreachable": True, "msg": "ssh: no route"})
    assert (lost["chosen"], lost["verdict"], lost["assessment"]["reasons"]) == (None, "unreachable", ["ssh: no route"])


def test_model_sizing_filter_takes_a_default_precision_and_a_cpu_target():
    awq = FILTERS["model_sizing"]("Qwen/Qwen2.5-72B-Instruct-AWQ", default_precision="bf16")
    assert awq["precision"] == "int4" and awq["sizing_warnings"] == []
    cpu = FILTERS["model_sizing"]("Qwen/Qwen2.5-0.5B-Instruct", default_precision="bf16", target="cpu",
                                  cpu_kv_cache_space_gib=1)
    assert cpu["target"] == "cpu" and "gpu_memory_gb" not in cpu and cpu["cpu_plan"]["kv_cache_space_gib"] == 1
    with pytest.raises(AnsibleFilterError) as err:
        FILTERS["model_sizing"]("7B", "fp16", target="cpu", cpu_kv_cache_space_gib=0)
    assert "cpu_kv_cache_space_gib" in str(err.value)
