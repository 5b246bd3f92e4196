# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action of llmops.deploy.preflight_host: a thin adapter over the llmops.deploy.hardware_probe module (on the host),
the llmops.deploy.capacity_plans filter's judgement and plugins/plugin_utils/preflight_outcome.py (on the controller).

One task per host does the whole preflight of that host: probe it (unless its hardware is declared), judge it against
the model or every candidate, give it the facts of its plan or fail it with the plan's reason. The judgement's code is
imported when this file is: Ansible loads an action's class in its main process to read the task, before it forks the
per-host workers, so the workers judge without importing anything. Documentation: plugins/modules/preflight_host.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.llmops.deploy.plugins.filter.model_selection import capacity_plans, refused_options
from ansible_collections.llmops.deploy.plugins.plugin_utils import host_probe, preflight_outcome

display = Display()

ARGUMENT_SPEC = {
    "probe": {"type": "bool", "default": True},
    "hardware": {"type": "dict"},
    "options": {"type": "dict", "default": {}},
    "common": {"type": "dict"},
}


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        hardware = args["hardware"] or {}
        options = dict((key, value) for key, value in args["options"].items() if value is not None)
        common = args["common"] or {}
        if not args["probe"]:
            item = {"hardware": hardware, "options": options}
        else:
            # Bad input fails before the host is contacted, with capacity_check's own messages.
            refused = refused_options(hardware, dict(common, **options))
            item = {"failed": True, "msg": refused} if refused else self._probe(hardware, options, task_vars, result)
        plan = capacity_plans({"host": item}, common)["host"]
        result["changed"] = False
        reason = preflight_outcome.failure(plan)
        if reason is not None:
            # no facts for a failed host: its plan is the (registered) result
            result.update(plan)
            result["failed"] = True
            result["msg"] = reason
            return result
        if plan.get("unreachable"):
            display.warning("%s: not reachable, reported as such: %s"
                            % (task_vars.get("inventory_hostname"), plan.get("msg")))
        result["ansible_facts"] = preflight_outcome.host_facts(plan)
        return result

    def _probe(self, hardware, options, task_vars, result):
        """The host's hardware_probe, as capacity_plans reads it: hardware, probed, gpu_source and the options; or
        the probe's failure, or the host unreachable (reported as such, not a failed task)."""
        model_dir = options.get("model_dir", "/opt/llmops/models")
        try:
            probe = host_probe.run_probe(self, task_vars, options.get("target", "gpu"), model_dir, hardware)
        except AnsibleConnectionFailure as exc:
            return {"unreachable": True, "msg": to_text(exc)}
        for key in ("warnings", "deprecations"):
            if probe.get(key):
                result[key] = probe[key]
        if probe.get("failed"):
            return {"failed": True, "msg": probe.get("msg") or "the probe failed (no reason was given)"}
        # the host expanded the model directory (~ is the remote user's home)
        options = dict(options, model_dir=probe.get("model_dir", model_dir))
        return {"hardware": probe["hardware"], "probed": probe["probed"], "gpu_source": probe["gpu_source"],
                "options": options}
