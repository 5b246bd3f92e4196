#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: modelscope_info
short_description: Read a model's files, config and safetensors headers from a ModelScope hub without its weights
version_added: 0.1.0
description:
  - Reads what a model is before it is downloaded, so it can be sized exactly and the disk checked exactly.
  - From a ModelScope-compatible hub, it fetches the file listing (every file's exact size and sha256, the same request
    and the same path-safety checks as M(llmops.deploy.modelscope_download)), C(config.json) and the shard index whole
    (both small), and of each C(*.safetensors) file only its header, with HTTP Range requests. The first request asks
    for the first 64 KiB; a second one is made only when the header is longer. A hub that ignores Range is read only
    up to the end of the header, then the connection is closed. The weights are never downloaded.
  - With O(path), reads the same facts from a local model directory, with no network at all. Sizes come from the
    filesystem; a file's sha256 is returned only when the completion marker written by
    M(llmops.deploy.modelscope_download) vouches for it (same size and mtime as when it was verified). Nothing is hashed.
  - RV(config) and RV(weights) plug straight into the O(llmops.deploy.model_sizing#module:config) and
    O(llmops.deploy.model_sizing#module:weights) options of M(llmops.deploy.model_sizing) and
    M(llmops.deploy.capacity_check) (C(method=detailed)).
  - Nothing read from the model is imported or executed.
author:
  - llmops.deploy developers (@llmops)
extends_documentation_fragment:
  - llmops.deploy.attributes
  - llmops.deploy.hub_client
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode returns the same result.
  diff_mode:
    support: none
options:
  model_id:
    description:
      - Model to read, as C(owner/name). Required unless O(path) is given.
      - With O(path), the completion marker's sha256 values are used only when it was written for this model.
    type: str
    aliases: [model]
  revision:
    description:
      - Branch, tag or commit to read from the hub. C(master) when not given.
      - With O(path), a revision other than the one the completion marker records gives a warning.
    type: str
  endpoint:
    description:
      - Hub URL. A bare host is refused rather than guessed. Not used with O(path).
    type: str
    default: https://modelscope.cn
  token:
    description:
      - Hub access token (keep it in Ansible Vault). Sent as an C(Authorization) Bearer header, only to the endpoint's
        origin; never logged or returned. Not used with O(path).
    type: str
  include:
    description:
      - Glob patterns of the files the download will fetch, with the semantics of
        M(llmops.deploy.modelscope_download) (case-sensitive C(fnmatch) on the full path, C(*) also matches C(/),
        comma-separated values split). Empty selects every file.
      - RV(download_bytes), RV(files) and the headers read (RV(weights)) cover the selected files only.
    type: list
    elements: str
    default: []
  exclude:
    description: Glob patterns of files the download will leave out; exclusion wins over O(include).
    type: list
    elements: str
    default: []
  path:
    description:
      - A local model directory to read instead of the hub (offline mode, no network).
      - Read the way M(llmops.deploy.model_verify) reads it (one listing, module_utils C(model_dir_check)). The
        directory itself may be a symlink. Below it, nothing is followed, even if it changes during the run; a symlink
        (to a file or a directory) and a special file (fifo, socket, device) are refused, never read, named in
        RV(refused) and in a warning, and are not among the model's files. A model whose files are symlinks (such as
        a Hugging Face cache snapshot) must be copied to a real directory first. SDK partial files (C(*.incomplete))
        are not counted.
    type: path
  max_header_bytes:
    description:
      - Largest safetensors header accepted, in bytes. A file announcing a longer header is refused as damaged or not
        a safetensors file, before the header is fetched.
    type: int
    default: 104857600
notes:
  - C(config.json) larger than 1 MiB and C(*.safetensors.index.json) larger than 64 MiB are refused.
  - A shard index that names a file the model does not have, or a tensor its shard lacks, fails the module. A shard
    left out by O(include)/O(exclude), or a C(*.safetensors) file no index names, gives a warning.
seealso:
  - module: llmops.deploy.modelscope_download
  - module: llmops.deploy.model_sizing
  - module: llmops.deploy.capacity_check
"""

EXAMPLES = r"""
- name: Read Qwen2.5-7B-Instruct's metadata from ModelScope (no weights downloaded)
  llmops.deploy.modelscope_info:
    model_id: Qwen/Qwen2.5-7B-Instruct
    exclude:
      - "*.bin"
  register: info

- name: Size it exactly from the headers and the config, for 32k tokens on L40S GPUs
  llmops.deploy.model_sizing:
    model: Qwen/Qwen2.5-7B-Instruct
    method: detailed
    config: "{{ info.config }}"
    weights: "{{ info.weights }}"
    context_length: 32768
    gpu: L40S

- name: Check the target host before downloading, with the exact bytes the download will write
  llmops.deploy.capacity_check:
    model: Qwen/Qwen2.5-7B-Instruct
    method: detailed
    config: "{{ info.config }}"
    weights: "{{ info.weights }}"
    model_dir: /opt/llmops/models
    disk_required_bytes: "{{ info.download_bytes }}"

- name: Read a private model from an internal hub at a tag
  llmops.deploy.modelscope_info:
    model_id: acme/internal-13B
    revision: v2.1
    endpoint: http://hub.internal:8080
    token: "{{ vault_modelscope_token }}"
  register: internal

- name: Read a model already on disk, offline
  llmops.deploy.modelscope_info:
    path: /opt/llmops/models/Qwen/Qwen2.5-7B-Instruct
  register: local_info
"""

RETURN = r"""
source:
  description: Where the facts come from, C(hub) or C(local).
  returned: success
  type: str
  sample: hub
model_id:
  description: The model (with O(path), the one given or the one the completion marker names; null if neither).
  returned: always
  type: str
  sample: Qwen/Qwen2.5-7B-Instruct
revision:
  description:
    - The revision the hub resolved (its commit id when the listing carries one, else the requested one).
    - With O(path), the revision the completion marker records, or null.
  returned: success
  type: str
  sample: 5c3a1b2e9f0d4c6b8a7e
revision_requested:
  description: The revision asked for (null with O(path) when none was given).
  returned: always
  type: str
  sample: master
endpoint:
  description: Hub endpoint used (never with credentials); null with O(path).
  returned: always
  type: str
  sample: https://modelscope.cn
path:
  description: Absolute path of the local model directory; null in hub mode.
  returned: always
  type: str
  sample: /opt/llmops/models/Qwen/Qwen2.5-7B-Instruct
files:
  description: The selected files (after O(include)/O(exclude)), sorted by path, with their size and sha256 (null
    when unknown, with O(path) and no completion marker vouching for the file).
  returned: success
  type: list
  elements: dict
  sample: [{"path": "config.json", "size": 663, "sha256": "3f1c...e2a9"}]
file_count:
  description: Number of selected files.
  returned: success
  type: int
  sample: 14
total_files:
  description: Number of files the model has (before O(include)/O(exclude)).
  returned: success
  type: int
  sample: 16
download_bytes:
  description: Exact sum of the selected files' sizes, what M(llmops.deploy.modelscope_download) with the same
    O(include)/O(exclude) fetches into an empty directory.
  returned: success
  type: int
  sample: 15231233024
total_bytes:
  description: Exact sum of every file's size (before O(include)/O(exclude)).
  returned: success
  type: int
  sample: 15231235071
config:
  description: The content of C(config.json), or null when the model has none. Read whether or not the patterns
    select it.
  returned: success
  type: dict
  sample: {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 3584, "num_hidden_layers": 28}
weights:
  description:
    - Summary of the selected safetensors headers, the shape the C(weights) option of M(llmops.deploy.model_sizing)
      and M(llmops.deploy.capacity_check) takes; null when no safetensors file is selected.
    - C(params_total), C(params_by_dtype) (packed quantized weights counted as the parameters they hold),
      C(data_bytes) (exact tensor bytes), C(bytes_by_dtype) (per storage dtype), C(precision) (C(bf16), C(fp8),
      C(int4)...), C(dominant_dtype), C(tensors), C(stored_elements), C(aux_elements) (quantization scales and zero
      points), C(packed), C(format), C(files), C(header_bytes).
  returned: success
  type: dict
  sample: {"params_total": 7615616512, "params_by_dtype": {"BF16": 7615616512}, "data_bytes": 15231233024,
           "bytes_by_dtype": {"BF16": 15231233024}, "precision": "bf16", "dominant_dtype": "BF16", "tensors": 339,
           "stored_elements": 7615616512, "aux_elements": 0, "packed": false, "format": "safetensors", "files": 4,
           "header_bytes": 36320}
params:
  description: Parameter count read from the safetensors headers; null without them.
  returned: success
  type: int
  sample: 7615616512
precision:
  description: Precision of the weights from the headers (C(bf16), C(fp16), C(fp32), C(fp8), C(int8), C(int4)), null
    when the dtypes do not tell.
  returned: success
  type: str
  sample: bf16
dominant_dtype:
  description: The safetensors dtype holding most parameters.
  returned: success
  type: str
  sample: BF16
architecture:
  description:
    - Short architecture summary from C(config.json), null when it cannot be read (the reason is a warning).
    - C(attention) is C(mha), C(gqa), C(mqa) or C(mla); C(params_computed) is the count computed from the config's
      shapes, compared with the headers' count (a difference over 1% gives a warning).
  returned: success
  type: dict
  sample: {"model_type": "qwen2", "architecture": "Qwen2ForCausalLM", "attention": "gqa", "layers": 28,
           "hidden_size": 3584, "heads": 28, "kv_heads": 4, "head_dim": 128, "intermediate_size": 18944,
           "vocab_size": 152064, "max_position_embeddings": 32768, "tie_word_embeddings": false,
           "torch_dtype": "bfloat16", "sliding_window": null, "experts": null, "experts_per_token": null,
           "quantization": null, "params_computed": 7615616512, "params_active": 7615616512}
safetensors_files:
  description: Per selected safetensors file, its size, header length (the 8-byte prefix included), the bytes of it
    actually read, tensor and parameter counts, tensor data bytes and dtypes.
  returned: success
  type: list
  elements: dict
  sample: [{"path": "model-00001-of-00004.safetensors", "size": 3945441440, "header_bytes": 10568,
            "bytes_read": 65536, "tensors": 87, "params": 1972689920, "data_bytes": 3945430872, "dtypes": ["BF16"]}]
index_files:
  description: Selected shard indexes (C(*.safetensors.index.json)) and the shards each names; each was checked
    against the file list and the headers.
  returned: success
  type: list
  elements: dict
  sample: [{"path": "model.safetensors.index.json", "shards": ["model-00001-of-00004.safetensors"]}]
pickle_files:
  description: Selected files that are (or may be) Python pickles; loading them can execute code. Never read.
  returned: success
  type: list
  elements: str
  sample: [pytorch_model.bin]
code_files:
  description: Selected files that are code (Python, native libraries, scripts). Never read or run.
  returned: success
  type: list
  elements: str
  sample: [modeling_custom.py]
bytes_read:
  description: Bytes of the safetensors files actually read (received from the hub, or read from disk). At most
    64 KiB per file beyond the header, the proof that the weights were not downloaded.
  returned: success
  type: int
  sample: 262144
http_requests:
  description: HTTP requests made (the listing included, retries counted); 0 with O(path).
  returned: success
  type: int
  sample: 7
range_ignored:
  description: Whether the hub answered a range request with the whole file (it was then read only up to the end of
    the header and the connection closed).
  returned: success
  type: bool
  sample: false
refused:
  description:
    - With O(path), the entries below the directory that were neither followed nor read (symlinks to files or
      directories, fifos, sockets, devices, directories that cannot be opened), each with its path and the reason.
      They are not among RV(files). Empty in hub mode.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "model-00001-of-00002.safetensors", "reason": "a symlink"}]
