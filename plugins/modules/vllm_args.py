#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vllm_args
short_description: vLLM serve arguments for one model, derived from the host's plan and checked by vLLM's own parser
version_added: 0.1.0
description:
  - Derives the arguments of C(vllm serve) for one model on one host from the plan preflight made for it (the result
    of M(llmops.deploy.capacity_check) with C(method=detailed)), the model's C(config.json) and the
    caller's overrides. Each argument is returned with its source. V(plan) is derived from the plan. V(override) was
    set by the caller. V(default) is this collection's default. V(engine) is not passed, so vLLM decides.
  - Derived are C(--tensor-parallel-size) and C(--pipeline-parallel-size) (GPU plan), C(--max-model-len) (the context
    asked for, else the largest that fits), C(--gpu-memory-utilization), C(--kv-cache-dtype), C(--quantization)
    (only where vLLM cannot read the format from the checkpoint, that is FP8 planned for an unquantised checkpoint),
    C(--max-num-seqs) (the planned concurrency), C(--served-model-name), C(--host), C(--port), C(--enforce-eager),
    and for the CPU target C(VLLM_CPU_KVCACHE_SPACE) (whole GiB for the planned sequences, at least 1).
  - Refuses, before anything reaches the engine, a plan across several nodes, a tensor-parallel size that does not
    divide the attention heads or the KV heads, more GPUs than the host has, FP8 on a GPU below compute capability
    8.9, a low-bit plan for an unquantised checkpoint, and secrets in O(extra_args).
  - With O(venv_python), the rendered argv is parsed by the argument parser of the vLLM installed in that venv (a
    small standard-library script run with that interpreter), so a flag renamed in another vLLM version fails here.
  - Returns the figures the engine should report (C(expected)), for the trial to compare with the engine's own log.
author:
  - llmops.deploy developers (@llmops)
attributes:
  check_mode:
    support: full
    details: The module only reads (the model's config.json, and the engine's parser when O(venv_python) exists).
  diff_mode:
    support: none
extends_documentation_fragment:
  - llmops.deploy.attributes
options:
  plan:
    description:
      - The host's plan, the result of M(llmops.deploy.capacity_check) with O(llmops.deploy.capacity_check#module:method=detailed)
        (the preflight role's C(preflight_result)). C(target), C(gpu_plan), C(sizing) and C(hardware) are read.
    type: dict
    required: true
  model_path:
    description:
      - Absolute path of the model directory on the host. Its C(config.json) is read unless O(config) is given.
    type: path
    required: true
  config:
    description:
      - The model's C(config.json) as a dict, for a model not downloaded yet.
    type: dict
  served_model_name:
    description:
      - The name clients use in requests (C(--served-model-name)).
    type: str
    required: true
  target:
    description:
      - V(gpu) for the CUDA engine, V(cpu) for vLLM's CPU backend. Default is the plan's target.
    type: str
    choices: [cpu, gpu]
  host:
    description:
      - Address the API server listens on.
    type: str
    default: 127.0.0.1
  port:
    description:
      - TCP port of the API server.
    type: int
    default: 8000
  enforce_eager:
    description:
      - Pass C(--enforce-eager). Default is V(true) on the CPU target (torch.compile adds 70-115 s to a cold start there)
        and vLLM's own default (CUDA graphs) on GPUs.
    type: bool
  cpu_kvcache_space_gib:
    description:
      - C(VLLM_CPU_KVCACHE_SPACE) in whole GiB for the CPU target. Default is derived from the plan (max_num_seqs x
        max_model_len x KV bytes per token, rounded up, at least 1).
    type: int
  overrides:
    description:
      - Values that replace derived ones, by name, reported with source V(override). Keys are
        C(served_model_name), C(host), C(port), C(tensor_parallel_size), C(pipeline_parallel_size), C(max_model_len),
        C(gpu_memory_utilization), C(kv_cache_dtype), C(quantization), C(dtype), C(max_num_seqs) and C(enforce_eager).
    type: dict
    default: {}
  extra_args:
    description:
      - More C(vllm serve) arguments, appended as given and validated by vLLM's parser. A flag the module derives
        must be set through O(overrides) instead. C(--api-key) is refused. The key goes in the service's
        EnvironmentFile.
    type: list
    elements: str
    default: []
  venv_python:
    description:
      - Python of the venv vLLM is installed in. When set, vLLM's own parser reads the rendered argv.
      - In check mode a missing interpreter skips the parser check and says so. Otherwise it fails.
    type: path
notes:
  - The API key never passes through this module. vLLM reads it from C(VLLM_API_KEY) in the service's environment.
seealso:
  - module: llmops.deploy.capacity_check
  - name: The model_serve role
    description: Installs vLLM and runs it as a systemd service with these arguments.
    link: https://example.invalid/llmops/deploy/roles/model_serve
"""

EXAMPLES = r"""
- name: Arguments for the model preflight chose, checked by the installed engine
  llmops.deploy.vllm_args:
    plan: "{{ preflight_result }}"
    model_path: /opt/llmops/models/Qwen/Qwen2.5-7B-Instruct
    served_model_name: Qwen/Qwen2.5-7B-Instruct
    venv_python: /opt/llmops/vllm/bin/python
  register: engine

- name: A shorter context and more sequences than planned, FP8 KV cache
  llmops.deploy.vllm_args:
    plan: "{{ preflight_result }}"
    model_path: /opt/llmops/models/Qwen/Qwen2.5-7B-Instruct
    served_model_name: qwen-7b
    port: 8001
    overrides:
      max_model_len: 8192
      max_num_seqs: 32
      kv_cache_dtype: fp8
    extra_args:
      - --enable-prefix-caching
"""

RETURN = r"""
target:
  description: V(cpu) or V(gpu).
  returned: always
  type: str
  sample: gpu
argv:
  description: What follows C(vllm serve), the model directory first.
  returned: always
  type: list
  elements: str
  sample: ["/opt/llmops/models/Qwen/Qwen2.5-7B-Instruct", "--served-model-name", "Qwen/Qwen2.5-7B-Instruct",
           "--host", "127.0.0.1", "--port", "8000", "--tensor-parallel-size", "2", "--max-model-len", "32768"]
args:
  description: Every argument considered, passed or not (C(value) null), with C(flag), C(source) and C(detail).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "tensor_parallel_size", "flag": "--tensor-parallel-size", "value": 2, "source": "plan",
            "detail": "the GPU plan's TP group"}]
