"""The local hub (tools/local_hub) speaks the ModelScope download protocol well enough for the REAL SDK.

Two layers: plain-HTTP tests of the hub itself (formats, listing, ranges, auth, faults, CLI), then the real
``modelscope`` CLI and ``modelscope.snapshot_download`` in subprocesses against it (marked slow). The safetensors
header parser and the parameter formula below are written independently of tools/local_hub/models.py.
"""
import hashlib
import http.client
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tools.local_hub import DEFAULT_UNSAFE_PATHS, FaultError, LocalHub
from tools.local_hub.models import TOKENIZER_DIR, bench_model
from tools.local_hub.server import _Link

QWEN = "llmops-test/Qwen2-tiny-2M"
LLAMA = "llmops-test/Llama-3.1-tiny-4M"
QWEN_FP8 = "llmops-test/Qwen2-tiny-2M-FP8"
ALL_MODELS = (QWEN, LLAMA, QWEN_FP8)
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "I16": 2,
               "I8": 1, "U8": 1, "BOOL": 1}


# ---------------------------------------------------------------------------------------------------------- helpers
def http_get(hub, path, params=None, headers=None, method="GET"):
    """(status, headers, body) of one request to the hub."""
    url = hub.endpoint + path + ("?" + urllib.parse.urlencode(params) if params else "")
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def listing(hub, model_id, revision="master", **params):
    status, _ignored, body = http_get(hub, "/api/v1/models/%s/repo/files" % model_id,
                                      dict({"Revision": revision, "Recursive": "True"}, **params))
    assert status == 200, body
    return json.loads(body)["Data"]["Files"]


def fetch(hub, model_id, path, revision="master", headers=None):
    return http_get(hub, "/api/v1/models/%s/repo" % model_id, {"Revision": revision, "FilePath": path}, headers)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_header(data):
    """Independent safetensors header check: returns ({name: (dtype, shape)}, data size) or fails the test."""
    (length,) = struct.unpack("<Q", data[:8])
    assert (8 + length) % 8 == 0, "header not padded to a multiple of 8"
    raw = data[8:8 + length]
    assert raw.rstrip(b" ").endswith(b"}"), "the JSON header may only be followed by space padding"
    header = json.loads(raw)
    assert header.pop("__metadata__") == {"format": "pt"}
    expected = 0
    tensors = {}
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        start, end = info["data_offsets"]
        assert start == expected, "tensor %s does not start where the previous one ended" % name
        assert end - start == DTYPE_BYTES[info["dtype"]] * math.prod(info["shape"]), name
        expected = end
        tensors[name] = (info["dtype"], info["shape"])
    assert len(data) == 8 + length + expected, "file size != header + data"
    return tensors, expected


def params_from_config(cfg):
    """Parameter count of a Qwen2/Llama config.json, written from the HF module definitions."""
    h, layers, vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim", h // heads)
    kv = cfg["num_key_value_heads"] * head_dim
    q = heads * head_dim
    attn = h * q + 2 * h * kv + q * h
    if cfg["model_type"] == "qwen2":  # Qwen2Attention: bias on q, k, v
        attn += q + 2 * kv
    mlp = 3 * h * cfg["intermediate_size"]
    embeddings = vocab * h * (1 if cfg["tie_word_embeddings"] else 2)
    return embeddings + layers * (attn + mlp + 2 * h) + h


def stated_params(name):
    number, unit = re.search(r"-(\d+(?:\.\d+)?)([MB])(?:-|$)", name).groups()
    decimals = len(number.split(".")[1]) if "." in number else 0
    scale = 1e6 if unit == "M" else 1e9
    return float(number) * scale, 0.5 * 10 ** -decimals * scale


def assert_matches_store(hub, model_id, directory, revision="master", paths=None):
    files = hub.snapshot(model_id, revision).files
    for path in paths or files:
        assert sha256_file(os.path.join(directory, path)) == files[path].sha256, path


def file_requests(hub, model_id=None):
    return hub.requests(kind="file", model=model_id)


