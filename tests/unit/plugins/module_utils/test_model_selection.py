# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model selection (guide chapter 3): tables of hosts, candidates and scenarios with the expected choice and reasons."""

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import model_selection
from ansible_collections.llmops.deploy.plugins.module_utils.model_selection import (
    PREFERENCES,
    REJECTION_RULES,
    hardware_judge,
    normalize_candidates,
    select,
    select_from_results,
)
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

# Declared hosts (the shape of capacity_check's hardware option).
HOSTS = {
    "h100x8": {"gpu_model": "H100 80GB HBM3", "gpu_count": 8, "memory_total_mib": 2097152, "cpu_cores": 112,
               "disk_free_mib": 7000000},
    "a100-80x4": {"gpu_model": "A100 80GB", "gpu_count": 4, "memory_total_mib": 1048576, "cpu_cores": 64,
                  "disk_free_mib": 3500000},
    "a100-40x2": {"gpu_model": "A100 40GB", "gpu_count": 2, "memory_total_mib": 524288, "cpu_cores": 32,
                  "disk_free_mib": 1800000},
    "l40s-x2": {"gpu_model": "L40S", "gpu_count": 2, "memory_total_mib": 524288, "cpu_cores": 32,
                "disk_free_mib": 1800000},
    "4090x1": {"gpu_model": "RTX 4090", "gpu_count": 1, "memory_total_mib": 65536, "cpu_cores": 16,
               "disk_free_mib": 900000},
    "4090x2": {"gpu_model": "RTX 4090", "gpu_count": 2, "memory_total_mib": 131072, "cpu_cores": 32,
               "disk_free_mib": 900000},
    "cpu": {"gpus": [], "memory_total_mib": 262144, "cpu_cores": 64, "disk_free_mib": 1800000},
    "mi250x-x8": {"gpu_model": "MI250X", "gpu_count": 8, "memory_total_mib": 2097152, "cpu_cores": 128,
                  "disk_free_mib": 7000000},
    "small-ram": {"gpu_model": "A100 80GB", "gpu_count": 2, "memory_total_mib": 25600, "cpu_cores": 32,
                  "disk_free_mib": 1800000},
}

# The prod inventory's candidates: sibling variants of Qwen2.5-32B, a 7B, and the guide's DeepSeek examples.
PROD = ["Qwen/Qwen2.5-32B-Instruct", "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8", "Qwen/Qwen2.5-32B-Instruct-AWQ",
        "Qwen/Qwen2.5-7B-Instruct", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
        "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8"]
SMALL = ["Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct-AWQ", "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int8",
         "Qwen/Qwen2.5-1.5B-Instruct"]
MID = ["Qwen/Qwen2.5-14B-Instruct", "Qwen/Qwen2.5-14B-Instruct-GPTQ-Int8"]


def choose(candidates, host, scenario=None, **kwargs):
    return select(candidates, hardware_judge(HOSTS[host], **kwargs), scenario=scenario, default_precision="bf16")


def by_key(selection):
    return dict((e["key"], e) for e in selection["evaluations"])


