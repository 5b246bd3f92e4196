# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deployment-report filters: thin adapters over plugins/plugin_utils/deployment_report.py.

The filters return data; the Markdown and HTML pages are the templates playbooks/templates/deployment.{md,html}.j2.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.deploy.plugins.plugin_utils import deployment_report as report_lib


def deployment_report(hosts, hostvars, outcome_var="llmops_deploy_outcome", preflight_var="preflight_result",
                      check_mode=False):
    """``ansible_play_hosts_all | deployment_report(hostvars)`` -> the report dict."""
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError("llmops.deploy.deployment_report: expected a list of host names, got %r" % (hosts,))
    rows = []
    for host in hosts:
        host_vars = hostvars[host] if host in hostvars else {}
        rows.append(report_lib.host_row(host, host_vars.get(outcome_var), host_vars.get(preflight_var)))
    return report_lib.build_report(rows, check_mode)


def deployment_report_summary(report):
    try:
        return report_lib.summary_lines(report)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("llmops.deploy.deployment_report_summary: not a deployment report (%s)" % exc)


class FilterModule(object):
    def filters(self):
        return {
            "deployment_report": deployment_report,
            "deployment_report_summary": deployment_report_summary,
        }
