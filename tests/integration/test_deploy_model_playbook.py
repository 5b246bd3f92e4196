"""playbooks/deploy-model.yml end to end: preflight, real SDK install, download from the local hub, verification,
report; rerun, check mode, a host that fails preflight, a failing download (on this machine, which has no systemd:
``llmops_serve=false`` stops after the download); and the whole flow with the private endpoint and the trial on a real
systemd host (tests/integration/test_deploy_serve_playbook.py)."""
import hashlib
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
MODEL = "llmops-test/Qwen2-tiny-2M"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sdk_venv(tmp_path_factory):
    """One SDK venv for the module's runs (the role installs modelscope/modelscope-hub from the package index)."""
    return tmp_path_factory.mktemp("sdk") / "venv"


def deploy(tmp_path, hub, sdk_venv, *args, inventory="inventories/local", check=False, model_root=None, model=MODEL,
           serve=False):
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([VENV_BIN, "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    env["ANSIBLE_HOME"] = str(tmp_path / "ansible-home")
    env["ANSIBLE_LOCAL_TEMP"] = str(tmp_path / "ansible-tmp")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    reports = tmp_path / "reports"
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/deploy-model.yml", "-i", inventory,
           "-e", "llmops_endpoint=%s" % hub.endpoint, "-e", "llmops_model=%s" % (model or ""), "-e", "llmops_precision=bf16",
           "-e", "llmops_target=cpu", "-e", "llmops_venv=%s" % sdk_venv,
           "-e", "llmops_model_root=%s" % (model_root or tmp_path / "models"),
           "-e", "llmops_report_dir=%s" % reports, "-e", "preflight_report_dir=%s" % reports,
           "-e", "llmops_serve=%s" % str(bool(serve)).lower()] + list(args)
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600, check=False)
    path = reports / "deployment.json"
    return proc, (json.loads(path.read_text()) if path.exists() else None)


