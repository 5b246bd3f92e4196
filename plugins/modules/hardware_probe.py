#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: hardware_probe
short_description: Probe what a host has for a model (GPUs, RAM, CPU cores, free disk)
version_added: 0.1.0
description:
  - Reads the host's GPUs (the same code as M(llmops.deploy.gpu_info)), its RAM, the CPU cores it may run on and the
    free disk where the weights will go, and returns them as C(hardware), in the form M(llmops.deploy.capacity_check)
    and the P(llmops.deploy.capacity_plan#filter) filters judge.
  - The parts O(hardware) declares are not probed. A CPU target probes no GPU.
  - Nothing of the judgement runs or is compiled on the host, so this is the cheapest call a fleet's preflight can make
    per host. M(llmops.deploy.capacity_check) with O(llmops.deploy.capacity_check#module:judge=controller) runs this
    module on the host and judges on the controller.
author:
  - llmops.deploy developers (@llmops)
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode runs the same probes and returns the same result.
  diff_mode:
    support: none
extends_documentation_fragment:
  - llmops.deploy.attributes
  - llmops.deploy.declared_hardware
options:
  target:
    description:
      - V(gpu) probes the GPUs too. V(cpu) plans CPU-only inference, so no GPU tool is run.
    type: str
    choices: [gpu, cpu]
    default: gpu
notes:
  - GPU tools run with C(LC_ALL=C). A GPU tool that is present but fails gives no GPU of its vendor and a warning; output
    that cannot be read fails the task with the offending line.
seealso:
  - module: llmops.deploy.capacity_check
  - module: llmops.deploy.gpu_info
"""

EXAMPLES = r"""
- name: Probe the host
  llmops.deploy.hardware_probe:
    model_dir: /opt/llmops/models
  register: probe

- name: Judge it on the controller
  ansible.builtin.debug:
    msg: "{{ probe.hardware | llmops.deploy.capacity_plan({'model': 'Qwen/Qwen2.5-7B-Instruct', 'precision': 'bf16'}) }}"

- name: Probe only what the inventory does not declare
  llmops.deploy.hardware_probe:
    hardware:
      gpu_model: H100
      gpu_count: 8
"""

RETURN = r"""
hardware:
  description: The host's hardware, the probed and the declared parts together, with C(disk_path).
  returned: success
  type: dict
  sample: {"gpus": [], "memory_total_mib": 24017, "cpu_cores": 2, "disk_free_mib": 81000, "disk_path": "/opt/llmops/models"}
probed:
  description: Which parts of the hardware were probed (the rest was declared).
  returned: success
  type: list
  elements: str
  sample: ["gpus", "memory_total_mib", "cpu_cores", "disk_free_mib"]
model_dir:
  description: O(model_dir) as the host expands it (C(~) and environment variables), where free disk is measured.
  returned: success
  type: str
  sample: /opt/llmops/models
gpu_source:
  description: The tools the GPUs were read with (C(nvidia-smi), C(amd-smi), C(rocm-smi)), null when the GPUs were
    declared or not probed.
  returned: success
  type: str
  sample: nvidia-smi
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.deploy.plugins.module_utils import check_spec, hardware_probe


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            target=dict(type="str", choices=["gpu", "cpu"], default="gpu"),
            model_dir=dict(type="path", default="/opt/llmops/models"),
            hardware=check_spec.hardware_argument_spec(),
        ),
        supports_check_mode=True,
    )


def main():
    module = build_module()
    declared = check_spec.declared_hardware(module.params["hardware"]) or {}
    hardware, probed, gpu_source = hardware_probe.probe_or_fail(module, declared, module.params["target"],
                                                                module.params["model_dir"])
    module.exit_json(changed=False, hardware=hardware, probed=probed, gpu_source=gpu_source,
                     model_dir=module.params["model_dir"])


if __name__ == "__main__":
    main()
