"""model_sizing module: options, results, errors that name the field."""
import json
import os
import struct

import pytest

from ansible_collections.llmops.deploy.plugins.modules import model_sizing

from .module_runner import run_module


def test_params_and_precision(monkeypatch):
    failed, result = run_module(monkeypatch, model_sizing, {"params": "32B", "precision": "int8"})
    assert not failed and result["changed"] is False
    assert (result["param_memory_gb"], result["gpu_memory_gb"], result["cpu_memory_gb"], result["cpu_cores"]) == (
        32, 48, 64, 32)
    assert result["precision"] == "int8" and result["method"] == "seed" and result["gpu_plan"] is None


def test_numbers_as_ansible_passes_them(monkeypatch):
    # ad hoc `params=7000000000` arrives as a string; YAML `params: 1.5e9` as a float
    for value in ("7000000000", 7000000000, 7e9):
        _failed, result = run_module(monkeypatch, model_sizing, {"params": value, "precision": "FP16"})
        assert result["params"] == 7000000000 and result["gpu_memory_gb"] == 21


def test_model_id_gives_size_and_precision(monkeypatch):
    failed, result = run_module(monkeypatch, model_sizing, {"model": "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8"})
    assert not failed
    # FP8 checkpoints keep embeddings and lm_head at 16 bits: Qwen2.5-32B's shapes give 34.322 GB of weights
    # (the guide's 1 byte x 32B would be 32), x 1.5 = 51.483 GB of GPU memory.
    assert (result["params"], result["precision"], result["param_memory_gb"], result["gpu_memory_gb"]) == (
        32000000000, "fp8", 34.322, 51.483)
    assert result["weight_format"] == "FP8" and result["precision_source"] == "model name"
    assert result["model_info"]["distilled"] is True


def test_explicit_precision_wins_over_the_name(monkeypatch):
    _failed, result = run_module(monkeypatch, model_sizing, {"model": "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8",
                                                             "precision": "int4"})
    assert result["precision"] == "int4" and result["param_memory_gb"] == 16


def test_gpu_plan_on_a_known_gpu(monkeypatch):
    _failed, result = run_module(monkeypatch, model_sizing, {"params": "70B", "precision": "fp16", "gpu": "A100 80GB"})
    plan = result["gpu_plan"]
    assert (plan["gpus"], plan["nodes"], plan["tensor_parallel_size"]) == (4, 1, 4)


def test_gpu_plan_on_memory_mib(monkeypatch):
    _failed, result = run_module(monkeypatch, model_sizing, {"params": "7B", "precision": "fp16",
                                                             "gpu_memory_mib": 24564})
    assert result["gpu_plan"]["gpus"] == 1 and result["gpu_plan"]["per_gpu_memory_gb"] == 25.757


def test_check_mode_gives_the_same_result(monkeypatch):
    _f, normal = run_module(monkeypatch, model_sizing, {"params": "8B", "precision": "fp32"})
    _f, checked = run_module(monkeypatch, model_sizing, {"params": "8B", "precision": "fp32"}, check_mode=True)
    for key in ("gpu_memory_gb", "cpu_memory_gb", "cpu_cores", "cpu_cores_max"):
        assert normal[key] == checked[key]


@pytest.mark.parametrize("args, field, words", [
    ({"params": "32B", "precision": "fp12"}, "precision", ["'fp12'", "int4", "bf16", "float16"]),
    ({"params": "32X", "precision": "fp16"}, "params", ["'32X'", "32B"]),
    ({"params": "-7B", "precision": "fp16"}, "params", ["greater than zero"]),
    ({"params": 0, "precision": "fp16"}, "params", ["greater than zero"]),
    ({"params": "7B", "precision": "fp16", "reserve": 0.7}, "reserve", ["0.7", "0 to 0.5"]),
    ({"params": "7B", "precision": "fp16", "gpus_per_node": 0}, "gpus_per_node", ["positive integer"]),
    ({"params": "7B", "precision": "fp16", "gpu": "Voodoo 5"}, "gpu", ["Voodoo 5", "A100"]),
    ({"model": "deepseek-ai/DeepSeek-OCR"}, "params", ["deepseek-ai/DeepSeek-OCR"]),
    ({"params": "7B"}, "precision", ["fp16"]),
])
def test_bad_input_names_field_value_and_accepted(monkeypatch, args, field, words):
    failed, result = run_module(monkeypatch, model_sizing, args)
    assert failed
    assert result["msg"].startswith(field + ":"), result["msg"]
    for word in words:
        assert word in result["msg"]
    assert "Traceback" not in result["msg"]


