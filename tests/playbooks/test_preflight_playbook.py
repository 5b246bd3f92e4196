"""playbooks/preflight.yml run for real with ansible-playbook: recorded nvidia-smi first on PATH, none, a fleet,
one model or a choice among candidates."""
import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
FAKE_BIN = os.path.join(REPO, "tests", "fixtures", "fake-bin")

pytestmark = pytest.mark.slow


def run_playbook(tmp_path, *args, fake_gpu=None, check=False, playbook="playbooks/preflight.yml", path_prefix=()):
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(list(path_prefix) + ([FAKE_BIN] if fake_gpu else [])
                                  + [VENV_BIN, "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    env["ANSIBLE_HOME"] = str(tmp_path / "ansible-home")
    env["ANSIBLE_LOCAL_TEMP"] = str(tmp_path / "ansible-tmp")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"  # no line wrapping in what the tests read
    env.pop("ANSIBLE_CONFIG", None)
    if fake_gpu:
        env["LLMOPS_FAKE_NVIDIA_SMI"] = fake_gpu
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), playbook,
           "-e", "preflight_report_dir=%s" % (tmp_path / "reports")] + list(args)
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300, check=False)
    report_path = tmp_path / "reports" / "preflight.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return proc, report


# RAM, cores and free disk declared (the GPUs are still probed, through the recorded nvidia-smi or none): the verdicts
# do not depend on the machine the tests run on.
SMALL_HOST = ["-e", '{"llmops_declared_hardware": {"memory_total_mib": 24000, "cpu_cores": 2, "disk_free_mib": 80000}}']
BIG_HOST = ["-e", '{"llmops_declared_hardware": {"memory_total_mib": 524288, "cpu_cores": 32, "disk_free_mib": 1800000}}']


def recap(output, host):
    line = [ln for ln in output.splitlines() if ln.startswith(host + " ") and "ok=" in ln][-1]
    return dict(part.split("=") for part in line.split(":", 1)[1].split())


