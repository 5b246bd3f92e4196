#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: capacity_check
short_description: Judge whether a host can run a large language model
version_added: 0.1.0
description:
  - Probes the host's GPUs (the same code as M(llmops.deploy.gpu_info)), RAM, CPU cores and the free disk at the model
    directory, sizes the model (the same options as M(llmops.deploy.model_sizing)) and judges every resource.
  - Each resource gets a verdict. V(fits) means the requirement times (1 + O(reserve)) is available. V(tight) means the
    requirement is available but not the reserve. V(insufficient) means the requirement is not available. The overall
    verdict is the worst one, and each resource has a reason in plain words.
  - GPU plans use power-of-two tensor-parallel groups. A precision the GPU cannot run (FP8 below compute capability 8.9,
    BF16 below 8.0) makes GPU memory V(insufficient) with that reason.
  - With O(method=detailed) (or O(method=auto) and a config), GPU memory is checked per GPU. Each GPU must hold its
    share of the weights, its KV heads' cache for O(context_length) x O(concurrency), the activation peak and the
    runtime overhead within O(gpu_memory_utilization) of its memory. Tensor-parallel sizes must divide the attention
    heads, and KV heads are replicated when TP exceeds them. The plan reports the largest context and concurrency that
    fit. The reason quotes the guide's rule-of-thumb figure where the two methods differ by more than 10 percent.
  - With O(hardware), plans against declared hardware instead of probing; parts not declared are probed. A fully
    declared host needs no probe, so the check can run on the controller for hosts not yet reachable.
  - Planning uses total device memory. Memory already used by other processes on a live host is reported and warned
    about.
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
  - llmops.deploy.model_spec