def test_gpu_and_gpu_memory_are_exclusive(monkeypatch):
    failed, result = run_module(monkeypatch, model_sizing, {"params": "7B", "precision": "fp16", "gpu": "H100",
                                                            "gpu_memory_mib": 1000})
    assert failed and "mutually exclusive" in result["msg"]


CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs")


def _config(name):
    with open(os.path.join(CONFIGS, name + ".json")) as handle:
        return json.load(handle)


def test_detailed_from_a_config_dict_with_a_gpu(monkeypatch):
    failed, result = run_module(monkeypatch, model_sizing, {
        "method": "detailed", "config": _config("qwen2.5-7b"), "context_length": 32768, "concurrency": 4,
        "gpu": "L40S"})
    assert not failed, result.get("msg")
    assert result["method"] == "detailed" and result["params"] == 7615616512
    assert result["kv_cache_per_token_bytes"] == 2 * 28 * 4 * 128 * 2
    assert result["breakdown"]["kv_cache"]["bytes"] == 57344 * 32768 * 4
    assert result["seed"]["gpu_memory_gb"] == round(7615616512 * 2 * 1.5 / 1e9, 3)
    plan = result["gpu_plan"]
    assert plan["valid_tensor_parallel_sizes"] == [1, 2, 4]
    # 15.2 GB weights + 7.5 GB KV + 6.0 GB activations + 0.16 GB, x 1.2, within 46068 MiB x 0.9 = 43.5 GB.
    assert plan["gpus"] == 1 and plan["tensor_parallel_size"] == 1
    assert plan["max_concurrency"] >= 4 and 32768 < plan["max_context_length"] < 131072


