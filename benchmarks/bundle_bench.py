"""Bundle figures of llmops.deploy.model_bundle against plain `tar` of the same directory (issue 9). Prints a table.

A generated model (default 1 GiB, one weight shard at that size) is downloaded once from the local hub with
modelscope_download (or, with ``--files N``, N files of random bytes with a completion marker written by the
collection's marker code: the shape of a large model, many shards), then, alternating ``--rounds`` times:

* export: ``model_bundle state=export part_size=<part>`` (reads every file once, checks each sha256 against the
  marker while it writes the tar stream into parts, parts synced to disk) against ``tar -cf - | split -b <part>``,
  and against the same followed by ``sync --data`` of the parts, 4 at once (as durable as the module's);
* import: ``model_bundle state=import`` into a fresh directory (one pass over the parts: every member checked, every
  file hashed from the bytes it writes, the files synced to disk, the marker written) against ``cat parts | tar
  -xf -`` (no verification), against the same followed by ``sync --data`` of the files, 4 at once (durable, not
  verified), and against ``cat parts | tar -xf -`` followed by ``sha256sum -c`` (the same verification, a second
  pass).

``--baseline REF`` also times, in every round, the export and the import of the module as it was at git ref REF (its
``plugins/`` taken with ``git archive``; it imports its own export), so a change is measured against the code before
it in the same conditions.

Each comparison is made on the machine as it is (``quiet``) and under ``--load`` busy loops started by this script
(``loaded``, default 2 per core, children of this script like in download_bench.py).

Usage: .venv/bin/python benchmarks/bundle_bench.py [--size 1GiB] [--part 256MiB] [--rounds 3]
       [--phases quiet,loaded] [--load N] [--files N] [--baseline REF] [--workdir DIR]
Run from the repository root after scripts/setup.sh. Medians of wall-clock seconds, and of the CPU seconds (user +
system) of every process of the case, which other work on the machine disturbs far less; nothing is asserted. Every
case starts after a ``sync`` (not timed), so none pays for the write-back of what the case before it wrote.
"""
import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

from download_bench import COLLECTIONS, BusyLoops, baseline_tree, child_cpu, direct_module, run_module  # noqa: E402
from tools.local_hub import LocalHub  # noqa: E402
from tools.local_hub.models import parse_size  # noqa: E402

sys.path.insert(0, COLLECTIONS)
from ansible_collections.llmops.deploy.plugins.module_utils.marker import build_marker, write_marker  # noqa: E402


def bundle(workdir, collections=COLLECTIONS, **args):
    """``(wall seconds, CPU seconds)`` of one model_bundle run, as the process Ansible runs on the target (no
    controller start-up); ``collections``: the folder holding the collection to run (a baseline's)."""
    os.sync()
    cpu = child_cpu()
    return direct_module("model_bundle", args, workdir, collections)[0], child_cpu() - cpu


