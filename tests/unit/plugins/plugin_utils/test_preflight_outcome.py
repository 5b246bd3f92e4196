# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One host's preflight outcome: its facts from a judged plan, an empty choice for an unreachable host, and the
reason a failed plan fails the host."""
import pytest

from ansible_collections.llmops.deploy.plugins.plugin_utils import preflight_outcome

CHOSEN = {"key": "Qwen/Qwen2.5-7B-Instruct@bf16", "model": "Qwen/Qwen2.5-7B-Instruct", "verdict": "fits"}


def test_a_judged_plan_gives_its_choice():
    plan = {"verdict": "fits", "selection": {"chosen": CHOSEN["key"], "chosen_model": CHOSEN["model"],
                                             "chosen_candidate": CHOSEN, "verdict": "fits"}}
    facts = preflight_outcome.host_facts(plan)
    assert sorted(facts) == sorted(preflight_outcome.FACT_NAMES)
    assert facts["preflight_result"] is plan
    assert facts["preflight_selection"] is plan["selection"]
    assert facts["preflight_chosen_model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert facts["preflight_chosen"] == CHOSEN
    assert preflight_outcome.failure(plan) is None


def test_a_selection_that_chose_nothing_gives_an_empty_model_name():
    plan = {"verdict": "insufficient", "selection": {"chosen": None, "chosen_model": None, "chosen_candidate": None}}
    facts = preflight_outcome.host_facts(plan)
    assert facts["preflight_chosen_model"] == "" and facts["preflight_chosen"] is None


def test_an_unreachable_host_gets_an_empty_choice_that_says_why_and_does_not_fail():
    plan = {"unreachable": True, "msg": "ssh: connect to host 10.0.0.9 port 22: timed out"}
    facts = preflight_outcome.host_facts(plan)
    selection = facts["preflight_selection"]
    assert selection["verdict"] == "unreachable"
    assert selection["justification"] == plan["msg"]
    assert selection["chosen"] is None and selection["ranked"] == [] and selection["gpu_class"] == "unknown"
    assert preflight_outcome.failure(plan) is None


@pytest.mark.parametrize("plan, reason", [
    ({"failed": True, "msg": "hardware not declared for this host: gpu_count"}, "hardware not declared for this host: gpu_count"),
    ({"failed": True, "verdict": "insufficient", "msg": "verdict insufficient (preflight_fail_on)"},
     "verdict insufficient (preflight_fail_on)"),
    ({"failed": True}, "the preflight check failed for this host (no reason was given)"),
])
def test_a_failed_plan_fails_the_host_with_its_reason(plan, reason):
    assert preflight_outcome.failure(plan) == reason
    assert preflight_outcome.host_facts(plan)["preflight_selection"]["verdict"] == "failed"


def test_a_plan_that_is_not_a_dict_is_refused():
    with pytest.raises(TypeError, match="plan: expected a dict"):
        preflight_outcome.host_facts(["fits"])
