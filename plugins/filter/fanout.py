# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the peer fan-out plan (role llmops.deploy.model_download, model_download_source: peer).

Documentation: plugins/filter/fanout_plan.yml and fanout_next_round.yml. The logic lives in plugin_utils/fanout.py.
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.deploy.plugins.plugin_utils import fanout as _fanout


def fanout_plan(hosts, complete=None, groups=None, excluded=None, seeds=None, max_fallbacks=2):
    """``ansible_play_hosts_all | llmops.deploy.fanout_plan(complete=[...], groups={...})`` -> the whole plan."""
    try:
        return _fanout.plan(hosts, complete, groups, excluded, seeds, max_fallbacks)
    except _fanout.FanoutError as exc:
        raise AnsibleFilterError("fanout_plan: %s" % exc)


def fanout_next_round(hosts, complete=None, groups=None, excluded=None, seeds=None, max_fallbacks=2):
    """``ansible_play_hosts_all | llmops.deploy.fanout_next_round(...)`` -> ``{'seeds': [...], 'transfers': [...]}``."""
    try:
        return _fanout.next_round(hosts, complete, groups, excluded, seeds, max_fallbacks)
    except _fanout.FanoutError as exc:
        raise AnsibleFilterError("fanout_next_round: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"fanout_plan": fanout_plan, "fanout_next_round": fanout_next_round}
