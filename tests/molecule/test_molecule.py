"""Molecule scenarios (extensions/molecule) on real Debian test hosts, run the way CI runs them.

Each scenario boots debootstrap/overlay chroot hosts (see extensions/molecule/shared), so these tests need
root, debootstrap and zstd (scripts/apt-prereqs.sh testhosts installs them) and reach PyPI and the Debian
mirror. They are skipped, with the reason, only when root or those tools are missing.
"""
import os
import shutil
import subprocess

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO_ROOT, ".venv", "bin")
COLLECTIONS_DIR = os.path.join(REPO_ROOT, ".collections")
MOLECULE_DIR = os.path.join(REPO_ROOT, "extensions", "molecule")
ANSIBLE_HOME = os.path.join(REPO_ROOT, ".ansible")
# Molecule keeps each scenario's ephemeral directory, and so its hosts' overlays, at
# $ANSIBLE_HOME/tmp/molecule.<hash>.<scenario>/rootfs/<host>.
EPHEMERAL_PARENT = os.path.join(ANSIBLE_HOME, "tmp") + os.sep

# Must match extensions/molecule/modelscope_sdk_mirror/vars/mirror.yml.
MIRROR_PROXY_SECRET = "proxy-secret-not-for-logs"
# Must match extensions/molecule/model_download/vars/hub.yml.
HUB_TOKEN = "molecule-hub-token-not-for-logs"
# Must match extensions/molecule/model_serve/vars/serve.yml.
SERVE_API_KEY = "molecule-serve-key-not-for-logs"
ENGINE_VENV_SCRIPT = os.path.join(REPO_ROOT, "scripts", "engine-venv.sh")
# Scenarios whose hosts boot systemd (systemd-nspawn), and those that need the cached engine venv.
SYSTEMD_SCENARIOS = ("model_serve",)
ENGINE_SCENARIOS = ("model_serve",)

pytestmark = [pytest.mark.molecule, pytest.mark.slow]


def _missing_prerequisite(scenario):
    if os.geteuid() != 0:
        return "the molecule test hosts need root (debootstrap, mount, chroot)"
    search_path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    tools = ("debootstrap", "zstd") + (("systemd-nspawn", "nsenter") if scenario in SYSTEMD_SCENARIOS else ())
    for tool in tools:
        if shutil.which(tool, path=search_path) is None:
            return "%s is not installed: run scripts/apt-prereqs.sh testhosts" % tool
    return None


def _engine_venv():
    """The cached CPU engine venv (built once by the model_serve role's install tasks); skip when it cannot be."""
    result = subprocess.run([ENGINE_VENV_SCRIPT], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=3600, check=False)
    if result.returncode != 0:
        pytest.skip("the cached vLLM CPU engine venv cannot be built here (scripts/engine-venv.sh): %s" %
                    result.stderr.strip()[-2000:])
    return result.stdout.splitlines()[0].split("=", 1)[1]


def _molecule_env():
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([VENV_BIN, env.get("PATH", ""), "/usr/sbin", "/sbin"])
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
        path for path in (COLLECTIONS_DIR, os.environ.get("ANSIBLE_COLLECTIONS_PATH")) if path)
    env["ANSIBLE_HOME"] = ANSIBLE_HOME
    env["ANSIBLE_LOCAL_TEMP"] = os.path.join(ANSIBLE_HOME, "tmp")
    env["NO_COLOR"] = "1"
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def _leftover_mounts(scenario):
    """Mounts below this scenario's hosts (other scenarios may be running beside it)."""
    marker = ".%s/rootfs/" % scenario
    with open("/proc/self/mounts") as mounts:
        targets = [line.split()[1].replace("\\040", " ") for line in mounts]
    return [target for target in targets if target.startswith(EPHEMERAL_PARENT) and marker in target]


def _run_scenario(scenario):
    reason = _missing_prerequisite(scenario)
    if reason:
        pytest.skip(reason)
    if scenario in ENGINE_SCENARIOS:
        _engine_venv()
    result = subprocess.run(
        [os.path.join(VENV_BIN, "molecule"), "test", "--scenario-name", scenario],
        cwd=REPO_ROOT, env=_molecule_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        universal_newlines=True, timeout=1800, check=False)
    output = result.stdout
    assert result.returncode == 0, "molecule test -s %s exited %d; last output:\n%s" % (
        scenario, result.returncode, output[-12000:])
    assert _leftover_mounts(scenario) == [], "molecule test -s %s left mounts behind" % scenario
    return output


def _check_mirror_output(output):
    assert MIRROR_PROXY_SECRET not in output
    # The scenario runs ansible-playbook -v, so a pip task without no_log would print its result here.
    assert "'no_log: true' was specified for this result" in output


def _check_download_output(output):
    # The scenario runs ansible-playbook -v: the hub token must not reach the output of any step.
    assert HUB_TOKEN not in output
    assert "model_download_info" in output or "Download the model" in output


def _check_serve_output(output):
    # The scenario runs ansible-playbook -v: the API key must not reach the output of any step.
    assert SERVE_API_KEY not in output
    assert "model_serve_info" in output


# What each scenario tests is in its molecule.yml; checks on its output go here.
OUTPUT_CHECKS = {
    "modelscope_sdk_mirror": _check_mirror_output,
    "model_download": _check_download_output,
    "model_serve": _check_serve_output,
}


def _scenarios():
    """Every scenario under extensions/molecule, `default` (the shared test hosts) first."""
    found = sorted(name for name in os.listdir(MOLECULE_DIR)
                   if os.path.isfile(os.path.join(MOLECULE_DIR, name, "molecule.yml")))
    return sorted(found, key=lambda name: name != "default")


@pytest.mark.parametrize("scenario", _scenarios())
def test_molecule_scenario(scenario):
    """molecule test -s <scenario> passes (its own sequence: check, converge, idempotence, verify, ...)."""
    output = _run_scenario(scenario)
    if scenario in OUTPUT_CHECKS:
        OUTPUT_CHECKS[scenario](output)
