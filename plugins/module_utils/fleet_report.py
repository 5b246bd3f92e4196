# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moved: the fleet report is controller-only code, in plugins/plugin_utils/fleet_report.py.

Only ``single_model_selection`` is left here, for plugins/filter/model_selection.py, which still imports it from
this path; it is ``model_selection.single_selection``. Delete this file once that filter calls
``model_selection.single_selection`` itself.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.deploy.plugins.module_utils.model_selection import single_selection

single_model_selection = single_selection
