#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: model_sizing
short_description: Compute the GPU memory, host RAM, disk and CPU cores a large language model needs
version_added: 0.1.0
description:
  - Sizes a model from its parameter count and precision, or from a ModelScope id whose name carries them
    (for example C(deepseek-ai/DeepSeek-R1-Distill-Qwen-32B) or C(okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8)).
  - The C(seed) method is the deployment guide's section 2.1, exactly. Parameter memory is parameters times bytes per
    parameter (INT4 0.5, INT8 1, FP8 1, FP16 2, BF16 2, FP32 4). GPU memory is parameter memory times 1.5. Host RAM is
    parameter memory times 2. Recommended CPU cores come from the guide's tables 2.3.1 (FP16) and 2.3.2 (FP32).
  - Sizes are in the guide's GB (10^9 bytes), with GiB (2^30 bytes) beside them for comparison with C(nvidia-smi).
  - The C(detailed) method sizes from the model's architecture (its C(config.json), O(config) or O(config_path)).
    Weights are exact bytes from safetensors headers when given (O(weights), or a local model directory in
    O(config_path)), else parameters computed from the config times the effective bits of the format (AWQ/GPTQ with
    group scales, FP8, bitsandbytes, GGUF types). The KV cache is computed per token from the config (GQA/MQA/MHA,
    DeepSeek MLA, sliding-window layers capped at their window) times O(context_length) times O(concurrency).
    The activation peak, the non-torch memory and the CUDA graph memory follow the engine's own rules (the pinned
    vLLM 0.32.0, or O(engine_version)). The profiling batch O(max_num_batched_tokens) defaults by the GPU planned on
    and O(engine_entry_point), and the engine keeps O(gpu_memory_utilization) of the memory it sees, less than
    C(nvidia-smi)'s total. Measured constants from O(calibration) replace the modelled ones, with the modelled value
    beside. Every figure says whether it was read, estimated or measured.
  - C(auto) uses C(detailed) when a config is given, else C(seed). Detailed results keep every seed key and add the
    guide's figures under RV(seed) so both can be shown.
  - Given a GPU model (O(gpu)) or a per-GPU memory (O(gpu_memory_mib)), also plans how many GPUs hold the model.
    C(seed) plans the total as power-of-two tensor-parallel groups, split into nodes of at most O(gpus_per_node).
    C(detailed) checks each GPU of each valid tensor-parallel size (it must divide the attention heads; KV heads are
    replicated when TP exceeds them), then pipeline stages, and reports the largest context and concurrency that fit.
  - Pure computation; it reads nothing from the host and changes nothing.
author:
  - llmops.deploy developers (@llmops)
attributes:
  check_mode:
    support: full
    details: The module only computes; check mode returns the same result.
  diff_mode:
    support: none
extends_documentation_fragment:
  - llmops.deploy.attributes
  - llmops.deploy.model_spec