def test_config_path_directory_reads_headers(monkeypatch, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(_config("qwen2.5-0.5b")))
    header = json.dumps({"w": {"dtype": "BF16", "shape": [494032768], "data_offsets": [0, 988065536]}}).encode()
    # A sparse file: the header is all that is read.
    with open(str(tmp_path / "model.safetensors"), "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + 988065536)
    failed, result = run_module(monkeypatch, model_sizing, {"method": "auto", "config_path": str(tmp_path)})
    assert not failed, result.get("msg")
    assert result["method"] == "detailed" and result["method_requested"] == "auto"
    assert result["breakdown"]["weights"]["bytes"] == 988065536
    assert result["breakdown"]["weights"]["source"].startswith("read: safetensors headers")


def test_auto_without_config_is_seed(monkeypatch):
    _failed, result = run_module(monkeypatch, model_sizing, {"params": "7B", "precision": "fp16", "method": "auto"})
    assert result["method"] == "seed" and "breakdown" not in result


@pytest.mark.parametrize("args, field", [
    ({"method": "detailed", "params": "7B", "precision": "fp16"}, "config"),
    ({"method": "detailed", "config": {"hidden_size": 4096}}, "config.num_hidden_layers"),
    ({"method": "detailed", "config": {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 0,
                                       "vocab_size": 10, "intermediate_size": 8}}, "config.num_attention_heads"),
    ({"method": "detailed", "config_path": "/nonexistent/config.json"}, "config_path"),
    ({"method": "detailed", "config": "LLAMA_CONFIG", "context_length": 10 ** 6}, "context_length"),
    ({"method": "detailed", "config": "LLAMA_CONFIG", "gpu_memory_utilization": 1.2}, "gpu_memory_utilization"),
])
def test_detailed_bad_input_names_the_field(monkeypatch, args, field):
    if args.get("config") == "LLAMA_CONFIG":
        args = dict(args, config=_config("llama-3.1-8b"))
    failed, result = run_module(monkeypatch, model_sizing, args)
    assert failed and result["field"] == field, result["msg"]
    assert result["msg"].startswith(field + ":") and "Traceback" not in result["msg"]


def test_config_and_config_path_are_exclusive(monkeypatch):
    failed, result = run_module(monkeypatch, model_sizing, {"config": {}, "config_path": "/x"})
    assert failed and "mutually exclusive" in result["msg"]


def test_disagreements_are_warnings(monkeypatch):
    failed, result = run_module(monkeypatch, model_sizing, {"method": "detailed", "config": _config("llama-3.1-8b"),
                                                            "params": "70B"})
    assert not failed and result["params"] == 8030261248
    assert any("70B" in w for w in result["_warnings"]) and result["sizing_warnings"]


def test_name_without_precision_warns_about_the_fp16_assumption(monkeypatch):
    failed, result = run_module(monkeypatch, model_sizing, {"model": "LLM-Research/Meta-Llama-3.1-8B-Instruct"})
    assert not failed and result["precision"] == "fp16" and result["precision_source"] == "assumed"
    assert result["assumptions"] and result["_warnings"] == result["assumptions"]


def test_default_precision_option_does_not_override_the_name(monkeypatch):
    _f, awq = run_module(monkeypatch, model_sizing, {"model": "Qwen/Qwen2.5-72B-Instruct-AWQ",
                                                     "default_precision": "bf16"})
    assert awq["precision"] == "int4" and 41 < awq["param_memory_gb"] < 42.5 and awq["_warnings"] == []
    _f, plain = run_module(monkeypatch, model_sizing, {"model": "LLM-Research/Meta-Llama-3.1-8B-Instruct",
                                                       "default_precision": "bf16"})
    assert plain["precision"] == "bf16" and plain["_warnings"] == []
    _f, contra = run_module(monkeypatch, model_sizing, {"model": "Qwen/Qwen2.5-72B-Instruct-AWQ", "precision": "fp8"})
    assert len(contra["_warnings"]) == 1 and "FP8" in contra["_warnings"][0] and "INT4" in contra["_warnings"][0]


def test_cpu_target_returns_the_host_plan_and_no_gpu_figure(monkeypatch):
    failed, result = run_module(monkeypatch, model_sizing, {"model": "Qwen/Qwen2.5-0.5B-Instruct",
                                                            "default_precision": "bf16", "target": "cpu",
                                                            "cpu_kv_cache_space_gib": 2})
    assert not failed, result.get("msg")
    assert result["target"] == "cpu" and "gpu_plan" not in result and "gpu_memory_gb" not in result
    plan = result["cpu_plan"]
    assert plan["kv_cache_space_gib"] == 2 and plan["engine_env"]["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert plan["kv_cache_tokens"] == 2 * 2 ** 30 // (2 * 24 * 2 * 64 * 2)


@pytest.mark.parametrize("args, field", [
    ({"params": "7B", "precision": "fp16", "target": "cpu", "gpu": "H100"}, "target"),
    ({"params": "7B", "precision": "fp16", "target": "cpu", "cpu_kv_cache_space_gib": 0}, "cpu_kv_cache_space_gib"),
    ({"params": "7B", "precision": "fp16", "gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
    ({"model": "Qwen/Qwen2.5-7B-Instruct", "default_precision": "fp12"}, "default_precision"),
])
def test_new_options_are_validated(monkeypatch, args, field):
    failed, result = run_module(monkeypatch, model_sizing, args)
    assert failed and result["msg"].startswith(field + ":"), result["msg"]


# -- The engine options of the shared spec (issue 8): through the module to the plan -------------------------------

GIB = 2 ** 30


def _detailed_llama(**args):
    return dict({"method": "detailed", "config": _config("llama-3.1-8b"), "context_length": 8192}, **args)


def test_engine_options_reach_the_plan(monkeypatch):
    failed, a100 = run_module(monkeypatch, model_sizing, _detailed_llama(gpu="A100 80GB"))
    assert not failed, a100.get("msg")
    # vllm serve on an A100 80GB profiles 2048 tokens (vLLM's name check), an H100 8192.
    assert a100["gpu_plan"]["engine_memory"]["max_num_batched_tokens"] == 2048
    _f, h100 = run_module(monkeypatch, model_sizing, _detailed_llama(gpu="H100"))
    assert h100["gpu_plan"]["engine_memory"]["max_num_batched_tokens"] == 8192
    _f, asked = run_module(monkeypatch, model_sizing, _detailed_llama(
        gpu="A100 80GB", max_num_batched_tokens=4096, max_num_seqs=32, engine_entry_point="llm_class"))
    eng = asked["gpu_plan"]["engine_memory"]
    assert (eng["max_num_batched_tokens"], eng["max_num_seqs"], eng["engine_version"]) == (4096, 32, "0.32.0")
    assert asked["engine_memory"]["entry_point"] == "llm_class"
    assert set(asked["plan_inputs"]) >= {"activation", "overhead", "engine"}
    assert asked["plan_inputs"]["engine"]["max_num_batched_tokens"] == 4096


def test_a_start_the_engine_would_refuse_is_in_the_plan_and_a_warning(monkeypatch):
    failed, result = run_module(monkeypatch, model_sizing, _detailed_llama(gpu="RTX 3090",
                                                                           gpu_memory_utilization=0.99))
    assert not failed, result.get("msg")
    plan = result["gpu_plan"]
    assert plan["gpus"] is None and plan["start_refused"].startswith("gpu_memory_utilization 0.99")
    assert plan["description"].startswith("vLLM would refuse to start on RTX 3090")
    assert result["_warnings"] == [plan["description"]]


def test_calibration_for_another_gpu_is_a_warning(monkeypatch):
    constants = {"engine": "vllm", "engine_version": "0.32.0", "gpu_class": "nvidia-a100-sxm4-80gb/81920MiB",
                 "memory_total_mib": 81920, "host": "a100-node-01", "date": "2026-11-30", "model": "m",
                 "non_torch_bytes": GIB // 2, "activation_ratio": 1.5}
    _f, used = run_module(monkeypatch, model_sizing, _detailed_llama(gpu="A100 80GB", calibration=constants))
    assert used["_warnings"] == []
    assert used["gpu_plan"]["engine_memory"]["calibration_note"].startswith("measured on a100-node-01, 2026-11-30")
    _f, other = run_module(monkeypatch, model_sizing, _detailed_llama(gpu="H100", calibration=constants))
    assert len(other["_warnings"]) == 1 and other["_warnings"][0].startswith("calibration ignored")
    _f, stale = run_module(monkeypatch, model_sizing, _detailed_llama(
        gpu="A100 80GB", calibration=dict(constants, engine_version="0.31.0")))
    assert len(stale["_warnings"]) == 1 and "0.31.0" in stale["_warnings"][0]


@pytest.mark.parametrize("args, words", [
    ({"engine_entry_point": "grpc"}, ["engine_entry_point", "openai_api_server", "llm_class"]),
    ({"max_num_batched_tokens": 0}, ["max_num_batched_tokens:", "positive integer"]),
    ({"engine_version": "latest"}, ["engine_version:", "'latest'", "0.32.0"]),
    ({"calibration": "a100"}, ["calibration"]),
])
def test_engine_options_are_checked(monkeypatch, args, words):
    failed, result = run_module(monkeypatch, model_sizing, _detailed_llama(**args))
    assert failed
    for word in words:
        assert word in result["msg"], result["msg"]


def test_every_key_a_detailed_gpu_plan_returns_is_documented(monkeypatch):
    import yaml
    documented = yaml.safe_load(model_sizing.RETURN)
    _f, result = run_module(monkeypatch, model_sizing, _detailed_llama(gpu="H100"))
    for key in set(result) - {"changed", "_warnings"}:
        assert key in documented, key
    for key in ("engine_memory", "start_refused", "description", "max_context_length"):
        assert key in documented["gpu_plan"]["contains"], key
    for key in ("overhead", "engine"):
        assert key in " ".join(documented["plan_inputs"]["description"])
