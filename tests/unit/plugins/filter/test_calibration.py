# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The calibration_record / calibration_lookup filters: thin adapters, errors as AnsibleFilterError."""

import os

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.deploy.plugins.filter.calibration import FilterModule

FILTERS = FilterModule().filters()
FILTER_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "filter")
TRIAL = {"engine_version": "0.32.0", "gpu": "NVIDIA L40S", "memory_total_mib": 46068, "model": "m",
         "measured": {"activation_bytes": 200, "non_torch_bytes": 50}, "modelled": {"activation_bytes": 100},
         "host": "l40s-01", "date": "2026-11-30"}


def test_filter_names_and_sidecar_docs():
    assert set(FILTERS) == {"calibration_record", "calibration_lookup", "calibration_lookup_all", "calibration_trial",
                            "calibration_measured"}
    for name in FILTERS:
        with open(os.path.join(FILTER_DIR, name + ".yml")) as handle:
            doc = yaml.safe_load(handle)
        assert doc["DOCUMENTATION"]["name"] == name and doc["EXAMPLES"] and doc["RETURN"]


def test_record_then_lookup():
    doc = FILTERS["calibration_record"]({}, TRIAL)
    found = FILTERS["calibration_lookup"](doc, "0.32.0", "NVIDIA L40S", 46068, max_age_days=None)
    assert found["constants"]["activation_ratio"] == 2.0 and found["constants"]["host"] == "l40s-01"
    other = FILTERS["calibration_lookup"](doc, "0.33.0", "NVIDIA L40S", 46068, max_age_days=None)
    assert other["constants"] is None and "0.32.0" in other["warnings"][0]


def test_errors_are_filter_errors():
    with pytest.raises(AnsibleFilterError, match="calibration_record: .*memory_total_mib"):
        FILTERS["calibration_record"]({}, dict(TRIAL, memory_total_mib=None))
    with pytest.raises(AnsibleFilterError, match="calibration_lookup: .*gpu"):
        FILTERS["calibration_lookup"]({}, "0.32.0", None, 46068)


def test_measured_from_a_log():
    log = ("INFO 08-22 20:52:25 [model_runner.py:329] Model loading took 0.93 GiB and 6.206722 seconds\n"
           "INFO 08-22 20:52:36 [gpu_worker.py:563] Available KV cache memory: 20.52 GiB\n"
           "INFO 08-22 20:52:36 [kv_cache_utils.py:2235] GPU KV cache size: 1,793,232 tokens\n")
    got = FILTERS["calibration_measured"](log)["measured"]
    assert got["kv_tokens"] == 1793232 and got["kv_cache_bytes"] == round(20.52 * 2 ** 30)
    assert "activation_bytes" not in got  # not printed: absent, not guessed
    with pytest.raises(AnsibleFilterError, match="calibration_measured"):
        FILTERS["calibration_measured"](None)


def test_record_takes_a_list_and_lookup_all_finds_every_gpu():
    doc = FILTERS["calibration_record"]({}, [TRIAL, dict(TRIAL, gpu="NVIDIA A40", memory_total_mib=46068)])
    assert len(doc["entries"]) == 2
    found = FILTERS["calibration_lookup_all"](doc, "0.32.0", max_age_days=None)
    assert sorted(c["gpu"] for c in found["calibrations"]) == ["NVIDIA A40", "NVIDIA L40S"]
    assert FILTERS["calibration_record"](doc, [])["entries"] == doc["entries"]


def test_trial_filter_skips_cpu_trials_and_needs_the_host():
    made = FILTERS["calibration_trial"]({"engine": {"platform": "cpu", "figures": {"kv_cache_tokens": {"value": 9}}}},
                                        {}, {"target": "cpu"}, "node-1")
    assert made["trial"] is None and "CPU" in made["skipped"]
    with pytest.raises(AnsibleFilterError, match="calibration_trial: host"):
        FILTERS["calibration_trial"]({}, {}, {}, "")
