# -*- coding: utf-8 -*-
# Copyright: (c) 2025, llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpu_info module: argument handling, facts and warnings, from recorded tool outputs."""

import json
import os

import pytest

from ansible.module_utils import basic
from ansible_collections.llmops.deploy.plugins.module_utils import gpu_facts
from ansible_collections.llmops.deploy.plugins.modules import gpu_info

from .module_runner import run_module

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
GPU_FIXTURES = os.path.join(REPO_ROOT, "tests", "fixtures", "gpu")
FAKE_BIN = os.path.join(REPO_ROOT, "tests", "fixtures", "fake-bin")


def fixture(*parts):
    with open(os.path.join(GPU_FIXTURES, *parts), encoding="utf-8") as handle:
        return handle.read()


def nvidia_run(name):
    """The nvidia-smi call and its recorded answer (a .csv, or the runs of a .runs.json)."""
    if name.endswith(".runs.json"):
        runs = json.loads(fixture("nvidia-smi", name))["runs"]
        return [(r["argv"], r["rc"], fixture("nvidia-smi", r["stdout_file"]) if "stdout_file" in r else r["stdout"],
                 r["stderr"]) for r in runs]
    return [(gpu_facts.nvidia_smi_argv(), 0, fixture("nvidia-smi", name), "")]


def amd_smi_runs(static, metric):
    return [(list(gpu_facts.AMD_SMI_STATIC_ARGS), 0, fixture("amd-smi", static), ""),
            (list(gpu_facts.AMD_SMI_METRIC_ARGS), 0, fixture("amd-smi", metric), "")]


@pytest.fixture
def host(monkeypatch):
    """Patch AnsibleModule so get_bin_path/run_command replay recordings; record what the module does."""
    state = {"tools": {}, "answers": {}, "calls": [], "kwargs": [], "lookups": []}

    def add(tool, runs, path=None):
        path = path or "/usr/bin/" + tool
        state["tools"][tool] = path
        for argv, rc, out, err in runs:
            state["answers"][tuple([path] + list(argv))] = (rc, out, err)

    def get_bin_path(self, arg, required=False, opt_dirs=None):
        state["lookups"].append((arg, list(opt_dirs or [])))
        return state["tools"].get(arg)

    def run_command(self, args, **kwargs):
        state["calls"].append(list(args))
        state["kwargs"].append(kwargs)
        key = tuple(args)
        if key not in state["answers"]:
            raise AssertionError("unexpected command %r" % (args,))
        return state["answers"][key]

    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", get_bin_path)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    state["add"] = add
    return state


@pytest.fixture
def run(monkeypatch):
    """gpu_info's main() through the shared harness: ``run(args, check_mode=False)`` -> ``(failed, result)``."""
    return lambda args, check_mode=False: run_module(monkeypatch, gpu_info, args, check_mode)


