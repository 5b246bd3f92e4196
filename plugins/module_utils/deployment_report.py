# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deployment report of ``deploy-model.yml``: per host, what preflight said and what the deployment did.

Pure functions, standard library only. Each host contributes an *outcome* dict that the playbook assembles::

    {"status": "deployed" | "unchanged" | "planned" | "skipped" | "failed",
     "model": "owner/name", "revision": "master", "model_dir": "/opt/llmops/models/owner/name",
     "files": 6, "bytes_total": 3145851, "bytes_fetched": 0, "verified": "quick", "marker": ".../marker.json",
     "would_fetch_files": 0, "would_fetch_bytes": 0, "sdk_versions": {"modelscope": "1.40.2"}, "reason": "..."}
"""

from ansible_collections.llmops.deploy.plugins.module_utils import sizing

STATUSES = ("deployed", "unchanged", "planned", "skipped", "failed", "unreachable")
OUTCOME_KEYS = ("status", "model", "revision", "model_dir", "files", "bytes_total", "bytes_fetched", "verified",
                "marker", "would_fetch_files", "would_fetch_bytes", "sdk_versions", "reason", "preflight_verdict",
                "gpus_needed", "pickle_files", "code_files")


def host_row(host, outcome, preflight=None):
    """One row: the outcome (or 'unreachable' without one) with the preflight verdict beside it."""
    row = dict((key, None) for key in OUTCOME_KEYS)
    row["host"] = host
    if not outcome:
        row["status"] = "unreachable"
        row["reason"] = "host did not report (unreachable, or its play stopped before the deployment)"
    else:
        for key in OUTCOME_KEYS:
            if key in outcome:
                row[key] = outcome[key]
        if row["status"] not in STATUSES:
            row["reason"] = "unknown status %r; %s" % (row["status"], row["reason"] or "")
            row["status"] = "failed"
    if isinstance(preflight, dict) and preflight.get("verdict"):
        row["preflight_verdict"] = preflight["verdict"]
        row["gpus_needed"] = preflight.get("gpus_needed")
    row["pickle_files"] = list(row["pickle_files"] or [])
    row["code_files"] = list(row["code_files"] or [])
    return row


def build_report(rows, check_mode=False):
    rows = sorted(rows, key=lambda r: r["host"])
    totals = dict((status, 0) for status in STATUSES)
    for row in rows:
        totals[row["status"]] += 1
    totals["hosts"] = len(rows)
    totals["bytes_fetched"] = sum(row["bytes_fetched"] or 0 for row in rows)
    return {"check_mode": bool(check_mode), "hosts": rows, "totals": totals}


def _size(num_bytes):
    if num_bytes is None:
        return "-"
    if num_bytes >= 10 ** 9:
        return "%s GB" % sizing.gb(num_bytes)
    return "%.1f MB" % (num_bytes / 10.0 ** 6)


def _what(row):
    if row["status"] in ("deployed", "unchanged"):
        text = "%s@%s in %s: %s files, %s, %s fetched, verified (%s)" % (
            row["model"], row["revision"], row["model_dir"], row["files"], _size(row["bytes_total"]),
            _size(row["bytes_fetched"] or 0), row["verified"])
        if row["pickle_files"]:
            text += "; pickle weights: %s" % ", ".join(row["pickle_files"])
        if row["code_files"]:
            text += "; repository code (never run): %s" % ", ".join(row["code_files"])
        return text
    if row["status"] == "planned":
        return "would fetch %s files (%s) of %s into %s" % (
            row["would_fetch_files"], _size(row["would_fetch_bytes"]), row["model"], row["model_dir"])
    return row["reason"] or "-"


def _md(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report):
    t = report["totals"]
    lines = ["# Model deployment%s" % (" plan (check mode: nothing changed)" if report["check_mode"] else ""), "",
             "Hosts: %d - deployed %d, unchanged %d, planned %d, skipped %d, failed %d, unreachable %d." % (
                 t["hosts"], t["deployed"], t["unchanged"], t["planned"], t["skipped"], t["failed"],
                 t["unreachable"]), "",
             "| Host | Preflight | Status | Model | Details |", "|---|---|---|---|---|"]
    for row in report["hosts"]:
        lines.append("| %s | %s | **%s** | %s | %s |" % (
            _md(row["host"]), row["preflight_verdict"] or "-", row["status"], _md(row["model"] or "-"),
            _md(_what(row))))
    lines.append("")
    return "\n".join(lines)


def summary_lines(report):
    t = report["totals"]
    lines = ["%s: %d host(s) - deployed %d, unchanged %d, planned %d, skipped %d, failed %d, unreachable %d" % (
        "Plan (check mode)" if report["check_mode"] else "Deployment", t["hosts"], t["deployed"], t["unchanged"],
        t["planned"], t["skipped"], t["failed"], t["unreachable"])]
    for row in report["hosts"]:
        lines.append("%s: %s - %s" % (row["host"], row["status"].upper(), _what(row)))
    return lines
