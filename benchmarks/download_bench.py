"""Download figures of llmops.deploy.modelscope_download against the local hub (issues 3 and 9). Prints a table.

1. Throughput: the module (real SDK underneath, plus our own size/sha256 check, hashed while the bytes arrive, and
   the marker) downloading a generated 1 GiB model into a fresh directory, against `curl` fetching the same bytes from
   the same hub, alternating curl and module ``--rounds`` times; the median of the per-round ratios (and each round).
2. Rerun (valid marker, no re-hash): time over the 1 GiB model against a 10 MB model; they should be about equal.
3. Full verify (`verify: full`, every byte re-hashed): throughput.

Usage: .venv/bin/python benchmarks/download_bench.py [--size 1GiB] [--small 10MB] [--rounds 5] [--workdir DIR]
Run from the repository root after scripts/setup.sh. Timings are wall-clock on this machine; nothing is asserted.
"""
import argparse
import json
import resource
import statistics
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tools.local_hub import LocalHub  # noqa: E402
from tools.local_hub.models import parse_size  # noqa: E402

ANSIBLE = os.path.join(REPO, ".venv", "bin", "ansible")
PYTHON = os.path.join(REPO, ".venv", "bin", "python")


def child_cpu():
    """CPU seconds (user + system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ansible_module(module, args, workdir):
    """Run ``llmops.deploy.<module>`` on localhost; ``(seconds, result)``."""
    env = dict(os.environ, ANSIBLE_HOME=os.path.join(workdir, "ansible-home"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1")
    cmd = [ANSIBLE, "localhost", "-m", "llmops.deploy." + module, "-a", json.dumps(args),
           "-e", "ansible_python_interpreter=%s" % PYTHON]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s\n%s" % (module, proc.stdout[-3000:], proc.stderr[-3000:]))
    return elapsed, json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def run_module(endpoint, model_id, model_dir, workdir, **extra):
    args = {"model_id": model_id, "model_dir": model_dir, "endpoint": endpoint, "sdk_python": PYTHON,
            "state_dir": os.path.join(workdir, "state")}
    args.update(extra)
    return ansible_module("modelscope_download", args, workdir)


def curl_all(endpoint, hub, model_id, target_dir):
    """curl every file of the model, one after another, as a plain HTTP client would."""
    snapshot = hub.snapshot(model_id, "master")
    total = 0
    start = time.monotonic()
    for path, entry in sorted(snapshot.files.items()):
        url = "%s/api/v1/models/%s/repo?Revision=master&FilePath=%s" % (endpoint, model_id, path)
        out = os.path.join(target_dir, path.replace("/", "_"))
        subprocess.run(["curl", "-sSf", "-o", out, url], check=True)
        total += entry.size
    return time.monotonic() - start, total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--small", default="10MB")
    parser.add_argument("--rounds", type=int, default=5, help="alternating curl/module rounds (median reported)")
    parser.add_argument("--workdir", default=None)
    opts = parser.parse_args()
    workdir = opts.workdir or tempfile.mkdtemp(prefix="llmops-bench-")
    store = os.path.join(REPO, ".work", "bench-hub-store")
    hub = LocalHub(store, models=["bench:%s" % opts.size, "bench:%s" % opts.small]).start()
    try:
        big, small = hub.model_ids
        gib = 2 ** 30
        rows = []
        ratios = []
        curl_times, module_times = [], []
        big_dir = os.path.join(workdir, "models", big)
        for index in range(opts.rounds):
            curl_dir = os.path.join(workdir, "curl")
            os.makedirs(curl_dir, exist_ok=True)
            cpu = child_cpu()
            curl_s, size = curl_all(hub.endpoint, hub, big, curl_dir)
            curl_cpu = child_cpu() - cpu
            shutil.rmtree(curl_dir)
            if os.path.exists(big_dir):
                shutil.rmtree(big_dir)
            cpu = child_cpu()
            mod_s, result = run_module(hub.endpoint, big, big_dir, workdir)
            mod_cpu = child_cpu() - cpu
            curl_times.append(curl_s)
            module_times.append(mod_s)
            ratios.append(curl_s / mod_s)
            print("round %d: curl %.2f s (%.2f CPU s), module %.2f s (%.2f CPU s; SDK %.2f s, hashing left after it "
                  "%.2f s; hashed while downloading: %d of %d files), ratio %.2f; load average %.1f" % (
                      index + 1, curl_s, curl_cpu, mod_s, mod_cpu, result["sdk"]["seconds"],
                      result.get("verify_seconds", 0), result.get("hashed_while_downloading", 0),
                      result["files_fetched"], curl_s / mod_s, os.getloadavg()[0]), flush=True)
        curl_s, mod_s = statistics.median(curl_times), statistics.median(module_times)
        rows.append(("curl, same bytes (%s), median of %d" % (big, opts.rounds), curl_s, size / gib / curl_s))
        rows.append(("module first download (SDK + own sha256 check + marker), median of %d" % opts.rounds, mod_s,
                     result["bytes_total"] / gib / mod_s))
        rerun_big, result = run_module(hub.endpoint, big, big_dir, workdir)
        assert not result["changed"] and result["bytes_fetched"] == 0
        rows.append(("module rerun, %s (marker: size + mtime)" % opts.size, rerun_big, None))
        small_dir = os.path.join(workdir, "models", small)
        run_module(hub.endpoint, small, small_dir, workdir)
        rerun_small, result = run_module(hub.endpoint, small, small_dir, workdir)
        rows.append(("module rerun, %s" % opts.small, rerun_small, None))
        full_s, result = run_module(hub.endpoint, big, big_dir, workdir, verify="full")
        rows.append(("module rerun with verify=full, %s" % opts.size, full_s, result["bytes_total"] / gib / full_s))
        print("| Case | Seconds | GiB/s |")
        print("|---|---|---|")
        for name, seconds, rate in rows:
            print("| %s | %.2f | %s |" % (name, seconds, "-" if rate is None else "%.2f" % rate))
        print()
        print("module/curl throughput ratio, median of %d alternating rounds: %.2f (rounds: %s)" % (
            opts.rounds, statistics.median(ratios), ", ".join("%.2f" % r for r in ratios)))
        print("rerun %s / rerun %s: %.2f" % (opts.size, opts.small, rerun_big / rerun_small))
        print("(%s = %d bytes; ansible start-up of about 1 s is inside every module figure)" % (
            opts.size, parse_size(opts.size)))
    finally:
        hub.stop()
        if not opts.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
