# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hub_manifest: path safety, listing parsing, include/exclude, request parameters, HTTP behaviour."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils.hub_client import fetch_manifest, http_get_json
from ansible_collections.llmops.deploy.plugins.module_utils.hub_manifest import (
    HubError, ManifestError, listing_url, normalize_endpoint, normalize_patterns,
    parse_listing, path_matches, select_entries, split_model_id, unsafe_path_reason, validate_revision)

SHA = "4792600b7fa3f4be7539ce902376993e593085020c7d96d258f40a8b286d3f93"
MARKER = ".llmops-complete.json"


def blob(path, size=10, sha=SHA, **extra):
    entry = {"Path": path, "Type": "blob", "Size": size, "Sha256": sha}
    entry.update(extra)
    return entry


def listing(*entries):
    return {"Code": 200, "Success": True, "Data": {"Files": list(entries)}}


# ------------------------------------------------------------------ path safety
@pytest.mark.parametrize("path, reason", [
    ("", "empty path"),
    ("../x", "'..' path segment"),
    ("a/../../x", "'..' path segment"),
    ("..", "'..' path segment"),
    ("./x", "'.' path segment"),
    ("a/./b", "'.' path segment"),
    ("/etc/passwd", "absolute path"),
    ("//server/share", "absolute path"),
    ("a\\b", "backslash"),
    ("..\\..\\x", "backslash"),
    ("C:/x", "drive letter"),
    ("c:x", "drive letter"),
    ("a//b", "empty path segment"),
    ("dir/", "empty path segment"),
    ("a\x00b", "control character"),
    ("a\nb", "control character"),
    ("a\x7fb", "control character"),
    ("a\tb", "control character"),
    (MARKER, "reserved name"),
    ("sub/" + MARKER, "reserved name"),
    ("model.safetensors.incomplete", "partial files"),
    ("x.parallel_tmp", "partial files"),
    ("a" * 256, "longer than 255 bytes"),
])
def test_unsafe_paths_are_refused(path, reason):
    found = unsafe_path_reason(path, (MARKER,))
    assert found is not None and reason in found


@pytest.mark.parametrize("path", [
    "config.json", "sub/dir/x.txt", ".gitattributes", "original/params.json", "a b/c+d.txt", "模型/权重.bin",
    "x..y", "...", "a" * 255, "incomplete", ".x.incomplete.json",
])
def test_safe_paths_are_accepted(path):
    assert unsafe_path_reason(path, (MARKER,)) is None


def test_non_string_path():
    assert unsafe_path_reason(None) == "not a string"


# ------------------------------------------------------------------ listing
def test_parse_listing_data_files_skips_trees_and_sorts():
    parsed = parse_listing(listing(
        {"Path": "sub", "Type": "tree", "Size": 0, "Sha256": ""},
        blob("sub/b.txt", 3), blob("a.json", 5)), "master")
    assert parsed["entries"] == [{"path": "a.json", "size": 5, "sha256": SHA},
                                 {"path": "sub/b.txt", "size": 3, "sha256": SHA}]
    assert parsed["revision"] == "master"


def test_parse_listing_data_as_list_and_lowercase_keys():
    parsed = parse_listing({"Data": [{"path": "a", "size": "7", "sha256": SHA}]}, "v1")
    assert parsed["entries"] == [{"path": "a", "size": 7, "sha256": SHA}]


def test_parse_listing_reads_name_when_path_missing():
    parsed = parse_listing({"Data": [{"Name": "n.txt", "Size": 1, "Sha256": SHA}]}, "master")
    assert parsed["entries"][0]["path"] == "n.txt"


def test_resolved_revision_from_listing():
    entries = [blob("a", Revision="c0ffee", CommitId="1"), blob("b", Revision="c0ffee", CommitId="2")]
    parsed = parse_listing(listing(*entries), "master")
    assert parsed["revision"] == "c0ffee"
    parsed = parse_listing(listing(blob("a", CommitId="abc"), blob("b", CommitId="abc")), "master")
    assert parsed["revision"] == "abc"
    parsed = parse_listing(listing(blob("a", CommitId="abc"), blob("b", CommitId="def")), "master")
    assert parsed["revision"] == "master"


