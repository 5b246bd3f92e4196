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
    partial = model_dir / "model.safetensors.incomplete"
    size = local_hub.snapshot(QWEN).files["model.safetensors"].size
    local_hub.add_file_fault("model.safetensors", slow=262144)
    proc = subprocess.Popen(module_argv("modelscope_download", {
        "model_id": QWEN, "model_dir": str(model_dir), "endpoint": local_hub.endpoint}),
        cwd=REPO, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: partial.exists() and partial.stat().st_size > 300000, 60, "a partial file")
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
    have = partial.stat().st_size
    assert 0 < have < size and not (model_dir / "model.safetensors").exists()

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
    assert not partial.exists()


# ---------------------------------------------------------------------------------------------------------- faults
def test_corrupted_file_fails_without_marker(local_hub, tmp_path):
    model_dir = tmp_path / "m"
    local_hub.add_file_fault("model.safetensors", corrupt=True)
    res = download(local_hub, model_dir)
    assert res["failed"] and "model.safetensors" in res["msg"] and "no completion marker" in res["msg"]
    assert not (model_dir / MARKER).exists()
    assert not (model_dir / "model.safetensors").exists()        # never left looking complete
    assert (model_dir / "config.json").exists()
    res = run_module("model_verify", {"path": str(model_dir)})
    assert res["failed"] and res["marker"] == "absent"

    local_hub.clear_faults()
    local_hub.clear_requests()
    res = download(local_hub, model_dir)
    assert res["complete"] and res["files_fetched"] == 1
    assert [r["file"] for r in local_hub.requests(kind="file")] == ["model.safetensors"]
    assert_matches_hub(local_hub, model_dir)


def test_http_500_on_one_file_fails(local_hub, tmp_path):
    model_dir = tmp_path / "m"
    local_hub.add_file_fault("tokenizer.json", status=500)
    res = download(local_hub, model_dir, _env={"MODELSCOPE_DOWNLOAD_MAX_RETRIES": "1"})
    assert res["failed"] and "tokenizer.json (missing after the download)" in res["msg"]
    assert "SDK:" in res["msg"] and res["sdk"]["rc"] != 0
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
def test_two_runs_at_once_wait_or_fail_never_mix(local_hub, tmp_path):
    model_dir = tmp_path / "m"
    local_hub.add_file_fault("model.safetensors", slow=1048576)
    first = subprocess.Popen(module_argv("modelscope_download", {
        "model_id": QWEN, "model_dir": str(model_dir), "endpoint": local_hub.endpoint}),
        cwd=REPO, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    waiter_result = {}
    try:
        wait_for((model_dir / "model.safetensors.incomplete").exists, 60, "the first run's download")
        # a second run that waits: it starts now, blocks on the lock and then finds the directory complete

        def wait_then_download():
            waiter_result.update(download(local_hub, model_dir, lock_timeout=120))
        waiter = threading.Thread(target=wait_then_download)
        waiter.start()
        # a third run that may not wait: fails clearly, naming the holder
        res = download(local_hub, model_dir, lock_timeout=1)
        assert res["failed"] and "another run holds the lock" in res["msg"] and "pid" in res["msg"]
        out, _err = first.communicate(timeout=120)
        waiter.join(120)
    finally:
        if first.poll() is None:
            first.kill()
    first_res = result_of(out)
    assert first_res["complete"] and first_res["changed"], first_res.get("msg")
    assert waiter_result["changed"] is False and waiter_result["lock_waited"] > 0.5
    assert waiter_result["files_fetched"] == 0
    files = local_hub.requests(kind="file")
    assert len(files) == len(local_hub.snapshot(QWEN).files)      # only the first run fetched anything
    assert_matches_hub(local_hub, model_dir)
    res = run_module("model_verify", {"path": str(model_dir), "verify": "full"})
    assert res["valid"], res.get("msg")
