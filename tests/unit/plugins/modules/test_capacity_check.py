"""capacity_check module: declared and probed hardware, verdicts, failing, errors."""
import json
import os

import pytest

from ansible.module_utils import basic
from ansible_collections.llmops.deploy.plugins.module_utils import host_resources, model_selection
from ansible_collections.llmops.deploy.plugins.modules import capacity_check

from .module_runner import run_module

FULL_HOST = {"memory_total_mib": 1048576, "cpu_cores": 64, "disk_free_mib": 2000000}


def declared(**gpus):
    return dict(FULL_HOST, **gpus)


def test_declared_hardware_is_not_probed(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda *a, **k: pytest.fail("probed a tool"))
    failed, result = run_module(monkeypatch, capacity_check, {
        "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "precision": "bf16",
        "hardware": declared(gpu_model="A100 80GB", gpu_count=4)})
    assert not failed and result["changed"] is False
    assert result["verdict"] == "fits" and result["gpus_needed"] == 2
    assert result["probed"] == [] and result["gpu_source"] is None
    assert result["gpu_plan"]["tensor_parallel_size"] == 2
    assert set(result["resources"]) == {"gpu_memory", "cpu_memory", "cpu_cores", "disk"}


def test_probed_h100s_from_recorded_nvidia_smi(monkeypatch, nvidia_smi):
    calls = nvidia_smi("h100-80gb-hbm3-x8.csv")
    failed, result = run_module(monkeypatch, capacity_check, {"params": "70B", "precision": "fp8",
                                                              "hardware": FULL_HOST})
    assert not failed
    assert calls and calls[0][1] == {"LC_ALL": "C"}
    assert result["probed"] == ["gpus"] and result["gpu_source"] == "nvidia-smi"
    assert len(result["hardware"]["gpus"]) == 8
    # 70B FP8: 105 GB GPU memory, 126 GB with reserve -> 2 x 81559 MiB (171 GB)
    assert result["verdict"] == "fits" and result["gpus_needed"] == 2


def test_fp8_on_a100_is_insufficient_with_the_reason(monkeypatch, nvidia_smi):
    nvidia_smi("a100-sxm4-80gb-x4.csv")
    failed, result = run_module(monkeypatch, capacity_check, {
        "model": "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8", "hardware": FULL_HOST, "fail_on": "never"})
    assert not failed
    gpu = result["resources"]["gpu_memory"]
    assert gpu["verdict"] == "insufficient" and result["verdict"] == "insufficient"
    assert "FP8 needs compute capability 8.9; the GPU has 8.0" in gpu["reason"]


def test_insufficient_fails_the_task_by_default(monkeypatch):
    failed, result = run_module(monkeypatch, capacity_check, {
        "params": "70B", "precision": "fp16", "hardware": declared(gpu_model="RTX 4090", gpu_count=1)})
    assert failed
    assert result["verdict"] == "insufficient"
    assert "70B at FP16 is insufficient on this host" in result["msg"]
    assert result["gpus_needed"] == 16


@pytest.mark.parametrize("fail_on, failed_expected", [("tight", True), ("insufficient", False), ("never", False)])
def test_fail_on_tight(monkeypatch, fail_on, failed_expected):
    # 7B FP32 (42 GB) on one A100 40GB (42.95 GB): holds it, not the reserve -> tight
    failed, result = run_module(monkeypatch, capacity_check, {
        "params": "7B", "precision": "fp32", "fail_on": fail_on,
        "hardware": declared(gpu_model="A100 40GB", gpu_count=1)})
    assert result["verdict"] == "tight"
    assert failed is failed_expected


def test_cpu_target_skips_gpus(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda *a, **k: pytest.fail("probed a GPU tool"))
    failed, result = run_module(monkeypatch, capacity_check, {"params": "0.5B", "precision": "bf16", "target": "cpu",
                                                              "hardware": FULL_HOST})
    assert not failed and "gpu_memory" not in result["resources"] and result["gpus_needed"] == 0