def shell(cmd):
    """``(wall seconds, CPU seconds)`` of a bash pipeline (every process of it)."""
    os.sync()
    cpu = child_cpu()
    start = time.monotonic()
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True)
    return time.monotonic() - start, child_cpu() - cpu


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def generated_model(root, size, count):
    """``count`` files of random bytes, ``size`` in all, and their completion marker under ``root``."""
    os.makedirs(root)
    entries = []
    for index in range(count):
        rel = "model-%05d-of-%05d.safetensors" % (index + 1, count)
        path = os.path.join(root, rel)
        digest = hashlib.sha256()
        left = size // count + (1 if index < size % count else 0)
        with open(path, "wb") as handle:
            while left:
                block = os.urandom(min(left, 64 * 1024 * 1024))
                digest.update(block)
                handle.write(block)
                left -= len(block)
        st = os.stat(path)
        entries.append({"path": rel, "size": st.st_size, "sha256": digest.hexdigest(), "mtime_ns": st.st_mtime_ns})
    write_marker(root, build_marker("bench/generated-%d-files" % count, "master", "0" * 40, "http://127.0.0.1:9",
                                    [], [], entries, "bench"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--part", default="256MiB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--phases", default="quiet,loaded", help="comma-separated: quiet, loaded")
    parser.add_argument("--load", type=int, default=2 * (os.cpu_count() or 1),
                        help="busy-loop processes during the loaded phase (default: 2 per core)")
    parser.add_argument("--files", type=int, default=0,
                        help="N > 0: N files of random bytes (many shards) instead of the hub's one-shard model")
    parser.add_argument("--baseline", metavar="REF", help="also time the module as it was at this git ref")
    parser.add_argument("--workdir", default=None)
    opts = parser.parse_args()
    phases = [p.strip() for p in opts.phases.split(",") if p.strip()]
    if not phases or set(phases) - {"quiet", "loaded"}:
        parser.error("--phases: use quiet and/or loaded")
    workdir = opts.workdir or tempfile.mkdtemp(prefix="llmops-bundle-bench-")
    part = parse_size(opts.part)
    opts.baseline_tree = baseline_tree(opts.baseline, workdir) if opts.baseline else None
    if opts.files > 0:
        source = os.path.join(workdir, "models", "generated")
        generated_model(source, parse_size(opts.size), opts.files)
    else:
        hub = LocalHub(os.path.join(REPO, ".work", "bench-hub-store"), models=["bench:%s" % opts.size]).start()
        try:
            model_id = hub.model_ids[0]
            source = os.path.join(workdir, "models", model_id)
            run_module(hub.endpoint, model_id, source, workdir)
        finally:
            hub.stop()
    try:
        total = sum(os.path.getsize(os.path.join(b, f)) for b, _d, fs in os.walk(source) for f in fs)
        sums = os.path.join(workdir, "SHA256SUMS")
        shell("cd %s && find . -type f ! -name .llmops-complete.json -print0 | xargs -0 sha256sum > %s" % (
            source, sums))
        for phase in phases:
            if phase == "loaded":
                with BusyLoops(opts.load):
                    times = rounds(opts, workdir, source, part, sums)
                label = "loaded, %d busy loops on %d cores" % (opts.load, os.cpu_count() or 1)
            else:
                times = rounds(opts, workdir, source, part, sums)
                label = "quiet, no added load"
            report(opts, label, times, total)
    finally:
        if not opts.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def rounds(opts, workdir, source, part, sums):
    """Alternating rounds of export / tar -c / import / tar -x / tar -x + sha256sum: ``{case: [(wall, CPU)]}``."""
    media, tar_media = os.path.join(workdir, "media"), os.path.join(workdir, "tar-media")
    keys = ("export", "base_export", "tar_c", "tar_c_sync", "import", "base_import", "tar_x", "tar_x_sync",
            "tar_x_sha")
    times = dict((k, []) for k in keys if opts.baseline or not k.startswith("base_"))
    for _round in range(opts.rounds):
        if opts.baseline:
            fresh(media)
            times["base_export"].append(bundle(workdir, opts.baseline_tree, state="export", path=source,
                                               bundle=os.path.join(media, "m"), part_size=opts.part))
            target = os.path.join(workdir, "imported", "m")
            shutil.rmtree(os.path.dirname(target), ignore_errors=True)
            times["base_import"].append(bundle(workdir, opts.baseline_tree, state="import", path=target,
                                               bundle=os.path.join(media, "m")))
        fresh(media)
        times["export"].append(bundle(workdir, state="export", path=source, bundle=os.path.join(media, "m"),
                                      part_size=opts.part))
        synced = " && ls %s/m.tar.part* | xargs -P 4 -n 1 sync --data" % tar_media
        for key, durable in (("tar_c", ""), ("tar_c_sync", synced)):
            fresh(tar_media)
            times[key].append(shell("tar -C %s -cf - . | split -b %d - %s/m.tar.part%s" % (
                source, part, tar_media, durable)))
        target = os.path.join(workdir, "imported", "m")
        shutil.rmtree(os.path.dirname(target), ignore_errors=True)
        times["import"].append(bundle(workdir, state="import", path=target, bundle=os.path.join(media, "m")))
        for key, check in (("tar_x", ""),
                           ("tar_x_sync", " && find DEST -type f -print0 | xargs -0 -P 4 -n 1 sync --data"),
                           ("tar_x_sha", " && cd DEST && sha256sum --quiet -c %s" % sums)):
            dest = os.path.join(workdir, "untar")
            fresh(dest)
            times[key].append(shell("cat %s/m.tar.part* | tar -C %s -xf -%s" % (
                tar_media, dest, check.replace("DEST", dest))))
        last = ", ".join("%s %.2f s (CPU %.2f)" % (k, v[-1][0], v[-1][1]) for k, v in times.items())
        print("round %d: %s; load average %.1f" % (_round + 1, last, os.getloadavg()[0]), flush=True)
    return times


def report(opts, label, times, total):
    gib = 2 ** 30
    rows = [("model_bundle export, parts of %s (sha256 checked against the marker)" % opts.part, "export"),
            ("model_bundle export at %s" % opts.baseline, "base_export"),
            ("tar -cf - | split -b %s" % opts.part, "tar_c"),
            ("tar -cf - | split -b %s, then sync --data of the parts" % opts.part, "tar_c_sync"),
            ("model_bundle import (every file verified, marker written)", "import"),
            ("model_bundle import at %s" % opts.baseline, "base_import"),
            ("cat parts | tar -xf - (no verification)", "tar_x"),
            ("cat parts | tar -xf -, then sync --data of the files (durable, no verification)", "tar_x_sync"),
            ("cat parts | tar -xf - && sha256sum -c", "tar_x_sha")]
    print()
    shape = "%d files" % opts.files if opts.files > 0 else "hub model"
    print("| Case (%s, %s, %s, median of %d) | Seconds | GiB/s | CPU seconds |" % (
        opts.size, shape, label, opts.rounds))
    print("|---|---|---|---|")
    med = dict((key, statistics.median(wall for wall, _cpu in values)) for key, values in times.items())
    for name, key in rows:
        if key not in times:
            continue
        print("| %s | %.2f | %.2f | %.2f |" % (name, med[key], total / gib / med[key],
                                               statistics.median(cpu for _wall, cpu in times[key])))
    print()
    for who, prefix in (("this checkout", ""), ("at %s" % opts.baseline, "base_")):
        if prefix + "export" not in med:
            continue
        print("%s, %s: export / tar: %.2f (against tar + sync: %.2f); import / (tar + sha256sum): %.2f; import / tar "
              "alone: %.2f (against tar + sync: %.2f) (throughput ratios, medians; model_bundle timed as the module "
              "process, its start-up included)" % (
                  label, who, med["tar_c"] / med[prefix + "export"], med["tar_c_sync"] / med[prefix + "export"],
                  med["tar_x_sha"] / med[prefix + "import"], med["tar_x"] / med[prefix + "import"],
                  med["tar_x_sync"] / med[prefix + "import"]), flush=True)


if __name__ == "__main__":
    main()