# ------------------------------------------------------------------------------------------ formats (plain HTTP)
@pytest.mark.parametrize("model_id", ALL_MODELS)
def test_safetensors_headers_parse_and_count_equals_config(local_hub, model_id):
    entries = {e["Path"]: e for e in listing(local_hub, model_id) if e["Type"] == "blob"}
    cfg = json.loads(fetch(local_hub, model_id, "config.json")[2])
    weights = sorted(p for p in entries if p.endswith(".safetensors"))
    tensors, data_bytes = {}, {}
    for path in weights:
        status, _ignored, body = fetch(local_hub, model_id, path)
        assert status == 200
        assert len(body) == entries[path]["Size"]
        assert hashlib.sha256(body).hexdigest() == entries[path]["Sha256"]
        found, data_bytes[path] = parse_header(body)
        assert not set(found) & set(tensors), "a tensor appears in two shards"
        tensors.update({name: (path,) + info for name, info in found.items()})

    counted = sum(math.prod(shape) for name, (_ignored, _ignored, shape) in tensors.items() if not name.endswith("_scale_inv"))
    assert counted == params_from_config(cfg)
    assert ("lm_head.weight" in tensors) is (not cfg["tie_word_embeddings"])
    assert tensors["model.embed_tokens.weight"][2] == [cfg["vocab_size"], cfg["hidden_size"]]
    assert "model.layers.%d.mlp.down_proj.weight" % (cfg["num_hidden_layers"] - 1) in tensors
    if "quantization_config" in cfg:
        block = cfg["quantization_config"]["weight_block_size"]
        _ignored, dtype, shape = tensors["model.layers.0.mlp.gate_proj.weight"]
        assert dtype == "F8_E4M3"
        scale = tensors["model.layers.0.mlp.gate_proj.weight_scale_inv"]
        assert scale[1:] == ("F32", [math.ceil(shape[0] / block[0]), math.ceil(shape[1] / block[1])])
    else:
        assert {dtype for _ignored, dtype, _ignored in tensors.values()} == {"BF16"}
        assert cfg["torch_dtype"] == "bfloat16"
    if len(weights) > 1:
        assert weights == ["model-%05d-of-%05d.safetensors" % (k, len(weights)) for k in range(1, len(weights) + 1)]
        index = json.loads(fetch(local_hub, model_id, "model.safetensors.index.json")[2])
        assert index["weight_map"] == {name: info[0] for name, info in tensors.items()}
        assert index["metadata"]["total_size"] == sum(data_bytes.values())
    else:
        assert weights == ["model.safetensors"]


@pytest.mark.parametrize("model_id", ALL_MODELS)
def test_model_names_state_their_real_size(local_hub_shared, model_id):
    local_hub = local_hub_shared
    cfg = json.loads(fetch(local_hub, model_id, "config.json")[2])
    stated, tolerance = stated_params(model_id)
    assert abs(stated - params_from_config(cfg)) <= tolerance
    assert cfg["architectures"][0] in ("Qwen2ForCausalLM", "LlamaForCausalLM")
    for key in ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers",
                "vocab_size", "max_position_embeddings", "torch_dtype", "tie_word_embeddings", "rope_theta"):
        assert key in cfg, key
    assert json.loads(fetch(local_hub, model_id, "configuration.json")[2]) == {"framework": "pytorch",
                                                                               "task": "text-generation"}
    tok = json.loads(fetch(local_hub, model_id, "tokenizer.json")[2])
    ids = list(tok["model"]["vocab"].values()) + [t["id"] for t in tok["added_tokens"]]
    assert sorted(ids) == list(range(len(ids))) and len(ids) <= cfg["vocab_size"]
    for merge in tok["model"]["merges"]:
        assert "".join(merge.split(" ")) in tok["model"]["vocab"]


def gpt2_byte_symbols():
    """The 256 printable stand-ins of byte-level BPE (GPT-2's table), written out independently."""
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    extra = [b for b in range(256) if b not in printable]
    return {chr(b) for b in printable} | {chr(256 + k) for k in range(len(extra))}