def test_ram_cores_and_disk_are_probed_when_not_declared(monkeypatch, tmp_path):
    failed, result = run_module(monkeypatch, capacity_check, {
        "params": "0.5B", "precision": "bf16", "target": "cpu", "model_dir": str(tmp_path / "not" / "yet"),
        "fail_on": "never"})
    assert not failed
    assert result["probed"] == ["memory_total_mib", "cpu_cores", "disk_free_mib"]
    assert result["hardware"]["memory_total_mib"] > 0 and result["hardware"]["cpu_cores"] >= 1
    assert result["resources"]["disk"]["available"] > 0


def test_memory_in_use_is_warned_about(monkeypatch):
    gpus = [{"name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559, "memory_used_mib": 40000,
             "compute_capability": "9.0"}]
    _failed, result = run_module(monkeypatch, capacity_check, {"params": "7B", "precision": "bf16",
                                                               "hardware": declared(gpus=gpus)})
    assert any("40000 MiB of 81559 MiB in use" in w for w in result["_warnings"])
    assert result["verdict"] == "fits"  # planning uses total memory


@pytest.mark.parametrize("hardware, field", [
    ({"gpus": [{"memory_total_mib": -1}]}, "hardware.gpus[0].memory_total_mib"),
    ({"gpus": [{"compute_capability": "9.0"}]}, "hardware.gpus[0].memory_total_mib"),
    ({"cpu_cores": 0}, "hardware.cpu_cores"),
    ({"gpu_model": "Voodoo 5", "gpu_count": 2}, "hardware.gpus[0].name"),
])
def test_malformed_hardware_names_the_field(monkeypatch, hardware, field):
    """Values of the right type that make no sense: capacity.normalize_hardware names the field and what it wants."""
    failed, result = run_module(monkeypatch, capacity_check, {"params": "7B", "precision": "fp16",
                                                              "hardware": hardware})
    assert failed
    assert result["msg"].startswith(field + ":"), result["msg"]
    assert "expected" in result["msg"]


@pytest.mark.parametrize("hardware, words", [
    # Keys and types: the argument spec's suboptions refuse them before anything is probed, naming the key, where it
    # was found and what is accepted.
    ({"gpus": [{"memory_total_mib": "lots"}]}, ["'memory_total_mib'", "'hardware -> gpus'", "int"]),
    ({"gpu_count": "two"}, ["'gpu_count'", "'hardware'", "int"]),
    ({"gpus": [{"name": "H100", "unified_memory": "maybe"}]}, ["'unified_memory'", "Valid booleans"]),
    ({"gpus": 8}, ["'gpus'", "must be a list"]),
    ({"gpus": [{"memory_total_mib": 1000, "vram": 3}]},
     ["hardware.gpus.vram", "Supported parameters include", "memory_total_mib"]),
    ({"ram": 1000}, ["hardware.ram", "Supported parameters include", "cpu_cores, disk_free_mib"]),
    ({"gpu_model": "H100", "gpu_count": 2, "gpus": []}, ["mutually exclusive", "gpus|gpu_model", "in hardware"]),
])
def test_hardware_keys_and_types_come_from_the_argument_spec(monkeypatch, hardware, words):
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda *a, **k: pytest.fail("probed a tool"))
    failed, result = run_module(monkeypatch, capacity_check, {"params": "7B", "precision": "fp16",
                                                              "hardware": hardware})
    assert failed
    for word in words:
        assert word in result["msg"], result["msg"]


def test_declared_gpu_list_with_types_converted(monkeypatch):
    """Suboptions convert what YAML or -e gave as text; keys not declared stay absent (probed, or from the name)."""
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda *a, **k: pytest.fail("probed a tool"))
    failed, result = run_module(monkeypatch, capacity_check, {
        "params": "7B", "precision": "bf16", "probe": False,
        "hardware": dict(FULL_HOST, cpu_cores="64",
                         gpus=[{"name": "L40S"}, {"memory_total_mib": "46068", "compute_capability": 8.9}])})
    assert not failed, result.get("msg")
    assert [g["memory_total_mib"] for g in result["hardware"]["gpus"]] == [46068, 46068]
    assert [g["index"] for g in result["hardware"]["gpus"]] == [0, 1]
    assert result["hardware"]["gpus"][1]["compute_capability"] == "8.9"
    assert result["hardware"]["cpu_cores"] == 64 and result["probed"] == []


