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
  - Given a GPU model (O(gpu)) or a per-GPU memory (O(gpu_memory_mib)), also plans how many GPUs hold the model as
    power-of-two tensor-parallel groups, split into nodes of at most O(gpus_per_node).
  - Pure computation; it reads nothing from the host and changes nothing.
author:
  - llmops.deploy developers (@llmops)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The module only computes; check mode returns the same result.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  model:
    description:
      - A ModelScope model id, C(owner/name). Size and precision are taken from the name when it carries them.
      - O(params) and O(precision) override what the name says.
    type: str
  params:
    description:
      - Parameter count, such as C(32B), C(1.5B), C(0.5b), C(671B), C(500M), C(1.5e9) or C(7000000000).
      - Required when O(model) is not given or its name has no size.
    type: raw
  precision:
    description:
      - Numeric precision of the weights. Accepts the usual spellings, for example C(fp16), C(FP16), C(float16),
        C(half), C(bf16), C(bfloat16), C(int4), C(4bit), C(w4a16), C(int8), C(8bit), C(fp8), C(float32), C(fp32).
      - Required when O(model) is not given or its name does not say.
    type: str
  method:
    description:
      - Sizing method. C(seed) is the guide's rule of thumb.
    type: str
    choices: [seed]
    default: seed
  reserve:
    description:
      - Headroom to keep free, as a fraction from 0 to 0.5. The guide asks for 20 to 30 percent.
    type: float
    default: 0.2
  gpu:
    description:
      - A GPU model to plan for, for example C(A100 80GB), C(H100), C(RTX 4090), C(L40S), C(MI300X).
      - Mutually exclusive with O(gpu_memory_mib).
    type: str
  gpu_memory_mib:
    description:
      - Memory of one GPU in MiB, as C(nvidia-smi --query-gpu=memory.total) reports it, to plan for.
    type: int
  gpus_per_node:
    description:
      - Most GPUs in one node. Tensor parallelism stays inside a node; more GPUs become pipeline stages across nodes.
    type: int
    default: 8
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

- name: Size with a 30 % reserve on 24 GiB cards
  llmops.deploy.model_sizing:
    params: 7B
    precision: fp16
    reserve: 0.3
    gpu_memory_mib: 24564
"""

RETURN = r"""
method:
  description: The sizing method used.
  returned: always
  type: str
  sample: seed
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
  description: Bytes per parameter (guide table 2.2).
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
  description: GPU memory needed, GB (parameter memory x 1.5 with the seed method).
  returned: always
  type: float
  sample: 48.0
gpu_memory_gib:
  description: GPU memory needed, GiB.
  returned: always
  type: float
  sample: 44.7
gpu_memory_with_reserve_gb:
  description: GPU memory needed with the reserve, GB.
  returned: always
  type: float
  sample: 57.6
cpu_memory_gb:
  description: Host RAM needed, GB (parameter memory x 2 with the seed method).
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
  description: The requirements in exact bytes.
  returned: always
  type: dict
  sample: {"param_memory": 32000000000, "gpu_memory": 48000000000, "cpu_memory": 64000000000, "disk": 32000000000}
gpu_plan:
  description: GPUs needed on O(gpu) or O(gpu_memory_mib); null when neither is given.
  returned: always
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
  sample: {"gpus": 1, "gpus_minimum": 1, "nodes": 1, "tensor_parallel_size": 1, "pipeline_parallel_size": 1}
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.deploy.plugins.module_utils import gpu_catalog, sizing
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            model=dict(type="str"),
            params=dict(type="raw"),
            precision=dict(type="str"),
            method=dict(type="str", choices=["seed"], default="seed"),
            reserve=dict(type="float", default=sizing.DEFAULT_RESERVE),
            gpu=dict(type="str"),
            gpu_memory_mib=dict(type="int"),
            gpus_per_node=dict(type="int", default=sizing.DEFAULT_GPUS_PER_NODE),
        ),
        required_one_of=[("model", "params")],
        mutually_exclusive=[("gpu", "gpu_memory_mib")],
        supports_check_mode=True,
    )


def compute(params):
    """The module's result for validated module parameters (raises SizingInputError on bad input)."""
    result = sizing.size_model(model=params["model"], params=params["params"], precision=params["precision"],
                               method=params["method"], reserve=params["reserve"])
    result["gpu_plan"] = None
    gpu_name, per_gpu_mib = None, None
    if params["gpu"]:
        known = gpu_catalog.lookup(params["gpu"])
        gpu_name, per_gpu_mib = params["gpu"], known["memory_total_mib"]
    elif params["gpu_memory_mib"] is not None:
        gpu_name, per_gpu_mib = "%d MiB GPU" % params["gpu_memory_mib"], params["gpu_memory_mib"]
    if per_gpu_mib is not None:
        plan = sizing.gpu_plan(result["requirements_bytes"]["gpu_memory"], per_gpu_mib, params["reserve"],
                               params["gpus_per_node"])
        plan["gpu_name"] = gpu_name
        plan["description"] = sizing.describe_plan(plan, gpu_name)
        result["gpu_plan"] = plan
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
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
