#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gpu_info
short_description: Gather facts about the NVIDIA and AMD GPUs of a host
version_added: 0.1.0
description:
  - Lists the GPUs of the target host with their name, memory, compute capability (NVIDIA) or
    gfx target (AMD) and driver version, and sets them as the facts C(gpus) and C(gpu_count).
  - NVIDIA GPUs are read with C(nvidia-smi --query-gpu=... --format=csv,noheader,nounits).
    Drivers older than R510, which do not know the C(compute_cap) field, are queried again
    without it and report a null C(compute_capability).
  - AMD GPUs are read with C(amd-smi static --json) and C(amd-smi metric --mem-usage --json);
    when C(amd-smi) is missing or fails, C(rocm-smi --json) is used instead.
  - A host without these tools has no GPU of that vendor; that is not an error. A tool that is
    present but fails (for example C(NVIDIA-SMI has failed because it couldn't communicate with
    the NVIDIA driver)) reports no GPU of that vendor and a warning.
  - Memory is reported in MiB, as the tools count it. Unified-memory parts (NVIDIA GB10/Grace,
    AMD MI300A) report no dedicated memory; their memory fields are null and
    C(unified_memory) is true.
  - Output that cannot be read (a changed format) fails the task with the offending line.
author:
  - llmops.deploy developers (@llmops)
options:
  vendors:
    description:
      - GPU vendors to look for.
    type: list
    elements: str
    choices: [nvidia, amd]
    default: [nvidia, amd]
  nvidia_smi_path:
    description:
      - Path of the C(nvidia-smi) binary. By default it is searched on E(PATH) and the sbin
        directories.
      - When set, the file must exist.
    type: path
  amd_smi_path:
    description:
      - Path of the C(amd-smi) binary. By default it is searched on E(PATH), the sbin
        directories and C(/opt/rocm/bin).
      - When set, the file must exist.
    type: path
  rocm_smi_path:
    description:
      - Path of the C(rocm-smi) binary, used when C(amd-smi) is missing or fails. By default it is
        searched on E(PATH), the sbin directories and C(/opt/rocm/bin).
      - When set, the file must exist.
    type: path
extends_documentation_fragment:
  - llmops.deploy.attributes
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same read-only commands in check mode.
  diff_mode:
    support: none
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
    support: full
  platform:
    platforms: posix
    support: full
    description: Linux hosts with the vendor tools (C(nvidia-smi), C(amd-smi) or C(rocm-smi)).
notes:
  - Indices are per vendor, as the vendor tool numbers them; on a host with both NVIDIA and AMD
    GPUs two GPUs can have index 0; C(vendor) tells them apart.
  - The commands run with C(LC_ALL=C).
seealso:
  - name: nvidia-smi documentation
    description: The C(--query-gpu) fields and their meaning.
    link: https://docs.nvidia.com/deploy/nvidia-smi/index.html
  - name: AMD SMI CLI tool
    description: The C(amd-smi static) and C(amd-smi metric) commands.
    link: https://rocm.docs.amd.com/projects/amdsmi/en/latest/how-to/amdsmi-cli-tool.html
"""

EXAMPLES = r"""
- name: Gather GPU facts
  llmops.deploy.gpu_info:

- name: Show how much GPU memory the host has
  ansible.builtin.debug:
    msg: "{{ ansible_facts.gpu_count }} GPU(s), {{ ansible_facts.gpus | map(attribute='memory_total_mib') | select('number') | sum }} MiB"

- name: Only look for NVIDIA GPUs, with nvidia-smi outside PATH
  llmops.deploy.gpu_info:
    vendors:
      - nvidia
    nvidia_smi_path: /usr/local/nvidia/bin/nvidia-smi

- name: Require at least one Hopper-class GPU
  ansible.builtin.assert:
    that:
      - ansible_facts.gpus | selectattr('compute_capability', 'equalto', '9.0') | list | length > 0
    fail_msg: This host has no GPU with compute capability 9.0