def test_every_model_serves_the_one_fixed_byte_level_tokenizer(local_hub_shared):
    local_hub = local_hub_shared
    shipped = (TOKENIZER_DIR / "tokenizer.json").read_bytes()
    assert len(shipped) < 16 * 1024
    for model_id in ALL_MODELS:
        assert fetch(local_hub, model_id, "tokenizer.json")[2] == shipped, model_id
    tok = json.loads(shipped)
    assert tok["model"]["type"] == "BPE" and tok["decoder"]["type"] == "ByteLevel"
    assert tok["pre_tokenizer"]["pretokenizers"][-1]["type"] == "ByteLevel"
    # every byte has its own token, so every text (any language, control characters, NUL) encodes
    assert gpt2_byte_symbols() <= set(tok["model"]["vocab"])
    specials = {t["content"]: t["id"] for t in tok["added_tokens"]}
    for model_id in ALL_MODELS:
        cfg = json.loads(fetch(local_hub, model_id, "config.json")[2])
        tok_cfg = json.loads(fetch(local_hub, model_id, "tokenizer_config.json")[2])
        eos = cfg["eos_token_id"] if isinstance(cfg["eos_token_id"], list) else [cfg["eos_token_id"]]
        assert specials[tok_cfg["eos_token"]] in eos, model_id
        assert {int(k): v["content"] for k, v in tok_cfg["added_tokens_decoder"].items()} == \
            {i: t for t, i in specials.items()}
        assert max(specials.values()) < cfg["vocab_size"]
    qwen_vocab = json.loads(fetch(local_hub, QWEN, "vocab.json")[2])
    merges = fetch(local_hub, QWEN, "merges.txt")[2].decode("utf-8").splitlines()
    assert qwen_vocab == tok["model"]["vocab"] and merges == ["#version: 0.2"] + tok["model"]["merges"]


def test_bench_model_streams_without_materialising(local_hub_factory, tmp_path):
    spec = bench_model(3 << 20)
    stated, tolerance = stated_params(spec.model_id)
    assert abs(stated - spec.parameter_count) <= tolerance
    hub = local_hub_factory(store_dir=tmp_path / "store", models=[spec])
    entry = {e["Path"]: e for e in listing(hub, spec.model_id)}["model.safetensors"]
    assert hub.snapshot(spec.model_id).files["model.safetensors"].local_path is None
    assert not (tmp_path / "store" / "models").exists()
    status, _ignored, body = fetch(hub, spec.model_id, "model.safetensors")
    assert status == 200 and hashlib.sha256(body).hexdigest() == entry["Sha256"]
    tensors, _ignored = parse_header(body)
    assert sum(math.prod(s) for _ignored, s in tensors.values()) == spec.parameter_count
    start = len(body) // 2 + 12345
    status, headers, part = fetch(hub, spec.model_id, "model.safetensors", headers={"Range": "bytes=%d-" % start})
    assert status == 206 and part == body[start:]
    # the sha256 cached in the manifest is reused by a second hub on the same store
    again = LocalHub(tmp_path / "store", models=[spec]).prepare()
    assert again.snapshot(spec.model_id).files["model.safetensors"].sha256 == entry["Sha256"]


# ----------------------------------------------------------------------------------------- protocol (plain HTTP)
def test_listing_paths_tree_entries_root_and_recursive(local_hub):
    full = listing(local_hub, LLAMA)
    by_path = {e["Path"]: e for e in full}
    assert by_path["original"]["Type"] == "tree" and by_path["original"]["Sha256"] == ""
    blob = by_path["original/params.json"]
    assert blob["Name"] == "params.json" and blob["Type"] == "blob"
    assert re.fullmatch(r"[0-9a-f]{64}", blob["Sha256"]) and re.fullmatch(r"[0-9a-f]{40}", blob["Revision"])
    assert blob["Size"] == local_hub.snapshot(LLAMA).files["original/params.json"].size

    rooted = listing(local_hub, LLAMA, Root="original")
    assert [e["Path"] for e in rooted] == ["original/params.json"]  # full repo-relative paths under Root
    shallow = listing(local_hub, LLAMA, Recursive="False")
    assert "original" in {e["Path"] for e in shallow} and "original/params.json" not in {e["Path"] for e in shallow}

    status, _ignored, body = http_get(local_hub, "/api/v1/models/%s/repo/files" % LLAMA,
                                      {"Revision": "master", "Recursive": "True", "Root": "missing"})
    assert status == 404 and json.loads(body)["Success"] is False


