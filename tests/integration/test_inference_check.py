# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""llmops.deploy.inference_check against a real vLLM CPU engine (tests/engine.py) serving the generated Qwen2-tiny
model, downloaded from the local hub with the real ModelScope SDK; one engine start for the whole module.

Also: the generated weights as the engine reads them (finite, normal(0, 0.02), norms at 1), read here with an
independent safetensors reader; and the failures that need no engine (endpoint down, /health never 200, a request
that never answers) against plain local sockets and servers.
"""
import json
import math
import os
import re
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests.engine import Engine, estimates, free_port  # noqa: E402  (needs the path above)
from tools.local_hub.sdk import ModelScopeSDK  # noqa: E402

pytestmark = pytest.mark.slow

VENV_BIN = os.path.join(REPO, ".venv", "bin")
PYTHON = os.path.join(VENV_BIN, "python")
QWEN = "llmops-test/Qwen2-tiny-2M"
SERVED = "qwen2-tiny"
API_KEY = "trial-key-7c1e0b9d55"
MAX_MODEL_LEN = 512
FAILED_LOG = os.path.join(REPO, "tests", "fixtures", "vllm_logs", "cpu", "qwen2-tiny-bf16-block16-failed-start.log")


def ansible_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({"PATH": VENV_BIN + os.pathsep + env.get("PATH", ""), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
                "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    return env


def run_module(args, *extra, path_prefix=None):
    """The module through ansible (args travel as JSON on the command line only in tests; the key here is a test
    value). Returns (result dict, the whole stdout+stderr)."""
    argv = [os.path.join(VENV_BIN, "ansible"), "localhost", "-m", "llmops.deploy.inference_check",
            "-a", json.dumps(args), "-e", "ansible_python_interpreter=%s" % PYTHON] + list(extra)
    env = ansible_env()
    if path_prefix:
        env["PATH"] = str(path_prefix) + os.pathsep + env["PATH"]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{"):])
        return data["plays"][0]["tasks"][0]["hosts"]["localhost"], proc.stdout + proc.stderr
    except (ValueError, KeyError, IndexError):
        raise AssertionError("no result from ansible (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))


# ----------------------------------------------------------------------------------------------------------------
# The model, downloaded with the real SDK, and its weights read independently
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qwen_dir(local_hub_shared, tmp_path_factory):
    target = tmp_path_factory.mktemp("qwen2-tiny")
    sdk = ModelScopeSDK(local_hub_shared.endpoint, tmp_path_factory.mktemp("sdk"))
    proc = sdk.cli("download", QWEN, "--local-dir", str(target))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return target


def read_tensors(path):
    """{name: list of floats} of a BF16/F32 safetensors file (written here from the format's definition)."""
    with open(path, "rb") as handle:
        raw = handle.read()
    length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + length])
    base = 8 + length
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        data = raw[base + start:base + end]
        if info["dtype"] == "BF16":
            halves = struct.unpack("<%dH" % (len(data) // 2), data)
            out[name] = [struct.unpack("<f", struct.pack("<I", h << 16))[0] for h in halves]
        elif info["dtype"] == "F32":
            out[name] = list(struct.unpack("<%df" % (len(data) // 4), data))
        else:
            raise AssertionError("unexpected dtype %s in %s" % (info["dtype"], name))
    return out


def test_generated_weights_are_finite_normal_with_unit_norms(qwen_dir):
    tensors = read_tensors(qwen_dir / "model.safetensors")
    assert len(tensors) > 50
    for name, values in tensors.items():
        assert all(math.isfinite(v) for v in values), name
        if name.endswith("norm.weight"):
            assert set(values) == {1.0}, name
            continue
        n = len(values)
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
        assert abs(mean) < 5 * 0.02 / math.sqrt(n), (name, mean)  # 5 standard errors of the mean
        assert max(abs(v) for v in values) < 0.2, name  # no value beyond 10 sigma
        if n >= 4096:
            assert 0.018 < std < 0.022, (name, std)
            assert len(set(values)) > 1000, name  # not a constant or a short repeated pattern


# ----------------------------------------------------------------------------------------------------------------
# One engine for the module
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(qwen_dir, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("engine")
    eng = Engine(qwen_dir, SERVED, api_key=API_KEY, max_model_len=MAX_MODEL_LEN, log_path=log_dir / "engine.log")
    eng.start()
    try:
        yield eng
    finally:
        eng.stop()


def test_good_key_real_tokens_figures_and_rows_from_the_engines_own_log(engine, qwen_dir):
    log = engine.log_text()
    expected = estimates(qwen_dir, engine.dtype, max_model_len=MAX_MODEL_LEN)
    result, output = run_module({"url": engine.url, "model": SERVED, "api_key": API_KEY, "engine_log": log,
                                 "expected": expected, "max_tokens": 12, "concurrency": 2, "repeat": 2,
                                 "health_timeout": 60}, "--check")
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False and result["passed"] is True
    assert API_KEY not in output
    assert result["served_models"] == [SERVED] and result["health"]["status"] == 200

    # real tokens: every request streamed, counted and decoded to text that is not NUL
    requests = result["requests"]
    assert len(requests) == 2 * 2 * 2 and {r["endpoint"] for r in requests} == {"completions", "chat"}
    for req in requests:
        assert req["ok"] and req["status"] == 200 and req["model"] == SERVED, req
        assert 0 < req["completion_tokens"] <= 12 and req["prompt_tokens"] > 0, req
        assert req["text"].strip("\x00"), req
        assert 0 < req["ttft_s"] <= req["latency_s"], req
    assert len({r["text"] for r in requests}) > 1  # varied answers, not one repeated token
    summary = result["summary"]
    assert summary["succeeded"] == 8 and summary["failed"] == 0 and summary["concurrency"] == 2
    assert summary["output_tokens"] == sum(r["completion_tokens"] for r in requests)
    assert summary["aggregate_output_tokens_per_s"] > 0 and summary["ttft_s"]["max"] >= summary["ttft_s"]["p50"]

    # the engine's own figures, each with a line that is really in its log
    eng = result["engine"]
    assert eng["source"] == "engine_log" and eng["version"] == "0.32.0" and eng["platform"] == "cpu"
    assert eng["started"] is True and eng["first_error"] is None
    log_lines = log.splitlines()
    kv_line = [line for line in log_lines if "KV cache size:" in line]
    assert len(kv_line) == 1
    tokens = int(re.search(r"KV cache size: ([0-9,]+) tokens", kv_line[0]).group(1).replace(",", ""))
    ctx, conc = re.search(r"Maximum concurrency for ([0-9,]+) tokens per request: ([0-9.]+)x", kv_line[0]).groups()
    figures = eng["figures"]
    assert figures["kv_cache_tokens"]["value"] == tokens
    assert log_lines[figures["kv_cache_tokens"]["line_number"] - 1] == figures["kv_cache_tokens"]["line"]
    assert eng["config"]["max_model_len"] == MAX_MODEL_LEN == int(ctx.replace(",", ""))

    rows = {row["figure"]: row for row in result["comparison"]}
    kv = rows["kv_cache_tokens"]
    assert kv["measured_from"] == kv_line[0] and kv["measured"] == tokens
    assert kv["estimated"] == expected["kv_cache_tokens"]
    assert kv["ratio"] == round(tokens / expected["kv_cache_tokens"], 4)
    # on the CPU engine the KV cache is exactly VLLM_CPU_KVCACHE_SPACE / bytes per token: the plan's arithmetic
    assert kv["ratio"] == 1.0 and kv["verdict"] == "as expected"
    cc = rows["max_concurrency"]
    assert cc["measured"] == float(conc) and cc["measured_from"] == kv_line[0]
    assert cc["ratio"] == round(float(conc) / expected["max_concurrency"], 4)
    weights = rows["weights_bytes"]
    checkpoint_line = [line for line in log_lines if "Checkpoint size:" in line][0]
    assert weights["measured_from"] == checkpoint_line and weights["estimated"] == expected["weights_bytes"]
    # 4 MB reads "0.00 GiB": within the log's rounding, so as expected and no ratio can be told
    assert weights["measured_reported"] == "0.00 GiB" and weights["verdict"] == "as expected"
    assert weights["ratio"] is None

    # /metrics agrees with the log on the KV cache
    assert eng["metrics"]["figures"]["kv_cache_tokens"]["value"] == tokens
    assert eng["metrics"]["figures"]["generation_tokens_total"]["value"] >= summary["output_tokens"]


def test_a_wrong_estimate_is_reported_with_its_direction(engine):
    result, _output = run_module({"url": engine.url, "model": SERVED, "api_key": API_KEY,
                                  "engine_log": engine.log_text(), "endpoints": ["completions"],
                                  "prompts": ["Hello"], "max_tokens": 4,
                                  "expected": {"kv_cache_tokens": 100000, "context_length": MAX_MODEL_LEN}})
    assert not result.get("failed"), result.get("msg")
    rows = {row["figure"]: row for row in result["comparison"]}
    assert rows["kv_cache_tokens"]["verdict"] == "differs"
    assert "more KV-cache tokens than planned" in rows["kv_cache_tokens"]["summary"]
    assert result["passed"] is False and result["estimates_as_expected"] is False
    assert any("more KV-cache tokens than planned" in w for w in result.get("warnings", []))


def test_missing_key_says_none_was_given(engine):
    result, output = run_module({"url": engine.url, "model": SERVED, "health_timeout": 30})
    assert result["failed"] and "requires an API key" in result["msg"] and "none was given" in result["msg"]
    assert "Traceback" not in result["msg"] and "Traceback (most recent call last)" not in output


def test_wrong_key_says_it_was_refused_and_never_shows_it(engine):
    wrong = "not-the-key-3f9a"
    result, output = run_module({"url": engine.url, "model": SERVED, "api_key": wrong, "health_timeout": 30})
    assert result["failed"] and "refused the API key" in result["msg"] and "wrong" in result["msg"]
    assert wrong not in output


def test_wrong_model_lists_the_served_ones(engine):
    result, _output = run_module({"url": engine.url, "model": "Qwen2-7B", "api_key": API_KEY, "health_timeout": 30})
    assert result["failed"] and "'Qwen2-7B' is not served" in result["msg"] and SERVED in result["msg"]
    assert result["served_models"] == [SERVED]


def test_engine_figures_from_a_units_journal(engine, tmp_path):
    """``unit`` reads ``journalctl -u UNIT -b -o cat --no-pager`` on the host. No unit runs this engine, so a
    journalctl first on PATH prints two starts (a failed one, then this engine's log) for exactly that command
    line; the module must read the last start and give the same figures as from the text."""
    fake = tmp_path / "bin"
    fake.mkdir()
    journal = tmp_path / "journal.log"
    with open(FAILED_LOG, encoding="utf-8") as failed:
        journal.write_text(failed.read() + engine.log_text(), encoding="utf-8")
    script = fake / "journalctl"
    script.write_text('#!/bin/sh\n[ "$*" = "-u llmops-test.service -b -o cat --no-pager" ] || exit 3\n'
                      'cat "%s"\n' % journal)
    script.chmod(0o755)
    result, _output = run_module({"url": engine.url, "model": SERVED, "api_key": API_KEY,
                                  "unit": "llmops-test.service", "endpoints": ["chat"], "prompts": ["Hi"],
                                  "max_tokens": 4, "metrics": False}, path_prefix=fake)
    assert not result.get("failed"), result.get("msg")
    eng = result["engine"]
    assert eng["source"] == "unit" and eng["unit"] == "llmops-test.service" and eng["starts_in_log"] == 2
    assert eng["first_error"] is None and eng["started"] is True  # the failed start before it is not this one
    tokens = int(re.search(r"KV cache size: ([0-9,]+) tokens", engine.log_text()).group(1).replace(",", ""))
    assert eng["figures"]["kv_cache_tokens"]["value"] == tokens


# ----------------------------------------------------------------------------------------------------------------
# Failures that need no engine
# ----------------------------------------------------------------------------------------------------------------
def test_endpoint_down_is_said_plainly():
    port = free_port()  # nothing listens on it
    result, _output = run_module({"url": "http://127.0.0.1:%d" % port, "model": SERVED, "health_timeout": 2})
    assert result["failed"] and "endpoint is down" in result["msg"] and "connection refused" in result["msg"]


class _Stub(BaseHTTPRequestHandler):
    """/health 503 for ever; /v1/models lists one model; /v1/completions never answers within the test's timeout."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/health":
            self.send_response(503)
            self.end_headers()
            return
        body = json.dumps({"object": "list", "data": [{"id": SERVED}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.hold.wait(30)


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.daemon_threads = True
    server.hold = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.hold.set()
        server.shutdown()
        server.server_close()


def test_health_never_reached_names_the_last_answer_and_the_engines_error(stub):
    log = ("(APIServer pid=1) INFO 12-01 17:02:08 [api_utils.py:347]  x  \u2588 version 0.32.0\n"
           "(Worker pid=2) ERROR 12-01 17:05:55 [multiproc_executor.py:1063] WorkerProc hit an exception.\n"
           "(Worker pid=2) ERROR 12-01 17:05:55 [multiproc_executor.py:1063] Traceback (most recent call last):\n"
           "(Worker pid=2) ERROR 12-01 17:05:55 [multiproc_executor.py:1063] ValueError: No common block size\n")
    started = time.monotonic()
    result, _output = run_module({"url": stub, "model": SERVED, "health_timeout": 3, "engine_log": log})
    assert result["failed"] and "never reached within health_timeout=3 s" in result["msg"]
    assert "HTTP 503" in result["msg"] and "ValueError: No common block size (line 4)" in result["msg"]
    assert result["health"]["attempts"] >= 1 and time.monotonic() - started < 120


class _SlowStub(_Stub):
    def do_GET(self):
        if self.path == "/health":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        _Stub.do_GET(self)


def test_a_stalled_request_times_out_with_the_timeout_named():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowStub)
    server.daemon_threads = True
    server.hold = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:%d" % server.server_address[1]
        result, _output = run_module({"url": url, "model": SERVED, "health_timeout": 0, "timeout": 1,
                                      "endpoints": ["completions"], "prompts": ["Hello"]})
    finally:
        server.hold.set()
        server.shutdown()
        server.server_close()
    assert result["failed"] and "timed out (timeout=1 s)" in result["msg"]
    assert result["requests"][0]["ok"] is False and "timed out after 1 s" in result["requests"][0]["error"]
