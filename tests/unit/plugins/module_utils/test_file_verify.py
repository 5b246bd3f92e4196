# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""file_verify: target tree safety, planning, free space, marker atomicity and validation, quick/full checks, lock,
model directory checks."""

import hashlib
import json
import os
import struct
import threading
import time

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import file_verify as fv

from safetensors_layout import tensor_layout


def sha(data):
    return hashlib.sha256(data).hexdigest()


def write(root, rel, data):
    path = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def entry(rel, data):
    return {"path": rel, "size": len(data), "sha256": sha(data)}


def safetensors(tensors):
    header, offset = tensor_layout(tensors)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


class FakeStatvfs(object):
    def __init__(self, avail_bytes, frsize=4096):
        self.f_bavail = avail_bytes // frsize
        self.f_frsize = frsize


# ------------------------------------------------------------------ hashing, kinds
def test_sha256_file_small_chunks(tmp_path):
    data = os.urandom(10000)
    path = write(tmp_path, "f", data)
    assert fv.sha256_file(path, chunk_size=333) == sha(data)


def test_classify_paths():
    found = fv.classify_paths(["b.py", "model.safetensors", "pytorch_model.bin", "x.PT", "lib/ops.so", "a.pkl",
                               "run.sh", "README.md", "config.json"])
    assert found["pickle_files"] == ["a.pkl", "pytorch_model.bin", "x.PT"]
    assert found["code_files"] == ["b.py", "lib/ops.so", "run.sh"]


# ------------------------------------------------------------------ target tree
def test_missing_model_dir_is_fine(tmp_path):
    assert fv.target_tree_problems(str(tmp_path / "nope"), ["a/b"]) == []


def test_model_dir_that_is_a_file(tmp_path):
    write(tmp_path, "m", b"x")
    assert "not a directory" in fv.target_tree_problems(str(tmp_path / "m"), ["a"])[0]


def test_symlinked_directory_inside_target_is_refused(tmp_path):
    model, outside = tmp_path / "m", tmp_path / "outside"
    model.mkdir()
    outside.mkdir()
    os.symlink(str(outside), str(model / "sub"))
    problems = fv.target_tree_problems(str(model), ["sub/x.txt", "sub/y.txt", "ok.txt"])
    assert problems == ["sub is a symlinked directory inside the model directory"]


def test_nested_symlinked_directory(tmp_path):
    model = tmp_path / "m"
    (model / "a").mkdir(parents=True)
    os.symlink("/tmp", str(model / "a" / "b"))
    assert "a/b is a symlinked directory" in fv.target_tree_problems(str(model), ["a/b/c/d.txt"])[0]


def test_file_where_a_directory_goes(tmp_path):
    model = tmp_path / "m"
    write(model, "sub", b"x")
    assert "sub exists and is not a directory" in fv.target_tree_problems(str(model), ["sub/x"])[0]


def test_symlinked_file_and_partial_are_refused(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    os.symlink("/etc/hostname", str(model / "a.txt"))
    os.symlink("/etc/hostname", str(model / "b.txt.incomplete"))
    problems = fv.target_tree_problems(str(model), ["a.txt", "b.txt"])
    assert problems == ["a.txt is a symlink", "b.txt.incomplete exists and is not a regular file"]


def test_directory_where_a_file_goes(tmp_path):
    model = tmp_path / "m"
    (model / "x").mkdir(parents=True)
    assert fv.target_tree_problems(str(model), ["x"]) == ["x exists and is not a regular file"]


def test_model_dir_itself_may_be_a_symlink(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(str(real), str(tmp_path / "link"))
    assert fv.target_tree_problems(str(tmp_path / "link"), ["a/b.txt"]) == []


# ------------------------------------------------------------------ planning
def hashing_counter():
    calls = []

    def hasher(path):
        calls.append(path)
        return fv.sha256_file(path)
    return calls, hasher


def test_plan_fresh_directory_fetches_everything(tmp_path):
    entries = [entry("a", b"aaa"), entry("sub/b", b"bbbb")]
    plan = fv.plan_files(str(tmp_path / "m"), entries)
    assert [f["path"] for f in plan["fetch"]] == ["a", "sub/b"] and plan["complete"] == []
    assert fv.bytes_to_fetch(plan) == 7


def test_plan_counts_partial_bytes(tmp_path):
    data = b"0123456789"
    write(tmp_path, "a.incomplete", data[:4])
    write(tmp_path, "b.incomplete", b"x" * 50)   # larger than the file: not resumable
    plan = fv.plan_files(str(tmp_path), [entry("a", data), entry("b", b"bb")])
    assert [(f["path"], f["have"]) for f in plan["fetch"]] == [("a", 4), ("b", 0)]
    assert fv.bytes_to_fetch(plan) == 6 + 2


def test_plan_trusts_marker_entries_without_hashing(tmp_path):
    data = b"hello"
    path = write(tmp_path, "a", data)
    known = {"a": dict(entry("a", data), mtime_ns=os.stat(path).st_mtime_ns)}
    calls, hasher = hashing_counter()
    plan = fv.plan_files(str(tmp_path), [entry("a", data)], known, hasher=hasher)
    assert calls == [] and [f["path"] for f in plan["complete"]] == ["a"]
    # full ignores the marker
    plan = fv.plan_files(str(tmp_path), [entry("a", data)], known, full=True, hasher=hasher)
    assert len(calls) == 1 and plan["hashed_files"] == 1 and plan["complete"]


def test_plan_hashes_when_mtime_changed_and_removes_wrong_content(tmp_path):
    good, bad = b"hello", b"HELLO"
    path = write(tmp_path, "a", bad)
    known = {"a": dict(entry("a", good), mtime_ns=os.stat(path).st_mtime_ns - 1)}
    calls, hasher = hashing_counter()
    plan = fv.plan_files(str(tmp_path), [entry("a", good)], known, hasher=hasher)
    assert len(calls) == 1
    assert plan["remove"] == ["a"] and plan["remove_bytes"] == 5 and [f["path"] for f in plan["fetch"]] == ["a"]


def test_plan_wrong_size_is_not_hashed(tmp_path):
    write(tmp_path, "a", b"short")
    calls, hasher = hashing_counter()
    plan = fv.plan_files(str(tmp_path), [entry("a", b"much longer")], hasher=hasher)
    assert calls == [] and plan["remove"] == ["a"]


def test_plan_marker_entry_for_other_content_is_not_trusted(tmp_path):
    old, new = b"old!!", b"new!!"
    path = write(tmp_path, "a", old)
    known = {"a": dict(entry("a", old), mtime_ns=os.stat(path).st_mtime_ns)}
    plan = fv.plan_files(str(tmp_path), [entry("a", new)], known)
    assert plan["remove"] == ["a"]


# ------------------------------------------------------------------ free space
@pytest.mark.parametrize("spec, to_fetch, expected", [
    ("5%", 1000, 50), ("0", 1000, 0), ("0%", 1000, 0), ("1GiB", 5, 2 ** 30), ("500MB", 5, 500 * 10 ** 6),
    ("2k", 1, 2000), ("1.5G", 0, 1500000000), (" 10 % ", 100, 10), ("100", 1, 100),
])
def test_margin_bytes(spec, to_fetch, expected):
    assert fv.margin_bytes(spec, to_fetch) == expected


@pytest.mark.parametrize("spec", ["abc", "5 apples", "-5%", "%", "1XB", "1e9"])
def test_margin_bytes_refused(spec):
    with pytest.raises(fv.VerifyError, match="free_space_margin .* is not valid: expected a percentage"):
        fv.margin_bytes(spec, 1)


def test_check_free_space_refuses_and_explains(tmp_path):
    with pytest.raises(fv.VerifyError) as info:
        fv.check_free_space(str(tmp_path / "a" / "b"), 1000, "10%", statvfs=lambda p: FakeStatvfs(1096, 1))
    msg = info.value.message
    assert str(tmp_path) in msg and "1000 bytes to fetch" in msg and "1100" in msg and "1096 are available" in msg


def test_check_free_space_accepts_and_counts_freed_bytes(tmp_path):
    seen = []

    def statvfs(path):
        seen.append(path)
        return FakeStatvfs(1100, 1)
    res = fv.check_free_space(str(tmp_path / "x" / "y"), 1000, "10%", statvfs=statvfs)
    assert res == {"path": str(tmp_path), "available": 1100, "required": 1100, "margin": 100}
    assert seen == [str(tmp_path)]   # the nearest existing ancestor
    fv.check_free_space(str(tmp_path), 1000, "10%", freed=200, statvfs=lambda p: FakeStatvfs(900, 1))


def test_nothing_to_fetch_needs_no_space(tmp_path):
    assert fv.check_free_space(str(tmp_path), 0, "1GiB", statvfs=lambda p: FakeStatvfs(0, 1))["required"] == 0


# ------------------------------------------------------------------ marker
def marker_for(tmp_path, files_data):
    files = []
    for rel, data in files_data.items():
        path = write(tmp_path, rel, data)
        files.append(dict(entry(rel, data), mtime_ns=os.stat(path).st_mtime_ns))
    return fv.build_marker("o/n", "master", "abc", "http://hub", ["*"], [], files, "0.1.0")


def test_marker_roundtrip(tmp_path):
    marker = marker_for(tmp_path, {"a": b"1", "s/b": b"22"})
    fv.write_marker(str(tmp_path), marker)
    read, reason = fv.read_marker(str(tmp_path))
    assert reason is None and read == marker
    assert read["files_count"] == 2 and read["bytes_total"] == 3
    assert [f["path"] for f in read["files"]] == ["a", "s/b"]
    assert not [n for n in os.listdir(str(tmp_path)) if ".tmp." in n]


def test_marker_write_is_atomic(tmp_path, monkeypatch):
    old = marker_for(tmp_path, {"a": b"1"})
    fv.write_marker(str(tmp_path), old)
    new = marker_for(tmp_path, {"a": b"2"})

    def broken_replace(src, dst, **_dir_fds):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(fv.os, "replace", broken_replace)
    with pytest.raises(OSError):
        fv.write_marker(str(tmp_path), new)
    monkeypatch.undo()
    read, reason = fv.read_marker(str(tmp_path))
    assert read == old                                  # the old marker is intact
    assert not [n for n in os.listdir(str(tmp_path)) if ".tmp." in n]   # the temporary file is gone


def test_remove_marker(tmp_path):
    assert fv.remove_marker(str(tmp_path)) is False
    fv.write_marker(str(tmp_path), marker_for(tmp_path, {"a": b"1"}))
    assert fv.remove_marker(str(tmp_path)) is True
    assert fv.read_marker(str(tmp_path)) == (None, "no completion marker")


@pytest.mark.parametrize("mutate, fragment", [
    (lambda m: m["files"][0].update(sha256="0" * 64), "files_digest does not match"),
    (lambda m: m["files"][0].update(size=99), "files_digest does not match"),
    (lambda m: m["files"].append(dict(m["files"][0])), "twice"),
    (lambda m: m["files"][0].update(path="../x"), "unsafe path"),
    (lambda m: m["files"][0].update(mtime_ns="x"), "mtime_ns"),
    (lambda m: m["files"][0].update(sha256="ABC"), "sha256"),
    (lambda m: m.update(format="other/v9"), "unknown marker format"),
    (lambda m: m.pop("model_id"), "model_id"),
    (lambda m: m.update(include="*"), "include"),
    (lambda m: m.update(files={}), "files is not a list"),
])
def test_invalid_markers(tmp_path, mutate, fragment):
    marker = marker_for(tmp_path, {"a": b"1"})
    mutate(marker)
    with open(fv.marker_path(str(tmp_path)), "w") as handle:
        json.dump(marker, handle)
    read, reason = fv.read_marker(str(tmp_path))
    assert read is None and fragment in reason


def test_unreadable_or_special_marker(tmp_path):
    with open(fv.marker_path(str(tmp_path)), "w") as handle:
        handle.write('{"format": ')
    assert "cannot be read" in fv.read_marker(str(tmp_path))[1]
    os.unlink(fv.marker_path(str(tmp_path)))
    os.mkdir(fv.marker_path(str(tmp_path)))
    assert "not a regular file" in fv.read_marker(str(tmp_path))[1]


def test_manifest_matches_marker(tmp_path):
    marker = marker_for(tmp_path, {"a": b"1", "b": b"2"})
    entries = [entry("b", b"2"), entry("a", b"1")]
    assert fv.manifest_matches_marker(entries, marker)
    assert not fv.manifest_matches_marker(entries[:1], marker)
    assert not fv.manifest_matches_marker([entry("a", b"1"), entry("b", b"3")], marker)


# ------------------------------------------------------------------ quick and full checks
def test_quick_check_uses_size_and_mtime_only(tmp_path):
    marker = marker_for(tmp_path, {"a": b"abc", "b": b"xyz"})
    assert fv.quick_check(str(tmp_path), marker["files"]) == []
    # same size, same mtime, other content: quick cannot see it, full can
    path = os.path.join(str(tmp_path), "b")
    st = os.stat(path)
    with open(path, "r+b") as handle:
        handle.write(b"XYZ")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fv.quick_check(str(tmp_path), marker["files"]) == []
    assert fv.full_check(str(tmp_path), marker["files"]) == ["b does not match its sha256"]


def test_quick_check_problems(tmp_path):
    marker = marker_for(tmp_path, {"a": b"abc", "b": b"xyz", "c": b"c"})
    write(tmp_path, "a", b"abcd")
    os.unlink(os.path.join(str(tmp_path), "b"))
    path = os.path.join(str(tmp_path), "c")
    os.utime(path, ns=(1, 1))
    assert fv.quick_check(str(tmp_path), marker["files"]) == [
        "a has 4 bytes, expected 3", "b is missing", "c was modified after it was verified (mtime changed)"]


def test_verify_fetched(tmp_path):
    write(tmp_path, "good", b"good")
    write(tmp_path, "bad", b"evil")
    write(tmp_path, "short", b"s")
    good, bad = fv.verify_fetched(str(tmp_path), [entry("good", b"good"), entry("bad", b"good"),
                                                  entry("short", b"ss"), entry("missing", b"m")])
    assert [g["path"] for g in good] == ["good"] and "mtime_ns" in good[0]
    reasons = dict(bad)
    assert reasons["bad"].startswith("sha256 ") and "expected " + sha(b"good") in reasons["bad"]
    assert reasons["short"] == "1 bytes, expected 2"
    assert reasons["missing"] == "missing after the download"


# ------------------------------------------------------------------ lock
def test_lock_path_is_outside_the_model_dir(tmp_path):
    root = os.path.realpath(str(tmp_path))
    assert fv.lock_path_for(os.path.join(root, "o", "n")) == os.path.join(root, "o", ".n.llmops-lock")
    (tmp_path / "real" / "n").mkdir(parents=True)
    os.symlink(str(tmp_path / "real" / "n"), str(tmp_path / "link"))
    assert fv.lock_path_for(str(tmp_path / "link")) == os.path.join(root, "real", ".n.llmops-lock")


def test_second_exclusive_lock_times_out_naming_the_holder(tmp_path):
    path = str(tmp_path / ".lock")
    with fv.DirLock(path, 5):
        with pytest.raises(fv.LockTimeout) as info:
            fv.DirLock(path, 0.3, poll=0.05).acquire()
        assert "pid %d" % os.getpid() in str(info.value) and "lock_timeout=0.3" in str(info.value)
    with fv.DirLock(path, 0.1) as lock:   # released: free again
        assert lock.waited == 0.0


def test_waiter_gets_the_lock_when_it_is_released(tmp_path):
    path = str(tmp_path / ".lock")
    holder = fv.DirLock(path, 1).acquire()
    timer = threading.Timer(0.3, holder.release)
    timer.start()
    start = time.monotonic()
    with fv.DirLock(path, 5, poll=0.05) as lock:
        assert lock.waited > 0.1 and time.monotonic() - start < 3
    timer.join()


def test_shared_lock_waits_for_exclusive_and_needs_no_file(tmp_path):
    path = str(tmp_path / ".lock")
    with fv.DirLock(path, 1, shared=True) as lock:
        assert lock.fd is None and not os.path.exists(path)   # read-only: creates nothing
    with fv.DirLock(path, 1):
        with pytest.raises(fv.LockTimeout):
            fv.DirLock(path, 0.2, shared=True, poll=0.05).acquire()
    with fv.DirLock(path, 1, shared=True), fv.DirLock(path, 1, shared=True):
        pass   # two readers at once


# ------------------------------------------------------------------ model directory
def make_model(root, with_marker=True):
    shard1 = safetensors([("a.weight", "BF16", [4, 4]), ("b.weight", "BF16", [4])])
    shard2 = safetensors([("c.weight", "BF16", [8, 4])])
    index = {"metadata": {"total_size": 32 + 8 + 64},
             "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00001-of-00002.safetensors",
                            "c.weight": "model-00002-of-00002.safetensors"}}
    data = {"config.json": b'{"architectures": ["X"], "auto_map": {"AutoModel": "modeling_x.XModel"}}',
            "model-00001-of-00002.safetensors": shard1, "model-00002-of-00002.safetensors": shard2,
            "model.safetensors.index.json": json.dumps(index).encode(), "modeling_x.py": b"print(1)"}
    files = []
    for rel, blob in data.items():
        path = write(root, rel, blob)
        files.append(dict(entry(rel, blob), mtime_ns=os.stat(path).st_mtime_ns))
    if with_marker:
        fv.write_marker(str(root), fv.build_marker("o/n", "master", "abc", "http://h", [], [], files, "0"))
    return data


def test_good_model_dir(tmp_path):
    make_model(tmp_path)
    report = fv.check_model_dir(str(tmp_path), verify="full")
    assert report["problems"] == [] and report["warnings"] == []
    facts = report["facts"]
    assert facts["marker"] == "valid" and facts["model_id"] == "o/n" and facts["revision"] == "abc"
    assert facts["summary"]["params_total"] == 16 + 4 + 32 and facts["summary"]["precision"] == "bf16"
    assert facts["weights"]["safetensors"] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert facts["code_files"] == ["modeling_x.py"] and facts["remote_code"] == ["modeling_x.XModel"]
    assert facts["files"] == 5


def test_model_dir_missing_shard_and_config(tmp_path):
    make_model(tmp_path, with_marker=False)
    os.unlink(os.path.join(str(tmp_path), "model-00002-of-00002.safetensors"))
    os.unlink(os.path.join(str(tmp_path), "config.json"))
    problems = fv.check_model_dir(str(tmp_path), verify="none")["problems"]
    assert "config.json is missing" in problems
    assert any("shard model-00002-of-00002.safetensors is missing" in p for p in problems)


def test_model_dir_truncated_shard(tmp_path):
    data = make_model(tmp_path)
    write(tmp_path, "model-00002-of-00002.safetensors", data["model-00002-of-00002.safetensors"][:-10])
    problems = fv.check_model_dir(str(tmp_path), verify="quick")["problems"]
    assert any(p.startswith("model-00002-of-00002.safetensors:") and "truncated" in p for p in problems)
    size = len(data["model-00002-of-00002.safetensors"])
    assert "model-00002-of-00002.safetensors has %d bytes, expected %d" % (size - 10, size) in problems


def test_model_dir_index_names_a_tensor_the_shard_lacks(tmp_path):
    make_model(tmp_path, with_marker=False)
    write(tmp_path, "model-00002-of-00002.safetensors", safetensors([("other", "BF16", [8, 4])]))
    problems = fv.check_model_dir(str(tmp_path), verify="none")["problems"]
    assert any("lacks 1 tensor(s) the index names, e.g. c.weight" in p for p in problems)


def test_model_dir_stale_total_size_is_a_warning(tmp_path):
    make_model(tmp_path, with_marker=False)
    index = json.loads(open(os.path.join(str(tmp_path), "model.safetensors.index.json")).read())
    index["metadata"]["total_size"] = 1
    write(tmp_path, "model.safetensors.index.json", json.dumps(index).encode())
    report = fv.check_model_dir(str(tmp_path), verify="none")
    assert report["problems"] == [] and "total_size is 1" in report["warnings"][0]


def test_model_dir_without_weights_or_marker(tmp_path):
    write(tmp_path, "config.json", b"{}")
    write(tmp_path, "training_args.bin", b"x")
    write(tmp_path, "x.incomplete", b"x")
    report = fv.check_model_dir(str(tmp_path), verify="quick")
    assert any(p.startswith("no weights found") for p in report["problems"])
    assert any("no completion marker" in p for p in report["problems"])
    assert report["facts"]["marker"] == "absent"
    assert report["warnings"] == ["partial downloads present: x.incomplete"]
    assert report["facts"]["pickle_files"] == ["training_args.bin"]


def test_model_dir_marker_mismatch_full(tmp_path):
    make_model(tmp_path)
    path = os.path.join(str(tmp_path), "modeling_x.py")
    st = os.stat(path)
    write(tmp_path, "modeling_x.py", b"print(2)")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fv.check_model_dir(str(tmp_path), verify="quick")["problems"] == []
    report = fv.check_model_dir(str(tmp_path), verify="full")
    assert report["problems"] == ["modeling_x.py does not match its sha256"]
    assert report["facts"]["marker"] == "mismatch"


def test_model_dir_not_a_directory(tmp_path):
    assert fv.check_model_dir(str(tmp_path / "nope"))["problems"] == ["%s is not a directory" % (tmp_path / "nope")]


def test_gguf_counts_as_weights(tmp_path):
    write(tmp_path, "config.json", b"{}")
    write(tmp_path, "m-Q4_K_M.gguf", b"GGUF")
    report = fv.check_model_dir(str(tmp_path), verify="none")
    assert report["problems"] == [] and report["facts"]["weights"]["gguf"] == ["m-Q4_K_M.gguf"]
