# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A model directory on this host, read without following any link below it: the one listing and the one way of
reading its files that model_verify and modelscope_info(path=) share.

Standard library only (runs on targets with Python >= 3.8, Linux); nothing here imports or executes a file of a model.

* :class:`ModelDir` opens the directory once (the directory itself may be a symlink: an administrator's choice,
  resolved once) and reaches everything below it through directory descriptors opened with ``O_NOFOLLOW``; files are
  opened with ``O_NOFOLLOW`` and read only when ``fstat`` shows a regular file. A symlink planted below the
  directory, even between the listing and the read, is never followed: nothing outside the directory is read.
* :meth:`ModelDir.listing` is the one listing: regular files (with their ``lstat``), SDK partial files
  (``*.incomplete``) apart, the completion marker left out, and every entry that is **refused** (a symlink to a file
  or a directory, a fifo, a socket, a device, a directory that cannot be opened) named with the reason.
* :func:`check_model_dir` is model_verify's check of the directory on its own (config, weights, shard index,
  safetensors headers, completion marker).
* :class:`ModelDirSource` is the local source modelscope_info(path=) hands to ``model_metadata.collect_metadata``
  (same interface as its hub source): sizes from the listing, sha256 only where the completion marker vouches for a
  file, never computed.
"""

import errno
import json
import os
import stat

from ansible_collections.llmops.deploy.plugins.module_utils.file_kinds import classify_paths
from ansible_collections.llmops.deploy.plugins.module_utils.marker import MARKER_NAME, MAX_MARKER_BYTES, parse_marker
from ansible_collections.llmops.deploy.plugins.module_utils.safetensors_header import (
    MAX_HEADER_BYTES, HeaderError, read_header, summarize_headers)
from ansible_collections.llmops.deploy.plugins.module_utils.shard_index import check_index
from ansible_collections.llmops.deploy.plugins.module_utils.stream_hash import sha256_file
from ansible_collections.llmops.deploy.plugins.module_utils.tree_safety import PARTIAL_SUFFIX

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
# O_NONBLOCK: a name swapped for a fifo after the listing must not hang the open (the fstat check then refuses it).
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | _CLOEXEC

# model_verify's limit for config.json and the shard indexes.
MAX_JSON_BYTES = 64 * 1024 * 1024


class ModelDirError(Exception):
    """A model directory, or an entry in it, cannot be read safely. ``path`` is the entry (the directory itself for
    the directory), ``reason`` says why, ``errno`` is the system's error number when there is one."""

    def __init__(self, path, reason, errno_=None, message=None):
        self.path = path
        self.reason = reason
        self.errno = errno_
        self.message = message or "%s: %s" % (path, reason)
        super(ModelDirError, self).__init__(self.message)


def _kind(mode):
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISFIFO(mode):
        return "a fifo"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def refused_warning(refused):
    """The one warning both modules give for refused entries (None when there are none)."""
    if not refused:
        return None
    return "not followed or read (links and special files below the model directory are refused): %s" % ", ".join(
        "%s (%s)" % (item["path"], item["reason"]) for item in refused)


