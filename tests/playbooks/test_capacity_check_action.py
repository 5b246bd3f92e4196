"""capacity_check's action run for real with ansible-playbook: judge=controller checks the options on the controller
and runs only llmops.deploy.hardware_probe on the host; judge=host runs the module itself."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
FAKE_BIN = os.path.join(REPO, "tests", "fixtures", "fake-bin")

pytestmark = pytest.mark.slow

PLAYBOOK = """
- hosts: node
  gather_facts: false
  tasks:
    - name: judge=controller
      llmops.deploy.capacity_check: &judged
        judge: controller
        # the GPUs are probed (a recorded nvidia-smi); what this machine has is declared, so the verdicts are fixed
        hardware: {cpu_cores: 64, memory_total_mib: 1048576, disk_free_mib: 2000000}
        params: 70B
        precision: fp8
        reserve: 0.3
        fail_on: never
        model_dir: ~/models
      register: on_controller
    - name: judge=host
      llmops.deploy.capacity_check:
        <<: *judged
        judge: host
      register: on_host
    - name: a refused option
      llmops.deploy.capacity_check: {judge: controller, fail_on: sometimes}
      register: refused
      ignore_errors: true
    - name: nothing to probe
      llmops.deploy.capacity_check: {judge: controller, probe: false, hardware: {gpu_model: H100, gpu_count: 1}}
      register: no_probe
      ignore_errors: true
    - name: async
      llmops.deploy.capacity_check: {judge: controller}
      async: 30
      poll: 2
      register: in_background
      ignore_errors: true
    - name: Keep what came back
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ {'on_controller': on_controller, 'on_host': on_host, 'refused': refused, 'no_probe': no_probe,
                      'in_background': in_background} | to_json }}"
        mode: "0600"
      delegate_to: localhost
"""


def modules_run(output):
    """The modules the run sent, in order (-vvv prints the file of each)."""
    return [line.rsplit("/", 1)[1] for line in output.splitlines() if line.startswith("Using module file")]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("capacity-check-action")
    (tmp / "play.yml").write_text(PLAYBOOK)
    (tmp / "hosts.yml").write_text("all:\n  hosts:\n    node:\n      ansible_connection: local\n"
                                   "      ansible_python_interpreter: %s\n" % json.dumps(sys.executable))
    env = dict(os.environ, PATH=os.pathsep.join([FAKE_BIN, VENV_BIN, "/usr/sbin", "/usr/bin", "/sbin", "/bin"]),
               ANSIBLE_HOME=str(tmp / "ansible-home"), ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
               ANSIBLE_NOCOLOR="1", LLMOPS_FAKE_NVIDIA_SMI="h100-80gb-hbm3-x8.csv")
    env.pop("ANSIBLE_CONFIG", None)
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), str(tmp / "play.yml"), "-i",
                           str(tmp / "hosts.yml"), "-e", "out=%s" % (tmp / "out.json"), "-vvv"],
                          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return json.loads((tmp / "out.json").read_text()), proc.stdout


def test_judged_on_the_controller_the_host_runs_only_the_probe(results):
    data, output = results
    probe = data["on_controller"]
    assert not probe.get("failed")
    assert set(k for k in probe if not k.startswith("_")) - {"invocation", "failed"} == {
        "changed", "hardware", "probed", "gpu_source", "options"}
    assert probe["probed"] == ["gpus"] and probe["gpu_source"] == "nvidia-smi" and len(probe["hardware"]["gpus"]) == 8
    # the host expanded the model directory (~ is the remote user's home), and the options carry it as expanded
    assert probe["options"]["model_dir"] == probe["hardware"]["disk_path"] == os.path.expanduser("~/models")
    assert probe["options"]["reserve"] == 0.3 and probe["options"]["params"] == "70B"
    assert "judge" not in probe["options"] and "hardware" not in probe["options"]
    assert modules_run(output)[0] == "hardware_probe.py"


def test_the_controller_judges_what_the_host_would(results):
    from ansible_collections.llmops.deploy.plugins.filter.model_selection import capacity_plans
    data, dummy = results
    on_host = data["on_host"]
    plan = capacity_plans({"node": data["on_controller"]})["node"]
    assert on_host["verdict"] == "fits"
    for key in set(k for k in on_host if not k.startswith("_")) - {"invocation", "changed", "failed"}:
        assert plan[key] == on_host[key], key


def test_bad_options_fail_on_the_controller_before_the_host_is_probed(results):
    data, output = results
    refused = data["refused"]
    assert refused["failed"] and "fail_on" in refused["msg"] and "insufficient, tight, never" in refused["msg"]
    assert data["no_probe"]["failed"] and "capacity_plan filter" in data["no_probe"]["msg"]
    assert data["in_background"]["failed"] and "asynchronously" in data["in_background"]["msg"]
    # the host ran the probe (judge=controller), then capacity_check itself (judge=host); the refused calls ran
    # nothing on it (the last modules are the copy's, on the controller)
    assert modules_run(output) == ["hardware_probe.py", "capacity_check.py", "stat.py", "copy.py"]
