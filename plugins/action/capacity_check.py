# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action of llmops.deploy.capacity_check: with ``judge=controller`` only the probe runs on the host.

``judge=host`` (the default) runs the capacity_check module as any module runs. With ``judge=controller`` the options
are checked here against capacity_check's own argument spec (bad input fails before the host is contacted, with the
module's messages), and the host runs the llmops.deploy.hardware_probe module: the probing code alone, about half the
payload of capacity_check and none of its option checks (what a fleet's preflight pays once per host). The result is
capacity_check's for ``judge=controller``: ``hardware``, ``probed``, ``gpu_source`` and ``options``, the judgement
options for the llmops.deploy.capacity_plans filter. Documentation: plugins/modules/capacity_check.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.plugins.action.normal import ActionModule as NormalAction

from ansible_collections.llmops.deploy.plugins.module_utils import check_spec
from ansible_collections.llmops.deploy.plugins.plugin_utils import host_probe


class ActionModule(NormalAction):

    def run(self, tmp=None, task_vars=None):
        if self._task.args.get("judge") != "controller":
            return super(ActionModule, self).run(tmp, task_vars)
        result = ActionBase.run(self, tmp, task_vars)
        spec = check_spec.check_argument_spec()
        spec["judge"] = dict(type="str", choices=["host", "controller"], default="host")
        dummy, params = self.validate_argument_spec(argument_spec=spec,
                                                    mutually_exclusive=check_spec.CHECK_MUTUALLY_EXCLUSIVE)
        if not params["probe"]:
            result.update(failed=True, field="judge", msg=check_spec.JUDGE_CONTROLLER_WITHOUT_PROBE)
            return result
        if self._task.async_val:
            # the job's result would be the probe's alone, without the options the controller judges with
            raise AnsibleActionFail("judge=controller cannot run asynchronously (async); the probe takes well under a "
                                    "second: run it without async, or use judge=host")
        # The host expands its own paths (~ is the remote user's home): the model directory goes as it was given.
        probe = host_probe.run_probe(self, task_vars, params["target"],
                                     self._task.args.get("model_dir", params["model_dir"]), params["hardware"])
        result.update(probe)
        if probe.get("failed"):
            return result
        options = check_spec.controller_options(params)
        options["model_dir"] = result.pop("model_dir", options["model_dir"])
        result["options"] = options
        return result
