# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a model is, read without its weights: the file listing (exact sizes), ``config.json``, the safetensors
headers and the shard index, from a ModelScope-compatible hub or from a local model directory.

Standard library only apart from the hub client (``hub_client``, on ``ansible.module_utils.urls``); runs on targets
with Python >= 3.8. Nothing read is imported or executed.

From a hub (:class:`HubSource`) the listing is the one ``hub_manifest`` fetches for downloads (same request, same
path-safety checks), ``config.json`` and ``*.safetensors.index.json`` are fetched whole (they are small; a size limit
refuses anything else), and of every ``*.safetensors`` file only the header is read, with HTTP Range requests:
``Range: bytes=0-<first_read-1>`` (64 KiB by default, enough for most headers), then, only when the header is longer,
``Range: bytes=<received>-<8+N-1>``. A 206 must carry a ``Content-Range`` that matches the request and the listed size.
A hub that ignores Range (answers 200 with the whole file) is read only as far as the header goes, then the connection
is closed: the body is never downloaded.

From a directory the same facts come from ``model_dir_check.ModelDirSource`` (the one listing and reader of a model
directory, which follows no link below it), with no network at all.

:func:`collect_metadata` turns either source into one result: the selected files and their exact download size, the
config, the ``weights`` summary that the sizing code's ``weights`` option takes (``safetensors_header.
summarize_headers`` plus bytes per dtype), a short architecture summary, per-file header facts and ``bytes_read``, the
number of bytes of weight files actually read.
"""

import json
import re
import socket
import time

from ansible_collections.llmops.deploy.plugins.module_utils.architecture import parse_config, text_config
from ansible_collections.llmops.deploy.plugins.module_utils.file_kinds import classify_paths
from ansible_collections.llmops.deploy.plugins.module_utils.hub_client import HubClient, fetch_manifest
from ansible_collections.llmops.deploy.plugins.module_utils.hub_manifest import (
    HubError, file_url, normalize_endpoint, select_entries, split_model_id, validate_revision)
from ansible_collections.llmops.deploy.plugins.module_utils.marker import RESERVED_NAMES
from ansible_collections.llmops.deploy.plugins.module_utils.safetensors_header import (
    MAX_HEADER_BYTES, HeaderError, header_length, parse_header_bytes, summarize_headers)
from ansible_collections.llmops.deploy.plugins.module_utils.shard_index import check_index
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

CONFIG_NAME = "config.json"
INDEX_SUFFIX = ".safetensors.index.json"
SAFETENSORS_SUFFIX = ".safetensors"

# config.json is a few KiB; anything past this is not a config.
MAX_CONFIG_BYTES = 1024 * 1024
# A shard index names every tensor (DeepSeek-V3's is about 9 MB).
MAX_INDEX_BYTES = 64 * 1024 * 1024
# First ranged read of a safetensors file: most headers fit (a 7B model's shard header is 20-40 KiB).
FIRST_READ_BYTES = 64 * 1024
# Differences between the header parameter count and the config's computed count below this are not reported.
PARAMS_TOLERANCE = 0.01

_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_READ_CHUNK = 1024 * 1024


class MetadataError(Exception):
    """The model's metadata cannot be read or is inconsistent. ``problems`` lists every reason."""

    def __init__(self, message, problems=None):
        super(MetadataError, self).__init__(message)
        self.message = message
        self.problems = list(problems or [])


