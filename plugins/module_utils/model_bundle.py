# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model bundles for air-gapped sites: a verified model directory as one tar stream, split into parts.

Standard library only (runs on targets with Python >= 3.8). A bundle is a POSIX (pax) tar stream whose first
member is ``llmops-bundle.json`` (the manifest: model, revision, selection, and every file's path, size and sha256,
exactly the completion marker's) followed by one regular-file member per manifest entry, nothing else. The stream is
written straight into parts of a chosen size (``<bundle>.part0000``, ``.part0001``...; one file when no size is
given), so no second full copy of the model is ever on disk; a sidecar ``<bundle name>.json`` names the parts with
their sizes and sha256.

Export reads every file once, through ``O_NOFOLLOW``, and checks its sha256 against the marker while it is written
into the stream. Import reads the stream once, refuses anything that is not a regular-file member the manifest names
(links, devices, directories, unknown or repeated names, wrong sizes), writes each file into a private staging
directory with ``O_EXCL | O_NOFOLLOW`` while hashing it, and reports every mismatch; the caller then switches the
staging directory in (module_utils ``model_install``) and writes the same completion marker a hub download writes.
"""

import hashlib
import io
import json
import os
import stat
import tarfile

from ansible_collections.llmops.deploy.plugins.module_utils.marker import files_digest, marker_problems

BUNDLE_FORMAT = "llmops.deploy/model-bundle/v1"
MANIFEST_MEMBER = "llmops-bundle.json"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
COPY_CHUNK = 4 * 1024 * 1024
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_MANIFEST_KEYS = ("model_id", "revision_requested", "revision", "endpoint", "include", "exclude")


class BundleError(Exception):
    """The bundle cannot be written or accepted; ``problems`` lists every reason."""

    def __init__(self, message, problems=None):
        super(BundleError, self).__init__(message)
        self.message = message
        self.problems = list(problems or [])


# ---------------------------------------------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------------------------------------------
def bundle_manifest(marker):
    """The bundle manifest of a (valid) completion marker: the same facts, without the local mtimes."""
    files = [{"path": f["path"], "size": f["size"], "sha256": f["sha256"]} for f in marker["files"]]
    doc = dict((key, marker[key]) for key in _MANIFEST_KEYS)
    doc.update(format=BUNDLE_FORMAT, files=files, files_count=len(files), bytes_total=sum(f["size"] for f in files),
               files_digest=files_digest(files))
    return doc


def manifest_problems(doc):
    """Every reason a bundle manifest cannot be trusted (empty list when it is sound)."""
    if not isinstance(doc, dict):
        return ["the manifest is not a JSON object"]
    if doc.get("format") != BUNDLE_FORMAT:
        return ["unknown bundle format %r (expected %s)" % (doc.get("format"), BUNDLE_FORMAT)]
    files = doc.get("files")
    if not isinstance(files, list) or not files:
        return ["the manifest lists no files"]
    # The marker's checks (paths, sizes, sha256, duplicates, digest) with a placeholder mtime.
    as_marker = dict((key, doc.get(key)) for key in _MANIFEST_KEYS)
    as_marker.update(format="llmops.deploy/model-complete/v1", files_digest=doc.get("files_digest"),
                     files=[dict(f, mtime_ns=0) if isinstance(f, dict) else f for f in files])
    problems = [p.replace("marker", "manifest") for p in marker_problems(as_marker)]
    paths = set(f.get("path") for f in files if isinstance(f, dict))
    for path in sorted(p for p in paths if isinstance(p, str)):
        parts = path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in paths:
                problems.append("%s is listed as a file and as the directory of %s" % ("/".join(parts[:i]), path))
    return problems


# ---------------------------------------------------------------------------------------------------------------
# Parts
# ---------------------------------------------------------------------------------------------------------------
def part_names(base, count, split):
    """File names of a bundle's parts: ``base`` alone, or ``base.part0000``... when split."""
    return ["%s.part%04d" % (base, i) for i in range(count)] if split else [base]


class PartWriter(object):
    """A write-only stream that fills files of ``part_size`` bytes (None: one file). Parts are written under
    temporary names and renamed by :meth:`commit`; :meth:`abort` removes them. ``parts`` holds name, size, sha256."""

    def __init__(self, base, part_size=None, mode=0o644):
        self.base = base
        self.part_size = part_size
        self.mode = mode
        self.parts = []
        self._fd = None
        self._digest = None
        self._written = 0
        self._tmp_names = []

    def _open_next(self):
        index = len(self.parts)
        final = ("%s.part%04d" % (self.base, index)) if self.part_size else self.base
        tmp = os.path.join(os.path.dirname(final), ".%s.tmp-%d" % (os.path.basename(final), os.getpid()))
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        self._fd = os.open(tmp, _CREATE_FLAGS, 0o600)
        self._tmp_names.append((tmp, final))
        self._digest = hashlib.sha256()
        self._written = 0
        self.parts.append({"name": os.path.basename(final), "size": 0, "sha256": None})

    def _close_part(self):
        if self._fd is not None:
            os.fchmod(self._fd, self.mode)
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            self.parts[-1].update(size=self._written, sha256=self._digest.hexdigest())

    def write(self, data):
        view = memoryview(data)
        while view:
            if self._fd is None or (self.part_size and self._written >= self.part_size):
                self._close_part()
                self._open_next()
            room = len(view) if not self.part_size else min(len(view), self.part_size - self._written)
            chunk = view[:room]
            while chunk:
                written = os.write(self._fd, chunk)
                self._digest.update(chunk[:written])
                self._written += written
                chunk = chunk[written:]
            view = view[room:]
        return len(data)

    def flush(self):
        pass

    def commit(self):
        if self._fd is None and not self.parts:
            self._open_next()
        self._close_part()
        for tmp, final in self._tmp_names:
            os.replace(tmp, final)
        self._tmp_names = []
        return self.parts

    def abort(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for tmp, _final in self._tmp_names:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        self._tmp_names = []


class PartReader(io.RawIOBase):
    """The parts, in order, read as one stream; each part's sha256 is computed on the way (``digests``)."""

    def __init__(self, paths):
        super(PartReader, self).__init__()
        self.paths = list(paths)
        self.index = -1
        self.handle = None
        self.digests = []
        self.sizes = []
        self._digest = None

    def readable(self):
        return True

    def _next(self):
        if self.handle is not None:
            self.handle.close()
            self.digests.append(self._digest.hexdigest())
        self.index += 1
        if self.index >= len(self.paths):
            self.handle = None
            return False
        fd = os.open(self.paths[self.index], _READ_FLAGS)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise BundleError("%s is not a regular file" % self.paths[self.index])
        self.sizes.append(st.st_size)
        self.handle = os.fdopen(fd, "rb")
        self._digest = hashlib.sha256()
        return True

    def readinto(self, buffer):
        while True:
            if self.handle is None and not self._next():
                return 0
            count = self.handle.readinto(buffer)
            if count:
                self._digest.update(memoryview(buffer)[:count])
                return count
            if not self._next():
                return 0

    def close(self):
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        super(PartReader, self).close()


# ---------------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------------
BLOCK = 512
RECORD = 20 * BLOCK


def _member(name, size):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.type = tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def _padding(size):
    return b"\0" * (-size % BLOCK)


def write_bundle(model_dir, manifest, stream):
    """Write the tar stream of ``manifest`` (files read from ``model_dir``) into ``stream`` (``write(bytes)``).

    The headers come from ``tarfile.TarInfo.tobuf`` (pax format, so any name is kept exactly); the data is copied in
    large chunks straight to ``stream`` (tarfile's own stream writer re-copies its buffer on every small write).
    Every file is opened with ``O_NOFOLLOW``, must be a regular file of its listed size, and must hash to its listed
    sha256 (checked while it is written). Raises BundleError naming every file that failed.
    """
    data = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
    problems = []
    written = 0

    def emit(chunk):
        stream.write(chunk)
        return len(chunk)

    written += emit(_member(MANIFEST_MEMBER, len(data)).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
    written += emit(data + _padding(len(data)))
    for item in manifest["files"]:
        try:
            fd = os.open(os.path.join(model_dir, item["path"]), _READ_FLAGS)
        except OSError as exc:
            raise BundleError("%s cannot be read: %s" % (item["path"], exc.strerror))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size != item["size"]:
                raise BundleError("%s is not a regular file of %d bytes; export a directory whose completion "
                                  "marker still holds" % (item["path"], item["size"]))
            written += emit(_member(item["path"], item["size"]).tobuf(tarfile.PAX_FORMAT, "utf-8",
                                                                      "surrogateescape"))
            digest = hashlib.sha256()
            count = 0
            while count < item["size"]:
                chunk = os.read(fd, min(COPY_CHUNK, item["size"] - count))
                if not chunk:
                    break
                digest.update(chunk)
                count += emit(chunk)
            if count < item["size"]:
                raise BundleError("%s ended after %d of %d bytes while it was read" % (item["path"], count,
                                                                                       item["size"]))
            written += count + emit(_padding(count))
            if digest.hexdigest() != item["sha256"]:
                problems.append(item["path"])
        finally:
            os.close(fd)
    end = 2 * BLOCK
    end += -(written + end) % RECORD
    emit(b"\0" * end)
    if problems:
        raise BundleError("%d file(s) do not match their sha256 in the completion marker: %s; the bundle was not "
                          "written" % (len(problems), ", ".join(problems[:20])), problems)


# ---------------------------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------------------------
def _read_exact(stream, size):
    parts = []
    while size > 0:
        chunk = stream.read(min(size, COPY_CHUNK))
        if not chunk:
            raise BundleError("the bundle ends in the middle of a member (truncated or a part is missing)")
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


def _pax_records(data):
    """``{key: value}`` of a pax extended header."""
    records = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise BundleError("a pax header of the bundle is damaged")
        if length <= 0:
            raise BundleError("a pax header of the bundle is damaged")
        record = data[space + 1:pos + length - 1]
        key, _sep, value = record.partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


class TarReader(object):
    """The members of a tar stream read front to back from ``stream`` (``read(n)``), without tarfile's stream
    buffering. Headers are parsed by ``tarfile.TarInfo.frombuf``; pax records override path and size. Each member
    is a TarInfo; its data is read with :meth:`read_data` (or skipped by the next :meth:`next`)."""

    def __init__(self, stream):
        self.stream = stream
        self.left = 0        # data bytes of the current member not read yet
        self.pad = 0

    def _skip(self, count):
        while count > 0:
            chunk = self.stream.read(min(count, COPY_CHUNK))
            if not chunk:
                raise BundleError("the bundle ends in the middle of a member (truncated or a part is missing)")
            count -= len(chunk)

    def next(self):
        """The next member, or None at the end of the archive."""
        self._skip(self.left + self.pad)
        self.left = self.pad = 0
        pax = {}
        while True:
            block = self.stream.read(BLOCK)
            if len(block) < BLOCK:
                block += _read_exact(self.stream, BLOCK - len(block)) if block else b""
            if not block or block == b"\0" * BLOCK:
                return None
            try:
                info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            except tarfile.HeaderError as exc:
                raise BundleError("the bundle holds a damaged tar header: %s" % exc)
            if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE):
                data = _read_exact(self.stream, info.size)
                self._skip(-info.size % BLOCK)
                if info.type == tarfile.XHDTYPE:
                    pax.update(_pax_records(data))
                continue
            break
        if "path" in pax:
            info.name = pax["path"]
        if "size" in pax:
            try:
                info.size = int(pax["size"])
            except ValueError:
                raise BundleError("a pax header of the bundle is damaged")
        # data follows regular files (and members of unknown types); links, devices and directories have none
        self.left = info.size if info.isreg() or info.type not in tarfile.SUPPORTED_TYPES else 0
        self.pad = -self.left % BLOCK
        return info

    def read_data(self, size=COPY_CHUNK):
        """Up to ``size`` bytes of the current member's data (b'' at its end)."""
        if self.left <= 0:
            return b""
        chunk = self.stream.read(min(size, self.left))
        if not chunk:
            raise BundleError("the bundle ends in the middle of a member (truncated or a part is missing)")
        self.left -= len(chunk)
        return chunk


def read_manifest(tar):
    """The first member of a :class:`TarReader`, as a checked manifest."""
    member = tar.next()
    if member is None or member.name != MANIFEST_MEMBER or not member.isreg():
        raise BundleError("not a model bundle: the first member is %r, expected %s" % (
            member.name if member is not None else None, MANIFEST_MEMBER))
    if member.size > MAX_MANIFEST_BYTES:
        raise BundleError("the bundle manifest is larger than %d bytes" % MAX_MANIFEST_BYTES)
    data = b"".join(iter(tar.read_data, b""))
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError("the bundle manifest is not valid JSON: %s" % exc)
    problems = manifest_problems(doc)
    if problems:
        raise BundleError("the bundle manifest was refused: %s" % "; ".join(problems[:20]), problems)
    return doc


def _create(root, rel):
    """A new file ``rel`` under the private ``root`` (parents created, nothing followed)."""
    parent = os.path.dirname(os.path.join(root, rel))
    os.makedirs(parent, mode=0o700, exist_ok=True)
    target = os.path.join(root, rel)
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass
    return os.open(target, _CREATE_FLAGS, 0o600)


def extract_bundle(tar, manifest, staging_files, only=None):
    """Write the members of ``tar`` (a :class:`TarReader` past its manifest) into ``staging_files`` and verify each
    one.

    ``only``: paths to write (others are read past and checked by size only: files already in place). Returns the
    verified entries (with mtime_ns). Raises BundleError with every problem (nothing partial is returned).
    """
    wanted = dict((f["path"], f) for f in manifest["files"])
    seen = set()
    good, problems = [], []
    while True:
        member = tar.next()
        if member is None:
            break
        name = member.name
        if name not in wanted:
            problems.append("unexpected member %r (not in the manifest)" % name)
            continue
        if name in seen:
            problems.append("%s appears twice" % name)
            continue
        seen.add(name)
        entry = wanted[name]
        if not member.isreg():
            problems.append("%s is not a regular file in the bundle (type %r)" % (name, member.type))
            continue
        if member.size != entry["size"]:
            problems.append("%s has %d bytes in the bundle, the manifest says %d" % (
                name, member.size, entry["size"]))
            continue
        if only is not None and name not in only:
            continue
        digest = hashlib.sha256()
        fd = _create(staging_files, name)
        count = 0
        try:
            while True:
                chunk = tar.read_data()
                if not chunk:
                    break
                digest.update(chunk)
                count += len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        path = os.path.join(staging_files, name)
        if count != entry["size"] or digest.hexdigest() != entry["sha256"]:
            problems.append("%s does not match its sha256 (%d bytes read)" % (name, count))
            os.unlink(path)
            continue
        good.append(dict(entry, mtime_ns=os.lstat(path).st_mtime_ns))
    missing = sorted(set(wanted) - seen)
    if missing:
        problems.append("%d file(s) of the manifest are not in the bundle: %s" % (
            len(missing), ", ".join(missing[:20])))
    if problems:
        raise BundleError("the bundle was refused (%d problem(s)): %s" % (len(problems), "; ".join(problems[:20])),
                          problems)
    return good
