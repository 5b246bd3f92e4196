# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verification of model files on disk: hashing, the completion marker, the directory lock, free-space planning and
the checks of a model directory (config, weights, shards, safetensors headers).

Standard library only (runs on targets with Python >= 3.8); nothing here imports or executes a file of a model.

The completion marker ``<model_dir>/.llmops-complete.json`` is the only thing that says a model directory is
complete. It holds the manifest that was verified (every file's path, size, sha256 and the mtime_ns it had once its
hash was checked), is written to a temporary file, fsynced and renamed into place, and is removed before any byte of
a (re-)download is written, so a stale marker never vouches for new bytes.
"""

import binascii
import datetime
import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import stat
import time

from ansible_collections.llmops.deploy.plugins.module_utils import host_resources
from ansible_collections.llmops.deploy.plugins.module_utils.hub_manifest import unsafe_path_reason
from ansible_collections.llmops.deploy.plugins.module_utils.safetensors_header import (
    HeaderError, read_header, summarize_headers)

MARKER_NAME = ".llmops-complete.json"
MARKER_FORMAT = "llmops.deploy/model-complete/v1"
LOCK_SUFFIX = ".llmops-lock"
# Names a hub listing may never use: they would overwrite or fake the module's own files.
RESERVED_NAMES = (MARKER_NAME,)
PARTIAL_SUFFIX = ".incomplete"

HASH_CHUNK = 8 * 1024 * 1024

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyd", ".pyx", ".so", ".dylib", ".dll", ".exe", ".sh", ".bash", ".bat",
                 ".cmd", ".ps1", ".js", ".ipynb")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


class VerifyError(Exception):
    """A verification step cannot go on; ``problems`` lists every reason."""

    def __init__(self, message, problems=None):
        super(VerifyError, self).__init__(message)
        self.message = message
        self.problems = list(problems or [])


class LockError(Exception):
    """The model directory's lock cannot be taken; the message names the lock file and why."""


class LockTimeout(LockError):
    """Another run holds the model directory's lock."""


