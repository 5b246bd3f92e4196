# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test plugin: is a value a ModelScope id? Documentation: plugins/test/model_id.yml.

The rule is module_utils/model_names.py's ``split_model_id``, the one the modules apply, so a role can check an id
before it calls them without a regular expression of its own.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.deploy.plugins.module_utils.model_names import split_model_id
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError


def model_id(value):
    """``'Qwen/Qwen2.5-7B-Instruct' is llmops.deploy.model_id`` -> True; blanks around the id are not accepted."""
    try:
        split_model_id(value, strip=False)
    except SizingInputError:
        return False
    return True


class TestModule(object):
    """ModelScope ids."""

    def tests(self):
        return {"model_id": model_id}
