# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""modelscope_info against the real local hub (tools/local_hub): exact download sizes, header parameter counts equal to
the generated models' real counts, and the hub's request log as proof that only small ranged reads of the weights were
made; a server that ignores Range; a token; offline mode on a directory downloaded by modelscope_download; and a
playbook that feeds the result into model_sizing.
"""
import hashlib
import json
import os
import struct
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils.model_metadata import (
    FIRST_READ_BYTES, HubSource, collect_metadata)

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
PYTHON = os.path.join(VENV_BIN, "python")
QWEN = "llmops-test/Qwen2-tiny-2M"
LLAMA = "llmops-test/Llama-3.1-tiny-4M"
QWEN_FP8 = "llmops-test/Qwen2-tiny-2M-FP8"
CANARY = "canary-token-4b1d9e7a0c3f"


def ansible_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELSCOPE_", "ANSIBLE_"))}
    env.update({
        "PATH": VENV_BIN + os.pathsep + env.get("PATH", ""),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_NOCOLOR": "1",
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    })
    return env


def run_module(module, args, *extra, env=None):
    argv = [os.path.join(VENV_BIN, "ansible"), "localhost", "-m", "llmops.deploy." + module, "-a", json.dumps(args),
            "-e", "ansible_python_interpreter=%s" % PYTHON] + list(extra)
    proc = subprocess.run(argv, cwd=REPO, env=env or ansible_env(), capture_output=True, text=True, timeout=600,
                          check=False)
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{"):])
        return data["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError("no result from ansible (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))


def weight_requests(hub, model=None):
    return [r for r in hub.requests(kind="file", model=model) if r["file"].endswith(".safetensors")]


def assert_only_header_reads(hub, model, result):
    """The request log: every read of a weight file is a small ranged read answered 206; none is a full GET."""
    reads = weight_requests(hub, model)
    assert reads, "no safetensors file was read"
    for record in reads:
        assert record["range"] and record["range"].startswith("bytes=0-"), record
        assert record["status"] == 206, record
        assert record["bytes_sent"] <= FIRST_READ_BYTES, record
    served = sum(r["bytes_sent"] for r in reads)
    assert served == result["bytes_read"]
    return served


# ---------------------------------------------------------------------------------------------------------------
# Every served model, in process (the module_util over real HTTP)
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model_id, revision", [(QWEN, "master"), (QWEN, "v1.0"), (LLAMA, "master"),
                                                (QWEN_FP8, "master")])
def test_every_served_model_is_sized_exactly_from_headers_only(local_hub, model_id, revision):
    snapshot = local_hub.snapshot(model_id, revision)
    result = collect_metadata(HubSource(local_hub.endpoint, model_id, revision).load())
    # exact listing: every file, its size and sha256, the resolved commit
    assert {f["path"]: (f["size"], f["sha256"]) for f in result["files"]} == {
        p: (e.size, e.sha256) for p, e in snapshot.files.items()}
    assert result["download_bytes"] == result["total_bytes"] == sum(e.size for e in snapshot.files.values())
    assert result["revision"] == snapshot.commit_id
    # header parameter counts are the model's real counts (the generator's, from its config)
    assert result["params"] == snapshot.spec.parameter_count
    assert result["architecture"]["params_computed"] == snapshot.spec.parameter_count
    assert result["config"] == json.loads(local_hub.read_file(model_id, "config.json", revision))
    assert result["metadata_warnings"] == []
    shards = sorted(p for p in snapshot.files if p.endswith(".safetensors"))
    assert [f["path"] for f in result["safetensors_files"]] == shards
    # the weights' tensor bytes, exactly: file size minus the header
    for item in result["safetensors_files"]:
        assert item["data_bytes"] == snapshot.files[item["path"]].size - item["header_bytes"]
    # the request log: only small ranged reads of the weights
    served = assert_only_header_reads(local_hub, model_id, result)
    assert served <= len(shards) * FIRST_READ_BYTES < 1024 * 1024
    weights_total = sum(snapshot.files[p].size for p in shards)
    assert served * 10 < weights_total
    kinds = sorted(set(r["file"] for r in local_hub.requests(kind="file", model=model_id)))
    assert kinds == sorted(shards + ["config.json"] + [p for p in snapshot.files if p.endswith(".index.json")])
    assert result["range_ignored"] is False


def test_the_three_shard_model_reads_under_1_mib_of_weights(local_hub):
    result = collect_metadata(HubSource(local_hub.endpoint, LLAMA).load())
    served = assert_only_header_reads(local_hub, LLAMA, result)
    assert served < 1024 * 1024 and result["weights"]["files"] == 3
    assert result["index_files"][0]["shards"] == ["model-00001-of-00003.safetensors",
                                                  "model-00002-of-00003.safetensors",
                                                  "model-00003-of-00003.safetensors"]
    assert result["weights"]["data_bytes"] == json.loads(
        local_hub.read_file(LLAMA, "model.safetensors.index.json"))["metadata"]["total_size"]


def test_include_exclude_match_what_the_download_fetches(local_hub):
    snapshot = local_hub.snapshot(LLAMA)
    result = collect_metadata(HubSource(local_hub.endpoint, LLAMA).load(), include=["*.json", "*.safetensors"],
                              exclude=["original/*"])
    expected = sorted(p for p in snapshot.files if (p.endswith(".json") or p.endswith(".safetensors"))
                      and not p.startswith("original/"))
    assert [f["path"] for f in result["files"]] == expected
    assert result["download_bytes"] == sum(snapshot.files[p].size for p in expected)


# ---------------------------------------------------------------------------------------------------------------
# A server that ignores Range
# ---------------------------------------------------------------------------------------------------------------
class _NoRangeHub(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


def big_safetensors_head(numel):
    header = json.dumps({"__metadata__": {"format": "pt"},
                         "big.weight": {"dtype": "BF16", "shape": [numel], "data_offsets": [0, 2 * numel]}})
    raw = header.encode() + b" " * (-len(header) % 8)
    return struct.pack("<Q", len(raw)) + raw


@pytest.fixture
def no_range_hub():
    """A stdlib hub serving one 64 MiB safetensors file that answers every file request with 200 and the whole body,
    whatever the Range header says; it records how many body bytes it managed to send before the client hung up."""
    numel = 32 * 1024 * 1024
    head = big_safetensors_head(numel)
    size = len(head) + 2 * numel
    digest = hashlib.sha256(head)
    zeros = b"\x00" * (1 << 20)
    for _chunk in range(2 * numel // len(zeros)):
        digest.update(zeros)
    log = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            url = urlsplit(self.path)
            params = dict((k, v[-1]) for k, v in parse_qs(url.query).items())
            if url.path.endswith("/repo/files"):
                body = json.dumps({"Code": 200, "Success": True, "Data": {"Files": [
                    {"Path": "model.safetensors", "Type": "blob", "Size": size, "Sha256": digest.hexdigest()}]}})
                body = body.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            record = {"file": params.get("FilePath"), "range": self.headers.get("Range"), "sent": 0,
                      "hung_up": False}
            log.append(record)
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            try:
                self.wfile.write(head)
                record["sent"] += len(head)
                while record["sent"] < size:
                    self.wfile.write(zeros)
                    record["sent"] += len(zeros)
            except (BrokenPipeError, ConnectionResetError):
                record["hung_up"] = True
                self.close_connection = True

    server = _NoRangeHub(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield {"endpoint": "http://127.0.0.1:%d" % server.server_address[1], "log": log, "size": size,
               "header": len(head), "numel": numel}
    finally:
        server.shutdown()
        server.server_close()


def test_a_hub_that_ignores_range_is_read_only_up_to_the_header(no_range_hub):
    result = collect_metadata(HubSource(no_range_hub["endpoint"], "acme/big-32M").load())
    assert result["params"] == no_range_hub["numel"] and result["range_ignored"] is True
    assert result["bytes_read"] == no_range_hub["header"]          # the module consumed the header, nothing more
    assert result["download_bytes"] == no_range_hub["size"]
    assert "the model has no config.json: no architecture" in result["metadata_warnings"]
    for _attempt in range(100):
        if no_range_hub["log"] and no_range_hub["log"][0]["hung_up"]:
            break
        threading.Event().wait(0.05)
    record, = no_range_hub["log"]
    assert record["range"] == "bytes=0-%d" % (FIRST_READ_BYTES - 1)
    assert record["hung_up"] is True                                # the client closed the connection...
    assert record["sent"] < no_range_hub["size"] // 4               # ...long before the 64 MiB body was sent


# ---------------------------------------------------------------------------------------------------------------
# Through Ansible: token, -vvv, errors
# ---------------------------------------------------------------------------------------------------------------
def test_token_required_401_without_works_with_and_never_shown(local_hub_factory, tmp_path):
    hub = local_hub_factory(token=CANARY)
    failed = run_module("modelscope_info", {"model_id": QWEN, "endpoint": hub.endpoint})
    assert failed["failed"] is True
    assert failed["msg"].startswith("cannot read %s@master from %s: the hub refused access (HTTP 401" % (
        QWEN, hub.endpoint))
    assert failed["msg"].endswith("no token was given")
    assert weight_requests(hub) == []

    vars_file = tmp_path / "secret.json"
    vars_file.write_text(json.dumps({"canary_token": CANARY}))
    argv = [os.path.join(VENV_BIN, "ansible"), "localhost", "-vvv", "-m", "llmops.deploy.modelscope_info",
            "-a", "model_id=%s endpoint=%s token={{ canary_token }}" % (QWEN, hub.endpoint),
            "-e", "@" + str(vars_file), "-e", "ansible_python_interpreter=%s" % PYTHON]
    env = ansible_env()
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
    hub.clear_requests()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "params: %d" % hub.snapshot(QWEN).spec.parameter_count in proc.stdout
    assert "token: VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in proc.stdout    # -vvv shows the invocation, masked
    assert CANARY not in output
    requests = hub.requests()
    assert requests and all(r["auth"] for r in requests)
    assert [r["kind"] for r in requests].count("listing") == 1


def test_token_never_follows_a_redirect_to_another_port(local_hub_factory):
    """The hub redirects every file request to another port of the same host: those requests go without the token,
    while the listing (not redirected) carries it."""
    other = local_hub_factory()
    hub = local_hub_factory(token=CANARY)
    hub.add_file_fault("*", redirect=other.endpoint)
    result = run_module("modelscope_info", {"model_id": QWEN, "endpoint": hub.endpoint, "token": CANARY})
    assert result.get("failed") is not True, result.get("msg")
    assert result["params"] == hub.snapshot(QWEN).spec.parameter_count
    assert [r["auth"] for r in hub.requests(kind="listing")] == [True]
    redirected = hub.requests(kind="file")
    served = other.requests(kind="file")
    assert redirected and all(r["status"] == 302 and r["auth"] for r in redirected)
    assert len(served) == len(redirected) and not any(r["auth"] or r["cookie_auth"] for r in served)


def test_unknown_model_and_revision_name_the_model_and_endpoint(local_hub):
    result = run_module("modelscope_info", {"model_id": "llmops-test/nope", "endpoint": local_hub.endpoint})
    assert result["failed"] and result["msg"].startswith(
        "cannot read llmops-test/nope@master from %s: the hub has no such model or revision (HTTP 404" %
        local_hub.endpoint)
    result = run_module("modelscope_info", {"model_id": QWEN, "revision": "v9", "endpoint": local_hub.endpoint})
    assert result["failed"] and "%s@v9 from %s" % (QWEN, local_hub.endpoint) in result["msg"]


def test_a_corrupt_header_on_the_hub_names_the_file(local_hub):
    local_hub.add_file_fault("model-00002-of-00003.safetensors", corrupt={"offset": 20, "length": 4})
    result = run_module("modelscope_info", {"model_id": LLAMA, "endpoint": local_hub.endpoint})
    assert result["failed"] and result["msg"].startswith(
        "cannot read %s@master from %s: model-00002-of-00003.safetensors: not a valid safetensors header" % (
            LLAMA, local_hub.endpoint))


# ---------------------------------------------------------------------------------------------------------------
# Offline, on a directory that modelscope_download filled
# ---------------------------------------------------------------------------------------------------------------
def test_offline_on_a_downloaded_directory_matches_the_hub(local_hub, tmp_path):
    model_dir = tmp_path / "models" / LLAMA
    online = run_module("modelscope_info", {"model_id": LLAMA, "endpoint": local_hub.endpoint})
    assert not online.get("failed"), online
    downloaded = run_module("modelscope_download", {
        "model_id": LLAMA, "model_dir": str(model_dir), "endpoint": local_hub.endpoint, "sdk_python": PYTHON})
    assert downloaded.get("complete") is True, downloaded
    assert online["download_bytes"] == downloaded["bytes_total"]          # the disk preflight figure was exact

    local_hub.clear_requests()
    offline = run_module("modelscope_info", {"path": str(model_dir)}, "--check")
    assert not offline.get("failed"), offline
    assert local_hub.requests() == []                                      # no network at all
    assert offline["source"] == "local" and offline["http_requests"] == 0 and offline["changed"] is False
    assert offline["model_id"] == LLAMA and offline["revision"] == online["revision"]
    assert offline["files"] == online["files"]                            # sizes, and sha256 from the marker
    for key in ("download_bytes", "config", "weights", "params", "architecture", "index_files", "safetensors_files"):
        if key == "safetensors_files":
            strip = [dict(f, bytes_read=None) for f in offline[key]]
            assert strip == [dict(f, bytes_read=None) for f in online[key]]
        else:
            assert offline[key] == online[key], key
    assert offline["bytes_read"] == sum(f["header_bytes"] for f in offline["safetensors_files"])


def test_offline_and_model_verify_refuse_the_same_symlink_out_of_the_directory(tmp_path):
    """modelscope_info(path=) and model_verify read a directory through one listing: a symlinked file pointing out of
    it is followed by neither, and both name it."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    head = big_safetensors_head(8)
    (model_dir / "model.safetensors").write_bytes(head + b"\0" * 16)
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(big_safetensors_head(1000) + b"\0" * 2000)
    os.symlink(str(outside), str(model_dir / "extra.safetensors"))
    refused = [{"path": "extra.safetensors", "reason": "a symlink"}]

    info = run_module("modelscope_info", {"path": str(model_dir)})
    assert not info.get("failed"), info
    assert info["refused"] == refused and [f["path"] for f in info["files"]] == ["config.json", "model.safetensors"]
    assert info["params"] == 8 and info["bytes_read"] == len(head)                 # the outside file was not read
    assert any("extra.safetensors (a symlink)" in w for w in info["warnings"])

    verified = run_module("model_verify", {"path": str(model_dir), "verify": "none", "expected_params": 8})
    assert not verified.get("failed"), verified
    assert verified["refused"] == refused and verified["params"] == 8 and verified["files"] == 2
    assert any("extra.safetensors (a symlink)" in w for w in verified["warnings"])


