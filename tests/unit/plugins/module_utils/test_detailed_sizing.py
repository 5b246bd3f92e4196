"""The detailed method: weights (headers or config x format), KV cache, per-GPU plans, and the seed beside it."""
import json
import os
from fractions import Fraction

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import capacity, detailed_sizing, sizing
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs")
GIB = 2 ** 30
# What torch reports for an H100 80GB HBM3 (llm-d's measurements: 79.18 GiB); nvidia-smi shows 81559 MiB.
H100_TORCH_MIB = 81080


def load(name):
    with open(os.path.join(CONFIGS, name + ".json")) as handle:
        return json.load(handle)


def detailed(name, **kwargs):
    return sizing.size_model(method="detailed", config=load(name), **kwargs)


def engine_detailed(name, **spec):
    """The detailed method with engine options (size_model does not forward them yet: requirements directly)."""
    return detailed_sizing.requirements(dict(spec, config=load(name)))


def test_llama_8b_matches_vllm_kv_budget_on_h100():
    """llm-d measured vLLM (0.10-0.20 rules) on one H100 at max_model_len 16000: 14.99 GiB weights, 51.38 GiB KV."""
    sized = engine_detailed("llama-3.1-8b", context_length=16000, engine_version="0.11.0")
    assert sized["breakdown"]["weights"]["bytes"] == 8030261248 * 2
    assert sized["kv_cache_per_token_bytes"] == 2 * 32 * 8 * 128 * 2
    assert sized["breakdown"]["kv_cache"]["bytes"] == 131072 * 16000
    inputs = sized["plan_inputs"]
    parts = detailed_sizing.per_gpu_requirement(inputs, 1, 1, gpu_mib=81559, gpu_name="NVIDIA H100 80GB HBM3")
    budget = detailed_sizing.engine_parts(inputs, 1, 1, 81559)["budget"]
    assert abs(budget / GIB - 71.26) < 0.01  # vLLM's "Desired GPU utilization: 0.9 (71.26 GiB)"
    kv_room = budget - (parts["total"] - parts["kv_cache"])
    assert abs(kv_room / GIB - 51.38) < 0.1
    assert detailed_sizing.max_concurrency(inputs, 1, 1, budget, gpu_mib=81559) == kv_room // (131072 * 16000)


def test_activation_follows_the_profiling_batch_of_the_gpu_planned_on():
    """The fixed 4.8-5.6 GiB allowance is gone: an RTX 3090 profiles 2048 tokens, an H100 8192 (vllm serve)."""
    inputs = detailed("llama-3.1-8b", context_length=20000)["plan_inputs"]
    small = detailed_sizing.engine_parts(inputs, 1, 1, 24576, "NVIDIA GeForce RTX 3090")
    large = detailed_sizing.engine_parts(inputs, 1, 1, 81559, "NVIDIA H100 80GB HBM3")
    assert (small["room"]["max_num_batched_tokens"], large["room"]["max_num_batched_tokens"]) == (2048, 8192)
    assert small["activations"] < large["activations"] < 2 * GIB
    # An A100 80GB keeps the smaller batch (vLLM's name check), whatever its memory.
    a100 = detailed_sizing.engine_parts(inputs, 1, 1, 81920, "NVIDIA A100-SXM4-80GB")
    assert a100["room"]["max_num_batched_tokens"] == 2048
    # Asked for: the option wins.
    asked = engine_detailed("llama-3.1-8b", context_length=20000, max_num_batched_tokens=16384)["plan_inputs"]
    assert detailed_sizing.engine_parts(asked, 1, 1, 24576)["room"]["max_num_batched_tokens"] == 16384