@pytest.mark.parametrize("entry, fragment", [
    (blob("a", sha=""), "no valid Sha256"),
    (blob("a", sha=SHA.upper()), "no valid Sha256"),
    (blob("a", sha=SHA[:-1]), "no valid Sha256"),
    ({"Path": "a", "Sha256": SHA}, "no valid Size"),
    (blob("a", size=-1), "no valid Size"),
    (blob("a", size=True), "no valid Size"),
    (blob("../evil"), "unsafe path '../evil'"),
    ({"Path": "../d", "Type": "tree"}, "unsafe path '../d'"),
    ("string", "not an object"),
])
def test_listing_problems_refuse_the_whole_listing(entry, fragment):
    with pytest.raises(ManifestError) as info:
        parse_listing(listing(blob("good"), entry), "master")
    assert any(fragment in p for p in info.value.problems)
    assert fragment in info.value.message


def test_every_problem_is_listed():
    with pytest.raises(ManifestError) as info:
        parse_listing(listing(blob("../a"), blob("/b"), blob("c", sha="")), "master")
    assert len(info.value.problems) == 3


def test_duplicates_and_file_directory_conflicts():
    with pytest.raises(ManifestError, match="listed twice"):
        parse_listing(listing(blob("a"), blob("a")), "master")
    with pytest.raises(ManifestError, match="as a file and as the directory"):
        parse_listing(listing(blob("a"), blob("a/b")), "master")


def test_listing_without_file_list():
    with pytest.raises(ManifestError, match="no file list.*Model does not exist"):
        parse_listing({"Success": False, "Data": None, "Message": "Model does not exist."}, "master")
    with pytest.raises(ManifestError, match="not a JSON object"):
        parse_listing([1], "master")


def test_truncated_listing_is_refused():
    entries = [blob("f%04d" % i) for i in range(3000)]
    with pytest.raises(ManifestError, match="3000 listing entries"):
        parse_listing(listing(*entries), "master")


def test_unsafe_path_refused_even_when_patterns_would_exclude_it():
    # The listing is judged as a whole before any selection is made.
    with pytest.raises(ManifestError):
        parse_listing(listing(blob("a.json"), blob("../x.txt")), "master")


# ------------------------------------------------------------------ selection
ENTRIES = [{"path": p, "size": 1, "sha256": SHA} for p in (
    "config.json", "model.safetensors", "sub/extra.json", "pytorch_model.bin", "README.md", "Upper.JSON")]


def paths(selected):
    return [e["path"] for e in selected]


@pytest.mark.parametrize("include, exclude, expected", [
    ([], [], [e["path"] for e in ENTRIES]),
    (["*.json"], [], ["config.json", "sub/extra.json"]),             # '*' matches '/'; case-sensitive
    (["*.json,*.md"], [], ["config.json", "sub/extra.json", "README.md"]),  # comma-separated values
    (["sub/*"], [], ["sub/extra.json"]),
    ([], ["*.bin", "README.md"], ["config.json", "model.safetensors", "sub/extra.json", "Upper.JSON"]),
    (["*.json"], ["sub/*"], ["config.json"]),                         # exclusion wins
    ([".*\\.json"], [], []),                                          # regex style tried as glob: '*\.json' no match
    ([".*json"], [], ["config.json", "sub/extra.json"]),              # regex-style '.*' read as '*'
    (["[cm]*"], [], ["config.json", "model.safetensors"]),
    (["nothing"], [], []),
])
def test_select_entries(include, exclude, expected):
    assert paths(select_entries(ENTRIES, include, exclude)) == expected


def test_normalize_patterns():
    assert normalize_patterns(None) == []
    assert normalize_patterns("*.json, *.md,") == ["*.json", "*.md"]
    assert normalize_patterns(["a", "b,c"]) == ["a", "b", "c"]
    with pytest.raises(ManifestError, match="pattern 3"):
        normalize_patterns([3])


def test_path_matches_is_case_sensitive():
    assert path_matches("A.json", ["*.json"])
    assert not path_matches("A.JSON", ["*.json"])


