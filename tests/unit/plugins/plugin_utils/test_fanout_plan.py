# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fan-out plan: seeds, rounds (log2), groups, excluded and failed hosts re-planned; the filters' errors."""
import math

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.deploy.plugins.filter.fanout import fanout_next_round, fanout_plan
from ansible_collections.llmops.deploy.plugins.plugin_utils import fanout


def hosts(n, prefix="h"):
    return ["%s%02d" % (prefix, i) for i in range(1, n + 1)]


def test_four_hosts_one_seed_two_rounds():
    doc = fanout.plan(["a", "b", "c", "d"])
    assert doc["seeds"] == {"all": "a"}
    assert doc["lines"] == ["seed: a <- hub (group all)",
                            "round 1: b <- a (fallbacks: -)",
                            "round 2: c <- a (fallbacks: b)",
                            "round 2: d <- b (fallbacks: a)"]
    assert doc["receivers"] == ["b", "c", "d"]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 8, 9, 100, 1000])
def test_rounds_are_ceil_log2_and_every_host_is_served_once(count):
    names = hosts(count)
    doc = fanout.plan(names)
    assert len(doc["rounds"]) == (math.ceil(math.log2(count)) if count > 1 else 0)
    assert sorted(doc["receivers"]) == sorted(names[1:])
    have = {names[0]}
    for transfers in doc["rounds"]:
        sources = [t["source"] for t in transfers]
        assert len(sources) == len(set(sources))            # a source serves one host per round
        for t in transfers:
            assert t["source"] in have and t["receiver"] not in have
            assert set(t["fallbacks"]) <= have - {t["source"]}
        have |= set(t["receiver"] for t in transfers)
    assert have == set(names)


def test_complete_hosts_are_sources_and_no_hub_download():
    doc = fanout.plan(["a", "b", "c", "d"], complete=["c"])
    assert doc["seeds"] == {} and doc["complete"] == ["c"]
    assert doc["rounds"][0] == [{"receiver": "a", "source": "c", "group": "all", "fallbacks": []}]
    assert "complete: c (not touched)" in doc["lines"]
    assert fanout.plan(["a", "b"], complete=["a", "b"])["rounds"] == []


def test_groups_each_get_their_own_seed_and_never_cross():
    names = hosts(6)
    groups = dict((h, "site1" if i < 3 else "site2") for i, h in enumerate(names))
    doc = fanout.plan(names, groups=groups, seeds={"site2": "h05"})
    assert doc["seeds"] == {"site1": "h01", "site2": "h05"}
    for transfers in doc["rounds"]:
        for t in transfers:
            assert groups[t["receiver"]] == groups[t["source"]] == t["group"]
            assert all(groups[f] == t["group"] for f in t["fallbacks"])


def test_excluded_or_failed_hosts_are_replanned():
    doc = fanout.plan(["a", "b", "c", "d"], excluded=["a"])
    assert doc["seeds"] == {"all": "b"} and "a" not in doc["receivers"]
    assert doc["excluded"] == ["a"]
    # a seed named but excluded: the next host seeds
    assert fanout.plan(["a", "b"], seeds={"all": "a"}, excluded=["a"])["seeds"] == {"all": "b"}
    # a receiver that failed in round 1 is left out of round 2, and does not serve
    nxt = fanout.next_round(["a", "b", "c", "d"], complete=["a"], excluded=["b"])
    assert nxt == {"seeds": [], "transfers": [{"receiver": "c", "source": "a", "group": "all", "fallbacks": []}]}


def test_next_round_seeds_first_then_transfers():
    assert fanout.next_round(["a", "b", "c"]) == {"seeds": ["a"], "transfers": []}
    nxt = fanout.next_round(["a", "b", "c"], complete=["a"])
    assert nxt["seeds"] == [] and [t["receiver"] for t in nxt["transfers"]] == ["b"]
    assert fanout.next_round(["a", "b"], complete=["a", "b"]) == {"seeds": [], "transfers": []}
    assert fanout.round_count(["a", "b", "c", "d"]) == 3
    assert fanout.round_count(["a", "b", "c", "d"], complete=["a", "b", "c", "d"]) == 0


def test_max_fallbacks():
    doc = fanout.plan(hosts(9), complete=hosts(8), max_fallbacks=3)
    assert len(doc["rounds"][0][0]["fallbacks"]) == 3
    assert fanout.plan(hosts(9), complete=hosts(8), max_fallbacks=0)["rounds"][0][0]["fallbacks"] == []


@pytest.mark.parametrize("kwargs, message", [
    ({"hosts": "a,b"}, "hosts must be a list of host names"),
    ({"hosts": ["a", "a"]}, "must not repeat"),
    ({"hosts": ["a", 3]}, "hosts must hold host names"),
    ({"hosts": ["a"], "groups": ["x"]}, "groups must map host names"),
    ({"hosts": ["a"], "groups": {"a": 1}}, "groups['a'] must be a string"),
    ({"hosts": ["a"], "max_fallbacks": -1}, "max_fallbacks must be an integer >= 0"),
    ({"hosts": ["a", "b"], "groups": {"b": "x"}, "seeds": {"all": "b"}}, "not in group 'all'"),
])
def test_bad_inputs_name_the_field(kwargs, message):
    with pytest.raises(fanout.FanoutError, match=message.replace("[", r"\[").replace("]", r"\]")):
        fanout.plan(**kwargs)
    args = dict(kwargs)
    with pytest.raises(AnsibleFilterError, match="fanout_plan: "):
        fanout_plan(args.pop("hosts"), **args)


def test_filters_return_the_plan():
    assert fanout_plan(["a", "b"])["rounds"] == [[{"receiver": "b", "source": "a", "group": "all",
                                                   "fallbacks": []}]]
    assert fanout_next_round(["a", "b"], complete=["a"])["transfers"][0]["receiver"] == "b"
    with pytest.raises(AnsibleFilterError, match="fanout_next_round: "):
        fanout_next_round("a")
