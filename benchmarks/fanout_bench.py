"""Peer fan-out figures (issue 9, section 3): hub egress and wall time for 1, 2, 4 (6...) hosts, the role
llmops.deploy.model_download with ``model_download_source: peer`` (one hub download, then host to host over rsync+ssh)
against ``model_download_source: hub`` (every host downloads on its own). Prints a table.

The hosts are real Debian hosts reached over real SSH (tests/fanout_hosts.py: overlay roots, each with its own sshd
on its own loopback address); the hub is tools/local_hub on 127.0.0.1, whose request log gives the egress (body bytes
of file requests). For each host count and mode: the model directories of the hosts are removed, the hub's log
cleared, then ``ansible-playbook --limit`` the first N hosts is timed (wall clock, the whole play: controller start-up,
manifest, keys, rounds, verification, model check). All hosts share this machine's disk, CPU and loopback, so the
wall times say what the orchestration costs, not what a real network would give; the egress is exact.

``--link-rate SIZE`` (e.g. ``25MB``, 200 Mbit/s) sends every file body the hub serves through one shared link of that
many bytes per second (tools/local_hub's ``link_rate``), as a site's internet link or a remote mirror does: hosts that
download on their own then share it, while a fan-out crosses it once and copies host to host over the fleet's own
network (here the loopback, shared with everything else on this machine's two cores).

Usage (root): .venv/bin/python benchmarks/fanout_bench.py [--hosts 1,2,4,6] [--model bench:64MiB] [--rounds 1]
       [--link-rate SIZE]
Run from the repository root after scripts/setup.sh. Nothing is asserted.

``--peer-vs-rsync`` (issue 9, section 5) instead compares ONE peer receive with a plain rsync of the same files between
the same two hosts: host 1 gets the model from the hub (the role), then each round runs, on host 2 in one play and in
alternating order, the module ``llmops.deploy.model_fanout`` (``state=receive`` from host 1: rsync over ssh through
host 1's ``rrsync -ro`` forced command, size and sha256 of every file checked, files moved in, marker written) and
``rsync -rt --files-from`` of the same files from host 1 over ssh (no verification at all). Host 2's copies are removed
before each round and an untimed ``sync`` runs before each copy, so neither pays for writing back what the other left
in the page cache; an untimed ``state=probe`` (as the role runs before a receive) and the ``sync`` build both
modules' AnsiballZ payloads before the timed tasks (Ansible builds a module's payload once per run, on the controller:
about 0.6 s for model_fanout against 0.25 s for command here), so neither timed task pays for it. Each is timed as
an Ansible task (the callback's task start and end: both carry the same task overhead); printed: the medians, the
median of the per-round ratios ("peer transfer = X x plain rsync": plain time / peer time, so 1.0 is as fast as rsync
and more is better). ``--shards N`` splits the bench model's weights into N files. ``--bwlimit RATE`` hands
``--bwlimit=RATE`` to both rsyncs (RATE as rsync takes it, e.g. ``64m``): a link slower than the CPUs, as between real
hosts, instead of this machine's loopback where ssh's ciphers and sha256 share the same cores.
``--phases quiet,loaded``: phase ``loaded`` runs the same rounds beside ``--load`` busy loops (download_bench.py's
``BusyLoops``: ``while True: pass`` processes, default 2 per core, children of this script).

``--ssh-cipher NAME`` writes ``Ciphers NAME`` into host 2's ``/root/.ssh/config``, which both rsyncs' ssh read (the
module passes no ``-F``, so a host's ssh_config applies to its receives): e.g. ``aes128-gcm@openssh.com`` on CPUs with
AES instructions, against OpenSSH's default ``chacha20-poly1305@openssh.com``.

``--breakdown`` adds, in each phase, where the receive's time goes, without Ansible: on host 2 (``chroot``, this
script's child, so its CPU time is measured: user + system of everything on the receiving side), alternating,
(a) the plain rsync, (b) the module's own rsync command line alone (same options, key, known_hosts, ``rrsync`` on the
peer; no hashing, no module) and (c) the module process as Ansible runs it (the AnsiballZ file of a receive, kept with
``ANSIBLE_KEEP_REMOTE_FILES``: start-up, checks, transfer with hashing on arrival, verification, move, marker).
(c) - (b) is what the verification costs; (b) - (a) what the module's rsync options cost.

Usage (root): .venv/bin/python benchmarks/fanout_bench.py --peer-vs-rsync [--model bench:512MiB] [--shards 6]
    [--rounds 6] [--bwlimit 64m] [--phases quiet,loaded] [--load N] [--breakdown] [--ssh-cipher NAME]
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import resource
import shlex
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

sys.path.insert(0, os.path.join(REPO, ".collections"))

from download_bench import BusyLoops  # noqa: E402  (this directory is first on the path)
from fanout_hosts import FanoutHosts  # noqa: E402
from tools.local_hub import LocalHub  # noqa: E402
from tools.local_hub.models import bench_model, parse_size, resolve_models  # noqa: E402
from ansible_collections.llmops.deploy.plugins.module_utils.peer_transfer import (  # noqa: E402
    authorized_line, fanout_manifest, rsync_argv)

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


PAIR_PLAY = """
- name: One peer receive against a plain rsync of the same files
  hosts: "{{ bench_receiver }}"
  gather_facts: false
  tasks:
    - name: Remove the copies of the previous round
      ansible.builtin.file:
        path: "{{ item }}"
        state: absent
      loop: "{{ bench_clean }}"
    - name: Probe the model directory (untimed, as the role probes before it receives)
      llmops.deploy.model_fanout:
        state: probe
        path: "{{ bench_model_dir }}"
        manifest: "{{ bench_manifest }}"
    - name: Copy in the order of this round
      ansible.builtin.include_tasks: "{{ bench_dir }}/pair-{{ item }}.yml"
      loop: "{{ bench_order }}"