def _config(name):
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs", name + ".json")
    with open(path) as handle:
        return json.load(handle)


def test_detailed_per_gpu_check_on_declared_hardware(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda *a, **k: pytest.fail("probed a tool"))
    failed, result = run_module(monkeypatch, capacity_check, {
        "method": "detailed", "config": _config("llama-3.1-8b"), "context_length": 16000, "concurrency": 8,
        "hardware": declared(gpu_model="H100", gpu_count=8)})
    assert not failed, result.get("msg")
    assert result["verdict"] == "fits" and result["gpus_needed"] == 1
    plan = result["gpu_plan"]
    assert plan["method"] == "detailed" and plan["max_concurrency"] >= 8
    assert result["sizing"]["method"] == "detailed"
    assert "per GPU" in result["resources"]["gpu_memory"]["reason"]


def test_detailed_tp_exclusion_is_a_reason(monkeypatch):
    failed, result = run_module(monkeypatch, capacity_check, {
        "method": "detailed", "config": _config("qwen2.5-7b"), "fail_on": "never",
        "hardware": declared(gpu_model="RTX 3060", gpu_count=1)})
    assert not failed and result["verdict"] == "insufficient"
    assert "28 attention heads do not divide by 8" in result["resources"]["gpu_memory"]["reason"]


PROD_CANDIDATES = ["Qwen/Qwen2.5-32B-Instruct", "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8", "Qwen/Qwen2.5-7B-Instruct",
                   "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8"]


def candidate_args(names=None, default_precision="bf16"):
    """What the preflight role passes: model_candidates(check_args=true), read once on the controller."""
    return model_selection.check_specs(model_selection.normalize_candidates(names or PROD_CANDIDATES,
                                                                            default_precision))


def test_candidates_are_judged_against_one_probe(monkeypatch, nvidia_smi):
    calls = nvidia_smi("a100-pcie-40gb-x2.csv")
    failed, result = run_module(monkeypatch, capacity_check, {
        "candidates": candidate_args(), "scenario": "enterprise", "hardware": FULL_HOST, "fail_on": "never"})
    assert not failed, result
    assert len(calls) == 1  # one probe for four candidates
    assert result["verdicts"] == {
        "Qwen/Qwen2.5-32B-Instruct": "insufficient", "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8": "fits",
        "Qwen/Qwen2.5-7B-Instruct": "fits", "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8": "insufficient"}
    selection = result["selection"]
    assert selection["chosen"] == "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8"
    # The top level is the chosen candidate's own check, as a one-model check of it would return.
    assert result["verdict"] == "fits" and result["gpus_needed"] == 2
    assert result["sizing"]["model"] == "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8"
    assert result["hardware"]["gpus"][0]["name"] == "NVIDIA A100-PCIE-40GB" and result["probed"] == ["gpus"]
    rejected = dict((r["key"], r["rule"]) for r in selection["rejected"])
    assert rejected == {"Qwen/Qwen2.5-32B-Instruct": "resources", "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8": "capability"}
    # Inputs (configs, header summaries) are not sent back once per candidate per host.
    assert all(e["config"] is None and e["weights"] is None for e in selection["evaluations"])


def test_candidates_none_usable_fails_on_insufficient(monkeypatch):
    failed, result = run_module(monkeypatch, capacity_check, {
        "candidates": candidate_args(["Qwen/Qwen2.5-32B-Instruct"]), "hardware": declared(gpus=[])})
    assert failed
    assert result["msg"].startswith("no candidate can be used on this host (insufficient): ")
    assert result["selection"]["chosen"] is None and result["sizing"] is None
    assert result["reasons"] == ["Qwen/Qwen2.5-32B-Instruct: no GPU found; the model needs 96.0 GB of GPU memory"]