def local_inventory(tmp_path, hosts, **all_vars):
    """An inventory of ``hosts`` (name -> host variables) on this machine (local connection, no become)."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {
        "vars": dict({"ansible_connection": "local", "ansible_become": False,
                      "ansible_python_interpreter": "{{ ansible_playbook_python }}"}, **all_vars),
        "hosts": hosts}}))
    return str(inventory)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_deploy_then_rerun_then_check(tmp_path, local_hub, sdk_venv):
    proc, report = deploy(tmp_path, local_hub, sdk_venv)
    assert proc.returncode == 0, proc.stdout[-4000:]
    row = report["hosts"][0]
    assert (row["host"], row["status"], row["model"]) == ("localhost", "deployed", MODEL)
    assert row["preflight_verdict"] in ("fits", "tight")
    assert row["sdk_versions"] == {"modelscope": "1.40.2", "modelscope-hub": "0.5.1"}
    model_dir = tmp_path / "models" / MODEL
    snapshot = local_hub.snapshot(MODEL, "master")
    assert row["files"] == len(snapshot.files) and row["bytes_fetched"] == row["bytes_total"]
    for path, entry in snapshot.files.items():
        assert sha256(model_dir / path) == entry.sha256, path
    marker = json.loads((model_dir / ".llmops-complete.json").read_text())
    assert marker["model_id"] == MODEL
    assert "localhost: DEPLOYED - %s@" % MODEL in proc.stdout

    local_hub.clear_requests()
    proc, report = deploy(tmp_path, local_hub, sdk_venv)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report["hosts"][0]["status"] == "unchanged" and report["hosts"][0]["bytes_fetched"] == 0
    assert local_hub.requests(kind="file") == []
    deploy_play = proc.stdout.split("PLAY [Deploy the model on the hosts that passed preflight]")[1].split("PLAY [")[0]
    assert "changed: [localhost]" not in deploy_play, deploy_play

    proc, report = deploy(tmp_path / "check", local_hub, sdk_venv, check=True, model_root=tmp_path / "fresh")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report is None  # check mode writes no report ...
    assert "localhost: PLANNED - would fetch %d files" % len(snapshot.files) in proc.stdout  # ... but prints the plan
    assert "Check mode: no report written" in proc.stdout and "Report: " not in proc.stdout
    assert not (tmp_path / "fresh").exists()


def test_hosts_failing_preflight_are_skipped(tmp_path, local_hub, sdk_venv):
    small = {"llmops_declared_hardware": {"memory_total_mib": 4, "cpu_cores": 2}}
    inventory = local_inventory(tmp_path, {"small-host": small})
    proc, report = deploy(tmp_path, local_hub, sdk_venv, inventory=inventory)
    assert proc.returncode == 0, proc.stdout[-4000:]
    row = report["hosts"][0]
    assert (row["host"], row["status"], row["preflight_verdict"]) == ("small-host", "skipped", "insufficient")
    assert "host RAM" in row["reason"]
    assert not (tmp_path / "models").exists()
    assert local_hub.requests(kind="listing") == []


@pytest.mark.parametrize("tags", [[], ["--tags", "sdk,download,report"]], ids=["all-tags", "download-tags"])
def test_a_failing_download_is_reported_and_fails_the_run(tmp_path, local_hub, sdk_venv, tags):
    """Also with --tags: the rescue that records the failure runs whatever tags were asked for."""
    local_hub.add_file_fault("model.safetensors", status=500)
    proc, report = deploy(tmp_path, local_hub, sdk_venv, "-e", "model_download_timeout=5",
                          "-e", "model_download_retries=0", *tags)
    assert [r["status"] for r in local_hub.requests(kind="file") if r["file"] == "model.safetensors"] == [500]
    assert proc.returncode != 0
    assert report is not None, "no deployment report:\n" + proc.stdout[-3000:]
    row = report["hosts"][0]
    assert row["status"] == "failed" and "model.safetensors" in row["reason"], row
    model_dir = tmp_path / "models" / MODEL
    assert not (model_dir / ".llmops-complete.json").exists()


def test_without_a_model_the_chosen_candidate_is_deployed(tmp_path, local_hub, sdk_venv):
    """No llmops_model: preflight chooses among candidates per host, and that choice is what gets deployed."""
    candidates = ["llmops-test/Qwen2-tiny-2M", "llmops-test/Llama-3.1-tiny-4M", "llmops-test/Qwen2-tiny-2M-FP8"]
    proc, report = deploy(tmp_path, local_hub, sdk_venv, "-e", json.dumps({"llmops_candidates": candidates}),
                          model=None)
    assert proc.returncode == 0, proc.stdout[-4000:]
    row = report["hosts"][0]
    # CPU target: every candidate holds; the larger model within the (absent) band wins (selection rule `size`).
    assert (row["status"], row["model"]) == ("deployed", "llmops-test/Llama-3.1-tiny-4M"), row
    preflight = json.loads((tmp_path / "reports" / "preflight.json").read_text())
    assert preflight["hosts"][0]["chosen_model"] == "llmops-test/Llama-3.1-tiny-4M"
    assert (tmp_path / "models" / "llmops-test" / "Llama-3.1-tiny-4M" / ".llmops-complete.json").exists()
    assert not (tmp_path / "models" / "llmops-test" / "Qwen2-tiny-2M").exists()


def test_preflight_with_hub_metadata_sizes_from_the_real_model(tmp_path, local_hub, sdk_venv):
    """llmops_hub_metadata: the listing, config.json and safetensors headers are read first (no weights)."""
    proc, _report = deploy(tmp_path, local_hub, sdk_venv, "-e", "llmops_hub_metadata=true", "--tags", "preflight")
    assert proc.returncode == 0, proc.stdout[-4000:]
    preflight = json.loads((tmp_path / "reports" / "preflight.json").read_text())
    sized = preflight["sizing"]
    assert (sized["method"], sized["params"]) == ("detailed", 2101376)  # exact, from the safetensors headers
    # A CPU target (this machine) is planned as host RAM and cores: no GPU figure, the guide's seed beside it.
    assert sized["seed"]["gpu_memory_gb"] is None and sized["seed"]["param_memory_gb"] == 0.004
    snapshot = local_hub.snapshot(MODEL, "master")
    assert local_hub.requests(kind="listing")
    weight_bytes = sum(r["bytes_sent"] or 0 for r in local_hub.requests(kind="file")
                       if r["file"].endswith(".safetensors"))
    assert weight_bytes < snapshot.files["model.safetensors"].size  # headers only, not the weights
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("extra, statuses", [
    # One host per batch: the first fails to serve, the later batches are not touched and say why.
    (["-e", "llmops_serve_batch=1"], ["failed", "skipped", "skipped"]),
    # Rolling on regardless: every batch is tried.
    (["-e", "llmops_serve_batch=1", "-e", "llmops_serve_halt_on_failure=false"], ["failed", "failed", "failed"]),
    # No batches (the default): every host at once, nothing to halt.
    ([], ["failed", "failed", "failed"]),
])
def test_serving_in_batches_halts_after_a_failed_batch(tmp_path, local_hub, sdk_venv, extra, statuses):
    """llmops_serve_batch rolls the serve phase over the hosts; a batch whose host fails to serve halts the rest.
    Serving cannot succeed here (the model directory is empty: serving fails at model_serve's first checks, on
    this machine or one with systemd), so only the serve and report phases run."""
    inventory = local_inventory(tmp_path, {"serve-a": {}, "serve-b": {}, "serve-c": {}})
    proc, report = deploy(tmp_path, local_hub, sdk_venv, "--tags", "serve,report", *extra, inventory=inventory,
                          serve=True)
    assert proc.returncode != 0, proc.stdout[-4000:]
    rows = dict((row["host"], row) for row in report["hosts"])
    assert [rows[host]["status"] for host in ("serve-a", "serve-b", "serve-c")] == statuses, report["hosts"]
    assert rows["serve-a"]["reason"].startswith("Fail on hosts whose service manager is not systemd: ") or \
        rows["serve-a"]["reason"].startswith("Fail without the model (outside check mode): "), rows["serve-a"]
    for host in ("serve-b", "serve-c"):
        if rows[host]["status"] == "skipped":
            assert rows[host]["reason"] == ("rollout halted: serving failed on serve-a in an earlier batch; the engine "
                                            "running here was left as it was"), rows[host]
    assert local_hub.requests(kind="file") == []


def test_a_serve_batch_set_in_the_inventory_fails_instead_of_serving_every_host_at_once(tmp_path, local_hub, sdk_venv):
    """A play's serial cannot read inventory variables: set there, llmops_serve_batch would silently be ignored."""
    inventory = local_inventory(tmp_path, {"serve-a": {}, "serve-b": {}}, llmops_serve_batch=1)
    proc, report = deploy(tmp_path, local_hub, sdk_venv, "--tags", "serve,report", inventory=inventory, serve=True)
    assert proc.returncode != 0 and report is None, proc.stdout[-4000:]
    assert "llmops_serve_batch: 1 was set in the inventory or in host variables" in proc.stdout, proc.stdout[-4000:]
    assert "TASK [llmops.deploy.model_serve" not in proc.stdout
