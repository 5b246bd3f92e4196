# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the calibration file: record a trial's measured figures, look up measured constants for a plan.

Documentation: plugins/filter/calibration_record.yml, calibration_lookup.yml, calibration_lookup_all.yml,
calibration_trial.yml and calibration_measured.yml.
The logic lives in plugin_utils/calibration.py; the filters return data (the playbook writes the file).
"""

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

from ansible_collections.llmops.deploy.plugins.plugin_utils import calibration as _calibration


_display = Display()


def calibration_record(document, trial, max_entries=_calibration.MAX_ENTRIES):
    """``calibration_doc | llmops.deploy.calibration_record(trial)`` -> the document with the trial (or each trial
    of a list, in order) appended."""
    try:
        for one in (trial if isinstance(trial, list) else [trial]):
            document = _calibration.record(document, one, max_entries)
        return _calibration.check_document(document)
    except _calibration.CalibrationError as exc:
        raise AnsibleFilterError("calibration_record: %s" % exc)


def calibration_lookup_all(document, engine_version=None, engine="vllm", max_age_days=_calibration.DEFAULT_MAX_AGE_DAYS):
    """``calibration_doc | llmops.deploy.calibration_lookup_all`` -> the constants of every GPU measured
    (for capacity_check's ``calibrations``); each entry left out is shown as a warning and returned in ``warnings``."""
    try:
        found = _calibration.lookup_all(document, engine_version, engine=engine, max_age_days=max_age_days)
    except _calibration.CalibrationError as exc:
        raise AnsibleFilterError("calibration_lookup_all: %s" % exc)
    for warning in found["warnings"]:
        _display.warning(warning)
    return found


def calibration_trial(check, plan, serve, host, date=None):
    """``trial_result | llmops.deploy.calibration_trial(preflight_result, model_serve_info, inventory_hostname)``
    -> ``{'trial': entry or None, 'skipped': why not}``."""
    if not isinstance(host, str) or not host:
        raise AnsibleFilterError("calibration_trial: host must be the host's name, got %r" % (host,))
    return _calibration.trial_from_deployment(host, check, plan, serve, date=date)


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
            "calibration_lookup_all": calibration_lookup_all,
            "calibration_trial": calibration_trial,
            "calibration_measured": calibration_measured,
        }