options:
  target:
    description:
      - V(gpu) sizes for GPUs. V(cpu) plans CPU-only inference (vLLM's CPU backend) - host RAM as weights + the
        KV-cache space O(cpu_kv_cache_space_gib) + the CPU engine's runtime, the guide's CPU-memory rule beside it,
        and CPU cores. A CPU result has no GPU figure at all (RV(cpu_plan) instead).
    type: str
    choices: [gpu, cpu]
    default: gpu
  gpu:
    description:
      - A GPU model to plan for, for example C(A100 80GB), C(H100), C(RTX 4090), C(L40S), C(MI300X).
      - Mutually exclusive with O(gpu_memory_mib). Not with O(target=cpu).
    type: str
  gpu_memory_mib:
    description:
      - Memory of one GPU in MiB, as C(nvidia-smi --query-gpu=memory.total) reports it, to plan for.
    type: int
notes:
  - The guide's GB are decimal (10^9 bytes); C(nvidia-smi) reports MiB (2^20 bytes). Comparisons use exact bytes.
seealso:
  - module: llmops.deploy.capacity_check
  - module: llmops.deploy.gpu_info
"""

EXAMPLES = r"""
- name: Size a 32B model at INT8
  llmops.deploy.model_sizing:
    params: 32B
    precision: int8

- name: Size a ModelScope model from its name (32B, FP8) and plan it on H100s
  llmops.deploy.model_sizing:
    model: okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8
    gpu: H100
  register: sized

- name: Show how many GPUs it needs
  ansible.builtin.debug:
    msg: "{{ sized.gpu_memory_gb }} GB of GPU memory: {{ sized.gpu_plan.description }}"

- name: Size Qwen2.5-7B from its config.json for 32k tokens and 8 users on L40S GPUs
  llmops.deploy.model_sizing:
    model: Qwen/Qwen2.5-7B-Instruct
    method: detailed
    config_path: /opt/llmops/models/Qwen/Qwen2.5-7B-Instruct
    context_length: 32768
    concurrency: 8
    gpu: L40S
  register: detailed

- name: Show the per-GPU plan and what was read or estimated
  ansible.builtin.debug:
    msg:
      - "{{ detailed.gpu_plan.description }}"
      - "{{ detailed.breakdown.weights.source }}"
      - "guide rule of thumb: {{ detailed.seed.gpu_memory_gb }} GB, detailed: {{ detailed.gpu_memory_gb }} GB"

- name: Size a name without a precision at the inventory's default (a name that says its precision keeps it)
  llmops.deploy.model_sizing:
    model: LLM-Research/Meta-Llama-3.1-8B-Instruct
    default_precision: bf16

- name: Plan a CPU-only host - host RAM with a 4 GiB KV cache (VLLM_CPU_KVCACHE_SPACE=4) and cores
  llmops.deploy.model_sizing:
    model: Qwen/Qwen2.5-0.5B-Instruct
    default_precision: bf16
    target: cpu
    cpu_kv_cache_space_gib: 4
  register: cpu_sized

- name: Show the host RAM and the KV-cache tokens the CPU engine will report
  ansible.builtin.debug:
    msg: "{{ cpu_sized.cpu_plan.host_ram_gb }} GB of host RAM, {{ cpu_sized.cpu_plan.kv_cache_tokens }} KV tokens"

- name: Plan on an A100 80GB with what earlier trials measured there (see llmops.deploy.calibration_lookup)
  llmops.deploy.model_sizing:
    model: LLM-Research/Meta-Llama-3.1-8B-Instruct
    method: detailed
    config_path: /opt/llmops/models/LLM-Research/Meta-Llama-3.1-8B-Instruct
    gpu: A100 80GB
    max_num_batched_tokens: 4096
    calibration: "{{ found.constants }}"
  vars:
    found: >-
      {{ (lookup('ansible.builtin.file', 'reports/calibration.json', errors='ignore') | default('{}', true)
          | from_json) | llmops.deploy.calibration_lookup('0.32.0', 'NVIDIA A100-SXM4-80GB', 81920) }}
  register: calibrated

- name: Show what the plan took from the engine's rules, and what was measured
  ansible.builtin.debug:
    msg:
      - "{{ calibrated.gpu_plan.engine_memory.activation_source }}"
      - "{{ calibrated.gpu_plan.engine_memory.calibration_note | default('no calibration used') }}"

- name: Size with a 30 % reserve on 24 GiB cards
  llmops.deploy.model_sizing:
    params: 7B
    precision: fp16
    reserve: 0.3
    gpu_memory_mib: 24564
"""

RETURN = r"""
target:
  description: The target planned for, C(gpu) or C(cpu).
  returned: always
  type: str
  sample: gpu
nominal_params:
  description: The size the guide's table rows are picked by (the name's size, else the parameter count).
  returned: always
  type: int
  sample: 8000000000
precision_source:
  description: Where the precision came from (asked for, model name, config.json, safetensors headers,
    default_precision, assumed).
  returned: always
  type: str
  sample: model name