"""
SYNC = """
- name: Write back what the previous copy left in the page cache (untimed)
  ansible.builtin.command:
    argv: [sync]
  changed_when: false
"""
PAIR_PEER = SYNC + """
- name: Timed peer receive
  llmops.deploy.model_fanout:
    state: receive
    path: "{{ bench_model_dir }}"
    manifest: "{{ bench_manifest }}"
    sources: "{{ bench_sources }}"
    ssh_key: "{{ bench_peer_key }}"
    known_hosts: "{{ bench_known_hosts }}"
    rsync_opts: "{{ bench_rsync_opts }}"
"""
PAIR_PLAIN = SYNC + """
- name: Timed plain rsync
  ansible.builtin.command:
    argv: "{{ bench_plain_argv }}"
  changed_when: true
"""


def _env(workdir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(PATH=os.path.dirname(PLAYBOOK) + os.pathsep + env.get("PATH", ""), ANSIBLE_NOCOLOR="1",
               ANSIBLE_HOME=os.path.join(workdir, "ansible-home"), NO_PROXY="127.0.0.1,localhost",
               no_proxy="127.0.0.1,localhost")
    return env


def run_play(hosts, playbook, model_id, endpoint, source, count, workdir):
    env = _env(workdir)
    argv = [PLAYBOOK, "-i", hosts.inventory_path, playbook, "--limit", ",".join(hosts.names[:count]),
            "-e", json.dumps({"bench_source": source, "bench_model": model_id, "bench_endpoint": endpoint})]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit("%s with %d host(s) failed:\n%s\n%s" % (source, count, proc.stdout[-4000:],
                                                                 proc.stderr[-2000:]))
    return elapsed


def _task_seconds(doc, name):
    """Seconds of the task ``name`` in the ``ansible.posix.json`` callback's output (its start and end)."""
    for play in doc["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == name:
                duration = task["task"]["duration"]
                start, end = (datetime.datetime.fromisoformat(duration[k].replace("Z", "+00:00"))
                              for k in ("start", "end"))
                return (end - start).total_seconds()
    raise SystemExit("task %r not found in the play's output" % name)


def _keygen(path, comment):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path], check=True)
    with open(path + ".pub") as handle:
        return handle.read().strip()