# ---------------------------------------------------------------------------------------------------------------
# Hashing and file kinds
# ---------------------------------------------------------------------------------------------------------------
def sha256_file(path, chunk_size=HASH_CHUNK):
    """Lowercase hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def is_pickle_file(path):
    """Weights stored as Python pickles (loading them can execute code)."""
    return path.lower().endswith(PICKLE_SUFFIXES)


def is_code_file(path):
    """Repository files that are code (Python, native libraries, scripts, notebooks)."""
    return path.lower().endswith(CODE_SUFFIXES)


def classify_paths(paths):
    """``{'pickle_files': [...], 'code_files': [...]}`` for a list of repository paths (sorted)."""
    paths = sorted(paths)
    return {
        "pickle_files": [p for p in paths if is_pickle_file(p)],
        "code_files": [p for p in paths if is_code_file(p)],
    }


# ---------------------------------------------------------------------------------------------------------------
# The target tree
# ---------------------------------------------------------------------------------------------------------------
def lstat_or_none(path):
    """``os.lstat(path)``, or None when the path (or a directory on the way) does not exist."""
    try:
        return os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def target_tree_problems(model_dir, paths):
    """Reasons the model directory cannot safely receive ``paths``, before any byte is written.

    Refused: the model directory existing as a non-directory; a symlink (or non-directory) in place of any directory
    inside the model directory; a symlink or directory where a file goes; a symlinked ``<file>.incomplete`` (the SDK
    appends to it). The model directory itself may be a symlink to a directory (an administrator's choice).
    """
    problems = []
    st = None
    try:
        st = os.stat(model_dir)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            problems.append("%s: cannot be read: %s" % (model_dir, exc.strerror))
            return problems
    if st is None:
        return problems
    if not stat.S_ISDIR(st.st_mode):
        return ["%s exists and is not a directory" % model_dir]
    checked_dirs = {}
    for rel in paths:
        parts = rel.split("/")
        for i in range(1, len(parts)):
            rel_dir = "/".join(parts[:i])
            if rel_dir in checked_dirs:
                if checked_dirs[rel_dir]:
                    break
                continue
            dst = lstat_or_none(os.path.join(model_dir, rel_dir))
            bad = None
            if dst is not None and stat.S_ISLNK(dst.st_mode):
                bad = "%s is a symlinked directory inside the model directory" % rel_dir
            elif dst is not None and not stat.S_ISDIR(dst.st_mode):
                bad = "%s exists and is not a directory (needed for %s)" % (rel_dir, rel)
            checked_dirs[rel_dir] = bad
            if bad:
                problems.append(bad)
                break
            if dst is None:
                # Nothing below a missing directory exists yet.
                break
        else:
            fst = lstat_or_none(os.path.join(model_dir, rel))
            if fst is not None and stat.S_ISLNK(fst.st_mode):
                problems.append("%s is a symlink" % rel)
            elif fst is not None and not stat.S_ISREG(fst.st_mode):
                problems.append("%s exists and is not a regular file" % rel)
            pst = lstat_or_none(os.path.join(model_dir, rel + PARTIAL_SUFFIX))
            if pst is not None and not stat.S_ISREG(pst.st_mode):
                problems.append("%s%s exists and is not a regular file" % (rel, PARTIAL_SUFFIX))
    return problems


# ---------------------------------------------------------------------------------------------------------------
# Planning: which files are complete, which to fetch
# ---------------------------------------------------------------------------------------------------------------
def plan_files(model_dir, entries, marker_files=None, full=False, hasher=sha256_file, partial_root=None):
    """Decide, file by file, what a download must do.

    A file is *complete* when its marker entry matches the manifest (size, sha256) and its size and mtime_ns match the
    marker (quick; skipped when ``full``), or else when its size matches and its sha256 is recomputed and matches.
    Everything else is *fetched*; a wrong file in place is listed in ``remove`` (to delete before fetching) and the
    bytes of an SDK partial file (``<file>.incomplete`` under ``partial_root``, the private staging directory the
    download goes to; default ``model_dir``) are counted as already ``have``.

    Returns ``{'complete': [entry + mtime_ns], 'fetch': [entry + have], 'remove': [path], 'remove_bytes': int,
    'hashed_files': int, 'hashed_bytes': int}``.
    """
    marker_files = marker_files or {}
    plan = {"complete": [], "fetch": [], "remove": [], "remove_bytes": 0, "hashed_files": 0, "hashed_bytes": 0}
    for entry in entries:
        target = os.path.join(model_dir, entry["path"])
        st = lstat_or_none(target)
        if st is not None and stat.S_ISREG(st.st_mode):
            known = marker_files.get(entry["path"])
            if (not full and known is not None and known.get("sha256") == entry["sha256"]
                    and known.get("size") == entry["size"] and st.st_size == entry["size"]
                    and known.get("mtime_ns") == st.st_mtime_ns):
                plan["complete"].append(dict(entry, mtime_ns=st.st_mtime_ns))
                continue
            if st.st_size == entry["size"]:
                plan["hashed_files"] += 1
                plan["hashed_bytes"] += st.st_size
                if hasher(target) == entry["sha256"]:
                    plan["complete"].append(dict(entry, mtime_ns=st.st_mtime_ns))
                    continue
            plan["remove"].append(entry["path"])
            plan["remove_bytes"] += st.st_size
        partial = lstat_or_none(os.path.join(partial_root or model_dir, entry["path"]) + PARTIAL_SUFFIX)
        have = 0
        if partial is not None and stat.S_ISREG(partial.st_mode) and partial.st_size <= entry["size"]:
            have = partial.st_size
        plan["fetch"].append(dict(entry, have=have))
    return plan


def bytes_to_fetch(plan):
    """Bytes still to come over the network for a plan (partial files resume)."""
    return sum(item["size"] - item["have"] for item in plan["fetch"])


# ---------------------------------------------------------------------------------------------------------------
# Free space
# ---------------------------------------------------------------------------------------------------------------
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10 ** 3, "kb": 10 ** 3, "m": 10 ** 6, "mb": 10 ** 6, "g": 10 ** 9, "gb": 10 ** 9,
          "t": 10 ** 12, "tb": 10 ** 12, "p": 10 ** 15, "pb": 10 ** 15, "ki": 2 ** 10, "kib": 2 ** 10,
          "mi": 2 ** 20, "mib": 2 ** 20, "gi": 2 ** 30, "gib": 2 ** 30, "ti": 2 ** 40, "tib": 2 ** 40,
          "pi": 2 ** 50, "pib": 2 ** 50}
MARGIN_ACCEPTED = "a percentage of the bytes to fetch such as '5%', or a size such as '1GiB', '500MB' or '0'"


def margin_bytes(spec, to_fetch):
    """The free-space margin in bytes: ``'5%'`` of ``to_fetch`` or an absolute size (``'1GiB'``, ``'500MB'``)."""
    text = str(spec).strip()
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            pct = -1.0
        if not 0 <= pct <= 1000:
            raise VerifyError("free_space_margin %r is not valid: expected %s" % (spec, MARGIN_ACCEPTED))
        return int(to_fetch * pct / 100.0 + 0.5)
    match = _SIZE_RE.match(text)
    if not match or (match.group(2) or "").lower() not in _UNITS:
        raise VerifyError("free_space_margin %r is not valid: expected %s" % (spec, MARGIN_ACCEPTED))
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])


def free_bytes(path, statvfs=None):
    """Bytes an unprivileged writer may still use on the filesystem holding ``path`` (or its nearest ancestor)."""
    where = host_resources.nearest_existing_dir(path)
    st = (statvfs or os.statvfs)(where)
    return where, st.f_bavail * st.f_frsize


def check_free_space(path, to_fetch, margin_spec, freed=0, statvfs=None):
    """Raise VerifyError when the filesystem of ``path`` lacks ``to_fetch`` + margin bytes (``freed``: bytes that
    will be deleted first). Returns ``{'path', 'available', 'required', 'margin'}``."""
    margin = margin_bytes(margin_spec, to_fetch)
    where, available = free_bytes(path, statvfs)
    required = to_fetch + margin if to_fetch else 0
    if required > available + freed:
        raise VerifyError(
            "not enough free disk space on %s: %d bytes to fetch plus a margin of %d bytes (free_space_margin=%s) "
            "need %d bytes, %d are available%s; nothing was downloaded" % (
                where, to_fetch, margin, margin_spec, required, available,
                (" (+%d freed by replacing wrong files)" % freed) if freed else ""))
    return {"path": where, "available": available, "required": required, "margin": margin}


# ---------------------------------------------------------------------------------------------------------------
# Marker
# ---------------------------------------------------------------------------------------------------------------
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


def read_marker(model_dir):
    """``(marker, None)`` for a well-formed marker, else ``(None, reason)``."""
    path = marker_path(model_dir)
    st = lstat_or_none(path)
    if st is None:
        return None, "no completion marker"
    if not stat.S_ISREG(st.st_mode):
        return None, "%s is not a regular file" % MARKER_NAME
    try:
        with open(path, "rb") as handle:
            marker = json.loads(handle.read(64 * 1024 * 1024).decode("utf-8"))
    except (OSError, ValueError) as exc:
        return None, "the completion marker cannot be read: %s" % exc
    problems = marker_problems(marker)
    if problems:
        return None, "the completion marker is not valid: %s" % "; ".join(problems)
    return marker, None


def marker_files(marker):
    """``{path: entry}`` of a marker (empty for None)."""
    if not marker:
        return {}
    return dict((f["path"], f) for f in marker["files"])


def manifest_matches_marker(entries, marker):
    """Does the marker vouch for exactly these manifest entries (same paths, sizes and sha256)?"""
    return files_digest(entries) == marker.get("files_digest") and len(entries) == len(marker.get("files", []))


def quick_check(model_dir, files):
    """Problems of a quick check: every file exists as a regular file with the marker's size and mtime_ns."""
    problems = []
    for item in files:
        st = lstat_or_none(os.path.join(model_dir, item["path"]))
        if st is None:
            problems.append("%s is missing" % item["path"])
        elif not stat.S_ISREG(st.st_mode):
            problems.append("%s is not a regular file" % item["path"])
        elif st.st_size != item["size"]:
            problems.append("%s has %d bytes, expected %d" % (item["path"], st.st_size, item["size"]))
        elif item.get("mtime_ns") is not None and st.st_mtime_ns != item["mtime_ns"]:
            problems.append("%s was modified after it was verified (mtime changed)" % item["path"])
    return problems


def full_check(model_dir, files, hasher=sha256_file):
    """Problems of a full check: size and sha256 of every file (mtime is not considered)."""
    problems = []
    for item in files:
        target = os.path.join(model_dir, item["path"])
        st = lstat_or_none(target)
        if st is None:
            problems.append("%s is missing" % item["path"])
        elif not stat.S_ISREG(st.st_mode):
            problems.append("%s is not a regular file" % item["path"])
        elif st.st_size != item["size"]:
            problems.append("%s has %d bytes, expected %d" % (item["path"], st.st_size, item["size"]))
        elif hasher(target) != item["sha256"]:
            problems.append("%s does not match its sha256" % item["path"])
    return problems


def verify_fetched(model_dir, entries, hasher=sha256_file, digests=None):
    """Check size and sha256 of freshly fetched files. Returns ``(good entries with mtime_ns, bad [(path, why)])``.

    ``digests``: ``{path: sha256}`` already computed for these very files (hashed while they arrived, or in
    parallel); a path missing from it is hashed here. Size, kind and mtime are always checked here.
    """
    digests = digests or {}
    good, bad = [], []
    for entry in entries:
        target = os.path.join(model_dir, entry["path"])
        st = lstat_or_none(target)
        if st is None:
            bad.append((entry["path"], "missing after the download"))
        elif not stat.S_ISREG(st.st_mode):
            bad.append((entry["path"], "not a regular file"))
        elif st.st_size != entry["size"]:
            bad.append((entry["path"], "%d bytes, expected %d" % (st.st_size, entry["size"])))
        else:
            actual = digests.get(entry["path"]) or hasher(target)
            if actual != entry["sha256"]:
                bad.append((entry["path"], "sha256 %s, expected %s" % (actual, entry["sha256"])))
            else:
                st2 = os.lstat(target)
                if st2.st_size != st.st_size or st2.st_mtime_ns != st.st_mtime_ns:
                    bad.append((entry["path"], "changed while it was being verified"))
                else:
                    good.append(dict(entry, mtime_ns=st.st_mtime_ns))
    return good, bad


# ---------------------------------------------------------------------------------------------------------------
# Lock
# ---------------------------------------------------------------------------------------------------------------
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
        while True:
            try:
                fcntl.flock(self.fd, op)
                if self.waited:
                    self.waited = self.clock() - start
                break
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    self.release()
                    raise
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


# ---------------------------------------------------------------------------------------------------------------
# A model directory on its own (model_verify)
# ---------------------------------------------------------------------------------------------------------------
def list_files(model_dir):
    """Every regular file under ``model_dir`` as a sorted repo-relative path (symlinks are not followed)."""
    result = []
    for root, dirs, files in os.walk(model_dir, followlinks=False):
        dirs.sort()
        for name in files:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, model_dir).replace(os.sep, "/")
            st = lstat_or_none(full)
            if st is not None and stat.S_ISREG(st.st_mode):
                result.append(rel)
    return sorted(result)