def test_llama_8b_at_20k_on_one_rtx_3090_fits():
    """Issue 8: vLLM ran Llama-3.1-8B at 20k context on one RTX 3090 at 0.9; the planner must not ask for two."""
    sized = detailed("llama-3.1-8b", context_length=20000)
    plan = sizing.plan_gpus(sized, 24576, reserve=0.0, gpu_name="NVIDIA GeForce RTX 3090", available_gpus=1)
    assert (plan["gpus"], plan["gpus_minimum"], plan["tensor_parallel_size"]) == (1, 1, 1)
    assert plan["max_context_length"] > 20000
    assert plan["engine_memory"]["max_num_batched_tokens"] == 2048
    hardware = {"gpus": [{"index": 0, "vendor": "nvidia", "name": "NVIDIA GeForce RTX 3090", "memory_total_mib": 24576,
                          "compute_capability": "8.6"}]}
    gpu = capacity.assess(sized, hardware, reserve=0.0)["resources"]["gpu_memory"]
    assert gpu["verdict"] == "fits", gpu["reason"]
    # With the default 20 % reserve on every part (weights included) one card runs it without the reserve: tight,
    # never insufficient.
    gpu = capacity.assess(sized, hardware)["resources"]["gpu_memory"]
    assert gpu["verdict"] == "tight", gpu["reason"]


def test_result_keeps_seed_keys_and_shows_seed_beside():
    sized = detailed("llama-3.1-8b")
    seed = sizing.size_model(params=8030261248, precision="bf16")
    for key in ("param_memory_gb", "gpu_memory_gb", "cpu_memory_gb", "disk_gb", "cpu_cores", "cpu_cores_label",
                "requirements_bytes", "gpu_memory_with_reserve_gb", "basis", "params_label"):
        assert key in sized
    assert sized["seed"]["gpu_memory_gb"] == seed["gpu_memory_gb"]
    assert sized["cpu_cores"] == seed["cpu_cores"]  # CPU cores: the guide's tables for both methods
    assert sized["method"] == "detailed" and sized["context_length"] == 8192
    assert sized["context_length_source"].startswith("default")
    total = sum(part["bytes"] for part in sized["breakdown"].values())
    assert total == sized["requirements_bytes"]["gpu_memory"]
    assert sized["gpu_memory_ratio_to_seed"] == round(float(Fraction(total, seed["requirements_bytes"]["gpu_memory"])),
                                                      3)


def test_every_figure_says_read_or_estimated():
    sized = detailed("qwen2.5-7b")
    for name, part in sized["breakdown"].items():
        assert part["source"].split(":")[0] in ("read", "estimated"), name
    assert sized["breakdown"]["kv_cache"]["source"].startswith("read: config.json")
    assert sized["breakdown"]["activations"]["source"].startswith("estimated")


def test_auto_uses_detailed_only_with_a_config():
    assert sizing.size_model(params="7B", precision="fp16", method="auto")["method"] == "seed"
    sized = sizing.size_model(method="auto", config=load("qwen2.5-7b"))
    assert sized["method"] == "detailed" and sized["method_requested"] == "auto"


def test_detailed_without_config_is_refused():
    with pytest.raises(SizingInputError) as err:
        sizing.size_model(params="7B", precision="fp16", method="detailed")
    assert err.value.field == "config"


def test_mixtral_all_experts_resident():
    sized = detailed("mixtral-8x7b-v0.1")
    assert sized["params"] == sized["architecture"]["params_total"] > 46e9
    assert sized["breakdown"]["weights"]["bytes"] == sized["params"] * 2


def test_awq_effective_bits():
    sized = detailed("qwen2.5-7b-instruct-awq")
    assert sized["precision"] == "int4" and sized["weight_format"] == "AWQ int4 g128"
    p = sized["architecture"]["params_total"]
    unquantized = 2 * 152064 * 3584 + 28 * 2 * 3584 + 3584  # embeddings, lm_head, norms at 16 bits
    linear_bits = Fraction(4) + Fraction(16 + 4, 128)  # 4-bit weights, fp16 scale and 4-bit zero per 128
    expected = (unquantized * 16 + (p - unquantized) * linear_bits) / 8
    assert abs(sized["param_memory_gb"] - float(expected) / 1e9) < 0.01
    # Embeddings and lm_head (1.09B of 7.62B parameters) stay 16-bit: 5.86 bits overall, as the 5.58 GB of
    # Qwen2.5-7B-Instruct-AWQ's files (x 8 / 7.62e9 = 5.86).
    assert 5.8 < sized["effective_bits_per_param"] < 5.9
    # The group size rules out TPs whose MLP shard is not a multiple of 128: 18944 / 8 = 2368 = 18.5 x 128.
    valid, excluded = detailed_sizing.tp_sizes(sized["plan_inputs"], 8)
    assert 8 not in valid and any(e["tensor_parallel_size"] == 8 for e in excluded)


