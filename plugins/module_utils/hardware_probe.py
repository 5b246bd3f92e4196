# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probe what a host has for a model: its GPUs, RAM, CPU cores and the free disk where the weights go, leaving out
the parts the inventory declares. Used by the ``hardware_probe`` module (what a fleet's preflight runs on each host)
and by ``capacity_check`` when it judges on the host.

Standard library only (runs on targets with Python >= 3.8). Imports nothing of the judgement: a host that is only
probed compiles this, ``gpu_facts`` and ``host_resources``.
"""

from ansible_collections.llmops.deploy.plugins.module_utils import gpu_facts, host_resources


def probe_hardware(declared, target, disk_path, which, run):
    """Probe the parts of the hardware ``declared`` does not give.

    ``declared``: the declared hardware (``{}`` for none; ``gpus`` or ``gpu_model`` declare the GPUs). ``target``:
    ``gpu`` or ``cpu`` (a CPU target probes no GPU). ``disk_path``: where the free disk is measured (its nearest
    existing parent). ``which(name)`` finds a GPU tool (a path or None) and ``run(argv)`` runs it, returning
    ``(rc, stdout, stderr)``: ``AnsibleModule.get_bin_path`` and ``run_command`` on a host.

    Returns ``(hardware, probed, gpu_source, warnings)``: the hardware (declared and probed parts together, with
    ``disk_path``), the names of the parts probed, the GPU tools read (``None`` when the GPUs were not probed) and
    the warnings of the GPU tools. Raises ``gpu_facts.GpuFactsError`` when a GPU tool's output cannot be read.
    """
    hardware = dict(declared or {})
    probed = []
    warnings = []
    gpu_source = None
    gpus_declared = hardware.get("gpus") is not None or hardware.get("gpu_model") is not None
    if not gpus_declared and target == "gpu":
        found = gpu_facts.collect_gpus(which, run)
        hardware["gpus"] = found["gpus"]
        gpu_source = ", ".join(found.get("sources") or []) or found["source"]
        warnings.extend(found["warnings"])
        probed.append("gpus")
    if hardware.get("memory_total_mib") is None:
        hardware["memory_total_mib"] = host_resources.probe_memory()["memory_total_mib"]
        probed.append("memory_total_mib")
    if hardware.get("cpu_cores") is None:
        hardware["cpu_cores"] = host_resources.probe_cpu_cores()
        probed.append("cpu_cores")
    if hardware.get("disk_free_mib") is None:
        hardware["disk_free_mib"] = host_resources.probe_disk(disk_path)["disk_free_mib"]
        probed.append("disk_free_mib")
    hardware.setdefault("disk_path", disk_path)
    return hardware, probed, gpu_source, warnings


def probe_with_module(module, declared, target, disk_path):
    """``probe_hardware`` with an ``AnsibleModule``'s own tools (``gpu_facts.module_tools``)."""
    which, run = gpu_facts.module_tools(module)
    return probe_hardware(declared, target, disk_path, which, run)


def probe_or_fail(module, declared, target, disk_path):
    """``probe_with_module`` as a module's task runs it: GPU tool output that cannot be read fails the task, the
    tools' warnings become the module's. Returns ``(hardware, probed, gpu_source)``."""
    try:
        hardware, probed, gpu_source, warnings = probe_with_module(module, declared, target, disk_path)
    except gpu_facts.GpuFactsError as exc:
        module.fail_json(msg=str(exc))
    for warning in warnings:
        module.warn(warning)
    return hardware, probed, gpu_source