def _load_json(path, max_bytes=64 * 1024 * 1024):
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError("larger than %d bytes" % max_bytes)
    return json.loads(data.decode("utf-8"))


def check_model_dir(model_dir, verify="quick", hasher=sha256_file):
    """Check a model directory without trusting anything in it, and without executing any of it.

    * ``config.json`` exists and is a JSON object;
    * weights exist (``*.safetensors``, ``*.bin``/``*.pt``/``*.pth``, ``*.gguf``);
    * every shard named in a ``*.index.json`` ``weight_map`` exists; for safetensors shards, every tensor the index
      names is in that shard's header, and the tensor bytes add up to the index's ``metadata.total_size``;
    * every safetensors file's header is valid and its file size is exactly what the header describes;
    * with ``verify`` quick/full: the completion marker is valid and its files pass the quick (size, mtime) or full
      (size, sha256) check; ``none`` skips the marker.

    Returns ``{'problems': [...], 'warnings': [...], 'facts': {...}}``; ``facts`` hold the file lists, the marker
    state and the summary of the safetensors headers (parameters per dtype).
    """
    problems, warnings = [], []
    facts = {"weights": {"safetensors": [], "pickle": [], "gguf": []}, "index_files": [], "marker": None,
             "revision": None, "model_id": None, "pickle_files": [], "code_files": [], "remote_code": [],
             "summary": None, "files": 0, "bytes_total": 0, "config": None}
    st = None
    try:
        st = os.stat(model_dir)
    except OSError:
        pass
    if st is None or not stat.S_ISDIR(st.st_mode):
        return {"problems": ["%s is not a directory" % model_dir], "warnings": warnings, "facts": facts}
    files = [f for f in list_files(model_dir) if os.path.basename(f) != MARKER_NAME
             and not f.endswith(PARTIAL_SUFFIX)]
    partials = [f for f in list_files(model_dir) if f.endswith(PARTIAL_SUFFIX)]
    if partials:
        warnings.append("partial downloads present: %s" % ", ".join(partials))
    facts["files"] = len(files)
    facts["bytes_total"] = sum(os.lstat(os.path.join(model_dir, f)).st_size for f in files)
    facts.update(classify_paths(files))

    # config.json
    config_path = os.path.join(model_dir, "config.json")
    if "config.json" not in files:
        problems.append("config.json is missing")
    else:
        try:
            config = _load_json(config_path)
            if not isinstance(config, dict):
                raise ValueError("not a JSON object")
            facts["config"] = config
            auto_map = config.get("auto_map")
            if isinstance(auto_map, dict) and auto_map:
                facts["remote_code"] = sorted(set(str(v if not isinstance(v, list) else v[0])
                                                  for v in auto_map.values()))
        except (OSError, ValueError) as exc:
            problems.append("config.json is not valid JSON: %s" % exc)

    # weights
    for rel in files:
        low = rel.lower()
        if low.endswith(".safetensors"):
            facts["weights"]["safetensors"].append(rel)
        elif low.endswith((".bin", ".pt", ".pth")) and _looks_like_weights(rel):
            facts["weights"]["pickle"].append(rel)
        elif low.endswith(".gguf"):
            facts["weights"]["gguf"].append(rel)
    if not any(facts["weights"].values()):
        problems.append("no weights found (*.safetensors, *.bin, *.pt, *.pth or *.gguf)")

    # safetensors headers
    headers = {}
    for rel in facts["weights"]["safetensors"]:
        try:
            headers[rel] = read_header(os.path.join(model_dir, rel))
        except (HeaderError, OSError) as exc:
            problems.append("%s: %s" % (rel, exc))

    # index files
    for rel in files:
        if not rel.endswith(".index.json"):
            continue
        facts["index_files"].append(rel)
        index_problems, index_warnings = _index_problems(model_dir, rel, files, headers)
        problems.extend(index_problems)
        warnings.extend(index_warnings)

    if headers:
        facts["summary"] = summarize_headers(list(headers.values()), quantization=_quantization(facts["config"]))

    # marker
    if verify != "none":
        marker, reason = read_marker(model_dir)
        if marker is None:
            problems.append("%s (the directory was never completed by modelscope_download)" % reason)
            facts["marker"] = "absent" if reason == "no completion marker" else "invalid"
        else:
            facts["marker"] = "valid"
            facts["revision"] = marker.get("revision")
            facts["model_id"] = marker.get("model_id")
            check = full_check if verify == "full" else quick_check
            kwargs = {"hasher": hasher} if verify == "full" else {}
            found = check(model_dir, marker["files"], **kwargs)
            if found:
                facts["marker"] = "mismatch"
                problems.extend(found)
    return {"problems": problems, "warnings": warnings, "facts": facts}


