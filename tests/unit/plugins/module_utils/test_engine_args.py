"""engine_args: vLLM serve arguments from real plans (sizing + capacity on declared hardware), refusals, sources,
and the rendered GPU-plan argv read by the installed engine's own parser (the cached CPU engine venv)."""
import copy
import json
import math
import os
import subprocess
from fractions import Fraction

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import capacity, detailed_sizing, engine_args, sizing

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs")
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
HOST = {"memory_total_mib": 2000000, "cpu_cores": 64, "disk_free_mib": 10 ** 7}
GIB = 2 ** 30


def load(name):
    with open(os.path.join(CONFIGS, name + ".json")) as handle:
        return json.load(handle)


def gpu_plan(name, gpu, count, config=None, **spec):
    """The plan capacity_check makes for ``count`` x ``gpu`` (declared hardware), as preflight_result holds it."""
    config = config or load(name)
    sized = sizing.size_model(method="detailed", config=config, **spec)
    hardware = dict(HOST, gpu_model=gpu, gpu_count=count)
    result = capacity.assess(sized, hardware, target="gpu")
    result.update(sizing=sized, hardware=capacity.normalize_hardware(hardware), target="gpu")
    return result, config


def cpu_plan(name="qwen2-tiny-2m", ram_mib=24000, **spec):
    """The plan capacity_check makes for the CPU target (its sizing carries cpu_plan: the KV space it judged RAM with)."""
    config = load(name)
    sized = sizing.size_model(method="detailed", config=config, target="cpu", **spec)
    hardware = {"gpus": [], "memory_total_mib": ram_mib, "cpu_cores": 2, "disk_free_mib": 10 ** 6}
    result = capacity.assess(sized, hardware, target="cpu")
    result.update(sizing=sized, hardware=capacity.normalize_hardware(hardware), target="cpu")
    return result, config


def arg(result, name):
    return [a for a in result["args"] if a["name"] == name][0]


def flag_value(argv, flag):
    return argv[argv.index(flag) + 1] if flag in argv else None


# ---------------------------------------------------------------------------------------------------------------
# GPU plans
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, gpu, count, spec, tp", [
    ("qwen3-32b", "H100", 2, {}, 2),
    ("qwen3-32b", "A100 40GB", 4, {}, 4),
    ("llama-3.1-8b", "H100", 8, {"context_length": 32768, "concurrency": 64}, 8),
])
def test_tensor_parallel_size_comes_from_the_plan(name, gpu, count, spec, tp):
    plan, config = gpu_plan(name, gpu, count, **spec)
    assert plan["gpu_plan"]["tensor_parallel_size"] == tp
    result = engine_args.derive(plan, config, "/opt/llmops/models/m", name)
    assert flag_value(result["argv"], "--tensor-parallel-size") == str(tp)
    assert flag_value(result["argv"], "--pipeline-parallel-size") == "1"
    assert arg(result, "tensor_parallel_size")["source"] == "plan"
    assert flag_value(result["argv"], "--gpu-memory-utilization") == "0.9"
    assert result["argv"][0] == "/opt/llmops/models/m"
    assert "--enforce-eager" not in result["argv"]
    assert arg(result, "enforce_eager")["source"] == "engine"
    assert result["env"] == {}
    # The expected KV tokens follow TP: each GPU holds kv_heads / TP of every token.
    expected = result["expected"]
    assert expected["kv_cache_tokens"] > 0
    assert expected["max_concurrency"] == round(float(expected["kv_cache_tokens"]) / expected["max_model_len"], 2)


def test_context_asked_for_and_planned_concurrency():
    plan, config = gpu_plan("llama-3.1-8b", "H100", 8, context_length=32768, concurrency=64)
    result = engine_args.derive(plan, config, "/m", "llama")
    assert flag_value(result["argv"], "--max-model-len") == "32768"
    assert arg(result, "max_model_len")["detail"] == "the context asked for"
    assert flag_value(result["argv"], "--max-num-seqs") == "64"
    assert arg(result, "max_num_seqs")["source"] == "plan"


def test_largest_context_that_fits_when_none_was_asked():
    plan, config = gpu_plan("qwen3-32b", "H100", 2)
    result = engine_args.derive(plan, config, "/m", "qwen")
    assert int(flag_value(result["argv"], "--max-model-len")) == min(plan["gpu_plan"]["max_context_length"],
                                                                     config["max_position_embeddings"])
    assert arg(result, "max_model_len")["detail"] == "the largest context that fits the plan's GPUs"


