# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""modelscope_download and model_verify end to end: real ``ansible`` runs, the REAL ModelScope SDK, the local hub.

Every test runs the modules the way a user does (``ansible localhost -m llmops.deploy.<module>``, AnsiballZ, the SDK
in its child process) against ``tools/local_hub`` (fixture ``local_hub``), with faults injected into the hub.
Role-level tests (token canary, -vvv, idempotence) are in test_download_role.py.
"""
import hashlib
import json
import os
import signal
import subprocess
import threading
import time

import pytest

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
QWEN = "llmops-test/Qwen2-tiny-2M"
LLAMA = "llmops-test/Llama-3.1-tiny-4M"
QWEN_FP8 = "llmops-test/Qwen2-tiny-2M-FP8"
MARKER = ".llmops-complete.json"
RUNNER_SIGNATURE = "_die_with_parent"   # a word of the module's SDK runner source, which is its argv


def ansible_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELSCOPE_", "ANSIBLE_"))}
    env.update({
        "PATH": VENV_BIN + os.pathsep + env.get("PATH", ""),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_NOCOLOR": "1",
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    })
    env.update(extra or {})
    return env


def module_argv(module, args, check=False):
    argv = [os.path.join(VENV_BIN, "ansible"), "localhost", "-m", "llmops.deploy." + module, "-a", json.dumps(args)]
    return argv + (["--check"] if check else [])


def result_of(stdout):
    data = json.loads(stdout[stdout.index("{"):])
    return data["plays"][0]["tasks"][0]["hosts"]["localhost"]


def run_module(module, args, check=False, env=None, timeout=300):
    proc = subprocess.run(module_argv(module, args, check), cwd=REPO, env=ansible_env(env), capture_output=True,
                          text=True, timeout=timeout, check=False)
    try:
        return result_of(proc.stdout)
    except (ValueError, KeyError, IndexError):
        raise AssertionError("no result from ansible (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))


def download(hub, model_dir, model_id=QWEN, **extra):
    args = {"model_id": model_id, "model_dir": str(model_dir), "endpoint": hub.endpoint}
    args.update(extra)
    check = args.pop("_check", False)
    env = args.pop("_env", None)
    return run_module("modelscope_download", args, check=check, env=env)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def assert_matches_hub(hub, model_dir, model_id=QWEN, revision="master"):
    snapshot = hub.snapshot(model_id, revision)
    for path, entry in snapshot.files.items():
        local = os.path.join(str(model_dir), path)
        assert os.path.getsize(local) == entry.size, path
        assert sha256_file(local) == entry.sha256, path
    marker = json.load(open(os.path.join(str(model_dir), MARKER)))
    assert sorted(f["path"] for f in marker["files"]) == sorted(snapshot.files)
    assert marker["revision"] == snapshot.commit_id
    return snapshot


def staged(model_dir, rel=""):
    """Where the module stages a download of ``model_dir`` (its private staging directory's ``files``)."""
    model_dir = os.path.realpath(str(model_dir))
    base = os.path.join(os.path.dirname(model_dir), "." + os.path.basename(model_dir) + ".llmops-staging", "files")
    return os.path.join(base, rel) if rel else base


def all_files(root):
    found = []
    for base, _dirs, files in os.walk(str(root)):
        for name in files:
            found.append(os.path.relpath(os.path.join(base, name), str(root)))
    return sorted(found)


def runner_processes(under):
    """pids of the module's SDK runner processes (their argv holds the runner source) working below ``under``.

    The runner works in its state dir next to the model dir, so other downloads running on the machine at the same
    time (another test run) are not counted.
    """
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as handle:
                if RUNNER_SIGNATURE.encode() not in handle.read():
                    continue
            if os.readlink("/proc/%s/cwd" % name).startswith(str(under) + os.sep):
                pids.append(int(name))
        except OSError:
            continue
    return pids


def parent_pid(pid):
    with open("/proc/%d/stat" % pid) as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


# ---------------------------------------------------------------------------------------------------------- happy path
def test_download_verify_rerun_check_mode_and_offline(local_hub, tmp_path):
    model_dir = tmp_path / "models" / "llmops-test" / "Llama-3.1-tiny-4M"
    snapshot = local_hub.snapshot(LLAMA)
    total = sum(entry.size for entry in snapshot.files.values())

    # check mode on a fresh directory: reports everything, writes nothing
    res = download(local_hub, model_dir, LLAMA, _check=True)
    assert res["changed"] and res["would_fetch_bytes"] == total and len(res["would_fetch"]) == len(snapshot.files)
    assert not (tmp_path / "models").exists()
    assert local_hub.requests(kind="file") == []

    # real run: every file fetched by the SDK, checked, marked
    res = download(local_hub, model_dir, LLAMA)
    assert res["changed"] and res["complete"] and res["marker_written"], res.get("msg")
    assert res["files_fetched"] == len(snapshot.files) and res["bytes_fetched"] == total
    assert res["revision"] == snapshot.commit_id and res["sdk"]["api"] == "HubApi.download_repo(file_list)"
    # every file hashed from the bytes the SDK wrote (its runner's stream hash), none read back afterwards
    assert res["hashed_while_downloading"] == len(snapshot.files) and res["sdk_attempts"] == 1
    assert_matches_hub(local_hub, model_dir, LLAMA)
    assert len(local_hub.requests(kind="file")) == len(snapshot.files)
    state = tmp_path / "models" / "llmops-test" / ".modelscope-state"
    assert (state / "home" / "credentials" / "session").is_file()   # the SDK's side files stay in the state dir

    # rerun: no file request, no re-hash, unchanged
    local_hub.clear_requests()
    res = download(local_hub, model_dir, LLAMA)
    assert res["changed"] is False and res["files_fetched"] == 0 and res["hashed_files"] == 0
    assert local_hub.requests(kind="file") == []
    assert len(local_hub.requests(kind="listing")) == 1

    # check mode on a complete directory
    res = download(local_hub, model_dir, LLAMA, _check=True)
    assert res["changed"] is False and res["would_fetch"] == []

    # full verification re-hashes, still unchanged
    res = download(local_hub, model_dir, LLAMA, verify="full")
    assert res["changed"] is False and res["hashed_files"] == len(snapshot.files)

    # model_verify: shards, headers, the name's claims (Llama-3.1-tiny-4M holds 3.93M parameters)
    res = run_module("model_verify", {"path": str(model_dir), "verify": "full"})
    assert res.get("failed") is not True, res.get("msg")
    assert res["valid"] and res["marker"] == "valid" and res["claimed_params"] == 4000000
    assert res["index_files"] == ["model.safetensors.index.json"] and len(res["weights"]["safetensors"]) == 3
    assert res["detected_precision"] == "bf16" and 0.9 < res["params_ratio"] < 1.0

    # offline: the hub is gone, the marker is trusted
    endpoint = local_hub.endpoint
    local_hub.stop()
    args = {"model_id": LLAMA, "model_dir": str(model_dir), "endpoint": endpoint, "offline": True}
    res = run_module("modelscope_download", args)
    assert res.get("failed") is not True, res.get("msg")
    assert res["changed"] is False and res["complete"] and res["revision"] == snapshot.commit_id
    res = run_module("modelscope_download", dict(args, verify="full"))
    assert res["changed"] is False and res["hashed_files"] == len(snapshot.files)


def test_include_exclude_revision_and_fp8_verify(local_hub, tmp_path):
    model_dir = tmp_path / "v1"
    res = download(local_hub, model_dir, QWEN, revision="v1.0", exclude=["*.md", ".gitattributes"],
                   include=["*.json", "*.safetensors", "*.txt"])
    assert res["complete"], res.get("msg")
    snapshot = local_hub.snapshot(QWEN, "v1.0")
    expected = sorted(p for p in snapshot.files if p.endswith((".json", ".safetensors", ".txt")))
    assert all_files(model_dir) == sorted(expected + [MARKER])
    assert res["revision"] == snapshot.commit_id != local_hub.snapshot(QWEN).commit_id
    assert sha256_file(model_dir / "model.safetensors") == snapshot.files["model.safetensors"].sha256

    fp8_dir = tmp_path / "fp8"
    assert download(local_hub, fp8_dir, QWEN_FP8)["complete"]
    res = run_module("model_verify", {"path": str(fp8_dir)})
    assert res["valid"], res.get("msg")
    assert res["detected_precision"] == "fp8" and res["claimed_precision"] == "fp8"
    res = run_module("model_verify", {"path": str(fp8_dir), "precision": "bf16"})
    assert res["failed"] and "the weights are fp8" in res["msg"]


# ---------------------------------------------------------------------------------------------------------- kill -9
def test_kill_9_mid_download_then_rerun_resumes(local_hub, tmp_path):
    model_dir = tmp_path / "m"
    partial = staged(model_dir, "model.safetensors.incomplete")
    size = local_hub.snapshot(QWEN).files["model.safetensors"].size
    local_hub.add_file_fault("model.safetensors", hold=300000)      # the transfer stops there until released
    proc = subprocess.Popen(module_argv("modelscope_download", {
        "model_id": QWEN, "model_dir": str(model_dir), "endpoint": local_hub.endpoint}),
        cwd=REPO, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert local_hub.wait_held(timeout=120), "the download never reached the held file"
        wait_for(lambda: os.path.exists(partial) and os.path.getsize(partial) == 300000, 60,
                 "the held bytes in the partial file")
        others = [p for p in local_hub.snapshot(QWEN).files if p != "model.safetensors"]
        wait_for(lambda: all(os.path.isfile(staged(model_dir, p)) for p in others), 60, "the other files")
        (runner,) = runner_processes(tmp_path)
        module_pid = parent_pid(runner)
        os.kill(module_pid, signal.SIGKILL)          # the module dies mid-download ...
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: not runner_processes(tmp_path), 10, "the SDK runner to die with the module")   # ... and takes the SDK
    res = result_of(out)
    assert res.get("failed") and not (model_dir / MARKER).exists()
    have = os.path.getsize(partial)
    assert have == 300000 < size and not (model_dir / "model.safetensors").exists()

    local_hub.clear_faults()
    local_hub.clear_requests()
    res = download(local_hub, model_dir)
    assert res["complete"], res.get("msg")
    ranges = [r["range"] for r in local_hub.requests(kind="file") if r["file"] == "model.safetensors"]
    assert ranges == ["bytes=%d-" % have]                  # resumed, not restarted
    # the other files had finished before the kill: hashed, not fetched again
    assert res["files_fetched"] == 1 and res["bytes_fetched"] == size - have
    assert res["hashed_files"] == len(local_hub.snapshot(QWEN).files)
    assert_matches_hub(local_hub, model_dir)
    assert not os.path.exists(partial) and not os.path.exists(os.path.dirname(staged(model_dir)))


# ---------------------------------------------------------------------------------------------------------- faults
def test_corrupted_file_fails_without_marker(local_hub, tmp_path):
    model_dir = tmp_path / "m"
    local_hub.add_file_fault("model.safetensors", corrupt=True)
    res = download(local_hub, model_dir)
    assert res["failed"] and "model.safetensors" in res["msg"] and "no completion marker" in res["msg"]
    assert not (model_dir / MARKER).exists()
    assert not (model_dir / "model.safetensors").exists()        # never left looking complete
    assert all_files(model_dir) == []                            # verified files wait in the staging directory
    assert os.path.isfile(staged(model_dir, "config.json"))
    assert not os.path.exists(staged(model_dir, "model.safetensors"))
    res = run_module("model_verify", {"path": str(model_dir)})
    assert res["failed"] and res["marker"] == "absent"

    local_hub.clear_faults()
    local_hub.clear_requests()
    res = download(local_hub, model_dir)
    assert res["complete"] and res["files_fetched"] == 1
    assert [r["file"] for r in local_hub.requests(kind="file")] == ["model.safetensors"]
    assert_matches_hub(local_hub, model_dir)


def test_http_500_on_one_file_fails_after_the_retries_asked_for(local_hub, tmp_path):
    model_dir = tmp_path / "m"
    local_hub.add_file_fault("tokenizer.json", status=500)
    # the SDK's own default (5 retries) is overridden by the module's option, even when the environment sets it
    res = download(local_hub, model_dir, retries=1, _env={"MODELSCOPE_DOWNLOAD_MAX_RETRIES": "5"})
    assert res["failed"] and "tokenizer.json (missing after the download)" in res["msg"]
    assert "SDK:" in res["msg"] and res["sdk"]["rc"] != 0
    assert [r["status"] for r in local_hub.requests(kind="file") if r["file"] == "tokenizer.json"] == [500, 500]
    assert not (model_dir / MARKER).exists() and not (model_dir / "tokenizer.json").exists()


def test_listing_500_fails_before_the_sdk(local_hub, tmp_path):
    local_hub.add_listing_fault(status=500)
    res = download(local_hub, tmp_path / "m", timeout=5)
    assert res["failed"] and "HTTP 500" in res["msg"] and local_hub.requests(kind="file") == []
    assert not (tmp_path / "m").exists()


def test_unsafe_paths_are_refused_and_nothing_is_written_outside(local_hub, tmp_path):
    model_dir = tmp_path / "models" / "o" / "n"
    absolute = tmp_path / "absolute.txt"
    local_hub.add_listing_fault(unsafe_paths=["../escaped.txt", "sub/../../escaped-nested.txt", str(absolute),
                                              "dir\\backslash.txt", "C:/drive.txt", "a//b.txt", "ctrl\x07.txt"])
    res = download(local_hub, model_dir)
    assert res["failed"] and "unsafe path '../escaped.txt'" in res["msg"]
    assert len(res["unsafe_paths"]) == 7
    assert local_hub.requests(kind="file") == []
    assert not model_dir.exists() and not absolute.exists()
    assert [f for f in all_files(tmp_path) if "escaped" in f or f.endswith(".txt")] == []


def test_listing_without_sha256_is_refused(local_hub, tmp_path):
    local_hub.add_listing_fault(omit_sha256=True)
    res = download(local_hub, tmp_path / "m")
    assert res["failed"] and "no valid Sha256" in res["msg"] and local_hub.requests(kind="file") == []


@pytest.fixture
def small_fs(tmp_path):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "llmops-test-small", str(mount_point)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % proc.stderr.strip())
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_small_filesystem_is_refused_before_any_byte(local_hub, small_fs):
    model_dir = small_fs / "models" / "o" / "n"
    res = download(local_hub, model_dir)
    assert res["failed"] and "not enough free disk space on %s" % small_fs in res["msg"]
    assert "nothing was downloaded" in res["msg"]
    assert local_hub.requests(kind="file") == []
    assert not model_dir.exists()
    # only what fits is accepted: the config files alone fit in 2 MiB
    res = download(local_hub, model_dir, include=["*.json"], exclude=["tokenizer.json"])
    assert res["complete"], res.get("msg")


