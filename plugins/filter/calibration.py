# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the calibration file: record a trial's measured figures, look up measured constants for a plan.

Documentation: plugins/filter/calibration_record.yml, calibration_lookup.yml and calibration_measured.yml.
The logic lives in plugin_utils/calibration.py; the filters return data (the playbook writes the file).
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.deploy.plugins.plugin_utils import calibration as _calibration


def calibration_record(document, trial, max_entries=_calibration.MAX_ENTRIES):
    """``calibration_doc | llmops.deploy.calibration_record(trial)`` -> the document with the trial appended."""
    try:
        return _calibration.record(document, trial, max_entries)
    except _calibration.CalibrationError as exc:
        raise AnsibleFilterError("calibration_record: %s" % exc)


def calibration_lookup(document, engine_version, gpu, memory_total_mib, engine="vllm",
                       max_age_days=_calibration.DEFAULT_MAX_AGE_DAYS):
    """``calibration_doc | llmops.deploy.calibration_lookup('0.32.0', gpu_name, mib)`` -> constants + warnings."""
    try:
        return _calibration.lookup(document, engine_version, gpu, memory_total_mib, engine=engine,
                                   max_age_days=max_age_days)
    except _calibration.CalibrationError as exc:
        raise AnsibleFilterError("calibration_lookup: %s" % exc)


def calibration_measured(log_text):
    """``engine_log_text | llmops.deploy.calibration_measured`` -> ``{'measured': {...}, 'engine_version': ...}``."""
    if not isinstance(log_text, str):
        raise AnsibleFilterError("calibration_measured: expected the engine's start-up log as text, got %s" %
                                 type(log_text).__name__)
    return _calibration.measured_from_log(log_text)


class FilterModule(object):
    """The calibration file that learns from deployments."""

    def filters(self):
        return {
            "calibration_record": calibration_record,
            "calibration_lookup": calibration_lookup,
            "calibration_measured": calibration_measured,
        }