def test_kv_cache_tokens_on_one_h100_match_the_plan_budget():
    plan, config = gpu_plan("llama-3.1-8b", "H100", 1)
    expected = engine_args.derive(plan, config, "/m", "llama")["expected"]
    # Llama-3.1-8B: 32 layers x 8 KV heads x 128 x 2 (K, V) x 2 bytes = 131,072 bytes per token.
    assert expected["kv_cache_bytes_per_token_per_gpu"] == 131072
    # The engine hands out whole 16-token blocks.
    assert expected["kv_cache_tokens"] == expected["kv_cache_bytes_per_gpu"] // (131072 * 16) * 16
    assert expected["weights_bytes"] == plan["sizing"]["requirements_bytes"]["param_memory"]


@pytest.mark.parametrize("gpu, count, mib, torch_gib", [("RTX 4090", 1, 24564, "23.99"), ("H100", 2, 81559, "79.18")])
def test_expectation_takes_the_plans_engine_budget(gpu, count, mib, torch_gib):
    """One budget for the plan and the trial: what torch sees x utilisation (not nvidia-smi's MiB), less the
    engine's parts for that GPU at the --max-model-len / --max-num-seqs the engine is started with."""
    plan, config = gpu_plan("llama-3.1-8b", gpu, count, context_length=8192, concurrency=4)
    result = engine_args.derive(plan, config, "/m", "llama")
    expected = result["expected"]
    tp = int(flag_value(result["argv"], "--tensor-parallel-size"))
    inputs = plan["sizing"]["plan_inputs"]
    eng = detailed_sizing.engine_parts(inputs, tp, 1, mib, plan["gpu_plan"]["gpu_name"], context_length=8192,
                                       max_num_seqs=4)
    budget = expected["engine_memory"]["budget_bytes"]
    assert budget == eng["budget"] == int(math.ceil(Fraction(torch_gib) * GIB * Fraction("0.9")))
    assert budget != int(mib * 2 ** 20 * 0.9)  # not nvidia-smi's MiB x utilisation
    assert sizing.gb(budget) == plan["gpu_plan"]["per_gpu_budget_gb"]
    assert expected["engine_memory"]["max_num_seqs"] == 4
    weights = expected["weights_bytes_per_gpu"]
    assert expected["kv_cache_bytes_per_gpu"] == budget - weights - eng["activations"] - eng["overhead"]


def test_enforce_eager_expects_the_cuda_graph_memory_back_as_kv_cache():
    plan, config = gpu_plan("llama-3.1-8b", "H100", 1, context_length=8192)
    graphs = engine_args.derive(plan, config, "/m", "llama")["expected"]
    eager = engine_args.derive(plan, config, "/m", "llama", enforce_eager=True)["expected"]
    gained = eager["kv_cache_bytes_per_gpu"] - graphs["kv_cache_bytes_per_gpu"]
    assert gained == graphs["engine_memory"]["overhead_bytes"] - eager["engine_memory"]["overhead_bytes"] > 0
    assert eager["kv_cache_tokens"] > graphs["kv_cache_tokens"]


def test_fp8_kv_cache_on_hopper():
    plan, config = gpu_plan("llama-3.1-8b", "H100", 1, kv_cache_dtype="fp8")
    result = engine_args.derive(plan, config, "/m", "llama")
    assert flag_value(result["argv"], "--kv-cache-dtype") == "fp8"
    assert arg(result, "kv_cache_dtype")["source"] == "plan"
    # One byte per element: twice the tokens of the bf16 cache in the same room.
    bf16 = engine_args.derive(gpu_plan("llama-3.1-8b", "H100", 1)[0], config, "/m", "llama")["expected"]
    assert result["expected"]["kv_cache_bytes_per_token_per_gpu"] == bf16["kv_cache_bytes_per_token_per_gpu"] // 2


def test_fp8_kv_cache_on_compute_capability_8_0_never_reaches_the_engine():
    plan, config = gpu_plan("llama-3.1-8b", "A100 40GB", 1, kv_cache_dtype="fp8")
    with pytest.raises(engine_args.EngineArgsError) as caught:
        engine_args.derive(plan, config, "/m", "llama")
    assert caught.value.field == "kv_cache_dtype"
    assert "compute capability 8.9" in str(caught.value) and "8.0" in str(caught.value)


def test_fp8_kv_override_on_compute_capability_8_0_is_refused_too():
    plan, config = gpu_plan("llama-3.1-8b", "A100 80GB", 1)
    with pytest.raises(engine_args.EngineArgsError, match="compute capability 8.9"):
        engine_args.derive(plan, config, "/m", "llama", overrides={"kv_cache_dtype": "fp8_e4m3"})


