# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dir_lock: where the lock of a model directory lives, exclusive and shared locks, waiting and timing out."""

import os
import threading
import time

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import dir_lock as dl


def test_lock_path_is_outside_the_model_dir(tmp_path):
    root = os.path.realpath(str(tmp_path))
    assert dl.lock_path_for(os.path.join(root, "o", "n")) == os.path.join(root, "o", ".n.llmops-lock")
    (tmp_path / "real" / "n").mkdir(parents=True)
    os.symlink(str(tmp_path / "real" / "n"), str(tmp_path / "link"))
    assert dl.lock_path_for(str(tmp_path / "link")) == os.path.join(root, "real", ".n.llmops-lock")


def test_second_exclusive_lock_times_out_naming_the_holder(tmp_path):
    path = str(tmp_path / ".lock")
    with dl.DirLock(path, 5):
        with pytest.raises(dl.LockTimeout) as info:
            dl.DirLock(path, 0.3, poll=0.05).acquire()
        assert "pid %d" % os.getpid() in str(info.value) and "lock_timeout=0.3" in str(info.value)
    with dl.DirLock(path, 0.1) as lock:   # released: free again
        assert lock.waited == 0.0


def test_waiter_gets_the_lock_when_it_is_released(tmp_path):
    path = str(tmp_path / ".lock")
    holder = dl.DirLock(path, 1).acquire()
    timer = threading.Timer(0.3, holder.release)
    timer.start()
    start = time.monotonic()
    with dl.DirLock(path, 5, poll=0.05) as lock:
        assert lock.waited > 0.1 and time.monotonic() - start < 3
    timer.join()


def test_shared_lock_waits_for_exclusive_and_needs_no_file(tmp_path):
    path = str(tmp_path / ".lock")
    with dl.DirLock(path, 1, shared=True) as lock:
        assert lock.fd is None and not os.path.exists(path)   # read-only: creates nothing
    with dl.DirLock(path, 1):
        with pytest.raises(dl.LockTimeout):
            dl.DirLock(path, 0.2, shared=True, poll=0.05).acquire()
    with dl.DirLock(path, 1, shared=True), dl.DirLock(path, 1, shared=True):
        pass   # two readers at once
