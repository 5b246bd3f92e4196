"""Peer fan-out figures (issue 9, section 3): hub egress and wall time for 1, 2, 4 (6...) hosts, the role
llmops.deploy.model_download with ``model_download_source: peer`` (one hub download, then host to host over rsync+ssh)
against ``model_download_source: hub`` (every host downloads on its own). Prints a table.

The hosts are real Debian hosts reached over real SSH (tests/fanout_hosts.py: overlay roots, each with its own sshd
on its own loopback address); the hub is tools/local_hub on 127.0.0.1, whose request log gives the egress (body bytes
of file requests). For each host count and mode: the model directories of the hosts are removed, the hub's log
cleared, then ``ansible-playbook --limit`` the first N hosts is timed (wall clock, the whole play: controller start-up,
manifest, keys, rounds, verification, model check). All hosts share this machine's disk, CPU and loopback, so the
wall times say what the orchestration costs, not what a real network would give; the egress is exact.

Usage (root): .venv/bin/python benchmarks/fanout_bench.py [--hosts 1,2,4,6] [--model bench:64MiB] [--rounds 1]
Run from the repository root after scripts/setup.sh. Nothing is asserted.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

from fanout_hosts import FanoutHosts  # noqa: E402
from tools.local_hub import LocalHub  # noqa: E402
from tools.local_hub.models import resolve_models  # noqa: E402

PLAYBOOK = os.path.join(REPO, ".venv", "bin", "ansible-playbook")
PLAY = """
- name: Put one model on the hosts
  hosts: fleet
  gather_facts: false
  roles:
    - role: llmops.deploy.model_download
      vars:
        model_download_source: "{{ bench_source }}"
        model_download_model_id: "{{ bench_model }}"
        model_download_endpoint: "{{ bench_endpoint }}"
        model_download_verify_model: false
"""


def run_play(hosts, playbook, model_id, endpoint, source, count, workdir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(PATH=os.path.dirname(PLAYBOOK) + os.pathsep + env.get("PATH", ""), ANSIBLE_NOCOLOR="1",
               ANSIBLE_HOME=os.path.join(workdir, "ansible-home"), NO_PROXY="127.0.0.1,localhost",
               no_proxy="127.0.0.1,localhost")
    argv = [PLAYBOOK, "-i", hosts.inventory_path, playbook, "--limit", ",".join(hosts.names[:count]),
            "-e", json.dumps({"bench_source": source, "bench_model": model_id, "bench_endpoint": endpoint})]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit("%s with %d host(s) failed:\n%s\n%s" % (source, count, proc.stdout[-4000:],
                                                                 proc.stderr[-2000:]))
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", default="1,2,4", help="host counts, comma-separated (default 1,2,4)")
    parser.add_argument("--model", default="bench:64MiB",
                        help="a local hub model id or bench:SIZE (default bench:64MiB)")
    parser.add_argument("--rounds", type=int, default=1, help="runs per cell; the median is printed")
    parser.add_argument("--workdir", help="working directory (default: a temporary one)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("fanout_bench.py needs root (overlay mounts, chroot, namespaces, sshd)")
    counts = sorted(set(int(x) for x in args.hosts.split(",")))
    workdir = args.workdir or tempfile.mkdtemp(prefix="fanout-bench-")
    spec = resolve_models([args.model])[0]
    playbook = os.path.join(workdir, "play.yml")
    with open(playbook, "w") as handle:
        handle.write(PLAY)
    hub = LocalHub(os.path.join(workdir, "store"), models=[spec]).start()
    rows = []
    try:
        model_bytes = sum(f.size for f in hub.snapshot(spec.model_id).files.values())
        with FanoutHosts(max(counts), os.path.join(workdir, "hosts"), prefix="bench") as hosts:
            for count in counts:
                for source in ("hub", "peer"):
                    times, egress = [], []
                    for _round in range(args.rounds):
                        for name in hosts.names:
                            subprocess.run(["rm", "-rf", os.path.join(hosts.root(name), "opt/llmops/models")],
                                           check=True)
                        hub.clear_requests()
                        times.append(run_play(hosts, playbook, spec.model_id, hub.endpoint, source, count,
                                              workdir))
                        egress.append(sum(r["bytes_sent"] for r in hub.requests(kind="file")))
                    rows.append((count, source, statistics.median(egress), statistics.median(times)))
                    print("# %d host(s), %s: %.1f s, egress %.2f x the model" % (
                        count, source, rows[-1][3], rows[-1][2] / model_bytes), flush=True)
    finally:
        hub.stop()
    load = os.getloadavg()
    print()
    print("Model %s, %d bytes; %d run(s) per cell (median); load average at the end %.1f %.1f %.1f" % (
        spec.model_id, model_bytes, args.rounds, load[0], load[1], load[2]))
    print()
    print("| hosts | mode | hub egress (bytes) | egress / model | wall (s) |")
    print("|---|---|---|---|---|")
    for count, source, egress, seconds in rows:
        mode = "fan-out (peer)" if source == "peer" else "independent (hub)"
        print("| %d | %s | %d | %.2f x | %.1f |" % (count, mode, egress, egress / model_bytes, seconds))


if __name__ == "__main__":
    main()
