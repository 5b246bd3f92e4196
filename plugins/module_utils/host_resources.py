# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probe a host's RAM, CPU cores and free disk, and the memory a process tree takes. Reading the host is this
module_util's one job.

Standard library only (runs on targets with Python >= 3.8). The host's sizes are returned in MiB, as integers (floored);
a process tree's memory in bytes.
"""

import os

MIB = 2 ** 20


def proc_fields(text):
    """``Key:  value [kB]`` lines of a /proc file (meminfo, PID/status) -> ``{key: int}``, kB as bytes; lines whose
    value is not a number are left out."""
    values = {}
    for line in text.splitlines():
        key, _sep, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
            values[key.strip()] = int(parts[0]) * scale
    return values


def parse_meminfo(text):
    """``/proc/meminfo`` text -> ``{'memory_total_mib': int, 'memory_available_mib': int or None}``."""
    values = proc_fields(text)
    if "MemTotal" not in values:
        raise ValueError("/proc/meminfo has no MemTotal line")
    available = values.get("MemAvailable")
    return {
        "memory_total_mib": values["MemTotal"] // MIB,
        "memory_available_mib": None if available is None else available // MIB,
    }


def probe_memory(meminfo_path="/proc/meminfo"):
    with open(meminfo_path) as handle:
        return parse_meminfo(handle.read())


def probe_cpu_cores():
    """CPUs this process may run on (cgroup/affinity aware where the OS says), else the online count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def nearest_existing_dir(path):
    """``path`` or its nearest existing parent directory (a model directory may not exist yet)."""
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def probe_disk(path):
    """Free space (for an unprivileged writer) at ``path`` or its nearest existing parent."""
    where = nearest_existing_dir(path)
    stats = os.statvfs(where)
    return {
        "disk_free_mib": (stats.f_bavail * stats.f_frsize) // MIB,
        "disk_total_mib": (stats.f_blocks * stats.f_frsize) // MIB,
        "disk_path": path,
        "disk_measured_at": where,
    }


def process_tree_memory(pid, proc_root="/proc"):
    """Memory of the process ``pid`` and all its descendants, as ``/proc/PID/status`` reports it.

    Returns ``{'pid', 'processes': [{'pid', 'ppid', 'name', 'rss_bytes', 'peak_rss_bytes'}], 'rss_bytes',
    'peak_rss_bytes'}``: the sums of VmRSS (resident now) and VmHWM (the peak each process reached). Shared library
    pages count once per process, as they do in every RSS figure. Processes that end while being read are left out.
    Raises ValueError when ``pid`` does not exist.
    """
    pid = int(pid)
    table = {}
    for entry in os.listdir(proc_root):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc_root, entry, "status")) as handle:
                text = handle.read()
        except (IOError, OSError):
            continue  # ended meanwhile, or not ours to read
        fields = proc_fields(text)
        name = ""
        for line in text.splitlines():
            if line.startswith("Name:"):
                name = line.split(":", 1)[1].strip()
                break
        table[int(entry)] = {"pid": int(entry), "ppid": fields.get("PPid", 0), "name": name,
                             "rss_bytes": fields.get("VmRSS", 0), "peak_rss_bytes": fields.get("VmHWM", 0)}
    if pid not in table:
        raise ValueError("process %d does not exist (or its /proc entry cannot be read)" % pid)
    children = {}
    for info in table.values():
        children.setdefault(info["ppid"], []).append(info["pid"])
    tree, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        tree.append(table[current])
        todo.extend(sorted(children.get(current, [])))
    return {"pid": pid, "processes": tree, "rss_bytes": sum(p["rss_bytes"] for p in tree),
            "peak_rss_bytes": sum(p["peak_rss_bytes"] for p in tree)}
