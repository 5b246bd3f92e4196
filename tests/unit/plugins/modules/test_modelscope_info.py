# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""modelscope_info module: options, results, errors and the token, over the fake hub of test_model_metadata."""

import io
import json
import os
import sys
from urllib.error import HTTPError

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import hub_client
from ansible_collections.llmops.deploy.plugins.modules import modelscope_info

from .module_runner import run_module

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils"))
from test_model_metadata import CONFIG, MODEL, PARAMS, FakeHub, tiny_repo, write_marker, write_repo  # noqa: E402

ENDPOINT = "http://hub.test:8080"
TOKEN = "tok-9f8e7d6c5b4a"


@pytest.fixture
def hub(monkeypatch):
    fake = FakeHub(tiny_repo())
    monkeypatch.setattr(hub_client, "_ansible_transport", lambda *args: hub_client._opener_transport(fake))
    return fake


def info(monkeypatch, check_mode=False, **args):
    return run_module(monkeypatch, modelscope_info, args, check_mode=check_mode)


def test_hub_mode_result(monkeypatch, hub):
    failed, result = info(monkeypatch, model_id=MODEL, endpoint=ENDPOINT)
    assert not failed and result["changed"] is False
    assert result["source"] == "hub" and result["endpoint"] == ENDPOINT and result["path"] is None
    assert result["model_id"] == MODEL and result["revision_requested"] == "master" and result["revision"] == "c0ffee"
    assert result["config"] == CONFIG and result["params"] == PARAMS and result["weights"]["params_total"] == PARAMS
    assert result["architecture"]["layers"] == 1 and result["file_count"] == len(hub.files)
    assert result["download_bytes"] == sum(len(d) for d in hub.files.values())
    assert result["pickle_files"] == ["pytorch_model.bin"] and result["code_files"] == ["modeling_tiny.py"]
    assert result["_warnings"] == [] and result["metadata_warnings"] == []


def test_check_mode_gives_the_same_result(monkeypatch, hub):
    _failed, normal = info(monkeypatch, model=MODEL, endpoint=ENDPOINT)
    failed, checked = info(monkeypatch, check_mode=True, model=MODEL, endpoint=ENDPOINT)
    assert not failed and checked == normal


def test_include_exclude_and_revision(monkeypatch, hub):
    failed, result = info(monkeypatch, model_id=MODEL, endpoint=ENDPOINT, revision="v1.0",
                          include=["*.json,*.safetensors"], exclude=["model-00002*"])
    assert not failed
    assert [f["path"] for f in result["files"]] == ["config.json", "model-00001-of-00002.safetensors",
                                                    "model.safetensors.index.json"]
    assert set(e["revision"] for e in hub.log) == {"v1.0"} and result["revision_requested"] == "v1.0"
    assert result["params"] == PARAMS - 264
    assert any("include/exclude leave out" in w for w in result["_warnings"])       # warnings reach Ansible
    assert result["_warnings"] == result["metadata_warnings"]


@pytest.mark.parametrize("args, words", [
    ({}, "one of the following is required: model_id, path"),
    ({"model_id": "no-slash"}, "model_id 'no-slash' is not valid"),
    ({"model_id": MODEL, "endpoint": "hub.test"}, "endpoint 'hub.test' is not valid"),
    ({"model_id": MODEL, "revision": "a b"}, "revision 'a b' is not valid"),
    ({"model_id": MODEL, "timeout": 0}, "timeout 0 is not valid: expected an integer >= 1"),
    ({"model_id": MODEL, "retries": 11}, "retries 11 is not valid: expected an integer from 0 to 10"),
    ({"model_id": MODEL, "max_header_bytes": 4}, "max_header_bytes 4 is not valid: expected an integer >= 8"),
])
def test_bad_options_fail_naming_the_field(monkeypatch, hub, args, words):
    failed, result = info(monkeypatch, **args)
    assert failed and words in result["msg"]
    assert hub.log == []


def test_401_403_404_name_the_model_and_endpoint_never_the_token(monkeypatch, hub):
    hub.token = TOKEN
    failed, result = info(monkeypatch, model_id=MODEL, endpoint=ENDPOINT)
    assert failed and result["msg"] == (
        "cannot read %s@master from %s: the hub refused access (HTTP 401: auth needed): no token was given" % (
            MODEL, ENDPOINT))
    failed, result = info(monkeypatch, model_id=MODEL, endpoint=ENDPOINT, token="bad")
    assert failed and "(HTTP 403: auth needed): the token is missing, wrong or lacks access" in result["msg"]
    failed, result = info(monkeypatch, model_id=MODEL, endpoint=ENDPOINT, token=TOKEN, revision="nope")
    assert not failed      # the fake hub serves any revision; now a missing file:
    hub.status["config.json"] = [404]
    failed, result = info(monkeypatch, model_id=MODEL, endpoint=ENDPOINT, token=TOKEN)
    assert failed and result["msg"].startswith("cannot read %s@master from %s: config.json: the hub has no such "
                                               "file" % (MODEL, ENDPOINT))
    assert TOKEN not in json.dumps(result)