def test_gguf_type_from_the_model_name():
    sized = sizing.size_model(model="bartowski/Qwen2.5-7B-Instruct-Q4_K_M-GGUF", method="detailed",
                              config=load("qwen2.5-7b"))
    assert sized["weight_format"] == "GGUF Q4_K_M" and sized["effective_bits_per_param"] == 4.9


def test_fp8_keeps_embeddings_at_16_bits():
    sized = detailed("llama-3.3-70b-instruct-fp8-dynamic")
    # Safetensors of RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic: 68,451,041,280 F8 + 2,109,382,656 BF16 parameters
    # (the BF16 count includes 6.7M per-channel scales we do not count): 67.72 GiB in vLLM's log.
    assert abs(sized["breakdown"]["weights"]["gib"] - 67.72) < 0.05
    assert sized["precision"] == "fp8" and sized["weight_format"] == "FP8"


def test_exact_bytes_from_headers():
    summary = {"params_total": 8030261248, "params_by_dtype": {"BF16": 8030261248}, "data_bytes": 16060522496,
               "precision": "bf16", "packed": False}
    sized = detailed("llama-3.1-8b", weights=summary)
    assert sized["breakdown"]["weights"]["bytes"] == 16060522496
    assert sized["breakdown"]["weights"]["source"].startswith("read: safetensors headers")
    fp32 = dict(summary, data_bytes=32121044992, precision="fp32", params_by_dtype={"F32": 8030261248})
    halved = sizing.size_model(method="detailed", config=dict(load("llama-3.1-8b"), torch_dtype="float32"),
                               weights=fp32)
    assert halved["precision"] == "bf16" and halved["breakdown"]["weights"]["bytes"] == 16060522496
    assert halved["disk_gb"] == 32.121  # on disk the checkpoint is still fp32
    quantized = detailed("llama-3.1-8b", weights=summary, precision="fp8")
    assert quantized["breakdown"]["weights"]["source"].startswith("estimated")


@pytest.mark.parametrize("weights, field", [("big", "weights"), ({"params_total": 1}, "weights.data_bytes"),
                                            ({"params_total": 0, "data_bytes": 2}, "weights.params_total")])
def test_bad_weights_summary(weights, field):
    with pytest.raises(SizingInputError) as err:
        detailed("llama-3.1-8b", weights=weights)
    assert err.value.field == field


def test_kv_cache_dtype_and_concurrency():
    bf16 = detailed("llama-3.1-8b", context_length=4096, concurrency=4)
    fp8 = detailed("llama-3.1-8b", context_length=4096, concurrency=4, kv_cache_dtype="fp8")
    assert bf16["breakdown"]["kv_cache"]["bytes"] == 131072 * 4096 * 4
    assert fp8["breakdown"]["kv_cache"]["bytes"] == 65536 * 4096 * 4


def test_deepseek_v3_mla_kv_is_not_split_by_tp():
    sized = detailed("deepseek-v3", context_length=32768)
    assert sized["kv_cache_per_token_bytes"] == 61 * (512 + 64) * 2
    inputs = sized["plan_inputs"]
    one = detailed_sizing.per_gpu_requirement(inputs, 1, 1)
    eight = detailed_sizing.per_gpu_requirement(inputs, 8, 1)
    assert one["kv_cache"] == eight["kv_cache"] == 70272 * 32768
    assert eight["weights"] < one["weights"] / 7  # weights are split (MLA down-projections replicated)


def test_kv_heads_replicated_when_tp_exceeds_them():
    sized = detailed("qwen3-235b-a22b-fp8", context_length=4096)
    inputs = sized["plan_inputs"]
    per_head_token = 94 * 2 * 128 * 2
    assert detailed_sizing.per_gpu_requirement(inputs, 4, 1)["kv_cache"] == per_head_token * 4096
    # TP 8 > 4 KV heads: each GPU still holds one whole head.
    assert detailed_sizing.per_gpu_requirement(inputs, 8, 1)["kv_cache"] == per_head_token * 4096
    # 236 GB of FP8 weights on 80 GiB GPUs: TP 4 holds it, with the reserve, under vLLM 0.32's small profiling peak.
    plan = sizing.plan_gpus(sized, 81920, gpus_per_node=8)
    assert (plan["gpus_minimum"], plan["gpus"]) == (4, 4)
    assert plan["kv_heads_per_gpu"] == 1 and plan["kv_heads_replicated"] is False
    eight = detailed_sizing.per_gpu_requirement(inputs, 8, 1, gpu_mib=81920)
    assert eight["kv_cache"] == per_head_token * 4096 and eight["weights"] < 30 * GIB