# (candidates, host, scenario, expected choice, why: the criterion that beat the runner-up)
CHOICES = [
    # Data-centre GPUs with room: the 16-bit 32B, the first listed of the two equal ones.
    (PROD, "h100x8", "enterprise", "Qwen/Qwen2.5-32B-Instruct"),
    (PROD, "a100-80x4", "enterprise", "Qwen/Qwen2.5-32B-Instruct"),
    # FP16 of a 32B model does not fit 2 x A100 40GB: its INT8 sibling, not the smaller 7B at BF16 (guide 6.2).
    (PROD, "a100-40x2", "enterprise", "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8"),
    (PROD, "a100-40x2", "complex", "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8"),
    # L40S is Ada (8.9): FP8 runs, and data-centre GPUs take the highest precision that fits (FP8 over INT8).
    (PROD, "l40s-x2", "enterprise", "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8"),
    # One RTX 4090: the 7B fits with the reserve; the 32B AWQ (29 GB with its scales, as published) does not.
    (PROD, "4090x1", "enterprise", "Qwen/Qwen2.5-7B-Instruct"),
    # ... and 'complex' keeps only 32B+ models, none of which one RTX 4090 holds.
    (PROD, "4090x1", "complex", None),
    # A 32B INT4 of the guide's table 2.2 (16 GB, 24 GB with x 1.5) is only tight there, and the one left.
    (["Qwen/Qwen2.5-7B-Instruct", {"model": "Qwen/Qwen2.5-32B-Instruct", "precision": "int4", "label": "q32-int4"}],
     "4090x1", "complex", "q32-int4"),
    (PROD, "cpu", "enterprise", None),
    # Without a scenario: no band; the larger model wins over precision.
    (PROD, "4090x2", None, "Qwen/Qwen2.5-32B-Instruct-AWQ"),
    # Edge (1.5B~7B, INT4/INT8): recommended precisions first, then on consumer GPUs the more accurate low one.
    (SMALL, "4090x1", "edge", "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int8"),
    (SMALL, "h100x8", "edge", "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int8"),
    # Mixed deployment (guide 6.2): consumer GPUs take INT8, data-centre GPUs BF16, of the same 14B model.
    (MID, "4090x2", "enterprise", "Qwen/Qwen2.5-14B-Instruct-GPTQ-Int8"),
    (MID, "h100x8", "enterprise", "Qwen/Qwen2.5-14B-Instruct"),
    # AMD MI250X (gfx90a) has no FP8: the BF16 32B on a data-centre GPU.
    (PROD, "mi250x-x8", "enterprise", "Qwen/Qwen2.5-32B-Instruct"),
    # Host RAM too small for anything but the 7B (guide 2.1: RAM = 2 x parameter memory).
    (PROD, "small-ram", "enterprise", None),
]


@pytest.mark.parametrize("candidates, host, scenario, expected", CHOICES)
def test_choice_tables(candidates, host, scenario, expected):
    selection = choose(candidates, host, scenario)
    assert selection["chosen"] == expected, selection["justification"]
    assert selection["chosen_model"] == (selection["chosen_candidate"] or {}).get("model")
    if expected:
        assert selection["ranked"][0] == expected and selection["chosen_candidate"]["status"] == "chosen"
        assert selection["justification"].startswith(expected)
    else:
        assert selection["ranked"] == [] and selection["verdict"] == "insufficient"
    # Every rejected candidate has a reason, every candidate is either ranked or rejected.
    assert sorted(selection["ranked"] + [r["key"] for r in selection["rejected"]]) == sorted(
        e["key"] for e in selection["evaluations"])
    assert all(r["reason"] for r in selection["rejected"])


# (candidates, host, scenario, candidate, rule, reason)
REASONS = [
    (PROD, "a100-40x2", "complex", "Qwen/Qwen2.5-7B-Instruct", "band",
     "7B is outside the complex scenario's size band (32B~70B)"),
    (SMALL, "4090x1", "edge", "Qwen/Qwen2.5-1.5B-Instruct", None, None),  # 1.5B is the band's lower end: inside
    (PROD, "a100-80x4", "enterprise", "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8", "capability",
     "FP8 needs compute capability 8.9, A100 80GB has 8.0"),
    (PROD, "mi250x-x8", "enterprise", "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8", "capability",
     "FP8 needs an AMD GPU of gfx94*/gfx95*/gfx12*; this GPU is gfx90a (MI250X)"),
    (PROD, "a100-40x2", "enterprise", "Qwen/Qwen2.5-32B-Instruct", "resources",
     "needs 96.0 GB of GPU memory, host has 85.899 GB (2 x 40.0 GiB; 4 GPU(s) needed with the reserve)"),
    (PROD, "4090x1", "enterprise", "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8", "resources",
     "needs 51.483 GB of GPU memory, host has 25.757 GB (1 x 23.99 GiB; 4 GPU(s) needed with the reserve)"),
    (PROD, "cpu", "enterprise", "Qwen/Qwen2.5-7B-Instruct", "resources",
     "no GPU found; the model needs 21.0 GB of GPU memory"),
    (PROD, "small-ram", "enterprise", "Qwen/Qwen2.5-32B-Instruct-AWQ", "resources",
     "needs 38.656 GB of host RAM, host has 26.844 GB"),
]


