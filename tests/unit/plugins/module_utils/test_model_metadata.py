# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_metadata: ranged safetensors header reads over a fake opener, whole small files, the index cross-check, the
result shape (fit for the sizing code's ``weights`` option) and the local-directory source."""

import email.message
import hashlib
import io
import json
import os
import struct
from urllib.error import HTTPError
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import detailed_sizing, marker, sizing
from ansible_collections.llmops.deploy.plugins.module_utils.hub_manifest import HubError, ManifestError
from ansible_collections.llmops.deploy.plugins.module_utils.model_metadata import (
    FIRST_READ_BYTES, MAX_CONFIG_BYTES, HubSource, MetadataError, collect_metadata, parse_content_range)
from ansible_collections.llmops.deploy.plugins.module_utils.shard_index import check_index

from safetensors_layout import tensor_layout

MODEL = "acme/tiny-1K"
TOKEN = "s3cr3t-token-value"

# A one-layer Llama-shaped model: hidden 8, 2 heads of 4, 1 KV head, MLP 16, vocab 32, untied lm_head.
CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8, "num_hidden_layers": 1,
    "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 16, "vocab_size": 32,
    "max_position_embeddings": 128, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}
LAYER = [
    ("model.layers.0.self_attn.q_proj.weight", [8, 8]), ("model.layers.0.self_attn.k_proj.weight", [4, 8]),
    ("model.layers.0.self_attn.v_proj.weight", [4, 8]), ("model.layers.0.self_attn.o_proj.weight", [8, 8]),
    ("model.layers.0.mlp.gate_proj.weight", [16, 8]), ("model.layers.0.mlp.up_proj.weight", [16, 8]),
    ("model.layers.0.mlp.down_proj.weight", [8, 16]), ("model.layers.0.input_layernorm.weight", [8]),
    ("model.layers.0.post_attention_layernorm.weight", [8]),
]
SHARD1 = [("model.embed_tokens.weight", [32, 8])] + LAYER
SHARD2 = [("model.norm.weight", [8]), ("lm_head.weight", [32, 8])]
PARAMS = 1112  # 256 embed + 256 lm_head + 192 attention + 384 MLP + 24 norms


def safetensors(tensors, dtype="BF16", pad_to=None, filler=b"\xab"):
    """The bytes of a safetensors file holding ``tensors`` [(name, shape)] of ``dtype``."""
    header, offset = tensor_layout([(name, dtype, shape) for name, shape in tensors])
    header = dict({"__metadata__": {"format": "pt"}}, **header)
    raw = json.dumps(header).encode("utf-8")
    if pad_to:
        raw += b" " * (pad_to - len(raw))
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + filler * offset


def index_for(shards):
    weight_map, total = {}, 0
    for shard, tensors in shards.items():
        for name, shape in tensors:
            weight_map[name] = shard
            numel = 1
            for dim in shape:
                numel *= dim
            total += numel * 2
    return {"metadata": {"total_size": total}, "weight_map": weight_map}


def tiny_repo():
    return {
        "config.json": json.dumps(CONFIG).encode(),
        "model-00001-of-00002.safetensors": safetensors(SHARD1),
        "model-00002-of-00002.safetensors": safetensors(SHARD2),
        "model.safetensors.index.json": json.dumps(index_for({
            "model-00001-of-00002.safetensors": SHARD1, "model-00002-of-00002.safetensors": SHARD2})).encode(),
        "README.md": b"# tiny\n",
        "modeling_tiny.py": b"print('never run')\n",
        "pytorch_model.bin": b"\x80\x02pickle",
    }


# ---------------------------------------------------------------------------------------------------------------
# A fake hub behind a fake opener
# ---------------------------------------------------------------------------------------------------------------
class FakeResponse(object):
    def __init__(self, status, body, headers):
        self.status = status
        self._body = io.BytesIO(body)
        self.headers = email.message.Message()
        for key, value in headers.items():
            self.headers[key] = value
        self.consumed = 0
        self.closed = False

    def getcode(self):
        return self.status

    def read(self, size=-1):
        data = self._body.read(size)
        self.consumed += len(data)
        return data

    def close(self):
        self.closed = True


