# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet preflight report: one data model from the hosts' ``capacity_check`` results, and its console summary.

Controller-only (the fleet_report filters import it), pure functions, standard library only.

Two shapes of input, one report:

* one model: each host's ``capacity_check`` result; the matrix has one column, the model.
* candidates: each host's results for every candidate model and its ``model_selection.select`` outcome; the matrix
  has hosts x candidates, and each row says which candidate was chosen for the host and why.

The report (a dict, written as JSON) has ``title``, ``model``, ``sizing`` (one model only), ``mode`` (``single`` or
``candidates``), ``scenario``, ``reserve``, ``candidates`` (one entry per matrix column, with per-candidate totals),
``hosts`` (one row per host, with ``chosen``, ``justification`` and, for a CPU target, its ``cpu_plan``), ``matrix``
(``host -> candidate key -> cell``, each cell with its ``state`` and its words), ``groups`` (the matrix's row groups,
data-centre GPUs first), ``outcomes`` (hosts with the same outcome together, with every rejection), ``totals`` and
``rules`` (the selection rules in words).

It is the one source of every rendering: the console summary (:func:`summary_lines`), the Markdown and HTML pages
(``roles/preflight/templates/preflight.{md,html}.j2``, which only lay out what is here) and the JSON file, so they
cannot disagree.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.deploy.plugins.module_utils import model_selection, sizing
from ansible_collections.llmops.deploy.plugins.plugin_utils import calibration as calibration_lib

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
           "chosen_model": None, "justification": None, "summary": None, "preferred_over": [], "target": None,
           "cpu_plan": None, "calibration": None, "calibration_parts": [], "cells": {}}
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
    row["target"] = result.get("target") or "gpu"
    row["cpu_plan"] = cpu_plan_summary(result.get("sizing"), result.get("resources"))
    # A plan made with constants an earlier trial measured on this GPU (the calibration file) says where they are from.
    # Each measured constant with the modelled value beside it (calibration_parts), in words (calibration).
    memory = (result.get("gpu_plan") or {}).get("engine_memory") or {}
    row["calibration"] = memory.get("calibration_note")
    row["calibration_parts"] = list(memory.get("calibration_parts") or [])


def cpu_plan_summary(sized, resources=None):
    """A CPU target's plan as the reports show it, from a CPU-target sizing (its ``cpu_plan``); None otherwise.

    Host RAM = weights + the engine's KV-cache space + its runtime, the cores the guide gives for the model, and the
    guide's CPU-memory rule beside them. No GPU figure.
    """
    plan = (sized or {}).get("cpu_plan") if isinstance(sized, dict) else None
    if not isinstance(plan, dict):
        return None
    cores = (resources or {}).get("cpu_cores") or {}
    return {
        "host_ram_gb": plan.get("host_ram_gb"),
        "host_ram_with_reserve_gb": plan.get("host_ram_with_reserve_gb"),
        "weights_gb": plan.get("weights_gb"),
        "kv_cache_space_gib": plan.get("kv_cache_space_gib"),
        "kv_cache_tokens": plan.get("kv_cache_tokens"),
        "runtime_gb": plan.get("runtime_gb"),
        "guide_cpu_memory_gb": plan.get("guide_cpu_memory_gb"),
        "cpu_cores_label": sized.get("cpu_cores_label"),
        "cpu_cores_verdict": cores.get("verdict"),
        "text": cpu_plan_text(plan, sized.get("cpu_cores_label")),
    }


def cpu_plan_text(plan, cores_label=None):
    """'host RAM 8.8 GB (weights 4.2 GB + KV-cache space 4 GiB + runtime 1.9 GB), 8 cores; the guide's CPU-memory rule
    (parameter memory x 2): 8.4 GB'."""
    text = "host RAM %s GB (weights %s GB + KV-cache space %s GiB" % (
        plan.get("host_ram_gb"), plan.get("weights_gb"), plan.get("kv_cache_space_gib"))
    if plan.get("kv_cache_tokens"):
        text += ", %s tokens" % "{:,}".format(plan["kv_cache_tokens"])
    text += " + runtime %s GB)" % plan.get("runtime_gb")
    if cores_label:
        text += ", %s cores" % cores_label
    return text + "; the guide's CPU-memory rule (parameter memory x 2): %s GB" % plan.get("guide_cpu_memory_gb")


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
        row["cpu_plan"] = None
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


