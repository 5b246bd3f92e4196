# -*- coding: utf-8 -*-
# Copyright: (c) 2025, llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU facts: parse what ``nvidia-smi``, ``amd-smi`` and ``rocm-smi`` print, and probe a host.

Pure standard library, Python 3.8. The probing in :func:`collect_gpus` takes its I/O as
arguments (``which`` and ``run``; :func:`module_tools` gives a module's) so the ``gpu_info`` and
``hardware_probe`` modules share one implementation and tests can replay recorded outputs.

Every GPU is a dict with the keys of :data:`GPU_KEYS`, always present (``None`` when unknown).
Memory is reported in MiB as an int: ``nvidia-smi --format=...,nounits`` already prints MiB;
the AMD tools print bytes (``rocm-smi``) or "MB" (``amd-smi``, which computes bytes / 2**20,
so it is MiB in fact) and are converted exactly, rounding down only a partial MiB of bytes.
"""

from __future__ import absolute_import, division, print_function

import json
import re

__metaclass__ = type


class GpuFactsError(ValueError):
    """A GPU tool printed something this parser cannot read (it never means "no GPU")."""


VENDORS = ("nvidia", "amd")

GPU_KEYS = (
    "index",
    "vendor",
    "name",
    "uuid",
    "pci_bus_id",
    "driver_version",
    "memory_total_mib",
    "memory_used_mib",
    "memory_free_mib",
    "compute_capability",
    "arch",
    "unified_memory",
)

# Order matters: it is the column order of the CSV that nvidia-smi prints.
NVIDIA_QUERY_FIELDS = (
    "index",
    "name",
    "uuid",
    "pci.bus_id",
    "driver_version",
    "memory.total",
    "memory.used",
    "memory.free",
    "compute_cap",
)
# Drivers before R510 do not know "compute_cap" (nvidia-smi exits 2 with
# 'Field "compute_cap" is not a valid field to query.'); the probe then asks again without it.
NVIDIA_LEGACY_QUERY_FIELDS = tuple(f for f in NVIDIA_QUERY_FIELDS if f != "compute_cap")

# Where the tools live when they are not on PATH (ROCm installs into /opt/rocm/bin); give these
# as ``opt_dirs`` to AnsibleModule.get_bin_path.
TOOL_EXTRA_DIRS = {
    "nvidia-smi": (),
    "amd-smi": ("/opt/rocm/bin",),
    "rocm-smi": ("/opt/rocm/bin",),
}

AMD_SMI_STATIC_ARGS = ("static", "--asic", "--bus", "--driver", "--vram", "--json")
AMD_SMI_METRIC_ARGS = ("metric", "--mem-usage", "--json")
ROCM_SMI_ARGS = ("--showproductname", "--showbus", "--showdriverversion", "--showmeminfo", "vram", "--json")

# Values nvidia-smi (and the AMD tools) print in place of a value they cannot give.
_UNAVAILABLE = frozenset(
    v.lower()
    for v in (
        "[N/A]",
        "N/A",
        "[Not Supported]",
        "Not Supported",
        "[Unknown Error]",
        "[Insufficient Permissions]",
        "[GPU requires reset]",
        "[GPU is lost]",
        "",
    )
)

_MIB = 1024 * 1024
# Units to MiB. amd-smi labels MiB as "MB" (its value is bytes // 2**20): the binary meaning is used
# for the decimal-looking labels too, as that is what the AMD tools compute.
_UNIT_TO_BYTES = {
    "b": 1,
    "kb": 1024,
    "kib": 1024,
    "mb": _MIB,
    "mib": _MIB,
    "gb": 1024 * _MIB,
    "gib": 1024 * _MIB,
}

_COMPUTE_CAP_RE = re.compile(r"^\d+\.\d+$")
_NUMBER_WITH_UNIT_RE = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*$")
_CARD_RE = re.compile(r"^card(\d+)$")


def nvidia_smi_argv(fields=NVIDIA_QUERY_FIELDS):
    """Arguments (after the binary) that make nvidia-smi print ``fields`` as bare CSV in MiB."""
    return ["--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"]


def empty_gpu(vendor):
    """A GPU dict with every key present and nothing known."""
    gpu = dict((key, None) for key in GPU_KEYS)
    gpu["vendor"] = vendor
    gpu["unified_memory"] = False
    return gpu


def _is_unavailable(value):
    return value is None or (isinstance(value, str) and value.strip().lower() in _UNAVAILABLE)


def _text(value):
    """A stripped string, or None for an unavailable marker."""
    if _is_unavailable(value):
        return None
    return str(value).strip()


# --------------------------------------------------------------------------------------------
# NVIDIA
# --------------------------------------------------------------------------------------------


def _nvidia_int(value, field, line_no, line):
    if _is_unavailable(value):
        return None
    text = value.strip()
    if text.endswith("MiB"):  # tolerate output made without "nounits"
        text = text[:-3].strip()
    try:
        return int(text)
    except ValueError:
        raise GpuFactsError(
            "nvidia-smi line %d: field %s is %r, expected an integer (MiB) or [N/A]: %r"
            % (line_no, field, value.strip(), line)
        )


def parse_nvidia_smi_csv(text, fields=NVIDIA_QUERY_FIELDS):
    """Parse ``nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits`` output.

    Blank output is an empty list. A line whose column count differs from ``fields`` raises
    :class:`GpuFactsError` naming the line. ``[N/A]`` / ``[Not Supported]`` become None; a GPU
    whose ``memory.total`` is unavailable (GB10 and other unified-memory parts) gets
    ``unified_memory: True``.
    """
    fields = tuple(fields)
    gpus = []
    for line_no, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        columns = [c.strip() for c in line.split(",")]
        if len(columns) != len(fields):
            raise GpuFactsError(
                "nvidia-smi line %d has %d comma-separated fields, expected %d (%s): %r"
                % (line_no, len(columns), len(fields), ", ".join(fields), line)
            )
        row = dict(zip(fields, columns))
        gpu = empty_gpu("nvidia")

        index = row.get("index")
        if index is not None:
            try:
                gpu["index"] = int(index)
            except ValueError:
                raise GpuFactsError(
                    "nvidia-smi line %d: field index is %r, expected an integer: %r" % (line_no, index, line)
                )
        gpu["name"] = _text(row.get("name"))
        gpu["uuid"] = _text(row.get("uuid"))
        gpu["pci_bus_id"] = _text(row.get("pci.bus_id"))
        gpu["driver_version"] = _text(row.get("driver_version"))
        for field, key in (
            ("memory.total", "memory_total_mib"),
            ("memory.used", "memory_used_mib"),
            ("memory.free", "memory_free_mib"),
        ):
            if field in row:
                gpu[key] = _nvidia_int(row[field], field, line_no, line)

        compute_cap = _text(row.get("compute_cap"))
        if compute_cap is not None and not _COMPUTE_CAP_RE.match(compute_cap):
            raise GpuFactsError(
                "nvidia-smi line %d: field compute_cap is %r, expected MAJOR.MINOR such as 9.0: %r"
                % (line_no, compute_cap, line)
            )
        gpu["compute_capability"] = compute_cap
        gpu["unified_memory"] = "memory.total" in row and gpu["memory_total_mib"] is None
        gpus.append(gpu)
    return gpus


# --------------------------------------------------------------------------------------------
# AMD
# --------------------------------------------------------------------------------------------


def _to_bytes(value, default_unit, what):
    """An AMD memory figure in bytes (None when unavailable).

    Accepts a bare number (in ``default_unit``), a string such as "196592 MB" or "68702699520",
    or amd-smi's ``{"value": 196592, "unit": "MB"}``.
    """
    unit = default_unit
    if isinstance(value, dict):
        unit = value.get("unit") or default_unit
        value = value.get("value")
    if _is_unavailable(value):
        return None
    if isinstance(value, bool):
        raise GpuFactsError("%s is %r, expected a memory size" % (what, value))
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        match = _NUMBER_WITH_UNIT_RE.match(value)
        if not match:
            raise GpuFactsError("%s is %r, expected a whole number with an optional unit such as MB" % (what, value))
        number = int(match.group(1))
        if match.group(2):
            unit = match.group(2)
    else:
        raise GpuFactsError("%s is %r, expected a memory size" % (what, value))
    factor = _UNIT_TO_BYTES.get(str(unit).strip().lower())
    if factor is None:
        raise GpuFactsError(
            "%s has unit %r, expected one of %s" % (what, unit, ", ".join(sorted(_UNIT_TO_BYTES)))
        )
    return number * factor


def _mib(num_bytes):
    """Whole MiB, rounding a partial MiB down; None stays None."""
    return None if num_bytes is None else num_bytes // _MIB


def _to_mib(value, default_unit, what):
    return _mib(_to_bytes(value, default_unit, what))


def _load_json(text, tool):
    try:
        return json.loads(text)
    except ValueError as exc:
        snippet = text.strip().splitlines()[0][:200] if text.strip() else ""
        raise GpuFactsError("%s did not print JSON (%s): %r" % (tool, exc, snippet))


def _amd_smi_entries(text, what):
    """The per-GPU list from amd-smi JSON: a bare list (older) or {"gpu_data": [...]} (newer)."""
    if text is None or not text.strip():
        return []
    data = _load_json(text, what)
    if isinstance(data, dict):
        if "gpu_data" not in data:
            raise GpuFactsError(
                "%s printed a JSON object without a gpu_data list (keys: %s)" % (what, ", ".join(sorted(data)))
            )
        data = data["gpu_data"]
    if not isinstance(data, list):
        raise GpuFactsError("%s printed JSON %s, expected a list of GPUs" % (what, type(data).__name__))
    entries = []
    for position, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise GpuFactsError("%s entry %d is %r, expected an object" % (what, position, entry))
        if "gpu" not in entry and ("cpu" in entry or "core" in entry):
            continue  # amd-smi also lists EPYC CPUs when amd_hsmp is loaded
        entries.append(entry)
    return entries


def _amd_gpu_index(entry, position, what):
    index = entry.get("gpu", position)
    try:
        return int(index)
    except (TypeError, ValueError):
        raise GpuFactsError("%s entry %d has gpu %r, expected an integer" % (what, position, index))


def _section(entry, key):
    section = entry.get(key)
    return section if isinstance(section, dict) else {}


def parse_amd_smi_json(static_text, metric_text=None):
    """Parse ``amd-smi static --asic --bus --driver --vram --json`` (+ ``metric --mem-usage --json``).

    Both amd-smi JSON shapes are read: a bare list of GPU objects and ``{"gpu_data": [...]}``;
    sizes as ``{"value": N, "unit": "MB"}``, as "N MB" strings or as bare numbers in MB (MiB).
    ``metric_text`` adds used/free memory; without it those stay None.
    """
    gpus = []
    by_index = {}
    for position, entry in enumerate(_amd_smi_entries(static_text, "amd-smi static")):
        index = _amd_gpu_index(entry, position, "amd-smi static")
        asic = _section(entry, "asic")
        bus = _section(entry, "bus")
        driver = _section(entry, "driver")
        vram = _section(entry, "vram")
        gpu = empty_gpu("amd")
        gpu["index"] = index
        gpu["name"] = _text(asic.get("market_name"))
        gpu["arch"] = _text(asic.get("target_graphics_version"))
        gpu["pci_bus_id"] = _text(bus.get("bdf"))
        gpu["driver_version"] = _text(driver.get("version", driver.get("driver_version")))
        # Newer amd-smi: vram.size = {"value": N, "unit": "MB"}; older: vram.vram_size_mb = N.
        size = vram.get("size", vram.get("vram_size_mb"))
        gpu["memory_total_mib"] = _to_mib(size, "MB", "amd-smi gpu %d vram size" % index)
        gpus.append(gpu)
        by_index[index] = gpu

    for position, entry in enumerate(_amd_smi_entries(metric_text, "amd-smi metric")):
        index = _amd_gpu_index(entry, position, "amd-smi metric")
        gpu = by_index.get(index)
        if gpu is None:
            continue
        usage = _section(entry, "mem_usage")
        label = "amd-smi gpu %d mem_usage %%s" % index
        if gpu["memory_total_mib"] is None:
            gpu["memory_total_mib"] = _to_mib(usage.get("total_vram"), "MB", label % "total_vram")
        gpu["memory_used_mib"] = _to_mib(usage.get("used_vram"), "MB", label % "used_vram")
        gpu["memory_free_mib"] = _to_mib(usage.get("free_vram"), "MB", label % "free_vram")
        if gpu["memory_free_mib"] is None and None not in (gpu["memory_total_mib"], gpu["memory_used_mib"]):
            gpu["memory_free_mib"] = gpu["memory_total_mib"] - gpu["memory_used_mib"]

    for gpu in gpus:
        # MI300A-style APUs report no VRAM: their memory is the host's.
        gpu["unified_memory"] = gpu["memory_total_mib"] is None
    return gpus


def _lower_keys(mapping):
    return dict((str(k).strip().lower(), v) for k, v in mapping.items())


def parse_rocm_smi_json(text):
    """Parse ``rocm-smi --showproductname --showbus --showdriverversion --showmeminfo vram --json``.

    The JSON maps ``cardN`` to string fields ("VRAM Total Memory (B)", "Card Series" or
    "Card series" depending on the version, ...) plus an optional ``system`` block with the driver
    version. Bytes are converted to MiB; free memory is total minus used.
    """
    if text is None or not text.strip():
        return []
    data = _load_json(text, "rocm-smi")
    if not isinstance(data, dict):
        raise GpuFactsError("rocm-smi printed JSON %s, expected an object of cards" % type(data).__name__)
    system = data.get("system")
    driver_version = None
    if isinstance(system, dict):
        driver_version = _text(_lower_keys(system).get("driver version"))

    gpus = []
    for key in data:
        match = _CARD_RE.match(str(key))
        if not match:
            continue
        card = data[key]
        if not isinstance(card, dict):
            raise GpuFactsError("rocm-smi %s is %r, expected an object" % (key, card))
        fields = _lower_keys(card)
        gpu = empty_gpu("amd")
        gpu["index"] = int(match.group(1))
        gpu["name"] = _text(fields.get("card series", fields.get("device name")))
        gpu["uuid"] = _text(fields.get("unique id"))
        gpu["pci_bus_id"] = _text(fields.get("pci bus"))
        gpu["arch"] = _text(fields.get("gfx version"))
        gpu["driver_version"] = driver_version
        total = _to_bytes(fields.get("vram total memory (b)"), "B", "rocm-smi %s VRAM Total Memory (B)" % key)
        used = _to_bytes(fields.get("vram total used memory (b)"), "B", "rocm-smi %s VRAM Total Used Memory (B)" % key)
        gpu["memory_total_mib"] = _mib(total)
        gpu["memory_used_mib"] = _mib(used)
        if total is not None and used is not None:
            # From bytes, so a partial MiB in use never shows up as free.
            gpu["memory_free_mib"] = _mib(max(total - used, 0))
        gpu["unified_memory"] = total is None
        gpus.append(gpu)
    gpus.sort(key=lambda g: g["index"])
    return gpus


# --------------------------------------------------------------------------------------------
# Probing
# --------------------------------------------------------------------------------------------


def _first_line(*texts):
    for text in texts:
        for line in (text or "").splitlines():
            if line.strip():
                return line.strip()
    return ""


def _run(run, argv):
    """Call ``run``; an OSError (not executable, vanished) becomes rc 127 with its message."""
    try:
        rc, out, err = run(list(argv))
    except OSError as exc:
        return 127, "", str(exc)
    return rc, out or "", err or ""


def _collect_nvidia(path, run, warnings):
    argv = [path] + nvidia_smi_argv()
    rc, out, err = _run(run, argv)
    fields = NVIDIA_QUERY_FIELDS
    if rc != 0 and "compute_cap" in out + err and "is not a valid field" in out + err:
        fields = NVIDIA_LEGACY_QUERY_FIELDS
        rc, out, err = _run(run, [path] + nvidia_smi_argv(fields))
        if rc == 0:
            warnings.append(
                "nvidia-smi does not know the compute_cap field (driver older than R510): "
                "compute_capability is null for NVIDIA GPUs"
            )
    if rc != 0:
        warnings.append(
            "nvidia-smi failed (rc=%d), so no NVIDIA GPU is reported: %s" % (rc, _first_line(out, err) or "no output")
        )
        return None
    return parse_nvidia_smi_csv(out, fields)


def _collect_amd_smi(path, run, warnings, has_fallback):
    rc, out, err = _run(run, [path] + list(AMD_SMI_STATIC_ARGS))
    consequence = "trying rocm-smi" if has_fallback else "so no AMD GPU is reported"
    if rc != 0:
        warnings.append(
            "amd-smi static failed (rc=%d), %s: %s" % (rc, consequence, _first_line(err, out) or "no output")
        )
        return None
    if not out.strip() and err.strip():
        warnings.append("amd-smi static printed nothing, %s: %s" % (consequence, _first_line(err)))
        return None
    metric_out = None
    if out.strip():
        m_rc, m_out, m_err = _run(run, [path] + list(AMD_SMI_METRIC_ARGS))
        if m_rc != 0:
            warnings.append(
                "amd-smi metric --mem-usage failed (rc=%d), so AMD memory used/free are null: %s"
                % (m_rc, _first_line(m_err, m_out) or "no output")
            )
        else:
            metric_out = m_out
    return parse_amd_smi_json(out, metric_out)


def _collect_rocm_smi(path, run, warnings):
    rc, out, err = _run(run, [path] + list(ROCM_SMI_ARGS))
    if rc != 0:
        warnings.append(
            "rocm-smi failed (rc=%d), so no AMD GPU is reported: %s" % (rc, _first_line(err, out) or "no output")
        )
        return None
    return parse_rocm_smi_json(out)


def module_tools(module, paths=None):
    """The ``which`` and ``run`` of :func:`collect_gpus` for an ``AnsibleModule``: a tool is the path ``paths`` gives
    for it (``{"nvidia-smi": "/usr/local/nvidia/bin/nvidia-smi"}``), else found with ``get_bin_path`` (also in
    :data:`TOOL_EXTRA_DIRS`); it runs with ``run_command`` under ``LC_ALL=C``, and a tool that cannot be executed
    raises ``OSError`` (:func:`collect_gpus` makes that a warning, not a failed task)."""
    paths = dict(paths or {})

    def which(name):
        return paths.get(name) or module.get_bin_path(name, opt_dirs=list(TOOL_EXTRA_DIRS.get(name, ())))

    def run(argv):
        return module.run_command(argv, environ_update={"LC_ALL": "C"}, handle_exceptions=False)

    return which, run


def collect_gpus(which, run, vendors=VENDORS):
    """Probe the host for GPUs of ``vendors`` with injected I/O.

    ``which(name)`` returns the path of a tool or None; ``run(argv)`` returns
    ``(rc, stdout, stderr)``. A missing tool means no GPU of that vendor. A tool that fails is
    no GPU of that vendor plus a warning. For AMD, amd-smi is preferred and rocm-smi is the
    fallback (also when amd-smi fails). Unreadable output raises :class:`GpuFactsError`.

    Returns ``{"gpus", "gpu_count", "source", "sources", "warnings"}``: ``sources`` lists the tools
    whose output was read (in order nvidia-smi, amd-smi, rocm-smi), ``source`` is the first of
    them or None.
    """
    unknown = [v for v in vendors if v not in VENDORS]
    if unknown:
        raise GpuFactsError("unknown vendor(s) %s, expected %s" % (", ".join(unknown), ", ".join(VENDORS)))
    gpus = []
    sources = []
    warnings = []

    if "nvidia" in vendors:
        path = which("nvidia-smi")
        if path:
            found = _collect_nvidia(path, run, warnings)
            if found is not None:
                gpus.extend(found)
                sources.append("nvidia-smi")

    if "amd" in vendors:
        found = None
        amd_smi = which("amd-smi")
        rocm_smi = which("rocm-smi")
        if amd_smi:
            found = _collect_amd_smi(amd_smi, run, warnings, has_fallback=bool(rocm_smi))
            if found is not None:
                sources.append("amd-smi")
        if found is None and rocm_smi:
            found = _collect_rocm_smi(rocm_smi, run, warnings)
            if found is not None:
                sources.append("rocm-smi")
        if found:
            gpus.extend(found)

    return {
        "gpus": gpus,
        "gpu_count": len(gpus),
        "source": sources[0] if sources else None,
        "sources": sources,
        "warnings": warnings,
    }