def test_local_with_recorded_h100s(tmp_path):
    proc, report = run_playbook(tmp_path, "-i", "inventories/local", *SMALL_HOST, fake_gpu="h100-80gb-hbm3-x8.csv")
    assert proc.returncode == 0, proc.stdout
    row = report["hosts"][0]
    assert row["host"] == "localhost" and row["gpu_count"] == 8
    assert row["gpu_summary"] == "8 x NVIDIA H100 80GB HBM3"
    assert row["gpus_needed"] == 1 and row["probed"] == ["gpus"] and row["cpu_cores"] == 2
    # The GPU fits; only the declared 2 CPU cores keep it from 'fits'.
    assert report["hosts"][0]["verdict"] == "tight"
    assert [r for r in row["reasons"] if r.startswith("CPU cores")]
    assert "localhost: TIGHT (GPUs: 8 x NVIDIA H100 80GB HBM3, needs 1 GPU(s))" in proc.stdout
    assert "Report: %s/preflight.html (and .md, .json)" % (tmp_path / "reports") in proc.stdout
    markdown = (tmp_path / "reports" / "preflight.md").read_text()
    assert "| localhost | - | 8 x NVIDIA H100 80GB HBM3 | 684.166 |" in markdown
    # One model: the matrix has one column, the model, chosen where it can be deployed.
    assert report["mode"] == "single" and [c["key"] for c in report["candidates"]] == ["Qwen/Qwen2.5-0.5B-Instruct"]
    assert row["chosen"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert report["matrix"]["localhost"]["Qwen/Qwen2.5-0.5B-Instruct"]["verdict"] == "tight"
    page = (tmp_path / "reports" / "preflight.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and 'data-host="localhost"' in page


def test_local_with_recorded_a100_40g_and_a_32b_model(tmp_path):
    proc, report = run_playbook(tmp_path, "-i", "inventories/local", "-e", "llmops_model=Qwen/Qwen2.5-32B-Instruct",
                                *BIG_HOST,
                                fake_gpu="a100-pcie-40gb-x2.csv")
    assert proc.returncode == 0, proc.stdout
    row = report["hosts"][0]
    assert row["verdict"] == "insufficient" and row["gpus_needed"] == 4
    assert any("host has 2 x NVIDIA A100-PCIE-40GB" in r for r in row["reasons"]), row["reasons"]


def test_local_without_any_gpu_tool(tmp_path):
    proc, report = run_playbook(tmp_path, "-i", "inventories/local", *BIG_HOST)
    assert proc.returncode == 0, proc.stdout
    row = report["hosts"][0]
    assert row["gpu_count"] == 0 and row["verdict"] == "insufficient"
    assert row["reasons"][0].startswith("no GPU found")


def test_rerun_changes_nothing_and_check_mode_writes_nothing(tmp_path):
    proc = run_playbook(tmp_path, "-i", "inventories/local", *SMALL_HOST, check=True)[0]
    assert proc.returncode == 0, proc.stdout
    assert not (tmp_path / "reports").exists()
    assert "localhost: INSUFFICIENT" in proc.stdout  # the summary is still printed
    assert "Check mode: no report written" in proc.stdout and "Report: " not in proc.stdout
    # Probed free disk moves whenever anything on the machine writes, and the report records it; with the hardware
    # declared the measurements are fixed, so a second run must rewrite nothing.
    declared = ["-e", '{"llmops_declared_hardware": {"gpus": [], "memory_total_mib": 24000, "cpu_cores": 2, '
                      '"disk_free_mib": 80000}}']
    first = run_playbook(tmp_path, "-i", "inventories/local", *declared)[0]
    second = run_playbook(tmp_path, "-i", "inventories/local", *declared)[0]
    assert recap(first.stdout, "localhost")["changed"] != "0"
    assert recap(second.stdout, "localhost")["changed"] == "0", second.stdout


def test_prod_fleet_planned_from_declared_hardware(tmp_path):
    proc, report = run_playbook(tmp_path, "-i", "inventories/prod", "-e", "preflight_probe=false",
                                "-e", '{"llmops_candidates": []}')
    assert proc.returncode == 0, proc.stdout
    verdicts = dict((row["host"], (row["verdict"], row["gpus_needed"])) for row in report["hosts"])
    assert verdicts == {
        "h100-node-01": ("fits", 2), "h100-node-02": ("fits", 2),
        "a100-node-01": ("fits", 2), "a100-node-02": ("fits", 2),
        "a100-40g-node-01": ("insufficient", 4),
        "edge-4090-01": ("insufficient", 8), "edge-4090-02": ("insufficient", 8),
        # llmops_target cpu in its group: planned as a CPU host (RAM and cores), no GPU needed.
        "cpu-node-01": ("fits", 0),
    }
    assert report["totals"]["deployable"] == 5
    assert report["sizing"]["gpu_memory_gb"] == 96.0 and report["model"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"
    groups = dict((row["host"], row["groups"]) for row in report["hosts"])
    assert groups["edge-4090-01"] == ["gpu_rtx4090"]


def test_unreachable_hosts_are_reported_not_fatal_with_candidates(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        "      ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
        "      llmops_declared_hardware: {memory_total_mib: 65536, cpu_cores: 16, disk_free_mib: 900000}\n"
        "    ghost:\n      ansible_host: 127.0.0.1\n      ansible_port: 1\n      ansible_connection: ssh\n")
    proc, report = run_playbook(tmp_path, "-i", str(inventory), "-e", "llmops_target=cpu", "-e",
                                '{"llmops_candidates": ["Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct"]}',
                                "-e", "llmops_precision=bf16")
    verdicts = dict((row["host"], (row["verdict"], row["chosen"])) for row in report["hosts"])
    assert verdicts["ghost"] == ("unreachable", None), proc.stdout
    assert verdicts["localhost"][1] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert set(cell["verdict"] for cell in report["matrix"]["ghost"].values()) == {"unreachable"}


def test_unreachable_hosts_are_reported_not_fatal(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        "      ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
        "      llmops_declared_hardware: {memory_total_mib: 65536, cpu_cores: 16, disk_free_mib: 900000}\n"
        "    ghost:\n      ansible_host: 127.0.0.1\n      ansible_port: 1\n      ansible_connection: ssh\n")
    proc, report = run_playbook(tmp_path, "-i", str(inventory), "-e", "llmops_params=1.5B", "-e",
                                "llmops_precision=fp16", "-e", "llmops_target=cpu")
    verdicts = dict((row["host"], row["verdict"]) for row in report["hosts"])
    assert verdicts["ghost"] == "unreachable", proc.stdout
    assert verdicts["localhost"] in ("fits", "tight")
    # not fatal: the run passes, the host is named in a warning, and the recap does not count it as failed or unreachable
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "ghost: not reachable, reported as such" in proc.stdout
    assert recap(proc.stdout, "ghost")["failed"] == "0" and recap(proc.stdout, "ghost")["unreachable"] == "0"


def test_a_host_whose_probe_fails_is_reported_with_its_reason_and_the_others_are_judged(tmp_path):
    """One host's nvidia-smi prints garbage: that host fails at the probe, the fleet report names it failed with
    the tool's problem, and the other host is still judged on the controller."""
    bad_bin = tmp_path / "bad-bin"
    bad_bin.mkdir()
    (bad_bin / "nvidia-smi").write_text("#!/bin/sh\necho 'garbage, not csv'\n")
    (bad_bin / "nvidia-smi").chmod(0o755)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  vars:\n    ansible_connection: local\n"
        "    ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
        "    llmops_declared_hardware: {memory_total_mib: 65536, cpu_cores: 16, disk_free_mib: 900000}\n"
        "  hosts:\n    good:\n      llmops_declared_hardware: {gpus: [], memory_total_mib: 65536, cpu_cores: 16,"
        " disk_free_mib: 900000}\n"
        "    broken:\n")
    proc, report = run_playbook(tmp_path, "-i", str(inventory), "-e", "llmops_params=1.5B", "-e",
                                "llmops_precision=fp16", "-e", "preflight_fail_on=never",
                                "-e", "llmops_target=gpu", path_prefix=[str(bad_bin)])
    rows = dict((row["host"], row) for row in report["hosts"])
    assert rows["broken"]["verdict"] == "failed", proc.stdout
    assert "nvidia-smi line 1 has 2 comma-separated fields" in " ".join(rows["broken"]["reasons"]), rows["broken"]
    assert rows["good"]["verdict"] == "insufficient"   # no GPU declared: judged, not failed
    assert recap(proc.stdout, "broken")["failed"] == "1" and recap(proc.stdout, "good")["failed"] == "0"


@pytest.mark.parametrize("extra, words", [
    (["-e", "llmops_precision=fp12"], ["precision: invalid value 'fp12'", "int4"]),
    (["-e", "llmops_reserve=0.9"], ["reserve: invalid value 0.9", "0 to 0.5"]),
    (["-e", "llmops_model=deepseek-ai/DeepSeek-OCR"], ["params", "deepseek-ai/DeepSeek-OCR"]),
    (["-e", "llmops_model=", "-e", "llmops_params="], ["preflight_model", "preflight_params"]),
    (["-e", '{"llmops_candidates": ["deepseek-ai/DeepSeek-OCR"]}'],
     ["llmops.deploy.model_candidates", "candidates[0].params", "deepseek-ai/DeepSeek-OCR"]),
    (["-e", '{"llmops_candidates": ["Qwen/Qwen2.5-7B-Instruct"]}', "-e", "llmops_precision="],
     ["candidates[0].precision", "Qwen/Qwen2.5-7B-Instruct does not say its precision"]),
    (["-e", '{"llmops_candidates": ["Qwen/Qwen2.5-7B-Instruct-AWQ"]}', "-e", "llmops_scenario=huge"],
     ["scenario: invalid value 'huge'", "enterprise"]),
])
def test_bad_input_fails_clearly_without_traceback(tmp_path, extra, words):
    proc, _report = run_playbook(tmp_path, "-i", "inventories/local", "-e", "preflight_fail_on=insufficient", *extra)
    assert proc.returncode != 0
    for word in words:
        assert word in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stdout


# The prod inventory's candidates for the enterprise scenario: per host, the expected choice.
PROD_CHOICES = {
    "h100-node-01": "Qwen/Qwen2.5-32B-Instruct", "h100-node-02": "Qwen/Qwen2.5-32B-Instruct",
    "a100-node-01": "Qwen/Qwen2.5-32B-Instruct", "a100-node-02": "Qwen/Qwen2.5-32B-Instruct",
    # 2 x A100 40GB cannot hold the 32B at BF16 (96 GB): its INT8 sibling, not the smaller 7B (guide 6.2).
    "a100-40g-node-01": "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8",
    # One RTX 4090: only the 7B fits (the 32B AWQ, 29 GB with its scales, does not).
    "edge-4090-01": "Qwen/Qwen2.5-7B-Instruct", "edge-4090-02": "Qwen/Qwen2.5-7B-Instruct",
    # A CPU host (llmops_target cpu in its group, 256 GiB of RAM): the largest model at the highest precision.
    "cpu-node-01": "Qwen/Qwen2.5-32B-Instruct",
}

CHOSEN_FACTS = """
- name: Run the preflight
  ansible.builtin.import_playbook: {repo}/playbooks/preflight.yml

- name: Show what the deploy playbook will read
  hosts: all
  gather_facts: false
  tasks:
    - name: Chosen model fact
      ansible.builtin.debug:
        msg: "CHOSEN {{{{ inventory_hostname }}}}=[{{{{ preflight_chosen_model }}}}] {{{{ preflight_result.verdict }}}}"
"""


def test_prod_fleet_chooses_a_candidate_per_host(tmp_path):
    wrapper = tmp_path / "wrapper.yml"
    wrapper.write_text(CHOSEN_FACTS.format(repo=REPO))
    proc, report = run_playbook(tmp_path, "-i", "inventories/prod", "-e", "preflight_probe=false",
                                playbook=str(wrapper))
    assert proc.returncode == 0, proc.stdout
    assert report["mode"] == "candidates" and report["scenario"]["name"] == "enterprise"
    assert dict((row["host"], row["chosen"]) for row in report["hosts"]) == PROD_CHOICES
    for host, chosen in PROD_CHOICES.items():
        assert "CHOSEN %s=[%s]" % (host, chosen or "") in proc.stdout
    assert "CHOSEN a100-40g-node-01=[Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8] fits" in proc.stdout
    assert "CHOSEN cpu-node-01=[Qwen/Qwen2.5-32B-Instruct] fits" in proc.stdout
    # Hosts x candidates, with a reason for every rejection.
    assert [c["key"] for c in report["candidates"]] == [
        "Qwen/Qwen2.5-32B-Instruct", "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8", "Qwen/Qwen2.5-32B-Instruct-AWQ",
        "Qwen/Qwen2.5-7B-Instruct", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8"]
    fp8 = report["matrix"]["a100-node-01"]["okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8"]
    assert (fp8["rule"], fp8["reason"]) == ("capability", "FP8 needs compute capability 8.9, A100 80GB has 8.0")
    small = report["matrix"]["a100-40g-node-01"]["Qwen/Qwen2.5-32B-Instruct"]
    assert (small["status"], small["rule"]) == ("rejected", "resources")
    assert small["reason"].startswith("needs 96.0 GB of GPU memory, host has 85.899 GB")
    # AWQ weights are stored with their scales and zero points (about 19.3 GB for 32B): 29 GB with the x 1.5.
    awq = report["matrix"]["edge-4090-01"]["Qwen/Qwen2.5-32B-Instruct-AWQ"]
    assert (awq["verdict"], awq["rule"]) == ("insufficient", "resources"), awq
    for host, cells in report["matrix"].items():
        for key, cell in cells.items():
            assert cell["status"] != "rejected" or cell["reason"], (host, key)
    assert report["candidates"][0]["totals"]["chosen"] == 5
    assert report["totals"]["with_choice"] == 8 and report["totals"]["chosen"]["Qwen/Qwen2.5-7B-Instruct"] == 2
    row = [r for r in report["hosts"] if r["host"] == "a100-40g-node-01"][0]
    assert "guide (6.2) quantises 32B+ models to INT8" in row["justification"]
    markdown = (tmp_path / "reports" / "preflight.md").read_text()
    assert "| Chosen |" in markdown and "**CHOSEN: fits, 2 GPU(s)**" in markdown
    assert "a100-40g-node-01: Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8 (FITS, 2 GPU(s))" in proc.stdout
    # The CPU host is planned as a CPU target: host RAM (weights + KV-cache space + runtime) and cores, in every
    # rendering, and no GPU figure.
    cpu_plan = [r for r in report["hosts"] if r["host"] == "cpu-node-01"][0]["cpu_plan"]
    assert cpu_plan["weights_gb"] == 64.0 and cpu_plan["guide_cpu_memory_gb"] == 128.0
    assert "cpu-node-01: Qwen/Qwen2.5-32B-Instruct (FITS, CPU target: host RAM %s GB" % cpu_plan["host_ram_gb"] \
        in proc.stdout
    assert "| cpu-node-01 | cpu_only | not used (CPU target) | - |" in markdown
    assert "- **cpu-node-01** (Qwen/Qwen2.5-32B-Instruct): %s" % cpu_plan["text"] in markdown
    page = (tmp_path / "reports" / "preflight.html").read_text()
    assert page.count('<td class="cell ') == 8 * 6 and page.count('<td class="cell fits chosen"') == 8
    assert "CPU plan: host RAM %s GB" % cpu_plan["host_ram_gb"] in page
    # A second run writes nothing new (the reports have no timestamp).
    again = run_playbook(tmp_path, "-i", "inventories/prod", "-e", "preflight_probe=false", playbook=str(wrapper))[0]
    assert recap(again.stdout, "h100-node-01")["changed"] == "0", again.stdout


def test_candidates_on_recorded_a100s_and_a_failing_level(tmp_path):
    # GPUs probed (recorded nvidia-smi: 2 x A100-PCIE-40GB); RAM, cores and disk declared, so the test machine's
    # own size does not matter.
    extra = ["-e", '{"llmops_declared_hardware": {"memory_total_mib": 524288, "cpu_cores": 32, '
                   '"disk_free_mib": 1800000}}', "-e", "llmops_precision=bf16", "-e", "llmops_scenario=complex"]
    candidates = '{"llmops_candidates": ["Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-32B-Instruct", ' \
                 '"Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8"]}'
    proc, report = run_playbook(tmp_path, "-i", "inventories/local", "-e", candidates, *extra,
                                fake_gpu="a100-pcie-40gb-x2.csv")
    assert proc.returncode == 0, proc.stdout
    cells = report["matrix"]["localhost"]
    assert cells["Qwen/Qwen2.5-7B-Instruct"]["reason"] == "7B is outside the complex scenario's size band (32B~70B)"
    assert cells["Qwen/Qwen2.5-32B-Instruct"]["rule"] == "resources"
    assert cells["Qwen/Qwen2.5-32B-Instruct"]["reason"].startswith("needs 96.0 GB of GPU memory, host has 85.899 GB")
    # FP16 does not fit the 2 x 40 GB: INT8 is chosen for the 32B model, although 'complex' recommends FP16.
    row = report["hosts"][0]
    assert (row["chosen"], row["verdict"], row["gpus_needed"]) == ("Qwen/Qwen2.5-32B-Instruct-GPTQ-Int8", "fits", 2)
    assert "no candidate at a precision it recommends (FP16) can be used here" in row["justification"]
    assert row["gpu_summary"] == "2 x NVIDIA A100-PCIE-40GB" and row["gpu_class"] == "datacenter"

    failing = run_playbook(tmp_path, "-i", "inventories/local", "-e", '{"llmops_candidates": '
                           '["Qwen/Qwen2.5-32B-Instruct"]}', *extra, "-e", "preflight_fail_on=insufficient",
                           fake_gpu="a100-pcie-40gb-x2.csv")[0]
    assert failing.returncode != 0
    assert "no candidate can be used on this host (insufficient)" in failing.stdout
    assert "needs 96.0 GB of GPU memory" in failing.stdout


def test_without_probing_an_undeclared_host_fails_naming_the_parts(tmp_path):
    # preflight_probe=false runs each check on the controller: a host whose hardware is not declared must fail, not
    # be judged on the controller's own cores and RAM.
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  vars:\n    ansible_connection: local\n"
        "    ansible_python_interpreter: '{{ ansible_playbook_python }}'\n  hosts:\n"
        "    declared-node:\n      llmops_declared_hardware: {gpu_model: H100, gpu_count: 8, memory_total_mib: 1048576,"
        " cpu_cores: 64, disk_free_mib: 4000000}\n"
        "    half-declared-node:\n      llmops_declared_hardware: {gpu_model: H100, gpu_count: 8}\n")
    proc, report = run_playbook(tmp_path, "-i", str(inventory), "-e", "preflight_probe=false",
                                "-e", "llmops_model=Qwen/Qwen2.5-7B-Instruct", "-e", "llmops_precision=bf16")
    assert proc.returncode != 0
    assert "not declared: memory_total_mib (host RAM), cpu_cores, disk_free_mib (free disk)" in proc.stdout
    rows = dict((row["host"], row) for row in report["hosts"])
    assert rows["declared-node"]["verdict"] == "fits" and rows["declared-node"]["cpu_cores"] == 64
    failed = rows["half-declared-node"]
    assert failed["verdict"] == "failed" and failed["cpu_cores"] is None and failed["ram_gb"] is None
    assert "not declared" in failed["reasons"][0]


@pytest.mark.parametrize("probe", ["true", "false"])
def test_a_host_with_a_refused_value_of_its_own_fails_alone(tmp_path, probe):
    # The role's argument spec is checked once for the play; a value that differs on one host (here its target) is
    # checked by capacity_check's spec, on the host or on the controller: that host fails, naming the field, and the
    # others are judged and reported.
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  vars:\n    ansible_connection: local\n"
        "    ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
        "    llmops_declared_hardware: {gpu_model: H100, gpu_count: 8, memory_total_mib: 1048576, cpu_cores: 64,"
        " disk_free_mib: 4000000}\n  hosts:\n"
        "    good-node:\n    odd-node:\n      llmops_target: tpu\n")
    proc, report = run_playbook(tmp_path, "-i", str(inventory), "-e", "preflight_probe=%s" % probe,
                                "-e", "llmops_model=Qwen/Qwen2.5-7B-Instruct", "-e", "llmops_precision=bf16")
    assert proc.returncode != 0
    assert "value of target must be one of: gpu, cpu, got: tpu" in proc.stdout
    assert recap(proc.stdout, "odd-node")["failed"] == "1"
    assert recap(proc.stdout, "good-node")["failed"] == "0"
    rows = dict((row["host"], row) for row in report["hosts"])
    assert rows["good-node"]["verdict"] == "fits"
    assert rows["odd-node"]["verdict"] == "failed"


def test_a_play_wide_value_outside_the_role_spec_fails_before_any_host_is_probed(tmp_path):
    proc, report = run_playbook(tmp_path, "-i", "localhost,", "-c", "local", "-e", "llmops_model=Qwen/Qwen2.5-7B-Instruct",
                                "-e", "llmops_reserve=lots")
    assert proc.returncode != 0
    assert "preflight_reserve" in proc.stdout
    assert "Probe every host once" not in proc.stdout
    assert report is None


def test_when_every_host_fails_the_report_is_still_written(tmp_path):
    # The report is the first thing a team reads when a whole fleet is refused (here: nothing declared, no probing):
    # it is written and summarised before the hosts fail.
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  vars:\n    ansible_connection: local\n"
        "    ansible_python_interpreter: '{{ ansible_playbook_python }}'\n  hosts:\n    node-a:\n    node-b:\n")
    proc, report = run_playbook(tmp_path, "-i", str(inventory), "-e", "preflight_probe=false",
                                "-e", "llmops_model=Qwen/Qwen2.5-7B-Instruct", "-e", "llmops_precision=bf16")
    assert proc.returncode != 0
    assert recap(proc.stdout, "node-a")["failed"] == "1" and recap(proc.stdout, "node-b")["failed"] == "1"
    assert report is not None, proc.stdout[-3000:]
    rows = dict((row["host"], row) for row in report["hosts"])
    assert sorted(rows) == ["node-a", "node-b"]
    assert all(row["verdict"] == "failed" and "not declared" in row["reasons"][0] for row in rows.values())
    assert "Report: " in proc.stdout
    assert (tmp_path / "reports" / "preflight.html").exists()


