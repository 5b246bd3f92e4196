# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What capacity_check and hardware_probe take alike to probe a host: the declared hardware
(check_spec.HARDWARE_OPTIONS), which is not probed, and the model directory, where free disk is measured."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  model_dir:
    description:
      - Where the weights will go. Free disk is measured there, or at its nearest existing parent.
    type: path
    default: /opt/llmops/models
  hardware:
    description:
      - The host's hardware as declared (in the inventory, for instance) instead of probing it. The parts given are
        not probed; the others are.
    type: dict
    suboptions:
      gpus:
        description:
          - The host's GPUs, with the keys of M(llmops.deploy.gpu_info)'s GPUs; C(memory_total_mib) and
            C(compute_capability) suffice, and a known C(name) such as C(A100 80GB) fills both. An empty list declares
            a host without GPUs.
          - Mutually exclusive with O(hardware.gpu_model) and O(hardware.gpu_count).
        type: list
        elements: dict
        suboptions:
          index:
            description: The GPU's index (its position in the list when not given).
            type: int
          vendor:
            description: V(nvidia) or V(amd) (any case); V(nvidia) when not given.
            type: str
          name:
            description: The GPU's name as the driver reports it, or a known model such as C(H100) or C(L40S).
            type: str
          uuid:
            description: The GPU's UUID (reported back, not used for planning).
            type: str
          pci_bus_id:
            description: The GPU's PCI bus id (reported back, not used for planning).
            type: str
          driver_version:
            description: The driver's version (reported back, not used for planning).
            type: str
          memory_total_mib:
            description: Total memory in MiB, as C(nvidia-smi) reports it; from the known O(hardware.gpus[].name) when
              not given.
            type: int
          memory_used_mib:
            description: Memory in MiB already used by other processes (warned about when large).
            type: int
          memory_free_mib:
            description: Free memory in MiB.
            type: int
          compute_capability:
            description: Compute capability such as C(8.9) (a string or a number); from the known name when not given.
            type: raw
          arch:
            description: Architecture name (C(gfx942) for AMD GPUs).
            type: str
          unified_memory:
            description: Whether the GPU shares host memory (Grace Hopper, Jetson, MI300A).
            type: bool
          gpu_class:
            description: The class M(llmops.deploy.gpu_info) reports; recomputed from the name.
            type: str
      gpu_model:
        description: Shorthand with O(hardware.gpu_count) for that many identical GPUs of a known model (C(H100),
          C(A100 80GB), C(RTX 4090), ...).
        type: str
      gpu_count:
        description: How many GPUs of O(hardware.gpu_model) the host has (V(0) declares a host without GPUs).
        type: int
      memory_total_mib:
        description: Host RAM in MiB.
        type: int
      cpu_cores:
        description: CPU core count.
        type: int
      disk_free_mib:
        description: Free disk at the model directory in MiB.
        type: int
      disk_path:
        description: Where free disk was measured (reported back).
        type: str
"""
