# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet-report filters: thin adapters over plugins/plugin_utils/fleet_report.py (and module_utils/model_selection).

The filters return data; the Markdown and HTML pages are the preflight role's templates
(roles/preflight/templates/preflight.{md,html}.j2). Documentation: plugins/filter/fleet_report.yml and
fleet_report_summary.yml.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.deploy.plugins.module_utils import model_selection
from ansible_collections.llmops.deploy.plugins.plugin_utils import fleet_report as report_lib
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError


def fleet_report(hosts, hostvars, result_var="preflight_result", model=None, scenario=None,
                 candidates_var="preflight_candidate_results", selection_var="preflight_selection", candidates=None,
                 results=None, calibrations=None, fallback_var=None):
    """``ansible_play_hosts_all | fleet_report(hostvars)`` -> the report dict (rows, matrix, totals).

    Each host's ``result_var`` is its ``capacity_check`` result: with its ``selection`` (one probe, every candidate
    judged on the host), or a one-model result; ``results`` (host -> result, such as capacity_plans gives) is read
    first. A host without ``result_var`` is read from ``fallback_var`` when given (a host whose check failed gets no
    facts: its registered result is its plan). ``candidates`` (the normalised candidate list) makes the matrix columns even when no host reported. A
    registered loop over candidates (``candidates_var``) is read too. ``calibrations`` (what
    llmops.deploy.calibration_lookup_all returned) makes the report say which measured constants no plan used.
    """
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError("llmops.deploy.fleet_report: expected a list of host names, got %r" % (hosts,))
    rows = []
    sized = None
    columns = []
    seen = {}
    reserve = None

    def add_columns(items):
        for item in items:
            position = seen.get(item["key"])
            if position is None:
                seen[item["key"]] = len(columns)
                columns.append(item)
            elif columns[position].get("method") is None and item.get("method") is not None:
                columns[position] = item  # a host's evaluation has the sizing figures a bare candidate lacks

    try:
        if candidates:
            add_columns(model_selection.normalize_candidates(candidates))
        for host in hosts:
            host_vars = hostvars[host] if host in hostvars else {}
            groups = host_vars.get("group_names")
            result = (results or {}).get(host, host_vars.get(result_var))
            if result is None and fallback_var:
                result = host_vars.get(fallback_var)
            if isinstance(result, dict) and "verdicts" in result and isinstance(result.get("selection"), dict):
                selection = result["selection"]  # every candidate judged on the host, against one probe
                if reserve is None and selection.get("reserve") is not None:
                    reserve = selection["reserve"]
                add_columns(selection["evaluations"])
                rows.append(report_lib.host_row(host, result, groups, selection))
                continue
            items = model_selection.loop_items(host_vars.get(candidates_var))
            if items is None:
                selection = result.get("selection") if isinstance(result, dict) else None
                if not isinstance(selection, dict):
                    selection = model_selection.single_selection(result, scenario or None)
                rows.append(report_lib.host_row(host, result, groups, selection))
                if sized is None and isinstance(result, dict) and result.get("sizing"):
                    sized = result["sizing"]
                continue
            selection = host_vars.get(selection_var)
            if not isinstance(selection, dict) or "evaluations" not in selection:
                selection = model_selection.select_from_results(items, scenario or None)
            if reserve is None and selection.get("reserve") is not None:
                reserve = selection["reserve"]
            add_columns(selection["evaluations"])
            chosen = selection.get("chosen_candidate")
            representative = items[chosen["index"]] if chosen else next(
                (item for item in items if item.get("verdict")), items[0])
            rows.append(report_lib.host_row(host, representative, groups, selection))
        return report_lib.build_report(rows, sized, model, scenario or None, columns, reserve, calibrations)
    except SizingInputError as exc:
        raise AnsibleFilterError("llmops.deploy.fleet_report: %s" % exc)


def fleet_report_summary(report):
    """The report dict as short terminal lines."""
    try:
        return report_lib.summary_lines(report)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("llmops.deploy.fleet_report_summary: not a fleet report (%s)" % exc)


class FilterModule(object):
    def filters(self):
        return {
            "fleet_report": fleet_report,
            "fleet_report_summary": fleet_report_summary,
        }
