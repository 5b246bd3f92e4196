# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The completion marker of a model directory, and the checks of the files it vouches for.

Standard library only (runs on targets with Python >= 3.8).

The marker ``<model_dir>/.llmops-complete.json`` is the only thing that says a model directory is complete. It holds
the manifest that was verified (every file's path, size, sha256 and the mtime_ns it had once its hash was checked), is
written to a temporary file, fsynced and renamed into place (:func:`write_marker`), and is removed
(:func:`remove_marker`) before any byte of a (re-)download is written, so a stale marker never vouches for new bytes.
:func:`quick_check` (size and mtime) and :func:`full_check` (size and sha256) compare a directory with the files a
marker lists.
"""

import binascii
import datetime
import errno
import hashlib
import json
import os
import re
import stat

from ansible_collections.llmops.deploy.plugins.module_utils.hub_manifest import unsafe_path_reason
from ansible_collections.llmops.deploy.plugins.module_utils.stream_hash import open_regular, sha256_file
from ansible_collections.llmops.deploy.plugins.module_utils.tree_safety import lstat_or_none

MARKER_NAME = ".llmops-complete.json"
MARKER_FORMAT = "llmops.deploy/model-complete/v1"
# Names a hub listing may never use: they would overwrite or fake the module's own files.
RESERVED_NAMES = (MARKER_NAME,)


def marker_path(model_dir):
    return os.path.join(model_dir, MARKER_NAME)


def files_digest(files):
    """sha256 over the canonical JSON of the (path, size, sha256) triples, sorted by path."""
    triples = sorted([f["path"], f["size"], f["sha256"]] for f in files)
    return hashlib.sha256(json.dumps(triples, separators=(",", ":"), ensure_ascii=True).encode("ascii")).hexdigest()


def build_marker(model_id, revision_requested, revision, endpoint, include, exclude, files, module_version,
                 verified="full", now=None):
    """The marker document for a verified download. ``files`` carry path, size, sha256 and mtime_ns."""
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    clean = [{"path": f["path"], "size": f["size"], "sha256": f["sha256"], "mtime_ns": f["mtime_ns"]}
             for f in sorted(files, key=lambda f: f["path"])]
    return {
        "format": MARKER_FORMAT,
        "model_id": model_id,
        "revision_requested": revision_requested,
        "revision": revision,
        "endpoint": endpoint,
        "include": list(include or []),
        "exclude": list(exclude or []),
        "files_count": len(clean),
        "bytes_total": sum(f["size"] for f in clean),
        "files_digest": files_digest(clean),
        "files": clean,
        "verified": verified,
        "completed_at": now.isoformat(),
        "written_by": "llmops.deploy.modelscope_download %s" % module_version,
    }


def _open_dir(model_dir, dir_fd):
    if dir_fd is not None:
        return dir_fd, False
    return os.open(model_dir, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)), True


def write_marker(model_dir, marker, mode=0o644, dir_fd=None, uid=None, gid=None):
    """Write the marker atomically without following any link: a new temporary file (random name, ``O_EXCL``,
    ``O_NOFOLLOW``) in the model directory, owner and mode set on its descriptor, fsync, rename over the marker's name
    (a rename replaces a name, never writes through a link), fsync of the directory. ``dir_fd``: the model directory
    already opened (tree_safety.TargetDir)."""
    data = json.dumps(marker, indent=1, sort_keys=True).encode("utf-8")
    dfd, owned = _open_dir(model_dir, dir_fd)
    try:
        tmp = "%s.tmp.%d.%s" % (MARKER_NAME, os.getpid(), binascii.hexlify(os.urandom(6)).decode("ascii"))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                     0o600, dir_fd=dfd)
        try:
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if uid is not None or gid is not None:
                    os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
                os.fchmod(fd, mode)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, MARKER_NAME, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            raise
        try:
            os.fsync(dfd)
        except OSError:
            pass
    finally:
        if owned:
            os.close(dfd)
    return marker_path(model_dir)


def remove_marker(model_dir, dir_fd=None):
    """Remove the marker (unlink never follows a link). Returns True when one was there."""
    try:
        dfd, owned = _open_dir(model_dir, dir_fd)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    try:
        try:
            os.unlink(MARKER_NAME, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        try:
            os.fsync(dfd)
        except OSError:
            pass
        return True
    finally:
        if owned:
            os.close(dfd)


def marker_problems(marker):
    """Structural problems of a marker document (empty list when it is well formed)."""
    if not isinstance(marker, dict):
        return ["the marker is not a JSON object"]
    problems = []
    if marker.get("format") != MARKER_FORMAT:
        problems.append("unknown marker format %r" % (marker.get("format"),))
    for key in ("model_id", "revision_requested", "revision"):
        if not isinstance(marker.get(key), str) or not marker.get(key):
            problems.append("marker field %s is missing" % key)
    for key in ("include", "exclude"):
        if not isinstance(marker.get(key), list):
            problems.append("marker field %s is not a list" % key)
    files = marker.get("files")
    if not isinstance(files, list):
        return problems + ["marker field files is not a list"]
    seen = set()
    for item in files:
        if not isinstance(item, dict):
            problems.append("marker file entry %r is not an object" % (item,))
            continue
        path = item.get("path")
        reason = unsafe_path_reason(path, RESERVED_NAMES)
        if reason:
            problems.append("marker lists an unsafe path %r: %s" % (path, reason))
            continue
        if path in seen:
            problems.append("marker lists %s twice" % path)
        seen.add(path)
        size, mtime = item.get("size"), item.get("mtime_ns")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            problems.append("marker entry %s has no valid size" % path)
        if not isinstance(mtime, int) or isinstance(mtime, bool):
            problems.append("marker entry %s has no valid mtime_ns" % path)
        sha = item.get("sha256")
        if not isinstance(sha, str) or not re.match(r"^[0-9a-f]{64}$", sha):
            problems.append("marker entry %s has no valid sha256" % path)
    if not problems and marker.get("files_digest") != files_digest(files):
        problems.append("marker files_digest does not match its file list (edited or damaged)")
    return problems


# The most a completion marker is read of (a marker lists every file of a model: a few MiB at most).
MAX_MARKER_BYTES = 64 * 1024 * 1024


def parse_marker(data):
    """The bytes of a completion marker -> ``(marker, None)`` when well formed, else ``(None, reason)``."""
    try:
        marker = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        return None, "the completion marker cannot be read: %s" % exc
    problems = marker_problems(marker)
    if problems:
        return None, "the completion marker is not valid: %s" % "; ".join(problems)
    return marker, None


def read_marker(model_dir):
    """``(marker, None)`` for a well-formed marker, else ``(None, reason)``."""
    path = marker_path(model_dir)
    st = lstat_or_none(path)
    if st is None:
        return None, "no completion marker"
    if not stat.S_ISREG(st.st_mode):
        return None, "%s is not a regular file" % MARKER_NAME
    try:
        # Not followed if a link was put in its place since the lstat above.
        with open(open_regular(path), "rb") as handle:
            data = handle.read(MAX_MARKER_BYTES)
    except OSError as exc:
        return None, "the completion marker cannot be read: %s" % exc
    return parse_marker(data)


def marker_files(marker):
    """``{path: entry}`` of a marker (empty for None)."""
    if not marker:
        return {}
    return dict((f["path"], f) for f in marker["files"])


def manifest_matches_marker(entries, marker):
    """Does the marker vouch for exactly these manifest entries (same paths, sizes and sha256)?"""
    return files_digest(entries) == marker.get("files_digest") and len(entries) == len(marker.get("files", []))


def _file_problem(target, item):
    """Why ``target`` is not the marker's ``item`` as far as its metadata tells (missing, not a regular file, another
    size), or None."""
    st = lstat_or_none(target)
    if st is None:
        return "%s is missing" % item["path"], None
    if not stat.S_ISREG(st.st_mode):
        return "%s is not a regular file" % item["path"], st
    if st.st_size != item["size"]:
        return "%s has %d bytes, expected %d" % (item["path"], st.st_size, item["size"]), st
    return None, st


def quick_check(model_dir, files):
    """Problems of a quick check: every file exists as a regular file with the marker's size and mtime_ns."""
    problems = []
    for item in files:
        problem, st = _file_problem(os.path.join(model_dir, item["path"]), item)
        if problem is None and item.get("mtime_ns") is not None and st.st_mtime_ns != item["mtime_ns"]:
            problem = "%s was modified after it was verified (mtime changed)" % item["path"]
        if problem:
            problems.append(problem)
    return problems


def full_check(model_dir, files, hasher=sha256_file):
    """Problems of a full check: size and sha256 of every file (mtime is not considered)."""
    problems = []
    for item in files:
        target = os.path.join(model_dir, item["path"])
        problem, _st = _file_problem(target, item)
        if problem is None:
            try:
                if hasher(target) != item["sha256"]:
                    problem = "%s does not match its sha256" % item["path"]
            except (IOError, OSError) as exc:
                # e.g. a link put in its place after the size check: refused, not followed
                problem = "%s cannot be read: %s" % (item["path"], exc.strerror or exc)
        if problem:
            problems.append(problem)
    return problems
