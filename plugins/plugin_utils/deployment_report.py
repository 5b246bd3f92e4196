# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deployment report of ``deploy-model.yml``: per host, what preflight planned, what the deployment did, the
endpoint it serves and what the trial measured against the plan.

Controller-only, pure functions, standard library only. The report is one data model; the console summary
(:func:`summary_lines`), the Markdown and HTML pages (``playbooks/templates/deployment.{md,html}.j2``) and the JSON file
are renderings of it, so they cannot disagree. Each host contributes an *outcome* dict that the playbook assembles::

    {"status": "deployed" | "unchanged" | "planned" | "skipped" | "failed",
     "model": "owner/name", "revision": "master", "model_dir": "/opt/llmops/models/owner/name",
     "files": 6, "bytes_total": 3145851, "bytes_fetched": 0, "verified": "quick", "marker": ".../marker.json",
     "would_fetch_files": 0, "would_fetch_bytes": 0, "sdk_versions": {"modelscope": "1.40.2"}, "reason": "...",
     # after the serve phase (llmops.deploy.model_serve)
     "serve": {"state": "started" | "unchanged" | "restarted" | "planned" | "stopped" | "absent",
               "endpoint": "http://127.0.0.1:8000", "unit": "llmops-vllm-qwen2-tiny-2m.service",
               "engine": {"name": "vllm", "build": "cpu", "version": "0.32.0"},
               "args": [{"flag": "--max-model-len", "value": "512", "source": "plan"}, ...]},
     # after the trial phase: what llmops.deploy.inference_check returned (summary, comparison, engine, passed)
     "trial": {"passed": true, "estimates_as_expected": true,
               "summary": {"requests": 4, "succeeded": 4, "failed": 0, "concurrency": 2,
                           "ttft_s": {"p50": 0.12}, "latency_s": {"p50": 0.9}, "aggregate_output_tokens_per_s": 35.2},
               "comparison": [{"figure": "kv_cache_tokens", "label": "KV-cache tokens", "estimated": 524288,
                               "measured": 524288, "ratio": 1.0, "verdict": "as expected", "summary": "..."}]}}
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.deploy.plugins.module_utils import sizing

STATUSES = ("deployed", "unchanged", "planned", "skipped", "failed", "unreachable")
OUTCOME_KEYS = ("status", "model", "revision", "model_dir", "files", "bytes_total", "bytes_fetched", "verified",
                "marker", "would_fetch_files", "would_fetch_bytes", "sdk_versions", "reason", "preflight_verdict",
                "gpus_needed", "pickle_files", "code_files", "serve", "trial")
TRIAL_FIGURES = ("ttft_ms_p50", "latency_ms_p50", "output_tokens_per_s")


def size_text(num_bytes):
    """Bytes as the reports print them: the guide's GB (10^9) from 1 GB up, MB below; '-' for unknown."""
    if num_bytes is None:
        return "-"
    if num_bytes >= 10 ** 9:
        return "%s GB" % sizing.gb(num_bytes)
    return "%.1f MB" % (num_bytes / 10.0 ** 6)


def _details(row):
    """One sentence on what was done on the host, or why not."""
    if row["status"] in ("deployed", "unchanged"):
        text = "%s@%s in %s: %s files, %s, %s fetched, verified (%s)" % (
            row["model"], row["revision"], row["model_dir"], row["files"], size_text(row["bytes_total"]),
            size_text(row["bytes_fetched"] or 0), row["verified"])
        if row["pickle_files"]:
            text += "; pickle weights: %s" % ", ".join(row["pickle_files"])
        if row["code_files"]:
            text += "; repository code (never run): %s" % ", ".join(row["code_files"])
        return text
    if row["status"] == "planned":
        return "would fetch %s files (%s) of %s into %s" % (
            row["would_fetch_files"], size_text(row["would_fetch_bytes"]), row["model"], row["model_dir"])
    return row["reason"] or "-"


def _serving(serve):
    """'serving at URL (vLLM 0.32.0, cpu; service unchanged)' or None when the host serves nothing."""
    if not isinstance(serve, dict) or not serve.get("state"):
        return None
    engine = serve.get("engine") or {}
    engine_text = " ".join(str(part) for part in ("vLLM", engine.get("version"), engine.get("build")) if part)
    if serve["state"] == "planned":
        return "would serve at %s (%s)" % (serve.get("endpoint") or "-", engine_text)
    if serve["state"] in ("stopped", "absent"):
        return "service %s" % serve["state"]
    return "serving at %s (%s; service %s)" % (serve.get("endpoint") or "-", engine_text, serve["state"])


