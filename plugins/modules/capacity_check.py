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
    declared host needs no probe, so the check can run on the controller for hosts not yet reachable. With
    O(probe=false) nothing is probed and a part that is not declared fails the task, naming it.
  - With O(candidates), the host is probed once and every candidate model is judged against that one probe; one is
    chosen with the rules of P(llmops.deploy.select_model#filter) (scenario band, precision support, fits before
    tight, the guide's precision advice). The top-level result is then the chosen candidate's.
  - With O(judge=controller), the host is only probed and the judgement is left to the controller (see O(judge)).
  - Planning uses total device memory. Memory already used by other processes on a live host is reported and warned
    about.
author:
  - llmops.deploy developers (@llmops)
attributes:
  action:
    description: Has an action plugin, run on the controller.
    support: full
    details: With O(judge=controller) the options are checked on the controller and the host runs
      M(llmops.deploy.hardware_probe).
  check_mode:
    support: full
    details: The module only reads; check mode runs the same probes and returns the same result.
  diff_mode:
    support: none
extends_documentation_fragment:
  - llmops.deploy.attributes
  - llmops.deploy.model_spec
  - llmops.deploy.declared_hardware
options:
  target:
    description:
      - V(gpu) runs the model on GPUs. V(cpu) plans CPU-only inference, so only RAM, cores and disk are judged.
    type: str
    choices: [gpu, cpu]
    default: gpu
  disk_required_bytes:
    description:
      - Exact bytes still to download, when known (for example from the hub's file listing). Defaults to the sizing
        method's weights size.
    type: int
  probe:
    description:
      - Probe the parts of the hardware that O(hardware) does not declare. V(false) probes nothing, so a check run
        on the controller for a host that is not reachable never measures the controller instead; every part
        (C(gpus) or C(gpu_model) and C(gpu_count) for O(target=gpu), C(memory_total_mib), C(cpu_cores),
        C(disk_free_mib)) must then be declared.
    type: bool
    default: true
  judge:
    description:
      - Where the judgement is made. V(host) probes and judges here and returns the full result.
      - V(controller) only probes (the parts O(hardware) does not declare) and returns C(hardware), C(probed),
        C(gpu_source) and C(options), the judgement options as given. Registered from every host, these are what the
        P(llmops.deploy.capacity_plans#filter) filter judges on the controller in one call, with the same code and
        the same result as V(host). The host runs M(llmops.deploy.hardware_probe), the probing code alone, instead of
        this module (the preflight role does this).
      - With V(controller) the model is not needed on the host (O(model), O(params), O(config), O(config_path) or
        O(candidates) may all be left out). What is the same for every host, such as the candidates and the
        calibrations, can be given to the filter once instead of being sent to every host.
      - The options given are checked all the same, on the controller with V(controller), so bad input fails
        before the host is contacted.
      - V(controller) cannot run with C(async).
    type: str
    choices: [host, controller]
    default: host
  candidates:
    description:
      - Candidate models to judge against this host's one probe, and to choose from. Each is sized with the sizing
        options of this module (O(method), O(context_length), O(reserve), ...), its own model, size and precision.
      - P(llmops.deploy.model_candidates#filter) with C(check_args=true) gives this list from ModelScope ids (names
        are read once, on the controller).
      - Mutually exclusive with O(model), O(params), O(config), O(config_path) and O(weights).
    type: list
    elements: dict
    suboptions:
      key:
        description: Unique name of the candidate in the result (defaults to the model id, or C(<params> <PRECISION>)).
        type: str
      label:
        description: A name for the candidate, used as its key when O(candidates[].key) is not given.
        type: str
      model:
        description: ModelScope id, C(owner/name).
        type: str
      params:
        description: Parameter count, when the name does not say or to override it.
        type: raw
      precision:
        description: Precision, when the name does not say or to override it.
        type: str
      precision_source:
        description: Where the precision came from, as P(llmops.deploy.model_candidates#filter) says.
        type: str
        choices: [name, given, default]
      config:
        description: The model's C(config.json) content (detailed sizing).
        type: dict
      config_path:
        description: A C(config.json) or model directory on the host (detailed sizing).
        type: path
      weights:
        description: Summary of the model's safetensors headers (exact weight bytes).
        type: dict
      disk_required_bytes:
        description: Exact bytes to download for this candidate, when known.
        type: int
  scenario:
    description:
      - Deployment scenario of the choice (guide 3.1), which sets the size band and the precisions preferred. Used
        with O(candidates), and with one model to say whether it is inside the band.
      - One of V(edge), V(enterprise), V(complex), V(research) (or a name the guide uses for one).
    type: str
  fail_on:
    description:
      - Which overall verdict fails the task. V(never) only reports. With O(candidates), the verdict of the chosen
        candidate (V(insufficient) when none can be used).
    type: str
    choices: [insufficient, tight, never]
    default: insufficient
  calibrations:
    description:
      - Measured engine constants for several GPUs, as the C(calibrations) key the
        C(llmops.deploy.calibration_lookup_all) filter returns from the calibration file (what earlier trials measured).
      - The host's plan uses the constants measured on its own GPU (its first GPU's name and nvidia-smi MiB, after
        probing), says where they were measured, and keeps the modelled value beside. A host whose GPU has no trial is
        planned with the modelled constants. O(calibration) (one set for every host) wins over this option.
    type: list
    elements: dict
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

- name: Probe every host, then judge the whole fleet once on the controller
  llmops.deploy.capacity_check:
    model: Qwen/Qwen2.5-72B-Instruct-AWQ
    judge: controller
  register: probe

- name: Judge every probed host in one call
  ansible.builtin.set_fact:
    plans: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'probe')))
               | llmops.deploy.capacity_plans }}"
  run_once: true

