#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: inference_check
short_description: Trial inference against an OpenAI-compatible endpoint, measured and set beside the plan
version_added: 0.1.0
description:
  - Step 4 of the deployment guide's flow (a trial inference that checks the result and the resources the model really
    takes against what was expected), for a served model such as the one the C(llmops.deploy.model_serve) role starts.
  - Waits for C(/health) (up to O(health_timeout)), reads the served models from C(/v1/models), then sends every prompt
    of O(prompts) to every endpoint of O(endpoints) (C(/v1/completions), C(/v1/chat/completions)), O(repeat) times,
    O(concurrency) requests at a time (threads). Every request streams (C(stream=true) with usage), so the time to
    the first token is measured; each is checked for HTTP 200, the served model's name, usage token counts and a
    non-empty answer.
  - Reads what the engine says about itself, from O(engine_log) or from the journal of O(unit) (the last start in it)
    and from C(/metrics) (O(metrics)) - weights, KV-cache size in tokens, maximum concurrency for its context length,
    version, the first error. Each figure keeps the line it came from.
  - Sets the engine's figures beside O(expected) (the plan's estimate) - one row per figure with the ratio
    measured/estimated and a verdict, C(as expected) within O(tolerance), else C(differs) with the direction in plain
    words.
  - Fails with a plain message and no traceback when the endpoint is down, C(/health) is never reached, the API key is
    missing or refused (401), the model is not served (the served ones are listed), a request times out, or a request
    fails its checks.
  - The API key travels in an C(Authorization) Bearer header only; it is never logged, returned or put in a message.
author:
  - llmops.deploy developers (@llmops)
extends_documentation_fragment:
  - llmops.deploy.attributes
attributes:
  check_mode:
    support: full
    details:
      - Read-only. The trial changes nothing on the host (an inference request writes nothing), so check mode runs it
        in full and returns the same result, with C(changed) false.
  diff_mode:
    support: none
