# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Peer fan-out (role llmops.deploy.model_download, model_download_source: peer) on REAL hosts over REAL SSH.

Four Debian hosts (tests/fanout_hosts.py: overlay roots, each with its own sshd as PID 1 of its own namespaces on its
own loopback address, a key made for this session) and the local hub (tools/local_hub) on 127.0.0.1. Ansible
connects to the hosts over ssh; the hosts copy from each other with rsync over ssh, using the keys and host keys the
role sets up and withdraws. Checked: check mode plans and writes nothing; one hub download for four hosts (the hub's
request log: bytes served = 1.0 x the model) in two rounds after the seed; a rerun changes nothing; a peer that serves
bad bytes is caught and the file comes from another peer (the receiver hashes while the bytes arrive); a receiver
killed in the middle of a transfer resumes on the rerun (fewer bytes received than the file holds) and hashes the
resumed file as soon as rsync reports it.
"""
import json
import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests"))

from fanout_hosts import FanoutHosts  # noqa: E402  (tests/ on the path above)
from tools.local_hub import LocalHub  # noqa: E402

VENV_BIN = os.path.join(REPO, ".venv", "bin")
QWEN = "llmops-test/Qwen2-tiny-2M"
MODEL_DIR = "/opt/llmops/models/" + QWEN
STAGING = "/opt/llmops/models/llmops-test/.Qwen2-tiny-2M.llmops-staging/files"
WEIGHTS = "model.safetensors"
HOSTS = 4

PLAYBOOK = """
- name: Put one model on the fleet, fetched from the hub once
  hosts: fleet
  gather_facts: false
  roles:
    - role: llmops.deploy.model_download
      vars:
        model_download_source: peer
        model_download_model_id: %s
        model_download_endpoint: "{{ hub_endpoint }}"
""" % QWEN


def _ansible_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELSCOPE_", "ANSIBLE_"))}
    env.update({"PATH": VENV_BIN + os.pathsep + env.get("PATH", ""), "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_HOST_KEY_CHECKING": "False",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    return env


class Fleet(object):
    def __init__(self, hosts, hub, workdir):
        self.hosts = hosts
        self.hub = hub
        self.playbook = os.path.join(workdir, "fanout.yml")
        with open(self.playbook, "w") as handle:
            handle.write(PLAYBOOK)

    def argv(self, *args, **extra_vars):
        variables = dict(hub_endpoint=self.hub.endpoint, **extra_vars)
        return [os.path.join(VENV_BIN, "ansible-playbook"), "-i", self.hosts.inventory_path, self.playbook,
                "-e", json.dumps(variables)] + list(args)

    def play(self, *args, **extra_vars):
        proc = subprocess.run(self.argv(*args, **extra_vars), cwd=REPO, env=_ansible_env(), capture_output=True,
                              text=True, timeout=600, check=False)
        return Result(proc)

    def path(self, name, rel=""):
        return os.path.join(self.hosts.root(name), (MODEL_DIR + "/" + rel).lstrip("/")).rstrip("/")

    def wipe(self, *names):
        for name in names:
            root = self.hosts.root(name)
            subprocess.run(["rm", "-rf", os.path.join(root, "opt/llmops/models")], check=True)

    def verified(self, name):
        """Every file of the hub's snapshot on the host with its sha256, and a marker listing exactly them."""
        snapshot = self.hub.snapshot(QWEN)
        with open(self.path(name, ".llmops-complete.json")) as handle:
            marker = json.load(handle)
        assert sorted(f["path"] for f in marker["files"]) == sorted(snapshot.files)
        import hashlib
        for rel, info in snapshot.files.items():
            with open(self.path(name, rel), "rb") as handle:
                assert hashlib.sha256(handle.read()).hexdigest() == info.sha256, (name, rel)
        return marker

    def ensure_complete(self):
        """Every host holds the model (a run of the role only when one does not: keeps the test short)."""
        if all(os.path.exists(self.path(n, ".llmops-complete.json")) for n in self.hosts.names):
            return
        res = self.play()
        assert res.proc.returncode == 0, res.text[-4000:]

    def model_bytes(self):
        return sum(f.size for f in self.hub.snapshot(QWEN).files.values())

    def hub_file_bytes(self):
        return sum(r["bytes_sent"] for r in self.hub.requests(kind="file"))