def test_one_given_model_every_rendering_agrees(tmp_path):
    # The README's example: one model (outside the inventory's enterprise band) instead of a choice. The band chooses
    # among candidates; a model given alone is checked as given, so the console, the JSON, the Markdown and the HTML
    # say the same: 6 hosts can take it (5 fit, 1 tight), 2 cannot.
    proc, report = run_playbook(tmp_path, "-i", "inventories/prod", "-e", "preflight_probe=false",
                                "-e", '{"llmops_candidates": []}', "-e", "llmops_model=Qwen/Qwen2.5-72B-Instruct-AWQ")
    assert proc.returncode == 0, proc.stdout
    totals = report["totals"]
    assert (totals["fits"], totals["tight"], totals["insufficient"]) == (5, 1, 2)
    assert totals["deployable"] == totals["with_choice"] == 6
    column = report["candidates"][0]["totals"]
    assert (column["chosen"], column["out_of_band"], column["eligible"]) == (6, 0, 6)
    assert "Qwen/Qwen2.5-72B-Instruct-AWQ at INT4: 8 host(s) - fits 5, tight 1, insufficient 2" in proc.stdout
    markdown = (tmp_path / "reports" / "preflight.md").read_text()
    assert "Hosts: 8 - fits 5, tight 1, insufficient 2, failed 0, unreachable 0." in markdown
    page = (tmp_path / "reports" / "preflight.html").read_text()
    assert page.count('<td class="cell ') == 8
    assert page.count('<td class="cell fits chosen"') == 5 and page.count('<td class="cell tight chosen"') == 1
    assert '<td class="cell band' not in page
    assert "6 with a model chosen" in re.sub(r"<[^>]+>", " ", page).replace("  ", " ")


