# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action of llmops.deploy.preflight_outcome: a thin adapter over plugins/plugin_utils/preflight_outcome.py.

Runs on the controller only (no connection, no module): one host's plan becomes its facts, or the host fails with the
plan's reason. Documentation: plugins/modules/preflight_outcome.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.llmops.deploy.plugins.plugin_utils import preflight_outcome

ARGUMENT_SPEC = {"plan": {"type": "dict", "required": True}}


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        plan = args["plan"]
        result["changed"] = False
        reason = preflight_outcome.failure(plan)
        if reason is not None:
            result["failed"] = True
            result["msg"] = reason
            return result
        result["ansible_facts"] = preflight_outcome.host_facts(plan)
        return result