"""

RETURN = r"""
ansible_facts:
  description: Facts set on the host.
  returned: always
  type: dict
  contains:
    gpus:
      description:
        - One entry per GPU, NVIDIA first, then AMD. Every key is always present; unknown values
          are null.
      returned: always
      type: list
      elements: dict
      sample:
        - index: 0
          vendor: nvidia
          name: NVIDIA H100 80GB HBM3
          uuid: GPU-5f3c2a91-7d4e-4b8a-9c1e-2f6d8a0b3e71
          pci_bus_id: "00000000:18:00.0"
          driver_version: "550.54.15"
          memory_total_mib: 81559
          memory_used_mib: 0
          memory_free_mib: 81008
          compute_capability: "9.0"
          arch: null
          unified_memory: false
      contains:
        index:
          description: Index of the GPU as its vendor tool numbers it.
          type: int
          sample: 0
        vendor:
          description: GPU vendor.
          type: str
          sample: nvidia
          choices: [nvidia, amd]
        name:
          description: Product name.
          type: str
          sample: NVIDIA H100 80GB HBM3
        uuid:
          description: GPU UUID (NVIDIA), or the unique ID rocm-smi prints; null for amd-smi.
          type: str
          sample: GPU-5f3c2a91-7d4e-4b8a-9c1e-2f6d8a0b3e71
        pci_bus_id:
          description: PCI address (domain:bus:device.function).
          type: str
          sample: "00000000:18:00.0"
        driver_version:
          description: Version of the kernel driver.
          type: str
          sample: "550.54.15"
        memory_total_mib:
          description: Dedicated GPU memory in MiB; null on unified-memory parts.
          type: int
          sample: 81559
        memory_used_mib:
          description: GPU memory in use, in MiB.
          type: int
          sample: 0
        memory_free_mib:
          description: GPU memory free, in MiB (nvidia-smi excludes memory the driver reserves).
          type: int
          sample: 81008
        compute_capability:
          description: CUDA compute capability as MAJOR.MINOR (NVIDIA only; null for AMD).
          type: str
          sample: "9.0"
        arch:
          description: AMD gfx target such as C(gfx942) (null for NVIDIA and when the tool does not say).
          type: str
          sample: gfx942
        unified_memory:
          description: True when the GPU reports no dedicated memory (GB10, Grace, MI300A).
          type: bool
          sample: false
    gpu_count:
      description: Number of GPUs found.
      returned: always
      type: int
      sample: 8
gpu_sources:
  description: The tools whose output was read, in the order nvidia-smi, amd-smi, rocm-smi.
  returned: always
  type: list
  elements: str
  sample: [nvidia-smi]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.llmops.deploy.plugins.module_utils.gpu_facts import (
    VENDORS,
    GpuFactsError,
    collect_gpus,
    module_tools,
)

PATH_OPTIONS = (
    ("nvidia-smi", "nvidia_smi_path"),
    ("amd-smi", "amd_smi_path"),
    ("rocm-smi", "rocm_smi_path"),
)


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            vendors=dict(type="list", elements="str", choices=list(VENDORS), default=list(VENDORS)),
            nvidia_smi_path=dict(type="path"),
            amd_smi_path=dict(type="path"),
            rocm_smi_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )


def main():
    module = build_module()

    for tool, option in PATH_OPTIONS:
        path = module.params[option]
        if path and not (os.path.isfile(path) and os.access(path, os.X_OK)):
            module.fail_json(
                msg="%s=%s is not an executable file; give the path of %s or leave %s unset to search PATH"
                % (option, path, tool, option)
            )

    try:
        which, run = module_tools(module, dict((tool, module.params[option]) for tool, option in PATH_OPTIONS))
        result = collect_gpus(which, run, vendors=module.params["vendors"])
    except GpuFactsError as exc:
        module.fail_json(msg="Cannot read GPU facts: %s" % exc)

    for warning in result["warnings"]:
        module.warn(warning)

    module.exit_json(
        changed=False,
        ansible_facts=dict(gpus=result["gpus"], gpu_count=result["gpu_count"]),
        gpu_sources=result["sources"],
    )


if __name__ == "__main__":
    main()