- name: Probe the host once and choose among candidate models
  llmops.deploy.capacity_check:
    candidates: "{{ ['Qwen/Qwen2.5-32B-Instruct', 'Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8', 'Qwen/Qwen2.5-7B-Instruct']
                    | llmops.deploy.model_candidates('bf16', check_args=true) }}"
    scenario: enterprise
    fail_on: never
  register: choice
"""

RETURN = r"""
verdict:
  description: Overall verdict, the worst of the resources.
  returned: unless O(judge=controller)
  type: str
  sample: fits
gpus_needed:
  description: Power-of-two GPU count that holds the model with the reserve; 0 for O(target=cpu); null without usable GPUs.
  returned: unless O(judge=controller)
  type: int
  sample: 2
target:
  description: What the model was planned to run on, V(gpu) or V(cpu) (O(target)).
  returned: unless O(judge=controller)
  type: str
  sample: gpu
gpu_plan:
  description: The GPU plan on this host's GPUs, null without usable GPUs or for O(target=cpu). With C(detailed) it
    also has C(per_gpu_requirement_gb), C(per_gpu_breakdown_gb), C(per_gpu_budget_gb),
    C(valid_tensor_parallel_sizes), C(excluded_tensor_parallel_sizes), C(kv_heads_per_gpu), C(kv_heads_replicated),
    C(max_context_length), C(max_concurrency), C(fit_configuration) (for the configuration this host can run),
    C(engine_memory) and C(start_refused).
  returned: unless O(judge=controller)
  type: dict
  sample: {"gpus": 2, "gpus_minimum": 2, "nodes": 1, "tensor_parallel_size": 2, "pipeline_parallel_size": 1,
           "gpu_name": "NVIDIA A100-SXM4-80GB", "description": "2 x NVIDIA A100-SXM4-80GB (80.0 GiB each), tensor parallel 2"}
  contains:
    engine_memory:
      description:
        - What the detailed plan took from the engine's memory rules for the GPU it planned on (vLLM's own budget,
          read in its source for the pinned version), or from a calibration an earlier trial measured.
        - C(torch_total_gib) is the device total the engine sees (less than C(nvidia-smi)'s), C(budget_gib) that
          times C(gpu_memory_utilization); C(max_num_batched_tokens) and C(max_num_seqs) the profiling batch (its
          default depends on the GPU's memory class and the entry point, C(batch_source) says which);
          C(activation_gib), C(non_torch_gib) and C(cuda_graph_gib) the parts the engine keeps before the KV
          cache, each with its C(*_source) (C(estimated), C(read) or C(measured)); C(starts) and C(start_check)
          whether utilisation leaves room for the CUDA context; C(modelled_gib) the modelled parts beside any
          measured ones; C(calibration) where the measured ones come from, C(calibration_ignored) why a calibration
          for another engine version or GPU was not applied.
      returned: with O(method=detailed) (or O(method=auto) and a config) on GPUs
      type: dict
      sample: {"engine": "vllm", "engine_version": "0.32.0", "torch_total_gib": 79.18, "budget_gib": 71.26,
               "max_num_batched_tokens": 8192, "max_num_seqs": 1024, "activation_gib": 1.03, "non_torch_gib": 0.63,
               "cuda_graph_gib": 0.06, "cuda_graph_in_budget": true, "starts": true,
               "start_check": "gpu_memory_utilization 0.9 leaves 7.92 GiB for the CUDA context (about 0.5 GiB needed)",
               "modelled_gib": {"activation_gib": 1.03}, "calibration": null, "calibration_ignored": null}
    start_refused:
      description: Why vLLM would refuse to start on these GPUs at this O(gpu_memory_utilization) (it leaves no room
        for the CUDA context); null when it starts. The plan then has no GPU count.
      returned: with O(method=detailed) (or O(method=auto) and a config) on GPUs
      type: str
      sample: "gpu_memory_utilization 1.0 leaves 0.00 GiB for the CUDA context (about 0.5 GiB needed)"
resources:
  description: Per resource (C(gpu_memory), C(cpu_memory), C(cpu_cores), C(disk)) the requirement, with reserve,
    what is available, the verdict and the reason.
  returned: unless O(judge=controller)
  type: dict
  sample: {"cpu_memory": {"resource": "cpu_memory", "unit": "GB", "required": 128.0, "required_with_reserve": 153.6,
           "available": 1081.9, "verdict": "fits", "reason": "host RAM: needs 128.0 GB (153.6 with reserve), has 1081.9 GB"}}
reasons:
  description: Why the verdict is not V(fits), one sentence per resource; a single line when everything fits.
  returned: unless O(judge=controller)
  type: list
  elements: str
  sample: ["GPU memory: needs 96.0 GB (115.2 GB with reserve) = 2 x A100 (80.0 GiB each); host has 1 x A100 (85.9 GB)"]
details:
  description: One sentence per resource, whatever its verdict.
  returned: unless O(judge=controller)
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
  description: The full sizing result, as M(llmops.deploy.model_sizing) returns it (of the chosen candidate with
    O(candidates); null when none is chosen).
  returned: unless O(judge=controller)
  type: dict
  sample: {"params": 32000000000, "precision": "fp16", "gpu_memory_gb": 96.0, "cpu_memory_gb": 128.0, "cpu_cores": 32}
selection:
  description:
    - The choice, as P(llmops.deploy.select_model#filter) returns it. C(chosen) (candidate key, null when none can be
      used), C(chosen_model), C(chosen_candidate), C(justification), C(verdict), C(ranked), C(rejected) (with the
      rule and reason of each) and C(evaluations) (one per candidate, in order).
    - With one model, the model is the only candidate; it is chosen where it can be deployed.
  returned: unless O(judge=controller)
  type: dict
  sample: {"chosen": "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8", "verdict": "fits", "rejected": [{"key":
           "Qwen/Qwen2.5-32B-Instruct", "rule": "resources", "reason": "needs 96.0 GB of GPU memory, host has 85.899 GB"}]}
verdicts:
  description: Candidate key -> its verdict on this host (V(fits), V(tight), V(insufficient) or V(failed)).
  returned: when O(candidates) is given, unless O(judge=controller)
  type: dict
  sample: {"Qwen/Qwen2.5-32B-Instruct": "insufficient", "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8": "fits"}
options:
  description:
    - With O(judge=controller), the judgement options as given (those left unset are not in it), for
      P(llmops.deploy.capacity_plans#filter) beside C(hardware).
  returned: when O(judge=controller)
  type: dict
  sample: {"model": "Qwen/Qwen2.5-72B-Instruct-AWQ", "method": "auto", "reserve": 0.2, "target": "gpu",
           "fail_on": "insufficient", "model_dir": "/opt/llmops/models"}
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.deploy.plugins.module_utils import check_spec, gpu_facts, hardware_probe
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError


def build_module():
    spec = check_spec.check_argument_spec()
    spec["judge"] = dict(type="str", choices=["host", "controller"], default="host")
    return AnsibleModule(
        argument_spec=spec,
        # The model (or the candidates) is needed where the judgement is made: here with judge=host; with
        # judge=controller the capacity_plans filter asks for it (it may give the candidates to every host at once).
        required_if=[("judge", "host", group, True) for group in check_spec.CHECK_REQUIRED_ONE_OF],
        mutually_exclusive=check_spec.CHECK_MUTUALLY_EXCLUSIVE,
        supports_check_mode=True,
    )


def probe_missing(module, declared):
    """Probe the parts of the hardware that were not declared. Returns (hardware, probed, gpu_source, warnings)."""
    return hardware_probe.probe_with_module(module, declared, module.params["target"], module.params["model_dir"])


def probe_for_controller(module, p):
    """judge=controller: probe the parts not declared and return what capacity_plans judges with, nothing more."""
    if not p["probe"]:
        module.fail_json(msg=check_spec.JUDGE_CONTROLLER_WITHOUT_PROBE, field="judge")
    hardware, probed, gpu_source = hardware_probe.probe_or_fail(module, p["hardware"] or {}, p["target"],
                                                                p["model_dir"])
    module.exit_json(changed=False, hardware=hardware, probed=probed, gpu_source=gpu_source,
                     options=check_spec.controller_options(module.params))


def main():
    module = build_module()
    p = dict(module.params, hardware=check_spec.declared_hardware(module.params["hardware"]))
    if p["judge"] == "controller":
        probe_for_controller(module, p)
    # The judgement's code is compiled only where it runs (judge=controller does not need it on the host).
    from ansible_collections.llmops.deploy.plugins.module_utils import model_selection
    try:
        result, warnings = model_selection.judge_host(
            p, (lambda declared: probe_missing(module, declared)) if p["probe"] else None)
    except (SizingInputError, gpu_facts.GpuFactsError) as exc:
        module.fail_json(msg=str(exc), field=getattr(exc, "field", None))
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="capacity_check failed: %s" % exc, exception=traceback.format_exc())
    for warning in warnings:
        module.warn(warning)
    if model_selection.fails(result, p["fail_on"]):
        module.fail_json(msg=model_selection.failure_message(result), **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