options:
  target:
    description:
      - V(gpu) runs the model on GPUs. V(cpu) plans CPU-only inference, so only RAM, cores and disk are judged.
    type: str
    choices: [gpu, cpu]
    default: gpu
  model_dir:
    description:
      - Where the weights will go. Free disk is measured there, or at its nearest existing parent.
    type: path
    default: /opt/llmops/models
  disk_required_bytes:
    description:
      - Exact bytes still to download, when known (for example from the hub's file listing). Defaults to the sizing
        method's weights size.
    type: int
  hardware:
    description:
      - Declared hardware to plan against instead of probing. Parts not given are probed.
      - C(gpus) is a list of dicts with the keys of M(llmops.deploy.gpu_info)'s GPUs; C(memory_total_mib) and
        C(compute_capability) suffice, and a known C(name) such as C(A100 80GB) fills both.
      - C(gpu_model) with C(gpu_count) is a shorthand for C(gpu_count) identical known GPUs.
      - C(memory_total_mib) is host RAM in MiB, C(cpu_cores) the core count, C(disk_free_mib) free disk in MiB.
    type: dict
  fail_on:
    description:
      - Which overall verdict fails the task. V(never) only reports.
    type: str
    choices: [insufficient, tight, never]
    default: insufficient
notes:
  - The guide's GB are decimal (10^9 bytes); C(nvidia-smi) reports MiB (2^20 bytes). Comparisons use exact bytes.
seealso:
  - module: llmops.deploy.model_sizing
  - module: llmops.deploy.gpu_info
  - name: The preflight role
    description: Runs this module on every host and writes one fleet report.
    link: https://example.invalid/llmops/deploy/roles/preflight
"""

EXAMPLES = r"""
- name: Can this host serve DeepSeek-R1-Distill-Qwen-32B at FP16?
  llmops.deploy.capacity_check:
    model: deepseek-ai/DeepSeek-R1-Distill-Qwen-32B
    precision: fp16
  register: capacity

- name: Report without failing, keeping 30 % headroom
  llmops.deploy.capacity_check:
    params: 70B
    precision: int8
    reserve: 0.3
    fail_on: never

- name: Check, per GPU, a downloaded model for 32k tokens and 16 users
  llmops.deploy.capacity_check:
    model: Qwen/Qwen2.5-72B-Instruct
    method: detailed
    config_path: /opt/llmops/models/Qwen/Qwen2.5-72B-Instruct
    context_length: 32768
    concurrency: 16
    kv_cache_dtype: fp8

- name: Plan against declared hardware (nothing is probed)
  llmops.deploy.capacity_check:
    model: Qwen/Qwen2.5-72B-Instruct
    precision: bf16
    hardware:
      gpu_model: H100
      gpu_count: 8
      memory_total_mib: 2097152
      cpu_cores: 112
      disk_free_mib: 4000000
  delegate_to: localhost
"""

RETURN = r"""
verdict:
  description: Overall verdict, the worst of the resources.
  returned: always
  type: str
  sample: fits
gpus_needed:
  description: Power-of-two GPU count that holds the model with the reserve; 0 for O(target=cpu); null without usable GPUs.
  returned: always
  type: int
  sample: 2
gpu_plan:
  description: The GPU plan on this host's GPUs, null without usable GPUs or for O(target=cpu). With C(detailed) it
    also has C(per_gpu_requirement_gb), C(per_gpu_breakdown_gb), C(per_gpu_budget_gb),
    C(valid_tensor_parallel_sizes), C(excluded_tensor_parallel_sizes), C(kv_heads_per_gpu), C(max_context_length)
    and C(max_concurrency) (for the configuration this host can run).
  returned: always
  type: dict
  sample: {"gpus": 2, "gpus_minimum": 2, "nodes": 1, "tensor_parallel_size": 2, "pipeline_parallel_size": 1,
           "gpu_name": "NVIDIA A100-SXM4-80GB", "description": "2 x NVIDIA A100-SXM4-80GB (80.0 GiB each), tensor parallel 2"}
resources:
  description: Per resource (C(gpu_memory), C(cpu_memory), C(cpu_cores), C(disk)) the requirement, with reserve,
    what is available, the verdict and the reason.
  returned: always
  type: dict
  sample: {"cpu_memory": {"resource": "cpu_memory", "unit": "GB", "required": 128.0, "required_with_reserve": 153.6,
           "available": 1081.9, "verdict": "fits", "reason": "host RAM: needs 128.0 GB (153.6 with reserve), has 1081.9 GB"}}
reasons:
  description: Why the verdict is not V(fits), one sentence per resource; a single line when everything fits.
  returned: always
  type: list
  elements: str
  sample: ["GPU memory: needs 96.0 GB (115.2 GB with reserve) = 2 x A100 (80.0 GiB each); host has 1 x A100 (85.9 GB)"]
details:
  description: One sentence per resource, whatever its verdict.
  returned: always
  type: list
  elements: str
  sample: ["host RAM: needs 128.0 GB (153.6 with reserve), has 1081.9 GB"]
hardware:
  description: The hardware judged (probed and declared parts together).
  returned: always
  type: dict
  sample: {"gpus": [], "memory_total_mib": 24017, "cpu_cores": 2, "disk_free_mib": 81000, "disk_path": "/opt/llmops/models"}
probed:
  description: Which parts of the hardware were probed on the host (the rest was declared).
  returned: always
  type: list
  elements: str
  sample: ["gpus", "memory_total_mib", "cpu_cores", "disk_free_mib"]
gpu_source:
  description: The tool the GPUs were read with (C(nvidia-smi), C(amd-smi), C(rocm-smi)), null when none was found or
    the GPUs were declared.
  returned: always
  type: str
  sample: nvidia-smi
sizing:
  description: The full sizing result, as M(llmops.deploy.model_sizing) returns it.
  returned: always
  type: dict
  sample: {"params": 32000000000, "precision": "fp16", "gpu_memory_gb": 96.0, "cpu_memory_gb": 128.0, "cpu_cores": 32}
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.deploy.plugins.module_utils import capacity, gpu_facts, host_resources, sizing
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

FAIL_LEVELS = {"insufficient": ("insufficient",), "tight": ("tight", "insufficient"), "never": ()}


def build_module():
    argument_spec = sizing.model_spec_argument_spec()
    argument_spec.update(
        target=dict(type="str", choices=["gpu", "cpu"], default="gpu"),
        model_dir=dict(type="path", default="/opt/llmops/models"),
        disk_required_bytes=dict(type="int"),
        hardware=dict(type="dict"),
        fail_on=dict(type="str", choices=["insufficient", "tight", "never"], default="insufficient"),
    )
    return AnsibleModule(
        argument_spec=argument_spec,
        required_one_of=sizing.MODEL_SPEC_REQUIRED_ONE_OF,
        mutually_exclusive=sizing.MODEL_SPEC_MUTUALLY_EXCLUSIVE,
        supports_check_mode=True,
    )


def probe_missing(module, declared):
    """Probe the parts of the hardware that were not declared. Returns (hardware, probed, gpu_source, warnings)."""
    hardware = dict(declared)
    probed = []
    warnings = []
    gpu_source = None
    if hardware.get("gpus") is None and module.params["target"] == "gpu":

        def which(name):
            return module.get_bin_path(name, opt_dirs=list(gpu_facts.TOOL_EXTRA_DIRS.get(name, ())))

        def run(argv):
            # A tool that cannot be executed becomes a warning in collect_gpus, not a failed task.
            return module.run_command(argv, environ_update={"LC_ALL": "C"}, handle_exceptions=False)

        found = gpu_facts.collect_gpus(which, run)
        hardware["gpus"] = found["gpus"]
        gpu_source = ", ".join(found.get("sources") or []) or found["source"]
        warnings.extend(found["warnings"])
        probed.append("gpus")
    if hardware.get("memory_total_mib") is None:
        hardware["memory_total_mib"] = host_resources.probe_memory()["memory_total_mib"]
        probed.append("memory_total_mib")
    if hardware.get("cpu_cores") is None:
        hardware["cpu_cores"] = host_resources.probe_cpu_cores()
        probed.append("cpu_cores")
    if hardware.get("disk_free_mib") is None:
        disk = host_resources.probe_disk(module.params["model_dir"])
        hardware["disk_free_mib"] = disk["disk_free_mib"]
        probed.append("disk_free_mib")
    hardware.setdefault("disk_path", module.params["model_dir"])
    return hardware, probed, gpu_source, warnings


def main():
    module = build_module()
    p = module.params
    try:
        sized = sizing.size_model(**sizing.size_model_options(p))
        declared = capacity.normalize_hardware(p["hardware"])
        # Keep only what was declared, so the rest is probed.
        declared = dict((k, v) for k, v in declared.items() if v is not None)
        hardware, probed, gpu_source, warnings = probe_missing(module, declared)
        if p["hardware"] and p["hardware"].get("disk_path"):
            hardware["disk_path"] = p["hardware"]["disk_path"]
        result = capacity.assess(sized, hardware, reserve=p["reserve"], gpus_per_node=p["gpus_per_node"],
                                 target=p["target"], disk_required_bytes=p["disk_required_bytes"])
    except (SizingInputError, gpu_facts.GpuFactsError) as exc:
        module.fail_json(msg=str(exc), field=getattr(exc, "field", None))
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="capacity_check failed: %s" % exc, exception=traceback.format_exc())
    for warning in warnings + result.pop("warnings") + (sized.get("sizing_warnings") or []):
        module.warn(warning)
    result.update(probed=probed, gpu_source=gpu_source, sizing=sized)
    if result["verdict"] in FAIL_LEVELS[p["fail_on"]]:
        module.fail_json(
            msg="%s at %s is %s on this host: %s" % (sized["model"] or sized["params_label"], sized["precision_label"],
                                                     result["verdict"], "; ".join(result["reasons"])),
            **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
