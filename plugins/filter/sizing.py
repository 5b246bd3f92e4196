# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sizing filters: thin adapters over plugins/module_utils/sizing.py (the fleet-report filters are in fleet_report.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.deploy.plugins.module_utils import gpu_catalog, sizing
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError


def _looks_like_model_id(value):
    return isinstance(value, str) and "/" in value


def model_sizing(value, precision=None, method="seed", reserve=sizing.DEFAULT_RESERVE, params=None,
                 default_precision=None, target="gpu", cpu_kv_cache_space_gib=None):
    """``'32B' | model_sizing('int8')`` or ``'owner/Name-32B-FP8' | model_sizing`` -> the sizing dict."""
    options = dict(precision=precision, method=method, reserve=reserve, default_precision=default_precision,
                   target=target, cpu_kv_cache_space_gib=cpu_kv_cache_space_gib)
    try:
        if _looks_like_model_id(value):
            return sizing.size_model(model=value, params=params, **options)
        return sizing.size_model(params=value, **options)
    except SizingInputError as exc:
        raise AnsibleFilterError("llmops.deploy.model_sizing: %s" % exc)


def gpu_plan(value, gpu=None, precision=None, reserve=sizing.DEFAULT_RESERVE, gpus_per_node=sizing.DEFAULT_GPUS_PER_NODE,
             gpu_memory_mib=None):
    """``'70B' | gpu_plan(gpu='A100 80GB', precision='fp16')`` -> GPUs, nodes, tensor/pipeline sizes.

    A detailed sizing dict (the model_sizing module's result) is planned per GPU, as the module plans it
    (sizing.plan_gpus: the engine's profiling batch for this GPU, ``engine_memory``, ``start_refused``).
    """
    try:
        sized = value if isinstance(value, dict) else model_sizing(value, precision=precision, reserve=reserve)
        if sized.get("target") == "cpu":
            raise SizingInputError("target", "cpu", "a sizing for target gpu (this one plans a CPU host: see its "
                                   "cpu_plan)")
        if gpu_memory_mib is None:
            if gpu is None:
                raise SizingInputError("gpu", gpu, "a known GPU model (%s) or gpu_memory_mib" % ", ".join(
                    gpu_catalog.known_names()))
            gpu_memory_mib = gpu_catalog.lookup(gpu)["memory_total_mib"]
        return sizing.plan_gpus(sized, gpu_memory_mib, reserve, gpus_per_node,
                                gpu_name=gpu or "%d MiB GPU" % gpu_memory_mib)
    except SizingInputError as exc:
        raise AnsibleFilterError("llmops.deploy.gpu_plan: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {
            "model_sizing": model_sizing,
            "gpu_plan": gpu_plan,
        }
