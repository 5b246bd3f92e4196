"""Download figures of llmops.deploy.modelscope_download against the local hub (issues 3 and 9). Prints tables.

1. Throughput, quiet and loaded: the module (real SDK underneath, plus our own size/sha256 check of every byte, hashed
   while the bytes arrive, and the marker) downloading a generated 1 GiB model into a fresh directory, against
   `curl` fetching the same files from the same hub, alternating curl and module ``--rounds`` times; the median of
   the per-round ratios curl seconds / module seconds (1.0 = as fast as curl, higher = faster). The module's files are
   on disk when it reports (it syncs them before its marker), curl's are not: curl's files are then synced (an
   fdatasync per file, several at once, as the module syncs), timed apart, and the ratio is also given against curl
   plus that sync.
   The module is timed twice per round: as the process Ansible runs on the target (``python -m
   ansible_collections...modelscope_download ARGS``: start-up, listing, SDK, verification, move, marker; the
   figure the goal is about), and end to end through the ``ansible`` command (plus the controller's own start-up
   and the module's transfer, a fixed cost that does not grow with the model).
   Phase ``loaded``: ``--load`` busy loops (``while True: pass`` Python processes, default 2 per core) started by
   this script for the phase and stopped after it. They are children of this script, in its session (same
   scheduler group), so they compete with the hub, curl, the module and the SDK alike. Other work on the machine is
   not controlled: each round prints the load average.
   Each round also prints the hub's CPU seconds (this script's own: the hub runs in its threads; with ``sendfile``
   on loopback the kernel's TCP work for both ends is mostly charged to the sender), and each phase the least time
   the module's CPU and the hub's together would take spread over every core without a gap: in phase quiet, curl's
   time over that is the best ratio this machine allows the module, however well its threads overlap.
2. Rerun (valid marker, no re-hash): time over the 1 GiB model against a 10 MB model; they should be about equal.
3. Full verify (``verify: full``, every byte re-hashed): throughput.

``--shards N`` splits the big model's weights into N files of about the same size, the shape of real checkpoints
(Qwen2.5-7B has 4, 72B has 37): the module's SDK fetches up to ``max_workers`` (4) files at once, curl one after
another.

``--link-rate SIZE`` (e.g. ``125MB`` for 1 Gbit/s, ``300MiB`` for about 2.5 Gbit/s) makes the local hub serve every
file body through one shared link of that many bytes per second, as a mirror behind a real network link does: curl
and the module then wait on the link instead of on this machine's CPU (the default, loopback with ``sendfile``, is
CPU-bound on a small machine: the hub, the client and the module's hashing share its cores).

``--hub-nice N`` (e.g. ``-10``; root) runs the hub's threads at that nice value and everything this script starts
(curl, the module, the busy loops) at the script's own: the hub then stands in for a server on another machine, whose
CPU the client does not share. Without it the hub competes with the client for this machine's cores, so whatever
CPU the client spends (the module's sha256 of every byte) slows the hub's sending too; under load, with
``--link-rate``, the hub's pacing then falls behind its link (curl itself no longer reaches the link's rate).

``--baseline REF`` also times, in every round, the module as it was at git ref REF (its ``plugins/`` taken with
``git archive``), so a change is measured against the code before it in the same conditions.

``--thread-cpu`` ends with one more (untimed) download whose threads' CPU is read from /proc: where the module's
CPU goes (its own process; the SDK runner's receiving threads, its sha256 and fdatasync threads).

Usage: .venv/bin/python benchmarks/download_bench.py [--size 1GiB] [--small 10MB] [--rounds 3]
       [--phases quiet,loaded] [--load N] [--shards N] [--link-rate SIZE] [--hub-nice N] [--no-ansible]
       [--baseline REF]
       [--thread-cpu] [--workdir DIR]
Run from the repository root after scripts/setup.sh. Timings are wall-clock on this machine; nothing is asserted.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(1, os.path.join(REPO, ".collections"))

from tools.local_hub import LocalHub  # noqa: E402
from tools.local_hub.models import bench_model, parse_size  # noqa: E402

ANSIBLE = os.path.join(REPO, ".venv", "bin", "ansible")
PYTHON = os.path.join(REPO, ".venv", "bin", "python")
COLLECTIONS = os.path.join(REPO, ".collections")
MODULE_PACKAGE = "ansible_collections.llmops.deploy.plugins.modules."
# keyword arguments of every process this script starts (--hub-nice: back to the script's own priority)
SPAWN = {}


def start_children_at(priority):
    """Every process started from now on runs at nice ``priority`` whatever this thread's own is."""
    SPAWN["preexec_fn"] = lambda: os.setpriority(os.PRIO_PROCESS, 0, priority)