def test_awq_checkpoint_lets_vllm_pick_its_kernel():
    plan, config = gpu_plan("qwen2.5-7b-instruct-awq", "RTX 4090", 1)
    result = engine_args.derive(plan, config, "/m", "qwen-awq")
    assert "--quantization" not in result["argv"]
    quant = arg(result, "quantization")
    assert quant["source"] == "engine" and "awq" in quant["detail"] and "awq_marlin" in quant["detail"]


def test_gptq_checkpoint_lets_vllm_pick_its_kernel():
    config = copy.deepcopy(load("qwen2.5-7b"))
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False}
    plan, config = gpu_plan("qwen2.5-7b-gptq", "RTX 4090", 1, config=config)
    result = engine_args.derive(plan, config, "/m", "qwen-gptq")
    assert "--quantization" not in result["argv"]
    assert "gptq" in arg(result, "quantization")["detail"]
    assert plan["sizing"]["precision"] == "int4"


def test_fp8_checkpoint_on_hopper_and_refused_on_ampere():
    plan, config = gpu_plan("llama-3.3-70b-instruct-fp8-dynamic", "H100", 4)
    result = engine_args.derive(plan, config, "/m", "llama-70b-fp8")
    assert "--quantization" not in result["argv"]  # compressed-tensors FP8: vLLM reads it from config.json
    assert flag_value(result["argv"], "--tensor-parallel-size") == str(plan["gpu_plan"]["tensor_parallel_size"])
    ampere = dict(plan, hardware=capacity.normalize_hardware(dict(HOST, gpu_model="A100 80GB", gpu_count=4)))
    with pytest.raises(engine_args.EngineArgsError, match="FP8 needs compute capability 8.9"):
        engine_args.derive(ampere, config, "/m", "llama-70b-fp8")


def test_fp8_planned_for_a_bf16_checkpoint_quantises_on_load():
    plan, config = gpu_plan("qwen2.5-7b", "H100", 1, precision="fp8")
    result = engine_args.derive(plan, config, "/m", "qwen")
    assert flag_value(result["argv"], "--quantization") == "fp8"
    assert arg(result, "quantization")["source"] == "plan"


def test_int8_plan_for_an_unquantised_checkpoint_is_refused():
    plan, config = gpu_plan("qwen2.5-7b", "H100", 1, precision="int8")
    with pytest.raises(engine_args.EngineArgsError, match="no quantization_config"):
        engine_args.derive(plan, config, "/m", "qwen")


def test_multi_node_plan_is_refused_with_a_clear_message():
    plan, config = gpu_plan("deepseek-v3", "H100", 8)
    assert plan["gpu_plan"]["nodes"] == 2
    with pytest.raises(engine_args.EngineArgsError) as caught:
        engine_args.derive(plan, config, "/m", "deepseek")
    assert caught.value.field == "plan.gpu_plan.nodes"
    assert "16 GPUs across 2 nodes" in str(caught.value) and "multi-node serving is out of scope" in str(caught.value)


def test_tp_that_does_not_divide_the_heads_never_reaches_the_engine():
    plan, config = gpu_plan("llama-3.1-8b", "H100", 8)
    with pytest.raises(engine_args.EngineArgsError) as caught:
        engine_args.derive(plan, config, "/m", "llama", overrides={"tensor_parallel_size": 3})
    assert caught.value.field == "tensor_parallel_size"
    assert "32 attention heads" in str(caught.value)


def test_tp_beyond_the_hosts_gpus_is_refused():
    plan, config = gpu_plan("llama-3.1-8b", "H100", 2)
    with pytest.raises(engine_args.EngineArgsError, match="within the host's 2 GPU"):
        engine_args.derive(plan, config, "/m", "llama", overrides={"tensor_parallel_size": 4})


def test_a_plan_without_a_fitting_gpu_configuration_is_refused():
    plan, config = gpu_plan("qwen3-32b", "RTX 4090", 1)
    plan["gpu_plan"] = dict(plan["gpu_plan"], tensor_parallel_size=None)
    with pytest.raises(engine_args.EngineArgsError, match="for CPU inference set target cpu"):
        engine_args.derive(plan, config, "/m", "qwen")


