# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet preflight report: one row per host from ``capacity_check`` results, as data, Markdown and a summary.

Two shapes of input, one report:

* one model: each host's ``capacity_check`` result; the matrix has one column, the model.
* candidates: each host's results for every candidate model and its ``model_selection.select`` outcome; the matrix
  has hosts x candidates, and each row says which candidate was chosen for the host and why.

The report (a dict, written as JSON) has ``model``, ``sizing`` (one model only), ``mode`` (``single`` or
``candidates``), ``scenario``, ``candidates`` (one entry per matrix column, with per-candidate totals), ``hosts``
(one row per host, with ``chosen`` and ``justification``), ``matrix`` (``host -> candidate key -> cell``),
``totals`` and ``rules`` (the selection rules in words). The HTML rendering lives in fleet_report_html.

Pure functions, standard library only.
"""

from ansible_collections.llmops.deploy.plugins.module_utils import model_selection, sizing

STATUSES = ("fits", "tight", "insufficient", "failed", "unreachable")
CELL_VERDICTS = STATUSES + ("unchecked",)
CELL_KEYS = ("verdict", "status", "rule", "reason", "reasons", "gpus_needed", "gpus_minimum", "gpu_plan",
             "max_context_length", "gpu_memory_gb", "rank")
GPU_CLASS_LABELS = {
    "datacenter": "data-centre GPUs",
    "consumer": "consumer GPUs",
    "mixed": "mixed GPUs",
    "none": "no GPU",
    "cpu": "CPU only",
    "unknown": "not reported",
}


def _gpu_summary(gpus):
    if gpus is None:
        return "unknown"
    if not gpus:
        return "none"
    counts = {}
    for gpu in gpus:
        counts[gpu.get("name") or "GPU"] = counts.get(gpu.get("name") or "GPU", 0) + 1
    return ", ".join("%d x %s" % (n, name) for name, n in sorted(counts.items()))


def host_row(host, result, groups=None, selection=None):
    """One report row from a host's registered ``capacity_check`` result (or None when the host never reported).

    With ``selection`` (what ``model_selection.select`` returned for the host), ``result`` is the assessment of the
    chosen candidate (or of any candidate when none was chosen) and the row says which candidate was chosen, why,
    and holds one matrix cell per candidate.
    """
    groups = [g for g in (groups or []) if g not in ("all", "ungrouped")]
    row = {"host": host, "groups": groups, "verdict": "unreachable", "gpus": None, "gpu_summary": "unknown",
           "gpu_class": "unknown", "gpu_count": None, "gpu_memory_total_gb": None, "gpu_memory_total_gib": None,
           "ram_gb": None, "cpu_cores": None, "disk_free_gb": None, "gpus_needed": None, "gpu_plan": None,
           "max_context_length": None, "reasons": [], "warnings": [], "probed": [], "chosen": None,
           "chosen_model": None, "justification": None, "summary": None, "preferred_over": [], "cells": {}}
    _fill_from_result(row, result)
    if selection:
        _overlay_selection(row, selection)
    return row


def _fill_from_result(row, result):
    if not result:
        row["reasons"] = ["host did not report (unreachable or skipped)"]
        return
    if result.get("unreachable"):
        row["reasons"] = [result.get("msg") or "host unreachable"]
        return
    if "verdict" not in result:
        row["verdict"] = "failed"
        row["reasons"] = [result.get("msg") or "the check failed"]
        return
    hardware = result.get("hardware") or {}
    gpus = hardware.get("gpus")
    row.update({
        "verdict": result["verdict"],
        "gpus": gpus,
        "gpu_summary": "not used (CPU target)" if result.get("target") == "cpu" else _gpu_summary(gpus),
        "gpu_class": model_selection.host_gpu_class(hardware, result.get("target") or "gpu"),
        "gpu_count": None if gpus is None else len(gpus),
        "gpus_needed": result.get("gpus_needed"),
        "gpu_plan": result.get("gpu_plan"),
        "max_context_length": result.get("max_context_length", (result.get("gpu_plan") or {}).get(
            "max_context_length")),
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


def _cell(evaluation):
    return dict((key, evaluation.get(key)) for key in CELL_KEYS)


def _overlay_selection(row, selection):
    evaluations = selection.get("evaluations") or []
    row["cells"] = dict((e["key"], _cell(e)) for e in evaluations)
    row["chosen"] = selection.get("chosen")
    row["chosen_model"] = selection.get("chosen_model")
    row["justification"] = selection.get("justification")
    row["summary"] = selection.get("summary")
    row["preferred_over"] = list(selection.get("preferred_over") or [])
    if row["gpu_class"] == "unknown" and selection.get("gpu_class"):
        row["gpu_class"] = selection["gpu_class"]
    chosen = selection.get("chosen_candidate")
    if chosen:
        row["verdict"] = chosen["verdict"]
        row["gpus_needed"] = chosen.get("gpus_needed")
        row["max_context_length"] = chosen.get("max_context_length")
        return
    if len(evaluations) == 1 and row["verdict"] in ("fits", "tight") and evaluations[0]["rule"] == "band":
        return  # one model, fits but outside the scenario's band: the verdict stays, nothing is chosen
    verdict = selection.get("verdict") or row["verdict"]
    row["verdict"] = "insufficient" if verdict in ("fits", "tight") else verdict
    rejected = selection.get("rejected") or []
    if len(evaluations) > 1:
        row["gpus_needed"] = None
        row["gpu_plan"] = None
        row["max_context_length"] = None
        if rejected and row["verdict"] not in ("unreachable", "failed"):
            row["reasons"] = model_selection.rejection_lines(rejected)


def seed_comparison_line(column_or_sizing):
    """'Guide's rule (seed): GPU memory 24.1 GB; the detailed method says 61.9 GB (x2.57).' or None."""
    seed = column_or_sizing.get("seed")
    if not seed or not seed.get("differs"):
        return None
    return "Guide's rule (seed method): GPU memory %s GB; the %s method says %s GB (x%s)." % (
        seed["gpu_memory_gb"], column_or_sizing.get("method") or "detailed", column_or_sizing.get("gpu_memory_gb"),
        seed["ratio"])