env:
  description: The engine's environment derived here (no secrets), such as C(VLLM_CPU_KVCACHE_SPACE).
  returned: always
  type: dict
  sample: {"VLLM_CPU_KVCACHE_SPACE": "1"}
expected:
  description:
    - What the engine should report at start-up. C(weights_bytes) is the total and C(weights_bytes_per_gpu) one
      GPU's share.
    - C(kv_cache_tokens) is KV-cache room divided by KV bytes per token (CPU is VLLM_CPU_KVCACHE_SPACE). The
      C(max_concurrency) is KV tokens / max_model_len. C(context_length) and C(basis) are included too.
    - On CPU targets, C(host_memory_bytes) is the host RAM the engine's processes should take - weights, the
      KV-cache space and the CPU engine's runtime (the plan's C(cpu_plan)).
  returned: always
  type: dict
  sample: {"weights_bytes": 4194304, "kv_cache_tokens": 524288, "max_concurrency": 1024.0, "context_length": 512}
parser_check:
  description:
    - The check by vLLM's parser. C(checked) tells whether it ran and C(version) gives the engine's version.
    - C(parsed) holds the values vLLM read for the derived flags. C(reason) says why it did not run.
  returned: always
  type: dict
  sample: {"checked": true, "version": "0.32.0", "parsed": {"tensor_parallel_size": 2}, "reason": null}
"""

import json
import os
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.deploy.plugins.module_utils import architecture, engine_args
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            plan=dict(type="dict", required=True),
            model_path=dict(type="path", required=True),
            config=dict(type="dict"),
            served_model_name=dict(type="str", required=True),
            target=dict(type="str", choices=list(engine_args.TARGETS)),
            host=dict(type="str", default=engine_args.DEFAULT_HOST),
            port=dict(type="int", default=engine_args.DEFAULT_PORT),
            enforce_eager=dict(type="bool"),
            cpu_kvcache_space_gib=dict(type="int"),
            overrides=dict(type="dict", default={}),
            extra_args=dict(type="list", elements="str", default=[]),
            venv_python=dict(type="path"),
        ),
        supports_check_mode=True,
    )


def check_with_engine(module, python, derived):
    """Run vLLM's own parser on the argv; fail with its message when it refuses."""
    if not os.path.exists(python):
        if module.check_mode:
            return {"checked": False, "version": None, "parsed": {},
                    "reason": "check mode: %s does not exist yet (the engine is installed by the run)" % python}
        module.fail_json(msg="venv_python: %s does not exist; install the engine first" % python, field="venv_python",
                         **derived)
    dests = engine_args.parser_dests(derived["args"])
    rc, out, err = module.run_command([python, "-c", engine_args.PARSER_CHECK_SCRIPT, json.dumps(derived["argv"]),
                                       json.dumps(dests)], environ_update={"LC_ALL": "C"})
    result = engine_args.read_parser_result(out)
    if rc != 0 or result is None:
        tail = [line for line in (err or out or "").splitlines() if line.strip()][-5:]
        module.fail_json(msg="vLLM's parser check could not run with %s (exit %d): %s" % (python, rc, " | ".join(tail)),
                         **derived)
    if not result["ok"]:
        module.fail_json(msg="vLLM %s refuses the rendered arguments: %s" % (result.get("version") or "", result[
            "error"]), parser_error=result["error"], **derived)
    problems = engine_args.compare_parsed(derived["args"], result["parsed"])
    if problems:
        module.fail_json(msg="vLLM %s read the arguments differently: %s" % (result.get("version"), "; ".join(
            problems)), **derived)
    return {"checked": True, "version": result.get("version"), "parsed": result["parsed"], "reason": None}


def main():
    module = build_module()
    p = module.params
    try:
        config = p["config"]
        if config is None:
            config = architecture.read_config_file(p["model_path"])
        derived = engine_args.derive(
            p["plan"], config, p["model_path"], p["served_model_name"], target=p["target"], host=p["host"],
            port=p["port"], enforce_eager=p["enforce_eager"], cpu_kvcache_space_gib=p["cpu_kvcache_space_gib"],
            overrides=p["overrides"], extra_args=p["extra_args"])
    except SizingInputError as exc:
        module.fail_json(msg=str(exc), field=exc.field)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="vllm_args failed: %s" % exc, exception=traceback.format_exc())
    for warning in derived.pop("warnings"):
        module.warn(warning)
    check = {"checked": False, "version": None, "parsed": {}, "reason": "no venv_python given"}
    if p["venv_python"]:
        check = check_with_engine(module, p["venv_python"], derived)
    module.exit_json(changed=False, parser_check=check, **derived)


if __name__ == "__main__":
    main()
