# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role llmops.deploy.model_download end to end with the REAL SDK against the local hub: check mode, download,
idempotence, and a canary token that must never appear in ``-vvv`` output, in any process's command line or
environment during the run, or in any file the run leaves."""
import json
import os
import re
import subprocess
import threading
import time

import pytest

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
QWEN = "llmops-test/Qwen2-tiny-2M"
CANARY = "llmops-canary-7d41f0c2e9b35a86"
RUNNER_SIGNATURE = b"_die_with_parent"

PLAYBOOK = """
- name: Download one model
  hosts: localhost
  gather_facts: false
  roles:
    - role: llmops.deploy.model_download
"""


def ansible_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELSCOPE_", "ANSIBLE_"))}
    env.update({"PATH": VENV_BIN + os.pathsep + env.get("PATH", ""), "ANSIBLE_NOCOLOR": "1",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    return env


class ProcScanner(object):
    """Reads every process's command line and environment in a loop, looking for a secret."""

    def __init__(self, secret):
        self.secret = secret.encode()
        self.hits = []
        self.samples = 0
        self.runner_seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        own = str(os.getpid())
        while not self._stop.is_set():
            runner = False
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == own:
                    continue
                for what in ("cmdline", "environ"):
                    try:
                        with open("/proc/%s/%s" % (pid, what), "rb") as handle:
                            data = handle.read()
                    except OSError:
                        continue
                    if self.secret in data:
                        self.hits.append((pid, what, data[:300]))
                    if what == "cmdline" and RUNNER_SIGNATURE in data:
                        runner = True
            self.samples += 1
            self.runner_seen += runner
            time.sleep(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


def recap(output):
    match = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    assert match, output[-3000:]
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


@pytest.fixture
def play(tmp_path):
    """``run(vars, *args)`` -> CompletedProcess of ansible-playbook -vvv with the vars in a file (never on argv)."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)

    def run(variables, *args):
        vars_file = tmp_path / "vars.json"
        vars_file.write_text(json.dumps(variables))
        os.chmod(str(vars_file), 0o600)
        argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-vvv", str(playbook), "-e", "@" + str(vars_file)]
        return subprocess.run(argv + list(args), cwd=REPO, env=ansible_env(), capture_output=True, text=True,
                              timeout=600, check=False)
    return run


def role_vars(hub, models_root, **extra):
    variables = {
        "model_download_model_id": QWEN,
        "model_download_dir": str(models_root / QWEN),
        "model_download_endpoint": hub.endpoint,
        "model_download_token": CANARY,
        "model_download_venv_python": os.path.join(VENV_BIN, "python"),
        "model_download_mode": "0640",
        "model_download_dir_mode": "0750",
    }
    variables.update(extra)
    return variables


def test_role_check_mode_download_idempotence_and_canary_token(local_hub, tmp_path, play):
    local_hub.set_token(CANARY)
    local_hub.add_file_fault("model.safetensors", slow=2 * 1048576)   # keeps the SDK running for ~2 s
    models = tmp_path / "models"
    variables = role_vars(local_hub, models)
    snapshot = local_hub.snapshot(QWEN)

    # check mode: reports, writes nothing, fetches nothing
    proc = play(variables, "--check")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert recap(proc.stdout)["changed"] == 1
    assert not models.exists() and local_hub.requests(kind="file") == []
    assert CANARY not in proc.stdout + proc.stderr

    # the real run, watched
    with ProcScanner(CANARY) as scanner:
        proc = play(variables)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert recap(proc.stdout) == {"ok": 6, "changed": 1, "unreachable": 0, "failed": 0}
    assert scanner.runner_seen > 0 and scanner.samples > 20      # the scan ran while the SDK was downloading
    assert scanner.hits == []                                    # never on a command line, never in an environment
    assert CANARY not in output                                  # never in -vvv output
    requests = local_hub.requests()
    assert requests and all(r["auth"] for r in requests if r["kind"] in ("listing", "file"))   # the token was used
    assert len([r for r in requests if r["kind"] == "file"]) == len(snapshot.files)
    for base, _dirs, files in os.walk(str(models)):   # model, marker, lock and the SDK state dir
        for name in files:
            with open(os.path.join(base, name), "rb") as handle:
                assert CANARY.encode() not in handle.read(), os.path.join(base, name)
    model_dir = models / QWEN
    assert oct(os.stat(str(model_dir / "config.json")).st_mode & 0o777) == "0o640"
    assert oct(os.stat(str(model_dir)).st_mode & 0o777) == "0o750"
    assert "Check the model directory" in proc.stdout and "valid: true" in proc.stdout

    # idempotence: nothing changes, nothing is fetched
    local_hub.clear_requests()
    proc = play(variables)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert recap(proc.stdout)["changed"] == 0
    assert local_hub.requests(kind="file") == []
    assert CANARY not in proc.stdout + proc.stderr


def test_role_failure_message_is_shown_without_the_token(local_hub, tmp_path, play):
    local_hub.set_token("the-right-token")
    proc = play(role_vars(local_hub, tmp_path / "models"))
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and recap(proc.stdout)["failed"] == 1
    assert "the hub refused access (HTTP 403" in output and "the token is missing, wrong or lacks access" in output
    assert CANARY not in output
    assert not (tmp_path / "models" / QWEN).exists()


def test_adhoc_vvv_with_a_templated_token(local_hub, tmp_path):
    local_hub.set_token(CANARY)
    vars_file = tmp_path / "secret.json"
    vars_file.write_text(json.dumps({"canary_token": CANARY}))
    argv = [os.path.join(VENV_BIN, "ansible"), "localhost", "-vvv", "-m", "llmops.deploy.modelscope_download",
            "-a", "model_id=%s model_dir=%s endpoint=%s token={{ canary_token }}" % (
                QWEN, tmp_path / "m", local_hub.endpoint), "-e", "@" + str(vars_file)]
    with ProcScanner(CANARY) as scanner:
        proc = subprocess.run(argv, cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=600,
                              check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "CHANGED" in proc.stdout and "complete: true" in proc.stdout
    assert CANARY not in proc.stdout + proc.stderr and scanner.hits == []
    assert "token: VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in proc.stdout    # -vvv shows the invocation, masked