def test_candidates_and_a_model_are_exclusive(monkeypatch):
    failed, result = run_module(monkeypatch, capacity_check, {"candidates": candidate_args(), "model": "o/M-7B-AWQ"})
    assert failed and "mutually exclusive" in result["msg"] and "candidates" in result["msg"]


def test_unknown_scenario_names_the_accepted_ones(monkeypatch):
    failed, result = run_module(monkeypatch, capacity_check, {"candidates": candidate_args(), "scenario": "huge",
                                                              "hardware": declared(gpus=[])})
    assert failed and "scenario: invalid value 'huge'" in result["msg"] and "enterprise" in result["msg"]


def test_single_model_outside_the_band_is_checked_as_given(monkeypatch):
    # A model given alone is not rejected by the scenario's band (that chooses among candidates): it is chosen where
    # it can be deployed, with a note, so every rendering of the report agrees with the verdict.
    failed, result = run_module(monkeypatch, capacity_check, {
        "model": "Qwen/Qwen2.5-7B-Instruct", "precision": "bf16", "scenario": "complex",
        "hardware": declared(gpu_model="H100", gpu_count=8)})
    assert not failed and result["verdict"] == "fits"
    selection = result["selection"]
    assert selection["chosen"] == "Qwen/Qwen2.5-7B-Instruct" and selection["rejected"] == []
    assert selection["scenario"]["name"] == "complex"
    assert "7B is outside the complex scenario's size band (32B~70B)" in selection["evaluations"][0]["notes"][0]
    assert "verdicts" not in result


@pytest.mark.parametrize("hardware, target, missing", [
    (None, "gpu", ["gpus (or gpu_model and gpu_count)", "memory_total_mib (host RAM)", "cpu_cores",
                   "disk_free_mib (free disk)"]),
    ({"gpu_model": "H100", "gpu_count": 8, "memory_total_mib": 1048576}, "gpu", ["cpu_cores", "disk_free_mib (free disk)"]),
    ({"memory_total_mib": 1048576, "cpu_cores": 8}, "cpu", ["disk_free_mib (free disk)"]),
])
def test_without_probing_undeclared_parts_fail_and_nothing_is_measured(monkeypatch, hardware, target, missing):
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda *a, **k: pytest.fail("probed a tool"))
    monkeypatch.setattr(host_resources, "probe_memory", lambda *a: pytest.fail("probed the RAM"))
    monkeypatch.setattr(host_resources, "probe_cpu_cores", lambda *a: pytest.fail("probed the cores"))
    monkeypatch.setattr(host_resources, "probe_disk", lambda *a: pytest.fail("probed the disk"))
    args = {"params": "7B", "precision": "bf16", "probe": False, "target": target}
    if hardware:
        args["hardware"] = hardware
    failed, result = run_module(monkeypatch, capacity_check, args)
    assert failed and result["field"] == "hardware"
    assert "not declared: %s;" % ", ".join(missing) in result["msg"]


def test_without_probing_a_declared_host_is_judged(monkeypatch):
    monkeypatch.setattr(host_resources, "probe_cpu_cores", lambda *a: pytest.fail("probed the cores"))
    failed, result = run_module(monkeypatch, capacity_check, {
        "candidates": candidate_args(), "probe": False, "hardware": declared(gpu_model="H100", gpu_count=8)})
    assert not failed and result["probed"] == [] and result["selection"]["chosen"] == "Qwen/Qwen2.5-32B-Instruct"