class FakeHub(object):
    """Serves ``files`` like the ModelScope API. ``ignore_range``: answer 200 with the whole file. ``token``: needed.
    ``status``: {path: [status, ...]} answered (in order) before the real content. ``bad_range``: a callable that
    rewrites (start, end, total) in Content-Range."""

    def __init__(self, files, token=None, ignore_range=False, status=None, bad_range=None, listed_sizes=None):
        self.files = files
        self.token = token
        self.ignore_range = ignore_range
        self.status = dict((k, list(v)) for k, v in (status or {}).items())
        self.bad_range = bad_range
        self.listed_sizes = listed_sizes or {}
        self.log = []
        self.responses = []

    def listing(self):
        entries = [{"Path": p, "Type": "blob", "Size": self.listed_sizes.get(p, len(d)),
                    "Sha256": hashlib.sha256(d).hexdigest(), "Revision": "c0ffee"}
                   for p, d in sorted(self.files.items())]
        return {"Code": 200, "Success": True, "Data": {"Files": entries}}

    def open(self, request, timeout=None):
        url = urlsplit(request.full_url)
        params = dict((k, v[-1]) for k, v in parse_qs(url.query).items())
        headers = dict((k.lower(), v) for k, v in request.header_items())
        entry = {"path": url.path, "file": params.get("FilePath"), "range": headers.get("range"),
                 "auth": headers.get("authorization"), "revision": params.get("Revision")}
        self.log.append(entry)
        if self.token and headers.get("authorization") != "Bearer %s" % self.token:
            code = 401 if "authorization" not in headers else 403
            raise HTTPError(request.full_url, code, "denied", {}, io.BytesIO(b'{"Message": "auth needed"}'))
        if url.path.endswith("/repo/files"):
            return self._respond(200, json.dumps(self.listing()).encode(), {})
        path = params["FilePath"]
        queued = self.status.get(path)
        if queued:
            code = queued.pop(0)
            raise HTTPError(request.full_url, code, "err", {}, io.BytesIO(b'{"Message": "nope"}'))
        if path not in self.files:
            raise HTTPError(request.full_url, 404, "missing", {}, io.BytesIO(b'{"Message": "no such file"}'))
        data = self.files[path]
        rng = headers.get("range")
        ignore = self.ignore_range
        if isinstance(ignore, int) and not isinstance(ignore, bool):   # ignore Range from the n-th file request on
            ignore = len(self.file_requests()) > ignore
        if rng and not ignore:
            first, last = [int(x) for x in rng.split("=")[1].split("-")]
            last = min(last, len(data) - 1)
            shown = (first, last, len(data))
            if self.bad_range:
                shown = self.bad_range(*shown)
            head = {"Content-Length": str(last - first + 1)}
            if shown is not None:
                head["Content-Range"] = "bytes %d-%d/%d" % shown
            return self._respond(206, data[first:last + 1], head)
        return self._respond(200, data, {"Content-Length": str(len(data))})

    def _respond(self, status, body, headers):
        response = FakeResponse(status, body, headers)
        self.responses.append(response)
        return response

    def file_requests(self, path=None):
        return [e for e in self.log if e["file"] is not None and (path is None or e["file"] == path)]


def hub_source(hub, **kwargs):
    kwargs.setdefault("sleep", lambda s: None)
    return HubSource("http://hub.test:8080", MODEL, kwargs.pop("revision", "master"), opener=hub, **kwargs).load()


# ---------------------------------------------------------------------------------------------------------------
# Ranged header reads
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, parsed", [
    ("bytes 0-7/4096", (0, 7, 4096)),
    ("bytes 65536-70000/1000000", (65536, 70000, 1000000)),
    ("bytes 0-7/*", (0, 7, None)),
    ("bytes */4096", None),
    ("0-7/4096", None),
    ("", None),
    (None, None),
])
def test_parse_content_range(value, parsed):
    assert parse_content_range(value) == parsed


