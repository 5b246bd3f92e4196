# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model-selection filters: thin adapters over plugins/module_utils/model_selection.py.

Documentation: plugins/filter/select_model.yml and plugins/filter/model_candidates.yml.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.llmops.deploy.plugins.module_utils import check_spec, model_selection, sizing
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError


def model_candidates(values, default_precision=None, check_args=False, hub=None):
    """``['Qwen/Qwen2.5-32B-Instruct-AWQ', ...] | model_candidates('bf16')`` -> normalised candidates ([] for none).

    ``check_args=True``: as capacity_check's ``candidates`` option takes them, with ``hub`` (modelscope_info results
    by model id) merged in.
    """
    if values is None or values == "" or (isinstance(values, (list, tuple)) and not values):
        return []
    if hub is not None and not isinstance(hub, dict):
        raise AnsibleFilterError("llmops.deploy.model_candidates: hub must be a dict of modelscope_info results by "
                                 "model id, got %r" % (hub,))
    try:
        candidates = model_selection.normalize_candidates(values, default_precision or None)
    except SizingInputError as exc:
        raise AnsibleFilterError("llmops.deploy.model_candidates: %s" % exc)
    return model_selection.check_specs(candidates, hub) if check_args else candidates


def _no_selection(result):
    result = result if isinstance(result, dict) else {}
    verdict = "unreachable" if result.get("unreachable") else "failed"
    reason = result.get("msg") or ("host unreachable" if verdict == "unreachable" else "the check did not run")
    return {"chosen": None, "chosen_model": None, "chosen_candidate": None, "justification": reason,
            "verdict": verdict, "ranked": [], "rejected": [], "evaluations": [], "scenario": None,
            "gpu_class": "unknown", "assessment": {"verdict": verdict, "gpus_needed": None, "gpu_plan": None,
                                                   "reasons": [reason]}}


def select_model(value, scenario=None, hardware=None, assessments=None, reserve=sizing.DEFAULT_RESERVE,
                 gpus_per_node=sizing.DEFAULT_GPUS_PER_NODE, target="gpu", default_precision=None):
    """Choose the candidate for one host.

    ``value`` is a registered loop of ``capacity_check`` over candidates, one ``capacity_check`` result, or a list
    of candidates judged against ``hardware`` (declared, sized here) or ``assessments`` (one per candidate).
    """
    scenario = scenario or None
    try:
        items = model_selection.loop_items(value)
        if items is not None:
            return model_selection.select_from_results(items, scenario, reserve)
        if isinstance(value, dict) and isinstance(value.get("selection"), dict):
            # capacity_check chose already (one probe, every candidate judged on the host).
            selection = dict(value["selection"])
            selection["assessment"] = value
            return selection
        if isinstance(value, dict):
            selection = model_selection.single_selection(value, scenario)
            if selection is None:
                return _no_selection(value)
            selection["assessment"] = value
            return selection
        if hardware is not None:
            judge = model_selection.hardware_judge(hardware, reserve, gpus_per_node, target)
        elif assessments is not None:
            judge = assessments
        else:
            raise AnsibleFilterError("llmops.deploy.select_model: a list of candidates needs hardware= (declared "
                                     "hardware to size them against) or assessments= (one result per candidate)")
        selection = model_selection.select(value, judge, scenario, reserve, default_precision or None)
        chosen = selection["chosen_candidate"]
        selection["assessment"] = judge[chosen["index"]] if chosen and isinstance(judge, (list, tuple)) else None
        return selection
    except SizingInputError as exc:
        raise AnsibleFilterError("llmops.deploy.select_model: %s" % exc)


def capacity_plan(hardware, options=None, **kwargs):
    """``declared_hardware | capacity_plan({...capacity_check options...})``: what capacity_check returns without
    probing, computed here on the controller (no module run, no connection). Options left None are not given.

    A host that cannot be judged (a part of the hardware not declared, a model that cannot be sized) or that
    ``fail_on`` fails gives ``{failed: true, msg: ..., ...}``, as the module's failed result. Options that
    capacity_check's argument spec refuses raise an error naming them.
    """
    params = dict(options or {})
    params.update(kwargs)
    result, error = _judge(hardware, params)
    if error:
        raise AnsibleFilterError("llmops.deploy.capacity_plan: %s" % error)
    return result


def _validated(hardware, options):
    """``options`` and ``hardware`` checked against capacity_check's argument spec: the validation result."""
    params = dict((key, value) for key, value in options.items() if value is not None)
    params["hardware"] = hardware or None
    params["probe"] = False
    validator = ArgumentSpecValidator(check_spec.check_argument_spec(),
                                      mutually_exclusive=check_spec.CHECK_MUTUALLY_EXCLUSIVE,
                                      required_one_of=check_spec.CHECK_REQUIRED_ONE_OF)
    return validator.validate(params)


