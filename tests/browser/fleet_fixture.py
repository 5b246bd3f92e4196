"""A realistic fleet report for the browser tests: the prod inventory's declared hardware and candidate list.

Each host's candidates are judged in pure Python (the same sizing and assessment the capacity_check module runs),
for the group's target (``cpu_only`` plans as CPU hosts: host RAM and cores, no GPU figure), shaped like the
registered loop the preflight role produces, then passed through the fleet_report filter. The 7B candidate carries its
config.json (tests/fixtures/configs), so the detailed method gives its largest context. Two hosts are added: one
unreachable, and one whose name holds markup (it must render as text).
"""
import json
import os

import yaml

from ansible_collections.llmops.deploy.plugins.filter.fleet_report import FilterModule
from ansible_collections.llmops.deploy.plugins.module_utils import model_selection

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROD = os.path.join(REPO, "inventories", "prod")
CONFIGS = os.path.join(REPO, "tests", "fixtures", "configs")
WITH_CONFIG = {"Qwen/Qwen2.5-7B-Instruct": "qwen2.5-7b.json"}
HOSTILE_HOST = '<script>alert("x")</script>-node'
INT4_32B = {"model": "Qwen/Qwen2.5-32B-Instruct", "precision": "int4", "label": "Qwen2.5-32B at INT4"}

FILTERS = FilterModule().filters()


def _load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def prod_inventory():
    """``({host: [groups]}, {group: vars}, all vars)`` from inventories/prod."""
    hosts = {}
    for group, body in _load(os.path.join(PROD, "hosts.yml"))["all"]["children"].items():
        for host in body["hosts"]:
            hosts.setdefault(host, []).append(group)
    group_vars = {}
    for group in set(g for groups in hosts.values() for g in groups):
        path = os.path.join(PROD, "group_vars", group + ".yml")
        group_vars[group] = _load(path) if os.path.exists(path) else {}
    return hosts, group_vars, _load(os.path.join(PROD, "group_vars", "all.yml"))


def loop_results(candidates, hardware, reserve, target="gpu"):
    judge = model_selection.hardware_judge(hardware, reserve=reserve, method="auto", target=target)
    results = []
    for candidate in candidates:
        result = judge(candidate)
        result.update(item=candidate, ansible_loop_var="item", changed=False)
        results.append(result)
    return {"results": results, "changed": False, "msg": "All items completed"}


def unreachable_results(candidates):
    msg = "Task failed: Failed to connect to the host via ssh: ssh: connect to host 10.20.9.9 port 22: No route"
    return {"results": [{"item": c, "unreachable": True, "msg": msg, "changed": False} for c in candidates],
            "unreachable": True, "changed": False}


def prod_fleet_report(scenario=None, extra_hosts=True):
    """The fleet report of the prod inventory's candidates, as the preflight role builds it."""
    hosts, group_vars, all_vars = prod_inventory()
    scenario = scenario or all_vars.get("llmops_scenario")
    reserve = all_vars.get("llmops_reserve", 0.2)
    listed = []
    for name in all_vars["llmops_candidates"]:
        if name == "Qwen/Qwen2.5-32B-Instruct-AWQ":
            # The published AWQ weights (about 19.3 GB with scales) do not fit one RTX 4090; the guide's 32B at INT4
            # (table 2.2: 16 GB, 24 GB of GPU memory) is tight there, so the page shows every state.
            name = INT4_32B
        elif name in WITH_CONFIG:
            with open(os.path.join(CONFIGS, WITH_CONFIG[name]), encoding="utf-8") as handle:
                name = {"model": name, "config": json.load(handle)}
        listed.append(name)
    candidates = model_selection.normalize_candidates(listed, all_vars.get("llmops_precision"))
    hostvars = {}
    for host, groups in hosts.items():
        hardware = group_vars[groups[0]]["llmops_declared_hardware"]
        target = group_vars[groups[0]].get("llmops_target", all_vars.get("llmops_target", "gpu"))
        registered = loop_results(candidates, hardware, reserve, target)
        hostvars[host] = {"group_names": groups, "preflight_candidate_results": registered,
                          "preflight_selection": model_selection.select_from_results(registered["results"], scenario)}
    if extra_hosts:
        hostvars["h100-node-03"] = {"group_names": ["gpu_h100"],
                                    "preflight_candidate_results": unreachable_results(candidates)}
        hostvars[HOSTILE_HOST] = {
            "group_names": ["gpu_rtx4090"],
            "preflight_candidate_results": loop_results(candidates, group_vars["gpu_rtx4090"]["llmops_declared_hardware"],
                                                        reserve)}
    return FILTERS["fleet_report"](sorted(hostvars), hostvars, scenario=scenario)