# ------------------------------------------------------------------ parameters
@pytest.mark.parametrize("model_id", ["Qwen/Qwen2.5-7B-Instruct", "deepseek-ai/DeepSeek-R1", "a/b_c.d-e"])
def test_model_ids_accepted(model_id):
    assert split_model_id(model_id) == tuple(model_id.split("/"))


@pytest.mark.parametrize("model_id", ["Qwen", "a/b/c", "../x", "a/..", "a/.b", "/x", "a/", "a b/c", "a/b?c", None])
def test_model_ids_refused(model_id):
    with pytest.raises(ManifestError, match="model_id .* is not valid: expected 'owner/name'"):
        split_model_id(model_id)


@pytest.mark.parametrize("endpoint, expected", [
    ("https://modelscope.cn", "https://modelscope.cn"),
    ("https://modelscope.cn/", "https://modelscope.cn"),
    ("http://127.0.0.1:18080", "http://127.0.0.1:18080"),
    ("http://hub.internal:8080/mirror/", "http://hub.internal:8080/mirror"),
])
def test_endpoints_accepted(endpoint, expected):
    assert normalize_endpoint(endpoint) == expected


@pytest.mark.parametrize("endpoint, fragment", [
    ("modelscope.cn", "expected an http"),
    ("127.0.0.1:18080", "expected an http"),
    ("ftp://x", "expected an http"),
    ("https://", "expected an http"),
    ("https://user:pw@hub", "credentials"),
    ("https://hub?x=1", "expected an http"),
    ("http://hub:99999", "bad port"),
    ("", "expected an http"),
])
def test_endpoints_refused(endpoint, fragment):
    with pytest.raises(ManifestError, match=fragment):
        normalize_endpoint(endpoint)


def test_credentials_never_echoed():
    with pytest.raises(ManifestError) as info:
        normalize_endpoint("https://user:s3cret@hub")
    assert "s3cret" not in info.value.message


@pytest.mark.parametrize("revision", [
    "", "a b", "x\n", None, "../tiny-model/master", "..", "a/../b", "/master", "master/", "a//b", "v1..2", ".hidden",
    "master.lock", "rev.", "a\\b", "tag:v1", "rev?x=1", "rev#frag", "r%2e%2e", "ma\u202estr", "x" * 300, 7])
def test_revisions_refused(revision):
    with pytest.raises(ManifestError, match="revision .* is not valid"):
        validate_revision(revision)


@pytest.mark.parametrize("revision", ["master", "v1.0", "release/v1.2", "5c3a1b2e9f0d4c6b8a7e", "feature_x-2+b"])
def test_revisions_accepted(revision):
    assert validate_revision(revision) == revision


@pytest.mark.parametrize("char, category", [
    ("\u0085", "Cc"), ("\u009b", "Cc"), ("\u2028", "Zl"), ("\u2029", "Zp"), ("\u202e", "Cf"), ("\u200b", "Cf"),
    ("\u2066", "Cf"), ("\ufeff", "Cf"), ("\u00ad", "Cf")])
def test_unicode_control_and_format_characters_refused(char, category):
    reason = unsafe_path_reason("weights/model%s.safetensors" % char)
    assert reason is not None and "U+%04X" % ord(char) in reason and category in reason


def test_unicode_letters_accepted():
    assert unsafe_path_reason("模型/权重-ü.safetensors") is None


def test_listing_url_encodes_parameters():
    assert listing_url("http://h", "o", "n.x", "v1 +/") == \
        "http://h/api/v1/models/o/n.x/repo/files?Revision=v1+%2B%2F&Recursive=True"