@pytest.mark.parametrize("args", [
    {"method": "detailed", "config_name": "llama-3.1-8b", "hardware": declared(gpu_model="H100", gpu_count=1)},
    {"method": "detailed", "config_name": "llama-3.1-8b", "gpu_memory_utilization": 1.0,
     "hardware": declared(gpu_model="RTX 4090", gpu_count=1)},
    {"params": "7B", "precision": "bf16", "target": "cpu", "hardware": declared(gpus=[])},
    {"candidates": [{"model": "Qwen/Qwen2.5-7B-Instruct", "precision": "bf16"}],
     "hardware": declared(gpu_model="L40S", gpu_count=2)},
])
def test_every_returned_key_is_documented(monkeypatch, args):
    import yaml
    args = dict(args, fail_on="never")
    if "config_name" in args:
        args["config"] = _config(args.pop("config_name"))
    failed, result = run_module(monkeypatch, capacity_check, args)
    assert not failed, result.get("msg")
    documented = yaml.safe_load(capacity_check.RETURN)
    assert set(result) - {"changed", "_warnings", "warnings"} <= set(documented)
    if result["gpu_plan"] and "engine_memory" in result["gpu_plan"]:
        contains = documented["gpu_plan"]["contains"]
        assert {"engine_memory", "start_refused"} <= set(contains)
        assert set(result["gpu_plan"]) & set(contains) == {"engine_memory", "start_refused"}
        if args.get("gpu_memory_utilization") == 1.0:
            assert result["gpu_plan"]["start_refused"].startswith("gpu_memory_utilization 1.0 leaves")
            assert result["gpu_plan"]["engine_memory"]["starts"] is False


# ----------------------------------------------------------------------------------------- judge=controller
CANDIDATE_NAMES = ["Qwen/Qwen2.5-32B-Instruct", "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8", "Qwen/Qwen2.5-7B-Instruct"]


def _candidates():
    from ansible_collections.llmops.deploy.plugins.filter.model_selection import model_candidates
    return model_candidates(CANDIDATE_NAMES, "bf16", check_args=True)


@pytest.mark.parametrize("options", [
    {"params": "70B", "precision": "fp8", "hardware": FULL_HOST},
    {"candidates": "CANDIDATES", "scenario": "enterprise", "fail_on": "never", "hardware": {"cpu_cores": 64}},
])
def test_judged_on_the_controller_the_result_is_the_hosts_own(monkeypatch, nvidia_smi, options):
    """judge=controller only probes; capacity_plans then gives what judge=host gives on the same host."""
    from ansible_collections.llmops.deploy.plugins.filter.model_selection import capacity_plans

    nvidia_smi("h100-80gb-hbm3-x8.csv")
    if options.get("candidates") == "CANDIDATES":
        options = dict(options, candidates=_candidates())
    monkeypatch.setattr(host_resources, "probe_memory", lambda: {"memory_total_mib": 2063937})
    monkeypatch.setattr(host_resources, "probe_disk", lambda path: {"disk_free_mib": 3500000})
    failed, on_host = run_module(monkeypatch, capacity_check, options)
    assert not failed
    failed, probe = run_module(monkeypatch, capacity_check, dict(options, judge="controller"))
    assert not failed
    # only the probe comes back: no verdict, no sizing
    assert set(k for k in probe if not k.startswith("_")) - {"invocation"} == {
        "changed", "hardware", "probed", "gpu_source", "options"}
    assert probe["probed"] == on_host["probed"] and probe["gpu_source"] == "nvidia-smi"
    assert "hardware" not in probe["options"] and "judge" not in probe["options"]
    plan = capacity_plans({"node": probe})["node"]
    for key in set(k for k in on_host if not k.startswith("_")) - {"invocation"}:
        assert plan[key] == on_host[key], key


def test_judge_controller_imports_no_judgement_code_on_the_host(monkeypatch, nvidia_smi):
    """What a host compiles for judge=controller is the probe: the judgement's modules are never imported."""
    import subprocess
    import sys
    code = ("import sys; from ansible_collections.llmops.deploy.plugins.modules import capacity_check; "
            "print(sorted(m.rsplit('.', 1)[1] for m in sys.modules if '.module_utils.' in m and 'llmops' in m))")
    out = subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))).stdout
    loaded = set(json.loads(out.replace("'", '"')))
    assert {"check_spec", "model_spec", "gpu_facts", "host_resources"} <= loaded
    assert not loaded & {"model_selection", "capacity", "model_names", "detailed_sizing", "architecture", "sizing",
                         "engine_memory", "precision"}, loaded