def candidate_entry(item):
    """The matrix column for a candidate (from an evaluation or a normalised candidate)."""
    return {
        "key": item["key"],
        "model": item.get("model"),
        "params": item.get("params"),
        "params_label": item.get("params_label"),
        "precision": item.get("precision"),
        "precision_label": item.get("precision_label"),
        "summary": item.get("summary"),
        "gpu_memory_gb": item.get("gpu_memory_gb"),
        "method": item.get("method"),
        "seed": item.get("seed"),
    }


def single_model_selection(result, scenario=None):
    """The selection of a one-model preflight: the model is chosen where it fits (and is inside the band)."""
    return model_selection.single_selection(result, scenario)


def _unchecked_cell(row, reason=None):
    verdict = row["verdict"] if row["verdict"] in ("unreachable", "failed") else "unchecked"
    reason = reason or "; ".join(row["reasons"]) or "not checked"
    return {"verdict": verdict, "status": "rejected", "rule": "unchecked", "reason": reason, "reasons": [reason],
            "gpus_needed": None, "gpus_minimum": None, "gpu_plan": None, "max_context_length": None,
            "gpu_memory_gb": None, "rank": None}


def _column_keys(columns):
    return [c["key"] for c in columns]


def build_report(rows, sizing_result=None, model=None, scenario=None, candidates=None, reserve=None):
    """The whole report: sizing (one model), rows sorted by group then host, the matrix, totals.

    ``candidates`` (normalised candidates or evaluations, in order) are the matrix columns and make this a
    candidates report; without them it is a one-model report whose column is the model.
    """
    rows = sorted(rows, key=lambda r: ((r["groups"] or [""])[0], r["host"]))
    totals = dict((status, 0) for status in STATUSES)
    for row in rows:
        totals[row["verdict"]] = totals.get(row["verdict"], 0) + 1
    totals["hosts"] = len(rows)
    totals["deployable"] = totals["fits"] + totals["tight"]
    if reserve is None and sizing_result:
        reserve = sizing_result.get("reserve")
    report = {"model": None if candidates else model or None, "sizing": None,
              "mode": "candidates" if candidates else "single",
              "reserve": reserve,
              "scenario": model_selection.scenario_summary(scenario) if scenario else None,
              "candidates": [], "hosts": rows, "matrix": {}, "totals": totals,
              "rules": model_selection.rules_text()}
    if sizing_result and not candidates:
        report["model"] = sizing_result.get("model") or model or None
        report["sizing"] = dict((key, sizing_result.get(key)) for key in (
            "method", "params", "params_label", "precision", "precision_label", "reserve", "param_memory_gb",
            "gpu_memory_gb", "gpu_memory_gib", "cpu_memory_gb", "cpu_memory_gib", "disk_gb", "cpu_cores",
            "cpu_cores_max", "cpu_cores_label"))
        report["sizing"]["seed"] = sizing.seed_comparison(sizing_result)
    columns = []
    for item in candidates or []:
        if item["key"] not in _column_keys(columns):
            columns.append(candidate_entry(item))
    if not candidates and report["sizing"]:
        s = report["sizing"]
        columns.append({"key": report["model"] or "%s %s" % (s["params_label"], s["precision_label"]),
                        "model": report["model"], "params": s["params"], "params_label": s["params_label"],
                        "precision": s["precision"], "precision_label": s["precision_label"], "summary": None,
                        "gpu_memory_gb": s["gpu_memory_gb"]})
    for row in rows:
        for key in sorted(row["cells"]):
            if key not in _column_keys(columns):
                columns.append(candidate_entry({"key": key}))
    chosen_counts = dict((key, 0) for key in _column_keys(columns))
    for row in rows:
        cells = {}
        for column in columns:
            cell = row["cells"].get(column["key"])
            if cell is None:
                cell = _unchecked_cell(row, "not a candidate on this host" if row["cells"] else None)
            elif column["gpu_memory_gb"] is None and cell.get("gpu_memory_gb") is not None:
                column["gpu_memory_gb"] = cell["gpu_memory_gb"]
            cells[column["key"]] = cell
        row["cells"] = cells
        report["matrix"][row["host"]] = cells
        if row["chosen"] in chosen_counts:
            chosen_counts[row["chosen"]] += 1
    for column in columns:
        counts = dict((verdict, 0) for verdict in CELL_VERDICTS)
        counts.update(eligible=0, rejected=0, out_of_band=0, chosen=chosen_counts[column["key"]])
        for row in rows:
            cell = row["cells"][column["key"]]
            counts[cell["verdict"]] = counts.get(cell["verdict"], 0) + 1
            if cell["status"] == "rejected":
                counts["rejected"] += 1
                counts["out_of_band"] += 1 if cell["rule"] == "band" else 0
            else:
                counts["eligible"] += 1
        column["totals"] = counts
    report["candidates"] = columns
    for row in rows:
        del row["cells"]  # the cells are in report["matrix"]
    totals["chosen"] = chosen_counts
    totals["with_choice"] = sum(1 for row in rows if row["chosen"])
    totals["without_choice"] = len(rows) - totals["with_choice"]
    return report