# ---------------------------------------------------------------------------------------------------------------
# CPU target
# ---------------------------------------------------------------------------------------------------------------
def test_cpu_target_takes_the_plans_kv_space_and_expects_its_tokens():
    plan, config = cpu_plan(context_length=512, concurrency=4, cpu_kv_cache_space_gib=1)
    result = engine_args.derive(plan, config, "/opt/llmops/models/llmops-test/Qwen2-tiny-2M", "llmops-test/Qwen2")
    assert result["target"] == "cpu"
    assert result["env"] == {"VLLM_CPU_KVCACHE_SPACE": "1"}
    assert arg(result, "VLLM_CPU_KVCACHE_SPACE")["source"] == "plan"
    assert result["expected"]["kv_cache_tokens"] == plan["sizing"]["cpu_plan"]["kv_cache_tokens"]
    for flag in ("--tensor-parallel-size", "--pipeline-parallel-size", "--gpu-memory-utilization"):
        assert flag not in result["argv"]
    assert "--enforce-eager" in result["argv"]
    assert arg(result, "enforce_eager")["source"] == "default"
    assert flag_value(result["argv"], "--max-model-len") == "512"
    assert flag_value(result["argv"], "--max-num-seqs") == "4"
    # bf16 on vLLM's CPU backend dies with SIGILL in its AMX attention kernel here: served at float16 (2 bytes too).
    assert flag_value(result["argv"], "--dtype") == "float16"
    assert arg(result, "dtype")["source"] == "default" and "SIGILL" in arg(result, "dtype")["detail"]
    # Qwen2-tiny: 8 layers x 2 KV heads x 32 x 2 (K, V) x 2 bytes = 2,048 bytes per token; vLLM's CPU backend says
    # "CPU KV cache size: 524,288 tokens, Maximum concurrency for 512 tokens per request: 1024.00x" with 1 GiB.
    assert result["expected"]["kv_cache_bytes_per_token"] == 2048
    assert result["expected"]["kv_cache_tokens"] == 524288
    assert result["expected"]["max_concurrency"] == 1024.0


