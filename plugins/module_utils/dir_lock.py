# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lock of a model directory: one writer at a time, readers waiting for it.

Standard library only (runs on targets with Python >= 3.8, Linux: ``fcntl.flock``).
"""

import errno
import fcntl
import os
import socket
import time

LOCK_SUFFIX = ".llmops-lock"


class LockError(Exception):
    """The model directory's lock cannot be taken; the message names the lock file and why."""


class LockTimeout(LockError):
    """Another run holds the model directory's lock."""


def lock_path_for(model_dir):
    """The lock file of a model directory: ``<parent>/.<name>.llmops-lock`` (outside the directory, so removing the
    directory does not remove the lock another run is holding). Symlinks are resolved first, so two paths to the
    same directory share one lock."""
    model_dir = os.path.realpath(model_dir)
    return os.path.join(os.path.dirname(model_dir), "." + os.path.basename(model_dir) + LOCK_SUFFIX)


class DirLock(object):
    """``fcntl.flock`` on a lock file, waiting up to ``timeout`` seconds, then raising LockTimeout.

    Exclusive locks create the file and record the holder (pid, host, time) in it for the error message of the next
    waiter. Shared locks (read-only users: check mode, verification) only take the lock if the file exists.
    The lock dies with the process that holds it (and with any child it was handed to).
    """

    def __init__(self, path, timeout, shared=False, poll=0.2, clock=time.monotonic, sleep=time.sleep):
        self.path = path
        self.timeout = timeout
        self.shared = shared
        self.poll = poll
        self.clock = clock
        self.sleep = sleep
        self.fd = None
        self.waited = 0.0

    def acquire(self):
        """Take the lock; raises LockTimeout after ``timeout`` seconds, LockError when the file cannot be locked."""
        try:
            return self._acquire()
        except LockError:
            raise
        except OSError as exc:
            raise LockError("cannot lock %s: %s" % (self.path, exc))

    def _acquire(self):
        if self.shared:
            try:
                self.fd = os.open(self.path, os.O_RDONLY)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    return self
                raise
        else:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        op = (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        start = self.clock()
        refused = False
        while True:
            try:
                fcntl.flock(self.fd, op)
                if refused:
                    self.waited = self.clock() - start
                break
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    self.release()
                    raise
            refused = True
            self.waited = self.clock() - start
            if self.waited >= self.timeout:
                holder = self._holder()
                self.release()
                raise LockTimeout(
                    "another run holds the lock %s on this model directory%s; waited %.0f s (lock_timeout=%s)" % (
                        self.path, (" (%s)" % holder) if holder else "", self.waited, self.timeout))
            self.sleep(min(self.poll, max(self.timeout - self.waited, 0.01)))
        if not self.shared:
            info = "pid %d on %s since %s" % (os.getpid(), socket.gethostname(),
                                              time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, info.encode("utf-8"), 0)
        return self

    def _holder(self):
        try:
            return os.pread(self.fd, 200, 0).decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def release(self):
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