class ModelDir(object):
    """A model directory opened once; every entry below it is reached through descriptors, never through a link.

    Raises ModelDirError (with ``errno``) when ``path`` is not a directory that can be opened. Use it as a context
    manager, or call :meth:`close`.
    """

    def __init__(self, path):
        self.path = path
        self._fds = {}
        try:
            self._fds[""] = os.open(path, _ROOT_FLAGS)
        except OSError as exc:
            raise ModelDirError(path, exc.strerror, exc.errno)

    def close(self):
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _dir_fd(self, rel_dir):
        """Descriptor of the directory ``rel_dir`` ('' is the model directory); a symlink, a non-directory or a
        missing directory on the way raises ModelDirError naming it."""
        if rel_dir in self._fds:
            return self._fds[rel_dir]
        parent_rel, _sep, name = rel_dir.rpartition("/")
        parent = self._dir_fd(parent_rel)
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ModelDirError(rel_dir, "a symlink or not a directory, not followed", exc.errno)
            raise ModelDirError(rel_dir, "cannot be opened: %s" % exc.strerror, exc.errno)
        self._fds[rel_dir] = fd
        return fd

    def lstat(self, rel):
        """The ``lstat`` of ``rel`` through descriptors (None when it is missing). A refused directory on the way
        raises ModelDirError."""
        parent_rel, _sep, name = rel.rpartition("/")
        parent = self._dir_fd(parent_rel)
        try:
            return os.stat(name, dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise ModelDirError(rel, "cannot be read: %s" % exc.strerror, exc.errno)

    def listing(self):
        """``{'files': [(rel, lstat)], 'partials': [rel], 'refused': [{'path', 'reason'}]}``, each sorted by path.

        ``files``: the regular files, without the completion marker (the name is reserved for it at any depth: no
        hub listing may use it) and without SDK partial files (``partials``). ``refused``: every other entry that
        is not a directory that can be opened (a refused directory is not entered). Nothing is followed or read.
        """
        files, partials, refused = [], [], []
        stack = [""]
        while stack:
            rel_dir = stack.pop()
            try:
                with os.scandir(self._dir_fd(rel_dir)) as found:
                    entries = sorted(found, key=lambda e: e.name)
            except ModelDirError as exc:
                refused.append({"path": exc.path, "reason": exc.reason})
                continue
            except OSError as exc:
                refused.append({"path": rel_dir or ".", "reason": "cannot be listed: %s" % exc.strerror})
                continue
            for entry in entries:
                if entry.name == MARKER_NAME:
                    continue
                rel = "%s/%s" % (rel_dir, entry.name) if rel_dir else entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    if exc.errno != errno.ENOENT:   # else gone since the directory was read
                        refused.append({"path": rel, "reason": "cannot be read: %s" % exc.strerror})
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(rel)
                elif not stat.S_ISREG(st.st_mode):
                    refused.append({"path": rel, "reason": _kind(st.st_mode)})
                elif rel.endswith(PARTIAL_SUFFIX):
                    partials.append(rel)
                else:
                    files.append((rel, st))
        files.sort(key=lambda item: item[0])
        return {"files": files, "partials": sorted(partials),
                "refused": sorted(refused, key=lambda item: item["path"])}

    def open_fd(self, rel):
        """A read-only descriptor of the regular file ``rel`` (the caller closes it). A symlink (at ``rel`` or on the
        way), a missing file or anything but a regular file raises ModelDirError naming ``rel``."""
        parent_rel, _sep, name = rel.rpartition("/")
        parent = self._dir_fd(parent_rel)
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ModelDirError(rel, "a symlink, not followed", exc.errno)
            raise ModelDirError(rel, "cannot be opened: %s" % exc.strerror, exc.errno)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise ModelDirError(rel, "%s, not a regular file" % _kind(mode))
        return fd

    def read_bytes(self, rel, limit):
        """The whole content of the regular file ``rel``. ModelDirError when it cannot be opened safely, ValueError
        when it holds more than ``limit`` bytes."""
        with os.fdopen(self.open_fd(rel), "rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise ValueError("larger than %d bytes" % limit)
        return data

    def read_header(self, rel, max_header=MAX_HEADER_BYTES):
        """The parsed safetensors header of ``rel``: ``safetensors_header.read_header`` given the file's descriptor
        (Python's ``open`` takes a descriptor, and closes it). Raises HeaderError, ModelDirError or OSError."""
        return read_header(self.open_fd(rel), max_header=max_header)

    def sha256(self, rel, hasher=sha256_file):
        """sha256 of ``rel``, hashed from its descriptor (``hasher`` takes the descriptor and closes it, as
        ``stream_hash.sha256_file`` does through Python's ``open``)."""
        return hasher(self.open_fd(rel))

    def read_marker(self):
        """``(marker, None)`` for a well-formed completion marker, else ``(None, reason)`` with the reasons of
        ``marker.read_marker``; read without following a link."""
        try:
            st = self.lstat(MARKER_NAME)
        except ModelDirError as exc:
            return None, "the completion marker cannot be read: %s" % exc.reason
        if st is None:
            return None, "no completion marker"
        if not stat.S_ISREG(st.st_mode):
            return None, "%s is not a regular file" % MARKER_NAME
        try:
            data = self.read_bytes(MARKER_NAME, MAX_MARKER_BYTES)
        except ModelDirError as exc:
            return None, "the completion marker cannot be read: %s" % exc.reason
        except OSError as exc:
            return None, "the completion marker cannot be read: %s" % exc
        return parse_marker(data)


# ---------------------------------------------------------------------------------------------------------------
# model_verify: the directory checked on its own
# ---------------------------------------------------------------------------------------------------------------
def _load_json(tree, rel):
    return json.loads(tree.read_bytes(rel, MAX_JSON_BYTES).decode("utf-8"))


def marker_check(tree, listing, files, full=False, hasher=sha256_file):
    """Problems of the marker's ``files`` against the listing: each must be a regular file of the listing with the
    marker's size, and its mtime (quick) or its sha256 (``full``, hashed through the descriptor). The messages are
    those of ``marker.quick_check`` and ``marker.full_check``."""
    stats = dict(listing["files"])
    refused = set(item["path"] for item in listing["refused"])
    problems = []
    for item in files:
        path = item["path"]
        st = stats.get(path)
        if st is None:
            problem = "%s is not a regular file" % path if path in refused else "%s is missing" % path
        elif st.st_size != item["size"]:
            problem = "%s has %d bytes, expected %d" % (path, st.st_size, item["size"])
        elif full:
            try:
                problem = None if tree.sha256(path, hasher) == item["sha256"] else "%s does not match its sha256" % path
            except ModelDirError as exc:
                problem = exc.message
            except OSError as exc:
                problem = "%s: cannot be read: %s" % (path, exc.strerror)
        elif item.get("mtime_ns") is not None and st.st_mtime_ns != item["mtime_ns"]:
            problem = "%s was modified after it was verified (mtime changed)" % path
        else:
            problem = None
        if problem:
            problems.append(problem)
    return problems


def check_model_dir(model_dir, verify="quick", hasher=sha256_file):
    """Check a model directory without trusting anything in it, without executing any of it, and without following
    any link below it (:class:`ModelDir`).

    * ``config.json`` exists and is a JSON object;
    * weights exist (``*.safetensors``, ``*.bin``/``*.pt``/``*.pth``, ``*.gguf``);
    * every shard named in a ``*.index.json`` ``weight_map`` exists; for safetensors shards, every tensor the index
      names is in that shard's header, and the tensor bytes add up to the index's ``metadata.total_size``
      (``shard_index.check_index``, the check modelscope_info makes of a hub's or a directory's index);
    * every safetensors file's header is valid and its file size is exactly what the header describes;
    * with ``verify`` quick/full: the completion marker is valid and its files pass the quick (size, mtime) or full
      (size, sha256) check; ``none`` skips the marker.

    Refused entries (links, special files) are a warning; they count as missing where the checks need them.
    ``hasher`` is called with a read-only descriptor of a file and closes it (``stream_hash.sha256_file`` does).
    Returns ``{'problems': [...], 'warnings': [...], 'facts': {...}}``; ``facts`` hold the file lists, the refused
    entries, the marker state and the summary of the safetensors headers (parameters per dtype).
    """
    facts = {"weights": {"safetensors": [], "pickle": [], "gguf": []}, "index_files": [], "marker": None,
             "revision": None, "model_id": None, "pickle_files": [], "code_files": [], "remote_code": [],
             "summary": None, "files": 0, "bytes_total": 0, "config": None, "refused": []}
    try:
        tree = ModelDir(model_dir)
    except ModelDirError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return {"problems": ["%s is not a directory" % model_dir], "warnings": [], "facts": facts}
        return {"problems": ["%s cannot be opened: %s" % (model_dir, exc.reason)], "warnings": [], "facts": facts}
    with tree:
        return _check(tree, verify, hasher, facts)


def _check(tree, verify, hasher, facts):
    problems, warnings = [], []
    listing = tree.listing()
    refused = dict((item["path"], item["reason"]) for item in listing["refused"])
    if listing["partials"]:
        warnings.append("partial downloads present: %s" % ", ".join(listing["partials"]))
    if refused:
        warnings.append(refused_warning(listing["refused"]))
    files = [rel for rel, _st in listing["files"]]
    facts["refused"] = listing["refused"]
    facts["files"] = len(files)
    facts["bytes_total"] = sum(st.st_size for _rel, st in listing["files"])
    facts.update(classify_paths(files))

    # config.json
    if "config.json" in refused:
        problems.append("config.json is %s (refused: not followed or read)" % refused["config.json"])
    elif "config.json" not in files:
        problems.append("config.json is missing")
    else:
        try:
            config = _load_json(tree, "config.json")
            if not isinstance(config, dict):
                raise ValueError("not a JSON object")
            facts["config"] = config
            auto_map = config.get("auto_map")
            if isinstance(auto_map, dict) and auto_map:
                facts["remote_code"] = sorted(set(str(v if not isinstance(v, list) else v[0])
                                                  for v in auto_map.values()))
        except ModelDirError as exc:
            problems.append(exc.message)
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
            headers[rel] = tree.read_header(rel)
        except ModelDirError as exc:
            problems.append(exc.message)
        except (HeaderError, OSError) as exc:
            problems.append("%s: %s" % (rel, exc))

    # index files
    listed = set(files)
    for rel in files:
        if not rel.endswith(".index.json"):
            continue
        facts["index_files"].append(rel)
        try:
            index = _load_json(tree, rel)
        except ModelDirError as exc:
            problems.append(exc.message)
            continue
        except (OSError, ValueError) as exc:
            problems.append("%s is not valid JSON: %s" % (rel, exc))
            continue
        index_problems, index_warnings, _shards = check_index(rel, index, listed, listed, headers)
        problems.extend(index_problems)
        warnings.extend(index_warnings)

    if headers:
        facts["summary"] = summarize_headers(list(headers.values()), quantization=_quantization(facts["config"]))

    # marker
    if verify != "none":
        marker, reason = tree.read_marker()
        if marker is None:
            problems.append("%s (the directory was never completed by modelscope_download)" % reason)
            facts["marker"] = "absent" if reason == "no completion marker" else "invalid"
        else:
            facts["marker"] = "valid"
            facts["revision"] = marker.get("revision")
            facts["model_id"] = marker.get("model_id")
            found = marker_check(tree, listing, marker["files"], full=verify == "full", hasher=hasher)
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


# ---------------------------------------------------------------------------------------------------------------
# modelscope_info(path=): the directory as a source of model metadata
# ---------------------------------------------------------------------------------------------------------------
class ModelDirSource(object):
    """A model directory as the local source of ``model_metadata.collect_metadata`` (the interface of its hub
    source: ``load``, ``entries``, ``read_small``, ``read_header`` and the counters). No network. sha256 comes only
    from a valid completion marker, for files whose size and mtime are those it verified. Refused entries are not
    among the model's files; they are in ``refused`` and in a warning. Errors are ModelDirError. Call
    :meth:`close` when done (or use it as a context manager)."""

    kind = "local"

    def __init__(self, model_dir, model_id=None, revision=None):
        self.path = os.path.abspath(model_dir)
        self.model_id = model_id
        self.revision_requested = revision
        self.revision = None
        self.entries = None
        self.refused = []
        self.requests = 0
        self.weight_bytes_read = 0
        self.range_ignored = False
        self.marker = None
        self.warnings = []
        self.tree = None

    def close(self):
        if self.tree is not None:
            self.tree.close()
            self.tree = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def load(self):
        try:
            self.tree = ModelDir(self.path)
        except ModelDirError as exc:
            reason = "not a directory" if exc.errno == errno.ENOTDIR else exc.reason
            raise ModelDirError(self.path, reason, exc.errno, message="path %s is not valid: %s; expected a local "
                                "model directory" % (self.path, reason))
        listing = self.tree.listing()
        if listing["partials"]:
            self.warnings.append("partial downloads present (not counted): %s" % ", ".join(listing["partials"]))
        self.refused = listing["refused"]
        if self.refused:
            self.warnings.append(refused_warning(self.refused))
        marker, reason = self.tree.read_marker()
        known = {}
        if marker is not None and self.model_id and marker["model_id"] != self.model_id:
            self.warnings.append("the completion marker is for %s, not %s: sha256 not taken from it" % (
                marker["model_id"], self.model_id))
            marker = None
        if marker is not None:
            self.marker = marker
            self.model_id = self.model_id or marker["model_id"]
            self.revision = marker["revision"]
            recorded = (marker["revision"], marker["revision_requested"])
            if self.revision_requested and self.revision_requested not in recorded:
                self.warnings.append("the directory holds revision %s (%s), not %s" % (
                    marker["revision_requested"], marker["revision"], self.revision_requested))
            known = dict((f["path"], f) for f in marker["files"])
        elif reason != "no completion marker":
            self.warnings.append("%s: sha256 not available" % reason)
        entries = []
        for rel, fst in listing["files"]:
            vouched = known.get(rel)
            sha = None
            if vouched and vouched["size"] == fst.st_size and vouched.get("mtime_ns") == fst.st_mtime_ns:
                sha = vouched["sha256"]
            elif vouched:
                self.warnings.append("%s changed since the completion marker verified it: sha256 not available" % rel)
            entries.append({"path": rel, "size": fst.st_size, "sha256": sha})
        self.entries = entries
        return self

    def read_small(self, path, size, limit):
        if size > limit:
            raise ModelDirError(path, "%d bytes, more than the %d-byte limit for a metadata file" % (size, limit))
        try:
            return self.tree.read_bytes(path, limit)
        except ValueError:
            raise ModelDirError(path, "more than the %d-byte limit for a metadata file" % limit)
        except ModelDirError as exc:
            raise ModelDirError(path, "cannot be read: %s" % exc.reason, exc.errno)
        except OSError as exc:
            raise ModelDirError(path, "cannot be read: %s" % exc, exc.errno)

    def read_header(self, path, size, max_header_bytes=MAX_HEADER_BYTES):
        try:
            header = self.tree.read_header(path, max_header=max_header_bytes)
        except HeaderError as exc:
            raise ModelDirError(path, "not a valid safetensors header: %s" % exc)
        except ModelDirError as exc:
            raise ModelDirError(path, "cannot be read: %s" % exc.reason, exc.errno)
        except OSError as exc:
            raise ModelDirError(path, "cannot be read: %s" % exc, exc.errno)
        count = 8 + header["header_size"]
        self.weight_bytes_read += count
        return header, count
