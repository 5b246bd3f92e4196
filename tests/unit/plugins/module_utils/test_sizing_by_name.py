"""Sizing by name as users type names: precision from the name, the metadata, a default, or FP16 stated."""
import json
import os

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import precision as precisions, sizing
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs")


def load(name):
    with open(os.path.join(CONFIGS, name + ".json")) as handle:
        return json.load(handle)


@pytest.mark.parametrize("model, params", [
    ("LLM-Research/Meta-Llama-3.1-8B-Instruct", 8000000000), ("Qwen/Qwen3-30B-A3B", 30000000000)])
def test_a_name_without_precision_sizes_at_fp16_and_says_so(model, params):
    sized = sizing.size_model(model=model)
    assert (sized["params"], sized["precision"], sized["precision_source"]) == (params, "fp16", "assumed")
    assert len(sized["assumptions"]) == 1 and "FP16" in sized["assumptions"][0] and model in sized["assumptions"][0]
    assert sized["assumptions"][0] in sized["sizing_warnings"]
    assert sized["param_memory_gb"] == params * 2 / 1e9


def test_hub_metadata_gives_the_checkpoints_dtype_not_an_assumption():
    model = "LLM-Research/Meta-Llama-3.1-8B-Instruct"
    seed = sizing.size_model(model=model, config=load("llama-3.1-8b"), method="seed")
    assert (seed["precision"], seed["precision_source"], seed["assumptions"]) == (
        "bf16", "read: config.json torch_dtype bfloat16", [])
    detailed = sizing.size_model(model=model, config=load("llama-3.1-8b"), method="auto")
    assert detailed["method"] == "detailed" and detailed["precision"] == "bf16" and detailed["assumptions"] == []
    headers = {"params_total": 8030261248, "data_bytes": 16060522496, "precision": "fp16",
               "params_by_dtype": {"F16": 8030261248}}
    assert sizing.size_model(model=model, weights=headers)["precision_source"] == "read: safetensors headers"


def test_a_config_without_any_dtype_takes_the_default_or_fp16_in_detailed():
    config = dict(load("qwen2.5-7b"))
    config.pop("torch_dtype")
    assumed = sizing.size_model(method="detailed", config=config)
    assert assumed["precision"] == "fp16" and assumed["assumptions"]
    default = sizing.size_model(method="detailed", config=config, default_precision="bfloat16")
    assert default["precision"] == "bf16" and default["assumptions"] == []


def test_default_precision_is_for_names_that_carry_none():
    awq = sizing.size_model(model="Qwen/Qwen2.5-72B-Instruct-AWQ", default_precision="bf16")
    assert awq["precision"] == "int4" and awq["sizing_warnings"] == []
    assert "default_precision BF16 not applied" in awq["precision_source"]
    # ~42 GB, not the 216 GB of GPU memory a BF16 override gave.
    assert 41 < awq["param_memory_gb"] < 42.5 and awq["gpu_memory_gb"] < 63
    plain = sizing.size_model(model="Qwen/Qwen2.5-72B-Instruct", default_precision="bf16")
    assert (plain["precision"], plain["param_memory_gb"], plain["assumptions"]) == ("bf16", 144, [])


def test_explicit_precision_against_the_name_warns_naming_both():
    sized = sizing.size_model(model="Qwen/Qwen2.5-72B-Instruct-AWQ", precision="int8")
    assert sized["precision"] == "int8" and sized["param_memory_gb"] == 72
    assert len(sized["sizing_warnings"]) == 1
    warning = sized["sizing_warnings"][0]
    assert "INT8" in warning and "INT4" in warning and "Qwen/Qwen2.5-72B-Instruct-AWQ" in warning
    assert sizing.size_model(model="Qwen/Qwen2.5-72B-Instruct-AWQ", precision="awq")["sizing_warnings"] == []


def test_a_bare_count_without_precision_is_still_an_error():
    with pytest.raises(SizingInputError) as err:
        sizing.size_model(params="7B")
    assert str(err.value).startswith("precision:") and "default_precision" in str(err.value)
    assert sizing.size_model(params="7B", default_precision="bf16")["gpu_memory_gb"] == 21


@pytest.mark.parametrize("spelling, canonical, fmt", [
    ("bnb-4bit", "int4", "bnb-4bit"), ("nf4", "int4", "bnb-4bit"), ("BNB_8bit", "int8", "bnb-8bit"),
    ("awq", "int4", "awq"), ("GPTQ-Int8", "int8", "gptq-int8"), ("gptq-int4", "int4", "gptq-int4"),
    ("mxfp4", "int4", "mxfp4"), ("fp16", "fp16", None), ("int4", "int4", None)])
def test_precision_aliases_names_carry(spelling, canonical, fmt):
    assert precisions.normalize_precision(spelling) == canonical
    assert precisions.weight_format(spelling) == fmt
    assert sizing.size_model(params="7B", precision=spelling)["precision"] == canonical


def test_default_precision_is_validated_by_name():
    with pytest.raises(SizingInputError) as err:
        sizing.size_model(model="Qwen/Qwen2.5-7B-Instruct", default_precision="fp12")
    assert str(err.value).startswith("default_precision: invalid value 'fp12'")


@pytest.mark.parametrize("method, extra", [("seed", {"params": "7B", "precision": "fp16"}),
                                           ("detailed", {"config": load("qwen2.5-7b")}),
                                           ("auto", {"params": "7B", "precision": "fp16"})])
@pytest.mark.parametrize("value", [1.5, 0, -0.1, float("nan"), True])
def test_gpu_memory_utilization_outside_0_1_is_an_error_with_every_method(method, extra, value):
    with pytest.raises(SizingInputError) as err:
        sizing.size_model(method=method, gpu_memory_utilization=value, **extra)
    assert str(err.value).startswith("gpu_memory_utilization:") and "at most 1" in str(err.value)


def test_gpu_memory_utilization_of_one_is_accepted():
    assert sizing.size_model(params="7B", precision="fp16", gpu_memory_utilization=1.0)["gpu_memory_gb"] == 21


def test_qwen2_and_gemma3_names_use_their_lines_published_shapes():
    qwen2 = sizing.size_model(model="Qwen/Qwen2-7B-Instruct-GPTQ-Int8")
    assert "published shapes of Qwen2-7B" in qwen2["basis"]["param_memory"]
    # Issue 8: 0.81 of the 8.87 GB download when Qwen2 had no shapes (every parameter at 8 bits, 7.0e9 of them).
    assert 8.8e9 < qwen2["requirements_bytes"]["disk"] < 8.9e9
    gemma = sizing.size_model(model="unsloth/gemma-3-27b-it-bnb-4bit")
    assert "published shapes of Gemma-3-27B (text part and vision tower)" in gemma["basis"]["param_memory"]
    # A 16-bit name stays the guide's table 2.2 on the name's size, with the FP16 assumption stated.
    bf16 = sizing.size_model(model="google/gemma-3-27b-it")
    assert bf16["param_memory_gb"] == 54.0 and bf16["precision_source"] == "assumed"
