# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The switch from a verified staging directory to the model directory, shared by every way a model arrives (a hub
download, a bundle import).

Standard library only (runs on targets with Python >= 3.8, Linux). Until the first rename the previous revision is
untouched, its completion marker included; then the old marker is removed, the verified files are renamed in through
directory descriptors (tree_safety.TargetDir: no link is ever followed), the tree is checked again, and the new marker
is written last.

The marker says the files are there: so the files' data is on disk before it is. Every staged file is synced
(``fdatasync``, several at once) before the switch, and every directory that received a file after the renames,
before the marker is written (and synced, with its directory, by ``marker.write_marker``). Without that, a power cut
shortly after a run could leave a durable marker over files whose data never reached the disk.
"""

import os
import threading

from ansible_collections.llmops.deploy.plugins.module_utils.marker import (
    MARKER_NAME, quick_check, remove_marker, write_marker)
from ansible_collections.llmops.deploy.plugins.module_utils.stream_hash import in_threads
from ansible_collections.llmops.deploy.plugins.module_utils.tree_safety import (
    PARTIAL_SUFFIX, TargetDir, target_tree_problems)

_SRC_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_SYNC_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
#: Files synced at once: the disk queue, not the CPU, is what they wait on.
SYNC_WORKERS = 4
#: Bytes written to a file between two syncs while it arrives (a download, a peer receive, a bundle import), so that
#: its data reaches the disk during the transfer and the sync before the marker finds little left to write.
SYNC_EVERY = 64 * 1024 * 1024


class InstallError(Exception):
    """The switch was refused. ``switched``: whether the previous revision had already been touched."""

    def __init__(self, message, switched):
        super(InstallError, self).__init__(message)
        self.message = message
        self.switched = switched


def install_verified(model_dir, staging_files, paths, complete, staged, marker, uid=None, gid=None,
                     file_mode=None, dir_mode=None):
    """Move ``staged`` entries (verified, under ``staging_files``) into ``model_dir`` and write ``marker`` last.

    ``paths``: every path of the new revision; ``complete``: entries already in place (with their mtime_ns), checked
    again before the switch. Raises InstallError or tree_safety.TreeError (before the switch when a link is in the
    way) or OSError.
    """
    with TargetDir(model_dir, create=True) as target:
        for rel in paths:
            target.dir_fd(rel.rpartition("/")[0], dir_mode, uid, gid)
        problems = target_tree_problems(model_dir, paths) + quick_check(model_dir, complete)
        if problems:
            raise InstallError("the model directory changed while the files were prepared (%s); the previous files "
                               "were left as they were" % "; ".join(problems[:20]), False)
        sync_files(staging_files, [item["path"] for item in staged])
        remove_marker(model_dir, dir_fd=target.fds[""])
        for item in staged:
            parent_rel, _sep, name = item["path"].rpartition("/")
            src = os.open(os.path.join(staging_files, parent_rel) if parent_rel else staging_files, _SRC_FLAGS)
            try:
                target.install(src, name, item["path"], dir_mode, uid, gid)
            finally:
                os.close(src)
        for rel in paths:
            target.unlink_file(rel + PARTIAL_SUFFIX)   # stale partials of older versions of the download module
        problems = target_tree_problems(model_dir, paths) + quick_check(model_dir, marker["files"])
        if problems:
            raise InstallError("the model directory changed while the files were moved in (%s); no completion "
                               "marker was written" % "; ".join(problems[:20]), True)
        if staged:
            for fd in set(target.fds.values()) - set([None]):   # the renames, before the marker relying on them
                os.fsync(fd)
        write_marker(model_dir, marker, mode=0o644 if file_mode is None else file_mode, dir_fd=target.fds[""],
                     uid=uid, gid=gid)


class BackgroundSync(object):
    """Writes files' data to disk in a thread of its own while the caller goes on writing, so that the sync before
    the marker (:func:`sync_files`) finds little left to write. :meth:`sync_fd` takes a descriptor of a file being
    written (a duplicate is synced, then closed); at most ``backlog`` requests wait, more are dropped (the final sync
    covers them). Errors are ignored here: :func:`sync_files` reports them. A context manager."""

    def __init__(self, backlog=8):
        import queue   # pylint: disable=import-outside-toplevel
        self._queue = queue.Queue(backlog)
        self._full = queue.Full
        self._thread = threading.Thread(target=self._run, name="llmops-background-sync")
        self._thread.daemon = True
        self._thread.start()

    def _run(self):
        for fd in iter(self._queue.get, None):
            try:
                os.fdatasync(fd)
            except OSError:
                pass
            finally:
                os.close(fd)

    def sync_fd(self, fd):
        dup = os.dup(fd)
        try:
            self._queue.put_nowait(dup)
        except self._full:
            os.close(dup)

    def close(self):
        self._queue.put(None)
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def sync_files(root, paths, workers=SYNC_WORKERS):
    """Write the data of every file ``paths`` (relative to ``root``, a private directory) to disk (``fdatasync``),
    ``workers`` files at once. Each is opened with ``O_NOFOLLOW``. Raises the first OSError met."""
    pending = list(paths)
    lock = threading.Lock()
    errors = []

    def work():
        while not errors:
            with lock:
                if not pending:
                    return
                rel = pending.pop()
            try:
                fd = os.open(os.path.join(root, rel), _SYNC_FLAGS)
                try:
                    os.fdatasync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                errors.append(exc)

    in_threads(work, min(workers, len(pending)), "llmops-sync")
    if errors:
        raise errors[0]


def sync_attributes(model_dir, paths, uid=None, gid=None, file_mode=None, dir_mode=None, check=False):
    """Owner/group/mode of the model directory, its subdirectories, the files and the marker, through descriptors
    opened without following links. Returns True when something differs (``check``) or was changed. Raises
    tree_safety.TreeError when a link is in the way, OSError otherwise."""
    if uid is None and gid is None and file_mode is None and dir_mode is None:
        return False
    dirs = set([""])
    for rel in paths:
        parts = rel.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
    changed = False
    with TargetDir(model_dir, create=False) as target:
        for rel in sorted(dirs):
            if target.attributes(rel, uid, gid, dir_mode, is_dir=True, check=check):
                changed = True
        for rel in list(paths) + [MARKER_NAME]:
            if target.attributes(rel, uid, gid, file_mode, check=check):
                changed = True
    return changed