def pair_setup(hosts, hub, spec, workdir, bwlimit=None, cipher=None):
    """Host 1 seeded from the hub; host 2's keys (one authorised as the role authorises a receiver, one plain key
    for the plain rsync) and known_hosts; what the rounds need."""
    source, receiver = hosts.names[:2]
    run_play(hosts, os.path.join(workdir, "play.yml"), spec.model_id, hub.endpoint, "hub", 1, workdir)
    model_dir = "/opt/llmops/models/" + spec.model_id
    with open(os.path.join(hosts.root(source), model_dir.lstrip("/"), ".llmops-complete.json")) as handle:
        marker = json.load(handle)
    manifest = fanout_manifest(marker["model_id"], marker["revision_requested"], marker["revision"],
                               marker["endpoint"], marker.get("include"), marker.get("exclude"), marker["files"])
    ssh_dir = os.path.join(hosts.root(receiver), "root", ".ssh")
    peer_pub = _keygen(os.path.join(ssh_dir, "bench_peer"), "llmops-fanout@" + receiver)
    plain_pub = _keygen(os.path.join(ssh_dir, "bench_plain"), "bench-plain@" + receiver)
    with open(os.path.join(hosts.root(source), "root/.ssh/authorized_keys"), "a") as handle:
        handle.write(authorized_line("/usr/bin/rrsync", model_dir, peer_pub) + "\n" + plain_pub + "\n")
    with open(os.path.join(hosts.root(source), "etc/ssh/ssh_host_ed25519_key.pub")) as handle:
        known = "%s %s" % (hosts.address[source], " ".join(handle.read().split()[:2]))
    with open(os.path.join(ssh_dir, "bench_known_hosts"), "w") as handle:
        handle.write(known + "\n")
    if cipher:
        with open(os.path.join(ssh_dir, "config"), "w") as handle:
            handle.write("Host *\n    Ciphers %s\n" % cipher)
    with open(os.path.join(hosts.root(receiver), "root", "bench-files"), "wb") as handle:
        handle.write(b"".join(f["path"].encode() + b"\0" for f in marker["files"]))
    ssh = ("ssh -i /root/.ssh/bench_plain -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes "
           "-o UserKnownHostsFile=/root/.ssh/bench_known_hosts -o LogLevel=ERROR")
    limit = ["--bwlimit=" + bwlimit] if bwlimit else []
    plain_dir = "/opt/bench-plain"
    plain_argv = ["rsync", "-rt", "--files-from=/root/bench-files", "--from0"] + limit + [
        "-e", ssh, "root@%s:%s/" % (hosts.address[source], model_dir), plain_dir + "/"]
    for name, text in (("pair.yml", PAIR_PLAY), ("pair-peer.yml", PAIR_PEER), ("pair-plain.yml", PAIR_PLAIN)):
        with open(os.path.join(workdir, name), "w") as handle:
            handle.write(text)
    staging = os.path.join(os.path.dirname(model_dir), "." + os.path.basename(model_dir) + ".llmops-staging")
    return {"source": source, "receiver": receiver, "model_dir": model_dir, "manifest": manifest, "known": known,
            "limit": limit, "plain_dir": plain_dir, "plain_argv": plain_argv, "staging": staging,
            "files": len(marker["files"]),
            "sources": [{"name": source, "host": hosts.address[source], "port": 22, "user": "root"}]}


