"""hardware_probe module: what is probed, what is declared, what a host compiles, bad input."""
import json
import os
import subprocess
import sys

import pytest

from ansible.module_utils import basic
from ansible_collections.llmops.deploy.plugins.module_utils import host_resources
from ansible_collections.llmops.deploy.plugins.modules import capacity_check, hardware_probe

from .module_runner import run_module

FULL_HOST = {"memory_total_mib": 1048576, "cpu_cores": 64, "disk_free_mib": 2000000}


@pytest.fixture
def host(monkeypatch):
    """The host's RAM and free disk as fixed figures (the cores are this machine's): returns the disk paths asked."""
    asked = []
    monkeypatch.setattr(host_resources, "probe_memory", lambda: {"memory_total_mib": 2063937})

    def probe_disk(path):
        asked.append(path)
        return {"disk_free_mib": 3500000}

    monkeypatch.setattr(host_resources, "probe_disk", probe_disk)
    return asked


def test_every_part_is_probed_when_nothing_is_declared(monkeypatch, nvidia_smi, host):
    calls = nvidia_smi("h100-80gb-hbm3-x8.csv")
    failed, result = run_module(monkeypatch, hardware_probe, {"model_dir": "/srv/models"})
    assert not failed and result["changed"] is False
    assert result["probed"] == ["gpus", "memory_total_mib", "cpu_cores", "disk_free_mib"]
    assert result["gpu_source"] == "nvidia-smi" and len(calls) == 1 and calls[0][1] == {"LC_ALL": "C"}
    hardware = result["hardware"]
    assert len(hardware["gpus"]) == 8 and hardware["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert hardware["memory_total_mib"] == 2063937 and hardware["disk_free_mib"] == 3500000
    assert hardware["cpu_cores"] == host_resources.probe_cpu_cores()
    assert hardware["disk_path"] == "/srv/models" and result["model_dir"] == "/srv/models" and host == ["/srv/models"]


def test_declared_parts_are_not_probed(monkeypatch, host):
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda *a, **k: pytest.fail("probed a GPU tool"))
    failed, result = run_module(monkeypatch, hardware_probe, {
        "hardware": dict(FULL_HOST, gpu_model="H100", gpu_count=8)})
    assert not failed
    assert result["probed"] == [] and result["gpu_source"] is None and host == []
    assert result["hardware"] == dict(FULL_HOST, gpu_model="H100", gpu_count=8, disk_path="/opt/llmops/models")


def test_a_cpu_target_runs_no_gpu_tool(monkeypatch, host):
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda *a, **k: pytest.fail("probed a GPU tool"))
    failed, result = run_module(monkeypatch, hardware_probe, {"target": "cpu", "hardware": {"cpu_cores": 16}})
    assert not failed
    assert result["probed"] == ["memory_total_mib", "disk_free_mib"] and "gpus" not in result["hardware"]


def test_check_mode_probes_the_same(monkeypatch, nvidia_smi, host):
    nvidia_smi("h100-80gb-hbm3-x8.csv")
    failed, result = run_module(monkeypatch, hardware_probe, {"hardware": FULL_HOST})
    failed_check, in_check = run_module(monkeypatch, hardware_probe, {"hardware": FULL_HOST}, check_mode=True)
    assert not failed and not failed_check
    assert in_check["hardware"] == result["hardware"] and in_check["probed"] == result["probed"] == ["gpus"]


@pytest.mark.parametrize("args, words", [
    ({"target": "tpu"}, ["target", "gpu, cpu", "tpu"]),
    ({"hardware": {"gpu_modle": "H100"}}, ["gpu_modle", "gpu_model"]),
    ({"hardware": {"gpus": [], "gpu_model": "H100"}}, ["mutually exclusive", "gpus", "gpu_model"]),
])
def test_bad_input_fails_before_anything_is_probed(monkeypatch, args, words):
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda *a, **k: pytest.fail("probed before checking"))
    monkeypatch.setattr(host_resources, "probe_memory", lambda: pytest.fail("probed before checking"))
    failed, result = run_module(monkeypatch, hardware_probe, args)
    assert failed
    for word in words:
        assert word in result["msg"]


def test_unreadable_gpu_tool_output_fails_naming_the_line(monkeypatch, host):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                        lambda self, name, required=False, opt_dirs=None: "/usr/bin/nvidia-smi"
                        if name == "nvidia-smi" else None)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: (0, "0, H100, only three\n", ""))
    failed, result = run_module(monkeypatch, hardware_probe, {})
    assert failed and "only three" in result["msg"]


def test_the_same_hardware_as_capacity_check_probes(monkeypatch, nvidia_smi, host):
    """What the preflight runs per host (this module) and what capacity_check probes when it judges on the host."""
    nvidia_smi("h100-80gb-hbm3-x8.csv")
    failed, probe = run_module(monkeypatch, hardware_probe, {"hardware": {"cpu_cores": 64}})
    assert not failed
    failed, judged = run_module(monkeypatch, capacity_check, {"params": "70B", "precision": "fp8",
                                                              "hardware": {"cpu_cores": 64}})
    assert not failed
    assert judged["probed"] == probe["probed"] and judged["gpu_source"] == probe["gpu_source"]
    assert [gpu["uuid"] for gpu in judged["hardware"]["gpus"]] == [gpu["uuid"] for gpu in probe["hardware"]["gpus"]]


def test_a_host_compiles_only_the_probe():
    """The module imports no judgement code (AnsiballZ compiles every module_util a module imports, on every host)."""
    code = ("import sys; from ansible_collections.llmops.deploy.plugins.modules import hardware_probe; "
            "print(sorted(m.rsplit('.', 1)[1] for m in sys.modules if '.module_utils.' in m and 'llmops' in m))")
    out = subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))).stdout
    assert set(json.loads(out.replace("'", '"'))) == {
        "check_spec", "model_spec", "gpu_facts", "host_resources", "hardware_probe"}