def test_short_header_is_read_with_one_range_request():
    data = safetensors(SHARD1 + [("extra.weight", [1 << 19])])    # 1 MiB of tensor data after the header
    hub = FakeHub({"model.safetensors": data})
    size = len(data)
    source = hub_source(hub)
    header, read = source.read_header("model.safetensors", size)
    assert [e["range"] for e in hub.file_requests()] == ["bytes=0-%d" % (FIRST_READ_BYTES - 1)]
    assert read == FIRST_READ_BYTES and source.weight_bytes_read == FIRST_READ_BYTES
    assert "extra.weight" in header["tensors"] and header["expected_file_size"] == size
    assert all(r.closed for r in hub.responses)


def test_file_smaller_than_the_first_read_is_asked_for_exactly():
    data = safetensors(SHARD2)
    hub = FakeHub({"model.safetensors": data})
    source = hub_source(hub)
    header, read = source.read_header("model.safetensors", len(data))
    assert [e["range"] for e in hub.file_requests()] == ["bytes=0-%d" % (len(data) - 1)]
    assert read == len(data) and sorted(header["tensors"]) == ["lm_head.weight", "model.norm.weight"]


def test_long_header_takes_a_second_range_request_for_the_rest_only():
    data = safetensors(SHARD1 + [("extra.weight", [1 << 19])], pad_to=100000)
    length = struct.unpack("<Q", data[:8])[0]
    hub = FakeHub({"model.safetensors": data})
    source = hub_source(hub)
    header, read = source.read_header("model.safetensors", len(data))
    assert [e["range"] for e in hub.file_requests()] == [
        "bytes=0-%d" % (FIRST_READ_BYTES - 1), "bytes=%d-%d" % (FIRST_READ_BYTES, 8 + length - 1)]
    assert read == 8 + length and header["header_size"] == length


def test_a_hub_that_ignores_range_is_read_up_to_the_header_and_closed():
    big = safetensors(SHARD1 + [("big.weight", [1 << 20])])    # 2 MiB of tensor data after the header
    length = struct.unpack("<Q", big[:8])[0]
    hub = FakeHub({"model.safetensors": big}, ignore_range=True)
    source = hub_source(hub)
    header, read = source.read_header("model.safetensors", len(big))
    response = hub.responses[-1]
    assert response.status == 200 and response.closed
    assert response.consumed == 8 + length == read            # not one byte of tensor data
    assert source.range_ignored is True and len(hub.file_requests()) == 1
    assert header["tensors"]["big.weight"]["shape"] == [1 << 20]


def test_a_hub_that_ignores_range_with_a_long_header_still_reads_only_the_header():
    data = safetensors(SHARD1 + [("big.weight", [1 << 20])], pad_to=200000)
    length = struct.unpack("<Q", data[:8])[0]
    hub = FakeHub({"model.safetensors": data}, ignore_range=True)
    header, read = hub_source(hub).read_header("model.safetensors", len(data))
    assert read == 8 + length == hub.responses[-1].consumed and len(hub.file_requests()) == 1


def test_a_hub_that_ignores_the_second_range_request_is_read_past_the_first_part_only_up_to_the_header():
    data = safetensors(SHARD1 + [("big.weight", [1 << 20])], pad_to=100000)
    length = struct.unpack("<Q", data[:8])[0]
    hub = FakeHub({"model.safetensors": data}, ignore_range=1)
    source = hub_source(hub)
    header, read = source.read_header("model.safetensors", len(data))
    assert [r.status for r in hub.responses[1:]] == [206, 200]
    assert hub.responses[-1].consumed == 8 + length and hub.responses[-1].closed
    assert read == FIRST_READ_BYTES + 8 + length and source.range_ignored is True
    assert header["header_size"] == length