def test_errors_revisions_model_info_and_acceleration(local_hub):
    status, headers, body = http_get(local_hub, "/api/v1/models/llmops-test/no-such-model/repo/files",
                                     {"Revision": "master", "Recursive": "True"})
    error = json.loads(body)
    assert status == 404
    assert set(error) == {"Code", "Message", "RequestId", "Success", "Data"}
    assert error["Success"] is False and error["Data"] is None and error["RequestId"] == headers["X-Request-Id"]

    assert http_get(local_hub, "/api/v1/models/%s/repo/files" % QWEN, {"Revision": "nope"})[0] == 404
    assert fetch(local_hub, QWEN, "no-such-file.bin")[0] == 404
    assert http_get(local_hub, "/api/v1/repos/internalAccelerationInfo")[0] == 404
    assert http_get(local_hub, "/api/v1/models/%s" % QWEN)[0] == 200
    assert http_get(local_hub, "/api/v1/models/llmops-test/no-such-model")[0] == 404

    revmap = json.loads(http_get(local_hub, "/api/v1/models/%s/revisions" % QWEN)[2])["Data"]["RevisionMap"]
    assert [b["Revision"] for b in revmap["Branches"]] == ["master"]
    assert [t["Revision"] for t in revmap["Tags"]] == ["v1.0"]

    master = {e["Path"]: e["Sha256"] for e in listing(local_hub, QWEN)}
    v1 = {e["Path"]: e["Sha256"] for e in listing(local_hub, QWEN, revision="v1.0")}
    assert master["model.safetensors"] != v1["model.safetensors"] and master["config.json"] == v1["config.json"]
    commit = local_hub.snapshot(QWEN, "v1.0").commit_id
    assert {e["Path"]: e["Sha256"] for e in listing(local_hub, QWEN, revision=commit)} == v1


def test_file_get_ranges_head_and_query_decoding(local_hub):
    data = local_hub.read_file(QWEN, "model.safetensors")
    total = len(data)
    status, headers, body = fetch(local_hub, QWEN, "model.safetensors")
    assert (status, int(headers["Content-Length"]), body) == (200, total, data)

    status, headers, body = fetch(local_hub, QWEN, "model.safetensors", headers={"Range": "bytes=1000-"})
    assert (status, headers["Content-Range"], body) == (206, "bytes 1000-%d/%d" % (total - 1, total), data[1000:])
    status, headers, body = fetch(local_hub, QWEN, "model.safetensors", headers={"Range": "bytes=10-19"})
    assert (status, headers["Content-Range"], body) == (206, "bytes 10-19/%d" % total, data[10:20])
    status, _ignored, body = fetch(local_hub, QWEN, "model.safetensors", headers={"Range": "bytes=-5"})
    assert (status, body) == (206, data[-5:])
    status, headers, _ignored = fetch(local_hub, QWEN, "model.safetensors", headers={"Range": "bytes=%d-" % total})
    assert (status, headers["Content-Range"]) == (416, "bytes */%d" % total)

    status, headers, body = http_get(local_hub, "/api/v1/models/%s/repo" % QWEN,
                                     {"Revision": "master", "FilePath": "model.safetensors"}, method="HEAD")
    assert (status, int(headers["Content-Length"]), body) == (200, total, b"")

    # requests encodes FilePath as a form: %2F is "/", "+" is a space
    status, _ignored, body = http_get(local_hub, "/api/v1/models/%s/repo?Revision=master&FilePath=original%%2Fparams.json"
                                      % LLAMA)
    assert status == 200 and body == local_hub.read_file(LLAMA, "original/params.json")
    status, _ignored, body = http_get(local_hub, "/api/v1/models/%s/repo?Revision=master&FilePath=READ+ME.md" % QWEN)
    assert status == 404 and "READ ME.md" in json.loads(body)["Message"]