options:
  url:
    description:
      - Base URL of the endpoint, C(http://host:port) or C(https://host:port) (a trailing C(/v1) is accepted).
    type: str
    required: true
  model:
    description: The served model name (vLLM's C(--served-model-name)), as C(/v1/models) lists it.
    type: str
    required: true
  api_key:
    description:
      - API key of the endpoint (vLLM's C(VLLM_API_KEY)). Keep it in Ansible Vault. Sent as a Bearer token.
    type: str
  prompts:
    description:
      - Prompts to send. Each is a string, a list of chat messages (C({role, content}) dicts), or a dict with
        C(prompt) (a string) or C(messages) (that list).
      - A string sent to the chat endpoint becomes one user message; messages sent to the completions endpoint are
        joined, one content per line.
    type: list
    elements: raw
    default: ["Write one sentence about private deployments of language models.", "Count from one to five."]
  endpoints:
    description: OpenAI-compatible endpoints to exercise.
    type: list
    elements: str
    choices: [completions, chat]
    default: [completions, chat]
  max_tokens:
    description: Tokens to generate per request (C(max_tokens)).
    type: int
    default: 32
  repeat:
    description: How many times the whole set of prompts x endpoints is sent (more samples for the statistics).
    type: int
    default: 1
  concurrency:
    description: Requests in flight at once.
    type: int
    default: 1
  timeout:
    description: Seconds one request may take, from sending it to its last byte (and per C(/v1/models), C(/metrics)).
    type: int
    default: 120
  health_timeout:
    description:
      - Seconds to wait for C(/health) to answer 200 before the trial. A cold vLLM start takes minutes (about 160 s
        for the CPU build on 2 cores, more with C(torch.compile)).
      - C(0) checks once without waiting.
    type: int
    default: 300
  engine_log:
    description:
      - The engine's start-up log as text (for example the output of a start captured by a test, or
        C(ansible.builtin.slurp) of a log file). When it holds several starts, the last one is read.
    type: str
  unit:
    description:
      - A systemd unit running the engine; its log of the current boot (C(journalctl -u UNIT -b -o cat)) is read on
        the host, and its last start parsed. Used when O(engine_log) is not given.
      - After the trial, the memory of the unit's process tree is read from C(/proc) (its C(MainPID) and every
        descendant; the sum of each process's peak RSS) and compared with C(host_memory_bytes) in O(expected).
    type: str
  metrics:
    description: Read the engine's Prometheus C(/metrics) after the trial (KV-cache size, token counters, TTFT).
    type: bool
    default: true
  expected:
    description:
      - The plan's estimate, set beside the engine's figures. Any of C(weights_bytes) (bytes of weights on one
        device), C(kv_cache_tokens), C(max_concurrency) (requests of C(context_length) tokens at once),
        C(context_length), C(host_memory_bytes) (host RAM the engine's processes take - on CPU targets weights, the
        KV-cache space and the engine's runtime; compared with the process tree of O(unit)).
      - When the engine's context length differs from C(context_length), or C(max_concurrency) is not given, the
        concurrency estimate is C(kv_cache_tokens) / the engine's context length.
    type: dict
    default: {}
  tolerance:
    description: Largest relative difference (fraction) between the engine's figure and the estimate still judged
      C(as expected).
    type: float
    default: 0.15
  fail_on_differs:
    description: Fail the task when a comparison row is C(differs) (by default it is reported, RV(passed) is false,
      and the task succeeds).
    type: bool
    default: false
  validate_certs:
    description: Verify the endpoint's TLS certificate (HTTPS endpoints).
    type: bool
    default: true
  ca_path:
    description: PEM file of the CA that signed the endpoint's certificate (HTTPS endpoints with a private CA).
    type: path
  use_proxy:
    description: Use the proxy from the environment (C(https_proxy), C(http_proxy), C(no_proxy)).
    type: bool
    default: true
notes:
  - Time to first token is the time from sending the request to the first streamed chunk that carries text; latency
    is the time to the stream's end; output tokens per second is completion tokens / latency, per request.
    C(summary.aggregate_output_tokens_per_s) is all completion tokens / the trial's wall time.
  - The engine's C(Checkpoint size) is printed in GiB with two decimals; a model under 5 MiB reads C(0.00 GiB), and the
    weights row is then C(as expected) without a ratio when the estimate is within that rounding.
seealso:
  - module: llmops.deploy.model_sizing
"""

EXAMPLES = r"""
- name: Trial inference against the served model, compared with the plan
  llmops.deploy.inference_check:
    url: http://127.0.0.1:8000
    model: qwen2-tiny
    api_key: "{{ vault_vllm_api_key }}"
    unit: llmops-vllm-qwen2-tiny.service
    concurrency: 4
    repeat: 2
    expected:
      weights_bytes: 4071680
      kv_cache_tokens: 524288
      context_length: 512
  register: trial

- name: Say how far the plan was off
  ansible.builtin.debug:
    msg: "{{ trial.comparison | map(attribute='summary') | list }}"

- name: An HTTPS endpoint behind a private CA, chat only, one prompt as messages
  llmops.deploy.inference_check:
    url: https://llm.internal:8443
    model: Qwen2.5-7B-Instruct
    api_key: "{{ vault_vllm_api_key }}"
    ca_path: /etc/pki/llmops/ca.pem
    endpoints: [chat]
    prompts:
      - - role: system
          content: You are terse.
        - role: user
          content: Name three prime numbers.
"""

RETURN = r"""
url:
  description: The base URL used (no credentials).
  returned: always
  type: str
  sample: http://127.0.0.1:8000
model:
  description: The model asked for.
  returned: always
  type: str
  sample: qwen2-tiny
served_models:
  description: Model names C(/v1/models) lists.
  returned: when the endpoint answered
  type: list
  elements: str
  sample: [qwen2-tiny]
health:
  description: The wait for C(/health) (C(status) of the last answer, C(waited_s)).
  returned: always
  type: dict
  sample: {"status": 200, "waited_s": 0.01, "attempts": 1}
requests:
  description:
    - One entry per request, in the order sent - C(index), C(endpoint), C(prompt) (first 200 characters), C(status),
      C(model), C(text), C(finish_reason), C(ttft_s), C(latency_s), C(prompt_tokens), C(completion_tokens),
      C(output_tokens_per_s), C(time_per_output_token_s), C(ok), C(problems) (plain sentences), C(error).
  returned: when requests were sent
  type: list
  elements: dict
  sample: [{"index": 0, "endpoint": "completions", "status": 200, "model": "qwen2-tiny", "text": "s ansfersves lazy",
            "finish_reason": "length", "ttft_s": 0.051, "latency_s": 0.402, "prompt_tokens": 4,
            "completion_tokens": 16, "output_tokens_per_s": 39.8, "ok": true, "problems": []}]
summary:
  description:
    - Statistics over the successful requests - C(ttft_s), C(latency_s), C(output_tokens_per_s) (each C(p50),
      C(min), C(max), C(mean), C(n)), C(aggregate_output_tokens_per_s), token totals, C(wall_s), C(concurrency),
      C(requests), C(succeeded), C(failed).
  returned: when requests were sent
  type: dict
  sample: {"requests": 4, "succeeded": 4, "failed": 0, "concurrency": 2, "wall_s": 1.2, "output_tokens": 128,
           "ttft_s": {"p50": 0.05, "max": 0.09, "min": 0.04, "mean": 0.06, "n": 4},
           "aggregate_output_tokens_per_s": 106.7}
engine:
  description:
    - What the engine says about itself. C(source) (C(engine_log), C(unit) or null), C(version), C(platform) (C(cpu),
      C(gpu)), C(model), C(config) (max_model_len, tensor_parallel_size, dtype, kv_cache_dtype...), C(figures)
      (each with C(value), C(unit), C(reported), C(resolution), C(line), C(line_number)), C(first_error),
      C(exception), C(started), C(process_memory) (with O(unit), the process tree read after the trial - C(pid),
      C(processes), C(rss_bytes), C(peak_rss_bytes)), C(memory_breakdown) (the engine's own budget line on GPUs, in
      bytes - C(torch_total_bytes), C(activation_bytes), C(non_torch_bytes) or C(consumed_bytes), C(cuda_graph_bytes);
      empty when the log has none), C(metrics) (C(figures) and C(histograms) from C(/metrics)).
  returned: always
  type: dict
  sample: {"source": "engine_log", "version": "0.32.0", "platform": "cpu",
           "figures": {"kv_cache_tokens": {"value": 262144, "unit": "tokens", "reported": "262,144",
                                           "line": "(EngineCore pid=9) INFO ... CPU KV cache size: 262,144 tokens"}}}
comparison:
  description:
    - One row per figure (weights, KV-cache tokens, maximum concurrency, and the engine's host RAM when it was
      planned or measured) - C(figure), C(label), C(unit), C(estimated), C(measured), C(ratio) (measured/estimated), C(verdict) (C(as expected), C(differs),
      C(not measured), C(not estimated)), C(summary) (plain words), C(measured_from) (the engine's line),
      C(estimated_from), C(tolerance).
  returned: always
  type: list
  elements: dict
  sample: [{"figure": "kv_cache_tokens", "estimated": 262144, "measured": 262144, "ratio": 1.0,
            "verdict": "as expected",
            "summary": "the engine's KV-cache tokens figure is within 15% of the plan (1.00x)"}]
passed:
  description: Every request passed its checks and no comparison row is C(differs).
  returned: always
  type: bool
  sample: true
estimates_as_expected:
  description: No comparison row is C(differs).
  returned: always
  type: bool
  sample: true
"""

import errno
import json
import socket
import threading
import time
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.urls import open_url
from ansible_collections.llmops.deploy.plugins.module_utils import engine_log, host_resources, trial

_PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            model=dict(type="str", required=True),
            api_key=dict(type="str", no_log=True),
            prompts=dict(type="list", elements="raw", default=[
                "Write one sentence about private deployments of language models.", "Count from one to five."]),
            endpoints=dict(type="list", elements="str", choices=["completions", "chat"],
                           default=["completions", "chat"]),
            max_tokens=dict(type="int", default=32, no_log=False),
            repeat=dict(type="int", default=1),
            concurrency=dict(type="int", default=1),
            timeout=dict(type="int", default=120),
            health_timeout=dict(type="int", default=300),
            engine_log=dict(type="str"),
            unit=dict(type="str"),
            metrics=dict(type="bool", default=True),
            expected=dict(type="dict", default={}),
            tolerance=dict(type="float", default=trial.DEFAULT_TOLERANCE),
            fail_on_differs=dict(type="bool", default=False),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            use_proxy=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )


class Failure(Exception):
    """A plain-worded reason to stop."""


def _reason(exc):
    """The innermost reason of a urllib/socket error, in words."""
    reason = getattr(exc, "reason", exc)
    if getattr(reason, "errno", None) == errno.ECONNREFUSED or "Connection refused" in to_native(reason):
        return "connection refused"
    if isinstance(reason, socket.timeout) or "timed out" in to_native(reason):
        return "timed out"
    return to_native(reason)


class Trial(object):
    """One run of the module. Every failure goes through ``fail``; nothing raises out of ``run``."""

    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.result = {"changed": False, "url": None, "model": self.p["model"], "health": {},
                       "engine": {"source": None}, "comparison": [], "passed": False,
                       "estimates_as_expected": False}
        self.lock = threading.Lock()

    # -- helpers -----------------------------------------------------------------------------------------------------
    def scrub(self, text):
        key = self.p.get("api_key")
        if key and isinstance(text, str):
            text = text.replace(key, "********")
        return text

    def fail(self, msg):
        self.module.fail_json(msg=self.scrub(msg), **self.result)

    def headers(self, json_body=False):
        headers = {"Accept": "application/json"}
        if json_body:
            headers["Content-Type"] = "application/json"
        if self.p.get("api_key"):
            headers["Authorization"] = "Bearer %s" % self.p["api_key"]
        return headers

    def open(self, path, body=None, timeout=None, auth=True):
        data = json.dumps(body).encode("utf-8") if body is not None else None
        headers = self.headers(json_body=body is not None) if auth else {"Accept": "*/*"}
        return open_url(self.base + path, data=data, headers=headers, method="POST" if data else "GET",
                        timeout=timeout or self.p["timeout"], validate_certs=self.p["validate_certs"],
                        ca_path=self.p["ca_path"], use_proxy=self.p["use_proxy"], follow_redirects="safe")

    def engine_hint(self):
        engine = self.result["engine"]
        exc, err = engine.get("exception"), engine.get("first_error")
        said = []
        if err:
            said.append("%s (line %d)" % (err["message"], err["line_number"]))
        if exc and (not err or exc["line_number"] != err["line_number"]):
            said.append("%s: %s (line %d)" % (exc["type"], exc["message"], exc["line_number"]))
        return " The engine's log says: %s." % "; then ".join(said) if said else ""

    # -- steps -------------------------------------------------------------------------------------------------------
    def validate(self):
        p = self.p
        url = (p["url"] or "").strip().rstrip("/")
        if url.endswith("/v1"):
            url = url[:-3]
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.fail("url must be an http:// or https:// base URL such as http://127.0.0.1:8000; got %r" % p["url"])
        if parts.username or parts.password:
            self.fail("url must not hold credentials; give the key in api_key")
        self.base = url
        self.result["url"] = url
        for name, low in (("max_tokens", 1), ("repeat", 1), ("concurrency", 1), ("timeout", 1),
                          ("health_timeout", 0)):
            if p[name] < low:
                self.fail("%s must be at least %d, got %d" % (name, low, p[name]))
        if not p["endpoints"]:
            self.fail("endpoints must name at least one of: completions, chat")
        if not p["model"].strip():
            self.fail("model must be the served model name (vLLM's --served-model-name)")
        problem = None
        try:
            trial.check_prompts(p["prompts"])
            self.tolerance = trial.check_tolerance(p["tolerance"])
            trial.compare(p["expected"], {}, self.tolerance)
        except trial.TrialError as exc:
            problem = to_native(exc)
        if problem:
            self.fail(problem)
        unknown = sorted(set(p["expected"]) - {"weights_bytes", "kv_cache_tokens", "max_concurrency",
                                               "context_length", "host_memory_bytes"})
        if unknown:
            self.fail("expected has unknown key(s) %s; accepted: weights_bytes, kv_cache_tokens, max_concurrency, "
                      "context_length" % ", ".join(unknown))

    def read_engine_log(self):
        p = self.p
        text, source = None, None
        if p["engine_log"] is not None:
            text, source = p["engine_log"], "engine_log"
        elif p["unit"]:
            journalctl = self.module.get_bin_path("journalctl", required=False)
            if not journalctl:
                self.fail("unit=%s needs journalctl on the host, which was not found; give engine_log instead"
                          % p["unit"])
            rc, out, err = self.module.run_command([journalctl, "-u", p["unit"], "-b", "-o", "cat", "--no-pager"],
                                                   environ_update={"LC_ALL": "C"})
            if rc != 0:
                self.fail("journalctl -u %s failed (rc=%d): %s" % (p["unit"], rc, (err or out).strip()[:500]))
            text, source = out, "unit"
        if text is None:
            return
        parsed = engine_log.parse_engine_log(text)
        parsed["source"] = source
        if source == "unit":
            parsed["unit"] = p["unit"]
        self.result["engine"] = parsed

    def wait_health(self):
        deadline = time.monotonic() + self.p["health_timeout"]
        started = time.monotonic()
        attempts, status, why = 0, None, None
        while True:
            attempts += 1
            try:
                response = self.open("/health", timeout=min(self.p["timeout"], 10), auth=True)
                status = response.getcode()
                response.read()
                if status == 200:
                    break
                why = "HTTP %s" % status
            except HTTPError as exc:
                status, why = exc.code, "HTTP %s" % exc.code
                if exc.code == 401:
                    break  # some proxies guard /health too: the models request says which key problem it is
            except (URLError, socket.error, socket.timeout) as exc:
                status, why = None, _reason(exc)
            except Exception as exc:  # ansible's ConnectionError/SSLValidationError and friends
                status, why = None, to_native(exc)
            if time.monotonic() + 2 > deadline:
                break
            time.sleep(2)
        waited = round(time.monotonic() - started, 3)
        self.result["health"] = {"status": status, "waited_s": waited, "attempts": attempts}
        if status in (200, 401):
            return
        if why == "connection refused":
            self.fail("the endpoint is down: nothing answers at %s (connection refused)%s.%s" % (
                self.base, " for %d s" % self.p["health_timeout"] if self.p["health_timeout"] else "",
                self.engine_hint()))
        self.fail("%s/health was never reached within health_timeout=%d s (last answer: %s, %d attempt(s)).%s" % (
            self.base, self.p["health_timeout"], why, attempts, self.engine_hint()))

    def served_models(self):
        problem = None  # failing outside the except blocks keeps tracebacks out of the result
        try:
            response = self.open("/v1/models")
            listing = json.loads(response.read().decode("utf-8"))
        except HTTPError as exc:
            if exc.code == 401 and self.p.get("api_key"):
                problem = "the endpoint refused the API key (401 Unauthorized): api_key is wrong for %s" % self.base
            elif exc.code == 401:
                problem = "the endpoint requires an API key (401 Unauthorized) and none was given: set api_key"
            else:
                problem = "GET %s/v1/models answered HTTP %d" % (self.base, exc.code)
        except ValueError:
            problem = "GET %s/v1/models did not answer JSON (is this an OpenAI-compatible endpoint?)" % self.base
        except Exception as exc:
            problem = "GET %s/v1/models failed: %s" % (self.base, _reason(exc))
        if problem:
            self.fail(problem)
        served = [m.get("id") for m in (listing.get("data") or []) if isinstance(m, dict)]
        self.result["served_models"] = served
        if self.p["model"] not in served:
            self.fail("model %r is not served at %s; it serves: %s" % (
                self.p["model"], self.base, ", ".join(served) or "nothing"))

    def one_request(self, index, endpoint, prompt):
        body = trial.request_body(prompt, endpoint, self.p["model"], self.p["max_tokens"])
        shown = prompt if isinstance(prompt, str) else json.dumps(prompt)
        result = {"index": index, "endpoint": endpoint, "prompt": shown[:200], "status": None, "error": None}
        started = time.monotonic()
        events = []
        try:
            response = self.open(_PATHS[endpoint], body=body)
            result["status"] = response.getcode()
            for raw in response:
                event = trial.parse_sse_line(raw)
                if event is None:
                    continue
                if event[0] == "done":
                    break
                if event[0] == "data":
                    events.append((time.monotonic() - started, event[1]))
                if time.monotonic() - started > self.p["timeout"]:
                    raise socket.timeout("timed out")
        except HTTPError as exc:
            result["status"] = exc.code
            try:
                detail = json.loads(exc.read().decode("utf-8")).get("error")
                detail = detail.get("message") if isinstance(detail, dict) else detail
            except Exception:
                detail = None
            result["error"] = "HTTP %d%s" % (exc.code, ": %s" % detail if detail else "")
        except Exception as exc:
            reason = _reason(exc)
            result["error"] = ("timed out after %d s (timeout)" % self.p["timeout"]) if reason == "timed out" \
                else reason
        result["latency_s"] = round(time.monotonic() - started, 4)
        got = trial.accumulate(events, endpoint)
        result.update(text=got["text"], finish_reason=got["finish_reason"], model=got["model"],
                      usage=got["usage"], chunks=got["chunks"],
                      ttft_s=round(got["ttft_s"], 4) if got["ttft_s"] is not None else None)
        trial.judge_request(result, self.p["model"], self.p["max_tokens"])
        if result["error"]:
            result["problems"].insert(0, result["error"])
            result["ok"] = False
        del result["usage"]
        return result

    def run_requests(self):
        jobs = []
        for _round in range(self.p["repeat"]):
            for prompt in self.p["prompts"]:
                for endpoint in self.p["endpoints"]:
                    jobs.append((len(jobs), endpoint, prompt))
        results = [None] * len(jobs)
        queue = list(jobs)

        def worker():
            while True:
                with self.lock:
                    if not queue:
                        return
                    job = queue.pop(0)
                results[job[0]] = self.one_request(*job)

        started = time.monotonic()
        threads = [threading.Thread(target=worker) for _i in range(min(self.p["concurrency"], len(jobs)))]
        for thread in threads:
            thread.daemon = True
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
        self.result["requests"] = results
        self.result["summary"] = trial.summarize(results, wall, self.p["concurrency"])
        return results

    def read_metrics(self):
        if not self.p["metrics"]:
            return None
        try:
            text = self.open("/metrics").read().decode("utf-8", "replace")
        except Exception as exc:
            self.module.warn("could not read %s/metrics: %s" % (self.base, self.scrub(_reason(exc))))
            return None
        parsed = engine_log.parse_metrics(text)
        self.result["engine"]["metrics"] = parsed
        return parsed

    def read_process_memory(self):
        """The unit's process tree after the trial -> a figure (sum of peak RSS), or None without a unit."""
        unit = self.p["unit"]
        if not unit:
            return None
        systemctl = self.module.get_bin_path("systemctl", required=False)
        if not systemctl:
            return None
        rc, out, _err = self.module.run_command([systemctl, "show", "--property", "MainPID", "--value", unit],
                                                environ_update={"LC_ALL": "C"})
        pid = out.strip()
        if rc != 0 or not pid.isdigit() or int(pid) == 0:
            self.module.warn("could not read the process tree of %s (MainPID %r): host RAM not measured" % (unit, pid))
            return None
        try:
            tree = host_resources.process_tree_memory(int(pid))
        except (OSError, ValueError) as exc:
            self.module.warn("could not read the process tree of %s: %s" % (unit, to_native(exc)))
            return None
        self.result["engine"]["process_memory"] = tree
        line = "%s: MainPID %d and %d descendant(s) (%s), peak RSS %.2f GiB, RSS now %.2f GiB" % (
            unit, tree["pid"], len(tree["processes"]) - 1, ", ".join(sorted(set(p["name"] for p in tree["processes"]))),
            tree["peak_rss_bytes"] / float(trial.GIB), tree["rss_bytes"] / float(trial.GIB))
        return {"value": tree["peak_rss_bytes"], "unit": "bytes", "reported": "%.2f GiB" % (
            tree["peak_rss_bytes"] / float(trial.GIB)), "resolution": 0, "line": line, "line_number": None}

    def run(self):
        self.validate()
        self.read_engine_log()
        self.wait_health()
        self.served_models()
        results = self.run_requests()
        metrics = self.read_metrics()
        figures = trial.merge_figures(self.result["engine"].get("figures"), (metrics or {}).get("figures"))
        memory = self.read_process_memory()
        if memory:
            figures["host_memory_bytes"] = memory
        rows = trial.compare(self.p["expected"], figures, self.tolerance)
        self.result["comparison"] = rows
        as_expected = not any(r["verdict"] == "differs" for r in rows)
        self.result["estimates_as_expected"] = as_expected
        failed = [r for r in results if not r["ok"]]
        self.result["passed"] = not failed and as_expected
        if failed:
            first = failed[0]
            timeouts = [r for r in failed if r.get("error") and "(timeout)" in r["error"]]
            what = "timed out (timeout=%d s)" % self.p["timeout"] if len(timeouts) == len(failed) else "failed"
            self.fail("%d of %d trial request(s) %s; first: request %d (%s): %s.%s" % (
                len(failed), len(results), what, first["index"], first["endpoint"], "; ".join(first["problems"]),
                self.engine_hint() if any((r.get("status") or 0) >= 500 for r in failed) else ""))
        differs = [r for r in rows if r["verdict"] == "differs"]
        for row in differs:
            self.module.warn("estimate vs engine: %s" % row["summary"])
        if differs and self.p["fail_on_differs"]:
            self.fail("the engine's figures differ from the plan: %s" % "; ".join(r["summary"] for r in differs))
        self.module.exit_json(**self.result)


def main():
    module = build_module()
    Trial(module).run()


if __name__ == "__main__":
    main()
