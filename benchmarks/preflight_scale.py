# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the fleet preflight scales: wall time of playbooks/preflight.yml against a bare ``ansible all -m ping``.

For each fleet size a local-connection inventory of that many hosts is generated in a temporary directory. Each
configuration (one model or six candidates, ``preflight_probe`` true or false) is timed next to a bare ping of the same
inventory with the same forks, and the ratio is printed as a table:

* probe true: every host is probed (GPUs through a recorded ``nvidia-smi`` of 8 x H100 first on PATH, RAM, cores,
  free disk), as a real fleet would be. Every "host" runs on this machine, so what a real host spends on its own
  CPU is counted here as the controller's. ``--gpu-tool recorded`` (default) replays the recording with a POSIX
  shell and ``cat`` (the cost of a native tool such as the real ``nvidia-smi``; the call must carry exactly the
  arguments the module sends, or it fails); ``python`` uses the tests' fake ``nvidia-smi`` (a second Python
  interpreter per host, about 0.1 s of CPU each); ``none`` leaves the GPU tool out (the module's own cost);
* probe false: every host declares its hardware and the checks run on the controller.

Usage (from the repository root):
    .venv/bin/python benchmarks/preflight_scale.py [--hosts 10,100,500] [--forks 5] [--repeat 1]
        [--gpu-tool recorded|python|none] [--probe true,false] [--models one,candidates] [--json FILE]

The ping and each preflight of one size are run back to back, ``--repeat`` times, and the median is kept, so that
load from elsewhere on the machine weighs on both sides of a ratio. Beside the wall time, the CPU time of each run
(user + system, the command and every process it waited for: workers, modules, the recorded GPU tool) is measured and
its ratio printed too: on a machine that other work keeps busy, wall times swing from one minute to the next, the CPU
a run needs much less. On an otherwise idle machine with as many forks as cores or more, both ratios agree.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)
FAKE_BIN = os.path.join(REPO, "tests", "fixtures", "fake-bin")
MODEL = "Qwen/Qwen2.5-7B-Instruct"
CANDIDATES = ["Qwen/Qwen2.5-32B-Instruct", "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8", "Qwen/Qwen2.5-32B-Instruct-AWQ",
              "Qwen/Qwen2.5-7B-Instruct", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
              "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8"]
DECLARED = {"gpu_model": "H100", "gpu_count": 8, "memory_total_mib": 2097152, "cpu_cores": 112,
            "disk_free_mib": 7000000}


def write_inventory(directory, hosts, declared):
    """A YAML inventory of ``hosts`` local hosts (host0001 ...), with the hardware declared or not."""
    lines = ["all:", "  vars:", "    ansible_connection: local",
             "    ansible_python_interpreter: %s" % json.dumps(sys.executable)]
    if declared:
        lines.append("    llmops_declared_hardware: %s" % json.dumps(DECLARED))
    lines.append("  hosts:")
    lines += ["    host%04d:" % index for index in range(1, hosts + 1)]
    path = os.path.join(directory, "hosts-%d-%s.yml" % (hosts, "declared" if declared else "probed"))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


RECORDING = os.path.join(REPO, "tests", "fixtures", "gpu", "nvidia-smi", "h100-80gb-hbm3-x8.csv")
# The arguments gpu_facts.nvidia_smi_argv() produces (the tests' fake nvidia-smi checks the same ones).
QUERY = ("--query-gpu=index,name,uuid,pci.bus_id,driver_version,memory.total,memory.used,memory.free,compute_cap "
         "--format=csv,noheader,nounits")


def write_native_replay(directory):
    """A directory holding an ``nvidia-smi`` that prints the recording with sh and cat: a native tool's cost."""
    bin_dir = os.path.join(directory, "native-bin")
    os.makedirs(bin_dir, exist_ok=True)
    path = os.path.join(bin_dir, "nvidia-smi")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write('#!/bin/sh\n[ "$*" = "%s" ] || { echo "unexpected arguments: $*" >&2; exit 2; }\n'
                     'exec cat "%s"\n' % (QUERY, RECORDING))
    os.chmod(path, 0o755)
    return bin_dir


def environment(work, gpu_tool="recorded"):
    env = dict(os.environ)
    gpu_bin = {"recorded": [write_native_replay(work)], "python": [FAKE_BIN], "none": []}[gpu_tool]
    env["PATH"] = os.pathsep.join(gpu_bin + [VENV_BIN, "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    env["LLMOPS_FAKE_NVIDIA_SMI"] = "h100-80gb-hbm3-x8.csv"
    env["ANSIBLE_HOME"] = os.path.join(work, "ansible-home")
    env["ANSIBLE_LOCAL_TEMP"] = os.path.join(work, "ansible-tmp")
    env["ANSIBLE_NOCOLOR"] = "1"
    env.pop("ANSIBLE_CONFIG", None)  # the repository's ansible.cfg (collections path, pipelining)
    return env


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd, env):
    """(wall seconds, CPU seconds) the command took, its waited-for descendants included; raises with its output
    when it fails."""
    cpu = _children_cpu()
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False)
    elapsed = time.monotonic() - start
    cpu = _children_cpu() - cpu
    if proc.returncode != 0:
        raise RuntimeError("%s failed (exit %d):\n%s" % (" ".join(cmd[:3]), proc.returncode, proc.stdout[-4000:]))
    return elapsed, cpu