# ---------------------------------------------------------------------------------------------------------------
# Playbook: modelscope_info -> model_sizing (detailed)
# ---------------------------------------------------------------------------------------------------------------
PLAYBOOK = """\
- name: Size a model from the hub's metadata, without downloading it
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Read the model's metadata
      llmops.deploy.modelscope_info:
        model_id: "{{ model_id }}"
        endpoint: "{{ endpoint }}"
      register: info

    - name: Size it exactly
      llmops.deploy.model_sizing:
        model: "{{ model_id }}"
        method: detailed
        config: "{{ info.config }}"
        weights: "{{ info.weights }}"
        gpu_memory_mib: 24564
      register: sized

    - name: Check the host for it
      llmops.deploy.capacity_check:
        model: "{{ model_id }}"
        method: detailed
        config: "{{ info.config }}"
        weights: "{{ info.weights }}"
        target: cpu
        model_dir: "{{ disk_path }}"
        disk_required_bytes: "{{ info.download_bytes }}"
        fail_on: never
      register: capacity

    - name: The parameter count is the headers' count, exactly
      ansible.builtin.assert:
        that:
          - sized.params == info.params
          - sized.method == 'detailed'
          - sized.breakdown.weights.bytes == info.weights.data_bytes
"""


def test_playbook_info_then_detailed_sizing(local_hub, tmp_path):
    playbook = tmp_path / "size.yml"
    playbook.write_text(PLAYBOOK)
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), str(playbook), "-e", "model_id=%s" % LLAMA,
            "-e", "endpoint=%s" % local_hub.endpoint, "-e", "disk_path=%s" % tmp_path,
            "-e", "ansible_python_interpreter=%s" % PYTHON]
    proc = subprocess.run(argv, cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    tasks = json.loads(proc.stdout[proc.stdout.index("{"):])["plays"][0]["tasks"]
    results = dict((t["task"]["name"], t["hosts"]["localhost"]) for t in tasks)
    info = results["Read the model's metadata"]
    sized = results["Size it exactly"]
    params = local_hub.snapshot(LLAMA).spec.parameter_count
    assert info["params"] == sized["params"] == params == 3934464
    assert sized["basis"]["param_memory"].startswith("read: safetensors headers")
    assert sized["breakdown"]["weights"]["bytes"] == info["weights"]["data_bytes"] == 2 * params
    capacity = results["Check the host for it"]
    assert capacity.get("failed") is not True and capacity["resources"]["disk"]["verdict"] == "fits"
    assert capacity["resources"]["disk"]["path"] == str(tmp_path)
    assert weight_requests(local_hub, LLAMA) and all(r["status"] == 206 for r in weight_requests(local_hub, LLAMA))
