# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The check of a model directory on its own (model_verify): config, weights, shard index, safetensors headers and
the completion marker.

Standard library only (runs on targets with Python >= 3.8); nothing here imports or executes a file of a model.
"""

import json
import os
import stat

from ansible_collections.llmops.deploy.plugins.module_utils.file_kinds import classify_paths
from ansible_collections.llmops.deploy.plugins.module_utils.marker import (
    MARKER_NAME, full_check, quick_check, read_marker)
from ansible_collections.llmops.deploy.plugins.module_utils.safetensors_header import (
    HeaderError, read_header, summarize_headers)
from ansible_collections.llmops.deploy.plugins.module_utils.shard_index import check_index
from ansible_collections.llmops.deploy.plugins.module_utils.stream_hash import sha256_file
from ansible_collections.llmops.deploy.plugins.module_utils.tree_safety import PARTIAL_SUFFIX, lstat_or_none


def list_files(model_dir):
    """Every regular file under ``model_dir`` as a sorted repo-relative path (symlinks are not followed)."""
    result = []
    for root, dirs, files in os.walk(model_dir, followlinks=False):
        dirs.sort()
        for name in files:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, model_dir).replace(os.sep, "/")
            st = lstat_or_none(full)
            if st is not None and stat.S_ISREG(st.st_mode):
                result.append(rel)
    return sorted(result)


def _load_json(path, max_bytes=64 * 1024 * 1024):
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError("larger than %d bytes" % max_bytes)
    return json.loads(data.decode("utf-8"))


def check_model_dir(model_dir, verify="quick", hasher=sha256_file):
    """Check a model directory without trusting anything in it, and without executing any of it.

    * ``config.json`` exists and is a JSON object;
    * weights exist (``*.safetensors``, ``*.bin``/``*.pt``/``*.pth``, ``*.gguf``);
    * every shard named in a ``*.index.json`` ``weight_map`` exists; for safetensors shards, every tensor the index
      names is in that shard's header, and the tensor bytes add up to the index's ``metadata.total_size``
      (``shard_index.check_index``, the check modelscope_info makes of a hub's or a directory's index);
    * every safetensors file's header is valid and its file size is exactly what the header describes;
    * with ``verify`` quick/full: the completion marker is valid and its files pass the quick (size, mtime) or full
      (size, sha256) check; ``none`` skips the marker.

    Returns ``{'problems': [...], 'warnings': [...], 'facts': {...}}``; ``facts`` hold the file lists, the marker
    state and the summary of the safetensors headers (parameters per dtype).
    """
    problems, warnings = [], []
    facts = {"weights": {"safetensors": [], "pickle": [], "gguf": []}, "index_files": [], "marker": None,
             "revision": None, "model_id": None, "pickle_files": [], "code_files": [], "remote_code": [],
             "summary": None, "files": 0, "bytes_total": 0, "config": None}
    st = None
    try:
        st = os.stat(model_dir)
    except OSError:
        pass
    if st is None or not stat.S_ISDIR(st.st_mode):
        return {"problems": ["%s is not a directory" % model_dir], "warnings": warnings, "facts": facts}
    listing = list_files(model_dir)
    files = [f for f in listing if os.path.basename(f) != MARKER_NAME and not f.endswith(PARTIAL_SUFFIX)]
    partials = [f for f in listing if f.endswith(PARTIAL_SUFFIX)]
    if partials:
        warnings.append("partial downloads present: %s" % ", ".join(partials))
    facts["files"] = len(files)
    facts["bytes_total"] = sum(os.lstat(os.path.join(model_dir, f)).st_size for f in files)
    facts.update(classify_paths(files))

    # config.json
    config_path = os.path.join(model_dir, "config.json")
    if "config.json" not in files:
        problems.append("config.json is missing")
    else:
        try:
            config = _load_json(config_path)
            if not isinstance(config, dict):
                raise ValueError("not a JSON object")
            facts["config"] = config
            auto_map = config.get("auto_map")
            if isinstance(auto_map, dict) and auto_map:
                facts["remote_code"] = sorted(set(str(v if not isinstance(v, list) else v[0])
                                                  for v in auto_map.values()))
        except (OSError, ValueError) as exc:
            problems.append("config.json is not valid JSON: %s" % exc)

    # weights
    for rel in files:
        low = rel.lower()
        if low.endswith(".safetensors"):
            facts["weights"]["safetensors"].append(rel)
        elif low.endswith((".bin", ".pt", ".pth")) and _looks_like_weights(rel):
            facts["weights"]["pickle"].append(rel)
        elif low.endswith(".gguf"):
            facts["weights"]["gguf"].append(rel)
    if not any(facts["weights"].values()):
        problems.append("no weights found (*.safetensors, *.bin, *.pt, *.pth or *.gguf)")

    # safetensors headers
    headers = {}
    for rel in facts["weights"]["safetensors"]:
        try:
            headers[rel] = read_header(os.path.join(model_dir, rel))
        except (HeaderError, OSError) as exc:
            problems.append("%s: %s" % (rel, exc))

    # index files
    listed = set(files)
    for rel in files:
        if not rel.endswith(".index.json"):
            continue
        facts["index_files"].append(rel)
        try:
            index = _load_json(os.path.join(model_dir, rel))
        except (OSError, ValueError) as exc:
            problems.append("%s is not valid JSON: %s" % (rel, exc))
            continue
        index_problems, index_warnings, _shards = check_index(rel, index, listed, listed, headers)
        problems.extend(index_problems)
        warnings.extend(index_warnings)

    if headers:
        facts["summary"] = summarize_headers(list(headers.values()), quantization=_quantization(facts["config"]))

    # marker
    if verify != "none":
        marker, reason = read_marker(model_dir)
        if marker is None:
            problems.append("%s (the directory was never completed by modelscope_download)" % reason)
            facts["marker"] = "absent" if reason == "no completion marker" else "invalid"
        else:
            facts["marker"] = "valid"
            facts["revision"] = marker.get("revision")
            facts["model_id"] = marker.get("model_id")
            check = full_check if verify == "full" else quick_check
            kwargs = {"hasher": hasher} if verify == "full" else {}
            found = check(model_dir, marker["files"], **kwargs)
            if found:
                facts["marker"] = "mismatch"
                problems.extend(found)
    return {"problems": problems, "warnings": warnings, "facts": facts}


def _looks_like_weights(rel):
    # ``training_args.bin`` and optimizer/scheduler state are pickles too, but not weights.
    name = os.path.basename(rel).lower()
    return not name.startswith(("training_args", "optimizer", "scheduler", "rng_state"))


def _quantization(config):
    if not isinstance(config, dict):
        return None
    quant = config.get("quantization_config")
    return quant if isinstance(quant, dict) else None