def ping_cmd(inventory, forks):
    return [os.path.join(VENV_BIN, "ansible"), "all", "-i", inventory, "-f", str(forks), "-m", "ansible.builtin.ping"]


def preflight_cmd(inventory, forks, candidates, probe, reports):
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/preflight.yml", "-i", inventory, "-f", str(forks),
           "-e", "preflight_report_dir=%s" % reports, "-e", "preflight_probe=%s" % str(probe).lower(),
           "-e", "llmops_precision=bf16"]
    if candidates:
        cmd += ["-e", json.dumps({"llmops_candidates": CANDIDATES, "llmops_scenario": "enterprise"})]
    else:
        cmd += ["-e", json.dumps({"llmops_model": MODEL, "llmops_candidates": []})]
    return cmd


def measure(sizes, forks, repeat, work, gpu_tool="recorded", probes=(True, False), models=(False, True)):
    env = environment(work, gpu_tool)
    rows = []
    for hosts in sizes:
        inventories = {True: write_inventory(work, hosts, declared=False),
                       False: write_inventory(work, hosts, declared=True)}
        configs = [(candidates, probe) for candidates in models for probe in probes]
        pings = []
        times = dict((config, []) for config in configs)
        for _round in range(repeat):
            pings.append(timed(ping_cmd(inventories[True], forks), env))
            for candidates, probe in configs:
                reports = os.path.join(work, "reports-%d" % hosts)
                cmd = preflight_cmd(inventories[probe], forks, candidates, probe, reports)
                times[(candidates, probe)].append(timed(cmd, env))
        ping = statistics.median(wall for wall, _cpu in pings)
        ping_cpu = statistics.median(cpu for _wall, cpu in pings)
        for candidates, probe in configs:
            seconds = statistics.median(wall for wall, _cpu in times[(candidates, probe)])
            cpu = statistics.median(cpu for _wall, cpu in times[(candidates, probe)])
            rows.append({"hosts": hosts, "models": "6 candidates" if candidates else "1 model",
                         "probe": probe, "gpu_tool": gpu_tool if probe else None, "forks": forks,
                         "seconds": round(seconds, 2), "ping_seconds": round(ping, 2),
                         "ratio": round(seconds / ping, 2), "cpu_seconds": round(cpu, 2),
                         "ping_cpu_seconds": round(ping_cpu, 2), "cpu_ratio": round(cpu / ping_cpu, 2)})
            print_row(rows[-1])
    return rows


HEADER = ("| Hosts | Models | preflight_probe | Forks | Preflight (s) | ping (s) | Ratio | Preflight CPU (s) "
          "| ping CPU (s) | CPU ratio |")


def print_row(row):
    probe = str(row["probe"]).lower()
    if row["probe"]:
        probe += {"recorded": " (recorded nvidia-smi)", "python": " (Python fake nvidia-smi)",
                  "none": " (no GPU tool)"}[row["gpu_tool"]]
    print("| %d | %s | %s | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |" % (
        row["hosts"], row["models"], probe, row["forks"], row["seconds"], row["ping_seconds"], row["ratio"],
        row["cpu_seconds"], row["ping_cpu_seconds"], row["cpu_ratio"]), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--hosts", default="10,100,500", help="fleet sizes, comma-separated (default 10,100,500)")
    parser.add_argument("--forks", type=int, default=5, help="forks for the ping and the preflight (default 5)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, the median is kept (default 1)")
    parser.add_argument("--gpu-tool", choices=["recorded", "python", "none"], default="recorded",
                        help="probe true: the recorded nvidia-smi replayed by sh + cat (default), by the tests' "
                             "Python fake, or no GPU tool")
    parser.add_argument("--probe", default="true,false", help="preflight_probe values, comma-separated")
    parser.add_argument("--models", default="one,candidates",
                        help="one model, six candidates or both, comma-separated (default one,candidates)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    sizes = [int(part) for part in args.hosts.split(",") if part.strip()]
    probes = [part.strip() == "true" for part in args.probe.split(",") if part.strip() in ("true", "false")]
    models = [part.strip() == "candidates" for part in args.models.split(",") if part.strip() in ("one", "candidates")]
    if not sizes or min(sizes) < 1 or args.forks < 1 or args.repeat < 1 or not probes or not models:
        parser.error("--hosts, --forks and --repeat take positive numbers; --probe true/false, --models one/candidates")
    print(HEADER)
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="preflight-scale-") as work:
        rows = measure(sizes, args.forks, args.repeat, work, args.gpu_tool, probes, models)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
