#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: preflight_host
short_description: Probe a host, judge it against a model or candidates, and give it the facts of its plan
version_added: 0.1.0
description:
  - One task per host does the whole preflight of that host. The host runs M(llmops.deploy.hardware_probe) (GPUs, RAM,
    CPU cores, free disk; the parts O(hardware) declares are not probed), then the host is judged on the controller by
    the code of the P(llmops.deploy.capacity_plans#filter) filter, with the same result as
    M(llmops.deploy.capacity_check) judging on the host.
  - The plan becomes the host's facts C(preflight_result), C(preflight_selection), C(preflight_chosen_model) and
    C(preflight_chosen).
  - A host whose plan failed (options that capacity_check's argument spec refuses, a probe that failed, a hardware part
    not declared with O(probe=false), a model that cannot be sized, or a verdict that the V(fail_on) of O(options) names) fails
    with the plan's reason and gets no facts. Bad options fail before the host is contacted.
  - A host that does not answer does not fail; it gets an empty choice whose C(justification) says why (its
    C(preflight_result) has C(unreachable=true) and C(msg)), and a warning.
  - With O(probe=false) no host is contacted; the declared hardware is judged.
  - The judgement's code is loaded once by Ansible's main process, so each host's worker only judges. Used by the
    P(llmops.deploy.preflight#role) role. A failed host's result is its plan; registered, it is what
    O(llmops.deploy.fleet_report#filter:fallback_var) of P(llmops.deploy.fleet_report#filter) reads.
author:
  - llmops.deploy developers (@llmops)
attributes:
  action:
    description: Runs on the controller as an action plugin; with O(probe=true) it runs a module on the host.
    support: full
  async:
    description: Supports being used with the C(async) keyword.
    support: none
  check_mode:
    support: full
    details: It only reads the host and sets facts.
  diff_mode:
    support: none
extends_documentation_fragment:
  - llmops.deploy.attributes
options:
  probe:
    description:
      - Probe the parts of the hardware that O(hardware) does not declare. With V(false) nothing is probed and the host
        is not contacted; a part that is not declared fails the host, naming it.
    type: bool
    default: true
  hardware:
    description:
      - The host's declared hardware, with the keys of M(llmops.deploy.capacity_check)'s O(llmops.deploy.capacity_check#module:hardware).
    type: dict
  options:
    description:
      - The host's own M(llmops.deploy.capacity_check) options (V(model), V(params), V(default_precision), V(scenario),
        V(method), V(reserve), V(gpus_per_node), V(target), V(model_dir), V(fail_on)...). Null values are left out.
    type: dict
    default: {}
  common:
    description:
      - capacity_check options for every host, read once on the controller (V(candidates), V(calibrations), the hub's
        V(config), V(weights) and V(disk_required_bytes)). A host's own option of the same name wins.
    type: dict
seealso:
  - module: llmops.deploy.capacity_check
  - module: llmops.deploy.hardware_probe
  - plugin: llmops.deploy.capacity_plans
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Check every host against a model; the plan becomes each host's facts
  llmops.deploy.preflight_host:
    options:
      model: Qwen/Qwen2.5-72B-Instruct-AWQ
      reserve: 0.2
      fail_on: insufficient
  register: preflight

- name: Choose among candidates, read once on the controller
  llmops.deploy.preflight_host:
    options:
      scenario: enterprise
    common:
      candidates: "{{ ['Qwen/Qwen2.5-32B-Instruct', 'Qwen/Qwen2.5-7B-Instruct']
                      | llmops.deploy.model_candidates('bf16', check_args=true) }}"

- name: Use the chosen model
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} serves {{ preflight_chosen_model }}"
"""

RETURN = r"""
verdict:
  description: For a host that fails, the plan's keys are returned as they are (C(verdict), C(reasons), C(resources),
    C(hardware), C(probed), C(selection), ...), the M(llmops.deploy.capacity_check) result, with the reason in C(msg),
    so that its registered result is its plan.
  returned: failure
  type: str
  sample: insufficient
ansible_facts:
  description: The host's facts (set only when the host does not fail).
  returned: success
  type: dict
  contains:
    preflight_result:
      description: The plan itself, the M(llmops.deploy.capacity_check) result of the model (with candidates, of the chosen one).
      type: dict
    preflight_selection:
      description:
        - The choice, with C(chosen), C(chosen_model), C(chosen_candidate), C(justification), C(ranked), C(rejected),
          C(evaluations), C(preferred_over), C(verdict), C(gpu_class) and C(scenario).
        - For a host that was not judged (unreachable), an empty choice with C(verdict=unreachable) and the reason in
          C(justification).
      type: dict
    preflight_chosen_model:
      description: ModelScope id of the chosen model, V('') when none can be used.
      type: str
    preflight_chosen:
      description: The chosen candidate (C(key), C(model), C(params), C(precision), C(verdict), C(gpus_needed)...), null when none.
      type: dict
msg:
  description: Why the host failed.
  returned: failure
  type: str
  sample: "hardware not declared for this host: gpu_model, gpu_count (preflight_probe=false)"
"""
