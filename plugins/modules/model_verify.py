#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: model_verify
short_description: Check a model directory on its own, without trusting or running anything in it
version_added: 0.1.0
description:
  - Checks that C(config.json) is valid JSON, that weights are present (C(*.safetensors), C(*.bin)/C(*.pt)/C(*.pth),
    C(*.gguf)), and that every shard named in a C(*.index.json) is present (for safetensors shards, holding every
    tensor the index maps to it).
  - Reads every safetensors header (never the tensor data); a damaged header or a file whose size differs from what
    its header describes (truncated, or with trailing bytes) is a problem.
  - With O(verify=quick) or O(verify=full), the completion marker written by M(llmops.deploy.modelscope_download)
    must be valid and every file it lists must match it by size and mtime (quick) or by size and sha256 (full).
  - Compares the real parameter count and precision read from the safetensors headers with what the model name (or
    O(expected_params) and O(precision)) claims. Names round their sizes (7B for 7.6e9 parameters), hence
    O(params_tolerance). Packed GPTQ/AWQ and bitsandbytes 4-bit weights are unpacked using C(config.json)'s
    C(quantization_config).
  - Nothing below the directory is followed, even if it changes during the run (the directory itself may be a
    symlink); a symlink (to a file or a directory) and a special file (fifo, socket, device) are refused, never read,
    named in RV(refused) and in a warning. They count as missing where a check needs them (a symlinked
    C(config.json) or shard is a problem). The same listing serves M(llmops.deploy.modelscope_info) with O(path).
  - Fails listing every problem found; all facts are returned either way.
  - Waits for a running download of the same directory (shared lock on its lock file) so it never reads a mix.
author:
  - llmops.deploy developers (@llmops)
extends_documentation_fragment:
  - llmops.deploy.attributes
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  platform:
    platforms: posix
    support: full
    description: Linux hosts (C(fcntl) locks).
options:
  path:
    description: The model directory.
    type: path
    required: true
  verify:
    description:
      - C(quick) checks the marker and every listed file's size and mtime, C(full) re-hashes every listed file,
        C(none) does not require a marker.
    type: str
    choices: [quick, full, none]
    default: quick
  model_id:
    description:
      - The model id (C(owner/name)) whose name claims the size and precision. Defaults to the id in the marker.
      - When given and the marker names another model, that is a problem.
    type: str
  expected_params:
    description: Parameter count the weights must hold (C(7B), C(1.5B), C(7000000000)); overrides the name.
    type: raw
  precision:
    description: Precision the weights must have (C(bf16), C(fp16), C(fp8), C(int8), C(int4), ...); overrides the name.
    type: str
  params_tolerance:
    description: Accepted relative difference between the claimed and the real parameter count.
    type: float
    default: 0.25
  claims:
    description: Whether a size or precision that disagrees with the claim fails the task or is only a warning.
    type: str
    choices: [fail, warn]
    default: fail
  lock_timeout:
    description: Seconds to wait for a download of the same directory to finish.
    type: int
    default: 600
seealso:
  - module: llmops.deploy.modelscope_download
"""

EXAMPLES = r"""
- name: Check a downloaded model, re-hashing every file
  llmops.deploy.model_verify:
    path: /opt/llmops/models/Qwen/Qwen2.5-7B-Instruct
    verify: full

- name: Check a copied model directory that has no marker, against an explicit size and precision
  llmops.deploy.model_verify:
    path: /data/models/my-finetune
    verify: none
    expected_params: 7B
    precision: bf16
  register: model_facts
"""

RETURN = r"""
model_dir:
  description: Absolute path of the model directory.
  returned: always
  type: str
  sample: /opt/llmops/models/Qwen/Qwen2.5-7B-Instruct
valid:
  description: Whether no problem was found.
  returned: always
  type: bool
  sample: true
problems:
  description: Every problem found (the task fails when there is one).
  returned: always
  type: list
  elements: str
  sample: ["model-00002-of-00004.safetensors: the header describes 3988000000 data bytes but the file holds 1000"]
warnings_found:
  description: Findings that do not fail the task (partial downloads left over, fp16 versus bf16, stale total_size).
  returned: always
  type: list
  elements: str
  sample: ["the weights are bf16 but fp16 is claimed (same size)"]
marker:
  description: State of the completion marker (C(valid), C(absent), C(invalid), C(mismatch), C(skipped)).
  returned: always
  type: str
  sample: valid
model_id:
  description: The model id the claims were taken from (option, else marker).
  returned: always
  type: str
  sample: Qwen/Qwen2.5-7B-Instruct
revision:
  description: The revision recorded in the marker.
  returned: always
  type: str
  sample: master
refused:
  description: Entries below the directory that were neither followed nor read (symlinks, fifos, sockets, devices,
    directories that cannot be opened), each with its path and the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "tokenizer.json", "reason": "a symlink"}]
files:
  description: Number of regular files in the directory (marker, partial files and refused entries excluded).
  returned: always
  type: int
  sample: 14
bytes_total:
  description: Their total size.
  returned: always
  type: int
  sample: 15231233024
weights:
  description: Weight files found, by format.
  returned: always
  type: dict
  sample: {"safetensors": ["model-00001-of-00004.safetensors"], "pickle": [], "gguf": []}
index_files:
  description: The C(*.index.json) files checked.
  returned: always
  type: list
  elements: str
  sample: [model.safetensors.index.json]
params:
  description: Parameters held by the safetensors weights (packed quantized weights unpacked, scales excluded).
  returned: always
  type: int
  sample: 7615616512
params_by_dtype:
  description: Parameters per stored dtype (C(int4(packed)) for unpacked quantized weights).
  returned: always
  type: dict
  sample: {"BF16": 7615616512}