@pytest.mark.parametrize("candidates, host, scenario, key, rule, reason", REASONS)
def test_rejection_reasons(candidates, host, scenario, key, rule, reason):
    evaluation = by_key(choose(candidates, host, scenario))[key]
    if rule is None:
        assert evaluation["rule"] is None and evaluation["status"] in ("eligible", "chosen")
        assert evaluation["reason"].startswith("fits with the 20% reserve: GPU memory: needs 4.5 GB")
    else:
        assert (evaluation["status"], evaluation["rule"], evaluation["reason"]) == ("rejected", rule, reason)


def test_the_first_rejection_rule_is_the_reason_and_all_are_kept():
    # 32B FP8 on an A100 40GB box for 'edge': outside the band first, and it could not run FP8 either.
    evaluation = by_key(choose(PROD, "a100-40x2", "edge"))["okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8"]
    assert evaluation["rule"] == "band"
    assert evaluation["reasons"] == ["32B is outside the edge scenario's size band (1.5B~7B)",
                                     "FP8 needs compute capability 8.9, A100 40GB has 8.0"]


def test_int8_for_a_32b_model_when_fp16_does_not_fit():
    selection = choose(PROD, "a100-40x2", "enterprise")
    assert selection["chosen"] == "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8"
    assert "the higher-precision variant of the same model (Qwen/Qwen2.5-32B-Instruct) cannot be used here, and " \
           "the guide (6.2) quantises 32B+ models to INT8 to halve their GPU memory" in selection["justification"]
    over = dict((p["key"], (p["criterion"], p["why"])) for p in selection["preferred_over"])
    assert over == {
        "Qwen/Qwen2.5-7B-Instruct": ("size", "32B is a larger model than 7B"),
        "Qwen/Qwen2.5-32B-Instruct-AWQ": (
            "scenario_precision", "INT4 is not a precision the enterprise scenario recommends (INT8/FP8/FP16)"),
    }
    # The same host with FP16 room (4 x A100 80GB) keeps FP16: INT8 is only for when FP16 does not fit.
    assert choose(PROD, "a100-80x4", "enterprise")["chosen"] == "Qwen/Qwen2.5-32B-Instruct"


def test_fits_before_tight_and_mixed_deployment_words():
    selection = choose(PROD[:3] + ["Qwen/Qwen2.5-7B-Instruct", {"model": "Qwen/Qwen2.5-32B-Instruct",
                                                                "precision": "int4", "label": "q32-int4"}],
                       "4090x1", "enterprise")
    over = dict((p["key"], p["why"]) for p in selection["preferred_over"])
    assert over == {"q32-int4": "it is only tight (no room for the reserve)"}
    assert selection["gpu_class"] == "consumer"
    consumer = choose(MID, "4090x2", "enterprise")["preferred_over"]
    assert consumer == [{"key": "Qwen/Qwen2.5-14B-Instruct", "criterion": "gpu_class_precision",
                         "why": "consumer GPUs take low precision (guide 6.2): INT8 rather than BF16"}]
    datacentre = choose(MID, "h100x8", "enterprise")["preferred_over"]
    assert datacentre == [{"key": "Qwen/Qwen2.5-14B-Instruct-GPTQ-Int8", "criterion": "gpu_class_precision",
                           "why": "data-centre GPUs take the highest precision that fits (guide 6.2): BF16 rather "
                                  "than INT8"}]
    edge = choose(SMALL, "4090x1", "edge")["preferred_over"]
    assert edge[0] == {"key": "Qwen/Qwen2.5-7B-Instruct-AWQ", "criterion": "gpu_class_precision",
                       "why": "of the low precisions the more accurate one: INT8 rather than INT4"}