assumptions:
  description: What was assumed because nothing said it (also in RV(sizing_warnings) and emitted as warnings),
    such as FP16 for a name without a precision.
  returned: always
  type: list
  elements: str
  sample: ["precision: LLM-Research/Meta-Llama-3.1-8B-Instruct does not say its precision ...; sized at FP16 ..."]
cpu_plan:
  description: With O(target=cpu), the host plan. C(host_ram_bytes) (weights + KV-cache space + runtime),
    C(host_ram_gb), C(weights_bytes), C(kv_cache_space_gib), C(kv_cache_space_bytes), C(kv_cache_bytes_per_token)
    and C(kv_cache_tokens) (null when no config or published shapes tell the KV layout), C(runtime_bytes), the
    guide's rule C(guide_cpu_memory_gb), and C(engine_env) (C(VLLM_CPU_KVCACHE_SPACE)).
  returned: when target is cpu
  type: dict
  sample: {"host_ram_bytes": 6252154880, "kv_cache_space_gib": 4, "kv_cache_tokens": 349525,
           "runtime_bytes": 1926258176, "guide_cpu_memory_gb": 1.976}
method:
  description: The sizing method used (C(auto) resolved to C(seed) or C(detailed)).
  returned: always
  type: str
  sample: seed
method_requested:
  description: The method asked for.
  returned: always
  type: str
  sample: auto
model:
  description: The ModelScope id, when one was given.
  returned: always
  type: str
  sample: okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8
model_info:
  description: What the ModelScope name says (see the C(llmops.deploy.parse_model_id) filter); null without O(model).
  returned: always
  type: dict
  sample: {"family": "DeepSeek", "series": "R1", "distilled": true, "distill_base": "Qwen", "params_label": "32B"}
params:
  description: Parameter count.
  returned: always
  type: int
  sample: 32000000000
params_label:
  description: Parameter count, short form.
  returned: always
  type: str
  sample: 32B
precision:
  description: Canonical precision.
  returned: always
  type: str
  sample: int8
precision_label:
  description: Precision as the guide writes it.
  returned: always
  type: str
  sample: INT8
bytes_per_param:
  description: Bytes per parameter (guide table 2.2); with C(detailed), or a quantised format known by name (AWQ,
    GPTQ, FP8, bitsandbytes), the stored weights' bytes divided by the parameters.
  returned: always
  type: float
  sample: 1.0
param_memory_gb:
  description: Parameter memory in GB (10^9 bytes).
  returned: always
  type: float
  sample: 32.0
param_memory_gib:
  description: Parameter memory in GiB (2^30 bytes).
  returned: always
  type: float
  sample: 29.8
gpu_memory_gb:
  description: GPU memory needed, GB (parameter memory x 1.5 with the seed method; with C(detailed), weights + KV
    cache + activations + overhead on one GPU divided by O(gpu_memory_utilization)).
  returned: when target is gpu
  type: float
  sample: 48.0
gpu_memory_gib:
  description: GPU memory needed, GiB.
  returned: when target is gpu
  type: float
  sample: 44.7
gpu_memory_with_reserve_gb:
  description: GPU memory needed with the reserve, GB.
  returned: when target is gpu
  type: float
  sample: 57.6
cpu_memory_gb:
  description: Host RAM needed, GB (parameter memory x 2 with the seed method; with O(target=cpu), weights +
    KV-cache space + runtime).
  returned: always
  type: float
  sample: 64.0
cpu_memory_gib:
  description: Host RAM needed, GiB.
  returned: always
  type: float
  sample: 59.6
cpu_memory_with_reserve_gb:
  description: Host RAM needed with the reserve, GB.
  returned: always
  type: float
  sample: 76.8
disk_gb:
  description: Disk needed for the weights, GB.
  returned: always
  type: float
  sample: 32.0
disk_gib:
  description: Disk needed for the weights, GiB.
  returned: always
  type: float
  sample: 29.8