def check_limit(name, value, minimum=1):
    """A positive integer option (``max_header_bytes``, ``timeout``); raises MetadataError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MetadataError("%s %r is not valid: expected an integer >= %d" % (name, value, minimum))
    return value


# ---------------------------------------------------------------------------------------------------------------
# A hub
# ---------------------------------------------------------------------------------------------------------------
def parse_content_range(value):
    """``'bytes 0-7/4096'`` -> ``(0, 7, 4096)`` (total None for ``*``); None when malformed."""
    match = _CONTENT_RANGE_RE.match(value or "")
    if not match:
        return None
    first, last, total = match.groups()
    return int(first), int(last), (None if total == "*" else int(total))


def _status(response):
    code = getattr(response, "status", None)
    if code is None:
        code = response.getcode()
    return code


def _header(response, name):
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    return headers.get(name)


class HubSource(object):
    """A model at one revision on a hub: its listing, whole small files and ranged safetensors headers.

    HTTP goes through ``client`` (a :class:`hub_client.HubClient`; by default one made from ``token``, ``timeout``,
    ``retries``, ``sleep``, ``backoff`` and, for tests, ``opener``). Counters:
    ``requests`` (HTTP requests made, listing included), ``weight_bytes_read`` (body bytes of weight files consumed),
    ``range_ignored`` (the hub answered a ranged request with the whole file).
    """

    kind = "hub"

    def __init__(self, endpoint, model_id, revision="master", token=None, timeout=60, retries=3, opener=None,
                 sleep=time.sleep, backoff=1.0, first_read=FIRST_READ_BYTES, client=None):
        self.endpoint = normalize_endpoint(endpoint)
        self.owner, self.name = split_model_id(model_id)
        self.model_id = model_id
        self.revision_requested = validate_revision(revision)
        self.token = token or None
        self.timeout = timeout
        self.retries = retries
        self.client = client or HubClient(token=self.token, timeout=timeout, retries=retries, backoff=backoff,
                                          sleep=sleep, opener=opener)
        self.first_read = max(8, int(first_read))
        self.weight_bytes_read = 0
        self.range_ignored = False
        self.revision = None
        self.entries = None
        self.warnings = []

    @property
    def requests(self):
        """HTTP requests made so far (listing and files, retries included)."""
        return self.client.requests

    # -- listing
    def load(self):
        """Fetch the listing (hub_manifest.fetch_manifest: the download's request and checks)."""
        manifest = fetch_manifest(self.endpoint, self.model_id, self.revision_requested,
                                  reserved_names=RESERVED_NAMES, client=self.client)
        self.revision = manifest["revision"]
        self.entries = manifest["entries"]
        return self

    # -- HTTP
    def _open(self, path, byte_range=None):
        url = file_url(self.endpoint, self.owner, self.name, self.revision_requested, path)
        headers = {"User-Agent": "llmops.deploy/model_metadata", "Accept-Encoding": "identity"}
        if byte_range is not None:
            headers["Range"] = "bytes=%d-%d" % byte_range
        return self.client.open(url, headers, what=path, not_found="the hub has no such file at this revision")

    def _read(self, response, count, path, weights):
        """Exactly ``count`` body bytes (fewer only when the body ends: then MetadataError)."""
        parts = []
        got = 0
        try:
            while got < count:
                chunk = response.read(min(_READ_CHUNK, count - got))
                if not chunk:
                    break
                parts.append(chunk)
                got += len(chunk)
        except (socket.timeout, OSError) as exc:
            raise HubError("%s: the connection failed after %d of %d bytes: %s" % (path, got, count, exc))
        finally:
            if weights:
                self.weight_bytes_read += got
        if got < count:
            raise MetadataError("%s: the hub's answer ended after %d of %d bytes" % (path, got, count))
        return b"".join(parts)

    def read_small(self, path, size, limit):
        """A whole small file (config, index); refused before any request when the listing says it is too big."""
        if size > limit:
            raise MetadataError("%s: %d bytes, more than the %d-byte limit for a metadata file" % (path, size, limit))
        response = self._open(path)
        try:
            status = _status(response)
            if status != 200:
                raise MetadataError("%s: the hub answered HTTP %d to a plain GET" % (path, status))
            announced = _header(response, "Content-Length")
            if announced is not None and announced.strip().isdigit() and int(announced) != size:
                raise MetadataError("%s: the hub sends %s bytes but its listing says %d" % (path, announced, size))
            data = self._read(response, size, path, False)
            if response.read(1):
                raise MetadataError("%s: the hub sent more than the %d bytes its listing says" % (path, size))
        finally:
            response.close()
        return data

    def read_header(self, path, size, max_header_bytes=MAX_HEADER_BYTES):
        """The parsed header of a safetensors file of ``size`` bytes (from the listing), read with Range requests.

        Returns ``(header, bytes_read)`` where ``bytes_read`` counts the body bytes of this file consumed.
        """
        if size < 8:
            raise MetadataError("%s: %d bytes is too short for a safetensors file" % (path, size))
        before = self.weight_bytes_read
        got = b""
        stop = min(size, self.first_read)
        length = None
        while True:
            response = self._open(path, (len(got), stop - 1))
            try:
                status = _status(response)
                if status == 206:
                    got += self._ranged_body(response, path, len(got), stop - 1, size)
                elif status == 200:
                    # The hub ignored Range: the body is the whole file. Read up to the end of the header, no further.
                    self.range_ignored = True
                    announced = _header(response, "Content-Length")
                    if announced is not None and announced.strip().isdigit() and int(announced) != size:
                        raise MetadataError("%s: the hub sends %s bytes but its listing says %d" % (
                            path, announced, size))
                    self._read(response, len(got), path, True)   # what an earlier ranged answer already gave
                    if len(got) < 8:
                        got += self._read(response, 8 - len(got), path, True)
                    length = self._length(got, size, max_header_bytes, path)
                    if len(got) < 8 + length:
                        got += self._read(response, 8 + length - len(got), path, True)
                else:
                    raise MetadataError("%s: the hub answered HTTP %d to a range request" % (path, status))
            finally:
                response.close()   # never drain a body: closing drops the connection
            if length is None and len(got) >= 8:
                length = self._length(got, size, max_header_bytes, path)
            if length is not None and len(got) >= 8 + length:
                break
            stop = 8 + length
        try:
            header = parse_header_bytes(got[:8 + length], file_size=size, max_header=max_header_bytes)
        except HeaderError as exc:
            raise MetadataError("%s: not a valid safetensors header: %s" % (path, exc))
        return header, self.weight_bytes_read - before

    def _length(self, got, size, max_header_bytes, path):
        try:
            return header_length(got[:8], size, max_header_bytes)
        except HeaderError as exc:
            raise MetadataError("%s: not a valid safetensors header: %s" % (path, exc))

    def _ranged_body(self, response, path, first, last, size):
        value = _header(response, "Content-Range")
        parsed = parse_content_range(value)
        if parsed is None:
            raise MetadataError("%s: the hub answered 206 without a valid Content-Range (%r)" % (path, value))
        start, end, total = parsed
        if total is not None and total != size:
            raise MetadataError("%s: the hub says the file has %d bytes but its listing says %d" % (path, total, size))
        if start != first or end != last:
            raise MetadataError("%s: asked for bytes %d-%d, the hub answered bytes %d-%d" % (
                path, first, last, start, end))
        announced = _header(response, "Content-Length")
        if announced is not None and announced.strip().isdigit() and int(announced) != last - first + 1:
            raise MetadataError("%s: Content-Length %s does not match Content-Range %s" % (path, announced, value))
        return self._read(response, last - first + 1, path, True)


# ---------------------------------------------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------------------------------------------
def _load_json(data, path):
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MetadataError("%s: not valid JSON: %s" % (path, exc))
    if not isinstance(doc, dict):
        raise MetadataError("%s: not a JSON object" % path)
    return doc


def architecture_summary(facts):
    """The short architecture summary returned by modelscope_info, from architecture.parse_config's facts."""
    moe = facts.get("moe") or {}
    quant = facts.get("quantization") or {}
    return {
        "model_type": facts["model_type"],
        "architecture": facts["architecture"],
        "attention": facts["attention"],
        "layers": facts["num_hidden_layers"],
        "hidden_size": facts["hidden_size"],
        "heads": facts["num_attention_heads"],
        "kv_heads": facts["num_key_value_heads"],
        "head_dim": facts["head_dim"],
        "intermediate_size": facts["intermediate_size"],
        "vocab_size": facts["vocab_size"],
        "max_position_embeddings": facts["max_position_embeddings"],
        "tie_word_embeddings": facts["tie_word_embeddings"],
        "torch_dtype": facts["torch_dtype"],
        "sliding_window": facts["sliding_window"],
        "experts": moe.get("experts"),
        "experts_per_token": moe.get("experts_per_token"),
        "quantization": quant.get("method"),
        "params_computed": facts["params"]["total"],
        "params_active": facts["params"]["active"],
    }


def bytes_by_dtype(headers):
    """Tensor data bytes per storage dtype over several parsed headers."""
    result = {}
    for header in headers:
        for info in header["tensors"].values():
            span = info["offsets"][1] - info["offsets"][0]
            result[info["dtype"]] = result.get(info["dtype"], 0) + span
    return result


def collect_metadata(source, include=None, exclude=None, max_header_bytes=MAX_HEADER_BYTES):
    """Everything modelscope_info returns, from a loaded :class:`HubSource` or ``model_dir_check.ModelDirSource``.

    Raises MetadataError (inconsistent or unreadable model), HubError (the hub refused or failed).
    """
    check_limit("max_header_bytes", max_header_bytes, 8)
    warnings = list(source.warnings)
    listed = dict((e["path"], e) for e in source.entries)
    selected = select_entries(source.entries, include, exclude)
    selected_paths = set(e["path"] for e in selected)

    config = None
    if CONFIG_NAME in listed:
        config = _load_json(source.read_small(CONFIG_NAME, listed[CONFIG_NAME]["size"], MAX_CONFIG_BYTES),
                            CONFIG_NAME)
    else:
        warnings.append("the model has no %s: no architecture" % CONFIG_NAME)

    headers = {}
    per_file = []
    for entry in selected:
        if not entry["path"].endswith(SAFETENSORS_SUFFIX):
            continue
        header, read = source.read_header(entry["path"], entry["size"], max_header_bytes)
        headers[entry["path"]] = header
        one = summarize_headers([header])
        per_file.append({"path": entry["path"], "size": entry["size"], "header_bytes": 8 + header["header_size"],
                         "bytes_read": read, "tensors": len(header["tensors"]), "params": one["params_total"],
                         "data_bytes": header["data_bytes"], "dtypes": sorted(one["params_by_dtype"])})

    problems = []
    index_files = []
    indexed = set()
    for entry in selected:
        if not entry["path"].endswith(INDEX_SUFFIX):
            continue
        index = _load_json(source.read_small(entry["path"], entry["size"], MAX_INDEX_BYTES), entry["path"])
        found, notes, shards = check_index(entry["path"], index, listed, selected_paths, headers)
        problems.extend(found)
        warnings.extend(notes)
        indexed.update(shards)
        index_files.append({"path": entry["path"], "shards": shards})
    if problems:
        raise MetadataError("the model's shard index does not match its files: %s" % "; ".join(problems), problems)
    if index_files:
        for path in sorted(set(headers) - indexed):
            warnings.append("%s is not named by any shard index; its parameters are counted too (exclude it if it "
                            "duplicates the shards)" % path)

    quantization = None
    if isinstance(config, dict):
        try:
            quantization = text_config(config)[0].get("quantization_config")
        except SizingInputError:
            quantization = None
    weights = None
    if headers:
        weights = summarize_headers(list(headers.values()), quantization if isinstance(quantization, dict) else None)
        weights.update(format="safetensors", files=len(headers), bytes_by_dtype=bytes_by_dtype(headers.values()),
                       header_bytes=sum(f["header_bytes"] for f in per_file))
    else:
        kinds = classify_paths(sorted(selected_paths))
        if kinds["pickle_files"]:
            warnings.append("no safetensors weights selected; pickle weights (%s) are not read" % ", ".join(
                kinds["pickle_files"][:5]))
        elif not any(p.endswith(".gguf") for p in selected_paths):
            warnings.append("no safetensors weights selected: no parameter count")

    architecture = None
    if config is not None:
        try:
            facts = parse_config(config)
            architecture = architecture_summary(facts)
        except SizingInputError as exc:
            warnings.append("config.json does not describe an architecture the sizing code reads: %s" % exc)
    if architecture and weights and weights["params_total"] and not weights["packed"]:
        ratio = float(weights["params_total"]) / architecture["params_computed"]
        if abs(ratio - 1) > PARAMS_TOLERANCE:
            warnings.append("the safetensors headers hold %d parameters but config.json's shapes give %d "
                            "(ratio %.3f)" % (weights["params_total"], architecture["params_computed"], ratio))

    result = {
        "source": source.kind,
        "model_id": source.model_id,
        "revision": source.revision,
        "files": [{"path": e["path"], "size": e["size"], "sha256": e["sha256"]} for e in selected],
        "file_count": len(selected),
        "total_files": len(source.entries),
        "download_bytes": sum(e["size"] for e in selected),
        "total_bytes": sum(e["size"] for e in source.entries),
        "config": config,
        "weights": weights,
        "params": weights["params_total"] if weights else None,
        "precision": weights["precision"] if weights else None,
        "dominant_dtype": weights["dominant_dtype"] if weights else None,
        "architecture": architecture,
        "safetensors_files": per_file,
        "index_files": index_files,
        "bytes_read": source.weight_bytes_read,
        "http_requests": source.requests,
        "range_ignored": source.range_ignored,
        "metadata_warnings": warnings,
    }
    result.update(classify_paths(sorted(selected_paths)))
    return result