@pytest.mark.parametrize("rewrite, words", [
    (lambda a, b, t: (a + 8, b, t), "asked for bytes 0-"),
    (lambda a, b, t: (a, b, t + 1), "the hub says the file has"),
    (lambda a, b, t: None, "without a valid Content-Range"),
])
def test_a_wrong_content_range_is_refused_naming_the_file(rewrite, words):
    data = safetensors(SHARD2)
    hub = FakeHub({"model.safetensors": data}, bad_range=rewrite)
    with pytest.raises(MetadataError) as info:
        hub_source(hub).read_header("model.safetensors", len(data))
    assert info.value.message.startswith("model.safetensors: ") and words in info.value.message


def test_an_absurd_header_length_is_refused_before_fetching_it():
    data = struct.pack("<Q", 500 * 1024 * 1024) + b"{}" + b"\x00" * 100000
    hub = FakeHub({"model.safetensors": data})
    with pytest.raises(MetadataError) as info:
        hub_source(hub).read_header("model.safetensors", len(data), max_header_bytes=100 * 1024 * 1024)
    assert "model.safetensors" in info.value.message and "exceeds the 104857600-byte limit" in info.value.message
    assert len(hub.file_requests()) == 1


def test_header_length_past_the_listed_size_is_refused():
    data = safetensors(SHARD2)
    hub = FakeHub({"model.safetensors": data[:40]})
    with pytest.raises(MetadataError) as info:
        hub_source(hub).read_header("model.safetensors", 40)
    assert "runs past the end of the file (40 bytes)" in info.value.message


