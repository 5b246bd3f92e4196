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
    details: The module only reads (the model's config.json, the O(parser_record), and the engine's parser when O(venv_python) exists).
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
  parser_record:
    description:
      - A file on the host in which the caller keeps RV(parser_check.record) of an earlier run (the module only reads
        it; the M(ansible.builtin.copy) that writes it is the caller's).
      - When it names the same argv and the same engine, the parser does not run again and the earlier result is
        returned with C(reused=true). The engine is the interpreter and the name, version and installed-file list
        (C(RECORD)) of every distribution named C(vllm) or C(vllm-*) in the venv, read without importing vLLM.
      - A missing, unreadable or different record means the parser runs. Leave this out to run it every time.
      - Only used with O(venv_python).
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

- name: The same, skipping the parser when this argv was accepted by this engine before
  llmops.deploy.vllm_args:
    plan: "{{ preflight_result }}"
    model_path: /opt/llmops/models/Qwen/Qwen2.5-7B-Instruct
    served_model_name: Qwen/Qwen2.5-7B-Instruct
    venv_python: /opt/llmops/vllm/bin/python
    parser_record: /etc/llmops/vllm/qwen-qwen2-5-7b-instruct.parser.json
  register: engine

- name: Keep what the parser accepted, for the next run
  ansible.builtin.copy:
    content: "{{ engine.parser_check.record | to_nice_json }}"
    dest: /etc/llmops/vllm/qwen-qwen2-5-7b-instruct.parser.json
    mode: "0600"
  when: engine.parser_check.record is not none

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
    - The check of the rendered argv by the installed vLLM's own parser.
  returned: always
  type: dict
  contains:
    checked:
      description: Whether the argv was checked (now, or by an earlier run when RV(parser_check.reused) is true).
      type: bool
      returned: always
      sample: true
    version:
      description: The engine's version, as vLLM reports it.
      type: str
      returned: always
      sample: 0.32.0
    parsed:
      description: The values vLLM's parser read for the derived flags, by argparse destination.
      type: dict
      returned: always
      sample: {"tensor_parallel_size": 2, "max_model_len": 8192}
    reason:
      description: Why the argv was not checked; null when it was.
      type: str
      returned: always
      sample: no venv_python given
    reused:
      description:
        - True when the result is the earlier one kept in O(parser_record) (the same argv and the same engine), so
          the parser did not run again.
      type: bool
      returned: always
      sample: false
    record:
      description:
        - What to keep for the next run, in the file named by O(parser_record) - C(argv), C(engine) (the interpreter
          and the vLLM distributions with their versions and C(RECORD) hashes), C(version) and C(parsed).
        - Null when nothing was checked or the engine's distributions could not be read.
      type: dict
      returned: always
      sample: {"argv": ["/opt/llmops/models/Qwen/Qwen2.5-7B-Instruct", "--port", "8000"],
               "engine": {"python": "/opt/llmops/vllm/bin/python", "distributions": {"vllm": ["0.32.0", "9f2c..."]}},
               "version": "0.32.0", "parsed": {"tensor_parallel_size": 2}}
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
            parser_record=dict(type="path"),
        ),
        supports_check_mode=True,
    )


def engine_fingerprint(module, python):
    """What the parser check depends on (ENGINE_FINGERPRINT_SCRIPT), or None when it cannot be read."""
    rc, out, _err = module.run_command([python, "-c", engine_args.ENGINE_FINGERPRINT_SCRIPT],
                                       environ_update={"LC_ALL": "C"})
    return engine_args.read_engine_fingerprint(out) if rc == 0 else None


def check_with_engine(module, python, derived, record_path=None):
    """Run vLLM's own parser on the argv; fail with its message when it refuses. With ``record_path``, an earlier
    check of the same argv by the same engine is returned instead of running the parser again."""
    if not os.path.exists(python):
        if module.check_mode:
            return {"checked": False, "version": None, "parsed": {}, "reused": False, "record": None,
                    "reason": "check mode: %s does not exist yet (the engine is installed by the run)" % python}
        module.fail_json(msg="venv_python: %s does not exist; install the engine first" % python, field="venv_python",
                         **derived)
    engine = engine_fingerprint(module, python)
    if record_path:
        reused = engine_args.reused_parser_check(engine_args.read_parser_record(record_path), derived["argv"], engine,
                                                 derived["args"])
        if reused:
            return reused
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
    check = {"checked": True, "version": result.get("version"), "parsed": result["parsed"], "reason": None,
             "reused": False}
    check["record"] = engine_args.parser_record(derived["argv"], engine, check) if engine else None
    return check


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
    check = {"checked": False, "version": None, "parsed": {}, "reused": False, "record": None,
             "reason": "no venv_python given"}
    if p["venv_python"]:
        check = check_with_engine(module, p["venv_python"], derived, p["parser_record"])
    module.exit_json(changed=False, parser_check=check, **derived)


if __name__ == "__main__":
    main()