def test_link_rate_paces_every_transfer_on_one_link_and_keeps_the_bytes(local_hub_factory):
    # The pacing itself, on a clock the test moves: bodies share the link's time in order, an idle link banks nothing.
    now = [100.0]
    link = _Link(1000000, clock=lambda: now[0])
    assert link.reserve(500000) == 0
    assert link.reserve(250000) == pytest.approx(0.5)  # a second transfer waits for the first one's bytes
    assert link.reserve(250000) == pytest.approx(0.75)
    now[0] = 200.0
    assert link.reserve(1000) == 0
    for bad in (100, 1023, 2.5e6, True, "1MB"):
        with pytest.raises(ValueError, match="link_rate"):
            _Link(bad)
    # Served through the paced path (not sendfile): whole files and ranges are byte for byte the stored ones.
    hub = local_hub_factory(link_rate=64 * 1024 * 1024)
    data = hub.read_file(QWEN, "model.safetensors")
    status, headers, body = fetch(hub, QWEN, "model.safetensors")
    assert (status, int(headers["Content-Length"]), body) == (200, len(data), data)
    status, _ignored, body = fetch(hub, QWEN, "model.safetensors", headers={"Range": "bytes=1000-"})
    assert (status, body) == (206, data[1000:])


def test_keep_alive_connection_serves_several_requests(local_hub):
    conn = http.client.HTTPConnection("127.0.0.1", local_hub.port, timeout=10)
    try:
        for path in ("config.json", "README.md", "config.json"):
            conn.request("GET", "/api/v1/models/%s/repo?Revision=master&FilePath=%s" % (QWEN, path))
            response = conn.getresponse()
            assert response.status == 200 and response.read() == local_hub.read_file(QWEN, path)
    finally:
        conn.close()


def test_token_auth_and_request_log_never_holds_the_token(local_hub_factory, tmp_path):
    token = "ms-local-test-token-4242"
    log = tmp_path / "requests.jsonl"
    hub = local_hub_factory(token=token, log_path=log)
    path = "/api/v1/models/%s/repo/files" % QWEN
    assert http_get(hub, path, {"Revision": "master"})[0] == 401
    assert http_get(hub, path, {"Revision": "master"}, {"Authorization": "Bearer wrong"})[0] == 403
    assert http_get(hub, path, {"Revision": "master"}, {"Authorization": "Bearer " + token})[0] == 200
    assert http_get(hub, path, {"Revision": "master"}, {"Cookie": "m_session_id=" + token})[0] == 200
    assert fetch(hub, QWEN, "config.json", headers={"Authorization": "Bearer " + token})[0] == 200
    assert http_get(hub, "/api/v1/repos/internalAccelerationInfo")[0] == 404
    assert [r["status"] for r in hub.requests()] == [401, 403, 200, 200, 200, 404]
    assert [r["auth"] for r in hub.requests()] == [False, True, True, False, True, False]
    hub.stop()
    text = log.read_text("utf-8")
    assert len(text.splitlines()) == 6 and token not in text and "wrong" not in text