def _unchecked_cell(row, reason=None):
    verdict = row["verdict"] if row["verdict"] in ("unreachable", "failed") else "unchecked"
    reason = reason or "; ".join(row["reasons"]) or "not checked"
    return {"verdict": verdict, "status": "rejected", "rule": "unchecked", "reason": reason, "reasons": [reason],
            "gpus_needed": None, "gpus_minimum": None, "gpu_plan": None, "max_context_length": None,
            "gpu_memory_gb": None, "rank": None}


def _column_keys(columns):
    return [c["key"] for c in columns]


def calibration_section(rows, calibrations=None):
    """What the report says about the calibration file: ``{'hosts': [hosts planned with measured constants],
    'warnings': [...]}``.

    ``calibrations`` is what llmops.deploy.calibration_lookup_all returned (``{'calibrations', 'warnings'}``, or
    just the list): the entries it left out (another engine version, too old, malformed), the constants no host of
    the report plans on (its GPU), and each host whose GPU has constants its plan did not use are all warnings here,
    so no measured figure is dropped without a word. A host's own warning is also added to its row.
    """
    if isinstance(calibrations, dict):
        found, warnings = calibrations.get("calibrations") or [], list(calibrations.get("warnings") or [])
    else:
        found, warnings = calibrations or [], []
    reported = dict((row["host"], row["gpus"]) for row in rows if row.get("target") != "cpu")
    warnings += calibration_lib.unmatched_warnings(found, reported)
    for row in rows:
        memory = (row.get("gpu_plan") or {}).get("engine_memory") or {}
        if not found or row["calibration"] or not memory or memory.get("calibration_ignored"):
            continue
        key = calibration_lib.gpu_class_of((row["gpus"] or [None])[0])
        for constants in found:
            if isinstance(constants, dict) and calibration_lib.constants_class(constants) == key:
                line = ("calibration not used by this plan although it was measured on this host's GPU (%s, %s MiB): "
                        "%s on %s, %s, vLLM %s" % (
                            row["gpus"][0].get("name"), row["gpus"][0].get("memory_total_mib"), constants.get("gpu"),
                            constants.get("host") or "an unnamed host", constants.get("date") or "date unknown",
                            constants.get("engine_version")))
                row["warnings"].append(line)
                warnings.append("%s: %s" % (row["host"], line))
                break
    return {"hosts": [row["host"] for row in rows if row["calibration"]], "warnings": warnings}


