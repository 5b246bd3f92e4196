# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over ModelScope model names and the guide's deployment scenarios.

Documentation: plugins/filter/parse_model_id.yml and plugins/filter/deployment_scenario.yml.
The logic lives in module_utils/model_names.py and module_utils/scenarios.py.
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.deploy.plugins.module_utils.model_names import parse_model_id as _parse_model_id
from ansible_collections.llmops.deploy.plugins.module_utils.scenarios import get_scenario
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError


def parse_model_id(model_id):
    """``'okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8' | llmops.deploy.parse_model_id`` -> what the name says."""
    try:
        return _parse_model_id(model_id)
    except SizingInputError as exc:
        raise AnsibleFilterError("parse_model_id: %s" % exc)


def deployment_scenario(name):
    """``'enterprise' | llmops.deploy.deployment_scenario`` -> the guide's table 3.1 row for that scenario."""
    try:
        return get_scenario(name)
    except SizingInputError as exc:
        raise AnsibleFilterError("deployment_scenario: %s" % exc)


class FilterModule(object):
    """ModelScope model names and deployment scenarios."""

    def filters(self):
        return {
            "parse_model_id": parse_model_id,
            "deployment_scenario": deployment_scenario,
        }