def test_tp_that_cannot_divide_heads_is_excluded_with_reason():
    sized = detailed("qwen2.5-7b")
    valid, excluded = detailed_sizing.tp_sizes(sized["plan_inputs"], 8)
    assert valid == [1, 2, 4]
    assert excluded == [{"tensor_parallel_size": 8, "reason": "28 attention heads do not divide by 8"}]
    # 7.6B at bf16 on 12 GiB cards: TP 4 is the largest; more needs pipeline stages.
    plan = sizing.plan_gpus(sized, 12288, gpu_name="RTX 3060")
    assert plan["tensor_parallel_size"] in (1, 2, 4)
    assert plan["gpus"] == plan["tensor_parallel_size"] * plan["pipeline_parallel_size"]


def test_per_gpu_not_only_total():
    """The seed method divides a total; per GPU, each rank also carries its own activations and overhead."""
    sized = detailed("llama-3.1-8b")
    inputs = sized["plan_inputs"]
    one = detailed_sizing.per_gpu_requirement(inputs, 1, 1)
    two = detailed_sizing.per_gpu_requirement(inputs, 2, 1)
    assert two["activations"] == one["activations"]
    assert two["overhead"] > one["overhead"]  # NCCL buffers
    assert 2 * two["total"] > one["total"]
    # 8B on 16 GiB GPUs: the weights alone (16.06 GB) exceed 16380 MiB x 0.9, so TP 2 is the least.
    plan = sizing.plan_gpus(sized, 16380, reserve=0.0, gpu_name="RTX 4060 Ti")
    assert plan["gpus_minimum"] == 2 and plan["tensor_parallel_size"] == 2


