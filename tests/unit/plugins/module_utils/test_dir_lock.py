# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dir_lock: where the lock of a model directory lives, exclusive and shared locks, waiting and timing out."""

import os

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import dir_lock as dl


def test_lock_path_is_outside_the_model_dir(tmp_path):
    root = os.path.realpath(str(tmp_path))
    assert dl.lock_path_for(os.path.join(root, "o", "n")) == os.path.join(root, "o", ".n.llmops-lock")
    (tmp_path / "real" / "n").mkdir(parents=True)
    os.symlink(str(tmp_path / "real" / "n"), str(tmp_path / "link"))
    assert dl.lock_path_for(str(tmp_path / "link")) == os.path.join(root, "real", ".n.llmops-lock")


class Clock(object):
    """Time that passes only when the lock sleeps; ``on_sleep`` runs at each sleep (the holder lets go there)."""

    def __init__(self, on_sleep=None):
        self.now = 100.0
        self.sleeps = []
        self.on_sleep = on_sleep

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep()


def waiting_lock(path, timeout, time_, **kwargs):
    return dl.DirLock(path, timeout, poll=2, clock=time_.clock, sleep=time_.sleep, **kwargs)


def test_second_exclusive_lock_times_out_naming_the_holder(tmp_path):
    path = str(tmp_path / ".lock")
    time_ = Clock()
    with dl.DirLock(path, 5):
        with pytest.raises(dl.LockTimeout) as info:
            waiting_lock(path, 7, time_).acquire()
        message = str(info.value)
        assert "pid %d" % os.getpid() in message and "waited 7 s (lock_timeout=7)" in message
        assert time_.sleeps == [2, 2, 2, 1]   # polls, the last one cut to the time left
    with dl.DirLock(path, 0.1) as lock:   # released: free again
        assert lock.waited == 0.0


def test_waiter_gets_the_lock_when_it_is_released(tmp_path):
    path = str(tmp_path / ".lock")
    holder = dl.DirLock(path, 1).acquire()
    time_ = Clock(on_sleep=holder.release)
    with waiting_lock(path, 5, time_) as lock:
        assert lock.fd is not None and lock.waited == 2 and time_.sleeps == [2]
        assert open(path).read().startswith("pid %d on " % os.getpid())   # the new holder is recorded


def test_shared_lock_waits_for_exclusive_and_needs_no_file(tmp_path):
    path = str(tmp_path / ".lock")
    with dl.DirLock(path, 1, shared=True) as lock:
        assert lock.fd is None and not os.path.exists(path)   # read-only: creates nothing
    with dl.DirLock(path, 1):
        with pytest.raises(dl.LockTimeout):
            waiting_lock(path, 3, Clock(), shared=True).acquire()
    with dl.DirLock(path, 1, shared=True), dl.DirLock(path, 1, shared=True):
        pass   # two readers at once
    holder = dl.DirLock(path, 1).acquire()
    with waiting_lock(path, 5, Clock(on_sleep=holder.release), shared=True) as lock:
        assert lock.waited == 2   # a reader waits for the writer, then reads