def test_a_token_echoed_by_the_hub_is_scrubbed(monkeypatch, hub):
    def echo(request, timeout=None):
        raise HTTPError(request.full_url, 403, "denied", {}, io.BytesIO(json.dumps(
            {"Message": "bad credentials %s" % request.get_header("Authorization")}).encode()))

    monkeypatch.setattr(hub, "open", echo)
    failed, result = info(monkeypatch, model_id=MODEL, endpoint=ENDPOINT, token=TOKEN)
    assert failed and "bad credentials Bearer ********" in result["msg"]
    assert TOKEN not in json.dumps(result)


def test_a_successful_result_never_holds_the_token(monkeypatch, hub):
    hub.token = TOKEN
    failed, result = info(monkeypatch, model_id=MODEL, endpoint=ENDPOINT, token=TOKEN)
    assert not failed and result["params"] == PARAMS
    assert TOKEN not in json.dumps(result)
    assert all(e["auth"] == "Bearer " + TOKEN for e in hub.log)


def test_malformed_header_names_the_file_and_model(monkeypatch, hub):
    hub.files["model-00002-of-00002.safetensors"] = b"\x04\x00\x00\x00\x00\x00\x00\x00nope"
    failed, result = info(monkeypatch, model_id=MODEL, endpoint=ENDPOINT)
    assert failed and result["msg"].startswith(
        "cannot read %s@master from %s: model-00002-of-00002.safetensors: not a valid safetensors header" % (
            MODEL, ENDPOINT))


def test_local_mode_reads_the_directory_without_network(monkeypatch, tmp_path):
    def refuse(*_args):
        raise AssertionError("no transport may be built in local mode")

    monkeypatch.setattr(hub_client, "_ansible_transport", refuse)
    repo = tiny_repo()
    write_repo(tmp_path, repo)
    write_marker(tmp_path, repo)
    failed, result = info(monkeypatch, path=str(tmp_path), endpoint="http://never.used:1", token=TOKEN)
    assert not failed and result["source"] == "local" and result["path"] == str(tmp_path)
    assert result["endpoint"] is None and result["http_requests"] == 0
    assert result["model_id"] == MODEL and result["revision"] == "c0ffee" and result["revision_requested"] is None
    assert all(f["sha256"] for f in result["files"]) and result["params"] == PARAMS
    assert TOKEN not in json.dumps(result)


def test_local_mode_bad_path(monkeypatch, tmp_path):
    failed, result = info(monkeypatch, path=str(tmp_path / "missing"))
    assert failed and result["msg"].startswith("cannot read the model directory %s: path %s is not valid" % (
        tmp_path / "missing", tmp_path / "missing"))


def test_local_mode_refuses_a_symlink_out_of_the_directory(monkeypatch, tmp_path):
    repo = tiny_repo()
    model = tmp_path / "model"
    write_repo(model, repo)
    (tmp_path / "secret.txt").write_bytes(b"s" * 4096)
    os.symlink(str(tmp_path / "secret.txt"), str(model / "notes.txt"))
    failed, result = info(monkeypatch, path=str(model))
    assert not failed, result["msg"]
    assert result["refused"] == [{"path": "notes.txt", "reason": "a symlink"}]
    assert [f["path"] for f in result["files"]] == sorted(repo)
    assert result["total_bytes"] == sum(len(d) for d in repo.values())
    assert ("not followed or read (links and special files below the model directory are refused): notes.txt "
            "(a symlink)") in result["_warnings"]


def test_local_mode_a_symlinked_shard_fails_naming_it(monkeypatch, tmp_path):
    repo = tiny_repo()
    model = tmp_path / "model"
    write_repo(model, repo)
    shard = "model-00002-of-00002.safetensors"
    os.rename(str(model / shard), str(tmp_path / shard))
    os.symlink(str(tmp_path / shard), str(model / shard))
    failed, result = info(monkeypatch, path=str(model))
    assert failed and result["refused"] == [{"path": shard, "reason": "a symlink"}]
    assert result["msg"] == (
        "cannot read the model directory %s: the model's shard index does not match its files: "
        "model.safetensors.index.json names shard %s, which is not among the model's files (refused, not followed "
        "or read: %s is a symlink)" % (model, shard, shard))


def test_hub_mode_refuses_nothing(monkeypatch, hub):
    failed, result = info(monkeypatch, model_id=MODEL, endpoint=ENDPOINT)
    assert not failed and result["refused"] == []