def refused_options(hardware, options):
    """What capacity_check's argument spec says of ``options`` and the declared ``hardware`` (None when it accepts
    them): the check made before a host is probed."""
    validated = _validated(hardware, options)
    return "; ".join(validated.error_messages) if validated.error_messages else None


def _judge(hardware, options):
    """(the plan, None), or (None, what capacity_check's argument spec says of ``options``) when it refuses them."""
    validated = _validated(hardware, options)
    if validated.error_messages:
        return None, "; ".join(validated.error_messages)
    p = validated.validated_parameters
    try:
        result, warnings = model_selection.judge_host(p, None)
    except SizingInputError as exc:
        return {"failed": True, "changed": False, "msg": str(exc), "field": exc.field}, None
    if warnings:
        result["warnings"] = warnings
    result["changed"] = False
    if model_selection.fails(result, p["fail_on"]):
        result.update(failed=True, msg=model_selection.failure_message(result))
    return result, None


def capacity_plans(inputs, common=None):
    """``{host: {hardware, options}} | capacity_plans(common)`` -> ``{host: capacity_plan(hardware, options)}``: a
    fleet judged in one call (one import of this code on the controller instead of one per host). ``common``: options
    for every host (the candidates, the calibrations, hub metadata: read once on the controller, not sent to each
    host); a host's own option of the same name wins.

    An item may be what ``capacity_check`` with ``judge=controller`` registered on the host: its ``probed`` and
    ``gpu_source`` are then kept in that host's plan, and a host that was unreachable or whose probe failed keeps
    that result (``unreachable`` or ``failed``, with its ``msg``) as its plan, unjudged.
    """
    if not isinstance(inputs, dict):
        raise AnsibleFilterError("llmops.deploy.capacity_plans: expected a dict host -> {hardware, options}, got %r"
                                 % (inputs,))
    # Plain copies: what Ansible hands a filter carries tags (origin, trust) on every value, which make each string
    # and number operation of the judgement several times slower (2.0 s against 0.55 s for 100 hosts x 6 candidates).
    try:
        inputs, common = json.loads(json.dumps([inputs, common]))
    except (TypeError, ValueError):
        pass  # not JSON data: judged as it is (a host whose item cannot be read fails with its own message)
    if common is not None and not isinstance(common, dict):
        raise AnsibleFilterError("llmops.deploy.capacity_plans: common: expected a dict of capacity_check options, "
                                 "got %r" % (common,))
    common = dict((key, value) for key, value in (common or {}).items() if value is not None)
    plans = {}
    # Hosts of one group usually declare the same hardware and options: each distinct pair is judged once.
    judged = {}
    for host, item in inputs.items():
        if not isinstance(item, dict):
            raise AnsibleFilterError("llmops.deploy.capacity_plans: %s: expected {hardware, options}, got %r"
                                     % (host, item))
        if "options" not in item and (item.get("unreachable") or item.get("failed")):
            plans[host] = dict(item)
            continue
        options = dict(common, **(item.get("options") or {})) if common else item.get("options")
        try:
            key = json.dumps([_without_identity(item.get("hardware")), options], sort_keys=True, default=repr)
        except (TypeError, ValueError):
            key = None
        if key is None or key not in judged:
            result, error = _judge(item.get("hardware"), options or {})
            if error:
                # This host's own options are refused (as capacity_check's spec would refuse them on the host):
                # the host fails with the reason, the others are judged.
                result = {"failed": True, "changed": False, "msg": error}
            if key is not None:
                judged[key] = result
        else:
            result = _with_identity(judged[key], item.get("hardware"))
        if "probed" in item:
            result = dict(result, probed=item["probed"], gpu_source=item.get("gpu_source"))
        plans[host] = result
    return plans


# What tells one GPU from another of the same kind; nothing the judgement reads.
_GPU_IDENTITY = ("uuid", "pci_bus_id")


def _without_identity(hardware):
    """The hardware as the judgement sees it: probed GPUs without their serial identity, so that the hosts of a
    fleet with the same GPUs, RAM, cores and free disk are judged once."""
    if not isinstance(hardware, dict) or not isinstance(hardware.get("gpus"), list):
        return hardware
    gpus = [dict((k, v) for k, v in gpu.items() if k not in _GPU_IDENTITY) if isinstance(gpu, dict) else gpu
            for gpu in hardware["gpus"]]
    return dict(hardware, gpus=gpus)


def _with_identity(result, hardware):
    """A plan judged for another host with the same hardware, given this host's GPU identities."""
    result = copy.deepcopy(result)
    judged = (result.get("hardware") or {}).get("gpus")
    for gpu, own in zip(judged or [], (hardware or {}).get("gpus") or []):
        for key in _GPU_IDENTITY:
            if key in gpu or key in own:
                gpu[key] = own.get(key)
    return result


class FilterModule(object):
    def filters(self):
        return {
            "capacity_plan": capacity_plan,
            "capacity_plans": capacity_plans,
            "model_candidates": model_candidates,
            "select_model": select_model,
        }
