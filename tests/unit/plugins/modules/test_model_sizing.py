"""model_sizing module: options, results, errors that name the field."""
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
    assert (result["params"], result["precision"], result["gpu_memory_gb"]) == (32000000000, "fp8", 48)
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
