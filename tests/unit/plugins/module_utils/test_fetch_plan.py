# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fetch_plan: which files a download must fetch (marker trusted, partial bytes counted, wrong files removed) and
the check of the fetched ones."""

import os

from ansible_collections.llmops.deploy.plugins.module_utils import fetch_plan as fp
from ansible_collections.llmops.deploy.plugins.module_utils.stream_hash import sha256_file

from model_files import entry, sha, write


def hashing_counter():
    calls = []

    def hasher(path):
        calls.append(path)
        return sha256_file(path)
    return calls, hasher


def test_plan_fresh_directory_fetches_everything(tmp_path):
    entries = [entry("a", b"aaa"), entry("sub/b", b"bbbb")]
    plan = fp.plan_files(str(tmp_path / "m"), entries)
    assert [f["path"] for f in plan["fetch"]] == ["a", "sub/b"] and plan["complete"] == []
    assert fp.bytes_to_fetch(plan) == 7


def test_plan_counts_partial_bytes(tmp_path):
    data = b"0123456789"
    write(tmp_path, "a.incomplete", data[:4])
    write(tmp_path, "b.incomplete", b"x" * 50)   # larger than the file: not resumable
    plan = fp.plan_files(str(tmp_path), [entry("a", data), entry("b", b"bb")])
    assert [(f["path"], f["have"]) for f in plan["fetch"]] == [("a", 4), ("b", 0)]
    assert fp.bytes_to_fetch(plan) == 6 + 2


def test_plan_trusts_marker_entries_without_hashing(tmp_path):
    data = b"hello"
    path = write(tmp_path, "a", data)
    known = {"a": dict(entry("a", data), mtime_ns=os.stat(path).st_mtime_ns)}
    calls, hasher = hashing_counter()
    plan = fp.plan_files(str(tmp_path), [entry("a", data)], known, hasher=hasher)
    assert calls == [] and [f["path"] for f in plan["complete"]] == ["a"]
    # full ignores the marker
    plan = fp.plan_files(str(tmp_path), [entry("a", data)], known, full=True, hasher=hasher)
    assert len(calls) == 1 and plan["hashed_files"] == 1 and plan["complete"]


def test_plan_hashes_when_mtime_changed_and_removes_wrong_content(tmp_path):
    good, bad = b"hello", b"HELLO"
    path = write(tmp_path, "a", bad)
    known = {"a": dict(entry("a", good), mtime_ns=os.stat(path).st_mtime_ns - 1)}
    calls, hasher = hashing_counter()
    plan = fp.plan_files(str(tmp_path), [entry("a", good)], known, hasher=hasher)
    assert len(calls) == 1
    assert plan["remove"] == ["a"] and plan["remove_bytes"] == 5 and [f["path"] for f in plan["fetch"]] == ["a"]


def test_plan_wrong_size_is_not_hashed(tmp_path):
    write(tmp_path, "a", b"short")
    calls, hasher = hashing_counter()
    plan = fp.plan_files(str(tmp_path), [entry("a", b"much longer")], hasher=hasher)
    assert calls == [] and plan["remove"] == ["a"]


def test_plan_marker_entry_for_other_content_is_not_trusted(tmp_path):
    old, new = b"old!!", b"new!!"
    path = write(tmp_path, "a", old)
    known = {"a": dict(entry("a", old), mtime_ns=os.stat(path).st_mtime_ns)}
    plan = fp.plan_files(str(tmp_path), [entry("a", new)], known)
    assert plan["remove"] == ["a"]


def test_verify_fetched(tmp_path):
    write(tmp_path, "good", b"good")
    write(tmp_path, "bad", b"evil")
    write(tmp_path, "short", b"s")
    good, bad = fp.verify_fetched(str(tmp_path), [entry("good", b"good"), entry("bad", b"good"),
                                                  entry("short", b"ss"), entry("missing", b"m")])
    assert [g["path"] for g in good] == ["good"] and "mtime_ns" in good[0]
    reasons = dict(bad)
    assert reasons["bad"].startswith("sha256 ") and "expected " + sha(b"good") in reasons["bad"]
    assert reasons["short"] == "1 bytes, expected 2"
    assert reasons["missing"] == "missing after the download"