@pytest.mark.parametrize("data, words", [
    (struct.pack("<Q", 8) + b"not json", "not valid JSON"),
    (struct.pack("<Q", 16) + b'{"a": {"dtype": "BF16"}}'[:16], "not valid JSON"),
    (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    (b"\x01\x02", "too short for a safetensors file"),
])
def test_a_malformed_header_is_an_error_naming_the_file(data, words):
    hub = FakeHub({"weights/part.safetensors": data})
    with pytest.raises(MetadataError) as info:
        hub_source(hub).read_header("weights/part.safetensors", len(data))
    assert info.value.message.startswith("weights/part.safetensors: ") and words in info.value.message


def test_a_file_shorter_than_its_header_says_is_refused():
    data = safetensors(SHARD2)
    hub = FakeHub({"model.safetensors": data[:-2]})
    with pytest.raises(MetadataError) as info:
        hub_source(hub).read_header("model.safetensors", len(data) - 2)
    assert "truncated" in info.value.message


# ---------------------------------------------------------------------------------------------------------------
# HTTP errors, token, retries
# ---------------------------------------------------------------------------------------------------------------
def test_token_is_sent_as_bearer_on_listing_and_files_and_never_in_messages():
    hub = FakeHub(tiny_repo(), token=TOKEN)
    source = hub_source(hub, token=TOKEN)
    collect_metadata(source)
    assert hub.log and all(e["auth"] == "Bearer %s" % TOKEN for e in hub.log)
    hub.status["config.json"] = [404]
    with pytest.raises(HubError) as info:
        collect_metadata(hub_source(hub, token=TOKEN))
    assert "config.json: the hub has no such file" in info.value.message and TOKEN not in info.value.message


def test_no_token_gives_401_with_a_clear_message():
    hub = FakeHub(tiny_repo(), token=TOKEN)
    with pytest.raises(HubError) as info:
        hub_source(hub)
    assert info.value.status == 401 and "no token was given" in info.value.message


def test_a_wrong_token_gives_403_and_is_not_shown():
    hub = FakeHub(tiny_repo(), token=TOKEN)
    with pytest.raises(HubError) as info:
        hub_source(hub, token="wrong-" + TOKEN)
    assert info.value.status == 403 and "the token is missing, wrong or lacks access" in info.value.message
    assert TOKEN not in info.value.message


def test_file_requests_use_the_requested_revision_and_5xx_is_retried():
    hub = FakeHub(tiny_repo(), status={"model-00002-of-00002.safetensors": [503, 502]})
    slept = []
    source = hub_source(hub, revision="v1.0", sleep=slept.append)
    result = collect_metadata(source)
    assert result["params"] == PARAMS and slept == [1.0, 2.0]
    assert set(e["revision"] for e in hub.log) == {"v1.0"}
    assert result["revision"] == "c0ffee"
    assert result["http_requests"] == len(hub.log) == 1 + 1 + 1 + 3 + 1   # listing, config, shard 1, 3 x shard 2, index


def test_a_persistent_5xx_fails_after_the_retries():
    hub = FakeHub(tiny_repo(), status={"config.json": [500] * 10})
    with pytest.raises(HubError) as info:
        collect_metadata(hub_source(hub))
    assert "config.json: the hub answered HTTP 500" in info.value.message and "after 4 attempts" in info.value.message


def test_an_unsafe_listing_is_refused_as_for_downloads():
    hub = FakeHub(dict(tiny_repo(), **{"../escape.txt": b"x"}))
    with pytest.raises(ManifestError) as info:
        hub_source(hub)
    assert "unsafe path '../escape.txt'" in info.value.message
    assert hub.file_requests() == []


# ---------------------------------------------------------------------------------------------------------------
# Small files
# ---------------------------------------------------------------------------------------------------------------
def test_an_oversized_config_is_refused_before_any_request():
    hub = FakeHub(dict(tiny_repo(), **{"config.json": b"{" + b" " * MAX_CONFIG_BYTES + b"}"}))
    with pytest.raises(MetadataError) as info:
        collect_metadata(hub_source(hub))
    assert "config.json: %d bytes, more than the %d-byte limit" % (MAX_CONFIG_BYTES + 2, MAX_CONFIG_BYTES) in (
        info.value.message)
    assert hub.file_requests() == []


def test_a_config_whose_size_differs_from_the_listing_is_refused():
    repo = tiny_repo()
    hub = FakeHub(repo, listed_sizes={"config.json": len(repo["config.json"]) + 5})
    with pytest.raises(MetadataError) as info:
        collect_metadata(hub_source(hub))
    assert "config.json: the hub sends %d bytes but its listing says %d" % (
        len(repo["config.json"]), len(repo["config.json"]) + 5) in info.value.message


@pytest.mark.parametrize("body, words", [(b"{not json", "config.json: not valid JSON"),
                                         (b"[1, 2]", "config.json: not a JSON object")])
def test_a_bad_config_is_an_error(body, words):
    hub = FakeHub(dict(tiny_repo(), **{"config.json": body}))
    with pytest.raises(MetadataError) as info:
        collect_metadata(hub_source(hub))
    assert words in info.value.message


# ---------------------------------------------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------------------------------------------
def test_full_result_from_a_hub():
    repo = tiny_repo()
    hub = FakeHub(repo)
    result = collect_metadata(hub_source(hub))
    assert result["source"] == "hub" and result["model_id"] == MODEL
    assert [f["path"] for f in result["files"]] == sorted(repo)
    assert result["files"][0]["sha256"] == hashlib.sha256(repo["README.md"]).hexdigest()
    assert result["download_bytes"] == result["total_bytes"] == sum(len(d) for d in repo.values())
    assert result["file_count"] == result["total_files"] == len(repo)
    assert result["config"] == CONFIG
    assert result["params"] == PARAMS and result["precision"] == "bf16" and result["dominant_dtype"] == "BF16"
    weights = result["weights"]
    assert weights["params_by_dtype"] == {"BF16": PARAMS} and weights["data_bytes"] == 2 * PARAMS
    assert weights["bytes_by_dtype"] == {"BF16": 2 * PARAMS} and weights["files"] == 2 and weights["tensors"] == 12
    assert weights["header_bytes"] == sum(f["header_bytes"] for f in result["safetensors_files"])
    arch = result["architecture"]
    assert (arch["attention"], arch["layers"], arch["heads"], arch["kv_heads"], arch["head_dim"]) == ("mqa", 1, 2, 1, 4)
    assert arch["params_computed"] == PARAMS
    per_file = dict((f["path"], f) for f in result["safetensors_files"])
    assert per_file["model-00002-of-00002.safetensors"]["params"] == 8 + 256
    assert per_file["model-00001-of-00002.safetensors"]["tensors"] == 10
    # small files: the whole file was read; bytes_read is the sum of what was consumed of the weights
    assert result["bytes_read"] == sum(len(repo[p]) for p in per_file)
    assert result["index_files"] == [{"path": "model.safetensors.index.json",
                                      "shards": ["model-00001-of-00002.safetensors",
                                                 "model-00002-of-00002.safetensors"]}]
    assert result["pickle_files"] == ["pytorch_model.bin"] and result["code_files"] == ["modeling_tiny.py"]
    assert result["metadata_warnings"] == [] and result["range_ignored"] is False
    assert [e["file"] for e in hub.file_requests()] == [
        "config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "model.safetensors.index.json"]        # never the pickle, the code or the README


def test_weights_plug_into_the_detailed_sizing():
    result = collect_metadata(hub_source(FakeHub(tiny_repo())))
    assert detailed_sizing.check_weights_summary(result["weights"]) is result["weights"]
    sized = sizing.size_model(method="detailed", config=result["config"], weights=result["weights"])
    assert sized["params"] == PARAMS and sized["breakdown"]["weights"]["bytes"] == 2 * PARAMS
    assert sized["basis"]["param_memory"].startswith("read: safetensors headers")


def test_include_exclude_give_the_download_bytes_and_the_headers_read():
    repo = tiny_repo()
    hub = FakeHub(repo)
    result = collect_metadata(hub_source(hub), include=["*.json", "*.safetensors"], exclude=["*index.json"])
    paths = ["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert [f["path"] for f in result["files"]] == paths
    assert result["download_bytes"] == sum(len(repo[p]) for p in paths)
    assert result["total_bytes"] == sum(len(d) for d in repo.values()) and result["total_files"] == len(repo)
    assert result["index_files"] == [] and result["pickle_files"] == [] and result["code_files"] == []
    assert result["params"] == PARAMS


def test_an_excluded_shard_is_a_warning_and_the_config_is_still_read():
    result = collect_metadata(hub_source(FakeHub(tiny_repo())), exclude=["model-00002*", "config.json"])
    assert result["params"] == PARAMS - 264 and result["config"] == CONFIG
    assert any("names shard model-00002-of-00002.safetensors, which include/exclude leave out" in w
               for w in result["metadata_warnings"])
    assert any("headers hold 848 parameters but config.json's shapes give 1112" in w
               for w in result["metadata_warnings"])


def test_an_index_naming_a_missing_shard_fails():
    repo = tiny_repo()
    del repo["model-00002-of-00002.safetensors"]
    with pytest.raises(MetadataError) as info:
        collect_metadata(hub_source(FakeHub(repo)))
    assert "names shard model-00002-of-00002.safetensors, which is not among the model's files" in info.value.message


def test_an_index_naming_a_tensor_its_shard_lacks_fails():
    repo = tiny_repo()
    repo["model-00002-of-00002.safetensors"] = safetensors([("model.norm.weight", [8])])
    with pytest.raises(MetadataError) as info:
        collect_metadata(hub_source(FakeHub(repo)))
    assert "shard model-00002-of-00002.safetensors lacks 1 tensor(s) the index names, e.g. lm_head.weight" in (
        info.value.message)


def test_an_unindexed_safetensors_file_and_a_stale_total_size_are_warnings():
    repo = tiny_repo()
    repo["consolidated.safetensors"] = safetensors(SHARD1 + SHARD2)
    index = json.loads(repo["model.safetensors.index.json"])
    index["metadata"]["total_size"] += 1
    repo["model.safetensors.index.json"] = json.dumps(index).encode()
    result = collect_metadata(hub_source(FakeHub(repo)))
    warnings = result["metadata_warnings"]
    assert any(w.startswith("consolidated.safetensors is not named by any shard index") for w in warnings)
    assert any("metadata.total_size is %d but its shards hold %d" % (2 * PARAMS + 1, 2 * PARAMS) in w
               for w in warnings)
    assert result["params"] == 2 * PARAMS       # counted, as the warning says
    excluded = collect_metadata(hub_source(FakeHub(repo)), exclude=["consolidated.safetensors"])
    assert excluded["params"] == PARAMS


@pytest.mark.parametrize("shard, words", [("../x.safetensors", "unsafe shard"), ("sub/x.safetensors", "unsafe shard"),
                                          (7, "unsafe shard")])
def test_check_index_refuses_unsafe_shard_names(shard, words):
    problems, _warnings, _shards = check_index("model.safetensors.index.json", {"weight_map": {"a": shard}},
                                               {}, set(), {})
    assert problems and words in problems[0]


def test_check_index_needs_a_weight_map():
    problems, _w, _s = check_index("sub/model.safetensors.index.json", {"metadata": {}}, {}, set(), {})
    assert problems == ["sub/model.safetensors.index.json has no weight_map"]


def test_no_config_and_no_safetensors():
    repo = {"pytorch_model.bin": b"\x80\x02", "README.md": b"x"}
    result = collect_metadata(hub_source(FakeHub(repo)))
    assert result["config"] is None and result["architecture"] is None and result["weights"] is None
    assert result["params"] is None and result["bytes_read"] == 0
    assert "the model has no config.json: no architecture" in result["metadata_warnings"]
    assert any("pickle weights (pytorch_model.bin) are not read" in w for w in result["metadata_warnings"])


def test_a_config_the_sizing_code_cannot_read_gives_a_warning_not_a_failure():
    repo = tiny_repo()
    repo["config.json"] = json.dumps({"model_type": "mystery"}).encode()
    result = collect_metadata(hub_source(FakeHub(repo)))
    assert result["architecture"] is None and result["config"] == {"model_type": "mystery"}
    assert any(w.startswith("config.json does not describe an architecture the sizing code reads: "
                            "config.num_hidden_layers") for w in result["metadata_warnings"])
    assert result["params"] == PARAMS


def test_fp8_scales_are_not_parameters():
    tensors = [("model.layers.0.mlp.down_proj.weight", [8, 16])]
    data = safetensors(tensors, dtype="F8_E4M3")
    scales = safetensors([("model.layers.0.mlp.down_proj.weight_scale_inv", [1, 1])], dtype="F32")
    result = collect_metadata(hub_source(FakeHub({"a.safetensors": data, "b.safetensors": scales})))
    assert result["params"] == 128 and result["weights"]["aux_elements"] == 1
    assert result["weights"]["bytes_by_dtype"] == {"F8_E4M3": 128, "F32": 4} and result["precision"] == "fp8"


def test_max_header_bytes_is_checked():
    with pytest.raises(MetadataError) as info:
        collect_metadata(hub_source(FakeHub(tiny_repo())), max_header_bytes=0)
    assert info.value.message == "max_header_bytes 0 is not valid: expected an integer >= 8"


# ---------------------------------------------------------------------------------------------------------------
# A local directory: helpers the module tests use (the reading itself is model_dir_check's, tested there)
# ---------------------------------------------------------------------------------------------------------------
def write_repo(root, repo):
    for path, data in repo.items():
        full = os.path.join(str(root), *path.split("/"))
        if not os.path.isdir(os.path.dirname(full)):
            os.makedirs(os.path.dirname(full))
        with open(full, "wb") as handle:
            handle.write(data)


def write_marker(root, repo, model_id=MODEL):
    files = []
    for path, data in sorted(repo.items()):
        st = os.stat(os.path.join(str(root), path))
        files.append({"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                      "mtime_ns": st.st_mtime_ns})
    marker.write_marker(str(root), marker.build_marker(
        model_id, "master", "c0ffee", "http://hub.test:8080", [], [], files, "test"))
