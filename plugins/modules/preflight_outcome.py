#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: preflight_outcome
short_description: Give a host the facts of its preflight plan, or fail it with the plan's reason
version_added: 0.1.0
description:
  - Runs on the controller only (an action, no connection to the host). The host's plan, as the
    P(llmops.deploy.capacity_plans#filter) filter made it for the whole fleet, becomes the host's facts
    C(preflight_result), C(preflight_selection), C(preflight_chosen_model) and C(preflight_chosen).
  - A host whose plan failed (a hardware part not declared, a model that cannot be sized, or a verdict that the
    preflight role's C(preflight_fail_on) names) fails with the plan's reason, and gets no facts; its plan stays in the
    fleet report.
  - A host that did not answer the probe (C(unreachable)) does not fail here; it gets an empty choice whose
    C(justification) says why.
  - Used by the P(llmops.deploy.preflight#role) role once per host, in place of a fact export and a failure check
    (two tasks per host).
author:
  - llmops.deploy developers (@llmops)
attributes:
  action:
    description: Runs on the controller as an action plugin.
    support: full
  check_mode:
    support: full
    details: It only sets facts.
  diff_mode:
    support: none
extends_documentation_fragment:
  - llmops.deploy.attributes
options:
  plan:
    description:
      - The host's plan, a result of M(llmops.deploy.capacity_check) (or of the
        P(llmops.deploy.capacity_plans#filter) filter for one host).
    type: dict
    required: true
seealso:
  - module: llmops.deploy.capacity_check
  - plugin: llmops.deploy.capacity_plans
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Judge the fleet once on the controller (its plans become a fact of every host)
  ansible.builtin.set_fact:
    fleet_plans: "{{ probes | llmops.deploy.capacity_plans(common) }}"
  delegate_to: localhost
  run_once: true

- name: Give each host the facts of its plan, or fail it with the plan's reason
  llmops.deploy.preflight_outcome:
    plan: "{{ fleet_plans[inventory_hostname] }}"

- name: Use the chosen model
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} serves {{ preflight_chosen_model }}"
"""

RETURN = r"""
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