# ---------------------------------------------------------------------------------------------------------- concurrency
def lock_openers(lock_path):
    """pids of the processes that hold ``lock_path`` open (a run holding or waiting for the lock)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            for fd in os.listdir("/proc/%s/fd" % name):
                if os.readlink("/proc/%s/fd/%s" % (name, fd)) == lock_path:
                    pids.append(int(name))
                    break
        except OSError:
            continue
    return sorted(pids)


def test_two_runs_at_once_wait_or_fail_never_mix(local_hub, tmp_path):
    """No timing: the hub holds the first run's transfer until the test has seen the other runs fail or wait."""
    model_dir = tmp_path / "m"
    lock_path = str(tmp_path / ".m.llmops-lock")
    local_hub.add_file_fault("model.safetensors", hold=0)
    first = subprocess.Popen(module_argv("modelscope_download", {
        "model_id": QWEN, "model_dir": str(model_dir), "endpoint": local_hub.endpoint}),
        cwd=REPO, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    waiter_result = {}
    waiter = None
    try:
        assert local_hub.wait_held(timeout=120), "the first run never reached the held transfer"
        holders = lock_openers(lock_path)          # the first run's module and its SDK runner
        assert holders
        # a run that may not wait: fails clearly, naming the holder
        res = download(local_hub, model_dir, lock_timeout=1)
        assert res["failed"] and "another run holds the lock" in res["msg"] and "pid" in res["msg"]

        # a run that waits: it opens the lock file, finds it held, and waits
        def wait_then_download():
            waiter_result.update(download(local_hub, model_dir, lock_timeout=300))
        waiter = threading.Thread(target=wait_then_download)
        waiter.start()
        wait_for(lambda: set(lock_openers(lock_path)) - set(holders), 120, "the second run to wait for the lock")
        assert local_hub.held() == 1                # the first run is still stopped mid-transfer
        local_hub.release()
        out, _err = first.communicate(timeout=300)
        waiter.join(300)
    finally:
        local_hub.release()
        if first.poll() is None:
            first.kill()
    first_res = result_of(out)
    assert first_res["complete"] and first_res["changed"], first_res.get("msg")
    assert waiter_result["changed"] is False and waiter_result["lock_waited"] > 0
    assert waiter_result["files_fetched"] == 0
    files = local_hub.requests(kind="file")
    assert len(files) == len(local_hub.snapshot(QWEN).files)      # only the first run fetched anything
    assert_matches_hub(local_hub, model_dir)
    res = run_module("model_verify", {"path": str(model_dir), "verify": "full"})
    assert res["valid"], res.get("msg")


# ---------------------------------------------------------------------------------------------------------- issue 9
def tree_state(root):
    """Every entry under ``root``: kind+mode, owner, content (links not followed)."""
    found = {}
    for base, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            path = os.path.join(base, name)
            st = os.lstat(path)
            content = open(path, "rb").read() if os.path.isfile(path) and not os.path.islink(path) else None
            found[os.path.relpath(path, str(root))] = (st.st_mode, st.st_uid, st.st_gid, content)
    return found


@pytest.mark.parametrize("plant", ["subdirectory", "partial"])
def test_symlink_planted_during_a_run_is_never_written_through(local_hub, tmp_path, plant):
    """Someone who can write into the model directory plants a link while the SDK is mid-transfer."""
    model_dir = tmp_path / "m"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "file").write_bytes(b"precious\n")
    os.chmod(str(elsewhere / "file"), 0o600)
    before = tree_state(elsewhere)
    before_dir = os.stat(str(elsewhere))
    local_hub.add_listing_fault(unsafe_paths=["zz/extra.txt"])     # a file below a subdirectory (a safe path)
    local_hub.add_file_fault("model.safetensors", hold=1000)
    args = {"model_id": QWEN, "model_dir": str(model_dir), "endpoint": local_hub.endpoint, "mode": "0666",
            "dir_mode": "0777"}
    if os.geteuid() == 0:
        args.update(owner="65534", group="65534")
    proc = subprocess.Popen(module_argv("modelscope_download", args), cwd=REPO, env=ansible_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert local_hub.wait_held(timeout=120), "the download never reached the held file"
        if plant == "subdirectory":
            os.symlink(str(elsewhere), str(model_dir / "zz"))
        else:
            os.symlink(str(elsewhere / "file"), str(model_dir / "config.json.incomplete"))
        local_hub.release()
        out, _err = proc.communicate(timeout=300)
    finally:
        local_hub.release()
        if proc.poll() is None:
            proc.kill()
    res = result_of(out)
    assert res.get("failed") and ("no completion marker" in res["msg"] or "left as they were" in res["msg"]), res
    assert not (model_dir / MARKER).exists()
    assert tree_state(elsewhere) == before                        # nothing written, appended, chowned, chmoded
    after_dir = os.stat(str(elsewhere))
    assert (after_dir.st_mode, after_dir.st_uid) == (before_dir.st_mode, before_dir.st_uid)


def test_revision_with_a_path_is_refused_before_any_request(local_hub, tmp_path):
    res = download(local_hub, tmp_path / "m", revision="../tiny-model/master")
    assert res["failed"] and "revision '../tiny-model/master' is not valid" in res["msg"]
    assert local_hub.requests() == [] and not (tmp_path / "m").exists()


@pytest.mark.parametrize("path", ["next\u0085line.txt", "csi\u009b31m.txt", "line\u2028sep.txt",
                                  "invoice\u202etxt.exe", "para\u2029sep.txt", "zero\u200bwidth.txt"])
def test_unicode_control_and_format_characters_are_refused(local_hub, tmp_path, path):
    local_hub.add_listing_fault(unsafe_paths=[path])
    res = download(local_hub, tmp_path / "m")
    assert res["failed"] and any("U+" in item for item in res["unsafe_paths"]), res["msg"]
    assert local_hub.requests(kind="file") == [] and not (tmp_path / "m").exists()


def test_common_file_arguments_owner_group_mode_applied_selinux_and_attributes_refused(local_hub, tmp_path):
    # owner/group/mode are Ansible's common file arguments (add_file_common_args), applied through descriptors
    st = os.stat(str(tmp_path))
    res = download(local_hub, tmp_path / "m", mode="0640", dir_mode="0750", owner=str(st.st_uid),
                   group=str(st.st_gid))
    assert res["changed"] and res["complete"], res.get("msg")
    assert oct(os.stat(str(tmp_path / "m" / "config.json")).st_mode & 0o7777) == "0o640"
    assert oct(os.stat(str(tmp_path / "m")).st_mode & 0o7777) == "0o750"
    again = download(local_hub, tmp_path / "m", mode="0644", owner=str(st.st_uid), group=str(st.st_gid))
    assert again["changed"] and again["files_fetched"] == 0
    assert oct(os.stat(str(tmp_path / "m" / "config.json")).st_mode & 0o7777) == "0o644"
    # the SELinux and attribute options have no descriptor-based implementation: refused, naming them, before
    # anything is requested or written
    local_hub.clear_requests()
    res = download(local_hub, tmp_path / "n", setype="httpd_sys_content_t", attributes="+i")
    assert res["failed"] and res["msg"].startswith("setype and attributes are not supported by modelscope_download")
    assert local_hub.requests() == [] and not (tmp_path / "n").exists()
    assert [f for f in all_files(tmp_path) if f.startswith(".n")] == []


def test_a_streamed_digest_counts_only_for_the_very_file_it_describes(tmp_path):
    # stream_hash.streamed_digests: the runner's record [sha256, size, dev, ino, mtime_ns] is accepted only while the
    # file is exactly what was hashed; anything else is hashed again from disk
    import sys
    sys.path.insert(0, os.path.join(REPO, ".collections"))
    from ansible_collections.llmops.deploy.plugins.module_utils.stream_hash import streamed_digests
    data = b"weights" * 1000
    path = tmp_path / "a.bin"
    path.write_bytes(data)

    def record(sha=hashlib.sha256(data).hexdigest()):
        st = os.lstat(str(path))
        return [sha, st.st_size, st.st_dev, st.st_ino, st.st_mtime_ns]

    entries = [{"path": "a.bin", "size": len(data)}]
    good = record()
    assert streamed_digests(str(tmp_path), entries, {"a.bin": good}) == {"a.bin": good[0]}
    assert streamed_digests(str(tmp_path), [{"path": "a.bin", "size": len(data) + 1}], {"a.bin": good}) == {}
    for broken in (None, [], good[:4], [good[0][:10]] + good[1:], good[:1] + ["1"] + good[2:], "x"):
        assert streamed_digests(str(tmp_path), entries, {"a.bin": broken}) == {}
    assert streamed_digests(str(tmp_path), entries, ["a.bin"]) == {}
    # rewritten after it was hashed (same size): another mtime
    os.utime(str(path), ns=(good[4] + 10 ** 9, good[4] + 10 ** 9))
    assert streamed_digests(str(tmp_path), entries, {"a.bin": good}) == {}
    # replaced by another file of the same size and mtime: another inode
    other = tmp_path / "other.bin"
    other.write_bytes(b"X" * len(data))
    os.utime(str(other), ns=(good[4], good[4]))
    os.replace(str(other), str(path))
    assert streamed_digests(str(tmp_path), entries, {"a.bin": good}) == {}
    # a symlink to the very file is not the file
    path.unlink()
    real = tmp_path / "real.bin"
    real.write_bytes(data)
    os.symlink(str(real), str(path))
    st = os.stat(str(real))
    linked = [good[0], st.st_size, st.st_dev, st.st_ino, st.st_mtime_ns]
    assert streamed_digests(str(tmp_path), entries, {"a.bin": linked}) == {}


def test_sdk_that_cannot_be_imported_says_so_first(local_hub, tmp_path):
    bare = tmp_path / "bare-venv"
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(bare)], check=True)
    res = download(local_hub, tmp_path / "m", sdk_python=str(bare / "bin" / "python"))
    assert res["failed"] and res["msg"].startswith("cannot download %s@master: the ModelScope SDK cannot be "
                                                   "imported by" % QWEN), res["msg"]
    assert "size/sha256" not in res["msg"] and not (tmp_path / "m" / MARKER).exists()