metadata_warnings:
  description: Everything noticed that does not stop the module (also emitted as warnings).
  returned: success
  type: list
  elements: str
  sample: ["model.safetensors.index.json: metadata.total_size is 15231233025 but its shards hold 15231233024 tensor bytes"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.llmops.deploy.plugins.module_utils.hub_client import (
    HUB_CLIENT_ARGSPEC, HubClient, check_client_options)
from ansible_collections.llmops.deploy.plugins.module_utils.hub_manifest import (
    HubError, ManifestError, normalize_endpoint, normalize_patterns, split_model_id, validate_revision)
from ansible_collections.llmops.deploy.plugins.module_utils.model_dir_check import ModelDirError, ModelDirSource
from ansible_collections.llmops.deploy.plugins.module_utils.model_metadata import (
    HubSource, MetadataError, check_limit, collect_metadata)


def build_module():
    spec = dict(HUB_CLIENT_ARGSPEC)
    spec.update(
        model_id=dict(type="str", aliases=["model"]),
        revision=dict(type="str"),
        endpoint=dict(type="str", default="https://modelscope.cn"),
        token=dict(type="str", no_log=True),
        include=dict(type="list", elements="str", default=[]),
        exclude=dict(type="list", elements="str", default=[]),
        path=dict(type="path"),
        max_header_bytes=dict(type="int", default=104857600),
    )
    return AnsibleModule(
        argument_spec=spec,
        required_one_of=[("model_id", "path")],
        supports_check_mode=True,
    )


class Info(object):
    """One run of the module. Every failure goes through ``fail``; nothing raises out of ``run``."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.result = {"changed": False, "model_id": self.params["model_id"],
                       "revision_requested": self.params["revision"], "endpoint": None, "path": None,
                       "refused": []}

    def scrub(self, text):
        token = self.params.get("token")
        if token and isinstance(text, str):
            text = text.replace(token, "********")
        return text

    def fail(self, msg):
        self.module.fail_json(msg=self.scrub(msg), **self.result)

    def source(self):
        p = self.params
        try:
            self.include = normalize_patterns(p["include"])
            self.exclude = normalize_patterns(p["exclude"])
            check_limit("timeout", p["timeout"])
            check_limit("max_header_bytes", p["max_header_bytes"], 8)
            if p["model_id"] is not None:
                split_model_id(p["model_id"])
            if p["revision"] is not None:
                validate_revision(p["revision"])
            if p["path"]:
                self.result["path"] = p["path"]
                return ModelDirSource(p["path"], model_id=p["model_id"], revision=p["revision"])
            self.result["endpoint"] = normalize_endpoint(p["endpoint"])
            self.result["revision_requested"] = p["revision"] or "master"
            problems = check_client_options(p)
            if problems:
                self.fail("; ".join(problems))
            client = HubClient.from_params(p)
            return HubSource(p["endpoint"], p["model_id"], p["revision"] or "master", token=p["token"],
                             timeout=p["timeout"], client=client)
        except (ManifestError, MetadataError) as exc:
            self.fail(exc.message)

    def where(self, source):
        if source.kind == "local":
            return "the model directory %s" % source.path
        return "%s@%s from %s" % (self.params["model_id"], self.result["revision_requested"], self.result["endpoint"])

    def run(self):
        source = self.source()
        local = source.kind == "local"
        try:
            source.load()
            if local:
                self.result.update(path=source.path, refused=source.refused)
            facts = collect_metadata(source, self.include, self.exclude, self.params["max_header_bytes"])
        except (ManifestError, HubError, MetadataError, ModelDirError) as exc:
            self.fail("cannot read %s: %s%s" % (self.where(source), exc.message, refused_note(source)))
        finally:
            if local:
                source.close()
        for warning in facts["metadata_warnings"]:
            self.module.warn(self.scrub(warning))
        self.result.update(facts)
        self.module.exit_json(**self.result)


def refused_note(source):
    """On a failure, the entries a model directory had refused (the likely cause of a file the index misses)."""
    if source.kind != "local" or not source.refused:
        return ""
    return " (refused, not followed or read: %s)" % ", ".join(
        "%s is %s" % (item["path"], item["reason"]) for item in source.refused)


def main():
    module = build_module()
    Info(module).run()


if __name__ == "__main__":
    main()