def test_max_context_and_concurrency():
    sized = detailed("llama-3.1-8b", context_length=8192, concurrency=4)
    inputs = sized["plan_inputs"]
    budget = detailed_sizing.engine_parts(inputs, 1, 1, 24564)["budget"]
    assert budget == int(-(-23.99 * GIB * 0.9 // 1)) or abs(budget / GIB - 23.99 * 0.9) < 0.001
    for tp in (1, 2):
        fixed = detailed_sizing.per_gpu_requirement(inputs, tp, 1, 1, 4, gpu_mib=24564)
        room = budget - (fixed["total"] - fixed["kv_cache"])
        per_token = 131072 // tp  # 8 KV heads split over the TP ranks
        assert detailed_sizing.max_context_length(inputs, tp, 1, budget, gpu_mib=24564) == room // (per_token * 4)
        assert detailed_sizing.max_concurrency(inputs, tp, 1, budget, gpu_mib=24564) == room // (per_token * 8192)
    # 4 x 8192 tokens (4 GiB of KV) fit next to 15 GiB of weights on one RTX 4090 under vLLM 0.32's profiling peak.
    plan = sizing.plan_gpus(sized, 24564, reserve=0.0, gpu_name="RTX 4090")
    assert plan["tensor_parallel_size"] == 1
    assert plan["max_context_length"] == detailed_sizing.max_context_length(inputs, 1, 1, budget, gpu_mib=24564) > 8192
    assert plan["max_concurrency"] == detailed_sizing.max_concurrency(inputs, 1, 1, budget, gpu_mib=24564) >= 4
    # Mistral's sliding window: KV stops growing at 4096 tokens, so the whole 32k context fits.
    mistral = sizing.plan_gpus(detailed("mistral-7b-v0.1"), 81559, gpu_name="H100")
    assert mistral["max_context_length"] == 32768


def test_pipeline_stages_across_nodes_and_no_fit():
    sized = detailed("deepseek-v3")
    plan = sizing.plan_gpus(sized, 81559, gpus_per_node=4, gpu_name="H100")
    assert (plan["gpus"], plan["tensor_parallel_size"], plan["pipeline_parallel_size"], plan["nodes"]) == (16, 4, 4, 4)
    assert "across 4 nodes" in plan["description"]
    nowhere = sizing.plan_gpus(sized, 12288, gpus_per_node=1, gpu_name="RTX 3060")
    assert nowhere["gpus"] is None and "does not fit" in nowhere["description"]


@pytest.mark.parametrize("kwargs, field", [
    ({"context_length": 200000}, "context_length"),
    ({"context_length": 0}, "context_length"),
    ({"concurrency": 0}, "concurrency"),
    ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
    ({"gpu_memory_utilization": 0}, "gpu_memory_utilization"),
    ({"kv_cache_dtype": "int3"}, "kv_cache_dtype"),
    ({"precision": "fp12"}, "precision"),
    ({"method": "magic"}, "method"),
])
def test_bad_options(kwargs, field):
    with pytest.raises(SizingInputError) as err:
        sizing.size_model(**dict({"method": "detailed", "config": load("llama-3.1-8b")}, **kwargs))
    assert err.value.field == field


def test_explicit_params_disagreeing_with_config_warn():
    sized = detailed("llama-3.1-8b", params="70B")
    assert sized["params"] == 8030261248 and "70B" in sized["sizing_warnings"][0]
    sized = detailed("qwen2.5-7b-instruct-awq", precision="bf16")
    assert "awq" in sized["sizing_warnings"][0] and sized["weight_format"] == "BF16"


def _host(count, gpu="H100"):
    return {"gpu_model": gpu, "gpu_count": count, "memory_total_mib": 1048576, "cpu_cores": 128,
            "disk_free_mib": 4000000}


def test_assess_detailed_verdicts():
    sized = detailed("qwen2.5-7b", context_length=32768, concurrency=8)
    fits = capacity.assess(sized, _host(1))
    assert fits["verdict"] == "fits" and fits["gpus_needed"] == 1
    assert "per GPU" in fits["resources"]["gpu_memory"]["reason"]
    assert fits["gpu_plan"]["max_concurrency"] >= 8
    small = capacity.assess(sized, _host(1, "RTX 3060"))
    assert small["verdict"] == "insufficient"
    reason = small["resources"]["gpu_memory"]["reason"]
    assert "TP 8 (28 attention heads do not divide by 8)" in reason and "host has 1 usable" in reason


def test_assess_seed_path_unchanged_for_seed_results():
    seed = sizing.size_model(params="7B", precision="fp16")
    result = capacity.assess(seed, _host(1, "RTX 4090"))
    assert result["gpu_plan"]["gpus"] == 1 and "method" not in result["gpu_plan"]


def test_deepseek_v3_on_eight_h200():
    sized = detailed("deepseek-v3", context_length=32768, concurrency=4)
    result = capacity.assess(sized, _host(8, "H200"))
    assert result["resources"]["gpu_memory"]["verdict"] == "fits"
    assert result["gpu_plan"]["tensor_parallel_size"] == 8
    assert sized["differs_from_seed"] is True  # 671B at FP8 x 1.5 = 1006.5 GB vs the per-GPU plan
    assert "rule of thumb" in result["resources"]["gpu_memory"]["reason"]


@pytest.mark.parametrize("name, tp, weights_gib, kv_gib", [
    # vLLM's own log lines as llm-d reported them (H100 79.18 GiB, utilization 0.9, max_model_len 16000).
    ("llama-3.1-8b", 1, 14.99, 51.38),
    ("llama-3.3-70b-instruct-fp8-dynamic", 2, 33.88, 32.0),
    ("qwen3-32b", 1, 61.03, 4.45),
])
def test_reproduces_published_vllm_budgets(name, tp, weights_gib, kv_gib):
    sized = engine_detailed(name, context_length=16000, engine_version="0.11.0")
    parts = detailed_sizing.per_gpu_requirement(sized["plan_inputs"], tp, 1, gpu_mib=81559)
    budget = detailed_sizing.engine_parts(sized["plan_inputs"], tp, 1, 81559)["budget"]
    assert abs(parts["weights"] / GIB - weights_gib) < 0.1
    assert abs((budget - parts["total"] + parts["kv_cache"]) / GIB - kv_gib) < 0.1
    # vLLM refused Qwen3-32B at max_model_len 32000 on one H100 and ran it at 16000: so does the plan.
    if name == "qwen3-32b":
        assert 16000 < detailed_sizing.max_context_length(sized["plan_inputs"], 1, 1, budget, gpu_mib=81559) < 32000


def test_calibration_constants_replace_the_modelled_ones_and_say_so():
    constants = {"engine": "vllm", "engine_version": "0.32.0", "gpu_class": "nvidia-a100-sxm4-80gb/81920MiB",
                 "memory_total_mib": 81920, "host": "a100-node-01", "date": "2026-11-30T10:00:00+00:00",
                 "model": "Qwen/Qwen2.5-7B-Instruct", "activation_ratio": 1.5, "non_torch_bytes": GIB,
                 "torch_total_bytes": 79 * GIB}
    plain = engine_detailed("llama-3.1-8b", context_length=8192)
    calibrated = engine_detailed("llama-3.1-8b", context_length=8192, calibration=constants)
    plan = detailed_sizing.plan(calibrated, 81920, gpu_name="NVIDIA A100-SXM4-80GB")
    base = detailed_sizing.plan(plain, 81920, gpu_name="NVIDIA A100-SXM4-80GB")
    eng = plan["engine_memory"]
    assert eng["calibration_note"].startswith("measured on a100-node-01, 2026-11-30")
    assert eng["non_torch_gib"] == 1.0 and eng["torch_total_gib"] == 79.0
    assert eng["activation_gib"] > eng["modelled_gib"]["activation_gib"] == base["engine_memory"]["activation_gib"]
    assert plan["max_context_length"] <= base["max_context_length"]
    # Another GPU or another engine version: ignored, and the plan says why.
    other = detailed_sizing.plan(calibrated, 81559, gpu_name="NVIDIA H100 80GB HBM3")
    assert other["engine_memory"]["calibration"] is None
    assert "calibration ignored" in other["engine_memory"]["calibration_ignored"]
    stale = engine_detailed("llama-3.1-8b", context_length=8192, calibration=dict(constants, engine_version="0.31.0"))
    assert "0.31.0" in detailed_sizing.plan(stale, 81920)["engine_memory"]["calibration_ignored"]
    with pytest.raises(SizingInputError) as err:
        engine_detailed("llama-3.1-8b", calibration="a100")
    assert err.value.field == "calibration"


def test_engine_options_are_validated():
    for spec, field in (({"max_num_batched_tokens": 0}, "max_num_batched_tokens"),
                        ({"max_num_seqs": -1}, "max_num_seqs"),
                        ({"engine_entry_point": "triton"}, "engine_entry_point"),
                        ({"engine_version": "next"}, "engine_version")):
        with pytest.raises(SizingInputError) as err:
            engine_detailed("llama-3.1-8b", **spec)
        assert err.value.field == field
    sized = engine_detailed("llama-3.1-8b", engine_entry_point="llm_class", max_num_seqs=64)
    assert sized["engine_memory"]["entry_point"] == "llm_class" and sized["engine_memory"]["max_num_seqs"] == 64


def test_utilization_that_leaves_no_room_for_the_cuda_context_is_refused():
    """vLLM checks free memory >= utilization x total at start: 0.99 of an RTX 3090 leaves 0.24 GiB for the context."""
    sized = engine_detailed("qwen2.5-0.5b", gpu_memory_utilization=0.99)
    plan = detailed_sizing.plan(sized, 24576, reserve=0.0, gpu_name="NVIDIA GeForce RTX 3090")
    assert plan["gpus"] is None and plan["engine_memory"]["starts"] is False
    assert "refuse to start" in detailed_sizing.describe_plan(plan, "RTX 3090")
    assert detailed_sizing.plan(engine_detailed("qwen2.5-0.5b", gpu_memory_utilization=0.95), 24576)["gpus"] == 1
    old = engine_detailed("qwen2.5-0.5b", engine_version="0.6.4")
    assert any("V0 engine" in w for w in old["sizing_warnings"])
