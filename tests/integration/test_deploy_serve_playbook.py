"""The guide's whole flow on a real systemd host: playbooks/deploy-model.yml with the serve and trial phases.

The host is a Debian bookworm overlay booted with systemd-nspawn (scripts/local-node.sh, the shared test-host
scripts), sharing this machine's network; the cached CPU engine venv (scripts/engine-venv.sh) is bind-mounted into it
read-only at the same path, so the role checks that engine instead of installing 3.4 GB again (the install itself is
tested by building that cache with the role's own install tasks). Asserted: the endpoint answers a real client on
127.0.0.1 with real tokens, the trial's KV-cache row agrees with the plan from the engine's own log line, the reports
(JSON, Markdown, HTML) say the same, the API key appears in no output, report or unit; a second run changes nothing and
does not restart the engine.
"""
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests"))
import engine as engine_helper  # noqa: E402  (tests/engine.py)

VENV_BIN = os.path.dirname(sys.executable)
MODEL = "llmops-test/Qwen2-tiny-2M"
API_KEY = "e2e-endpoint-key-not-for-logs"

pytestmark = pytest.mark.slow


def _missing_prerequisite():
    if os.geteuid() != 0:
        return "the systemd test host needs root (overlay mounts, systemd-nspawn)"
    for tool in ("debootstrap", "zstd", "systemd-nspawn", "nsenter"):
        if shutil.which(tool, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])) is None:
            return "%s is not installed: run scripts/apt-prereqs.sh testhosts" % tool
    return None


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    missing = _missing_prerequisite()
    if missing:
        pytest.skip(missing)
    venv = engine_helper.engine_venv()
    state = tmp_path_factory.mktemp("node")
    env = dict(os.environ, LLMOPS_NODE_NAME="e2e-node", LLMOPS_NODE_DIR=str(state),
               LLMOPS_NODE_BINDS=os.path.dirname(venv))
    script = os.path.join(REPO, "scripts", "local-node.sh")
    up = subprocess.run([script, "up"], env=env, capture_output=True, text=True, check=False)
    assert up.returncode == 0, up.stdout + up.stderr
    facts = dict(line.split("=", 1) for line in up.stdout.splitlines() if "=" in line)
    try:
        yield {"facts": facts, "venv": venv, "state": state, "dir": os.path.join(str(state), "e2e-node")}
    finally:
        subprocess.run([script, "down"], env=env, capture_output=True, text=True, check=False)


def in_node(node, *argv):
    """Run a command inside the node (the same nsenter wrapper Ansible's chroot connection uses)."""
    return subprocess.run([node["facts"]["ansible_chroot_exe"], node["facts"]["ansible_host"]] + list(argv),
                          capture_output=True, text=True, check=False)