def child_cpu():
    """CPU seconds (user + system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ansible_module(module, args, workdir):
    """Run ``llmops.deploy.<module>`` on localhost through the ``ansible`` command; ``(seconds, result)``."""
    env = dict(os.environ, ANSIBLE_HOME=os.path.join(workdir, "ansible-home"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1")
    cmd = [ANSIBLE, "localhost", "-m", "llmops.deploy." + module, "-a", json.dumps(args),
           "-e", "ansible_python_interpreter=%s" % PYTHON]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False, **SPAWN)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s\n%s" % (module, proc.stdout[-3000:], proc.stderr[-3000:]))
    return elapsed, json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def sample_threads(root_pid, seen, clock_ticks=os.sysconf("SC_CLK_TCK")):
    """Record in ``seen`` ({(pid, tid): (label, CPU seconds)}) the CPU so far of every thread of ``root_pid`` and of
    its child processes (Linux /proc). Labels: "module" for the module's process, else the thread's name (the SDK
    runner names its hashing and syncing threads ``llmops-sha256`` and ``llmops-sync``) and "main" for a child's
    main thread."""
    pids = [root_pid]
    try:
        with open("/proc/%d/task/%d/children" % (root_pid, root_pid)) as handle:
            pids += [int(pid) for pid in handle.read().split()]
    except OSError:
        return
    for pid in pids:
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tids:
            base = "/proc/%d/task/%s/" % (pid, tid)
            try:
                with open(base + "stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                with open(base + "comm") as handle:
                    name = handle.read().strip()
            except OSError:
                continue
            label = "module" if pid == root_pid else ("main" if int(tid) == pid else name)
            seen[(pid, int(tid))] = (label, (int(fields[11]) + int(fields[12])) / float(clock_ticks))


def direct_module(module, args, workdir, collections=COLLECTIONS, threads=None):
    """Run the module the way Ansible runs it on a target (its interpreter, its arguments), without the
    controller: ``(seconds, result)``. The arguments file is private to ``workdir``; ``collections`` is the folder
    holding ``ansible_collections/llmops/deploy``. ``threads``: a dict that gets the CPU seconds of every thread of
    the run ({(pid, tid): (label, seconds)}), read from /proc every 20 ms (which costs a little CPU: not for timed
    runs)."""
    args_file = os.path.join(workdir, "module-args.json")
    fd = os.open(args_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    env = dict(os.environ, PYTHONPATH=collections)
    cmd = [PYTHON, "-m", MODULE_PACKAGE + module, args_file]
    start = time.monotonic()
    if threads is None:
        proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, check=False, **SPAWN)
    else:
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            running = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=err, text=True, **SPAWN)
            while running.poll() is None:
                sample_threads(running.pid, threads)
                time.sleep(0.02)
            out.seek(0)
            err.seek(0)
            proc = subprocess.CompletedProcess(cmd, running.returncode, out.read(), err.read())
    elapsed = time.monotonic() - start
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit("%s printed no result:\n%s\n%s" % (module, proc.stdout[-3000:], proc.stderr[-3000:]))
    if proc.returncode != 0 or result.get("failed"):
        raise SystemExit("%s failed: %s" % (module, result.get("msg")))
    return elapsed, result


def module_args(endpoint, model_id, model_dir, workdir, **extra):
    args = {"model_id": model_id, "model_dir": model_dir, "endpoint": endpoint, "sdk_python": PYTHON,
            "state_dir": os.path.join(workdir, "state")}
    args.update(extra)
    return args


def run_module(endpoint, model_id, model_dir, workdir, **extra):
    """The module through the ``ansible`` command (also used by bundle_bench.py)."""
    return ansible_module("modelscope_download", module_args(endpoint, model_id, model_dir, workdir, **extra),
                          workdir)


def run_direct(endpoint, model_id, model_dir, workdir, collections=COLLECTIONS, threads=None, **extra):
    return direct_module("modelscope_download", module_args(endpoint, model_id, model_dir, workdir, **extra),
                         workdir, collections, threads=threads)


def thread_cpu_lines(threads):
    """CPU seconds by thread, for ``--thread-cpu``: the module's process, then the SDK runner's threads by label
    (the unnamed ones, which receive the files in the SDK's pool, one line each, largest first)."""
    totals = {}
    unnamed = []
    for (_pid, _tid), (label, seconds) in threads.items():
        if label in ("module", "main", "llmops-sha256", "llmops-sync"):
            totals[label] = totals.get(label, 0.0) + seconds
        else:
            unnamed.append(seconds)
    lines = ["module process: %.2f CPU s" % totals.get("module", 0.0),
             "SDK runner, main thread: %.2f CPU s" % totals.get("main", 0.0),
             "SDK runner, llmops-sha256 threads (hashing): %.2f CPU s" % totals.get("llmops-sha256", 0.0),
             "SDK runner, llmops-sync threads (fdatasync): %.2f CPU s" % totals.get("llmops-sync", 0.0)]
    busy = sorted((s for s in unnamed if s >= 0.01), reverse=True)
    lines.append("SDK runner, other threads (the SDK's: receiving, watchdogs), largest first: %s CPU s" % (
        ", ".join("%.2f" % s for s in busy) or "none"))
    return lines


def baseline_tree(ref, workdir):
    """The collection's ``plugins/`` at git ref ``ref``, under ``workdir``; the folder to put on PYTHONPATH."""
    root = os.path.join(workdir, "baseline")
    target = os.path.join(root, "ansible_collections", "llmops", "deploy")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(target)
    archive = subprocess.run(["git", "-C", REPO, "archive", ref, "plugins"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", target], input=archive, check=True)
    return root


def fdatasync_tree(root):
    """fdatasync every file below ``root`` the way the module syncs its own before its marker (several files at
    once, model_install.sync_files): ``seconds``."""
    from ansible_collections.llmops.deploy.plugins.module_utils.model_install import sync_files
    paths = [os.path.relpath(os.path.join(folder, name), root)
             for folder, _dirs, files in os.walk(root) for name in files]
    start = time.monotonic()
    sync_files(root, paths)
    return time.monotonic() - start


def curl_all(endpoint, hub, model_id, target_dir):
    """curl every file of the model, one after another, as a plain HTTP client would."""
    snapshot = hub.snapshot(model_id, "master")
    total = 0
    start = time.monotonic()
    for path, entry in sorted(snapshot.files.items()):
        url = "%s/api/v1/models/%s/repo?Revision=master&FilePath=%s" % (endpoint, model_id, path)
        out = os.path.join(target_dir, path.replace("/", "_"))
        subprocess.run(["curl", "-sSf", "-o", out, url], check=True, **SPAWN)
        total += entry.size
    return time.monotonic() - start, total


class BusyLoops(object):
    """``count`` CPU-bound child processes for the duration of a ``with`` block."""

    def __init__(self, count):
        self.count = count
        self.procs = []

    def __enter__(self):
        for _index in range(self.count):
            self.procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"], **SPAWN))
        time.sleep(1.0)  # let them reach the run queue
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait()
        self.procs = []


def own_cpu():
    """CPU seconds (user + system) of this process: the hub's threads (this script's main thread only waits)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(func):
    """``(seconds, the client's CPU seconds, the hub's CPU seconds, result)`` of ``func()``."""
    # Whatever the previous run left for the kernel to write back is written first, untimed: no run pays for another
    # one's dirty pages (the module syncs its files before its marker, curl does not).
    os.sync()
    cpu, hub_cpu = child_cpu(), own_cpu()
    seconds, result = func()
    return seconds, child_cpu() - cpu, own_cpu() - hub_cpu, result


def throughput_phase(name, opts, hub, model_id, workdir):
    """Alternating rounds of curl, the module process and (unless --no-ansible) the module through ansible."""
    big_dir = os.path.join(workdir, "models", model_id)
    curl_dir = os.path.join(workdir, "curl")
    rows = {"curl": [], "curl_synced": [], "module": [], "ansible": [], "baseline": [], "floor": []}
    result = size = None
    for index in range(opts.rounds):
        os.makedirs(curl_dir, exist_ok=True)
        curl_s, curl_cpu, curl_hub, size = timed(lambda: curl_all(hub.endpoint, hub, model_id, curl_dir))
        curl_sync_s = fdatasync_tree(curl_dir)
        shutil.rmtree(curl_dir)
        rows["curl"].append(curl_s)
        rows["curl_synced"].append(curl_s + curl_sync_s)
        shutil.rmtree(big_dir, ignore_errors=True)
        mod_s, mod_cpu, mod_hub, result = timed(lambda: run_direct(hub.endpoint, model_id, big_dir, workdir))
        rows["module"].append(mod_s)
        # The module's CPU and the hub's, spread over every core without a gap, cannot take less than this
        rows["floor"].append((mod_cpu + mod_hub) / (os.cpu_count() or 1))
        line = ("%s round %d: curl %.2f s (%.2f CPU s, the hub %.2f; then its files synced to disk %.2f s), module "
                "process %.2f s (%.2f CPU s, the hub %.2f; SDK %.2f s, hashing left after it %.2f s; hashed while "
                "downloading: %d of %d files), ratio %.2f (%.2f against curl with the sync)" % (
                    name, index + 1, curl_s, curl_cpu, curl_hub, curl_sync_s, mod_s, mod_cpu, mod_hub,
                    result["sdk"]["seconds"], result.get("verify_seconds", 0),
                    result.get("hashed_while_downloading", 0), result["files_fetched"], curl_s / mod_s,
                    (curl_s + curl_sync_s) / mod_s))
        if opts.baseline:
            shutil.rmtree(big_dir, ignore_errors=True)
            base_s, base_cpu, _hub, _result = timed(lambda: run_direct(hub.endpoint, model_id, big_dir, workdir,
                                                                       collections=opts.baseline_tree))
            rows["baseline"].append(base_s)
            line += "; module process at %s %.2f s (%.2f CPU s), ratio %.2f" % (
                opts.baseline, base_s, base_cpu, curl_s / base_s)
        if not opts.no_ansible:
            shutil.rmtree(big_dir, ignore_errors=True)
            ans_s, _cpu, _hub, _result = timed(lambda: run_module(hub.endpoint, model_id, big_dir, workdir))
            rows["ansible"].append(ans_s)
            line += "; through ansible %.2f s, ratio %.2f" % (ans_s, curl_s / ans_s)
        print(line + "; load average %.1f" % os.getloadavg()[0], flush=True)
    return rows, size, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--small", default="10MB")
    parser.add_argument("--rounds", type=int, default=3, help="alternating curl/module rounds per phase (median)")
    parser.add_argument("--phases", default="quiet,loaded", help="comma-separated: quiet, loaded")
    parser.add_argument("--load", type=int, default=2 * (os.cpu_count() or 1),
                        help="busy-loop processes during the loaded phase (default: 2 per core)")
    parser.add_argument("--no-ansible", action="store_true", help="do not time the module through ansible")
    parser.add_argument("--baseline", metavar="REF", help="also time the module as it was at this git ref")
    parser.add_argument("--shards", type=int, default=0,
                        help="split the big model's weights into this many files, as real checkpoints are "
                             "(default: one file)")
    parser.add_argument("--link-rate", metavar="SIZE", default=None,
                        help="bytes per second of the hub's one shared link (e.g. 125MB = 1 Gbit/s); default: none")
    parser.add_argument("--hub-nice", type=int, default=None, metavar="N",
                        help="run the hub's threads at this nice value (e.g. -10, as root), everything else at this "
                             "script's: the hub as a server on another machine; default: the script's")
    parser.add_argument("--thread-cpu", action="store_true",
                        help="after the timed rounds, one more download of the big model (untimed, quiet) with the "
                             "CPU of every thread of the module and its SDK runner read from /proc")
    parser.add_argument("--workdir", default=None)
    opts = parser.parse_args()
    phases = [p.strip() for p in opts.phases.split(",") if p.strip()]
    unknown = set(phases) - {"quiet", "loaded"}
    if unknown or not phases:
        parser.error("--phases: use quiet and/or loaded, not %s" % ", ".join(sorted(unknown)))
    workdir = opts.workdir or tempfile.mkdtemp(prefix="llmops-bench-")
    os.makedirs(workdir, exist_ok=True)
    opts.baseline_tree = baseline_tree(opts.baseline, workdir) if opts.baseline else None
    store = os.path.join(REPO, ".work", "bench-hub-store")
    big_spec = "bench:%s" % opts.size
    if opts.shards > 1:
        # the same model id with another file layout: a store of its own
        size = parse_size(opts.size)
        big_spec = bench_model(size, max_shard_bytes=-(-size // opts.shards))
        store = os.path.join(REPO, ".work", "bench-hub-store-%d-shards" % opts.shards)
    link_rate = parse_size(opts.link_rate) if opts.link_rate else None
    hub_nice = ""
    if opts.hub_nice is not None:
        # Linux: the priority of this thread, inherited by the hub's threads started below; the children get ours
        own = os.getpriority(os.PRIO_PROCESS, 0)
        try:
            os.setpriority(os.PRIO_PROCESS, 0, opts.hub_nice)
        except OSError as exc:
            parser.error("--hub-nice %d: %s (a negative value needs root)" % (opts.hub_nice, exc))
        start_children_at(own)
        hub_nice = ", hub at nice %d" % opts.hub_nice
    hub = LocalHub(store, models=[big_spec, "bench:%s" % opts.small], link_rate=link_rate).start()
    link = (", link %s/s" % opts.link_rate if link_rate else "") + hub_nice
    gib = 2 ** 30
    try:
        big, small = hub.model_ids
        big_dir = os.path.join(workdir, "models", big)
        table = []
        summary = []
        result = None
        for phase in phases:
            if phase == "loaded":
                with BusyLoops(opts.load):
                    rows, size, result = throughput_phase(phase, opts, hub, big, workdir)
                label = "loaded (%d busy loops on %d cores%s)" % (opts.load, os.cpu_count() or 1, link)
            else:
                rows, size, result = throughput_phase(phase, opts, hub, big, workdir)
                label = "quiet (no added load%s)" % link
            for key, what in (("curl", "curl, same files"),
                              ("curl_synced", "curl, then its files synced to disk (durable, as the module's)"),
                              ("module", "module process (SDK + own sha256 + marker)"),
                              ("baseline", "module process at %s" % opts.baseline),
                              ("ansible", "module through ansible (+ controller start-up)")):
                if rows[key]:
                    seconds = statistics.median(rows[key])
                    table.append((label, what, seconds, size / gib / seconds))
            for key, what in (("module", "module process"), ("baseline", "module process at %s" % opts.baseline),
                              ("ansible", "through ansible")):
                if rows[key]:
                    ratios = [c / m for c, m in zip(rows["curl"], rows[key])]
                    synced = [c / m for c, m in zip(rows["curl_synced"], rows[key])]
                    summary.append("%s, %s: module/curl throughput ratio, median of %d alternating rounds: %.2f "
                                   "(rounds: %s); against curl with its files synced: %.2f" % (
                                       label, what, len(ratios), statistics.median(ratios),
                                       ", ".join("%.2f" % r for r in ratios), statistics.median(synced)))
            bound = [c / f for c, f in zip(rows["curl"], rows["floor"])]
            if phase == "quiet":   # under load the busy loops take the cores too: no bound from this
                summary.append("%s: the module's CPU and the hub's, on %d cores without a gap, would take at least "
                               "%.2f s (median): a ratio of at most %.2f on this machine (rounds: %s)" % (
                                   label, os.cpu_count() or 1, statistics.median(rows["floor"]),
                                   statistics.median(bound), ", ".join("%.2f" % r for r in bound)))
        if not os.path.isdir(big_dir):
            run_direct(hub.endpoint, big, big_dir, workdir)
        rerun_big, result = run_direct(hub.endpoint, big, big_dir, workdir)
        assert not result["changed"] and result["bytes_fetched"] == 0
        small_dir = os.path.join(workdir, "models", small)
        run_direct(hub.endpoint, small, small_dir, workdir)
        rerun_small, _result = run_direct(hub.endpoint, small, small_dir, workdir)
        full_s, result = run_direct(hub.endpoint, big, big_dir, workdir, verify="full")
        table.append(("no added load", "module rerun, %s (marker: size + mtime)" % opts.size, rerun_big, None))
        table.append(("no added load", "module rerun, %s" % opts.small, rerun_small, None))
        table.append(("no added load", "module rerun with verify=full, %s" % opts.size, full_s,
                      result["bytes_total"] / gib / full_s))
        print()
        print("| Machine | Case (%s = %d bytes, medians) | Seconds | GiB/s |" % (opts.size, parse_size(opts.size)))
        print("|---|---|---|---|")
        for label, name, seconds, rate in table:
            print("| %s | %s | %.2f | %s |" % (label, name, seconds, "-" if rate is None else "%.2f" % rate))
        print()
        for line in summary:
            print(line)
        print("rerun %s / rerun %s: %.2f" % (opts.size, opts.small, rerun_big / rerun_small))
        if opts.thread_cpu:
            shutil.rmtree(big_dir, ignore_errors=True)
            threads = {}
            seconds, _result = run_direct(hub.endpoint, big, big_dir, workdir, threads=threads)
            print("CPU by thread, one more download of %s%s (%.2f s):" % (opts.size, link, seconds))
            for line in thread_cpu_lines(threads):
                print("  " + line)
    finally:
        hub.stop()
        if not opts.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