def test_fault_injection_over_the_admin_endpoint(local_hub):
    admin = local_hub.endpoint + "/_admin/faults"

    def post(spec):
        request = urllib.request.Request(admin, data=json.dumps(spec).encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, body = post({"files": [{"path": "config.json", "slow": 10}]})
    assert status == 400 and "slow" in body["Message"]
    assert post({"files": [{"path": "x"}]})[0] == 400
    assert post({"bogus": []})[0] == 400

    good = local_hub.read_file(QWEN, "model.safetensors")
    size = len(good)
    status, _ignored = post({"files": [{"path": "model.safetensors", "model": QWEN, "corrupt": True},
                                       {"path": "config.json", "status": 500, "times": 1}]})
    assert status == 200
    listed = {e["Path"]: e for e in listing(local_hub, QWEN)}["model.safetensors"]
    assert listed["Sha256"] == hashlib.sha256(good).hexdigest() and listed["Size"] == size
    bad = fetch(local_hub, QWEN, "model.safetensors")[2]
    assert len(bad) == size and [i for i in range(size) if bad[i] != good[i]] == [size // 2]
    assert fetch(local_hub, LLAMA, "config.json")[0] == 500
    assert fetch(local_hub, LLAMA, "config.json")[0] == 200  # times=1 used up
    assert [r["hits"] for r in local_hub.faults()["files"]] == [1, 1]

    local_hub.set_faults({"files": [{"path": "model.safetensors", "drop_after": 1000}]})
    conn = http.client.HTTPConnection("127.0.0.1", local_hub.port, timeout=10)
    conn.request("GET", "/api/v1/models/%s/repo?Revision=master&FilePath=model.safetensors" % QWEN)
    response = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead) as excinfo:
        response.read()
    assert len(excinfo.value.partial) == 1000
    conn.close()
    assert local_hub.requests(kind="file")[-1]["dropped"] is True

    local_hub.set_faults({"files": [{"path": "README.md", "slow": 4096}]})
    began = time.monotonic()
    assert fetch(local_hub, QWEN, "README.md")[2] == local_hub.read_file(QWEN, "README.md")
    assert time.monotonic() - began >= 0.9 * len(local_hub.read_file(QWEN, "README.md")) / 4096 - 0.05

    request = urllib.request.Request(admin, method="DELETE")
    assert json.loads(urllib.request.urlopen(request, timeout=10).read()) == {"files": [], "listing": []}
    with pytest.raises(FaultError):
        local_hub.add_file_fault("x", status=200)
    assert all(not r["path"].startswith("/_admin") for r in local_hub.requests())


def test_unsafe_listing_paths_are_listed_and_served(local_hub):
    local_hub.add_listing_fault(model=QWEN, unsafe_paths=True)
    entries = {e["Path"]: e for e in listing(local_hub, QWEN)}
    for path in DEFAULT_UNSAFE_PATHS:
        status, _ignored, body = fetch(local_hub, QWEN, path)
        assert status == 200 and entries[path]["Size"] == len(body)
        assert entries[path]["Sha256"] == hashlib.sha256(body).hexdigest()
    assert {"../escaped.txt", "C:/drive-letter.txt", "a//empty-segment.txt", "dir\\backslash.txt"} <= set(entries)
    assert any(p.startswith("/") for p in entries) and any("\x07" in p for p in entries)
    assert not set(DEFAULT_UNSAFE_PATHS) & {e["Path"] for e in listing(local_hub, LLAMA)}


def test_cli_prints_endpoint_requires_token_and_stops_on_sigterm(hub_store, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("cli-token\n")
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.local_hub", "--port", "0", "--store", str(hub_store), "--model", QWEN,
         "--token-file", str(token_file), "--ready-file", str(ready), "--log", str(tmp_path / "log.jsonl")],
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        assert json.loads(ready.read_text()) == info
        assert info["pid"] == proc.pid and info["models"] == [QWEN] and info["token_required"] is True
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", info["endpoint"])
        url = info["endpoint"] + "/api/v1/models/%s/repo/files?Revision=master" % QWEN
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            urllib.request.urlopen(url, timeout=10)
        assert excinfo.value.code == 401
        request = urllib.request.Request(url, headers={"Authorization": "Bearer cli-token"})
        assert urllib.request.urlopen(request, timeout=10).status == 200
        assert "cli-token" not in " ".join(proc.args)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
        proc.stderr.close()


# ------------------------------------------------------------------------------------------------ the real SDK
def assert_no_network_escape(sdk):
    assert sdk.network_violations() == []


@pytest.mark.slow
@pytest.mark.parametrize("model_id", ALL_MODELS)
def test_sdk_cli_downloads_every_model_byte_for_byte(local_hub, modelscope_sdk, tmp_path, model_id):
    target = tmp_path / "out"
    proc = modelscope_sdk.cli("download", model_id, "--local-dir", target)
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = local_hub.snapshot(model_id).files
    assert_matches_store(local_hub, model_id, target)
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == sorted(files)
    kinds = [r["kind"] for r in local_hub.requests()]
    assert kinds.count("listing") == 1 and kinds.count("file") == len(files) and "acceleration" not in kinds
    assert_no_network_escape(modelscope_sdk)


@pytest.mark.slow
def test_sdk_python_snapshot_download_revision_and_patterns(local_hub, modelscope_sdk):
    result = modelscope_sdk.snapshot_download(QWEN, revision="v1.0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.path.endswith(os.path.join("models", "llmops-test--Qwen2-tiny-2M", "snapshots", "v1.0"))
    assert_matches_store(local_hub, QWEN, result.path, revision="v1.0")
    assert {r["params"]["Revision"] for r in local_hub.requests()} == {"v1.0"}

    local_dir = modelscope_sdk.base_dir / "patterns"
    result = modelscope_sdk.snapshot_download(LLAMA, local_dir=local_dir, allow_patterns=["*.json"],
                                              ignore_patterns=["tokenizer*"])
    assert result.returncode == 0, result.stderr[-2000:]
    got = sorted(str(p.relative_to(local_dir)) for p in local_dir.rglob("*") if p.is_file())
    assert got == ["config.json", "configuration.json", "generation_config.json", "model.safetensors.index.json",
                   "original/params.json", "special_tokens_map.json"]
    assert_matches_store(local_hub, LLAMA, local_dir, paths=got)
    assert_no_network_escape(modelscope_sdk)


@pytest.mark.slow
def test_sdk_cli_include_exclude_and_root_scoped_listing(local_hub, modelscope_sdk, tmp_path):
    proc = modelscope_sdk.cli("download", QWEN, "--local-dir", tmp_path / "a", "--exclude", "*.safetensors",
                              "README.md")
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = {p.name for p in (tmp_path / "a").iterdir()}
    assert "model.safetensors" not in got and "README.md" not in got and "config.json" in got

    local_hub.clear_requests()
    proc = modelscope_sdk.cli("download", LLAMA, "--local-dir", tmp_path / "b", "--include", "original/*")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [str(p.relative_to(tmp_path / "b")) for p in (tmp_path / "b").rglob("*") if p.is_file()] == [
        "original/params.json"]
    assert [r["params"].get("Root") for r in local_hub.requests(kind="listing")] == ["original"]


@pytest.mark.slow
def test_sdk_rerun_fetches_only_the_listing(local_hub, modelscope_sdk, tmp_path):
    target = tmp_path / "out"
    assert modelscope_sdk.cli("download", QWEN, "--local-dir", target).returncode == 0
    local_hub.clear_requests()
    proc = modelscope_sdk.cli("download", QWEN, "--local-dir", target)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [r["kind"] for r in local_hub.requests()] == ["listing"]
    assert file_requests(local_hub) == []


@pytest.mark.slow
def test_sdk_resumes_a_partial_file_with_a_range_request(local_hub, modelscope_sdk, tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    data = local_hub.read_file(QWEN, "model.safetensors")
    (target / "model.safetensors.incomplete").write_bytes(data[:1234567])
    proc = modelscope_sdk.cli("download", QWEN, "--local-dir", target)
    assert proc.returncode == 0, proc.stderr[-2000:]
    weights = [r for r in file_requests(local_hub) if r["file"] == "model.safetensors"]
    assert [(r["range"], r["status"], r["bytes_sent"]) for r in weights] == [
        ("bytes=1234567-", 206, len(data) - 1234567)]
    assert_matches_store(local_hub, QWEN, target)
    assert not (target / "model.safetensors.incomplete").exists()


@pytest.mark.slow
def test_sdk_rejects_a_corrupted_file_and_leaves_no_target(local_hub, modelscope_sdk, tmp_path):
    local_hub.add_file_fault("model.safetensors", corrupt=True)
    target = tmp_path / "out"
    proc = modelscope_sdk.cli("download", QWEN, "--local-dir", target)
    assert proc.returncode == 1
    assert "Hash mismatch for model.safetensors" in proc.stderr
    assert not (target / "model.safetensors").exists()
    assert not (target / "model.safetensors.incomplete").exists()
    assert (target / "config.json").exists()
    assert len([r for r in file_requests(local_hub) if r["file"] == "model.safetensors"]) == 3


@pytest.mark.slow
def test_sdk_fails_on_http_500_for_one_file(local_hub, modelscope_sdk, tmp_path):
    local_hub.add_file_fault("config.json", status=500)
    proc = modelscope_sdk.cli("download", QWEN, "--local-dir", tmp_path / "out",
                              env={"MODELSCOPE_DOWNLOAD_MAX_RETRIES": "0"})
    assert proc.returncode == 1
    assert "[500]" in proc.stderr and "config.json" in proc.stderr
    assert not (tmp_path / "out" / "config.json").exists()
    assert (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.slow
def test_sdk_retries_a_dropped_connection_with_range(local_hub, modelscope_sdk, tmp_path):
    local_hub.add_file_fault("model-00002-of-00003.safetensors", drop_after=1000000, times=1)
    target = tmp_path / "out"
    proc = modelscope_sdk.cli("download", LLAMA, "--local-dir", target)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shard = [r for r in file_requests(local_hub) if r["file"] == "model-00002-of-00003.safetensors"]
    assert [(r["status"], r["dropped"], r["range"]) for r in shard] == [
        (200, True, None), (206, False, "bytes=1000000-")]
    assert_matches_store(local_hub, LLAMA, target)


@pytest.mark.slow
def test_sdk_token_auth(local_hub, modelscope_sdk, sdk_factory, tmp_path):
    token = "ms-sdk-token-0001"
    local_hub.set_token(token)

    proc = modelscope_sdk.cli("download", QWEN, "--local-dir", tmp_path / "none")
    assert proc.returncode == 1 and "[E3001] [401]" in proc.stderr
    proc = modelscope_sdk.cli("download", QWEN, "--local-dir", tmp_path / "wrong", token="not-the-token")
    assert proc.returncode == 1 and "[E3002] [403]" in proc.stderr
    assert file_requests(local_hub) == []

    proc = modelscope_sdk.cli("download", QWEN, "--local-dir", tmp_path / "right", token=token)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_matches_store(local_hub, QWEN, tmp_path / "right")
    assert all(r["auth"] for r in local_hub.requests() if r["kind"] in ("listing", "file") and r["status"] == 200)

    result = sdk_factory(local_hub.endpoint, token="not-the-token").snapshot_download(QWEN, local_dir=tmp_path / "py")
    assert result.returncode == 1 and result.cause == "PermissionDeniedError"


@pytest.mark.slow
def test_sdk_writes_unsafe_listing_paths_outside_local_dir(local_hub, modelscope_sdk, tmp_path):
    """Documents the SDK hazard (protocol §10/§11): listed paths are joined to local_dir unchecked."""
    tree = tmp_path / "tree"
    local_dir = tree / "local"
    absolute = tmp_path / "absolute" / "abs.txt"
    local_hub.add_listing_fault(unsafe_paths=["../escaped.txt", str(absolute)])
    proc = modelscope_sdk.cli("download", QWEN, "--local-dir", local_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    escaped = tree / "escaped.txt"
    assert escaped.read_bytes() == fetch(local_hub, QWEN, "../escaped.txt")[2]
    assert absolute.read_bytes() == fetch(local_hub, QWEN, str(absolute))[2]
    assert not (local_dir / "escaped.txt").exists()
    assert {r["file"] for r in file_requests(local_hub)} >= {"../escaped.txt", str(absolute)}


def test_sdk_environment_is_isolated_and_guarded(modelscope_sdk, local_hub):
    env = modelscope_sdk.env(token="t0ken")
    assert env["MODELSCOPE_ENDPOINT"] == local_hub.endpoint
    assert env["MODELSCOPE_DOWNLOAD_INTRA_CLOUD"] == "false" and env["MODELSCOPE_API_TOKEN"] == "t0ken"
    for key in ("HOME", "MODELSCOPE_CACHE", "MODELSCOPE_HOME"):
        assert env[key].startswith(str(modelscope_sdk.base_dir))
    probe = ("import socket\n"
             "socket.create_connection(('127.0.0.1', %d), timeout=5).close()\n"
             "try:\n"
             "    socket.getaddrinfo('modelscope.cn', 443)\n"
             "except ConnectionRefusedError:\n"
             "    print('refused')\n" % local_hub.port)
    proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=30,
                          check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "refused", proc.stderr
    assert modelscope_sdk.network_violations() == ["socket.getaddrinfo 'modelscope.cn'"]