def _value(value, suffix=""):
    if value is None:
        return "?"
    return "%s%s" % (value, suffix)


def _md_escape(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def context_label(tokens):
    """``32768`` -> ``'32k'``, ``131072`` -> ``'128k'``, None -> ``'-'``."""
    if tokens is None:
        return "-"
    tokens = int(tokens)
    if tokens >= 1024 and tokens % 1024 == 0:
        return "%dk" % (tokens // 1024)
    if tokens >= 1000:
        return "%.1fk" % (tokens / 1000.0)
    return str(tokens)


def cell_text(cell):
    """A matrix cell in a few words: ``'fits, 2 GPU(s), ctx 32k'``, ``'out of band: 32B is outside ...'``."""
    if cell["status"] == "rejected" and cell["rule"] in ("band", "capability"):
        return "%s: %s" % ("out of band" if cell["rule"] == "band" else "unsupported", cell["reason"])
    if cell["verdict"] in ("unreachable", "failed", "unchecked"):
        return cell["verdict"]
    text = cell["verdict"]
    if cell["verdict"] == "tight" and cell.get("gpus_minimum"):
        text += ", %s GPU(s) without the reserve" % cell["gpus_minimum"]
    elif cell["verdict"] == "insufficient" and cell.get("gpus_needed"):
        text += ", needs %s GPU(s)" % cell["gpus_needed"]
    elif cell.get("gpus_needed"):
        text += ", %s GPU(s)" % cell["gpus_needed"]
    if cell.get("max_context_length") is not None:
        text += ", ctx %s" % context_label(cell["max_context_length"])
    return text


def _scenario_line(report):
    scen = report.get("scenario")
    if not scen:
        return None
    return "Scenario: **%s** - %s, models %s at %s (guide 3.1)." % (
        scen["name"], scen["label"], scen["params_band"], scen["precisions_label"])


def render_markdown(report):
    """A Markdown document: the sizing (one model) or the candidates, one table row per host, then the matrix."""
    lines = ["# Fleet preflight", ""]
    s = report.get("sizing")
    candidates_mode = report.get("mode") == "candidates"
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
        if seed_comparison_line(s):
            lines += [seed_comparison_line(s), ""]
    if _scenario_line(report):
        lines += [_scenario_line(report), ""]
    if candidates_mode:
        lines.append("Candidates (%d):" % len(report["candidates"]))
        for column in report["candidates"]:
            lines.append("- `%s` - %s parameters at %s, GPU memory %s GB; chosen on %d host(s)" % (
                column["key"], column["params_label"], column["precision_label"], _value(column["gpu_memory_gb"]),
                column["totals"]["chosen"]))
            if seed_comparison_line(column):
                lines.append("  %s" % seed_comparison_line(column))
        lines.append("")
    t = report["totals"]
    lines += ["Hosts: %d - fits %d, tight %d, insufficient %d, failed %d, unreachable %d." % (
        t["hosts"], t["fits"], t["tight"], t["insufficient"], t["failed"], t["unreachable"]), ""]
    header = "| Host | Group | GPUs | VRAM (GB) | RAM (GB) | Cores | Disk free (GB) | Verdict | GPUs needed | Reasons |"
    rule = "|---|---|---|---|---|---|---|---|---|---|"
    if candidates_mode:
        header += " Chosen |"
        rule += "---|"
    lines += [header, rule]
    for row in report["hosts"]:
        reasons = row["reasons"] + ["warning: %s" % w for w in row["warnings"]]
        line = "| %s | %s | %s | %s | %s | %s | %s | **%s** | %s | %s |" % (
            _md_escape(row["host"]), _md_escape(", ".join(row["groups"]) or "-"), _md_escape(row["gpu_summary"]),
            _value(row["gpu_memory_total_gb"]), _value(row["ram_gb"]), _value(row["cpu_cores"]),
            _value(row["disk_free_gb"]), row["verdict"], _value(row["gpus_needed"]),
            _md_escape("; ".join(reasons)) or "-")
        if candidates_mode:
            line += " %s |" % (_md_escape(row["chosen"]) if row["chosen"] else "none")
        lines.append(line)
    lines.append("")
    if candidates_mode:
        lines += _markdown_matrix(report)
    return "\n".join(lines)


def _markdown_matrix(report):
    keys = [c["key"] for c in report["candidates"]]
    lines = ["## Hosts x candidates", "",
             "| Host | " + " | ".join(_md_escape(k) for k in keys) + " |",
             "|---|" + "---|" * len(keys)]
    for row in report["hosts"]:
        cells = []
        for key in keys:
            text = _md_escape(cell_text(report["matrix"][row["host"]][key]))
            cells.append("**CHOSEN: %s**" % text if row["chosen"] == key else text)
        lines.append("| %s | %s |" % (_md_escape(row["host"]), " | ".join(cells)))
    lines += ["", "## Why", ""]
    for row in report["hosts"]:
        lines.append("- **%s**: %s" % (_md_escape(row["host"]), _md_escape(
            row["justification"] if row["chosen"] else "; ".join(row["reasons"]) or "-")))
    lines.append("")
    return lines


def summary_lines(report):
    """Short lines for the terminal: the totals, then one line per host."""
    t = report["totals"]
    s = report.get("sizing") or {}
    if report.get("mode") == "candidates":
        scen = report.get("scenario")
        head = "%d candidate(s)%s: %d host(s) - a model chosen on %d, fits %d, tight %d, insufficient %d, failed %d, " \
               "unreachable %d" % (len(report["candidates"]), " for the %s scenario" % scen["name"] if scen else "",
                                   t["hosts"], t["with_choice"], t["fits"], t["tight"], t["insufficient"], t["failed"],
                                   t["unreachable"])
        lines = [head]
        for row in report["hosts"]:
            if row["chosen"]:
                needed = "" if not row["gpus_needed"] else ", %s GPU(s)" % row["gpus_needed"]
                lines.append("%s: %s (%s%s)" % (row["host"], row["chosen"], row["verdict"].upper(), needed))
            else:
                lines.append("%s: no candidate (%s) - %s" % (row["host"], row["verdict"].upper(),
                                                             "; ".join(row["reasons"])))
        return lines
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
