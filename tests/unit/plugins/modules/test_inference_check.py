# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""inference_check module: argument checks, and a whole run over real HTTP against a small OpenAI-compatible server
in this process that streams the way vLLM 0.32 does (the real engine is in tests/integration/test_inference_check.py).
"""
import json
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.llmops.deploy.plugins.modules import inference_check

from .module_runner import run_module

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))))
LOGS = os.path.join(REPO_ROOT, "tests", "fixtures", "vllm_logs")
KEY = "unit-key-51a0"


def fixture(*parts):
    with open(os.path.join(LOGS, *parts), encoding="utf-8") as handle:
        return handle.read()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self):
        self.server.seen_auth.append(self.headers.get("Authorization"))
        return self.headers.get("Authorization") == "Bearer %s" % KEY

    def do_GET(self):
        if self.path == "/health":
            return self._send(200, b"", "text/plain")
        if self.path == "/metrics":
            return self._send(200, fixture("cpu", "qwen2-tiny-fp32.metrics").encode(), "text/plain")
        if not self._authorized():
            return self._send(401, {"error": "Unauthorized"})
        if self.path == "/v1/models":
            return self._send(200, {"object": "list", "data": [{"id": "qwen2-tiny"}, {"id": "other"}]})
        return self._send(404, {"error": "not found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        if not self._authorized():
            return self._send(401, {"error": "Unauthorized"})
        if self.server.fail_with:
            return self._send(self.server.fail_with, {"error": {"message": "EngineCore encountered an issue."}})
        chat = self.path == "/v1/chat/completions"
        words = ["Hel", "lo", " there"][:body["max_tokens"]]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()

        def event(choice):
            obj = {"model": self.server.answer_model, "choices": [choice]}
            self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
            self.wfile.flush()

        event({"index": 0, "delta": {"role": "assistant", "content": ""}} if chat else {"index": 0, "text": ""})
        for word in words:
            event({"index": 0, "delta": {"content": word}} if chat else {"index": 0, "text": word})
        usage = {"prompt_tokens": 4, "completion_tokens": len(words), "total_tokens": 4 + len(words)}
        self.wfile.write(b"data: " + json.dumps({"model": self.server.answer_model, "choices": [],
                                                 "usage": usage}).encode() + b"\n\ndata: [DONE]\n\n")
        self.close_connection = True


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.bodies, srv.seen_auth, srv.fail_with, srv.answer_model = [], [], None, "qwen2-tiny"
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.url = "http://127.0.0.1:%d" % srv.server_address[1]
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def args(server, **extra):
    base = {"url": server.url, "model": "qwen2-tiny", "api_key": KEY, "health_timeout": 5, "timeout": 10,
            "max_tokens": 3}
    base.update(extra)
    return base


@pytest.mark.parametrize("extra, words", [
    ({"url": "127.0.0.1:8000"}, "url must be an http:// or https:// base URL"),
    ({"url": "http://user:pw@127.0.0.1:1"}, "url must not hold credentials"),
    ({"tolerance": 1.5}, "tolerance must be a fraction"),
    ({"expected": {"kv_tokens": 5}}, "expected has unknown key(s) kv_tokens"),
    ({"expected": {"kv_cache_tokens": "lots"}}, "expected.kv_cache_tokens must be a non-negative number"),
    ({"prompts": [""]}, "prompts[0] is empty"),
    ({"concurrency": 0}, "concurrency must be at least 1"),
    ({"max_tokens": 0}, "max_tokens must be at least 1"),
    ({"endpoints": []}, "endpoints must name at least one"),
])
def test_bad_arguments_fail_before_any_request(monkeypatch, server, extra, words):
    failed, result = run_module(monkeypatch, inference_check, args(server, **extra))
    assert failed and words in result["msg"]
    assert server.bodies == [] and server.seen_auth == []


def test_a_whole_trial_in_check_mode(monkeypatch, server):
    log = fixture("cpu", "qwen2-tiny-fp32.log")
    failed, result = run_module(monkeypatch, inference_check, args(
        server, engine_log=log, concurrency=2, repeat=2,
        prompts=["Hi", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]],
        expected={"kv_cache_tokens": 262144, "weights_bytes": 4202752, "context_length": 512}), check_mode=True)
    assert not failed, result.get("msg")
    assert result["changed"] is False and result["passed"] is True and result["estimates_as_expected"] is True
    assert len(result["requests"]) == 8 and all(r["ok"] for r in result["requests"])
    assert {r["text"] for r in result["requests"]} == {"Hello there"}
    assert all(r["ttft_s"] <= r["latency_s"] and r["completion_tokens"] == 3 for r in result["requests"])
    assert result["summary"]["succeeded"] == 8 and result["summary"]["output_tokens"] == 24
    # the key went as a Bearer header on every authorised call, and is nowhere in the result
    assert set(server.seen_auth) == {"Bearer %s" % KEY} and KEY not in json.dumps(result)
    # bodies: streaming with usage, chat messages as given, messages joined for completions
    chats = [b for b in server.bodies if "messages" in b]
    assert all(b["stream"] and b["stream_options"] == {"include_usage": True} for b in server.bodies)
    assert {"role": "system", "content": "Be brief."} in chats[-1]["messages"] or any(
        len(b["messages"]) == 2 for b in chats)
    assert "Be brief.\nHi" in [b.get("prompt") for b in server.bodies]
    rows = dict((r["figure"], r) for r in result["comparison"])
    assert rows["kv_cache_tokens"]["verdict"] == "as expected" and rows["kv_cache_tokens"]["ratio"] == 1.0
    assert rows["max_concurrency"]["estimated"] == 512.0 and rows["max_concurrency"]["measured"] == 512.0
    assert rows["weights_bytes"]["verdict"] == "as expected" and rows["weights_bytes"]["ratio"] is None
    assert result["engine"]["version"] == "0.32.0" and result["engine"]["source"] == "engine_log"
    assert result["engine"]["metrics"]["figures"]["kv_cache_tokens"]["value"] == 262144


def test_differs_is_a_warning_or_a_failure(monkeypatch, server):
    log = fixture("cpu", "qwen2-tiny-fp32.log")
    failed, result = run_module(monkeypatch, inference_check, args(
        server, engine_log=log, endpoints=["completions"], prompts=["Hi"], expected={"kv_cache_tokens": 90000}))
    assert not failed and result["passed"] is False
    assert result["_warnings"] == [
        "estimate vs engine: the engine kept 2.9x more KV-cache tokens than planned (262,144 against 90,000 planned)",
        "estimate vs engine: the engine can hold 2.9x more requests of 512 tokens at once than planned "
        "(512 against 175.8 planned)"]
    failed, result = run_module(monkeypatch, inference_check, args(
        server, engine_log=log, endpoints=["completions"], prompts=["Hi"], expected={"kv_cache_tokens": 90000},
        fail_on_differs=True))
    assert failed and "differ from the plan" in result["msg"]


def test_missing_and_wrong_key(monkeypatch, server):
    failed, result = run_module(monkeypatch, inference_check, args(server, api_key=None))
    assert failed and result["msg"] == ("the endpoint requires an API key (401 Unauthorized) and none was given: "
                                        "set api_key")
    failed, result = run_module(monkeypatch, inference_check, args(server, api_key="wrong-key-xyz"))
    assert failed and "refused the API key" in result["msg"] and "wrong-key-xyz" not in json.dumps(result)


def test_wrong_model_and_wrong_answering_model(monkeypatch, server):
    failed, result = run_module(monkeypatch, inference_check, args(server, model="Qwen2-7B"))
    assert failed and result["msg"].endswith("it serves: qwen2-tiny, other")
    server.answer_model = "other"
    failed, result = run_module(monkeypatch, inference_check, args(server, endpoints=["chat"], prompts=["Hi"]))
    assert failed and "answered by model 'other', not 'qwen2-tiny'" in result["msg"]


def test_a_server_error_points_at_the_engines_log(monkeypatch, server):
    server.fail_with = 500
    failed, result = run_module(monkeypatch, inference_check, args(
        server, engine_log=fixture("cpu", "qwen2-tiny-bf16-sigill.log"), endpoints=["completions"],
        prompts=["Hi"]))
    assert failed and "1 of 1 trial request(s) failed" in result["msg"]
    assert "HTTP 500: EngineCore encountered an issue." in result["msg"]
    assert "died unexpectedly (exit code: -4)" in result["msg"]


def test_unit_reads_the_journal_of_the_last_start(monkeypatch, server, tmp_path):
    journal = tmp_path / "journal.txt"
    journal.write_text(fixture("cpu", "qwen2-tiny-bf16-block16-failed-start.log")
                       + fixture("cpu", "llama-3.1-tiny-fp16.log"))
    fake = tmp_path / "journalctl"
    fake.write_text('#!/bin/sh\n[ "$*" = "-u vllm-x.service -b -o cat --no-pager" ] || exit 3\ncat "%s"\n' % journal)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", "%s%s%s" % (tmp_path, os.pathsep, os.environ["PATH"]))
    failed, result = run_module(monkeypatch, inference_check, args(
        server, unit="vllm-x.service", endpoints=["completions"], prompts=["Hi"], metrics=False))
    assert not failed, result.get("msg")
    engine = result["engine"]
    assert engine["source"] == "unit" and engine["starts_in_log"] == 2 and engine["exception"] is None
    assert engine["figures"]["kv_cache_tokens"]["value"] == 1048576 and "metrics" not in engine
    failed, result = run_module(monkeypatch, inference_check, args(server, unit="other.service"))
    assert failed and result["msg"].startswith("journalctl -u other.service failed (rc=3)")