def deploy(node, tmp_path, hub, port, *extra):
    host = node["facts"]["inventory_hostname"]
    tmp_path.mkdir(parents=True, exist_ok=True)
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": {host: dict(
        (key, value) for key, value in node["facts"].items() if key.startswith("ansible_"))}}}))
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"llmops_api_key": API_KEY}))
    os.chmod(str(secrets), 0o600)
    reports = tmp_path / "reports"
    env = dict(os.environ, ANSIBLE_HOME=str(tmp_path / "ansible-home"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
               ANSIBLE_NOCOLOR="1")
    env["PATH"] = os.pathsep.join([VENV_BIN, "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/deploy-model.yml", "-i", str(inventory),
           "-e", "@%s" % secrets, "-e", "llmops_endpoint=%s" % hub.endpoint, "-e", "llmops_model=%s" % MODEL,
           "-e", "llmops_precision=bf16", "-e", "llmops_hub_metadata=true", "-e", "llmops_target=cpu",
           "-e", "llmops_serve_port=%d" % port, "-e", "model_serve_venv=%s" % node["venv"],
           "-e", "llmops_report_dir=%s" % reports, "-e", "preflight_report_dir=%s" % reports] + list(extra)
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=1800, check=False)
    path = reports / "deployment.json"
    return proc, (json.loads(path.read_text()) if path.exists() else None), reports


def chat(port, key):
    body = json.dumps({"model": MODEL, "max_tokens": 16,
                       "messages": [{"role": "user", "content": "Say hello."}]}).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    request = urllib.request.Request("http://127.0.0.1:%d/v1/chat/completions" % port, body, headers)
    return json.load(urllib.request.urlopen(request, timeout=120))


def unit_start(node, unit):
    shown = in_node(node, "systemctl", "show", "--property=MainPID", "--property=ExecMainStartTimestampMonotonic", unit)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def test_deploy_serve_trial_then_rerun(node, tmp_path, local_hub):
    port = engine_helper.free_port()
    # --check on the fresh host: the plan is printed, nothing is installed, written or started.
    proc, report, _check_reports = deploy(node, tmp_path / "check", local_hub, port, "--check")
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert report is None and "Check mode: no report written" in proc.stdout
    assert "PLANNED - would fetch" in proc.stdout and "would serve at http://127.0.0.1:%d" % port in proc.stdout
    merged = node["facts"]["ansible_host"]
    assert not [name for name in os.listdir(os.path.join(merged, "etc", "systemd", "system")) if "llmops" in name]
    assert not os.path.exists(os.path.join(merged, "opt", "llmops", "models"))

    proc, report, reports = deploy(node, tmp_path / "first", local_hub, port)
    assert proc.returncode == 0, proc.stdout[-6000:]
    row = report["hosts"][0]
    assert (row["status"], row["model"]) == ("deployed", MODEL), row
    serve = row["serve"]
    assert serve["state"] == "started" and serve["endpoint"] == "http://127.0.0.1:%d" % port
    assert serve["engine"]["build"] == "cpu" and serve["engine"]["version"].startswith("0.32.0")
    sources = dict((arg["flag"], arg["source"]) for arg in serve["args"] if arg.get("value") is not None)
    assert sources["--port"] != "default" and sources["--max-model-len"] in ("plan", "engine", "default", "override")
    trial = row["trial"]
    assert trial["passed"] and trial["requests"] >= 2 and trial["failed_requests"] == 0, trial
    kv = [cmp for cmp in trial["comparison"] if cmp["figure"] == "kv_cache_tokens"][0]
    assert kv["verdict"] == "as expected" and kv["ratio"] == pytest.approx(1.0, abs=0.01), kv
    assert "KV cache size" in (kv["measured_from"] or "")
    # CPU target: the plan's host RAM (weights + KV-cache space + runtime) beside the unit's process tree, measured.
    ram = [cmp for cmp in trial["comparison"] if cmp["figure"] == "host_memory_bytes"][0]
    assert ram["estimated"] > ram["measured"] * 0.5 and "MainPID" in ram["measured_from"], ram

    # A real client from outside the host's service: real tokens with the key, 401 without it.
    answer = chat(port, API_KEY)
    assert answer["usage"]["completion_tokens"] > 0 and answer["choices"][0]["message"]["content"].strip("\x00")
    with pytest.raises(urllib.error.HTTPError) as refused:
        chat(port, None)
    assert refused.value.code == 401

    # Every rendering says the same; the key is nowhere but the 0600 environment file.
    markdown = (reports / "deployment.md").read_text()
    html = (reports / "deployment.html").read_text()
    assert report["totals_text"] in markdown and report["totals_text"] in html
    assert row["trial_summary"] in markdown and "KV-cache tokens" in html
    for text in (proc.stdout, markdown, html, json.dumps(report)):
        assert API_KEY not in text
    unit = serve["unit"]
    unit_text = in_node(node, "systemctl", "cat", unit).stdout
    assert API_KEY not in unit_text
    # The unit names the revision the download verified: a new revision in the same directory restarts the engine.
    assert 'Environment="LLMOPS_MODEL_REVISION=%s"' % row["revision"] in unit_text, unit_text
    assert API_KEY not in in_node(node, "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '").stdout
    before = unit_start(node, unit)

    # Second run: nothing changes, the engine is not restarted, and the trial runs again.
    proc, report, _second_reports = deploy(node, tmp_path / "second", local_hub, port)
    assert proc.returncode == 0, proc.stdout[-6000:]
    row = report["hosts"][0]
    assert (row["status"], row["serve"]["state"]) == ("unchanged", "unchanged"), row
    assert row["trial"]["passed"]
    for play in ("Deploy the model on the hosts that passed preflight", "Serve the model and try it, batch by batch"):
        tasks = proc.stdout.split("PLAY [%s]" % play)[1].split("PLAY [")[0]
        assert "TASK [" in tasks and "changed: [" not in tasks, tasks
    assert unit_start(node, unit) == before
