# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sizing and fleet-report filters: thin adapters over plugins/module_utils (sizing, fleet_report)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.deploy.plugins.module_utils import fleet_report as report_lib
from ansible_collections.llmops.deploy.plugins.module_utils import gpu_catalog, sizing
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError


def _looks_like_model_id(value):
    return isinstance(value, str) and "/" in value


def model_sizing(value, precision=None, method="seed", reserve=sizing.DEFAULT_RESERVE, params=None):
    """``'32B' | model_sizing('int8')`` or ``'owner/Name-32B-FP8' | model_sizing`` -> the sizing dict."""
    try:
        if _looks_like_model_id(value):
            return sizing.size_model(model=value, params=params, precision=precision, method=method, reserve=reserve)
        return sizing.size_model(params=value, precision=precision, method=method, reserve=reserve)
    except SizingInputError as exc:
        raise AnsibleFilterError("llmops.deploy.model_sizing: %s" % exc)


def gpu_plan(value, gpu=None, precision=None, reserve=sizing.DEFAULT_RESERVE, gpus_per_node=sizing.DEFAULT_GPUS_PER_NODE,
             gpu_memory_mib=None):
    """``'70B' | gpu_plan(gpu='A100 80GB', precision='fp16')`` -> GPUs, nodes, tensor/pipeline sizes."""
    try:
        sized = value if isinstance(value, dict) else model_sizing(value, precision=precision, reserve=reserve)
        if gpu_memory_mib is None:
            if gpu is None:
                raise SizingInputError("gpu", gpu, "a known GPU model (%s) or gpu_memory_mib" % ", ".join(
                    gpu_catalog.known_names()))
            gpu_memory_mib = gpu_catalog.lookup(gpu)["memory_total_mib"]
        plan = sizing.gpu_plan(sized["requirements_bytes"]["gpu_memory"], gpu_memory_mib, reserve, gpus_per_node)
        plan["gpu_name"] = gpu or "%d MiB GPU" % gpu_memory_mib
        plan["description"] = sizing.describe_plan(plan, plan["gpu_name"])
        return plan
    except SizingInputError as exc:
        raise AnsibleFilterError("llmops.deploy.gpu_plan: %s" % exc)


def fleet_report(hosts, hostvars, result_var="preflight_result", model=None):
    """``ansible_play_hosts_all | fleet_report(hostvars)`` -> the report dict (rows, sizing, totals)."""
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError("llmops.deploy.fleet_report: expected a list of host names, got %r" % (hosts,))
    rows = []
    sized = None
    for host in hosts:
        host_vars = hostvars[host] if host in hostvars else {}
        result = host_vars.get(result_var)
        rows.append(report_lib.host_row(host, result, host_vars.get("group_names")))
        if sized is None and isinstance(result, dict) and result.get("sizing"):
            sized = result["sizing"]
    return report_lib.build_report(rows, sized, model)


def fleet_report_markdown(report):
    """The report dict as a Markdown document."""
    try:
        return report_lib.render_markdown(report)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("llmops.deploy.fleet_report_markdown: not a fleet report (%s)" % exc)


def fleet_report_summary(report):
    """The report dict as short terminal lines."""
    try:
        return report_lib.summary_lines(report)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("llmops.deploy.fleet_report_summary: not a fleet report (%s)" % exc)


class FilterModule(object):
    def filters(self):
        return {
            "model_sizing": model_sizing,
            "gpu_plan": gpu_plan,
            "fleet_report": fleet_report,
            "fleet_report_markdown": fleet_report_markdown,
            "fleet_report_summary": fleet_report_summary,
        }
