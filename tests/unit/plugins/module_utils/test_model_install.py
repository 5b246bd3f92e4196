# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_install: the switch from a verified staging directory to the model directory; the files' data and the
renames are on disk before the marker that vouches for them."""

import os
import stat

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import marker as mk
from ansible_collections.llmops.deploy.plugins.module_utils import model_install

from model_files import entry


def stage(tmp_path, files):
    """A staging directory holding ``files`` ({rel: bytes}); returns (staging dir, staged entries)."""
    staging = tmp_path / "staging"
    staged = []
    for rel, data in files.items():
        path = staging / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        staged.append(dict(entry(rel, data), mtime_ns=os.stat(str(path)).st_mtime_ns))
    return str(staging), staged


def test_data_and_renames_are_synced_before_the_marker(tmp_path, monkeypatch):
    files = {"config.json": b"{}", "weights/model-00001.safetensors": b"w" * 4096, "weights/model-00002.bin": b"x"}
    staging, staged = stage(tmp_path, files)
    model_dir = str(tmp_path / "model")
    os.mkdir(model_dir)   # the callers create it (with its owner and mode) before the switch
    marker = mk.build_marker("o/n", "master", "abc", "http://hub", ["*"], [], staged, "0.1.0")
    events = []
    real_fdatasync, real_fsync, real_write_marker = os.fdatasync, os.fsync, model_install.write_marker

    def fdatasync(fd):
        events.append(("data", os.readlink("/proc/self/fd/%d" % fd)))
        return real_fdatasync(fd)

    def fsync(fd):
        events.append(("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file", os.readlink("/proc/self/fd/%d" % fd)))
        return real_fsync(fd)

    def write_marker(*args, **kwargs):
        events.append(("marker", None))
        return real_write_marker(*args, **kwargs)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(model_install, "write_marker", write_marker)
    model_install.install_verified(model_dir, staging, sorted(files), [], staged, marker)

    marker_at = events.index(("marker", None))
    synced = sorted(path for kind, path in events[:marker_at] if kind == "data")
    assert synced == sorted(os.path.join(staging, rel) for rel in files)   # every file's data, from staging
    dirs = set(path for kind, path in events[:marker_at] if kind == "dir")
    assert {model_dir, os.path.join(model_dir, "weights")} <= dirs         # every directory that got a file
    assert mk.read_marker(model_dir)[1] is None
    for rel, data in files.items():
        with open(os.path.join(model_dir, rel), "rb") as handle:
            assert handle.read() == data


def test_sync_files_syncs_every_file_and_never_follows_a_link(tmp_path, monkeypatch):
    root = tmp_path / "staging"
    root.mkdir()
    names = ["f%02d" % index for index in range(10)]
    for name in names:
        (root / name).write_bytes(name.encode())
    seen = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: seen.append(os.readlink("/proc/self/fd/%d" % fd)) or real(fd))
    model_install.sync_files(str(root), names, workers=3)
    assert sorted(seen) == sorted(str(root / name) for name in names)
    outside = tmp_path / "outside"
    outside.write_bytes(b"not ours")
    (root / "link").symlink_to(outside)
    with pytest.raises(OSError):
        model_install.sync_files(str(root), ["f00", "link"], workers=2)
    model_install.sync_files(str(root), [])   # nothing to do


def test_background_sync_syncs_what_it_is_handed_and_leaks_no_descriptor(tmp_path, monkeypatch):
    path = tmp_path / "weights.bin"
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"w" * 1024)
    seen = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda dup: seen.append(os.readlink("/proc/self/fd/%d" % dup)) or real(dup))
    before = len(os.listdir("/proc/self/fd"))
    with model_install.BackgroundSync(backlog=2) as syncer:
        for _index in range(50):   # more than the backlog: the surplus is dropped, never waited for
            syncer.sync_fd(fd)
    os.close(fd)
    assert seen and set(seen) == {str(path)} and len(seen) <= 50
    assert len(os.listdir("/proc/self/fd")) == before - 1   # only the test's own descriptor is gone
