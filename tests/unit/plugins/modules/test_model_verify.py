# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_verify module: a model directory checked on its own, claims from the name or the options."""

import hashlib
import json
import os
import struct

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import dir_lock, marker as mk
from ansible_collections.llmops.deploy.plugins.modules import model_verify

from safetensors_layout import tensor_layout

from .module_runner import run_module


@pytest.fixture
def run(monkeypatch):
    """model_verify's main() through the shared harness: ``run(**args)`` -> the result (``failed`` set when it
    failed, the warnings it emitted in ``_warnings``)."""
    return lambda **args: run_module(monkeypatch, model_verify, args)[1]


def safetensors(tensors):
    header, offset = tensor_layout(tensors)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


def make_dir(root, model_id="testorg/Tiny-1M", dtype="BF16", rows=1000, config=None, marker=True):
    """A model of rows*1000 parameters in two shards, with an index and a marker."""
    files = {
        "config.json": json.dumps(config or {"architectures": ["Qwen2ForCausalLM"]}).encode(),
        "model-00001-of-00002.safetensors": safetensors([("a.weight", dtype, [rows // 2, 1000])]),
        "model-00002-of-00002.safetensors": safetensors([("b.weight", dtype, [rows // 2, 1000])]),
    }
    files["model.safetensors.index.json"] = json.dumps({"weight_map": {
        "a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}}).encode()
    entries = []
    for rel, data in files.items():
        path = os.path.join(str(root), rel)
        with open(path, "wb") as handle:
            handle.write(data)
        entries.append({"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                        "mtime_ns": os.stat(path).st_mtime_ns})
    if marker:
        mk.write_marker(str(root), mk.build_marker(
            model_id, "master", "c0ffee", "http://h", [], [], entries, "0"))
    return files


def test_good_directory_and_claims_from_the_marker_model_id(tmp_path, run):
    make_dir(tmp_path)
    res = run(path=str(tmp_path))
    assert not res.get("failed"), res.get("msg")
    assert res["valid"] and res["marker"] == "valid" and res["revision"] == "c0ffee"
    assert res["model_id"] == "testorg/Tiny-1M" and res["claimed_params"] == 1000000
    assert res["params"] == 1000000 and res["params_ratio"] == 1.0
    assert res["params_by_dtype"] == {"BF16": 1000000} and res["detected_precision"] == "bf16"
    assert res["weights"]["safetensors"] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert res["index_files"] == ["model.safetensors.index.json"] and res["changed"] is False


def test_size_within_tolerance_passes_and_outside_fails(tmp_path, run):
    make_dir(tmp_path, rows=1100)
    assert run(path=str(tmp_path))["params_ratio"] == 1.1
    res = run(path=str(tmp_path), expected_params="2M")
    assert res["failed"] and "1100000 parameters but 2000000 are claimed" in res["msg"]
    assert res["params"] == 1100000 and res["claimed_params"] == 2000000
    res = run(path=str(tmp_path), expected_params="2M", params_tolerance=0.5)
    assert not res.get("failed")


def test_precision_claim_from_the_name(tmp_path, run):
    make_dir(tmp_path, model_id="someone/Llama-1M-FP8", dtype="F16")
    res = run(path=str(tmp_path))
    assert res["failed"] and "the weights are fp16 (mostly F16) but fp8 is claimed" in res["msg"]
    assert res["claimed_precision"] == "fp8"


def test_claims_warn_only(tmp_path, run):
    make_dir(tmp_path, model_id="someone/Llama-1M-FP8", dtype="F16")
    res = run(path=str(tmp_path), claims="warn")
    assert not res.get("failed") and res["valid"]
    assert any("fp8 is claimed" in w for w in res["_warnings"])


def test_explicit_precision_and_model_id_mismatch_with_marker(tmp_path, run):
    make_dir(tmp_path)
    res = run(path=str(tmp_path), model_id="testorg/Other-1M", precision="BFLOAT16")
    assert res["failed"] and "the completion marker is for testorg/Tiny-1M, not testorg/Other-1M" in res["msg"]
    assert res["claimed_precision"] == "bf16"


def test_bad_explicit_claims_name_the_field(tmp_path, run):
    make_dir(tmp_path)
    res = run(path=str(tmp_path), expected_params="lots")
    assert res["failed"] and res["msg"].startswith("expected_params: invalid value 'lots'")
    res = run(path=str(tmp_path), precision="fp7")
    assert res["failed"] and res["msg"].startswith("precision: invalid value 'fp7'")
    res = run(path=str(tmp_path), params_tolerance=-1.0)
    assert res["failed"] and "params_tolerance -1.0 is not valid" in res["msg"]


def test_missing_marker_fails_unless_verify_none(tmp_path, run):
    make_dir(tmp_path, marker=False)
    res = run(path=str(tmp_path))
    assert res["failed"] and res["marker"] == "absent" and "never completed" in res["msg"]
    res = run(path=str(tmp_path), verify="none", expected_params=1000000)
    assert not res.get("failed") and res["marker"] == "skipped"


def test_truncated_shard_and_full_verify(tmp_path, run):
    files = make_dir(tmp_path)
    shard = os.path.join(str(tmp_path), "model-00002-of-00002.safetensors")
    with open(shard, "wb") as handle:
        handle.write(files["model-00002-of-00002.safetensors"][:-1])
    res = run(path=str(tmp_path), verify="full")
    assert res["failed"] and res["marker"] == "mismatch"
    assert any("truncated" in p for p in res["problems"])
    assert any("model-00002-of-00002.safetensors has" in p for p in res["problems"])


def test_missing_shard(tmp_path, run):
    make_dir(tmp_path, marker=False)
    os.unlink(os.path.join(str(tmp_path), "model-00001-of-00002.safetensors"))
    res = run(path=str(tmp_path), verify="none")
    assert res["failed"]
    assert ("model.safetensors.index.json names shard model-00001-of-00002.safetensors, which is not among the "
            "model's files") in res["problems"]


def test_not_a_directory(tmp_path, run):
    res = run(path=str(tmp_path / "nope"))
    assert res["failed"] and "is not a directory" in res["msg"]


def test_waits_for_a_running_download_then_fails(tmp_path, run):
    os.makedirs(str(tmp_path / "m"))
    make_dir(tmp_path / "m")
    with dir_lock.DirLock(dir_lock.lock_path_for(str(tmp_path / "m")), 1):
        res = run(path=str(tmp_path / "m"), lock_timeout=0)
    assert res["failed"] and "another run holds the lock" in res["msg"]


def test_symlinks_are_refused_and_named(tmp_path, run):
    model = tmp_path / "m"
    model.mkdir()
    make_dir(model)
    (tmp_path / "secret.txt").write_bytes(b"s")
    os.symlink(str(tmp_path / "secret.txt"), str(model / "README.md"))
    res = run(path=str(model))
    assert not res.get("failed"), res.get("msg")
    assert res["refused"] == [{"path": "README.md", "reason": "a symlink"}] and res["files"] == 4
    assert ("not followed or read (links and special files below the model directory are refused): README.md "
            "(a symlink)") in res["_warnings"]
    shard = "model-00002-of-00002.safetensors"
    os.rename(str(model / shard), str(tmp_path / shard))
    os.symlink(str(tmp_path / shard), str(model / shard))
    res = run(path=str(model))
    assert res["failed"] and "%s is not a regular file" % shard in res["problems"]
    assert {"path": shard, "reason": "a symlink"} in res["refused"]