def test_ties_are_broken_by_list_order_both_ways():
    pair = ["Qwen/Qwen2.5-32B-Instruct", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"]
    assert choose(pair, "h100x8", "enterprise")["chosen"] == pair[0]
    flipped = choose(list(reversed(pair)), "h100x8", "enterprise")
    assert flipped["chosen"] == pair[1]
    why = "the two are equal on every other criterion and %s is listed first (the list order is the operator's " \
          "preference)" % pair[1]
    assert flipped["preferred_over"] == [{"key": pair[0], "criterion": "order", "why": why}]
    # Read whole, the sentence names the chosen one as the earlier of the two.
    assert "Preferred over %s because the two are equal on every other criterion and %s is listed first" % (
        pair[0], pair[1]) in flipped["justification"]


def _assessment(verdict, gpus_needed, name="NVIDIA H100 80GB HBM3", cc="9.0"):
    return {"verdict": verdict, "gpus_needed": gpus_needed, "target": "gpu", "reasons": ["r"],
            "resources": {"gpu_memory": {"verdict": verdict, "reason": "GPU memory: %s" % verdict}},
            "gpu_plan": {"gpus": gpus_needed, "gpus_minimum": gpus_needed, "description": "%d GPUs" % gpus_needed},
            "hardware": {"gpus": [{"name": name, "vendor": "nvidia", "compute_capability": cc,
                                   "memory_total_mib": 81559}]}}


def test_fewer_gpus_decides_when_all_else_is_equal():
    # A precision given for a name that does not carry one is part of the key.
    candidates = [{"model": "o/A-32B", "precision": "fp16"}, {"model": "o/B-32B", "precision": "fp16"}]
    selection = select(candidates, [_assessment("fits", 4), _assessment("fits", 2)])
    assert selection["chosen"] == "o/B-32B (FP16)" and selection["chosen_model"] == "o/B-32B"
    assert selection["preferred_over"][0]["criterion"] == "gpus"
    assert selection["preferred_over"][0]["why"] == "it needs 4 GPU(s) where this one needs 2"


def test_unknown_compute_capability_is_not_a_rejection():
    selection = select([{"model": "o/M-7B-FP8"}], [_assessment("fits", 1, cc=None)])
    assert selection["chosen"] == "o/M-7B-FP8"


def test_a_host_that_could_not_be_checked():
    candidates = ["o/A-7B-AWQ", "o/B-7B-AWQ"]
    down = {"unreachable": True, "msg": "ssh: no route to host"}
    selection = select(candidates, [down, down])
    assert (selection["chosen"], selection["verdict"]) == (None, "unreachable")
    assert selection["rejected"] == [
        {"key": "o/A-7B-AWQ", "rule": "unchecked", "reason": "host unreachable: ssh: no route to host"},
        {"key": "o/B-7B-AWQ", "rule": "unchecked", "reason": "host unreachable: ssh: no route to host"}]
    expected = "No candidate can be used on this host: every candidate: host unreachable: ssh: no route to host."
    assert selection["justification"] == expected
    failed = select(candidates, [{"failed": True, "msg": "nvidia-smi crashed"}, None])
    assert failed["verdict"] == "failed"
    assert [r["reason"] for r in failed["rejected"]] == ["the check failed: nvidia-smi crashed",
                                                         "not checked: the host did not report"]
    # One candidate failing does not stop the others.
    mixed = select(candidates, [{"failed": True, "msg": "boom"}, _assessment("tight", 1)])
    assert (mixed["chosen"], mixed["verdict"]) == ("o/B-7B-AWQ", "tight")


def test_select_from_a_registered_loop():
    cands = normalize_candidates(["o/A-7B-AWQ", "o/B-7B"], "bf16")
    items = [dict(_assessment("fits", 1), item=cands[0]), dict(_assessment("fits", 1), item=cands[1])]
    selection = select_from_results(items, "edge")
    assert selection["chosen"] == "o/A-7B-AWQ" and selection["assessment"] is items[0]
    none = select_from_results([dict(_assessment("insufficient", 8), item=cands[0])], "edge")
    assert none["assessment"] == {"verdict": "insufficient", "gpus_needed": None, "gpu_plan": None,
                                  "reasons": ["o/A-7B-AWQ: GPU memory: insufficient"]}
    assert model_selection.loop_items({"results": [], "skipped": True}) is None
    assert model_selection.loop_items({"verdict": "fits"}) is None


def test_cpu_target_and_host_classes():
    cpu = select(["o/M-1.5B-AWQ"], hardware_judge(HOSTS["cpu"], target="cpu"))
    assert cpu["gpu_class"] == "cpu" and cpu["chosen"] == "o/M-1.5B-AWQ"
    assert model_selection.host_gpu_class({"gpus": None}) == "unknown"
    assert model_selection.host_gpu_class({"gpus": []}) == "none"
    mixed = {"gpus": [{"name": "NVIDIA GeForce RTX 4090"}, {"name": "NVIDIA H100 80GB HBM3"}]}
    assert model_selection.host_gpu_class(mixed) == "mixed"


def test_candidates_from_names_and_dicts():
    found = normalize_candidates([
        "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8",
        {"model": "Qwen/Qwen2.5-32B-Instruct", "precision": "INT8", "label": "qwen32-int8"},
        {"model": "Qwen/Qwen2.5-32B-Instruct-AWQ", "precision": "int4"},
        {"params": "70B", "precision": "fp16"},
        "Qwen/Qwen2.5-7B-Instruct",
    ], default_precision="BF16")
    assert [(c["key"], c["params_label"], c["precision"], c["precision_source"]) for c in found] == [
        ("okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8", "32B", "fp8", "name"),
        ("qwen32-int8", "32B", "int8", "given"),
        ("Qwen/Qwen2.5-32B-Instruct-AWQ", "32B", "int4", "given"),
        ("70B FP16", "70B", "fp16", "given"),
        ("Qwen/Qwen2.5-7B-Instruct", "7B", "bf16", "default"),
    ]
    assert found[0]["distilled"] and found[0]["quantization"] == "fp8"
    # A normalised candidate (a loop item) normalises to itself.
    assert normalize_candidates(found) == found


@pytest.mark.parametrize("candidates, words", [
    ([], ["candidates", "non-empty list"]),
    ([42], ["candidates[0]", "42"]),
    (["Qwen2.5-7B-Instruct"], ["model", "no owner"]),
    (["deepseek-ai/DeepSeek-OCR"], ["candidates[0].params", "has no size in it"]),
    (["Qwen/Qwen2.5-7B-Instruct"], ["candidates[0].precision", "does not say its precision"]),
    ([{"params": "7B", "precision": "fp5"}], ["candidates[0].precision", "'fp5'"]),
    ([{"precision": "fp16"}], ["candidates[0]", "neither a model id nor params"]),
    ([{"model": "o/M-7B-AWQ", "config": "config.json"}], ["candidates[0].config", "as a dict"]),
    (["o/M-7B-AWQ", "o/M-7B-AWQ"], ["candidates[1]", "each candidate once", "candidates[0]"]),
])
def test_bad_candidates_name_the_field_and_the_value(candidates, words):
    with pytest.raises(SizingInputError) as err:
        normalize_candidates(candidates)
    for word in words:
        assert word in str(err.value)


def test_bad_calls():
    with pytest.raises(SizingInputError) as err:
        select(["o/M-7B-AWQ"], [], scenario="edge")
    assert "one assessment per candidate (1)" in str(err.value)
    with pytest.raises(SizingInputError) as err:
        select(["o/M-7B-AWQ"], [None], scenario="gigantic")
    assert "scenario: invalid value 'gigantic'" in str(err.value)
    with pytest.raises(SizingInputError) as err:
        hardware_judge({"gpus": 3})
    assert "hardware.gpus" in str(err.value)
    # Bad input for one candidate's sizing is that candidate's rejection, not an exception.
    selection = select(["o/M-7B-AWQ"], hardware_judge(HOSTS["h100x8"], method="detailed"))
    assert selection["rejected"][0]["rule"] == "unchecked" and "config" in selection["rejected"][0]["reason"]


def test_rules_are_data_in_the_documented_order():
    doc = model_selection.__doc__
    positions = [doc.index("``%s``" % name) for name, _text in REJECTION_RULES]
    assert positions == sorted(positions)
    positions = [doc.index("``%s``" % name) for name, _text in PREFERENCES]
    assert positions == sorted(positions)
    assert [name for name, _t in PREFERENCES] == ["verdict", "scenario_precision", "size", "gpu_class_precision",
                                                  "gpus", "order"]
    text = model_selection.rules_text()
    assert len(text["rejections"]) == 4 and text["preferences"][0].startswith("verdict: fits")


def test_capacity_plan_fails_like_the_module():
    from ansible_collections.llmops.deploy.plugins.filter.model_selection import capacity_plan

    undeclared = capacity_plan({"gpu_model": "H100", "gpu_count": 8}, {"params": "7B", "precision": "bf16"})
    assert undeclared["failed"] and undeclared["field"] == "hardware"
    assert "not declared: memory_total_mib (host RAM), cpu_cores, disk_free_mib (free disk);" in undeclared["msg"]
    insufficient = capacity_plan(HOSTS["cpu"], {"params": "7B", "precision": "bf16"})  # fail_on insufficient
    assert insufficient["failed"] and insufficient["verdict"] == "insufficient"
    assert insufficient["msg"].startswith("7B at BF16 is insufficient on this host: no GPU found")
    assert "failed" not in capacity_plan(HOSTS["cpu"], {"params": "7B", "precision": "bf16", "target": "cpu"})


@pytest.mark.parametrize("hardware, words", [
    ({"gpu_modle": "H100", "memory_total_mib": 1, "cpu_cores": 1, "disk_free_mib": 1}, "gpu_modle"),
    ({"gpus": [{"name": "H100", "memory_total_mib": "lots"}], "memory_total_mib": 1, "cpu_cores": 1,
      "disk_free_mib": 1}, "memory_total_mib"),
    ({"gpus": [], "gpu_count": 2, "memory_total_mib": 1, "cpu_cores": 1, "disk_free_mib": 1}, "gpus|gpu_count"),
])
def test_declared_hardware_is_checked_by_the_same_spec_as_the_module(hardware, words):
    """The controller-side judgement (preflight_probe=false) refuses what capacity_check refuses, naming the key."""
    from ansible.errors import AnsibleFilterError
    from ansible_collections.llmops.deploy.plugins.filter.model_selection import capacity_plan

    with pytest.raises(AnsibleFilterError, match="capacity_plan: .*(%s)" % words):
        capacity_plan(hardware, {"params": "7B", "precision": "bf16"})


def test_capacity_plans_judges_a_fleet_each_host_with_its_own_hardware():
    from ansible_collections.llmops.deploy.plugins.filter.model_selection import capacity_plans, model_candidates

    options = {"candidates": model_candidates(PROD, "bf16", check_args=True), "scenario": "enterprise",
               "fail_on": "never"}
    plans = capacity_plans({"a": {"hardware": HOSTS["h100x8"], "options": options},
                            "b": {"hardware": HOSTS["a100-40x2"], "options": options},
                            "c": {"hardware": HOSTS["h100x8"], "options": options},
                            "d": {"hardware": {"gpu_model": "H100", "gpu_count": 8}, "options": options}})
    assert plans["a"]["selection"]["chosen"] == plans["c"]["selection"]["chosen"] == "Qwen/Qwen2.5-32B-Instruct"
    assert plans["b"]["selection"]["chosen"] == "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8"
    assert plans["d"]["failed"] and "not declared" in plans["d"]["msg"]


def test_capacity_plans_fails_only_the_host_whose_own_options_are_refused():
    from ansible_collections.llmops.deploy.plugins.filter.model_selection import capacity_plans

    common = {"model": "Qwen/Qwen2.5-7B-Instruct", "fail_on": "never"}
    plans = capacity_plans({"good": {"hardware": HOSTS["h100x8"], "options": {"target": "gpu"}},
                            "bad": {"hardware": HOSTS["h100x8"], "options": {"target": "tpu"}},
                            "worse": {"hardware": HOSTS["h100x8"], "options": {"reserve": "a lot"}}}, common)
    assert plans["good"]["verdict"] == "fits" and not plans["good"].get("failed")
    assert plans["bad"]["failed"] and plans["bad"]["msg"] == "value of target must be one of: gpu, cpu, got: tpu"
    assert plans["worse"]["failed"] and "reserve" in plans["worse"]["msg"]
    assert "verdict" not in plans["bad"]


def _probed_gpus(serial):
    return [{"index": i, "vendor": "nvidia", "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-%s-%d" % (serial, i),
             "pci_bus_id": "00000000:%02X:00.0" % (serial * 8 + i), "memory_total_mib": 81559, "memory_used_mib": 0,
             "compute_capability": "9.0"} for i in range(8)]


def test_capacity_plans_judges_hosts_that_differ_only_by_gpu_serials_once_each_with_its_own():
    """Probed hosts with the same GPUs, RAM, cores and disk are judged once; each plan still names its own GPUs and
    equals what judging that host alone gives."""
    from ansible_collections.llmops.deploy.plugins.filter.model_selection import capacity_plan, capacity_plans, \
        model_candidates

    options = {"candidates": model_candidates(PROD, "bf16", check_args=True), "scenario": "enterprise",
               "fail_on": "never"}
    base = {"memory_total_mib": 2097152, "cpu_cores": 112, "disk_free_mib": 7000000}
    inputs = dict(("node%d" % n, {"hardware": dict(base, gpus=_probed_gpus(n)), "options": options,
                                  "probed": ["gpus"], "gpu_source": "nvidia-smi"}) for n in range(3))
    inputs["busy"] = {"hardware": dict(base, gpus=_probed_gpus(9)), "options": options, "probed": ["gpus"],
                      "gpu_source": "nvidia-smi"}
    inputs["busy"]["hardware"]["gpus"][0]["memory_used_mib"] = 70000
    plans = capacity_plans(inputs)
    for host, item in inputs.items():
        alone = capacity_plan(item["hardware"], options)
        assert plans[host] == dict(alone, probed=["gpus"], gpu_source="nvidia-smi"), host
        assert [g["uuid"] for g in plans[host]["hardware"]["gpus"]] == [g["uuid"] for g in item["hardware"]["gpus"]]
    # used memory is read by the judgement: the busy host is not given the idle hosts' plan
    assert plans["busy"]["hardware"]["gpus"][0]["memory_used_mib"] == 70000


def test_capacity_plans_keeps_an_unreachable_or_failed_probe_as_the_hosts_plan():
    from ansible_collections.llmops.deploy.plugins.filter.model_selection import capacity_plans

    plans = capacity_plans({
        "gone": {"unreachable": True, "changed": False, "msg": "Failed to connect to the host via ssh"},
        "broken": {"failed": True, "msg": "nvidia-smi: NVIDIA-SMI has failed"}})
    assert plans["gone"]["unreachable"] and "ssh" in plans["gone"]["msg"]
    assert plans["broken"]["failed"] and "NVIDIA-SMI" in plans["broken"]["msg"]


def test_a_calibration_serves_every_spelling_of_its_gpu_and_no_other_gpu():
    """pick_calibration matches the catalog's model and nvidia-smi's MiB: a trial recorded as nvidia-smi names the GPU
    serves a host declared by its short name; another model, or the same model with other memory, gets nothing."""
    from ansible_collections.llmops.deploy.plugins.module_utils import gpu_catalog
    assert gpu_catalog.canonical_name("RTX 4090") == gpu_catalog.canonical_name(" NVIDIA GeForce RTX 4090 ") == (
        "NVIDIA GeForce RTX 4090")
    assert gpu_catalog.canonical_name("Some Future GPU ") == "Some Future GPU"
    measured = [{"gpu": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559, "host": "h"},
                {"gpu": "NVIDIA GeForce RTX 4090", "memory_total_mib": 24564, "host": "edge"}]
    assert model_selection.pick_calibration(measured, [{"name": "RTX 4090", "memory_total_mib": 24564}])["host"] == (
        "edge")
    assert model_selection.pick_calibration(measured, [{"name": "RTX 4090", "memory_total_mib": 24000}]) is None
    assert model_selection.pick_calibration(measured, [{"name": "L40S", "memory_total_mib": 24564}]) is None
