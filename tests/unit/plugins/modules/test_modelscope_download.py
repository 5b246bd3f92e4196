# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""modelscope_download module: parameters, the run against a recorded hub listing and a fake SDK process."""

import hashlib
import json
import os

import pytest

from ansible.module_utils import basic
from ansible_collections.llmops.deploy.plugins.module_utils import dir_lock, free_space, marker as mk
from ansible_collections.llmops.deploy.plugins.module_utils.hub_manifest import HubError, parse_listing
from ansible_collections.llmops.deploy.plugins.modules import modelscope_download

from .module_runner import run_module, tree

TOKEN = "CANARY-tok-5f1e"


def sha(data):
    return hashlib.sha256(data).hexdigest()


class World(object):
    """The hub's files, what the fake SDK serves, and every call the module makes."""

    def __init__(self, tmp_path, monkeypatch):
        self.monkeypatch = monkeypatch
        self.root = str(tmp_path)
        self.model_dir = os.path.join(self.root, "models", "o", "n")
        self.files = {"config.json": b'{"model_type": "x"}', "model.safetensors": b"W" * 5000,
                      "sub/tokenizer.json": b"{}", "pytorch_model.bin": b"P" * 100, "modeling_x.py": b"pass\n"}
        self.served = {}          # path -> bytes the SDK writes instead of the real ones
        self.not_written = set()  # paths the SDK silently skips
        self.sdk_rc = 0
        self.sdk_error = None
        self.extra_listing = []
        self.listings = []
        self.runs = []
        self.warnings = []
        self.hub_errors = []    # exceptions the listing raises, one per call
        self.on_sdk = None

    def listing(self):
        entries = [{"Path": p, "Type": "blob", "Size": len(b), "Sha256": sha(b), "Revision": "c0ffee"}
                   for p, b in sorted(self.files.items())]
        return {"Code": 200, "Data": {"Files": entries + self.extra_listing}}

    def fetch_manifest(self, endpoint, model_id, revision, reserved_names=(), client=None):
        self.listings.append({"endpoint": endpoint, "model_id": model_id, "revision": revision,
                              "token": client.token, "client": client})
        if self.hub_errors:
            raise self.hub_errors.pop(0)
        manifest = parse_listing(self.listing(), revision, reserved_names)
        manifest["url"] = endpoint
        return manifest

    def run_command(self, module, args, data=None, environ_update=None, cwd=None, pass_fds=None, **kwargs):
        request = json.loads(data)
        self.runs.append({"args": list(args), "request": request, "env": dict(environ_update or {}), "cwd": cwd,
                          "pass_fds": pass_fds, "marker_in_local_dir": os.path.exists(
                              mk.marker_path(request["local_dir"])),
                          "model_dir_marker": mk.read_marker(self.model_dir)[0],
                          "model_dir_files": {rel: open(os.path.join(self.model_dir, rel), "rb").read()
                                              for rel in self.files
                                              if os.path.isfile(os.path.join(self.model_dir, rel))}})
        if self.on_sdk:
            self.on_sdk(request)
        for item in request["files"]:
            if item["path"] in self.not_written:
                continue
            target = os.path.join(request["local_dir"], item["path"])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target + ".incomplete", "wb") as handle:
                handle.write(self.served.get(item["path"], self.files[item["path"]]))
            os.replace(target + ".incomplete", target)
        result = {"ok": self.sdk_rc == 0, "api": "fake", "error": self.sdk_error, "failed": {}}
        return self.sdk_rc, "progress...\n" + json.dumps(result) + "\n", ""


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = World(tmp_path, monkeypatch)

    def run_command(self, args, **kwargs):
        return w.run_command(self, args, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(modelscope_download, "fetch_manifest", w.fetch_manifest)
    return w


def run(world, check_mode=False, **params):
    args = {"model_id": "o/n", "model_dir": world.model_dir, "endpoint": "http://127.0.0.1:9/", "token": TOKEN}
    args.update(params)
    _failed, result = run_module(world.monkeypatch, modelscope_download, args, check_mode)
    world.warnings.extend(result.pop("_warnings"))
    return result


# ------------------------------------------------------------------ parameters
@pytest.mark.parametrize("params, fragment", [
    ({"model_id": "Qwen"}, "model_id 'Qwen' is not valid: expected 'owner/name'"),
    ({"model_id": "o/../x"}, "model_id 'o/../x' is not valid"),
    ({"endpoint": "modelscope.cn"}, "endpoint 'modelscope.cn' is not valid: expected an http:// or https:// URL"),
    ({"endpoint": "https://u:pw@hub"}, "credentials in the URL are refused"),
    ({"revision": "a b"}, "revision 'a b' is not valid"),
    ({"free_space_margin": "lots"}, "free_space_margin 'lots' is not valid: expected a percentage"),
    ({"max_workers": 0}, "max_workers 0 is not valid: expected an integer >= 1"),
    ({"timeout": 0}, "timeout 0 is not valid"),
    ({"verify": "sometimes"}, "value of verify must be one of: quick, full"),
    ({"model_dir": "/"}, "model_dir '/' is not valid"),
])
def test_bad_parameters_fail_with_the_field_the_value_and_the_accepted_values(world, params, fragment):
    res = run(world, **params)
    assert res["failed"] and fragment in res["msg"]
    assert world.runs == [] and not os.path.exists(world.model_dir)


def test_state_dir_inside_model_dir_is_refused(world):
    res = run(world, state_dir=os.path.join(world.model_dir, "state"))
    assert res["failed"] and "must not be inside model_dir" in res["msg"]


# ------------------------------------------------------------------ first download
def test_fresh_download_verifies_and_writes_the_marker(world):
    res = run(world, include=["*"], exclude=["nothing"])
    assert not res.get("failed"), res.get("msg")
    assert res["changed"] and res["complete"] and res["marker_written"]
    assert res["files"] == 5 and res["files_fetched"] == 5
    assert res["bytes_total"] == res["bytes_fetched"] == sum(len(b) for b in world.files.values())
    assert res["revision"] == "c0ffee" and res["revision_requested"] == "master"
    assert res["pickle_files"] == ["pytorch_model.bin"] and res["code_files"] == ["modeling_x.py"]
    assert res["hashed_files"] == 5
    marker, reason = mk.read_marker(world.model_dir)
    assert reason is None and marker["model_id"] == "o/n" and marker["revision"] == "c0ffee"
    assert marker["endpoint"] == "http://127.0.0.1:9" and marker["include"] == ["*"]
    assert sorted(f["path"] for f in marker["files"]) == sorted(world.files)
    assert TOKEN not in json.dumps(marker)


def test_the_sdk_gets_the_token_on_stdin_never_on_argv_and_an_explicit_endpoint(world):
    run(world, max_workers=7)
    (call,) = world.runs
    assert TOKEN not in " ".join(call["args"])
    assert TOKEN not in json.dumps(call["env"])
    assert call["request"]["token"] == TOKEN
    assert call["args"][1:3] == ["-I", "-c"]          # isolated: no cwd or PYTHONPATH imports
    env = call["env"]
    assert env["MODELSCOPE_ENDPOINT"] == "http://127.0.0.1:9"
    assert env["MODELSCOPE_DOWNLOAD_INTRA_CLOUD"] == "false"
    state = os.path.join(world.root, "models", "o", ".modelscope-state")
    assert env["MODELSCOPE_CACHE"] == os.path.join(state, "cache")
    assert env["HOME"] == env["MODELSCOPE_HOME"] == os.path.join(state, "home")
    assert env["LC_ALL"] == "C"
    assert call["cwd"] == state
    assert call["request"]["max_workers"] == 7 and call["request"]["endpoint"] == "http://127.0.0.1:9"
    assert call["pass_fds"] and len(call["pass_fds"]) == 1   # the child holds the lock too
    assert sorted(f["path"] for f in call["request"]["files"]) == sorted(world.files)
    assert world.listings[0]["token"] == TOKEN


def test_include_exclude_select_what_is_fetched(world):
    res = run(world, include=["*.json", "*.safetensors"], exclude=["sub/*"])
    assert res["files"] == 2
    assert sorted(f["path"] for f in world.runs[0]["request"]["files"]) == ["config.json", "model.safetensors"]
    assert not os.path.exists(os.path.join(world.model_dir, "pytorch_model.bin"))


def test_empty_selection_fails(world):
    res = run(world, include=["*.gguf"])
    assert res["failed"] and "no file of o/n@master matches include=['*.gguf']" in res["msg"]
    assert "hub lists 5 file(s)" in res["msg"]


# ------------------------------------------------------------------ reruns
def test_rerun_fetches_nothing_and_hashes_nothing(world):
    run(world)
    before = os.stat(mk.marker_path(world.model_dir)).st_mtime_ns
    res = run(world)
    assert res["changed"] is False and res["files_fetched"] == 0 and res["bytes_fetched"] == 0
    assert res["hashed_files"] == 0 and res["verified"] == "quick" and res["complete"]
    assert len(world.runs) == 1 and len(world.listings) == 2
    assert os.stat(mk.marker_path(world.model_dir)).st_mtime_ns == before


def test_full_rerun_rehashes_everything_without_changes(world):
    run(world)
    res = run(world, verify="full")
    assert res["changed"] is False and res["hashed_files"] == 5 and len(world.runs) == 1


def test_full_rerun_repairs_a_silently_corrupted_file(world):
    run(world)
    path = os.path.join(world.model_dir, "model.safetensors")
    st = os.stat(path)
    with open(path, "r+b") as handle:
        handle.write(b"X")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert run(world)["changed"] is False                 # quick cannot see same size + same mtime
    res = run(world, verify="full")
    assert res["changed"] and res["files_removed"] == ["model.safetensors"] and res["files_fetched"] == 1
    assert [f["path"] for f in world.runs[-1]["request"]["files"]] == ["model.safetensors"]
    assert open(path, "rb").read() == world.files["model.safetensors"]


def test_hub_moved_revision_refetches_only_changed_files_old_revision_intact_until_verified(world):
    run(world)
    old = dict(world.files)
    world.files["config.json"] = b'{"model_type": "y"}'
    res = run(world)
    assert res["changed"] and res["files_fetched"] == 1 and res["hashed_files"] == 2   # the old copy + new one
    during = world.runs[-1]
    # while the SDK ran, the model directory still held the previous revision, whole, with its marker
    assert during["model_dir_marker"] is not None and during["model_dir_files"] == old
    assert during["marker_in_local_dir"] is False and not during["request"]["local_dir"].startswith(world.model_dir)
    marker = mk.read_marker(world.model_dir)[0]
    assert {f["path"]: f["sha256"] for f in marker["files"]}["config.json"] == sha(b'{"model_type": "y"}')
    assert open(os.path.join(world.model_dir, "config.json"), "rb").read() == b'{"model_type": "y"}'


def test_a_failed_update_leaves_the_previous_revision_and_its_marker(world):
    run(world)
    before = mk.read_marker(world.model_dir)[0]
    world.files["model.safetensors"] = b"V" * 5000
    world.served["model.safetensors"] = b"X" * 5000          # the new revision's bytes arrive damaged
    res = run(world)
    assert res["failed"] and "model.safetensors (sha256" in res["msg"]
    assert mk.read_marker(world.model_dir)[0] == before
    assert open(os.path.join(world.model_dir, "model.safetensors"), "rb").read() == b"W" * 5000
    assert mk.quick_check(world.model_dir, before["files"]) == []


def test_existing_correct_files_without_marker_are_hashed_not_fetched(world):
    os.makedirs(world.model_dir)
    for rel, data in world.files.items():
        path = os.path.join(world.model_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").write(data)
    stale = os.path.join(world.model_dir, "config.json.incomplete")
    open(stale, "wb").write(b"{")
    res = run(world)
    assert res["changed"] and res["marker_written"] and res["files_fetched"] == 0 and res["hashed_files"] == 5
    assert world.runs == [] and not os.path.exists(stale)


# ------------------------------------------------------------------ failures
def test_corrupted_file_fails_is_deleted_and_no_marker(world):
    world.served["model.safetensors"] = b"X" * 5000
    res = run(world)
    assert res["failed"] and res["complete"] is False
    assert "1 of 5 file(s)" in res["msg"] and "model.safetensors (sha256" in res["msg"]
    assert list(res["failed_files"]) == ["model.safetensors"]
    assert tree(world.model_dir) == []                       # nothing unverified-complete is put in place
    staging = modelscope_download.staging_path_for(world.model_dir)
    assert not os.path.exists(os.path.join(staging, "files", "model.safetensors"))   # the bad file is deleted
    assert os.path.isfile(os.path.join(staging, "files", "config.json"))             # good ones wait there
    assert mk.read_marker(world.model_dir)[0] is None


def test_sdk_exit_zero_with_a_missing_file_is_still_a_failure(world):
    world.not_written.add("config.json")
    res = run(world)
    assert res["failed"] and "config.json (missing after the download)" in res["msg"]
    assert mk.read_marker(world.model_dir)[0] is None


def test_sdk_failure_is_reported_with_the_token_scrubbed(world):
    world.not_written.add("config.json")
    world.sdk_rc = 1
    world.sdk_error = "HTTPError: 500 for url with Authorization %s" % TOKEN
    res = run(world)
    assert res["failed"] and TOKEN not in json.dumps(res) and "********" in res["msg"]
    assert res["sdk"]["rc"] == 1


def test_sdk_failure_with_every_file_correct_is_a_warning(world):
    world.sdk_rc = 1
    world.sdk_error = "FileDownloadError: flaky"
    res = run(world)
    assert not res.get("failed") and res["complete"]
    assert any("every file passed" in w for w in world.warnings)


def test_a_failed_run_then_a_rerun_completes(world):
    world.served["model.safetensors"] = b"X" * 5000
    assert run(world)["failed"]
    del world.served["model.safetensors"]
    res = run(world)
    assert res["complete"] and res["files_fetched"] == 1 and res["hashed_files"] == 5


def test_unsafe_listing_is_refused_before_anything_is_written(world):
    world.extra_listing = [{"Path": "../escaped.txt", "Type": "blob", "Size": 1, "Sha256": "0" * 64}]
    res = run(world)
    assert res["failed"] and "unsafe path '../escaped.txt'" in res["msg"]
    assert res["unsafe_paths"] == ["unsafe path '../escaped.txt': '..' path segment"]
    assert world.runs == [] and not os.path.exists(world.model_dir)


def test_blob_without_sha256_is_refused(world):
    world.extra_listing = [{"Path": "nohash.bin", "Type": "blob", "Size": 1, "Sha256": ""}]
    res = run(world)
    assert res["failed"] and "nohash.bin: no valid Sha256" in res["msg"] and world.runs == []


def test_symlinked_directory_in_the_target_is_refused(world, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.makedirs(world.model_dir)
    os.symlink(str(outside), os.path.join(world.model_dir, "sub"))
    res = run(world)
    assert res["failed"] and "sub is a symlinked directory" in res["msg"]
    assert world.runs == [] and os.listdir(str(outside)) == []


def test_not_enough_disk_fails_before_any_byte(world, monkeypatch):
    class Small(object):
        f_bavail, f_frsize = 10, 512
    monkeypatch.setattr(free_space.os, "statvfs", lambda path: Small())
    res = run(world)
    assert res["failed"] and "not enough free disk space" in res["msg"] and "5120 are available" in res["msg"]
    assert world.runs == [] and not os.path.exists(world.model_dir)


def test_hub_errors_fail_clearly(world):
    world.hub_errors.append(HubError("the hub refused access (HTTP 401): no token was given", 401))
    res = run(world)
    assert res["failed"] and res["msg"].startswith("cannot resolve o/n@master from http://127.0.0.1:9: the hub refused")


def test_held_lock_fails_naming_the_holder(world):
    parent = os.path.dirname(world.model_dir)
    os.makedirs(parent)
    with dir_lock.DirLock(dir_lock.lock_path_for(world.model_dir), 1):
        res = run(world, lock_timeout=0)
    assert res["failed"] and "another run holds the lock" in res["msg"] and "pid %d" % os.getpid() in res["msg"]
    assert world.runs == [] and world.listings == []


def test_missing_sdk_python_fails_clearly(world):
    res = run(world, sdk_python="/nonexistent/python")
    assert res["failed"] and "sdk_python '/nonexistent/python' is not an executable interpreter" in res["msg"]
    assert mk.read_marker(world.model_dir)[0] is None


# ------------------------------------------------------------------ check mode
def test_check_mode_reports_and_writes_nothing(world):
    before = tree(world.root)
    res = run(world, check_mode=True)
    assert res["changed"] and res["complete"] is False
    assert res["would_fetch_bytes"] == sum(len(b) for b in world.files.values())
    assert sorted(f["path"] for f in res["would_fetch"]) == sorted(world.files)
    assert tree(world.root) == before and world.runs == []


def test_check_mode_on_a_complete_directory(world):
    run(world)
    before = tree(world.root)
    res = run(world, check_mode=True)
    assert res["changed"] is False and res["would_fetch"] == [] and res["complete"]
    assert tree(world.root) == before


def test_check_mode_counts_partial_bytes(world):
    staging_files = os.path.join(modelscope_download.staging_path_for(world.model_dir), "files")
    os.makedirs(staging_files)
    open(os.path.join(staging_files, "model.safetensors.incomplete"), "wb").write(b"W" * 1000)
    res = run(world, check_mode=True, include=["model.safetensors"])
    assert res["would_fetch"] == [{"path": "model.safetensors", "size": 5000, "have": 1000}]
    assert res["would_fetch_bytes"] == 4000


# ------------------------------------------------------------------ offline
def test_offline_without_marker_fails(world):
    res = run(world, offline=True)
    assert res["failed"] and "offline: no completion marker" in res["msg"] and world.listings == []


def test_offline_trusts_the_marker_without_the_hub(world):
    run(world)
    res = run(world, offline=True)
    assert not res.get("failed") and res["changed"] is False and res["complete"]
    assert len(world.listings) == 1 and res["revision"] == "c0ffee" and res["files"] == 5
    res = run(world, offline=True, verify="full")
    assert res["hashed_files"] == 5


def test_offline_detects_damage_and_other_selection(world):
    run(world)
    res = run(world, offline=True, include=["*.json"])
    assert res["failed"] and "written for include=[], not ['*.json']" in res["msg"]
    os.unlink(os.path.join(world.model_dir, "config.json"))
    res = run(world, offline=True)
    assert res["failed"] and "config.json is missing" in res["msg"]


# ------------------------------------------------------------------ ownership and modes
def test_modes_are_applied_and_idempotent(world):
    res = run(world, mode="0600", dir_mode="0750")
    assert res["changed"]
    assert oct(os.stat(os.path.join(world.model_dir, "sub", "tokenizer.json")).st_mode & 0o777) == "0o600"
    assert oct(os.stat(mk.marker_path(world.model_dir)).st_mode & 0o777) == "0o600"
    assert oct(os.stat(os.path.join(world.model_dir, "sub")).st_mode & 0o777) == "0o750"
    assert oct(os.stat(world.model_dir).st_mode & 0o777) == "0o750"
    assert run(world, mode="0600", dir_mode="0750")["changed"] is False
    res = run(world, mode="0644", dir_mode="0750")
    assert res["changed"] and res["files_fetched"] == 0 and res["marker_written"] is False
    assert run(world, mode="0644", check_mode=True)["changed"] is False
    assert run(world, mode="0640", check_mode=True)["changed"] is True
    assert oct(os.stat(os.path.join(world.model_dir, "config.json")).st_mode & 0o777) == "0o644"


# ------------------------------------------------------------------ the SDK runner (child process), with fake SDKs
FAKE_HUB_WITH_FILE_LIST = '''
import json, os
class FileDownloadError(Exception):
    def __init__(self, msg, failed_files):
        Exception.__init__(self, msg)
        self.failed_files = failed_files
class HubApi(object):
    def __init__(self, endpoint=None, token=None):
        self.seen = {"endpoint": endpoint, "token": token}
    def download_repo(self, repo_id, repo_type, revision=None, local_dir=None, max_workers=4, file_list=None):
        self.seen.update(repo_id=repo_id, repo_type=repo_type, revision=revision, local_dir=local_dir,
                         max_workers=max_workers, file_list=file_list)
        with open(os.environ["FAKE_SDK_RECORD"], "w") as handle:
            json.dump(self.seen, handle)
        if os.environ.get("FAKE_SDK_FAIL"):
            raise FileDownloadError("1 of 2 file(s) failed", {"b.txt": ValueError("hash mismatch")})
'''
FAKE_OLD_HUB = '''
class HubApi(object):
    def download_repo(self, repo_id, repo_type, revision=None, local_dir=None):
        raise AssertionError("must not be used without file_list")
'''
FAKE_MODELSCOPE = '''
import json, os
def snapshot_download(model_id, revision=None, local_dir=None, allow_patterns=None, max_workers=None, token=None,
                      endpoint=None):
    with open(os.environ["FAKE_SDK_RECORD"], "w") as handle:
        json.dump({"model_id": model_id, "revision": revision, "local_dir": local_dir,
                   "allow_patterns": allow_patterns, "max_workers": max_workers, "token": token,
                   "endpoint": endpoint}, handle)
'''


def run_runner(tmp_path, packages, files, fail=False):
    import subprocess
    import sys
    root = tmp_path / "fake-sdk"
    for name, source in packages.items():
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(source)
    record = tmp_path / "record.json"
    request = {"parent_pid": os.getpid(), "model_id": "o/n", "revision": "v1", "endpoint": "http://h",
               "token": TOKEN, "local_dir": str(tmp_path / "m"), "max_workers": 3, "files": files}
    env = dict(os.environ, PYTHONPATH=str(root), FAKE_SDK_RECORD=str(record))
    if fail:
        env["FAKE_SDK_FAIL"] = "1"
    # Not isolated (-I) here, so that PYTHONPATH can put the fake SDK first.
    proc = subprocess.run([sys.executable, "-c", modelscope_download.SDK_RUNNER], input=json.dumps(request),
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    outcome = modelscope_download._last_json_line(proc.stdout)
    seen = json.loads(record.read_text()) if record.exists() else None
    return proc.returncode, outcome, seen


FILES = [{"path": "a.json", "size": 1, "sha256": "a" * 64}, {"path": "sub/b[1]*?.txt", "size": 2, "sha256": "b" * 64}]


def test_runner_passes_the_exact_verified_file_list(tmp_path):
    rc, outcome, seen = run_runner(tmp_path, {"modelscope_hub": FAKE_HUB_WITH_FILE_LIST}, FILES)
    assert rc == 0 and outcome == {"ok": True, "api": "HubApi.download_repo(file_list)", "error": None, "failed": {}}
    assert seen["token"] == TOKEN and seen["endpoint"] == "http://h" and seen["revision"] == "v1"
    assert seen["repo_type"] == "model" and seen["max_workers"] == 3 and seen["local_dir"].endswith("/m")
    assert seen["file_list"] == [
        {"Path": "a.json", "Type": "blob", "Size": 1, "Sha256": "a" * 64},
        {"Path": "sub/b[1]*?.txt", "Type": "blob", "Size": 2, "Sha256": "b" * 64}]


def test_runner_reports_failed_files(tmp_path):
    rc, outcome, _seen = run_runner(tmp_path, {"modelscope_hub": FAKE_HUB_WITH_FILE_LIST}, FILES, fail=True)
    assert rc == 1 and outcome["ok"] is False
    assert outcome["failed"] == {"b.txt": "ValueError: hash mismatch"}
    assert outcome["error"].startswith("FileDownloadError: 1 of 2")


def test_runner_falls_back_to_literal_patterns_on_an_sdk_without_file_list(tmp_path):
    import fnmatch
    rc, outcome, seen = run_runner(tmp_path, {"modelscope_hub": FAKE_OLD_HUB, "modelscope": FAKE_MODELSCOPE}, FILES)
    assert rc == 0 and outcome["api"] == "modelscope.snapshot_download(allow_patterns)"
    assert seen["allow_patterns"] == ["a.json", "sub/b[[]1][*][?].txt"]
    assert seen["token"] == TOKEN and seen["endpoint"] == "http://h"
    # each pattern matches its own path and nothing else
    assert fnmatch.fnmatchcase("sub/b[1]*?.txt", seen["allow_patterns"][1])
    assert not fnmatch.fnmatchcase("sub/b1xx.txt", seen["allow_patterns"][1])


def test_runner_refuses_commas_on_the_fallback(tmp_path):
    files = [{"path": "a,b.json", "size": 1, "sha256": "a" * 64}]
    rc, outcome, seen = run_runner(tmp_path, {"modelscope_hub": FAKE_OLD_HUB, "modelscope": FAKE_MODELSCOPE}, files)
    assert rc == 1 and "comma" in outcome["error"] and seen is None


def test_runner_without_the_sdk(tmp_path):
    rc, outcome, _seen = run_runner(tmp_path, {"modelscope_hub": "raise ImportError('no hub')",
                                               "modelscope": "raise ImportError('no sdk')"}, FILES)
    assert rc == 3 and outcome["ok"] is False and "cannot be imported" in outcome["error"]


# ------------------------------------------------------------------ staying inside the model directory (issue 9)
def snapshot_of(root):
    """Every entry under ``root`` with its kind, mode, owner and content (links not followed)."""
    found = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(base, name)
            st = os.lstat(path)
            content = open(path, "rb").read() if os.path.isfile(path) and not os.path.islink(path) else None
            found[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_gid, content)
    return found


@pytest.fixture
def elsewhere(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "file").write_bytes(b"precious\n")
    os.chmod(str(outside / "file"), 0o640)
    return outside


def test_symlinked_subdirectory_planted_during_the_download_is_never_written_through(world, elsewhere):
    world.files["zz/extra.txt"] = b"extra\n"
    before = snapshot_of(str(elsewhere))

    def plant(_request):
        os.symlink(str(elsewhere), os.path.join(world.model_dir, "zz"))
    world.on_sdk = plant
    owner = "65534" if os.geteuid() == 0 else None
    res = run(world, mode="0666", dir_mode="0777", **({"owner": owner, "group": owner} if owner else {}))
    assert res["failed"] and "zz" in res["msg"] and "no completion marker" in res["msg"]
    assert res.get("complete") is False and not os.path.exists(mk.marker_path(world.model_dir))
    assert snapshot_of(str(elsewhere)) == before           # nothing written, chowned or chmoded outside
    assert os.stat(str(elsewhere)).st_mode & 0o777 != 0o777


def test_symlinked_partial_file_planted_during_the_download_is_never_written_through(world, elsewhere):
    before = snapshot_of(str(elsewhere))

    def plant(_request):
        os.symlink(str(elsewhere / "file"), os.path.join(world.model_dir, "config.json.incomplete"))
    world.on_sdk = plant
    res = run(world, mode="0666")
    assert res["failed"] and "config.json.incomplete" in res["msg"]
    assert not os.path.exists(mk.marker_path(world.model_dir))
    assert snapshot_of(str(elsewhere)) == before


def test_the_sdk_never_writes_into_the_model_directory_and_the_staging_is_private(world):
    seen = {}

    def look(request):
        st = os.lstat(os.path.dirname(request["local_dir"]))
        seen.update(mode=st.st_mode & 0o777, uid=st.st_uid, local_dir=request["local_dir"])
    world.on_sdk = look
    res = run(world)
    assert res["complete"], res.get("msg")
    assert seen["mode"] == 0o700 and seen["uid"] == os.geteuid()
    assert os.path.dirname(os.path.dirname(seen["local_dir"])) == os.path.dirname(world.model_dir)
    assert not os.path.exists(os.path.dirname(seen["local_dir"]))     # removed once the files are in place


def test_a_staging_directory_others_could_enter_is_replaced(world):
    staging = modelscope_download.staging_path_for(world.model_dir)
    os.makedirs(os.path.join(staging, "files"))
    os.chmod(staging, 0o777)
    open(os.path.join(staging, "files", "config.json"), "wb").write(world.files["config.json"])
    res = run(world)
    assert res["complete"] and res["files_fetched"] == 5 and res.get("files_staged") == 0


def test_revision_with_dotdot_is_refused_before_any_request(world):
    res = run(world, revision="../tiny-model/master")
    assert res["failed"] and "revision '../tiny-model/master' is not valid" in res["msg"]
    assert world.listings == [] and world.runs == [] and not os.path.exists(os.path.dirname(world.model_dir))


def test_sdk_that_cannot_be_imported_is_the_first_thing_said(world, monkeypatch):
    world.not_written.update(world.files)
    world.sdk_rc = 3

    def no_sdk(module, args, data=None, **kwargs):
        out = json.dumps({"ok": False, "api": None, "failed": {},
                          "error": "the ModelScope SDK cannot be imported by /usr/bin/python3: ModuleNotFoundError"})
        return 3, out + "\n", ""
    monkeypatch.setattr(world, "run_command", no_sdk)
    res = run(world)
    assert res["failed"] and res["msg"].startswith(
        "cannot download o/n@master: the ModelScope SDK cannot be imported by /usr/bin/python3")
    assert "size/sha256" not in res["msg"]


def test_refused_model_dir_symlink_leaves_no_lock_file(world, tmp_path):
    target = tmp_path / "target-dir"
    os.makedirs(os.path.dirname(world.model_dir))
    os.symlink(str(target / "missing"), world.model_dir)            # dangling
    res = run(world)
    assert res["failed"] and "is a symlink to" in res["msg"]
    assert not os.path.exists(str(target)) and world.listings == []
    assert [n for n in os.listdir(os.path.dirname(world.model_dir)) if n.endswith(".llmops-lock")] == []
    os.unlink(world.model_dir)
    (tmp_path / "plain").write_bytes(b"x")
    os.symlink(str(tmp_path / "plain"), world.model_dir)            # a link to a file
    res = run(world)
    assert res["failed"] and "not a directory" in res["msg"]
    assert [n for n in os.listdir(str(tmp_path)) if n.endswith(".llmops-lock")] == []


def test_model_dir_symlink_to_a_directory_is_followed_once(world, tmp_path):
    real = tmp_path / "disk2" / "n"
    real.mkdir(parents=True)
    os.makedirs(os.path.dirname(world.model_dir))
    os.symlink(str(real), world.model_dir)
    res = run(world)
    assert res["complete"], res.get("msg")
    expected = ["config.json", "model.safetensors", "sub", "pytorch_model.bin", "modeling_x.py", mk.MARKER_NAME]
    assert sorted(os.listdir(str(real))) == sorted(expected)


@pytest.mark.parametrize("params, fragment", [
    ({"mode": "u=rw"}, "mode 'u=rw' is not valid: expected an octal mode"),
    ({"dir_mode": "999"}, "dir_mode '999' is not valid"),
    ({"owner": "no-such-user-llmops"}, "owner 'no-such-user-llmops' is not valid"),
    ({"group": "no-such-group-llmops"}, "group 'no-such-group-llmops' is not valid"),
    ({"setype": "httpd_sys_content_t", "attr": "+i"}, "setype and attributes are not supported by modelscope_download: "
                                                      "it sets only owner, group and mode (and dir_mode)"),
    ({"timeout": 0}, "timeout 0 is not valid"),
    ({"retries": 11}, "retries 11 is not valid: expected an integer from 0 to 10"),
    ({"retries": -1}, "retries -1 is not valid"),
    ({"ca_path": "/nonexistent/ca.pem"}, "ca_path '/nonexistent/ca.pem' is not valid"),
])
def test_bad_client_and_attribute_options_fail_before_anything(world, params, fragment):
    res = run(world, **params)
    assert res["failed"] and fragment in res["msg"], res["msg"]
    assert world.listings == [] and not os.path.exists(os.path.dirname(world.model_dir))


def test_ca_and_proxy_reach_the_sdk_in_its_environment_never_argv(world, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    res = run(world, ca_path=str(ca), use_proxy=False, validate_certs=False)
    assert res["complete"], res.get("msg")
    sdk = world.runs[-1]
    assert sdk["env"]["REQUESTS_CA_BUNDLE"] == sdk["env"]["SSL_CERT_FILE"] == str(ca)
    assert sdk["env"]["https_proxy"] == "" and sdk["env"]["NO_PROXY"] == "*"
    assert sdk["request"]["validate_certs"] is False
    assert str(ca) not in json.dumps(sdk["args"])
    client = world.listings[-1]["client"]
    assert client.token == TOKEN and client.timeout == 60
    assert (sdk["env"]["MODELSCOPE_DOWNLOAD_TIMEOUT"], sdk["env"]["MODELSCOPE_DOWNLOAD_MAX_RETRIES"]) == ("60", "3")


def test_timeout_and_retries_reach_the_client_and_the_sdk(world):
    res = run(world, timeout=17, retries=0)
    assert res["complete"], res.get("msg")
    sdk = world.runs[-1]
    assert (sdk["env"]["MODELSCOPE_DOWNLOAD_TIMEOUT"], sdk["env"]["MODELSCOPE_DOWNLOAD_MAX_RETRIES"]) == ("17", "0")
    client = world.listings[-1]["client"]
    assert (client.timeout, client.retries) == (17, 0)
