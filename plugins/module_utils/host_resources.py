# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probe a host's RAM, CPU cores and free disk. Reading the host is this module_util's one job.

Standard library only (runs on targets with Python >= 3.8). Sizes are returned in MiB, as integers (floored).
"""

import os

MIB = 2 ** 20


def parse_meminfo(text):
    """``/proc/meminfo`` text -> ``{'memory_total_mib': int, 'memory_available_mib': int or None}``."""
    values = {}
    for line in text.splitlines():
        key, _sep, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
            values[key.strip()] = int(parts[0]) * scale
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