class Result(object):
    def __init__(self, proc):
        self.proc = proc
        self.text = proc.stdout + proc.stderr
        try:
            self.doc = json.loads(proc.stdout[proc.stdout.index("{"):])
        except ValueError:
            raise AssertionError("no JSON output (rc %d): %s" % (proc.returncode, self.text[-4000:]))
        self.stats = self.doc["stats"]

    def changed(self):
        return dict((h, s["changed"]) for h, s in self.stats.items())

    def failed(self):
        return sorted(h for h, s in self.stats.items() if s["failures"] or s["unreachable"])

    def task(self, name):
        for play in self.doc["plays"]:
            for task in play["tasks"]:
                if task["task"]["name"].split(" : ", 1)[-1] == name:
                    return task["hosts"]
        return {}

    def info(self, host):
        return self.task("Export what was downloaded")[host]["ansible_facts"]["model_download_info"]

    def warnings(self, host):
        """Every warning the tasks of ``host`` gave (all rounds)."""
        found = []
        for play in self.doc["plays"]:
            for task in play["tasks"]:
                found += task["hosts"].get(host, {}).get("warnings") or []
        return found

    def plan_lines(self):
        hosts = self.task("Show the plan (check mode says this and changes nothing)")
        return next(iter(hosts.values()))["msg"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the fan-out test hosts need root (overlay mounts, chroot, namespaces, sshd)")
    work = tmp_path_factory.mktemp("fanout")
    store = tmp_path_factory.mktemp("fanout-hub-store")
    hub = LocalHub(store, models=[QWEN]).start()
    try:
        with FanoutHosts(HOSTS, work / "hosts") as hosts:
            yield Fleet(hosts, hub, str(work))
    finally:
        hub.stop()


def test_check_mode_plans_the_tree_and_writes_nothing(fleet):
    fleet.wipe(*fleet.hosts.names)
    fleet.hub.clear_requests()
    res = fleet.play("--check")
    assert res.proc.returncode == 0, res.text[-4000:]
    assert res.plan_lines() == ["seed: fan1 <- hub (group all:%s@master)" % QWEN,
                                "round 1: fan2 <- fan1 (fallbacks: -)",
                                "round 2: fan3 <- fan1 (fallbacks: fan2)",
                                "round 2: fan4 <- fan2 (fallbacks: fan1)"]
    assert fleet.hub.requests(kind="file") == []          # the listing only
    assert res.changed() == dict((h, 1) for h in fleet.hosts.names)     # each would get the model
    assert res.info("fan1")["source"] == "hub (planned)" and res.info("fan4")["source"] == "fan2 (planned)"
    for name in fleet.hosts.names:
        assert not os.path.exists(os.path.join(fleet.hosts.root(name), "opt/llmops/models"))
        assert res.info(name)["complete"] in (False, "False")


def test_one_hub_download_for_four_hosts_then_unchanged(fleet):
    fleet.wipe(*fleet.hosts.names)
    fleet.hub.clear_requests()
    res = fleet.play()
    assert res.proc.returncode == 0, res.text[-6000:]
    # hub egress: the model's bytes exactly once
    assert fleet.hub_file_bytes() == fleet.model_bytes()
    sources = dict((h, res.info(h)["source"]) for h in fleet.hosts.names)
    assert sources == {"fan1": "hub", "fan2": "fan1", "fan3": "fan1", "fan4": "fan2"}
    for name in fleet.hosts.names:
        marker = fleet.verified(name)
        assert marker["verified"] == "full"
        assert res.info(name)["complete"] in (True, "True")
    # no transfer key is left anywhere, no daemon was started
    for name in fleet.hosts.names:
        with open(os.path.join(fleet.hosts.root(name), "root/.ssh/authorized_keys")) as handle:
            assert "llmops-fanout" not in handle.read()
        assert not os.path.exists(os.path.join(fleet.hosts.root(name), "opt/llmops/models/llmops-test",
                                               ".Qwen2-tiny-2M.llmops-peer"))
        assert not [cmd for _pid, cmd in fleet.hosts.processes(name) if "rsync" in cmd]

    fleet.hub.clear_requests()
    again = fleet.play()
    assert again.proc.returncode == 0, again.text[-4000:]
    assert again.changed() == dict((h, 0) for h in fleet.hosts.names)
    assert fleet.hub.requests(kind="file") == []


def _flip_byte(path, offset):
    st = os.stat(path)
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))    # the peer's marker still vouches for it