def _looks_like_weights(rel):
    # ``training_args.bin`` and optimizer/scheduler state are pickles too, but not weights.
    name = os.path.basename(rel).lower()
    return not name.startswith(("training_args", "optimizer", "scheduler", "rng_state"))


def _quantization(config):
    if not isinstance(config, dict):
        return None
    quant = config.get("quantization_config")
    return quant if isinstance(quant, dict) else None


def _index_problems(model_dir, rel, files, headers):
    """``(problems, warnings)`` of one ``*.index.json``. A ``metadata.total_size`` that disagrees with the shards is
    only a warning: some published repositories carry a stale value."""
    problems, warnings = [], []
    try:
        index = _load_json(os.path.join(model_dir, rel))
    except (OSError, ValueError) as exc:
        return ["%s is not valid JSON: %s" % (rel, exc)], warnings
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        return ["%s has no weight_map" % rel], warnings
    base = os.path.dirname(rel)
    shards = {}
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str) or unsafe_path_reason(shard, RESERVED_NAMES) or "/" in shard:
            problems.append("%s names an unsafe shard %r" % (rel, shard))
            continue
        shards.setdefault(shard, []).append(tensor)
    tensor_bytes = 0
    complete = True
    for shard in sorted(shards):
        shard_rel = "%s/%s" % (base, shard) if base else shard
        if shard_rel not in files:
            problems.append("%s: shard %s is missing" % (rel, shard_rel))
            complete = False
            continue
        header = headers.get(shard_rel)
        if shard_rel.endswith(".safetensors"):
            if header is None:
                complete = False
                continue  # already reported as a header problem
            missing = [t for t in shards[shard] if t not in header["tensors"]]
            if missing:
                problems.append("%s: shard %s lacks %d tensor(s) the index names, e.g. %s" % (
                    rel, shard_rel, len(missing), missing[0]))
            tensor_bytes += header["data_bytes"]
    total = index.get("metadata", {}).get("total_size") if isinstance(index.get("metadata"), dict) else None
    if complete and tensor_bytes and isinstance(total, int) and not isinstance(total, bool) and total != tensor_bytes:
        warnings.append("%s: metadata.total_size is %d but the shards hold %d tensor bytes" % (
            rel, total, tensor_bytes))
    return problems, warnings
