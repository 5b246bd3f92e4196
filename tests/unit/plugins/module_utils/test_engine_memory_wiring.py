# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine-memory model and calibration, reached through the shared sizing options (issue 8, integration).

sizing.size_model / size_model_options forward the engine options to the detailed method, plan_gpus plans with the
GPU's name (an A100 80GB keeps vLLM's smaller profiling batch), capacity verdicts say when the engine would refuse
to start, and a calibration is used, or ignored with a warning, end to end from a recorded trial.
"""

import json
import os

import pytest
import yaml

from ansible_collections.llmops.deploy.plugins.doc_fragments.model_spec import ModuleDocFragment
from ansible_collections.llmops.deploy.plugins.module_utils import capacity, engine_memory, sizing
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError
from ansible_collections.llmops.deploy.plugins.plugin_utils import calibration

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs")
GIB = 2 ** 30
A100_MIB = 81920
H100_MIB = 81559
RTX3090_MIB = 24576


def load(name):
    with open(os.path.join(CONFIGS, name + ".json")) as handle:
        return json.load(handle)


def llama(**options):
    return sizing.size_model(method="detailed", config=load("llama-3.1-8b"), context_length=8192, **options)


def one_gpu(name):
    return {"gpu_model": name, "gpu_count": 1}


# -- 1. the options reach the detailed method ------------------------------------------------------------------------

def test_size_model_forwards_the_engine_options():
    sized = llama(max_num_batched_tokens=4096, max_num_seqs=64, engine_entry_point="llm_class",
                  engine_version="0.27.1")
    engine = sized["plan_inputs"]["engine"]
    assert (engine["max_num_batched_tokens"], engine["max_num_seqs"], engine["entry_point"], engine["version"]) == (
        4096, 64, "llm_class", "0.27.1")
    summary = sized["engine_memory"]
    assert (summary["max_num_batched_tokens"], summary["max_num_seqs"], summary["engine_version"]) == (
        4096, 64, "0.27.1")
    assert summary["batch_source"] == "asked for"
    plan = sizing.plan_gpus(sized, RTX3090_MIB, gpu_name="NVIDIA GeForce RTX 3090")
    assert (plan["engine_memory"]["max_num_batched_tokens"], plan["engine_memory"]["max_num_seqs"]) == (4096, 64)
    assert plan["engine_memory"]["engine_version"] == "0.27.1"


def test_the_profiling_batch_asked_for_changes_the_plan():
    """Llama-3.1-8B at 8k on one RTX 3090: the default batch (2048) fits with the 20 % reserve; 16384 tokens keep
    2.2 GB for activations instead of 0.28 and need a second card for the reserve."""
    default = sizing.plan_gpus(llama(), RTX3090_MIB, gpu_name="NVIDIA GeForce RTX 3090", available_gpus=1)
    larger = sizing.plan_gpus(llama(max_num_batched_tokens=16384), RTX3090_MIB, gpu_name="NVIDIA GeForce RTX 3090",
                              available_gpus=1)
    assert default["engine_memory"]["max_num_batched_tokens"] == 2048  # vllm serve, under 70 GiB
    assert larger["engine_memory"]["activation_gib"] > 4 * default["engine_memory"]["activation_gib"]
    assert (default["gpus"], larger["gpus"], larger["gpus_minimum"]) == (1, 2, 1)
    assert larger["max_context_length"] < default["max_context_length"]


def test_entry_point_decides_the_default_batch():
    served = llama()["engine_memory"]
    library = llama(engine_entry_point="llm_class")["engine_memory"]
    # The GPU-less requirement of an 8B model lands in the 48 GB class: vllm serve 2048, LLM() 8192.
    assert (served["entry_point"], served["max_num_batched_tokens"]) == ("openai_api_server", 2048)
    assert (library["entry_point"], library["max_num_batched_tokens"]) == ("llm_class", 8192)


def test_size_model_options_passes_the_engine_options_on():
    options = sizing.size_model_options({
        "config": load("llama-3.1-8b"), "method": "detailed", "max_num_batched_tokens": 1024, "max_num_seqs": 8,
        "engine_entry_point": "llm_class", "engine_version": "0.32.0", "calibration": {"engine_version": "0.32.0"}})
    assert (options["max_num_batched_tokens"], options["max_num_seqs"], options["engine_entry_point"],
            options["engine_version"], options["calibration"]) == (
        1024, 8, "llm_class", "0.32.0", {"engine_version": "0.32.0"})
    sized = sizing.size_model(**options)
    assert sized["plan_inputs"]["engine"]["max_num_batched_tokens"] == 1024


@pytest.mark.parametrize("option, value", [
    ("max_num_batched_tokens", 0), ("max_num_seqs", -1), ("engine_entry_point", "grpc"),
    ("engine_version", "latest"), ("calibration", "a100-node-01"),
])
@pytest.mark.parametrize("method", ["seed", "detailed"])
def test_engine_options_are_validated_by_every_method(method, option, value):
    spec = {"params": "8B", "precision": "bf16"} if method == "seed" else {"config": load("llama-3.1-8b")}
    with pytest.raises(SizingInputError) as err:
        sizing.size_model(method=method, **dict(spec, **{option: value}))
    assert err.value.field == option


def test_the_seed_method_says_it_leaves_engine_options_unused():
    sized = sizing.size_model(params="8B", precision="bf16", max_num_batched_tokens=4096,
                              calibration={"engine_version": "0.32.0"})
    assert sized["method"] == "seed" and "engine_memory" not in sized
    assert [w for w in sized["sizing_warnings"] if w.startswith("max_num_batched_tokens, calibration not used")]
    plain = sizing.size_model(params="8B", precision="bf16", engine_entry_point="openai_api_server",
                              engine_version="0.32.0")
    assert plain["sizing_warnings"] == []  # the defaults are not "given"


def test_cpu_target_carries_no_gpu_engine_memory():
    sized = sizing.size_model(method="detailed", config=load("qwen2.5-0.5b"), target="cpu")
    assert "engine_memory" not in sized and "plan_inputs" not in sized and sized["cpu_plan"]


# -- 2. plan_gpus plans with the GPU's name --------------------------------------------------------------------------

def test_an_a100_80gb_is_planned_with_the_batch_vllm_uses_there():
    sized = llama()
    a100 = sizing.plan_gpus(sized, A100_MIB, gpu_name="A100 80GB")
    unnamed = sizing.plan_gpus(sized, A100_MIB, gpu_name="81920 MiB GPU")
    h100 = sizing.plan_gpus(sized, H100_MIB, gpu_name="H100")
    assert a100["engine_memory"]["max_num_batched_tokens"] == 2048 and "an A100" in a100["engine_memory"][
        "batch_source"]
    # Without a name a GPU of 70 GiB and more is taken as not an A100 (the larger batch, the safer figure).
    assert unnamed["engine_memory"]["max_num_batched_tokens"] == 8192
    assert h100["engine_memory"]["max_num_batched_tokens"] == 8192
    assert a100["engine_memory"]["activation_gib"] < unnamed["engine_memory"]["activation_gib"]
    assert a100["max_concurrency"] >= unnamed["max_concurrency"]


def test_capacity_check_plans_a_declared_a100_with_its_name():
    result = capacity.assess(llama(), one_gpu("A100 80GB"))
    assert result["gpu_plan"]["engine_memory"]["max_num_batched_tokens"] == 2048
    probed = capacity.assess(llama(), {"gpus": [{"name": "NVIDIA A100-SXM4-80GB", "memory_total_mib": A100_MIB,
                                                 "compute_capability": "8.0"}]})
    assert probed["gpu_plan"]["engine_memory"]["max_num_batched_tokens"] == 2048
    assert capacity.assess(llama(), one_gpu("H100"))["gpu_plan"]["engine_memory"]["max_num_batched_tokens"] == 8192


# -- 3. a start the engine would refuse ------------------------------------------------------------------------------

def test_verdict_says_the_engine_would_refuse_to_start():
    sized = llama(gpu_memory_utilization=0.99)
    result = capacity.assess(sized, one_gpu("RTX 3090"), reserve=0.0)
    gpu = result["resources"]["gpu_memory"]
    assert gpu["verdict"] == "insufficient" and result["verdict"] == "insufficient"
    assert result["gpu_plan"]["start_refused"].startswith("gpu_memory_utilization 0.99 leaves")
    assert gpu["reason"].startswith("GPU memory: vLLM would refuse to start on RTX 3090: gpu_memory_utilization 0.99")
    assert "does not fit" not in gpu["reason"]
    # The same utilization leaves an H100 more than the CUDA context needs: it starts and fits.
    assert capacity.assess(sized, one_gpu("H100"), reserve=0.0)["resources"]["gpu_memory"]["verdict"] == "fits"


def test_a_model_too_large_still_says_it_does_not_fit():
    sized = sizing.size_model(method="detailed", config=load("llama-3.1-8b"), context_length=131072,
                              concurrency=64)
    gpu = capacity.assess(sized, one_gpu("RTX 3090"))["resources"]["gpu_memory"]
    assert gpu["verdict"] == "insufficient" and "vLLM would refuse" not in gpu["reason"]


# -- 4. calibration end to end: recorded trial -> lookup -> sizing option -> plan and verdict ---------------------

def _constants(engine_version="0.32.0", gpu="NVIDIA A100-SXM4-80GB", mib=A100_MIB):
    trial = {"engine_version": engine_version, "gpu": gpu, "memory_total_mib": mib, "model": "llama-3.1-8b",
             "measured": {"activation_bytes": 3 * GIB, "non_torch_bytes": GIB // 2,
                          "torch_total_bytes": int(79.15 * GIB)},
             "modelled": {"activation_bytes": 2 * GIB}, "host": "a100-node-01", "date": "2026-11-30"}
    document = calibration.record({}, trial)
    found = calibration.lookup(document, engine_version, gpu, mib, max_age_days=None)
    assert found["constants"] and found["warnings"] == []
    return found["constants"]


def test_calibration_measured_on_this_gpu_is_used_with_the_modelled_value_beside():
    constants = _constants()
    sized = llama(calibration=constants)
    assert sized["sizing_warnings"] == [] and sized["engine_memory"]["calibration"] == constants
    plan = sizing.plan_gpus(sized, A100_MIB, gpu_name="NVIDIA A100-SXM4-80GB")
    base = sizing.plan_gpus(llama(), A100_MIB, gpu_name="NVIDIA A100-SXM4-80GB")
    eng = plan["engine_memory"]
    assert eng["calibration_note"].startswith("measured on a100-node-01, 2026-11-30")
    assert eng["calibration_ignored"] is None
    assert eng["torch_total_gib"] == 79.15 and eng["non_torch_gib"] == 0.5
    assert eng["modelled_gib"]["activation_gib"] == base["engine_memory"]["activation_gib"]
    assert abs(eng["activation_gib"] / eng["modelled_gib"]["activation_gib"] - 1.5) < 0.05
    assert eng["activation_source"].startswith("measured:")
    result = capacity.assess(sized, one_gpu("A100 80GB"))
    assert result["warnings"] == [] and result["gpu_plan"]["engine_memory"]["calibration_note"]


def test_calibration_from_another_gpu_is_ignored_with_a_warning():
    sized = llama(calibration=_constants())
    result = capacity.assess(sized, one_gpu("H100"))
    eng = result["gpu_plan"]["engine_memory"]
    assert eng["calibration"] is None and eng["calibration_ignored"].startswith("calibration ignored")
    assert result["warnings"] == [eng["calibration_ignored"]]
    assert "81920 MiB" in eng["calibration_ignored"] and "81559 MiB" in eng["calibration_ignored"]


def test_calibration_from_another_engine_version_is_ignored_with_one_warning():
    stale = _constants(engine_version="0.31.0")
    sized = llama(calibration=stale)
    warned = [w for w in sized["sizing_warnings"] if w.startswith("calibration ignored")]
    assert len(warned) == 1
    assert "vLLM 0.31.0 on a100-node-01, 2026-11-30" in warned[0] and "vLLM 0.32.0" in warned[0]
    result = capacity.assess(sized, one_gpu("A100 80GB"))
    assert result["gpu_plan"]["engine_memory"]["calibration"] is None
    assert "0.31.0" in result["gpu_plan"]["engine_memory"]["calibration_ignored"]
    # The sizing already said so: the plan does not say it a second time.
    assert result["warnings"] == []
    # The same calibration with the engine_version it was measured with is used.
    matching = sizing.plan_gpus(llama(calibration=stale, engine_version="0.31.0"), A100_MIB, gpu_name="A100 80GB")
    assert matching["engine_memory"]["calibration_note"].startswith("measured on a100-node-01")


def test_calibration_naming_no_version_is_ignored_with_a_warning():
    sized = llama(calibration={"activation_ratio": 2.0})
    assert [w for w in sized["sizing_warnings"] if "names no engine version" in w]


# -- 5. the shared option spec and its documentation -----------------------------------------------------------------

def test_argument_spec_has_the_engine_options_with_the_engines_defaults():
    spec = sizing.model_spec_argument_spec()
    # no_log=False: "tokens" is a count of batched tokens, not a credential (validate-modules asks to say so).
    assert spec["max_num_batched_tokens"] == {"type": "int", "no_log": False} and spec["max_num_seqs"] == {
        "type": "int"}
    assert spec["engine_entry_point"] == {"type": "str", "choices": ["openai_api_server", "llm_class"],
                                          "default": "openai_api_server"}
    assert spec["engine_version"] == {"type": "str", "default": engine_memory.PINNED_VERSION} and (
        engine_memory.PINNED_VERSION == "0.32.0")
    assert spec["calibration"] == {"type": "dict"}


def test_doc_fragment_documents_the_argument_spec_exactly():
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    spec = sizing.model_spec_argument_spec()
    assert set(documented) == set(spec)
    for name, option in spec.items():
        doc = documented[name]
        assert doc["type"] == option["type"], name
        assert doc.get("choices") == option.get("choices"), name
        assert doc.get("default") == option.get("default"), name