dominant_dtype:
  description: The dtype holding most parameters.
  returned: always
  type: str
  sample: BF16
detected_precision:
  description: Canonical precision of the weights (C(bf16), C(fp16), C(fp32), C(fp8), C(int8), C(int4)) or null.
  returned: always
  type: str
  sample: bf16
claimed_params:
  description: Parameter count claimed by O(expected_params) or the name.
  returned: always
  type: int
  sample: 7000000000
claimed_precision:
  description: Precision claimed by O(precision) or the name.
  returned: always
  type: str
  sample: bf16
params_ratio:
  description: Real parameters divided by claimed parameters.
  returned: always
  type: float
  sample: 1.088
pickle_files:
  description: Files that are (or may be) Python pickles.
  returned: always
  type: list
  elements: str
  sample: [pytorch_model.bin]
code_files:
  description: Files that are code.
  returned: always
  type: list
  elements: str
  sample: [modeling_qwen.py]
remote_code:
  description: Classes C(config.json)'s C(auto_map) points to (custom code a runtime would have to trust).
  returned: always
  type: list
  elements: str
  sample: [modeling_qwen.QWenLMHeadModel]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.deploy.plugins.module_utils.dir_lock import DirLock, LockTimeout, lock_path_for
from ansible_collections.llmops.deploy.plugins.module_utils.model_dir_check import check_model_dir
from ansible_collections.llmops.deploy.plugins.module_utils.model_names import explicit_or_named, parse_model_id
from ansible_collections.llmops.deploy.plugins.module_utils.safetensors_header import compare_claims
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            verify=dict(type="str", choices=["quick", "full", "none"], default="quick"),
            model_id=dict(type="str"),
            expected_params=dict(type="raw"),
            precision=dict(type="str"),
            params_tolerance=dict(type="float", default=0.25),
            claims=dict(type="str", choices=["fail", "warn"], default="fail"),
            lock_timeout=dict(type="int", default=600),
        ),
        supports_check_mode=True,
    )


def resolve_claims(model_id, expected_params, precision):
    """``(claimed_params, params_is_upper_bound, claimed_precision, warnings)``: ``expected_params`` and ``precision``
    beat what the name says (``model_names.explicit_or_named``); a name that cannot be read is a warning. Raises
    ValueError with a message naming the field for bad explicit values."""
    warnings = []
    parsed = None
    if model_id:
        try:
            parsed = parse_model_id(model_id)
        except SizingInputError as exc:
            warnings.append("the model id cannot be read for claims: %s" % exc)
    try:
        claims = explicit_or_named(parsed, expected_params, precision, params_field="expected_params")
    except SizingInputError as exc:
        raise ValueError(str(exc))
    return claims["params"], claims["params_is_upper_bound"], claims["precision"], warnings


def main():
    module = build_module()
    p = module.params
    path = p["path"].rstrip("/") or "/"
    if p["params_tolerance"] < 0:
        module.fail_json(msg="params_tolerance %r is not valid: expected a number >= 0 such as 0.25" % (
            p["params_tolerance"],))
    result = {"changed": False, "model_dir": path}
    try:
        with DirLock(lock_path_for(path), p["lock_timeout"], shared=True):
            report = check_model_dir(path, verify=p["verify"])
    except LockTimeout as exc:
        module.fail_json(msg=str(exc), **result)
    except OSError as exc:
        module.fail_json(msg="cannot read %s: %s" % (path, exc), **result)
    facts = report["facts"]
    problems, warnings = list(report["problems"]), list(report["warnings"])
    model_id = p["model_id"] or facts.get("model_id")
    if p["model_id"] and facts.get("model_id") and facts["model_id"] != p["model_id"]:
        problems.append("the completion marker is for %s, not %s" % (facts["model_id"], p["model_id"]))
    try:
        claimed_params, upper, claimed_precision, claim_warnings = resolve_claims(
            model_id, p["expected_params"], p["precision"])
    except ValueError as exc:
        module.fail_json(msg=str(exc), **result)
    warnings.extend(claim_warnings)
    summary = facts.get("summary") or {}
    comparison = compare_claims(summary, claimed_params, claimed_precision, p["params_tolerance"])
    if upper and comparison["params_ratio"] is not None and comparison["params_ratio"] <= 1.0:
        # '8x7B' names an upper bound: fewer real parameters (shared attention) are expected.
        comparison["problems"] = [x for x in comparison["problems"] if "parameters" not in x]
    if p["claims"] == "fail":
        problems.extend(comparison["problems"])
    else:
        warnings.extend(comparison["problems"])
    warnings.extend(comparison["warnings"])
    result.update(
        valid=not problems, problems=problems, warnings_found=warnings,
        marker=facts["marker"] or "skipped", model_id=model_id, revision=facts.get("revision"),
        files=facts["files"], bytes_total=facts["bytes_total"], weights=facts["weights"],
        index_files=facts["index_files"], params=summary.get("params_total"),
        params_by_dtype=summary.get("params_by_dtype") or {}, dominant_dtype=summary.get("dominant_dtype"),
        detected_precision=summary.get("precision"), claimed_params=claimed_params,
        claimed_precision=claimed_precision,
        params_ratio=round(comparison["params_ratio"], 4) if comparison["params_ratio"] is not None else None,
        pickle_files=facts["pickle_files"], code_files=facts["code_files"], remote_code=facts["remote_code"],
        refused=facts["refused"],
    )
    for warning in warnings:
        module.warn(warning)
    if problems:
        module.fail_json(msg="model directory %s failed %d check(s): %s" % (
            path, len(problems), "; ".join(problems[:20])), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
