# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""marker: the completion marker written atomically, read back and validated; quick and full checks of the files it
vouches for."""

import json
import os

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import marker as mk

from model_files import entry, write


def marker_for(tmp_path, files_data):
    files = []
    for rel, data in files_data.items():
        path = write(tmp_path, rel, data)
        files.append(dict(entry(rel, data), mtime_ns=os.stat(path).st_mtime_ns))
    return mk.build_marker("o/n", "master", "abc", "http://hub", ["*"], [], files, "0.1.0")


def test_marker_roundtrip(tmp_path):
    marker = marker_for(tmp_path, {"a": b"1", "s/b": b"22"})
    mk.write_marker(str(tmp_path), marker)
    read, reason = mk.read_marker(str(tmp_path))
    assert reason is None and read == marker
    assert read["files_count"] == 2 and read["bytes_total"] == 3
    assert [f["path"] for f in read["files"]] == ["a", "s/b"]
    assert not [n for n in os.listdir(str(tmp_path)) if ".tmp." in n]


def test_marker_write_is_atomic(tmp_path, monkeypatch):
    old = marker_for(tmp_path, {"a": b"1"})
    mk.write_marker(str(tmp_path), old)
    new = marker_for(tmp_path, {"a": b"2"})

    def broken_replace(src, dst, **_dir_fds):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(mk.os, "replace", broken_replace)
    with pytest.raises(OSError):
        mk.write_marker(str(tmp_path), new)
    monkeypatch.undo()
    read, reason = mk.read_marker(str(tmp_path))
    assert read == old                                  # the old marker is intact
    assert not [n for n in os.listdir(str(tmp_path)) if ".tmp." in n]   # the temporary file is gone


def test_remove_marker(tmp_path):
    assert mk.remove_marker(str(tmp_path)) is False
    mk.write_marker(str(tmp_path), marker_for(tmp_path, {"a": b"1"}))
    assert mk.remove_marker(str(tmp_path)) is True
    assert mk.read_marker(str(tmp_path)) == (None, "no completion marker")


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
    with open(mk.marker_path(str(tmp_path)), "w") as handle:
        json.dump(marker, handle)
    read, reason = mk.read_marker(str(tmp_path))
    assert read is None and fragment in reason


def test_unreadable_or_special_marker(tmp_path):
    with open(mk.marker_path(str(tmp_path)), "w") as handle:
        handle.write('{"format": ')
    assert "cannot be read" in mk.read_marker(str(tmp_path))[1]
    os.unlink(mk.marker_path(str(tmp_path)))
    os.mkdir(mk.marker_path(str(tmp_path)))
    assert "not a regular file" in mk.read_marker(str(tmp_path))[1]


def test_manifest_matches_marker(tmp_path):
    marker = marker_for(tmp_path, {"a": b"1", "b": b"2"})
    entries = [entry("b", b"2"), entry("a", b"1")]
    assert mk.manifest_matches_marker(entries, marker)
    assert not mk.manifest_matches_marker(entries[:1], marker)
    assert not mk.manifest_matches_marker([entry("a", b"1"), entry("b", b"3")], marker)


# ------------------------------------------------------------------ quick and full checks
def test_quick_check_uses_size_and_mtime_only(tmp_path):
    marker = marker_for(tmp_path, {"a": b"abc", "b": b"xyz"})
    assert mk.quick_check(str(tmp_path), marker["files"]) == []
    # same size, same mtime, other content: quick cannot see it, full can
    path = os.path.join(str(tmp_path), "b")
    st = os.stat(path)
    with open(path, "r+b") as handle:
        handle.write(b"XYZ")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert mk.quick_check(str(tmp_path), marker["files"]) == []
    assert mk.full_check(str(tmp_path), marker["files"]) == ["b does not match its sha256"]


def test_quick_check_problems(tmp_path):
    marker = marker_for(tmp_path, {"a": b"abc", "b": b"xyz", "c": b"c"})
    write(tmp_path, "a", b"abcd")
    os.unlink(os.path.join(str(tmp_path), "b"))
    path = os.path.join(str(tmp_path), "c")
    os.utime(path, ns=(1, 1))
    assert mk.quick_check(str(tmp_path), marker["files"]) == [
        "a has 4 bytes, expected 3", "b is missing", "c was modified after it was verified (mtime changed)"]


def _swap_for_link_after_lstat(monkeypatch, path, outside):
    """Let the next lstat of ``path`` see the regular file, then put a link to ``outside`` in its place (the race a
    reader must not lose: the link must not be followed)."""
    real = mk.lstat_or_none

    def racing(target):
        st = real(target)
        if target == path and st is not None:
            os.unlink(path)
            os.symlink(outside, path)
        return st

    monkeypatch.setattr(mk, "lstat_or_none", racing)


def test_a_marker_swapped_for_a_link_after_the_lstat_is_not_followed(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    marker = marker_for(model, {"a": b"1"})
    mk.write_marker(str(model), marker)
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(marker))    # a well-formed marker, outside the model directory
    _swap_for_link_after_lstat(monkeypatch, mk.marker_path(str(model)), str(outside))
    read, reason = mk.read_marker(str(model))
    assert read is None and "cannot be read" in reason


def test_a_file_swapped_for_a_link_after_the_size_check_is_not_hashed(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    marker = marker_for(model, {"a": b"abc"})
    outside = tmp_path / "outside"
    outside.write_bytes(b"abc")               # the very bytes the marker lists: following the link would pass
    target = os.path.join(str(model), "a")
    real = mk._file_problem

    def racing(path, item):
        result = real(path, item)
        if path == target:
            os.unlink(target)
            os.symlink(str(outside), target)
        return result

    monkeypatch.setattr(mk, "_file_problem", racing)
    problems = mk.full_check(str(model), marker["files"])
    assert len(problems) == 1 and problems[0].startswith("a cannot be read")
