# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet preflight report: one row per host from ``capacity_check`` results, as data, Markdown and a summary.

Pure functions, standard library only.
"""

from ansible_collections.llmops.deploy.plugins.module_utils import sizing

STATUSES = ("fits", "tight", "insufficient", "failed", "unreachable")


def _gpu_summary(gpus):
    if gpus is None:
        return "unknown"
    if not gpus:
        return "none"
    counts = {}
    for gpu in gpus:
        counts[gpu.get("name") or "GPU"] = counts.get(gpu.get("name") or "GPU", 0) + 1
    return ", ".join("%d x %s" % (n, name) for name, n in sorted(counts.items()))


def host_row(host, result, groups=None):
    """One report row from a host's registered ``capacity_check`` result (or None when the host never reported)."""
    groups = [g for g in (groups or []) if g not in ("all", "ungrouped")]
    row = {"host": host, "groups": groups, "verdict": "unreachable", "gpus": None, "gpu_summary": "unknown",
           "gpu_count": None, "gpu_memory_total_gb": None, "gpu_memory_total_gib": None, "ram_gb": None,
           "cpu_cores": None, "disk_free_gb": None, "gpus_needed": None, "gpu_plan": None, "reasons": [],
           "warnings": [], "probed": []}
    if not result:
        row["reasons"] = ["host did not report (unreachable or skipped)"]
        return row
    if result.get("unreachable"):
        row["reasons"] = [result.get("msg") or "host unreachable"]
        return row
    if "verdict" not in result:
        row["verdict"] = "failed"
        row["reasons"] = [result.get("msg") or "the check failed"]
        return row
    hardware = result.get("hardware") or {}
    gpus = hardware.get("gpus")
    row.update({
        "verdict": result["verdict"],
        "gpus": gpus,
        "gpu_summary": "not used (CPU target)" if result.get("target") == "cpu" else _gpu_summary(gpus),
        "gpu_count": None if gpus is None else len(gpus),
        "gpus_needed": result.get("gpus_needed"),
        "gpu_plan": result.get("gpu_plan"),
        "reasons": list(result.get("reasons") or []),
        "warnings": list(result.get("warnings") or []),
        "probed": list(result.get("probed") or []),
    })
    if gpus:
        total = sum(sizing.mib_to_bytes(g["memory_total_mib"]) for g in gpus if g.get("memory_total_mib"))
        row["gpu_memory_total_gb"] = sizing.gb(total)
        row["gpu_memory_total_gib"] = sizing.gib(total)
    if hardware.get("memory_total_mib"):
        row["ram_gb"] = sizing.gb(sizing.mib_to_bytes(hardware["memory_total_mib"]))
    row["cpu_cores"] = hardware.get("cpu_cores")
    if hardware.get("disk_free_mib") is not None:
        row["disk_free_gb"] = sizing.gb(sizing.mib_to_bytes(hardware["disk_free_mib"]))
    return row


def build_report(rows, sizing_result=None, model=None):
    """The whole report: the model's sizing, the rows (sorted by group then host) and totals by verdict."""
    rows = sorted(rows, key=lambda r: ((r["groups"] or [""])[0], r["host"]))
    totals = dict((status, 0) for status in STATUSES)
    for row in rows:
        totals[row["verdict"]] = totals.get(row["verdict"], 0) + 1
    totals["hosts"] = len(rows)
    totals["deployable"] = totals["fits"] + totals["tight"]
    report = {"model": model, "sizing": None, "hosts": rows, "totals": totals}
    if sizing_result:
        report["model"] = sizing_result.get("model") or model
        report["sizing"] = dict((key, sizing_result.get(key)) for key in (
            "method", "params", "params_label", "precision", "precision_label", "reserve", "param_memory_gb",
            "gpu_memory_gb", "gpu_memory_gib", "cpu_memory_gb", "cpu_memory_gib", "disk_gb", "cpu_cores",
            "cpu_cores_max", "cpu_cores_label"))
    return report


def _cell(value, suffix=""):
    if value is None:
        return "?"
    return "%s%s" % (value, suffix)


def _md_escape(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report):
    """A Markdown document: the sizing, then one table row per host."""
    lines = ["# Fleet preflight", ""]
    s = report.get("sizing")
    if s:
        lines += [
            "Model: **%s** - %s parameters at %s (%s method, %d%% reserve)" % (
                report.get("model") or s["params_label"], s["params_label"], s["precision_label"], s["method"],
                round(s["reserve"] * 100)),
            "",
            "Needs: GPU memory %s GB (%s GiB), host RAM %s GB (%s GiB), disk %s GB, CPU cores %s." % (
                s["gpu_memory_gb"], s["gpu_memory_gib"], s["cpu_memory_gb"], s["cpu_memory_gib"], s["disk_gb"],
                s["cpu_cores_label"]),
            "",
        ]
    t = report["totals"]
    lines += ["Hosts: %d - fits %d, tight %d, insufficient %d, failed %d, unreachable %d." % (
        t["hosts"], t["fits"], t["tight"], t["insufficient"], t["failed"], t["unreachable"]), ""]
    lines.append("| Host | Group | GPUs | VRAM (GB) | RAM (GB) | Cores | Disk free (GB) | Verdict | GPUs needed | Reasons |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for row in report["hosts"]:
        reasons = row["reasons"] + ["warning: %s" % w for w in row["warnings"]]
        lines.append("| %s | %s | %s | %s | %s | %s | %s | **%s** | %s | %s |" % (
            _md_escape(row["host"]), _md_escape(", ".join(row["groups"]) or "-"), _md_escape(row["gpu_summary"]),
            _cell(row["gpu_memory_total_gb"]), _cell(row["ram_gb"]), _cell(row["cpu_cores"]),
            _cell(row["disk_free_gb"]), row["verdict"], _cell(row["gpus_needed"]),
            _md_escape("; ".join(reasons)) or "-"))
    lines.append("")
    return "\n".join(lines)


def summary_lines(report):
    """Short lines for the terminal: the totals, then one line per host."""
    t = report["totals"]
    s = report.get("sizing") or {}
    head = "%s at %s: %d host(s) - fits %d, tight %d, insufficient %d, failed %d, unreachable %d" % (
        report.get("model") or s.get("params_label"), s.get("precision_label"), t["hosts"], t["fits"], t["tight"],
        t["insufficient"], t["failed"], t["unreachable"])
    lines = [head]
    for row in report["hosts"]:
        needed = "" if not row["gpus_needed"] else ", needs %s GPU(s)" % row["gpus_needed"]
        lines.append("%s: %s (GPUs: %s%s)%s" % (
            row["host"], row["verdict"].upper(), row["gpu_summary"], needed,
            "" if row["verdict"] == "fits" else " - " + "; ".join(row["reasons"])))
    return lines
