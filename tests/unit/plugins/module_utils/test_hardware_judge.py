# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_selection.hardware_judge sizes each candidate the one way capacity_check does (sizing.size_model_options)."""

import json
import os

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import capacity, model_selection, sizing

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "configs")
H100 = {"gpu_model": "H100 80GB HBM3", "gpu_count": 8, "memory_total_mib": 2097152, "cpu_cores": 112,
        "disk_free_mib": 7000000}
RTX4090 = {"gpu_model": "RTX 4090", "gpu_count": 1, "memory_total_mib": 65536, "cpu_cores": 16,
           "disk_free_mib": 900000}
CPU = {"gpus": [], "memory_total_mib": 262144, "cpu_cores": 64, "disk_free_mib": 1800000}


def _config(name):
    with open(os.path.join(CONFIGS, name), encoding="utf-8") as handle:
        return json.load(handle)


def candidates():
    return model_selection.normalize_candidates([
        "Qwen/Qwen2.5-32B-Instruct", "Qwen/Qwen2.5-32B-Instruct-AWQ", "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8",
        {"model": "Qwen/Qwen2.5-7B-Instruct", "config": _config("qwen2.5-7b.json")},
        {"params": "70B", "precision": "int8"}], "bf16")


@pytest.mark.parametrize("hardware", [H100, RTX4090])
@pytest.mark.parametrize("method", ["seed", "auto"])
def test_gpu_plans_are_what_the_sizing_of_each_candidate_gives(hardware, method):
    judge = model_selection.hardware_judge(hardware, reserve=0.25, method=method)
    for candidate in candidates():
        result = judge(candidate)
        # The sizing the judge used before it went through size_model_options: the same figures.
        direct = sizing.size_model(model=candidate.get("model"), params=candidate["params"],
                                   precision=candidate["precision"], method=method, reserve=0.25,
                                   config=candidate.get("config"))
        assert result["sizing"] == direct, candidate["key"]
        expected = capacity.assess(direct, hardware, reserve=0.25)
        assert (result["verdict"], result["gpus_needed"], result["reasons"]) == (
            expected["verdict"], expected["gpus_needed"], expected["reasons"]), candidate["key"]


@pytest.mark.parametrize("hardware, target", [(H100, "gpu"), (RTX4090, "gpu"), (CPU, "cpu")])
def test_same_choice_as_capacity_check_makes_on_the_host(hardware, target):
    specs = model_selection.check_specs(candidates())
    checked = model_selection.check_candidates(specs, hardware, {"method": "auto", "target": target}, reserve=0.2,
                                               target=target, scenario="enterprise")
    judged = model_selection.select(candidates(), model_selection.hardware_judge(
        hardware, reserve=0.2, target=target, method="auto"), scenario="enterprise")
    assert judged["chosen"] == checked["selection"]["chosen"]
    assert [(e["key"], e["verdict"], e["status"], e["reason"]) for e in judged["evaluations"]] == [
        (e["key"], e["verdict"], e["status"], e["reason"]) for e in checked["selection"]["evaluations"]]


def test_cpu_target_is_planned_as_host_ram_and_cores():
    judge = model_selection.hardware_judge(CPU, target="cpu")
    result = judge(candidates()[0])
    plan = result["sizing"]["cpu_plan"]
    assert result["target"] == "cpu" and result["verdict"] == "fits" and result["gpus_needed"] == 0
    assert plan["weights_gb"] == 64.0 and plan["guide_cpu_memory_gb"] == 128.0
    assert not [key for key in result["sizing"] if "gpu" in key]
    assert result["resources"]["cpu_memory"]["required"] == plan["host_ram_gb"]


def test_a_candidate_that_cannot_be_sized_is_a_failed_assessment():
    judge = model_selection.hardware_judge(H100)
    result = judge({"key": "x", "model": None, "params": 7 * 10 ** 9, "precision": "fp5"})
    assert result["failed"] is True and "precision" in result["msg"] and "fp5" in result["msg"]