def trial_view(result):
    """The trial figures the reports show, from an llmops.deploy.inference_check result (None without one)."""
    if not isinstance(result, dict) or "passed" not in result:
        return None
    summary = result.get("summary") or {}

    def p50_ms(key):
        value = (summary.get(key) or {}).get("p50")
        return None if value is None else round(value * 1000.0, 1)

    return {"passed": bool(result["passed"]),
            "estimates_as_expected": result.get("estimates_as_expected"),
            "requests": summary.get("requests"), "failed_requests": summary.get("failed"),
            "concurrency": summary.get("concurrency"),
            "ttft_ms_p50": p50_ms("ttft_s"), "latency_ms_p50": p50_ms("latency_s"),
            "output_tokens_per_s": summary.get("aggregate_output_tokens_per_s"),
            "engine_version": (result.get("engine") or {}).get("version"),
            "comparison": [dict((key, row.get(key)) for key in (
                "figure", "label", "unit", "estimated", "measured", "ratio", "verdict", "summary", "measured_from"))
                for row in result.get("comparison") or []]}


def _trial_text(trial):
    if not trial:
        return None
    ok = (trial.get("requests") or 0) - (trial.get("failed_requests") or 0)
    parts = ["trial %s: %s/%s requests ok" % ("passed" if trial["passed"] else "FAILED", ok, trial.get("requests"))]
    if trial.get("ttft_ms_p50") is not None:
        parts.append("TTFT p50 %.0f ms" % trial["ttft_ms_p50"])
    if trial.get("output_tokens_per_s") is not None:
        parts.append("%.1f output tokens/s" % trial["output_tokens_per_s"])
    compared = [row for row in trial["comparison"] if row.get("verdict") in ("as expected", "differs")]
    differs = [row.get("label") or row["figure"] for row in compared if row["verdict"] == "differs"]
    if compared:
        parts.append("plan vs engine: %s" % (
            "%d of %d figure(s) differ (%s)" % (len(differs), len(compared), ", ".join(differs)) if differs
            else "all %d figure(s) as expected" % len(compared)))
    return ", ".join(parts)


def host_row(host, outcome, preflight=None):
    """One row: the outcome (or 'unreachable' without one) with the preflight verdict and display texts."""
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
    row["details"] = _details(row)
    row["serving"] = _serving(row["serve"])
    row["trial"] = trial_view(row["trial"])
    row["trial_summary"] = _trial_text(row["trial"])
    return row


def build_report(rows, check_mode=False):
    rows = sorted(rows, key=lambda r: r["host"])
    totals = dict((status, 0) for status in STATUSES)
    for row in rows:
        totals[row["status"]] += 1
    totals["hosts"] = len(rows)
    totals["bytes_fetched"] = sum(row["bytes_fetched"] or 0 for row in rows)
    serving = [row for row in rows if isinstance(row["serve"], dict)
               and row["serve"].get("state") in ("started", "unchanged", "restarted")]
    trials = [row["trial"] for row in rows if row["trial"]]
    totals["serving"] = len(serving)
    totals["trials_passed"] = sum(1 for trial in trials if trial["passed"])
    totals["trials_failed"] = sum(1 for trial in trials if not trial["passed"])
    return {"check_mode": bool(check_mode), "hosts": rows, "totals": totals,
            "totals_text": totals_text(totals, check_mode)}


def totals_text(totals, check_mode=False):
    text = "%s: %d host(s) - deployed %d, unchanged %d, planned %d, skipped %d, failed %d, unreachable %d" % (
        "Plan (check mode)" if check_mode else "Deployment", totals["hosts"], totals["deployed"],
        totals["unchanged"], totals["planned"], totals["skipped"], totals["failed"], totals["unreachable"])
    if totals.get("serving") or totals.get("trials_passed") or totals.get("trials_failed"):
        text += "; serving %d, trials passed %d, failed %d" % (
            totals["serving"], totals["trials_passed"], totals["trials_failed"])
    return text


def summary_lines(report):
    """The console summary: the totals, then per host its status, what was done, the endpoint and the trial."""
    lines = [report["totals_text"]]
    for row in report["hosts"]:
        line = "%s: %s - %s" % (row["host"], row["status"].upper(), row["details"])
        for extra in (row.get("serving"), row.get("trial_summary")):
            if extra:
                line += "; " + extra
        lines.append(line)
    return lines