# ------------------------------------------------------------------ HTTP
class Hub(object):
    """A tiny threaded hub answering from a table: path -> list of (status, body, headers), last one repeats."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                hub.requests.append((self.path, dict(self.headers)))
                answers = hub.routes.get(self.path.split("?")[0]) or [(404, {"Message": "no"}, {})]
                status, body, headers = answers.pop(0) if len(answers) > 1 else answers[0]
                data = json.dumps(body).encode() if not isinstance(body, bytes) else body
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub():
    server = Hub()
    yield server
    server.close()


LIST_PATH = "/api/v1/models/o/n/repo/files"


def no_sleep(_seconds):
    pass


def test_fetch_manifest_sends_bearer_token_and_parameters(hub):
    hub.routes[LIST_PATH] = [(200, listing(blob("a.json", Revision="r1")), {})]
    manifest = fetch_manifest(hub.url + "/", "o/n", "master", token="tok-123")
    assert manifest["entries"][0]["path"] == "a.json" and manifest["revision"] == "r1"
    path, headers = hub.requests[0]
    assert path == LIST_PATH + "?Revision=master&Recursive=True"
    assert headers["Authorization"] == "Bearer tok-123"


def test_no_token_no_authorization_header(hub):
    hub.routes[LIST_PATH] = [(200, listing(blob("a")), {})]
    fetch_manifest(hub.url, "o/n", "master")
    assert "Authorization" not in hub.requests[0][1]


def test_server_errors_are_retried_then_succeed(hub):
    hub.routes[LIST_PATH] = [(500, {}, {}), (503, {}, {}), (200, listing(blob("a")), {})]
    sleeps = []
    fetch_manifest(hub.url, "o/n", "master", retries=3, sleep=sleeps.append)
    assert len(hub.requests) == 3 and sleeps == [1.0, 2.0]


def test_server_errors_give_up_after_retries(hub):
    hub.routes[LIST_PATH] = [(500, {"Message": "boom"}, {})]
    with pytest.raises(HubError, match="HTTP 500: boom after 3 attempts") as info:
        fetch_manifest(hub.url, "o/n", "master", retries=2, sleep=no_sleep)
    assert info.value.status == 500 and len(hub.requests) == 3


@pytest.mark.parametrize("status, fragment", [
    (401, "refused access"), (403, "refused access"), (404, "no such model or revision"), (400, "HTTP 400")])
def test_client_errors_fail_at_once_without_the_token(hub, status, fragment):
    hub.routes[LIST_PATH] = [(status, {"Message": "nope"}, {})]
    with pytest.raises(HubError) as info:
        fetch_manifest(hub.url, "o/n", "master", token="CANARY-TOKEN", sleep=no_sleep)
    assert fragment in info.value.message and "CANARY-TOKEN" not in info.value.message
    assert len(hub.requests) == 1


def test_unreachable_hub(hub):
    url = hub.url
    hub.close()
    with pytest.raises(HubError, match="could not be reached after 2 attempts"):
        http_get_json(url + LIST_PATH, retries=1, timeout=2, sleep=no_sleep)


def test_answer_that_is_not_json(hub):
    hub.routes[LIST_PATH] = [(200, b"<html>", {})]
    with pytest.raises(HubError, match="not JSON"):
        fetch_manifest(hub.url, "o/n", "master")


def test_token_not_forwarded_on_cross_origin_redirect(hub):
    other = Hub()
    try:
        other.routes[LIST_PATH] = [(200, listing(blob("a")), {})]
        hub.routes[LIST_PATH] = [(302, b"", {"Location": other.url + LIST_PATH + "?Revision=master"})]
        fetch_manifest(hub.url, "o/n", "master", token="CANARY")
        assert hub.requests[0][1]["Authorization"] == "Bearer CANARY"
        assert "Authorization" not in other.requests[0][1]
    finally:
        other.close()


def test_token_kept_on_same_origin_redirect(hub):
    hub.routes[LIST_PATH] = [(302, b"", {"Location": "/moved"})]
    hub.routes["/moved"] = [(200, listing(blob("a")), {})]
    fetch_manifest(hub.url, "o/n", "master", token="CANARY")
    assert hub.requests[1][1]["Authorization"] == "Bearer CANARY"


def test_unsafe_listing_from_the_hub_is_refused(hub):
    hub.routes[LIST_PATH] = [(200, listing(blob("ok"), blob("../escaped_by_dotdot.txt")), {})]
    with pytest.raises(ManifestError, match="escaped_by_dotdot"):
        fetch_manifest(hub.url, "o/n", "master")