def build_report(rows, sizing_result=None, model=None, scenario=None, candidates=None, reserve=None,
                 calibrations=None):
    """The whole report: sizing (one model), rows sorted by group then host, the matrix, totals.

    ``candidates`` (normalised candidates or evaluations, in order) are the matrix columns and make this a
    candidates report; without them it is a one-model report whose column is the model. ``calibrations`` (what
    llmops.deploy.calibration_lookup_all returned) adds the ``calibration`` section (calibration_section).
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
        report["sizing"]["target"] = sizing_result.get("target") or "gpu"
        report["sizing"]["cpu_plan"] = cpu_plan_summary(sizing_result)
        report["sizing"]["seed"] = sizing.seed_comparison(sizing_result)
        report["sizing"]["seed_line"] = seed_comparison_line(report["sizing"])
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
    report["calibration"] = calibration_section(rows, calibrations)
    _add_words(report)
    return report


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
                if row.get("cpu_plan"):
                    needed = ", CPU target: %s" % row["cpu_plan"]["text"]
                if row.get("calibration"):
                    needed += "; engine constants %s" % row["calibration"]
                lines.append("%s: %s (%s%s)" % (row["host"], row["chosen"], row["verdict"].upper(), needed))
            else:
                lines.append("%s: no candidate (%s) - %s" % (row["host"], row["verdict"].upper(),
                                                             "; ".join(row["reasons"])))
        return lines + _calibration_lines(report)
    head = "%s at %s: %d host(s) - fits %d, tight %d, insufficient %d, failed %d, unreachable %d" % (
        report.get("model") or s.get("params_label"), s.get("precision_label"), t["hosts"], t["fits"], t["tight"],
        t["insufficient"], t["failed"], t["unreachable"])
    lines = [head]
    for row in report["hosts"]:
        needed = "" if not row["gpus_needed"] else ", needs %s GPU(s)" % row["gpus_needed"]
        what = "GPUs: %s%s" % (row["gpu_summary"], needed)
        if row.get("cpu_plan"):
            what = "CPU target: %s" % row["cpu_plan"]["text"]
        if row.get("calibration"):
            what += "; engine constants %s" % row["calibration"]
        lines.append("%s: %s (%s)%s" % (
            row["host"], row["verdict"].upper(), what,
            "" if row["verdict"] == "fits" else " - " + "; ".join(row["reasons"])))
    return lines + _calibration_lines(report)


def _calibration_lines(report):
    return ["Calibration: %s" % warning for warning in (report.get("calibration") or {}).get("warnings") or []]


# The order of GPU classes in the matrix: data-centre first.
CLASS_ORDER = ("datacenter", "mixed", "consumer", "unknown", "none", "cpu")


def cell_state(cell):
    """What a matrix cell says, in one word: fits, tight, insufficient, unsupported (the GPUs cannot run the
    precision), band (outside the scenario's sizes), unreachable, failed or unchecked."""
    if cell.get("rule") == "band":
        return "band"
    if cell.get("rule") == "capability":
        return "unsupported"
    verdict = cell.get("verdict")
    return verdict if verdict in CELL_VERDICTS else "unchecked"


def _gpus(count):
    return "%s GPU%s" % (count, "" if count == 1 else "s")


def cell_note(cell, row, scenario=None):
    """The gist of a rejected cell in a few words (the GPUs needed against those the host has, no GPU, outside the
    band, no connection); None for a cell that is not rejected."""
    if cell.get("status") != "rejected":
        return None
    rule = cell.get("rule")
    reason = cell.get("reason") or ""
    if rule == "band":
        return "outside %s" % scenario["params_band"] if scenario else "outside the scenario's band"
    if rule == "capability":
        return reason.split(",")[0]
    if rule == "unchecked":
        if cell.get("verdict") == "unreachable":
            return "no connection"
        return "not a candidate here" if reason == "not a candidate on this host" else "see the reasons below"
    if rule == "resources" or cell.get("verdict") == "insufficient":
        needed = cell.get("gpus_needed")
        if reason.startswith("needs") and "GPU memory" in reason:
            if needed and row.get("gpu_count") is not None:
                return "needs %s, has %s" % (_gpus(needed), row["gpu_count"])
            return reason.split(" (")[0]
        if reason.startswith("no GPU"):
            return "no GPU"
        return reason.split(";")[0].split(" (")[0][:60]
    return None


def cell_detail(cell, show_context):
    """The GPUs and context of an eligible cell: '2 GPUs · ctx 32k', '1 GPU without reserve'."""
    parts = []
    if cell.get("verdict") == "tight" and cell.get("gpus_minimum"):
        parts.append("%s without reserve" % _gpus(cell["gpus_minimum"]))
    elif cell.get("gpus_needed"):
        parts.append(_gpus(cell["gpus_needed"]))
    if show_context:
        parts.append("ctx %s" % context_label(cell.get("max_context_length")))
    return " \u00b7 ".join(parts)


def gb_glance(value):
    """GB for a glance: 1099.512 -> '1100', 85.899 -> '85.9', 40.0 -> '40', None -> '?'."""
    if value is None:
        return "?"
    if value >= 100:
        return "%d" % round(value)
    return ("%.1f" % value).rstrip("0").rstrip(".")


def group_rows(rows):
    """The matrix's row groups: ``[{name, gpu_class, gpu_class_label, gpu_summary, rows}]``, data-centre groups
    first; ``rows`` are indexes into ``rows``, by host name.

    A group's class is the best-known class of its hosts (an unreachable host does not hide the others').
    """
    by_group = {}
    order = []
    for index, row in enumerate(rows):
        name = row["groups"][0] if row["groups"] else "ungrouped"
        if name not in by_group:
            by_group[name] = []
            order.append(name)
        by_group[name].append(index)
    groups = []
    for name in order:
        members = sorted(by_group[name], key=lambda i: rows[i]["host"])
        known = [rows[i] for i in members if rows[i].get("gpu_class") not in (None, "unknown")]
        cls = known[0]["gpu_class"] if known else "unknown"
        summaries = sorted(set(r["gpu_summary"] for r in (known or [rows[i] for i in members])))
        groups.append({"name": name, "gpu_class": cls, "gpu_class_label": GPU_CLASS_LABELS.get(cls, cls),
                       "gpu_summary": "; ".join(summaries), "rows": members})
    groups.sort(key=lambda g: (CLASS_ORDER.index(g["gpu_class"]) if g["gpu_class"] in CLASS_ORDER
                               else len(CLASS_ORDER), g["name"]))
    return groups


def outcome_blocks(report):
    """Hosts with the same outcome together, in matrix order: ``[{hosts, row, kind, rejections, rejections_line}]``.

    ``row`` is the index of the first such host in ``report["hosts"]``; ``kind`` is ``chosen``, ``not_deployable``
    (one model, or no candidate was even judged) or ``none_chosen``; ``rejections`` (``[{key, reason}]``) are the
    candidates to list as rejected, or ``rejections_line`` the one line when they all share a cause.
    """
    blocks = []
    index = {}
    several = len(report["candidates"]) > 1
    for group in report["groups"]:
        for position in group["rows"]:
            row = report["hosts"][position]
            cells = report["matrix"][row["host"]]
            rejected = tuple((c["key"], cells[c["key"]].get("reason") or "") for c in report["candidates"]
                             if cells[c["key"]].get("status") == "rejected")
            key = (row["chosen"], row["justification"], tuple(row["reasons"]) if not row["chosen"] else (), rejected)
            if key in index:
                blocks[index[key]]["hosts"].append(row["host"])
                continue
            index[key] = len(blocks)
            if row["chosen"]:
                kind = "chosen"
            elif not several or not rejected:
                kind = "not_deployable"
            else:
                kind = "none_chosen"
            items = [{"key": k, "reason": r} for k, r in rejected]
            lines = model_selection.rejection_lines(items) if items else []
            block = {"hosts": [row["host"]], "row": position, "kind": kind, "rejections": [],
                     "rejections_line": None}
            if items and several and lines[0].startswith("every candidate: "):
                block["rejections_line"] = lines[0]
            elif items and (several or row["chosen"]):
                block["rejections"] = items
            blocks.append(block)
    return blocks


def _column_words(column, scen):
    key = column["key"]
    owner, name = key.split("/", 1) if column.get("model") and "/" in key else ("", key)
    spec = [x for x in (column.get("params_label"), column.get("precision_label")) if x]
    if column.get("gpu_memory_gb") is not None:
        spec.append("%s GB" % gb_glance(column["gpu_memory_gb"]))
    seed = column.get("seed")
    column.update({
        "owner": owner + "/" if owner else "",
        "name": name,
        "spec": " \u00b7 ".join(spec),
        "seed_line": seed_comparison_line(column),
        "seed_gpu_memory": gb_glance(seed["gpu_memory_gb"]) if seed and seed.get("differs") else None,
        "recommended": bool(not scen or not column.get("precision")
                            or model_selection.recommended_precision(scen, column["precision"])),
    })


def _add_words(report):
    """What the renderings say beyond the figures, computed once here so every rendering says the same."""
    title = "Fleet preflight"
    if report["mode"] != "candidates" and report.get("model"):
        title += ": %s" % report["model"]
    report["title"] = title
    report["targets"] = sorted(set(row["target"] for row in report["hosts"] if row.get("target")))
    scen = report.get("scenario")
    report["show_context"] = any(cell.get("max_context_length") is not None for cells in report["matrix"].values()
                                 for cell in cells.values())
    for column in report["candidates"]:
        _column_words(column, scen)
    for row in report["hosts"]:
        for cell in report["matrix"][row["host"]].values():
            cell["state"] = cell_state(cell)
            cell["text"] = cell_text(cell)
            cell["note"] = cell_note(cell, row, scen)
            cell["detail"] = "" if cell["note"] else cell_detail(cell, report["show_context"])
    report["groups"] = group_rows(report["hosts"])
    report["outcomes"] = outcome_blocks(report)