# id, module args, tools {tool: runs}, expected (gpu_count, [(vendor, name, total MiB, cc/arch)] summary,
# gpu_sources, number of warnings)
CASES = [
    ("h100-x8", {}, {"nvidia-smi": nvidia_run("h100-80gb-hbm3-x8.csv")},
     8, ("nvidia", "NVIDIA H100 80GB HBM3", 81559, "9.0"), ["nvidia-smi"], 0),
    ("h200-x8", {}, {"nvidia-smi": nvidia_run("h200-x8.csv")},
     8, ("nvidia", "NVIDIA H200", 143771, "9.0"), ["nvidia-smi"], 0),
    ("a100-80-x4", {}, {"nvidia-smi": nvidia_run("a100-sxm4-80gb-x4.csv")},
     4, ("nvidia", "NVIDIA A100-SXM4-80GB", 81920, "8.0"), ["nvidia-smi"], 0),
    ("a100-40-x2", {}, {"nvidia-smi": nvidia_run("a100-pcie-40gb-x2.csv")},
     2, ("nvidia", "NVIDIA A100-PCIE-40GB", 40960, "8.0"), ["nvidia-smi"], 0),
    ("rtx-4090", {}, {"nvidia-smi": nvidia_run("rtx-4090-x1.csv")},
     1, ("nvidia", "NVIDIA GeForce RTX 4090", 24564, "8.9"), ["nvidia-smi"], 0),
    ("rtx-3060", {}, {"nvidia-smi": nvidia_run("rtx-3060-12gb-x1.csv")},
     1, ("nvidia", "NVIDIA GeForce RTX 3060", 12288, "8.6"), ["nvidia-smi"], 0),
    ("gb10", {}, {"nvidia-smi": nvidia_run("gb10-unified.csv")},
     1, ("nvidia", "NVIDIA GB10", None, "12.1"), ["nvidia-smi"], 0),
    ("driver-470", {}, {"nvidia-smi": nvidia_run("driver-470-no-compute-cap.runs.json")},
     1, ("nvidia", "Tesla V100-SXM2-16GB", 16160, None), ["nvidia-smi"], 1),
    ("driver-not-loaded", {}, {"nvidia-smi": nvidia_run("driver-not-loaded.runs.json")},
     0, None, [], 1),
    ("no-tools", {}, {}, 0, None, [], 0),
    ("mi300x-x8", {}, {"amd-smi": amd_smi_runs("mi300x-x8.json", "mi300x-x8.mem-usage.json")},
     8, ("amd", "AMD Instinct MI300X", 196592, "gfx942"), ["amd-smi"], 0),
    ("mi250x-rocm-smi", {}, {"rocm-smi": [(list(gpu_facts.ROCM_SMI_ARGS), 0, fixture("rocm-smi", "mi250x-x8.json"), "")]},
     8, ("amd", "AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2", 65520, None), ["rocm-smi"], 0),
    ("mixed", {}, {"nvidia-smi": nvidia_run("rtx-4090-x1.csv"),
                   "amd-smi": amd_smi_runs("mi300x-x8.json", "mi300x-x8.mem-usage.json")},
     9, ("nvidia", "NVIDIA GeForce RTX 4090", 24564, "8.9"), ["nvidia-smi", "amd-smi"], 0),
    ("mixed-nvidia-only", {"vendors": ["nvidia"]},
     {"nvidia-smi": nvidia_run("rtx-4090-x1.csv"), "amd-smi": amd_smi_runs("mi300x-x8.json", "mi300x-x8.mem-usage.json")},
     1, ("nvidia", "NVIDIA GeForce RTX 4090", 24564, "8.9"), ["nvidia-smi"], 0),
    ("mixed-amd-only", {"vendors": ["amd"]},
     {"nvidia-smi": nvidia_run("rtx-4090-x1.csv"), "amd-smi": amd_smi_runs("mi300x-x8.json", "mi300x-x8.mem-usage.json")},
     8, ("amd", "AMD Instinct MI300X", 196592, "gfx942"), ["amd-smi"], 0),
]


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_facts_from_recorded_outputs(host, run, case, check_mode):
    _id, args, tools, count, first, sources, n_warnings = case
    for tool, runs in tools.items():
        host["add"](tool, runs)

    failed, result = run(args, check_mode)

    assert not failed, result
    assert result["changed"] is False
    facts = result["ansible_facts"]
    assert sorted(facts) == ["gpu_count", "gpus"]
    assert facts["gpu_count"] == count == len(facts["gpus"])
    if first is not None:
        gpu = facts["gpus"][0]
        cc_or_arch = gpu["compute_capability"] if gpu["vendor"] == "nvidia" else gpu["arch"]
        assert (gpu["vendor"], gpu["name"], gpu["memory_total_mib"], cc_or_arch) == first
    for gpu in facts["gpus"]:
        assert sorted(gpu) == sorted(gpu_facts.GPU_KEYS)
    assert result["gpu_sources"] == sources
    assert len(result["_warnings"]) == n_warnings