def test_refused_model_dir_symlink_leaves_no_lock_file(local_hub, tmp_path):
    (tmp_path / "models").mkdir()
    link = tmp_path / "models" / "m"
    os.symlink(str(tmp_path / "nowhere" / "m"), str(link))
    res = download(local_hub, link)
    assert res["failed"] and "is a symlink to" in res["msg"]
    assert local_hub.requests() == []
    assert [f for f in all_files(tmp_path) if f.endswith(".llmops-lock")] == []


def test_token_never_follows_a_redirect_to_another_port(local_hub_factory, tmp_path):
    token = "CANARY-redirect-token-7d1c"
    other = local_hub_factory()                                   # same host, another port, no token needed
    hub = local_hub_factory(token=token)
    hub.add_listing_fault(redirect=other.endpoint)
    res = download(hub, tmp_path / "m", token=token)
    assert res["complete"], res.get("msg")
    (first,) = hub.requests(kind="listing")
    (moved,) = other.requests(kind="listing")
    assert first["auth"] is True and first["status"] == 302
    assert moved["auth"] is False and moved["cookie_auth"] is False and moved["status"] == 200
    # the files come from the endpoint itself, with the token
    assert hub.requests(kind="file") and all(r["auth"] or r["cookie_auth"] for r in hub.requests(kind="file"))


def test_client_options_work_end_to_end(local_hub, tmp_path):
    """ca_path (a real CA bundle), validate_certs and use_proxy=false reach the module's client and the SDK; a proxy
    in the environment that does not exist is ignored with use_proxy=false and breaks the run with use_proxy=true."""
    import certifi
    dead_proxy = {"http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "no_proxy": "",
                  "NO_PROXY": ""}
    res = download(local_hub, tmp_path / "m", ca_path=certifi.where(), validate_certs=False, use_proxy=False,
                   _env=dead_proxy)
    assert res["complete"], res.get("msg")
    res = download(local_hub, tmp_path / "m2", timeout=5, _env=dead_proxy)
    assert res["failed"] and "could not be reached" in res["msg"] and not (tmp_path / "m2").exists()
    res = download(local_hub, tmp_path / "m3", ca_path=str(tmp_path / "missing.pem"))
    assert res["failed"] and "ca_path" in res["msg"] and not (tmp_path / "m3").exists()