def pair_rounds(hosts, pair, rounds, workdir, label):
    """``rounds`` alternating rounds of the timed peer receive and plain rsync, as Ansible tasks on host 2."""
    receiver = pair["receiver"]
    times = {"peer": [], "plain": []}
    hashed = []
    for index in range(rounds):
        order = ["peer", "plain"] if index % 2 == 0 else ["plain", "peer"]
        variables = {"bench_receiver": receiver, "bench_dir": workdir, "bench_order": order,
                     "bench_clean": [pair["model_dir"], pair["staging"], pair["plain_dir"]],
                     "bench_model_dir": pair["model_dir"], "bench_manifest": pair["manifest"],
                     "bench_peer_key": "/root/.ssh/bench_peer", "bench_known_hosts": pair["known"],
                     "bench_plain_argv": pair["plain_argv"], "bench_rsync_opts": pair["limit"],
                     "bench_sources": pair["sources"]}
        env = dict(_env(workdir), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
        argv = [PLAYBOOK, "-i", hosts.inventory_path, os.path.join(workdir, "pair.yml"), "-e", json.dumps(variables)]
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit("round %d failed:\n%s\n%s" % (index + 1, proc.stdout[-4000:], proc.stderr[-2000:]))
        doc = json.loads(proc.stdout[proc.stdout.index("{"):])
        for kind, task in (("peer", "Timed peer receive"), ("plain", "Timed plain rsync")):
            times[kind].append(_task_seconds(doc, task))
        for play in doc["plays"]:
            for task in play["tasks"]:
                if task["task"]["name"] == "Timed peer receive":
                    result = task["hosts"][receiver]
                    hashed.append(sum(int(a.get("hashed_while_receiving", 0)) for a in result["attempts"]))
        print("# %s round %d (%s first): peer %.2f s, plain rsync %.2f s; load %.1f" % (
            label, index + 1, order[0], times["peer"][-1], times["plain"][-1], os.getloadavg()[0]), flush=True)
    return times, hashed


def _on_host(hosts, name, command):
    """Run ``command`` (a shell line) in host ``name`` (chroot, a child of this script): wall seconds and the CPU
    seconds (user + system) of everything it ran there."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(["chroot", hosts.root(name), "/bin/sh", "-c", command], capture_output=True, text=True,
                          check=False, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LC_ALL": "C"})
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit("%s failed on %s (rc %d): %s%s" % (
            command[:200], name, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def breakdown_setup(hosts, pair, workdir):
    """The three commands of ``--breakdown`` (see the module docstring), as shell lines run in host 2."""
    receiver = pair["receiver"]
    root = hosts.root(receiver)
    with open(os.path.join(root, "root", "bench_known_hosts_peer"), "w") as handle:
        handle.write(pair["known"] + "\n")
    argv = rsync_argv(pair["sources"][0], "/opt/bench-argv", "/root/bench-files", "/root/.ssh/bench_peer",
                      "/root/bench_known_hosts_peer", pair["limit"], rsync="rsync", ssh="ssh")
    # the AnsiballZ file of a real receive, kept on host 2 (that receive also warms the caches)
    args = {"state": "receive", "path": pair["model_dir"], "manifest": pair["manifest"],
            "sources": pair["sources"], "ssh_key": "/root/.ssh/bench_peer", "known_hosts": pair["known"],
            "rsync_opts": pair["limit"]}
    kept = os.path.join(root, "root", ".ansible", "tmp")
    before = set(os.listdir(kept)) if os.path.isdir(kept) else set()
    env = dict(_env(workdir), ANSIBLE_KEEP_REMOTE_FILES="1", ANSIBLE_PIPELINING="False")
    proc = subprocess.run([os.path.join(os.path.dirname(PLAYBOOK), "ansible"), "-i", hosts.inventory_path, receiver,
                           "-m", "llmops.deploy.model_fanout", "-a", json.dumps(args)], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    made = sorted(set(os.listdir(kept)) - before)
    if proc.returncode != 0 or len(made) != 1:
        raise SystemExit("could not keep the module's AnsiballZ file on %s:\n%s" % (receiver, proc.stdout[-3000:]))
    module = "/root/.ansible/tmp/%s/AnsiballZ_model_fanout.py" % made[0]
    clean = "rm -rf %s %s %s /opt/bench-argv" % (pair["model_dir"], pair["staging"], pair["plain_dir"])
    return clean, {"plain rsync -rt": " ".join(shlex.quote(a) for a in pair["plain_argv"]),
                   "module's rsync alone": "mkdir -p /opt/bench-argv && " + " ".join(shlex.quote(a) for a in argv),
                   "module process": "python3 " + module}


def breakdown_rounds(hosts, pair, commands, clean, rounds, label):
    kinds = list(commands)
    wall, cpu = dict((k, []) for k in kinds), dict((k, []) for k in kinds)
    for index in range(rounds):
        for kind in kinds if index % 2 == 0 else kinds[::-1]:
            _on_host(hosts, pair["receiver"], clean + " && sync")
            seconds, used = _on_host(hosts, pair["receiver"], commands[kind])
            wall[kind].append(seconds)
            cpu[kind].append(used)
        print("# %s breakdown round %d: %s; load %.1f" % (label, index + 1, ", ".join(
            "%s %.2f s (CPU %.2f s)" % (k, wall[k][-1], cpu[k][-1]) for k in kinds), os.getloadavg()[0]), flush=True)
    _on_host(hosts, pair["receiver"], clean)
    return wall, cpu


def print_pair(label, times, hashed, files, model_bytes):
    peer, plain = statistics.median(times["peer"]), statistics.median(times["plain"])
    ratios = [b / a for a, b in zip(times["peer"], times["plain"])]
    print()
    print("Phase %s: files hashed while they arrived, per round: %s (of %d)" % (label, hashed, files))
    print()
    print("| copy host 1 -> host 2 (%s) | median (s) | MiB/s | runs (s) |" % label)
    print("|---|---|---|---|")
    for name, kind, median in (("peer receive (model_fanout, verified)", "peer", peer),
                               ("plain rsync -rt (not verified)", "plain", plain)):
        runs = " ".join("%.2f" % t for t in times[kind])
        print("| %s | %.2f | %.0f | %s |" % (name, median, model_bytes / median / 2 ** 20, runs))
    print()
    print("%s: peer transfer = %.2f x plain rsync (median of the per-round ratios plain time / peer time; per round: "
          "%s; ratio of the medians %.2f)" % (
              label, statistics.median(ratios), " ".join("%.2f" % r for r in ratios), plain / peer))


def print_breakdown(label, wall, cpu, model_bytes):
    print()
    print("| %s, on host 2 without Ansible | median wall (s) | MiB/s | median CPU on host 2 (s) | runs (s) |" % label)
    print("|---|---|---|---|---|")
    for kind in wall:
        median = statistics.median(wall[kind])
        print("| %s | %.2f | %.0f | %.2f | %s |" % (kind, median, model_bytes / median / 2 ** 20,
                                                    statistics.median(cpu[kind]),
                                                    " ".join("%.2f" % t for t in wall[kind])))


def main_peer_vs_rsync(args):
    workdir = args.workdir or tempfile.mkdtemp(prefix="fanout-bench-")
    if args.model.startswith("bench:") and args.shards:
        size = parse_size(args.model.split(":", 1)[1])
        spec = bench_model(size, max_shard_bytes=-(-size // args.shards))
    else:
        spec = resolve_models([args.model])[0]
    with open(os.path.join(workdir, "play.yml"), "w") as handle:
        handle.write(PLAY)
    phases = [p for p in args.phases.split(",") if p]
    hub = LocalHub(os.path.join(workdir, "store"), models=[spec]).start()
    results = []
    try:
        files = hub.snapshot(spec.model_id).files
        model_bytes = sum(f.size for f in files.values())
        with FanoutHosts(2, os.path.join(workdir, "hosts"), prefix="bench") as hosts:
            pair = pair_setup(hosts, hub, spec, workdir, args.bwlimit, args.ssh_cipher)
            if args.breakdown:
                clean, commands = breakdown_setup(hosts, pair, workdir)
            for phase in phases:
                busy = BusyLoops(args.load if phase == "loaded" else 0)
                with busy:
                    times, hashed = pair_rounds(hosts, pair, args.rounds, workdir, phase)
                    parts = breakdown_rounds(hosts, pair, commands, clean, args.rounds, phase) \
                        if args.breakdown else None
                results.append((phase, times, hashed, parts))
    finally:
        hub.stop()
    load = os.getloadavg()
    print()
    print("Model %s: %d files, %d bytes; %d alternating round(s) per phase; rsync --bwlimit %s; ssh cipher %s; busy "
          "loops in phase loaded: %d; load average at the end %.1f %.1f %.1f" % (
              spec.model_id, len(files), model_bytes, args.rounds, args.bwlimit or "none",
              args.ssh_cipher or "OpenSSH's default", args.load, load[0], load[1], load[2]))
    for phase, times, hashed, parts in results:
        print_pair(phase, times, hashed, len(files), model_bytes)
        if parts:
            print_breakdown(phase, parts[0], parts[1], model_bytes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", default="1,2,4", help="host counts, comma-separated (default 1,2,4)")
    parser.add_argument("--model", default="bench:64MiB",
                        help="a local hub model id or bench:SIZE (default bench:64MiB)")
    parser.add_argument("--rounds", type=int, default=1, help="runs per cell; the median is printed")
    parser.add_argument("--workdir", help="working directory (default: a temporary one)")
    parser.add_argument("--peer-vs-rsync", action="store_true",
                        help="one peer receive against a plain rsync of the same files (see above)")
    parser.add_argument("--link-rate", metavar="SIZE",
                        help="bytes per second of the hub's one shared link (e.g. 25MB); default: none")
    parser.add_argument("--bwlimit", help="with --peer-vs-rsync: --bwlimit for both rsyncs (e.g. 64m)")
    parser.add_argument("--shards", type=int, default=0,
                        help="with a bench:SIZE model, split its weights into this many files")
    parser.add_argument("--phases", default="quiet",
                        help="with --peer-vs-rsync: quiet, loaded or both, comma-separated (default quiet)")
    parser.add_argument("--load", type=int, default=2 * (os.cpu_count() or 1),
                        help="busy loops in phase loaded (default 2 per core)")
    parser.add_argument("--ssh-cipher", help="with --peer-vs-rsync: Ciphers in host 2's ssh config (both rsyncs)")
    parser.add_argument("--breakdown", action="store_true",
                        help="with --peer-vs-rsync: also time plain rsync, the module's rsync alone and the module "
                             "process on host 2 without Ansible, with their CPU time")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("fanout_bench.py needs root (overlay mounts, chroot, namespaces, sshd)")
    if args.peer_vs_rsync:
        main_peer_vs_rsync(args)
        return
    counts = sorted(set(int(x) for x in args.hosts.split(",")))
    workdir = args.workdir or tempfile.mkdtemp(prefix="fanout-bench-")
    spec = resolve_models([args.model])[0]
    playbook = os.path.join(workdir, "play.yml")
    with open(playbook, "w") as handle:
        handle.write(PLAY)
    link_rate = parse_size(args.link_rate) if args.link_rate else None
    hub = LocalHub(os.path.join(workdir, "store"), models=[spec], link_rate=link_rate).start()
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
    print("Model %s, %d bytes; %d run(s) per cell (median); the hub's link: %s; load average at the end %.1f %.1f "
          "%.1f" % (spec.model_id, model_bytes, args.rounds, "%s/s" % args.link_rate if link_rate else "none",
                    load[0], load[1], load[2]))
    print()
    print("| hosts | mode | hub egress (bytes) | egress / model | wall (s) |")
    print("|---|---|---|---|---|")
    for count, source, egress, seconds in rows:
        mode = "fan-out (peer)" if source == "peer" else "independent (hub)"
        print("| %d | %s | %d | %.2f x | %.1f |" % (count, mode, egress, egress / model_bytes, seconds))


if __name__ == "__main__":
    main()