def test_without_a_cpu_plan_the_kv_space_grows_with_the_planned_sequences_and_can_be_overridden():
    plan, config = cpu_plan(name="llama-3.1-8b", ram_mib=256000, context_length=8192, concurrency=16)
    plan["sizing"].pop("cpu_plan")  # a plan made before capacity_check planned the CPU engine's KV space
    plan["sizing"]["kv_cache_per_token_bytes"] = 131072
    result = engine_args.derive(plan, config, "/m", "llama", target="cpu")
    # 131,072 bytes per token x 8,192 x 16 = 16 GiB exactly.
    assert result["env"]["VLLM_CPU_KVCACHE_SPACE"] == "16"
    assert arg(result, "VLLM_CPU_KVCACHE_SPACE")["source"] == "plan"
    small, config = cpu_plan(context_length=512, concurrency=4, cpu_kv_cache_space_gib=1)
    overridden = engine_args.derive(small, config, "/m", "tiny", cpu_kvcache_space_gib=2)
    assert overridden["env"]["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert arg(overridden, "VLLM_CPU_KVCACHE_SPACE")["source"] == "override"
    assert overridden["expected"]["kv_cache_tokens"] == 2 * 524288


def test_cpu_kv_space_follows_the_plan():
    plan, config = cpu_plan(context_length=512, concurrency=4, cpu_kv_cache_space_gib=3)
    result = engine_args.derive(plan, config, "/m", "tiny")
    assert result["env"]["VLLM_CPU_KVCACHE_SPACE"] == "3"
    assert result["expected"]["kv_cache_tokens"] == 3 * GIB // 2048


def test_cpu_kv_space_that_does_not_fit_the_ram_is_refused():
    plan, config = cpu_plan(context_length=512, concurrency=4)
    with pytest.raises(engine_args.EngineArgsError, match="24000 MiB of RAM"):
        engine_args.derive(plan, config, "/m", "tiny", cpu_kvcache_space_gib=64)


def test_cpu_target_refuses_fp8_quantisation_on_load():
    plan, config = cpu_plan(precision="fp8")
    with pytest.raises(engine_args.EngineArgsError, match="CPU backend"):
        engine_args.derive(plan, config, "/m", "tiny")


# ---------------------------------------------------------------------------------------------------------------
# Overrides, sources, extra arguments
# ---------------------------------------------------------------------------------------------------------------
def test_overrides_replace_derived_values_and_say_so():
    plan, config = gpu_plan("llama-3.1-8b", "H100", 2)
    result = engine_args.derive(plan, config, "/m", "llama", host="0.0.0.0", port=8001, enforce_eager=True,
                                overrides={"max_model_len": 4096, "max_num_seqs": 32, "gpu_memory_utilization": 0.85})
    assert flag_value(result["argv"], "--max-model-len") == "4096"
    assert arg(result, "max_model_len")["source"] == "override"
    assert "largest context" in arg(result, "max_model_len")["detail"]  # what it replaced
    assert flag_value(result["argv"], "--max-num-seqs") == "32"
    assert flag_value(result["argv"], "--gpu-memory-utilization") == "0.85"
    assert arg(result, "host")["source"] == "override" and arg(result, "port")["source"] == "override"
    assert arg(result, "enforce_eager")["source"] == "default" and "--enforce-eager" in result["argv"]
    assert arg(result, "tensor_parallel_size")["source"] == "plan"
    assert arg(result, "served_model_name")["source"] == "default"
    sources = set(a["source"] for a in result["args"])
    assert sources <= set(engine_args.SOURCES) and sources == {"plan", "override", "default", "engine"}


def test_served_model_name_from_the_plan():
    config = load("qwen2-tiny-2m")
    sized = sizing.size_model(method="detailed", config=config, model="llmops-test/Qwen2-tiny-2M")
    plan = capacity.assess(sized, {"gpus": [], "memory_total_mib": 24000, "cpu_cores": 2, "disk_free_mib": 10 ** 6},
                           target="cpu")
    plan.update(sizing=sized, target="cpu")
    result = engine_args.derive(plan, config, "/m", "llmops-test/Qwen2-tiny-2M")
    assert arg(result, "served_model_name")["source"] == "plan"


@pytest.mark.parametrize("extra, match", [
    (["--api-key", "secret"], "EnvironmentFile"),
    (["--api-key=secret"], "EnvironmentFile"),
    (["--max-model-len", "100"], "through overrides"),
    (["--model", "/x"], "sets the model"),
    ([""], "non-empty strings"),
])
def test_extra_args_that_are_refused(extra, match):
    plan, config = cpu_plan(context_length=512, concurrency=4)
    with pytest.raises(engine_args.EngineArgsError, match=match):
        engine_args.derive(plan, config, "/m", "tiny", extra_args=extra)


def test_extra_args_are_appended_as_overrides():
    plan, config = cpu_plan(context_length=512, concurrency=4)
    result = engine_args.derive(plan, config, "/m", "tiny", extra_args=["--enable-prefix-caching"])
    assert result["argv"][-1] == "--enable-prefix-caching"
    assert arg(result, "--enable-prefix-caching")["source"] == "override"


@pytest.mark.parametrize("kwargs, field", [
    ({"overrides": {"no_such_flag": 1}}, "overrides"),
    ({"overrides": {"max_model_len": 0}}, "overrides.max_model_len"),
    ({"port": 70000}, "port"),
    ({"target": "tpu"}, "target"),
])
def test_bad_options_name_the_field(kwargs, field):
    plan, config = cpu_plan(context_length=512, concurrency=4)
    with pytest.raises(engine_args.EngineArgsError) as caught:
        engine_args.derive(plan, config, "/m", "tiny", **kwargs)
    assert caught.value.field == field


def test_a_seed_plan_is_refused():
    config = load("qwen2-tiny-2m")
    with pytest.raises(engine_args.EngineArgsError) as caught:
        engine_args.derive({"sizing": {"method": "seed"}}, config, "/m", "tiny")
    assert caught.value.field == "plan.sizing.method"
    with pytest.raises(engine_args.EngineArgsError):
        engine_args.derive({}, config, "/m", "tiny")


def test_compare_parsed_finds_a_value_vllm_read_differently():
    plan, config = gpu_plan("qwen3-32b", "H100", 2)
    result = engine_args.derive(plan, config, "/m", "qwen")
    assert engine_args.compare_parsed(result["args"], {"tensor_parallel_size": 2, "served_model_name": ["qwen"]}) == []
    problems = engine_args.compare_parsed(result["args"], {"tensor_parallel_size": 1})
    assert problems == ["--tensor-parallel-size 2 was read by vLLM as 1"]


# ---------------------------------------------------------------------------------------------------------------
# The installed engine's own parser (the cached CPU engine venv; its parser speaks for the CUDA build's flags too)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine_python():
    script = os.path.join(REPO_ROOT, "scripts", "engine-venv.sh")
    if os.geteuid() != 0 and not os.environ.get("LLMOPS_ENGINE_VENV"):
        pytest.skip("the cached engine venv is built under /var/cache/llmops (needs root) unless LLMOPS_ENGINE_VENV "
                    "points at one")
    result = subprocess.run([script], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=3600, check=False)
    if result.returncode != 0:
        pytest.skip("the cached vLLM CPU engine venv cannot be built here: %s" % result.stderr.strip()[-1500:])
    return os.path.join(result.stdout.splitlines()[0].split("=", 1)[1], "bin", "python")


def run_parser(python, derived):
    proc = subprocess.run([python, "-c", engine_args.PARSER_CHECK_SCRIPT, json.dumps(derived["argv"]),
                           json.dumps(engine_args.parser_dests(derived["args"]))],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return engine_args.read_parser_result(proc.stdout)


@pytest.mark.slow
def test_gpu_plan_argv_is_read_by_the_installed_vllm_parser(engine_python):
    plan, config = gpu_plan("llama-3.1-8b", "H100", 8, context_length=32768, concurrency=64, kv_cache_dtype="fp8")
    derived = engine_args.derive(plan, config, "/opt/llmops/models/meta-llama/Llama-3.1-8B", "llama",
                                 overrides={"quantization": "fp8"}, extra_args=["--enable-prefix-caching"])
    parsed = run_parser(engine_python, derived)
    assert parsed["ok"], parsed["error"]
    assert parsed["version"] == "0.32.0"
    assert parsed["parsed"]["tensor_parallel_size"] == plan["gpu_plan"]["tensor_parallel_size"] > 1
    assert parsed["parsed"]["max_model_len"] == 32768
    assert parsed["parsed"]["kv_cache_dtype"] == "fp8"
    assert parsed["parsed"]["quantization"] == "fp8"
    assert parsed["parsed"]["max_num_seqs"] == 64
    assert engine_args.compare_parsed(derived["args"], parsed["parsed"]) == []


@pytest.mark.slow
def test_a_renamed_or_invalid_flag_fails_in_the_parser(engine_python):
    plan, config = gpu_plan("llama-3.1-8b", "H100", 1)
    derived = engine_args.derive(plan, config, "/m", "llama", extra_args=["--tensor-parallel-degree", "2"])
    parsed = run_parser(engine_python, derived)
    assert not parsed["ok"] and "unrecognized arguments: --tensor-parallel-degree" in parsed["error"]
    bad_choice = engine_args.derive(plan, config, "/m", "llama", overrides={"kv_cache_dtype": "fp9"})
    parsed = run_parser(engine_python, bad_choice)
    assert not parsed["ok"] and "--kv-cache-dtype" in parsed["error"]


def test_a_bf16_dtype_override_on_a_gpu_below_compute_capability_8_is_refused():
    plan, config = gpu_plan("llama-3.1-8b", "V100 32GB", 2, context_length=4096, precision="fp16")
    # Planned at FP16 (a BF16 checkpoint served at float16: the same bytes); vLLM reads the dtype itself.
    assert arg(engine_args.derive(plan, config, "/m", "llama"), "dtype")["value"] is None
    assert arg(engine_args.derive(plan, config, "/m", "llama", overrides={"dtype": "float16"}), "dtype")["value"] == \
        "float16"
    with pytest.raises(engine_args.EngineArgsError) as refused:
        engine_args.derive(plan, config, "/m", "llama", overrides={"dtype": "bfloat16"})
    assert refused.value.field == "overrides.dtype"
    assert "needs compute capability 8.0; the GPU has 7.0" in str(refused.value), str(refused.value)
    plan, config = gpu_plan("llama-3.1-8b", "A100 80GB", 1, context_length=4096)
    assert arg(engine_args.derive(plan, config, "/m", "llama", overrides={"dtype": "bfloat16"}), "dtype")["value"] == \
        "bfloat16"


def test_a_bf16_plan_on_gpus_below_compute_capability_8_names_the_fp16_way_that_fits():
    plan, _config = gpu_plan("llama-3.1-8b", "V100 32GB", 2, context_length=4096)
    assert plan["verdict"] == "insufficient"
    (reason,) = plan["reasons"]
    assert reason.startswith("BF16 cannot run here: BF16 needs compute capability 8.0; the GPU has 7.0")
    assert "plan it with precision fp16 (llmops_precision: fp16)" in reason
    fp16, _config = gpu_plan("llama-3.1-8b", "V100 32GB", 2, context_length=4096, precision="fp16")
    assert fp16["verdict"] in ("fits", "tight"), fp16["reasons"]
