"""playbooks/preflight.yml run for real with ansible-playbook: recorded nvidia-smi first on PATH, none, a fleet."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
FAKE_BIN = os.path.join(REPO, "tests", "fixtures", "fake-bin")

pytestmark = pytest.mark.slow


def run_playbook(tmp_path, *args, fake_gpu=None, check=False):
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(([FAKE_BIN] if fake_gpu else []) + [VENV_BIN, "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    env["ANSIBLE_HOME"] = str(tmp_path / "ansible-home")
    env["ANSIBLE_LOCAL_TEMP"] = str(tmp_path / "ansible-tmp")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"  # no line wrapping in what the tests read
    env.pop("ANSIBLE_CONFIG", None)
    if fake_gpu:
        env["LLMOPS_FAKE_NVIDIA_SMI"] = fake_gpu
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/preflight.yml",
           "-e", "preflight_report_dir=%s" % (tmp_path / "reports")] + list(args)
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300, check=False)
    report_path = tmp_path / "reports" / "preflight.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return proc, report


def recap(output, host):
    line = [ln for ln in output.splitlines() if ln.startswith(host + " ") and "ok=" in ln][-1]
    return dict(part.split("=") for part in line.split(":", 1)[1].split())


def test_local_with_recorded_h100s(tmp_path):
    proc, report = run_playbook(tmp_path, "-i", "inventories/local", fake_gpu="h100-80gb-hbm3-x8.csv")
    assert proc.returncode == 0, proc.stdout
    row = report["hosts"][0]
    assert row["host"] == "localhost" and row["gpu_count"] == 8
    assert row["gpu_summary"] == "8 x NVIDIA H100 80GB HBM3"
    assert row["gpus_needed"] == 1
    # The GPU fits; only the 2-core machine's CPU cores keep it from 'fits'.
    assert report["hosts"][0]["verdict"] == "tight"
    assert [r for r in row["reasons"] if r.startswith("CPU cores")]
    assert "localhost: TIGHT (GPUs: 8 x NVIDIA H100 80GB HBM3, needs 1 GPU(s))" in proc.stdout
    assert "Report: %s/preflight.md (and .json)" % (tmp_path / "reports") in proc.stdout
    markdown = (tmp_path / "reports" / "preflight.md").read_text()
    assert "| localhost | - | 8 x NVIDIA H100 80GB HBM3 | 684.166 |" in markdown


def test_local_with_recorded_a100_40g_and_a_32b_model(tmp_path):
    proc, report = run_playbook(tmp_path, "-i", "inventories/local", "-e", "llmops_model=Qwen/Qwen2.5-32B-Instruct",
                                fake_gpu="a100-pcie-40gb-x2.csv")
    assert proc.returncode == 0, proc.stdout
    row = report["hosts"][0]
    assert row["verdict"] == "insufficient" and row["gpus_needed"] == 4
    assert any("host has 2 x NVIDIA A100-PCIE-40GB" in r for r in row["reasons"]), row["reasons"]


def test_local_without_any_gpu_tool(tmp_path):
    proc, report = run_playbook(tmp_path, "-i", "inventories/local")
    assert proc.returncode == 0, proc.stdout
    row = report["hosts"][0]
    assert row["gpu_count"] == 0 and row["verdict"] == "insufficient"
    assert row["reasons"][0].startswith("no GPU found")


def test_rerun_changes_nothing_and_check_mode_writes_nothing(tmp_path):
    proc = run_playbook(tmp_path, "-i", "inventories/local", check=True)[0]
    assert proc.returncode == 0, proc.stdout
    assert not (tmp_path / "reports").exists()
    assert "localhost: INSUFFICIENT" in proc.stdout  # the summary is still printed
    first = run_playbook(tmp_path, "-i", "inventories/local")[0]
    second = run_playbook(tmp_path, "-i", "inventories/local")[0]
    assert recap(first.stdout, "localhost")["changed"] != "0"
    assert recap(second.stdout, "localhost")["changed"] == "0", second.stdout


def test_prod_fleet_planned_from_declared_hardware(tmp_path):
    proc, report = run_playbook(tmp_path, "-i", "inventories/prod", "-e", "preflight_probe=false")
    assert proc.returncode == 0, proc.stdout
    verdicts = dict((row["host"], (row["verdict"], row["gpus_needed"])) for row in report["hosts"])
    assert verdicts == {
        "h100-node-01": ("fits", 2), "h100-node-02": ("fits", 2),
        "a100-node-01": ("fits", 2), "a100-node-02": ("fits", 2),
        "a100-40g-node-01": ("insufficient", 4),
        "edge-4090-01": ("insufficient", 8), "edge-4090-02": ("insufficient", 8),
        "cpu-node-01": ("insufficient", None),
    }
    assert report["totals"]["deployable"] == 4
    assert report["sizing"]["gpu_memory_gb"] == 96.0 and report["model"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"
    groups = dict((row["host"], row["groups"]) for row in report["hosts"])
    assert groups["edge-4090-01"] == ["gpu_rtx4090"]


def test_unreachable_hosts_are_reported_not_fatal(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        "      ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
        "    ghost:\n      ansible_host: 127.0.0.1\n      ansible_port: 1\n      ansible_connection: ssh\n")
    proc, report = run_playbook(tmp_path, "-i", str(inventory), "-e", "llmops_params=1.5B", "-e",
                                "llmops_precision=fp16", "-e", "llmops_target=cpu")
    verdicts = dict((row["host"], row["verdict"]) for row in report["hosts"])
    assert verdicts["ghost"] == "unreachable", proc.stdout
    assert verdicts["localhost"] in ("fits", "tight")


@pytest.mark.parametrize("extra, words", [
    (["-e", "llmops_precision=fp12"], ["precision: invalid value 'fp12'", "int4"]),
    (["-e", "llmops_reserve=0.9"], ["reserve: invalid value 0.9", "0 to 0.5"]),
    (["-e", "llmops_model=deepseek-ai/DeepSeek-OCR"], ["params", "deepseek-ai/DeepSeek-OCR"]),
    (["-e", "llmops_model=", "-e", "llmops_params="], ["preflight_model", "preflight_params"]),
])
def test_bad_input_fails_clearly_without_traceback(tmp_path, extra, words):
    proc, _report = run_playbook(tmp_path, "-i", "inventories/local", "-e", "preflight_fail_on=insufficient", *extra)
    assert proc.returncode != 0
    for word in words:
        assert word in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stdout
