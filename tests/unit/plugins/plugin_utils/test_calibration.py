# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The calibration file: record trials, look up constants, ignore (with a warning) what does not apply."""

import datetime
import os

import pytest

from ansible_collections.llmops.deploy.plugins.plugin_utils import calibration

GIB = 2 ** 30
NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)


def trial(**overrides):
    base = {"engine_version": "0.32.0", "gpu": "NVIDIA A100-SXM4-80GB", "memory_total_mib": 81920,
            "model": "Qwen/Qwen2.5-7B-Instruct", "tensor_parallel_size": 1,
            "arguments": {"max_model_len": 8192, "gpu_memory_utilization": 0.9},
            "measured": {"weights_bytes": 15 * GIB, "kv_cache_bytes": 55 * GIB, "activation_bytes": 3 * GIB,
                         "non_torch_bytes": GIB // 2, "torch_total_bytes": 79 * GIB, "kv_tokens": 1000000},
            "modelled": {"activation_bytes": 2 * GIB}, "host": "a100-node-01", "date": "2026-11-30T10:00:00+00:00"}
    base.update(overrides)
    return base


def test_record_appends_without_changing_the_input():
    doc = calibration.record(None, trial())
    again = calibration.record(doc, trial(host="a100-node-02"))
    assert len(doc["entries"]) == 1 and len(again["entries"]) == 2
    assert again["entries"][-1]["host"] == "a100-node-02"
    assert again["entries"][0]["gpu_class"] == "nvidia-a100-sxm4-80gb/81920MiB"


def test_record_is_bounded():
    doc = None
    for i in range(5):
        doc = calibration.record(doc, trial(host="h%d" % i), max_entries=3)
    assert [e["host"] for e in doc["entries"]] == ["h2", "h3", "h4"]


@pytest.mark.parametrize("overrides, field", [
    ({"engine_version": None}, "engine_version"),
    ({"memory_total_mib": "80GB"}, "memory_total_mib"),
    ({"gpu": ""}, "gpu"),
    ({"measured": {}}, "measured"),
    ({"measured": {"kv_cache_bytes": -1}}, "measured.kv_cache_bytes"),
    ({"measured": {"vram": 1}}, "measured.vram"),
    ({"date": "yesterday"}, "date"),
])
def test_malformed_trials_name_the_field(overrides, field):
    with pytest.raises(calibration.CalibrationError) as err:
        calibration.record(None, trial(**overrides))
    assert err.value.field == field


def test_lookup_gives_measured_constants_and_the_ratio():
    doc = calibration.record(None, trial())
    found = calibration.lookup(doc, "0.32.0", "NVIDIA A100-SXM4-80GB", 81920, today=NOW)
    const = found["constants"]
    assert found["warnings"] == []
    assert const["host"] == "a100-node-01" and const["activation_ratio"] == 1.5
    assert const["non_torch_bytes"] == GIB // 2 and const["torch_total_bytes"] == 79 * GIB
    assert const["memory_total_mib"] == 81920 and const["engine_version"] == "0.32.0"
    # the number of GPUs it was measured on, so a plan for another number carries the constants over
    assert const["tensor_parallel_size"] == 1
    four = calibration.record(None, trial(tensor_parallel_size=4))
    assert calibration.lookup(four, "0.32.0", "A100 80GB", 81920, today=NOW)["constants"]["tensor_parallel_size"] == 4


def test_newest_matching_entry_wins_other_gpus_are_not_used():
    doc = calibration.record(None, trial(host="old"))
    doc = calibration.record(doc, trial(host="new"))
    doc = calibration.record(doc, trial(host="h100", gpu="NVIDIA H100 80GB HBM3", memory_total_mib=81559))
    found = calibration.lookup(doc, "0.32.0", "NVIDIA A100-SXM4-80GB", 81920, today=NOW)
    assert found["constants"]["host"] == "new"
    assert calibration.lookup(doc, "0.32.0", "NVIDIA L40S", 46068, today=NOW)["constants"] is None


def test_other_versions_stale_and_malformed_entries_are_ignored_with_warnings():
    doc = calibration.record(None, trial(engine_version="0.31.0"))
    doc = calibration.record(doc, trial(date="2024-01-01"))
    doc["entries"].append({"engine_version": "0.32.0", "gpu": "x"})
    found = calibration.lookup(doc, "0.32.0", "NVIDIA A100-SXM4-80GB", 81920, today=NOW)
    assert found["constants"] is None
    text = " | ".join(found["warnings"])
    assert "0.31.0" in text and "stale" in text and "malformed" in text
    broken = calibration.lookup({"entries": "x"}, "0.32.0", "NVIDIA A100-SXM4-80GB", 81920)
    assert broken["constants"] is None and "ignored" in broken["warnings"][0]


def test_file_round_trip_is_atomic(tmp_path):
    path = str(tmp_path / "calibration.json")
    assert calibration.load(path) == calibration.empty()
    calibration.write_atomic(path, calibration.record(None, trial()))
    assert calibration.load(path)["entries"][0]["host"] == "a100-node-01"
    assert sorted(os.listdir(str(tmp_path))) == ["calibration.json"]
    with open(path, "w") as handle:
        handle.write("{not json")
    with pytest.raises(calibration.CalibrationError):
        calibration.load(path)
    with pytest.raises(calibration.CalibrationError):
        calibration.write_atomic(path, {"format": 9, "entries": []})
    assert open(path).read() == "{not json"  # the failed write left the file as it was


def test_a_published_log_calibrates_the_next_plan(tmp_path):
    """The RTX 4090 log (vLLM 0.27.1) -> a trial -> the file -> constants -> a plan that says where they came from."""
    import sys
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
    sys.path.insert(0, os.path.join(root, "benchmarks"))
    import compare_published  # pylint: disable=import-error
    meta = [f for f in compare_published.load_fixtures() if f["name"] == "rtx4090-qwen2.5-0.5b-instruct"][0]
    found = calibration.measured_from_log(meta["log"])
    measured = found["measured"]
    assert measured["kv_tokens"] == 1793232 and measured["non_torch_bytes"] == round(1.23 * GIB) - measured[
        "weights_bytes"]
    ours = compare_published.evaluate(meta)
    doc = calibration.record(None, {
        "engine_version": "0.27.1", "gpu": meta["gpu"], "memory_total_mib": meta["gpu_memory_mib"],
        "model": meta["model"], "measured": measured, "host": "rtx4090-wsl", "date": "2026-08-22",
        "modelled": {"activation_bytes": ours["room"]["modelled"]["activation_bytes"]}})
    path = str(tmp_path / "calibration.json")
    calibration.write_atomic(path, doc)
    const = calibration.lookup(calibration.load(path), "0.27.1", meta["gpu"], meta["gpu_memory_mib"], today=NOW,
                               max_age_days=None)["constants"]
    assert const["torch_total_bytes"] == round(23.99 * GIB)
    assert abs(const["activation_ratio"] - 1) < 0.2  # the model is within 20 % of this engine's peak


def _published(name):
    import sys
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
    sys.path.insert(0, os.path.join(root, "benchmarks"))
    import compare_published  # pylint: disable=import-error
    return [f for f in compare_published.load_fixtures() if f["name"] == name][0], root


def _check_options(meta, root, **extra):
    import json
    from ansible_collections.llmops.deploy.plugins.module_utils import check_spec
    options = dict((key, spec.get("default")) for key, spec in check_spec.check_argument_spec().items())
    with open(os.path.join(root, meta["config"])) as handle:
        config = json.load(handle)
    options.update(model=meta["model"], method="detailed", config=config, context_length=meta["max_model_len"],
                   gpu_memory_utilization=meta["gpu_memory_utilization"], engine_version="0.27.1",
                   hardware={"gpus": [{"index": 0, "name": meta["gpu"], "memory_total_mib": meta["gpu_memory_mib"]}],
                             "memory_total_mib": 65536, "cpu_cores": 16, "disk_free_mib": 10 ** 6})
    options.update(extra)
    return options


def test_a_deployment_trial_is_recorded_and_the_next_plan_of_that_gpu_uses_it():
    """inference_check's engine result + the host's preflight result + the serving facts -> an entry; the next
    preflight of a host with the same GPU applies it (and says where it was measured), modelled value beside."""
    from ansible_collections.llmops.deploy.plugins.module_utils import engine_log, model_selection
    meta, root = _published("rtx4090-qwen2.5-0.5b-instruct")
    plan, _warnings = model_selection.judge_host(_check_options(meta, root), None)
    assert plan["gpu_plan"]["engine_memory"]["calibration"] is None
    check = {"engine": engine_log.parse_engine_log(meta["log"])}
    serve = {"target": "gpu", "served_model_name": meta["model"], "engine": {"name": "vllm", "version": "0.27.1"},
             "args": [{"name": "tensor_parallel_size", "value": 1}, {"name": "max_model_len", "value": 32768},
                      {"name": "gpu_memory_utilization", "value": 0.92}, {"name": "quantization", "value": None}]}
    made = calibration.trial_from_deployment("rtx4090-node-07", check, plan, serve, date="2026-11-30T10:00:00+00:00")
    assert made["skipped"] is None
    entry = made["trial"]
    assert entry["gpu"] == meta["gpu"] and entry["memory_total_mib"] == meta["gpu_memory_mib"]
    assert entry["engine_version"] == "0.27.1" and entry["arguments"] == {
        "max_model_len": 32768, "gpu_memory_utilization": 0.92}
    assert entry["measured"]["kv_tokens"] == 1793232
    assert entry["measured"]["torch_total_bytes"] == round(23.99 * GIB)
    assert entry["modelled"]["activation_bytes"] > 0
    doc = calibration.record(None, entry)

    found = calibration.lookup_all(doc, "0.27.1", today=NOW)
    assert found["warnings"] == [] and [c["gpu"] for c in found["calibrations"]] == [meta["gpu"]]
    again, _warnings = model_selection.judge_host(_check_options(meta, root, calibrations=found["calibrations"]), None)
    memory = again["gpu_plan"]["engine_memory"]
    assert memory["calibration"]["host"] == "rtx4090-node-07"
    assert "measured on rtx4090-node-07, 2026-11-30" in memory["calibration_note"]
    assert "measured" in memory["torch_total_source"] and memory["modelled_gib"]["torch_total_gib"] > 0

    # Another GPU (same name, other memory) gets nothing from it; another engine version is left out, with a warning.
    other = _check_options(meta, root, calibrations=found["calibrations"])
    other["hardware"]["gpus"][0]["memory_total_mib"] = 49140
    planned, _warnings = model_selection.judge_host(other, None)
    assert planned["gpu_plan"]["engine_memory"]["calibration"] is None
    stale = calibration.lookup_all(doc, "0.32.0", today=NOW)
    assert stale["calibrations"] == [] and "measured with vllm 0.27.1" in stale["warnings"][0]


@pytest.mark.parametrize("check, serve, why", [
    ({"engine": {"platform": "cpu", "figures": {"kv_cache_tokens": {"value": 1000}}}}, {"target": "cpu"}, "CPU"),
    ({"engine": {"figures": {}}}, {"target": "gpu"}, "start-up log"),
    ({"engine": {"platform": "gpu", "figures": {"kv_cache_tokens": {"value": 1000}}}}, {"target": "gpu"}, "no GPU"),
])
def test_trials_that_teach_nothing_are_skipped_with_the_reason(check, serve, why):
    made = calibration.trial_from_deployment("h", check, {"hardware": {"gpus": []}}, serve)
    assert made["trial"] is None and why in made["skipped"]


def test_lookup_all_names_every_entry_it_leaves_out():
    doc = calibration.record(None, trial())
    doc["entries"].append({"engine_version": "0.32.0"})
    doc = calibration.record(doc, trial(gpu="NVIDIA H100 80GB HBM3", memory_total_mib=81559, engine_version="0.31.0"))
    found = calibration.lookup_all(doc, "0.32.0", today=NOW)
    assert [c["gpu"] for c in found["calibrations"]] == ["NVIDIA A100-SXM4-80GB"]
    assert len(found["warnings"]) == 2
    assert "malformed" in found["warnings"][0] and "0.31.0" in found["warnings"][1]
    # No version given: the pinned one (0.32.0), which the A100 trial used.
    assert [c["gpu"] for c in calibration.lookup_all(doc, today=NOW)["calibrations"]] == ["NVIDIA A100-SXM4-80GB"]


# One GPU model, however it is spelt: nvidia-smi records 'NVIDIA GeForce RTX 4090', an inventory declares 'RTX 4090'.
NVIDIA_SMI_4090 = "NVIDIA GeForce RTX 4090"


def test_both_spellings_of_a_gpu_are_one_class_unknown_gpus_keep_their_name():
    assert calibration.gpu_class("RTX 4090", 24564) == calibration.gpu_class(NVIDIA_SMI_4090, 24564) == \
        "nvidia-geforce-rtx-4090/24564MiB"
    assert calibration.gpu_class("A100 80GB", 81920) == calibration.gpu_class("NVIDIA A100-SXM4-80GB", 81920)
    assert calibration.gpu_class("RTX 4090", 24564) != calibration.gpu_class("RTX 4090", 49140)
    assert calibration.gpu_class("NVIDIA RTX A6000", 49140) == "nvidia-rtx-a6000/49140MiB"  # not in the catalog
    assert calibration.gpu_class_of({"name": "RTX 4090", "memory_total_mib": 24564}) == \
        "nvidia-geforce-rtx-4090/24564MiB"
    assert calibration.gpu_class_of({"name": "RTX 4090"}) is None and calibration.gpu_class_of(None) is None


def test_a_trial_recorded_as_nvidia_smi_prints_serves_a_host_declared_by_its_short_name():
    doc = calibration.record(None, trial(gpu=NVIDIA_SMI_4090, memory_total_mib=24564, host="edge-4090-02"))
    found = calibration.lookup(doc, "0.32.0", "RTX 4090", 24564, today=NOW)
    assert found["warnings"] == [] and found["constants"]["host"] == "edge-4090-02"
    assert found["constants"]["gpu_class"] == "nvidia-geforce-rtx-4090/24564MiB"
    # And the other way round; another engine version of the same GPU, in either spelling, is named in a warning.
    doc = calibration.record(doc, trial(gpu="RTX 4090", memory_total_mib=24564, engine_version="0.31.0",
                                        host="edge-4090-old"))
    found = calibration.lookup(doc, "0.32.0", NVIDIA_SMI_4090, 24564, today=NOW)
    assert found["constants"]["host"] == "edge-4090-02"
    assert len(found["warnings"]) == 1 and "0.31.0 on edge-4090-old" in found["warnings"][0]


def test_files_written_with_the_old_class_strings_are_still_read():
    """Entries as the first version wrote them (class from the name as spelt): keyed again by the catalog's model."""
    old = {"format": 1, "entries": [
        dict(calibration.make_entry(trial(gpu="RTX 4090", memory_total_mib=24564, host="edge-a",
                                          date="2026-11-01T10:00:00+00:00")), gpu_class="rtx-4090/24564MiB"),
        dict(calibration.make_entry(trial(gpu=NVIDIA_SMI_4090, memory_total_mib=24564, host="edge-b")),
             gpu_class="nvidia-geforce-rtx-4090/24564MiB"),
    ]}
    for spelling in ("RTX 4090", NVIDIA_SMI_4090, "GeForce RTX 4090"):
        assert calibration.lookup(old, "0.32.0", spelling, 24564, today=NOW)["constants"]["host"] == "edge-b"
    found = calibration.lookup_all(old, "0.32.0", today=NOW)
    assert found["warnings"] == [] and [c["host"] for c in found["calibrations"]] == ["edge-b"]  # one class, newest


def test_constants_no_host_plans_on_are_named():
    doc = calibration.record(None, trial(gpu=NVIDIA_SMI_4090, memory_total_mib=24564, host="edge-4090-02"))
    doc = calibration.record(doc, trial(gpu="NVIDIA H200", memory_total_mib=143771, host="h200-lab"))
    found = calibration.lookup_all(doc, "0.32.0", today=NOW)["calibrations"]
    hosts = {"edge-4090-01": [{"name": "RTX 4090", "memory_total_mib": 24564}], "down": None, "cpu": []}
    warnings = calibration.unmatched_warnings(found, hosts)
    assert len(warnings) == 1 and warnings[0].startswith("calibration for NVIDIA H200 (143771 MiB, measured on "
                                                         "h200-lab, 2026-11-30T10:00:00+00:00, vLLM 0.32.0) not used")
    assert calibration.unmatched_warnings(found, dict(hosts, h200=[{"name": "H200", "memory_total_mib": 143771}])) == []


# nvidia-smi's names of the two A100 80GB form factors: the same 81920 MiB, two GPU models.
NVIDIA_SMI_A100_PCIE = "NVIDIA A100 80GB PCIe"
NVIDIA_SMI_A100_SXM4 = "NVIDIA A100-SXM4-80GB"


def test_a100_pcie_and_sxm4_are_two_calibration_classes():
    pcie = calibration.gpu_class(NVIDIA_SMI_A100_PCIE, 81920)
    assert pcie == "nvidia-a100-80gb-pcie/81920MiB"
    assert pcie != calibration.gpu_class(NVIDIA_SMI_A100_SXM4, 81920)
    assert pcie == calibration.gpu_class("A100 PCIe 80GB", 81920) == calibration.gpu_class("A100-PCIE-80GB", 81920)
    assert calibration.gpu_class("NVIDIA A100-PCIE-40GB", 40960) != calibration.gpu_class(
        "NVIDIA A100-SXM4-40GB", 40960)
    assert calibration.gpu_class("NVIDIA H100 PCIe", 81559) != calibration.gpu_class("NVIDIA H100 80GB HBM3", 81559)


def test_a_trial_on_a100_pcie_does_not_calibrate_sxm4_plans_and_back():
    doc = calibration.record(None, trial(gpu=NVIDIA_SMI_A100_PCIE, host="pcie-node-01"))
    for sxm4 in (NVIDIA_SMI_A100_SXM4, "A100 80GB", "A100"):
        found = calibration.lookup(doc, "0.32.0", sxm4, 81920, today=NOW)
        assert found["constants"] is None and found["warnings"] == [], sxm4
    for pcie in (NVIDIA_SMI_A100_PCIE, "A100 PCIe 80GB"):
        assert calibration.lookup(doc, "0.32.0", pcie, 81920, today=NOW)["constants"]["host"] == "pcie-node-01"
    # And the other way round; with both recorded, each plan gets its own card's.
    doc = calibration.record(doc, trial(gpu=NVIDIA_SMI_A100_SXM4, host="sxm4-node-01", date="2026-11-29T10:00:00"))
    assert calibration.lookup(doc, "0.32.0", "A100 80GB", 81920, today=NOW)["constants"]["host"] == "sxm4-node-01"
    assert calibration.lookup(doc, "0.32.0", NVIDIA_SMI_A100_PCIE, 81920, today=NOW)["constants"]["host"] == \
        "pcie-node-01"
    found = calibration.lookup_all(doc, "0.32.0", today=NOW)
    assert sorted(c["host"] for c in found["calibrations"]) == ["pcie-node-01", "sxm4-node-01"]
    # A fleet of SXM4 hosts only: the PCIe constants are named as not used.
    warnings = calibration.unmatched_warnings(found["calibrations"], {
        "hgx-01": [{"name": NVIDIA_SMI_A100_SXM4, "memory_total_mib": 81920}]})
    assert len(warnings) == 1 and warnings[0].startswith("calibration for NVIDIA A100 80GB PCIe (81920 MiB, measured "
                                                         "on pcie-node-01")


def test_a_pcie_entry_stored_with_the_sxm4_class_string_is_keyed_again_by_its_gpu():
    """Files written while the catalog folded the A100 PCIe into the SXM4 carry the SXM4 class on PCIe trials."""
    old = {"format": 1, "entries": [dict(calibration.make_entry(trial(gpu=NVIDIA_SMI_A100_PCIE, host="pcie-old")),
                                         gpu_class="nvidia-a100-sxm4-80gb/81920MiB")]}
    assert calibration.lookup(old, "0.32.0", NVIDIA_SMI_A100_SXM4, 81920, today=NOW)["constants"] is None
    assert calibration.lookup(old, "0.32.0", NVIDIA_SMI_A100_PCIE, 81920, today=NOW)["constants"]["host"] == "pcie-old"


def test_each_host_plans_with_the_constants_of_its_own_a100_form_factor():
    """capacity_check's choice (model_selection.pick_calibration) among lookup_all's constants, by the host's GPU."""
    from ansible_collections.llmops.deploy.plugins.module_utils import model_selection
    doc = calibration.record(None, trial(gpu=NVIDIA_SMI_A100_PCIE, host="pcie-node-01"))
    found = calibration.lookup_all(doc, "0.32.0", today=NOW)["calibrations"]
    assert model_selection.pick_calibration(found, [{"name": NVIDIA_SMI_A100_SXM4, "memory_total_mib": 81920}]) is None
    assert model_selection.pick_calibration(found, [{"name": "A100 80GB", "memory_total_mib": 81920}]) is None
    assert model_selection.pick_calibration(found, [{"name": NVIDIA_SMI_A100_PCIE, "memory_total_mib": 81920}])[
        "host"] == "pcie-node-01"