def test_judge_controller_needs_probing(monkeypatch):
    failed, result = run_module(monkeypatch, capacity_check, {
        "params": "7B", "judge": "controller", "probe": False, "hardware": declared(gpu_model="H100", gpu_count=1)})
    assert failed and result["field"] == "judge" and "capacity_plan filter" in result["msg"]


def test_judge_controller_still_refuses_bad_options_on_the_host(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda *a, **k: pytest.fail("probed before checking"))
    failed, result = run_module(monkeypatch, capacity_check, {"params": "7B", "judge": "controller",
                                                              "fail_on": "sometimes"})
    assert failed and "fail_on" in result["msg"] and "insufficient, tight, never" in result["msg"]


def test_judge_controller_needs_no_model_and_the_candidates_can_be_given_once(monkeypatch, nvidia_smi):
    """The probe carries no model; the candidates given once to capacity_plans judge every host as if each had
    been sent them, and a host's own option wins over the common one."""
    from ansible_collections.llmops.deploy.plugins.filter.model_selection import capacity_plans

    nvidia_smi("h100-80gb-hbm3-x8.csv")
    failed, probe = run_module(monkeypatch, capacity_check, {"judge": "controller", "hardware": FULL_HOST,
                                                             "fail_on": "never", "reserve": 0.3})
    assert not failed and probe["options"]["reserve"] == 0.3 and "candidates" not in probe["options"]
    failed, on_host = run_module(monkeypatch, capacity_check, {
        "candidates": _candidates(), "scenario": "enterprise", "hardware": FULL_HOST, "fail_on": "never",
        "reserve": 0.3})
    plans = capacity_plans({"node": probe}, {"candidates": _candidates(), "scenario": "enterprise", "reserve": 0.1})
    for key in set(k for k in on_host if not k.startswith("_")) - {"invocation"}:
        assert plans["node"][key] == on_host[key], key


def test_judge_host_still_needs_a_model(monkeypatch):
    failed, result = run_module(monkeypatch, capacity_check, {"hardware": declared(gpu_model="H100", gpu_count=1)})
    assert failed and "judge is host" in result["msg"] and "candidates" in result["msg"]


A100_40X2 = {"gpu_model": "A100 40GB", "gpu_count": 2, "memory_total_mib": 524288, "cpu_cores": 32,
             "disk_free_mib": 1800000}


def test_capacity_plan_filter_is_the_module_without_probing(monkeypatch):
    """The controller-side judgement (preflight_probe=false) gives what capacity_check gives for declared hardware."""
    from ansible_collections.llmops.deploy.plugins.filter.model_selection import capacity_plan, model_candidates

    # the prod inventory's candidates
    specs = model_candidates(["Qwen/Qwen2.5-32B-Instruct", "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8",
                              "Qwen/Qwen2.5-32B-Instruct-AWQ", "Qwen/Qwen2.5-7B-Instruct",
                              "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8"],
                             "bf16", check_args=True)
    options = {"candidates": specs, "scenario": "enterprise", "fail_on": "never", "reserve": "0.2"}
    planned = capacity_plan(A100_40X2, options)
    failed, probed = run_module(monkeypatch, capacity_check, dict(options, hardware=A100_40X2, probe=False))
    assert not failed and "failed" not in planned
    for key in ("verdict", "gpus_needed", "gpu_plan", "reasons", "verdicts", "hardware", "probed"):
        assert planned[key] == probed[key], key
    assert planned["selection"]["chosen"] == probed["selection"]["chosen"] == "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8"
    # None means "not given", as omit does for the module.
    one = capacity_plan(declared(gpu_model="H100 80GB HBM3", gpu_count=8),
                        {"model": "Qwen/Qwen2.5-7B-Instruct", "default_precision": "bf16", "candidates": None,
                         "scenario": None})
    assert one["verdict"] == "fits" and one["sizing"]["precision"] == "bf16" and one["selection"]["chosen"]
