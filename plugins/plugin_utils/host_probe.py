# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the llmops.deploy.hardware_probe module on an action's host: what the capacity_check action (with
``judge=controller``) and the preflight_host action send to a host, and the only thing they send. Controller only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.deploy.plugins.module_utils import check_spec

PROBE_MODULE = "llmops.deploy.hardware_probe"


def probe_args(target, model_dir, hardware=None):
    """hardware_probe's arguments: the target, the model directory as it was given (the host expands ``~``, the
    remote user's home) and the declared parts of ``hardware`` (none when it is empty)."""
    args = {"target": target, "model_dir": model_dir}
    if hardware:
        args["hardware"] = check_spec.declared_hardware(hardware)
    return args


def run_probe(action, task_vars, target, model_dir, hardware=None):
    """Runs hardware_probe on ``action``'s host and returns its result (``hardware``, ``probed``, ``gpu_source`` and
    the ``model_dir`` the host expanded, or ``failed`` with ``msg``); the module's temporary directory on the host
    is removed. A host that cannot be reached raises the connection's error, as any module run does."""
    # pylint: disable=protected-access
    result = action._execute_module(module_name=PROBE_MODULE, module_args=probe_args(target, model_dir, hardware),
                                    task_vars=task_vars)
    action._remove_tmp_path(action._connection._shell.tmpdir)
    return result