cpu_cores:
  description: Recommended minimum CPU cores (guide tables 2.3.1 and 2.3.2).
  returned: always
  type: int
  sample: 32
cpu_cores_max:
  description: Upper end of the guide's range (FP32 table), null where the guide gives one number or an open end.
  returned: always
  type: int
  sample: null
cpu_cores_label:
  description: The recommendation as the guide writes it, such as C(32), C(8-16) or C(128+).
  returned: always
  type: str
  sample: "32"
reserve:
  description: The reserve fraction used.
  returned: always
  type: float
  sample: 0.2
basis:
  description: Where each figure comes from, in words.
  returned: always
  type: dict
  sample: {"gpu_memory": "parameter memory x 1.5 (guide 2.1: weights + activations + KV cache + framework overhead)"}
requirements_bytes:
  description: The requirements in exact bytes (no C(gpu_memory) with O(target=cpu)).
  returned: always
  type: dict
  sample: {"param_memory": 32000000000, "gpu_memory": 48000000000, "cpu_memory": 64000000000, "disk": 32000000000}
breakdown:
  description: GPU memory on one GPU by part (C(weights), C(kv_cache), C(activations), C(overhead),
    C(utilization_headroom)), each with C(bytes), C(gb), C(gib) and C(source) (C(read:) or C(estimated:) and why).
  returned: when method is detailed and target is gpu
  type: dict
  sample: {"kv_cache": {"bytes": 1073741824, "gb": 1.074, "gib": 1.0,
           "source": "read: config.json (GQA: 2 x 32 layers x 8 KV heads x head_dim 128 x 2, 131,072 bytes per token)"}}
weight_format:
  description: How the weights are stored, as sized.
  returned: when method is detailed, or the name (or O(precision)) names a quantised format
  type: str
  sample: AWQ int4 g128
weight_format_source:
  description: Where the weight format came from.
  returned: when method is detailed, or the name (or O(precision)) names a quantised format
  type: str
  sample: "read: config.json quantization_config (awq)"
effective_bits_per_param:
  description: Weight bits per parameter, scales and unquantised parts included.
  returned: when method is detailed, or the name (or O(precision)) names a quantised format
  type: float
  sample: 4.61
kv_cache_per_token_bytes:
  description: KV cache bytes one token takes over all layers (sliding layers included).
  returned: when method is detailed
  type: int
  sample: 131072
kv_cache_dtype:
  description: KV cache precision used.
  returned: when method is detailed
  type: str
  sample: fp8
context_length:
  description: Tokens per sequence planned for.
  returned: when method is detailed
  type: int
  sample: 8192
context_length_source:
  description: Whether the context length was asked for or defaulted.
  returned: when method is detailed
  type: str
  sample: "default: max_position_embeddings 131072 capped at 8192"
concurrency:
  description: Sequences planned for at once.
  returned: when method is detailed
  type: int
  sample: 1
gpu_memory_utilization:
  description: Share of each GPU the engine may use.
  returned: when method is detailed and target is gpu
  type: float
  sample: 0.9
architecture:
  description: The architecture facts read from config.json (attention kind, layers, heads, KV heads, head size,
    sliding window, MoE, MLA ranks, quantization, parameters computed from the shapes).
  returned: when method is detailed
  type: dict
  sample: {"attention": "gqa", "num_hidden_layers": 32, "num_key_value_heads": 8, "head_dim": 128,
           "params_total": 8030261248, "source": "read: config.json"}
sizing_warnings:
  description: Disagreements between what was asked for and what the name, config or headers say, and the
    RV(assumptions) (all emitted as warnings).
  returned: always
  type: list
  elements: str
  sample: []