def test_commands_are_list_argv_with_lc_all_c(host, run):
    host["add"]("nvidia-smi", nvidia_run("h100-80gb-hbm3-x8.csv"))
    host["add"]("amd-smi", amd_smi_runs("mi300x-x8.json", "mi300x-x8.mem-usage.json"))
    failed, result = run({})
    assert not failed
    assert host["calls"] == [
        ["/usr/bin/nvidia-smi"] + gpu_facts.nvidia_smi_argv(),
        ["/usr/bin/amd-smi"] + list(gpu_facts.AMD_SMI_STATIC_ARGS),
        ["/usr/bin/amd-smi"] + list(gpu_facts.AMD_SMI_METRIC_ARGS),
    ]
    for kwargs in host["kwargs"]:
        assert kwargs["environ_update"] == {"LC_ALL": "C"}
        assert kwargs.get("use_unsafe_shell", False) is False
    assert ("amd-smi", ["/opt/rocm/bin"]) in host["lookups"]


def test_driver_failure_is_a_warning_not_a_failure(host, run):
    host["add"]("nvidia-smi", nvidia_run("driver-not-loaded.runs.json"))
    failed, result = run({})
    assert not failed
    assert result["ansible_facts"] == {"gpus": [], "gpu_count": 0}
    assert result["_warnings"] == [
        "nvidia-smi failed (rc=9), so no NVIDIA GPU is reported: NVIDIA-SMI has failed because it couldn't "
        "communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."]


def test_unreadable_output_fails_with_the_line(host, run):
    host["add"]("nvidia-smi", [(gpu_facts.nvidia_smi_argv(), 0, "0, NVIDIA H100 80GB HBM3, 81559\n", "")])
    failed, result = run({})
    assert failed
    assert result["msg"].startswith("Cannot read GPU facts: nvidia-smi line 1 has 3 comma-separated fields, expected 9")


def test_path_overrides_are_used(host, run, tmp_path):
    binary = tmp_path / "nvidia-smi"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    host["add"]("custom-nvidia-smi", nvidia_run("rtx-3060-12gb-x1.csv"), path=str(binary))
    failed, result = run({"nvidia_smi_path": str(binary), "vendors": ["nvidia"]})
    assert not failed
    assert result["ansible_facts"]["gpus"][0]["name"] == "NVIDIA GeForce RTX 3060"
    assert host["calls"][0][0] == str(binary)
    assert host["lookups"] == []


@pytest.mark.parametrize("option", ["nvidia_smi_path", "amd_smi_path", "rocm_smi_path"])
def test_a_missing_override_fails_naming_the_option(host, run, tmp_path, option):
    missing = str(tmp_path / "nope")
    failed, result = run({option: missing})
    assert failed
    assert result["msg"].startswith("%s=%s is not an executable file" % (option, missing))
    assert host["calls"] == []


def test_an_unknown_vendor_fails_naming_the_choices(host, run):
    failed, result = run({"vendors": ["nvidia", "intel"]})
    assert failed
    assert "vendors" in result["msg"] and "intel" in result["msg"]
    assert "nvidia" in result["msg"] and "amd" in result["msg"]


def test_the_module_with_the_fake_nvidia_smi_on_path(monkeypatch, run):
    """No patched I/O: get_bin_path finds tests/fixtures/fake-bin/nvidia-smi and run_command runs it."""
    monkeypatch.setenv("PATH", FAKE_BIN + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.setenv("LLMOPS_FAKE_NVIDIA_SMI", "a100-sxm4-80gb-x4.csv")
    failed, result = run({"vendors": ["nvidia"]})
    assert not failed, result
    facts = result["ansible_facts"]
    assert facts["gpu_count"] == 4
    assert [g["memory_total_mib"] for g in facts["gpus"]] == [81920] * 4
    assert result["gpu_sources"] == ["nvidia-smi"]
