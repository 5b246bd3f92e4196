"""Download figures of llmops.deploy.modelscope_download against the local hub (issue 3). Prints a table.

1. Throughput: the module (real SDK underneath, plus our own size/sha256 check and marker) downloading a generated
   1 GiB model, against `curl` fetching the same bytes from the same hub in the same run; the ratio.
2. Rerun (valid marker, no re-hash): time over the 1 GiB model against a 10 MB model; they should be about equal.
3. Full verify (`verify: full`, every byte re-hashed): throughput.

Usage: .venv/bin/python benchmarks/download_bench.py [--size 1GiB] [--small 10MB] [--workdir DIR]
Run from the repository root after scripts/setup.sh. Timings are wall-clock on this machine; nothing is asserted.
"""
import argparse
import json
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


def run_module(endpoint, model_id, model_dir, workdir, **extra):
    args = {"model_id": model_id, "model_dir": model_dir, "endpoint": endpoint, "sdk_python": PYTHON,
            "state_dir": os.path.join(workdir, "state")}
    args.update(extra)
    env = dict(os.environ, ANSIBLE_HOME=os.path.join(workdir, "ansible-home"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1")
    cmd = [ANSIBLE, "localhost", "-m", "llmops.deploy.modelscope_download", "-a", json.dumps(args),
           "-e", "ansible_python_interpreter=%s" % PYTHON]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit("module run failed:\n%s\n%s" % (proc.stdout[-3000:], proc.stderr[-3000:]))
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return elapsed, result


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
    parser.add_argument("--workdir", default=None)
    opts = parser.parse_args()
    workdir = opts.workdir or tempfile.mkdtemp(prefix="llmops-bench-")
    store = os.path.join(REPO, ".work", "bench-hub-store")
    hub = LocalHub(store, models=["bench:%s" % opts.size, "bench:%s" % opts.small]).start()
    try:
        big, small = hub.model_ids
        gib = 2 ** 30
        rows = []
        curl_dir = os.path.join(workdir, "curl")
        os.makedirs(curl_dir, exist_ok=True)
        curl_s, size = curl_all(hub.endpoint, hub, big, curl_dir)
        shutil.rmtree(curl_dir)
        rows.append(("curl, same bytes (%s)" % big, curl_s, size / gib / curl_s))
        big_dir = os.path.join(workdir, "models", big)
        mod_s, result = run_module(hub.endpoint, big, big_dir, workdir)
        rows.append(("module first download (SDK + own sha256 check + marker)", mod_s,
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
        print("module/curl throughput ratio: %.2f" % ((size / mod_s) / (size / curl_s)))
        print("rerun %s / rerun %s: %.2f" % (opts.size, opts.small, rerun_big / rerun_small))
        print("(%s = %d bytes; ansible start-up of about 1 s is inside every module figure)" % (
            opts.size, parse_size(opts.size)))
    finally:
        hub.stop()
        if not opts.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