plan_inputs:
  description:
    - The per-GPU planning inputs, used by M(llmops.deploy.capacity_check) and the C(llmops.deploy.gpu_plan) filter.
    - C(weights_split), C(weights_replicated), C(weights_kv_proj) (weights by tensor-parallel treatment), C(kv) (the
      KV layout), C(context_length), C(concurrency), C(gpu_memory_utilization), C(activation) and C(overhead) (bytes
      of the GPU-less requirement, recomputed by each plan for its GPU), and C(engine) (the engine options and the
      model's profile the plan recomputes them from - C(profile), C(version), C(entry_point),
      C(max_num_batched_tokens), C(max_num_seqs), C(calibration)).
  returned: when method is detailed and target is gpu
  type: dict
  sample: {"weights_split": 15523119104, "weights_replicated": 532480, "activation": 276824064,
           "overhead": 344230789, "engine": {"version": "0.32.0", "entry_point": "openai_api_server",
           "max_num_batched_tokens": null, "max_num_seqs": null, "calibration": null}}
engine_memory:
  description:
    - The engine the GPU-less requirement was sized for - C(engine), C(engine_version), C(entry_point), the
      profiling batch C(max_num_batched_tokens) and C(max_num_seqs) for the GPU memory class the requirement lands
      in, C(batch_source), C(rules_source) (where the rules were read), and the C(calibration) given.
    - RV(gpu_plan.engine_memory) has the figures for the GPU planned on.
  returned: when method is detailed and target is gpu
  type: dict
  sample: {"engine": "vllm", "engine_version": "0.32.0", "entry_point": "openai_api_server",
           "max_num_batched_tokens": 2048, "max_num_seqs": 256, "calibration": null,
           "batch_source": "default: vLLM 0.32.0 openai_api_server for a GPU under 70 GiB (...)"}
seed:
  description: The guide's seed figures for the same parameters and precision, to show beside the detailed ones.
  returned: when method is detailed
  type: dict
  sample: {"param_memory_gb": 16.061, "gpu_memory_gb": 24.091, "cpu_memory_gb": 32.121}
gpu_memory_ratio_to_seed:
  description: Detailed GPU memory divided by the seed GPU memory.
  returned: when method is detailed and target is gpu
  type: float
  sample: 1.083
differs_from_seed:
  description: Whether the detailed GPU memory differs from the guide's rule of thumb by more than 10 percent.
  returned: when method is detailed and target is gpu
  type: bool
  sample: false
gpu_plan:
  description: GPUs needed on O(gpu) or O(gpu_memory_mib); null when neither is given.
  returned: when target is gpu
  type: dict
  contains:
    gpus:
      description: Power-of-two GPU count that holds the requirement with the reserve.
      type: int
      sample: 1
    gpus_minimum:
      description: Power-of-two GPU count that holds it without the reserve.
      type: int
      sample: 1
    nodes:
      description: Nodes needed (pipeline stages).
      type: int
      sample: 1
    tensor_parallel_size:
      description: GPUs per tensor-parallel group, inside one node.
      type: int
      sample: 1
    pipeline_parallel_size:
      description: Pipeline stages across nodes.
      type: int
      sample: 1
    description:
      description: The plan in words.
      type: str
      sample: 1 x H100 (75.96 GiB each)
    max_context_length:
      description: With C(detailed), the largest context per sequence whose KV cache fits at the asked concurrency.
      type: int
      sample: 131072
    max_concurrency:
      description: With C(detailed), the sequences of the asked context that fit at once.
      type: int
      sample: 26
    valid_tensor_parallel_sizes:
      description: With C(detailed), the tensor-parallel sizes the model allows.
      type: list
      elements: int
      sample: [1, 2, 4]
    excluded_tensor_parallel_sizes:
      description: With C(detailed), the sizes left out and why.
      type: list
      elements: dict
      sample: [{"tensor_parallel_size": 8, "reason": "28 attention heads do not divide by 8"}]
    engine_memory:
      description:
        - With C(detailed), what the plan took from the engine's rules for this GPU and the configuration planned.
          C(torch_total_gib) (the memory the engine sees) and its source, C(budget_gib) (that x
          O(gpu_memory_utilization)), the profiling batch C(max_num_batched_tokens) and C(max_num_seqs) with
          C(batch_source), C(activation_gib), C(non_torch_gib) and C(cuda_graph_gib) with their sources,
          C(cuda_graph_in_budget), C(starts) and C(start_check), C(modelled_gib) (the modelled figures, shown beside
          measured ones), C(calibration) (the trial used, or null), C(calibration_note) (where and when it was
          measured), and C(calibration_ignored) (why a calibration given was not used).
      type: dict
      sample: {"torch_total_gib": 79.18, "budget_gib": 71.26, "max_num_batched_tokens": 8192, "max_num_seqs": 1024,
               "activation_gib": 1.03, "non_torch_gib": 0.63, "cuda_graph_gib": 0.06, "starts": true,
               "calibration": null, "calibration_ignored": null}
    start_refused:
      description: With C(detailed), why the engine would refuse to start on this GPU (O(gpu_memory_utilization)
        leaves no room for the CUDA context), else null. The plan then has no GPU count, and its description says
        so (also emitted as a warning).
      type: str
      sample: gpu_memory_utilization 0.99 leaves 0.24 GiB for the CUDA context (about 0.5 GiB needed)
  sample: {"gpus": 1, "gpus_minimum": 1, "nodes": 1, "tensor_parallel_size": 1, "pipeline_parallel_size": 1}
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.deploy.plugins.module_utils import gpu_catalog, sizing
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError


def build_module():
    argument_spec = sizing.model_spec_argument_spec()
    argument_spec.update(
        target=dict(type="str", choices=list(sizing.TARGETS), default="gpu"),
        gpu=dict(type="str"),
        gpu_memory_mib=dict(type="int"),
    )
    return AnsibleModule(
        argument_spec=argument_spec,
        required_one_of=sizing.MODEL_SPEC_REQUIRED_ONE_OF,
        mutually_exclusive=sizing.MODEL_SPEC_MUTUALLY_EXCLUSIVE + [("gpu", "gpu_memory_mib")],
        supports_check_mode=True,
    )


def compute(params):
    """The module's result for validated module parameters (raises SizingInputError on bad input)."""
    if params.get("target") == "cpu" and (params["gpu"] or params["gpu_memory_mib"] is not None):
        raise SizingInputError("target", "cpu", "gpu to plan GPUs (gpu or gpu_memory_mib were given); a CPU "
                               "target plans host RAM and cores only")
    result = sizing.size_model(**sizing.size_model_options(params))
    if result["target"] == "cpu":
        sizing.check_positive_int("gpus_per_node", params["gpus_per_node"], "GPUs in one node")
        return result
    result["gpu_plan"] = None
    gpu_name, per_gpu_mib = None, None
    if params["gpu"]:
        known = gpu_catalog.lookup(params["gpu"])
        gpu_name, per_gpu_mib = params["gpu"], known["memory_total_mib"]
    elif params["gpu_memory_mib"] is not None:
        gpu_name, per_gpu_mib = "%d MiB GPU" % params["gpu_memory_mib"], params["gpu_memory_mib"]
    if per_gpu_mib is not None:
        plan = sizing.plan_gpus(result, per_gpu_mib, params["reserve"], params["gpus_per_node"], gpu_name)
        result["gpu_plan"] = plan
        ignored = sizing.plan_calibration_warning(result, plan)
        if ignored:
            result["sizing_warnings"].append(ignored)
        if plan.get("start_refused"):
            result["sizing_warnings"].append(plan["description"])
    else:
        sizing.check_positive_int("gpus_per_node", params["gpus_per_node"], "GPUs in one node")
    return result


def main():
    module = build_module()
    try:
        result = compute(module.params)
    except SizingInputError as exc:
        module.fail_json(msg=str(exc), field=exc.field)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="model_sizing failed: %s" % exc, exception=traceback.format_exc())
    for warning in result.get("sizing_warnings") or []:
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