def test_a_peer_serving_bad_bytes_is_caught_and_another_peer_serves(fleet):
    fleet.ensure_complete()
    bad = fleet.path("fan2", WEIGHTS)
    size = os.path.getsize(bad)
    _flip_byte(bad, size // 2)
    fleet.wipe("fan3", "fan4")
    fleet.hub.clear_requests()
    try:
        res = fleet.play()
        assert res.proc.returncode == 0, res.text[-6000:]
        # fan1 and fan2 hold it: fan3 <- fan1, fan4 <- fan2 (which serves bad bytes), fan4 falls back to fan1
        fan4 = res.info("fan4")["peer"]
        assert [(r["path"], r["source"]) for r in fan4["rejected"]] == [(WEIGHTS, "fan2")]
        assert "expected" in fan4["rejected"][0]["reason"]
        assert [a["source"] for a in fan4["attempts"]] == ["fan2", "fan1"]
        assert fan4["attempts"][1]["verified"] == 1 and fan4["attempts"][1]["files"] == 1
        assert res.info("fan3")["peer"]["rejected"] == []
        fleet.verified("fan3")
        fleet.verified("fan4")
        assert fleet.hub.requests(kind="file") == []
    finally:
        _flip_byte(bad, size // 2)     # fan2 good again (same mtime: its marker holds)
    fleet.verified("fan2")


def test_a_receiver_killed_mid_transfer_resumes_on_rerun(fleet):
    fleet.ensure_complete()
    fleet.wipe("fan4")
    staged = os.path.join(fleet.hosts.root("fan4"), STAGING.lstrip("/"), WEIGHTS)
    weights = fleet.hub.snapshot(QWEN).files[WEIGHTS].size
    proc = subprocess.Popen(fleet.argv(**{"model_download_peer_rsync_opts": ["--bwlimit=256"]}), cwd=REPO,
                            env=_ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(staged) and os.path.getsize(staged) >= 512 * 1024:
            # the receiving side: the module's Python, rsync and its ssh, all inside fan4
            for pid, cmd in fleet.hosts.processes("fan4"):
                if "sshd" not in cmd.split(" ")[0]:
                    try:
                        os.kill(pid, 9)
                    except ProcessLookupError:
                        continue    # it ended between the listing and the kill (e.g. ssh once rsync was killed)
                    killed.append(cmd)
            break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=300)
    assert any("rsync" in cmd for cmd in killed), (killed, out[-3000:], err[-3000:])
    first = Result(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    assert first.failed() == ["fan4"], first.text[-4000:]
    had = os.path.getsize(staged)
    assert 0 < had < weights
    assert not os.path.exists(fleet.path("fan4", ".llmops-complete.json"))

    res = fleet.play()
    assert res.proc.returncode == 0, res.text[-6000:]
    peer = res.info("fan4")["peer"]
    # resumed: the bytes already there were not sent again
    assert int(peer["bytes_received"]) < fleet.model_bytes() - had // 2
    # the resumed file was hashed when rsync reported it, not read again after rsync exited (a file hashed early
    # needs rsync's line for it: with no line parsed, this is 0)
    assert int(peer["attempts"][-1]["hashed_while_receiving"]) >= 1, peer["attempts"]
    fleet.verified("fan4")


def test_rsync_options_that_replace_its_lines_are_warned_about_and_every_file_still_checked(fleet):
    """A user's --out-format replaces the receiver's per-file line: nothing is hashed on arrival, every file is
    hashed after rsync (and checked), and the result says why the receive was slower."""
    fleet.ensure_complete()
    fleet.wipe("fan4")
    res = fleet.play(**{"model_download_peer_rsync_opts": ["--out-format=%n"]})
    assert res.proc.returncode == 0, res.text[-6000:]
    peer = res.info("fan4")["peer"]
    assert [int(a["hashed_while_receiving"]) for a in peer["attempts"]] == [0], peer["attempts"]
    assert int(peer["attempts"][0]["verified"]) == len(fleet.hub.snapshot(QWEN).files)
    assert [w for w in res.warnings("fan4") if "--out-format=%n" in w and "hashed after rsync exits" in w]
    assert not [w for w in res.warnings("fan3") if "rsync_opts" in w]     # it received nothing this time
    fleet.verified("fan4")
