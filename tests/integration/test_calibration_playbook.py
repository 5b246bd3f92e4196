"""The planner learns from its own deployments, through the playbooks: a GPU trial's figures are recorded in the
calibration file on the controller, and the next preflight of a host with the same GPU and engine version plans with
them and says where they were measured; entries of another engine version are ignored with a warning.

No GPU here: the host's GPUs come from a recorded nvidia-smi (tests/fixtures/fake-bin), the model's config from the
local hub (real HTTP), and the trial from a published vLLM start-up log parsed by the code inference_check runs."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
FAKE_BIN = os.path.join(REPO, "tests", "fixtures", "fake-bin")
MODEL = "llmops-test/Qwen2-tiny-2M"
H100 = ("NVIDIA H100 80GB HBM3", 81559)  # tests/fixtures/gpu/nvidia-smi/h100-80gb-hbm3-x8.csv
RTX4090 = ("NVIDIA GeForce RTX 4090", 24564)
GIB = 2 ** 30

pytestmark = pytest.mark.slow


def run(tmp_path, *args, fake_gpu=None):
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(([FAKE_BIN] if fake_gpu else []) + [VENV_BIN, "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    env.update(ANSIBLE_HOME=str(tmp_path / "ansible-home"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    env.pop("ANSIBLE_CONFIG", None)
    if fake_gpu:
        env["LLMOPS_FAKE_NVIDIA_SMI"] = fake_gpu
    reports = tmp_path / "reports"
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/deploy-model.yml", "-i", "inventories/local",
           "-e", "llmops_report_dir=%s" % reports, "-e", "preflight_report_dir=%s" % reports] + list(args)
    return subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600, check=False)


def entry(version, torch_total_gib, host, date):
    return {"engine": "vllm", "engine_version": version, "gpu": H100[0], "memory_total_mib": H100[1],
            "model": "Qwen/Qwen2.5-7B-Instruct", "tensor_parallel_size": 1,
            "arguments": {"max_model_len": 8192, "gpu_memory_utilization": 0.9},
            "measured": {"torch_total_bytes": int(torch_total_gib * GIB), "non_torch_bytes": GIB // 4,
                         "kv_tokens": 400000},
            "modelled": {}, "host": host, "date": date}


def test_the_next_preflight_on_the_same_gpu_uses_what_the_trial_measured(tmp_path, local_hub):
    from ansible_collections.llmops.deploy.plugins.plugin_utils import calibration
    reports = tmp_path / "reports"
    reports.mkdir()
    today = calibration._date(None)[:10]  # pylint: disable=protected-access
    document = {"format": 1, "entries": [entry("0.31.0", 70.5, "h100-old", today),
                                         entry("0.32.0", 78.25, "h100-node-07", today)]}
    (reports / "calibration.json").write_text(json.dumps(document))
    proc = run(tmp_path, "-v", "--tags", "preflight", "-e", "llmops_hub_metadata=true",
               "-e", "llmops_endpoint=%s" % local_hub.endpoint, "-e", "llmops_model=%s" % MODEL,
               "-e", "llmops_target=gpu", fake_gpu="h100-80gb-hbm3-x8.csv")
    assert proc.returncode == 0, proc.stdout[-4000:]
    # The plan's device total is the measured one, named, with the modelled value beside.
    assert "measured on h100-node-07, %s" % today in proc.stdout
    assert '"torch_total_gib": 78.25' in proc.stdout
    assert "calibration entry 0 ignored: measured with vllm 0.31.0 on h100-old" in proc.stdout
    # Every rendering of the fleet report says so.
    row = json.loads((reports / "preflight.json").read_text())["hosts"][0]
    assert row["calibration"].startswith("measured on h100-node-07, %s (vLLM 0.32.0" % today), row["calibration"]
    assert "- **localhost**: measured on h100-node-07" in (reports / "preflight.md").read_text()
    assert "Engine constants measured on h100-node-07" in (reports / "preflight.html").read_text()
    assert "engine constants measured on h100-node-07" in proc.stdout

    # Another GPU (A100 40GB): nothing measured there, so the modelled constants, no note.
    other = run(tmp_path, "-v", "--tags", "preflight", "-e", "llmops_hub_metadata=true",
                "-e", "llmops_endpoint=%s" % local_hub.endpoint, "-e", "llmops_model=%s" % MODEL,
                "-e", "llmops_target=gpu", fake_gpu="a100-pcie-40gb-x2.csv")
    assert other.returncode == 0, other.stdout[-4000:]
    assert "engine constants measured on h100-node-07" not in other.stdout and '"calibration_note"' not in other.stdout
    # ... and the H100's constants are named as measured on a GPU no host of this run plans on, not dropped unsaid.
    assert "Calibration: calibration for NVIDIA H100 80GB HBM3 (81559 MiB, measured on h100-node-07" in other.stdout
    assert json.loads((reports / "preflight.json").read_text())["hosts"][0]["calibration"] is None


def test_a_gpu_trial_is_recorded_in_the_calibration_file(tmp_path):
    """The report play records each host's GPU trial (here the figures of a published RTX 4090 log, as inference_check
    reads them) into the file the next preflight reads; entries already there are kept; check mode writes nothing."""
    from ansible_collections.llmops.deploy.plugins.module_utils import engine_log
    from ansible_collections.llmops.deploy.plugins.plugin_utils import calibration
    log = (os.path.join(REPO, "tests", "fixtures", "vllm_logs", "published", "rtx4090-qwen2.5-0.5b-instruct.log"))
    with open(log) as handle:
        parsed = engine_log.parse_engine_log(handle.read())
    made = calibration.trial_from_deployment(
        "localhost", {"engine": parsed}, {"hardware": {"gpus": [{"name": RTX4090[0], "memory_total_mib": RTX4090[1]}]}},
        {"target": "gpu", "served_model_name": "Qwen/Qwen2.5-0.5B-Instruct", "engine": {"version": "0.32.0"},
         "args": [{"name": "tensor_parallel_size", "value": 1}, {"name": "max_model_len", "value": 32768}]})
    assert made["trial"], made
    reports = tmp_path / "reports"
    reports.mkdir()
    before = calibration.record(None, entry("0.32.0", 78.0, "earlier-host", "2026-11-01"))
    (reports / "calibration.json").write_text(json.dumps(before))
    extra = tmp_path / "trial.json"
    extra.write_text(json.dumps({"__llmops_calibration_trial": made}))

    check = run(tmp_path, "--tags", "report", "-e", "@%s" % extra, "--check")
    assert check.returncode == 0, check.stdout[-4000:]
    assert "Calibration: 1 GPU trial(s) would be recorded in %s/calibration.json" % reports in check.stdout
    assert json.loads((reports / "calibration.json").read_text()) == before

    proc = run(tmp_path, "--tags", "report", "-e", "@%s" % extra)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Calibration: 1 GPU trial(s) recorded in %s/calibration.json" % reports in proc.stdout
    doc = calibration.load(str(reports / "calibration.json"))
    assert [e["host"] for e in doc["entries"]] == ["earlier-host", "localhost"]
    new = doc["entries"][-1]
    assert new["gpu_class"] == "nvidia-geforce-rtx-4090/24564MiB" and new["measured"]["torch_total_bytes"] == round(
        23.99 * GIB)
    assert new["measured"]["kv_tokens"] == 1793232 and new["arguments"] == {"max_model_len": 32768}
    assert calibration.lookup(doc, "0.32.0", RTX4090[0], RTX4090[1])["entry"]["host"] == "localhost"