def test_a_trial_recorded_as_nvidia_smi_spells_the_gpu_serves_hosts_declared_by_its_short_name(tmp_path):
    """The calibration file holds a trial recorded as nvidia-smi names the GPU ('NVIDIA GeForce RTX 4090') and one of
    a GPU no host of the run has (H200). The edge host is declared 'gpu_model: RTX 4090': its plan takes the trial
    (here the seed method, which says it cannot use it; the detailed method uses it: tests/integration), and the
    H200 entry is named in the report and on the console instead of being dropped without a word."""
    from ansible_collections.llmops.deploy.plugins.plugin_utils import calibration
    today = calibration._date(None)  # pylint: disable=protected-access
    trial = {"engine_version": calibration.engine_memory.PINNED_VERSION, "gpu": "NVIDIA GeForce RTX 4090",
             "memory_total_mib": 24564, "model": "Qwen/Qwen2.5-7B-Instruct", "host": "edge-4090-02", "date": today,
             "measured": {"activation_bytes": 472446402, "non_torch_bytes": 332859965},
             "modelled": {"activation_bytes": 236223201}}
    document = calibration.record(calibration.record(None, trial), dict(
        trial, gpu="NVIDIA H200", memory_total_mib=143771, host="h200-lab-01"))
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(document))
    proc, report = run_playbook(tmp_path, "-i", "inventories/prod", "-e", "preflight_probe=false",
                                "-e", '{"llmops_candidates": []}', "-e", "llmops_calibration_file=%s" % path,
                                "--limit", "edge-4090-01")
    assert proc.returncode == 0, proc.stdout
    row = report["hosts"][0]
    assert row["gpu_summary"] == "1 x RTX 4090"
    assert [w for w in row["warnings"] if w.startswith("calibration not used: the seed method")], row["warnings"]
    warnings = report["calibration"]["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("calibration for NVIDIA H200 (143771 MiB, measured on "
                                                         "h200-lab-01"), warnings
    assert "Calibration: %s" % warnings[0] in proc.stdout
    assert "- %s" % warnings[0] in (tmp_path / "reports" / "preflight.md").read_text()
