# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model bundles for air-gapped sites: a verified model directory as one tar stream, split into parts.

Standard library only (runs on targets with Python >= 3.8). A bundle is a POSIX (pax) tar stream whose first
member is ``llmops-bundle.json`` (the manifest: model, revision, selection, and every file's path, size and sha256,
exactly the completion marker's) followed by one regular-file member per manifest entry, nothing else. The stream is
written straight into parts of a chosen size (``<bundle>.part0000``, ``.part0001``...; one file when no size is
given), so no second full copy of the model is ever on disk; the caller writes a sidecar naming the parts with their
sizes and the manifest's sha256.

Every byte is read once and hashed once. Export reads every file once, through ``O_NOFOLLOW``, into a few reused
buffers; each buffer is hashed in a helper thread (``stream_hash.HashPipeline``; consecutive files on different
helpers) while the same buffer is written into the stream, and the file's sha256 must equal the marker's. Import
reads every byte of the parts once: first every tar header, in order, to the end of the archive (the files' data is
passed without being read), then the files' data at their offsets, several files at once (one thread per core, each
with its own hashing helper, so the sha256 of several files are computed on several cores). Each file's bytes go
into a new file of a private staging directory (``O_EXCL | O_NOFOLLOW``) and into that file's sha256 from the same
buffer, and the digest is compared with the manifest before the caller moves anything into place (module_utils
``model_install``). A part opened again for its data must be the very file (device and inode) whose headers were
read. The parts carry no sha256 of their own any
more (it was a second hash of every byte); what covers each byte instead: file data its file's sha256 from the hub,
the manifest its sha256 in the sidecar, every tar header tar's own checksum plus the manifest's names and sizes, the
padding and the end of the archive the rule that they are zeros. A file that fails is named with the part(s) its
bytes came from.
"""

import bisect
import hashlib
import json
import os
import stat
import tarfile
import threading

from ansible_collections.llmops.deploy.plugins.module_utils.marker import files_digest, marker_problems
from ansible_collections.llmops.deploy.plugins.module_utils.model_install import SYNC_EVERY, BackgroundSync
from ansible_collections.llmops.deploy.plugins.module_utils.stream_hash import CHUNK, HashPipeline, in_threads

BUNDLE_FORMAT = "llmops.deploy/model-bundle/v1"
MANIFEST_MEMBER = "llmops-bundle.json"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
COPY_CHUNK = 4 * 1024 * 1024
#: Buffers (of ``CHUNK`` bytes) of each thread that extracts files: enough that its hashing helper still has bytes
#: to hash while the copying thread waits for a core on a busy machine.
EXTRACT_DEPTH = 8
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


def _write_all(fd, view):
    while view:
        view = view[os.write(fd, view):]


class PartWriter(object):
    """A write-only stream that fills files of ``part_size`` bytes (None: one file). Parts are written under
    temporary names and renamed by :meth:`commit` once every one of them is on disk; :meth:`abort` removes them.
    A full part is synced (``fsync``) and closed by a thread of its own while the next part is written. ``parts``
    holds each part's name and size. Nothing is hashed here: the files' own sha256 cover their bytes."""

    def __init__(self, base, part_size=None, mode=0o644):
        self.base = base
        self.part_size = part_size
        self.mode = mode
        self.parts = []
        self._fd = None
        self._written = 0
        self._tmp_names = []
        self._syncers = []
        self._sync_errors = []

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
        self._written = 0
        self.parts.append({"name": os.path.basename(final), "size": 0})

    def _sync_and_close(self, fd):
        try:
            os.fsync(fd)
        except OSError as exc:
            self._sync_errors.append(exc)
        finally:
            os.close(fd)

    def _close_part(self):
        if self._fd is not None:
            fd, self._fd = self._fd, None
            self.parts[-1]["size"] = self._written
            try:
                os.fchmod(fd, self.mode)
            except OSError:
                os.close(fd)
                raise
            syncer = threading.Thread(target=self._sync_and_close, args=(fd,), name="llmops-part-sync")
            syncer.daemon = True
            syncer.start()
            self._syncers.append(syncer)

    def _join_syncers(self):
        for syncer in self._syncers:
            syncer.join()
        self._syncers = []

    def write(self, data):
        view = memoryview(data)
        while view:
            if self._fd is None or (self.part_size and self._written >= self.part_size):
                self._close_part()
                self._open_next()
            room = len(view) if not self.part_size else min(len(view), self.part_size - self._written)
            _write_all(self._fd, view[:room])
            self._written += room
            view = view[room:]
        return len(data)

    def flush(self):
        pass

    def commit(self):
        if self._fd is None and not self.parts:
            self._open_next()
        self._close_part()
        self._join_syncers()
        if self._sync_errors:
            raise self._sync_errors[0]
        for tmp, final in self._tmp_names:
            os.replace(tmp, final)
        self._tmp_names = []
        return self.parts

    def abort(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._join_syncers()
        for tmp, _final in self._tmp_names:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        self._tmp_names = []


class PartReader(object):
    """The parts, in order, read as one stream (:meth:`readinto`, :meth:`read`, :meth:`skip`); each is opened with
    ``O_NOFOLLOW`` and must be a regular file. ``position`` counts the bytes passed (read or skipped), ``bytes_read``
    the bytes really read (here and by :class:`PartFiles` at their offsets); :meth:`parts_holding` names the parts a
    range of the stream came from. ``part_digests``: also compute each part's sha256 on the way (``digests``) - only
    for bundles whose sidecar lists them (sidecar format v1), at the cost of a second hash of every byte; such a
    stream is read front to back, nothing skipped (``random_access`` is False)."""

    def __init__(self, paths, part_digests=False):
        self.paths = list(paths)
        self.part_digests = part_digests
        self.random_access = not part_digests
        self.index = -1
        self.fd = None
        self.position = 0
        self.bytes_read = 0
        self.starts = []
        self.sizes = []
        self.idents = []
        self.digests = []
        self._digest = None
        self._count_lock = threading.Lock()

    def _end_part(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            if self._digest is not None:
                self.digests.append(self._digest.hexdigest())
                self._digest = None

    def _next(self):
        self._end_part()
        if self.index + 1 >= len(self.paths):
            self.index = len(self.paths)
            return False
        self.index += 1
        fd = os.open(self.paths[self.index], _READ_FLAGS)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise BundleError("%s is not a regular file" % self.paths[self.index])
        self.fd = fd
        self.starts.append(self.position)
        self.sizes.append(st.st_size)
        self.idents.append((st.st_dev, st.st_ino))
        self._digest = hashlib.sha256() if self.part_digests else None
        return True

    def count_read(self, count):
        """Add ``count`` to ``bytes_read`` (thread-safe: :class:`PartFiles` of several threads report here)."""
        with self._count_lock:
            self.bytes_read += count

    def readinto(self, view):
        """Read into the writable buffer ``view`` (fewer bytes at the end of a part); 0 at the end of the last. A part
        ends at the size it had when it was opened (what the caller checked, and what :class:`PartFiles` reads)."""
        while True:
            if self.fd is None and not self._next():
                return 0
            left = self.starts[-1] + self.sizes[-1] - self.position
            count = os.readv(self.fd, [view[:left]]) if left > 0 else 0
            if count:
                if self._digest is not None:
                    self._digest.update(view[:count])
                self.position += count
                self.count_read(count)
                return count
            self._end_part()

    def read(self, size):
        """Up to ``size`` bytes (fewer only at the end of the stream)."""
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            count = self.readinto(view[got:])
            if not count:
                break
            got += count
        return bytes(view[:got])

    def skip(self, count):
        """Move ``count`` bytes ahead without reading them (a member's data, read later at its offset by
        :class:`PartFiles`); the count passed, fewer only at the end of the stream. Every part passed is opened and
        recorded (start, size, identity). A stream with ``part_digests`` reads them instead (each part is hashed
        whole)."""
        if not self.random_access:
            view = memoryview(bytearray(min(count, COPY_CHUNK) or 1))
            done = 0
            while done < count:
                got = self.readinto(view[:min(len(view), count - done)])
                if not got:
                    break
                done += got
            return done
        done = 0
        while done < count:
            if self.fd is None and not self._next():
                break
            step = min(count - done, self.starts[-1] + self.sizes[-1] - self.position)
            if step <= 0:
                self._end_part()
                continue
            os.lseek(self.fd, step, os.SEEK_CUR)
            self.position += step
            done += step
        return done

    def parts_holding(self, start, end):
        """Names of the parts that held the stream's bytes ``start`` to ``end`` (exclusive)."""
        return [os.path.basename(self.paths[i]) for i, first in enumerate(self.starts)
                if first < end and first + self.sizes[i] > start]

    def close(self):
        self._end_part()


class PartFiles(object):
    """Reads of a :class:`PartReader`'s stream at given offsets (:meth:`readinto_at`), with descriptors of its own
    (one :class:`PartFiles` per thread). Only the parts the reader has already passed can be read: each is opened
    again with ``O_NOFOLLOW`` and must still be the very file (device and inode) the reader saw, so a part replaced
    in between is refused, never read."""

    def __init__(self, reader):
        self.reader = reader
        self.index = None
        self.fd = None

    def _open(self, index):
        self.close()
        fd = os.open(self.reader.paths[index], _READ_FLAGS)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != self.reader.idents[index]:
            os.close(fd)
            raise BundleError("%s was replaced while the bundle was read" % self.reader.paths[index])
        self.index, self.fd = index, fd

    def readinto_at(self, view, offset):
        """Read into ``view`` the stream's bytes from ``offset`` (fewer at the end of a part); 0 past the end."""
        starts = self.reader.starts
        index = bisect.bisect_right(starts, offset) - 1
        if index < 0 or offset >= starts[index] + self.reader.sizes[index]:
            return 0
        if index != self.index:
            self._open(index)
        end = starts[index] + self.reader.sizes[index]
        count = os.preadv(self.fd, [view[:min(len(view), end - offset)]], offset - starts[index])
        self.reader.count_read(count)
        return count

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
        self.index = self.fd = None


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


def is_sha256(value):
    """Whether ``value`` is a lowercase hex sha256."""
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def manifest_bytes(manifest):
    """The manifest member's bytes (what the sidecar's ``manifest_sha256`` is the sha256 of)."""
    return json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")


def hash_workers():
    """Helper threads that hash files at once: one per core, at most 4 (the copy itself needs little CPU)."""
    return max(1, min(4, os.cpu_count() or 1))


def write_bundle(model_dir, manifest, stream, chunk=CHUNK, workers=None):
    """Write the tar stream of ``manifest`` (files read from ``model_dir``) into ``stream`` (``write(bytes)``).
    Returns the sha256 of the manifest member.

    The headers come from ``tarfile.TarInfo.tobuf`` (pax format, so any name is kept exactly); the data is read into
    reused buffers of ``chunk`` bytes and each buffer is written to ``stream`` while a helper thread hashes it
    (``workers`` helpers, consecutive files on different ones). Every file is opened with ``O_NOFOLLOW``, must be a
    regular file of its listed size, and must hash to its listed sha256. Raises BundleError naming every file that
    failed (the stream is then to be thrown away).
    """
    data = manifest_bytes(manifest)
    digests = []
    written = 0

    def emit(chunk):
        stream.write(chunk)
        return len(chunk)

    written += emit(_member(MANIFEST_MEMBER, len(data)).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
    written += emit(data + _padding(len(data)))
    with HashPipeline(chunk, workers=workers or hash_workers()) as pipe:
        for lane, item in enumerate(manifest["files"]):
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
                    filled = pipe.fill(lambda view, left=item["size"] - count: os.readv(fd, [view[:left]]))
                    if filled is None:
                        break
                    index, view, got = filled
                    pipe.hash(digest, index, got, lane)
                    count += emit(view[:got])
                if count < item["size"]:
                    raise BundleError("%s ended after %d of %d bytes while it was read" % (item["path"], count,
                                                                                           item["size"]))
                written += count + emit(_padding(count))
                digests.append((item, digest))
            finally:
                os.close(fd)
        pipe.wait()
    problems = [item["path"] for item, digest in digests if digest.hexdigest() != item["sha256"]]
    end = 2 * BLOCK
    end += -(written + end) % RECORD
    emit(b"\0" * end)
    if problems:
        raise BundleError("%d file(s) do not match their sha256 in the completion marker: %s; the bundle was not "
                          "written" % (len(problems), ", ".join(problems[:20])), problems)
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------------------------
TRUNCATED = "the bundle ends in the middle of a member (truncated or a part is missing)"


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
    """The members of a tar stream read front to back from ``stream`` (``read(n)``, ``readinto(buffer)``), without
    tarfile's stream buffering. Headers are parsed (and their checksum checked) by ``tarfile.TarInfo.frombuf``; pax
    records override path and size; the padding after each member must be zeros. Each member is a TarInfo; its data
    is read with :meth:`readinto` or :meth:`read_data`, or passed by the next :meth:`next` - without reading it when
    the stream has ``random_access`` (a :class:`PartReader`: the data is then read at its offset, ``data_start``,
    by :class:`PartFiles`). ``position`` counts the bytes of ``stream`` read or passed."""

    def __init__(self, stream):
        self.stream = stream
        self.left = 0        # data bytes of the current member not read yet
        self.pad = 0
        self.position = 0
        self.data_start = 0  # stream offset of the current member's data
        self.name = None     # the current member
        self.random_access = bool(getattr(stream, "random_access", False))

    def _read(self, size):
        data = self.stream.read(size)
        self.position += len(data)
        return data

    def _read_exact(self, size):
        parts = []
        while size > 0:
            chunk = self._read(min(size, COPY_CHUNK))
            if not chunk:
                raise BundleError(TRUNCATED)
            parts.append(chunk)
            size -= len(chunk)
        return b"".join(parts)

    def _skip(self, count, zeros_after=None):
        """Read past ``count`` bytes; with ``zeros_after`` (a member name) they are padding and must be zeros."""
        while count > 0:
            start = self.position
            chunk = self._read(min(count, COPY_CHUNK))
            if not chunk:
                raise BundleError(TRUNCATED)
            if zeros_after is not None and chunk.count(0) != len(chunk):
                raise BundleError("the padding after %s holds bytes that are not zeros (stream offset %d%s): the "
                                  "bundle is damaged" % (zeros_after, start, self.where(start, self.position)))
            count -= len(chunk)

    def _pass(self, count):
        """Go past ``count`` bytes of member data: skipped unread when the stream allows it, read otherwise."""
        if count > 0 and self.random_access:
            done = self.stream.skip(count)
            self.position += done
            if done < count:
                raise BundleError(TRUNCATED)
            return
        self._skip(count)

    def where(self, start, end):
        """``' in <parts>'`` for the stream's bytes ``start`` to ``end`` when the stream knows its parts."""
        holding = getattr(self.stream, "parts_holding", None)
        names = holding(start, end) if holding is not None else []
        return (" in %s" % ", ".join(names)) if names else ""

    def next(self):
        """The next member, or None at the end of the archive."""
        self._pass(self.left)
        self._skip(self.pad, zeros_after=self.name)
        self.left = self.pad = 0
        pax = {}
        while True:
            block = self._read(BLOCK)
            if len(block) < BLOCK:
                block += self._read_exact(BLOCK - len(block)) if block else b""
            if not block or block == b"\0" * BLOCK:
                return None
            try:
                info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            except tarfile.HeaderError as exc:
                start = self.position - BLOCK
                raise BundleError("the bundle holds a damaged tar header at stream offset %d%s: %s" % (
                    start, self.where(start, self.position), exc))
            if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE):
                data = self._read_exact(info.size)
                self._skip(-info.size % BLOCK, zeros_after="a pax header")
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
        self.name = info.name
        self.data_start = self.position
        return info

    def readinto(self, view):
        """Read the current member's data into the writable buffer ``view``: the count (0 at the member's end)."""
        size = min(len(view), self.left)
        if size <= 0:
            return 0
        count = self.stream.readinto(view[:size])
        if not count:
            raise BundleError(TRUNCATED)
        self.left -= count
        self.position += count
        return count

    def read_data(self, size=COPY_CHUNK):
        """Up to ``size`` bytes of the current member's data (b'' at its end)."""
        if self.left <= 0:
            return b""
        chunk = self._read(min(size, self.left))
        if not chunk:
            raise BundleError(TRUNCATED)
        self.left -= len(chunk)
        return chunk

    def finish(self):
        """After :meth:`next` returned None: read to the end of the stream, which must hold only zeros (the end of
        the archive and the record's padding); the count read."""
        count = 0
        while True:
            start = self.position
            chunk = self._read(COPY_CHUNK)
            if not chunk:
                return count
            if chunk.count(0) != len(chunk):
                raise BundleError("the bundle holds bytes that are not zeros after its end of archive (stream offset "
                                  "%d%s)" % (start, self.where(start, self.position)))
            count += len(chunk)


def read_manifest(tar, sha256=None):
    """The first member of a :class:`TarReader`, as a checked manifest. ``sha256``: what the manifest member's
    sha256 must be (the sidecar's ``manifest_sha256``)."""
    member = tar.next()
    if member is None or member.name != MANIFEST_MEMBER or not member.isreg():
        raise BundleError("not a model bundle: the first member is %r, expected %s" % (
            member.name if member is not None else None, MANIFEST_MEMBER))
    if member.size > MAX_MANIFEST_BYTES:
        raise BundleError("the bundle manifest is larger than %d bytes" % MAX_MANIFEST_BYTES)
    data = b"".join(iter(tar.read_data, b""))
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise BundleError("the bundle manifest does not match the manifest_sha256 of its sidecar: the bundle or the "
                          "sidecar is damaged, or they are not of the same export")
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


def _extract_one(tar, pipe, lane, staging_files, entry):
    """Write the current member into a new staging file while helper ``lane`` of ``pipe`` hashes the same buffers.
    ``(digest, bytes, mtime_ns)``: the digest is complete once ``pipe.wait()`` returned."""
    digest = hashlib.sha256()
    count = 0
    fd = _create(staging_files, entry["path"])
    try:
        while True:
            filled = pipe.fill(tar.readinto)
            if filled is None:
                break
            index, view, got = filled
            pipe.hash(digest, index, got, lane)
            _write_all(fd, view[:got])
            count += got
        mtime_ns = os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)
    return digest, count, mtime_ns


def _extract_at(files, pipe, staging_files, entry, start, stop, syncer=None):
    """:func:`_extract_one` for the member whose data starts at stream offset ``start``, read there through
    ``files`` (a :class:`PartFiles`) into the buffers of ``pipe`` (used by this thread alone); stops early once
    ``stop`` is set (another file failed). ``syncer`` (model_install.BackgroundSync): the data written is handed to it
    every SYNC_EVERY bytes and at the end, to reach the disk while the copy goes on."""
    digest = hashlib.sha256()
    count = 0
    size = entry["size"]
    fd = _create(staging_files, entry["path"])
    try:
        unsynced = 0
        while count < size and not stop.is_set():
            filled = pipe.fill(lambda view, at=start + count, left=size - count: files.readinto_at(view[:left], at))
            if filled is None:
                raise BundleError(TRUNCATED)
            index, view, got = filled
            pipe.hash(digest, index, got)
            _write_all(fd, view[:got])
            count += got
            unsynced += got
            if syncer is not None and (unsynced >= SYNC_EVERY or count >= size):
                syncer.sync_fd(fd)
                unsynced = 0
        mtime_ns = os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)
    return digest, count, mtime_ns


def _extract_parallel(tar, jobs, staging_files, workers, chunk):
    """Extract ``jobs`` (``(entry, data offset)`` in stream order) with ``workers`` threads (this one included),
    each taking the next file, reading it at its offset and handing its buffers to a hashing helper of its own:
    files are copied and hashed on several cores at once, each byte still read once and hashed once from the buffer
    that is written. Each thread has its own :class:`HashPipeline` (its own buffers): a buffer the helper is done
    with is refilled only by the thread that wrote it, once the write returned. Returns ``[(entry, digest, bytes,
    mtime_ns, where)]`` in stream order, every digest complete."""
    results = [None] * len(jobs)
    errors = []
    stop = threading.Event()
    lock = threading.Lock()
    pending = iter(range(len(jobs)))

    def work():
        files = PartFiles(tar.stream)
        try:
            with HashPipeline(chunk, depth=EXTRACT_DEPTH) as pipe:
                while not stop.is_set():
                    with lock:
                        index = next(pending, None)
                    if index is None:
                        break
                    entry, start = jobs[index]
                    digest, count, mtime_ns = _extract_at(files, pipe, staging_files, entry, start, stop, syncer)
                    results[index] = (entry, digest, count, mtime_ns, tar.where(start, start + entry["size"]))
                pipe.wait()
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)
            stop.set()
        finally:
            files.close()

    with BackgroundSync() as syncer:
        in_threads(work, min(workers, len(jobs)), "llmops-bundle-extract")
    if errors:
        raise errors[0]
    return results


def _accepted(member, wanted, seen, problems):
    """The manifest entry ``member`` (a TarInfo) stands for, or None with the reason added to ``problems``."""
    name = member.name
    if name not in wanted:
        problems.append("unexpected member %r (not in the manifest)" % name)
        return None
    if name in seen:
        problems.append("%s appears twice" % name)
        return None
    seen.add(name)
    entry = wanted[name]
    if not member.isreg():
        problems.append("%s is not a regular file in the bundle (type %r)" % (name, member.type))
        return None
    if member.size != entry["size"]:
        problems.append("%s has %d bytes in the bundle, the manifest says %d" % (name, member.size, entry["size"]))
        return None
    return entry


def extract_bundle(tar, manifest, staging_files, only=None, chunk=CHUNK, workers=None):
    """Write the members of ``tar`` (a :class:`TarReader` past its manifest) into ``staging_files`` and verify each
    one against the manifest's sha256, hashed from the very buffers that are written (each byte read and hashed
    once).

    Over parts (a :class:`PartReader`), every header is read and checked first, to the end of the archive, without
    reading the files' data; then the files are copied at their offsets by ``workers`` threads at once, each with its
    own hashing helper (several files on several cores). Over any other stream (or parts whose own digests are
    computed) the members are copied front to back, consecutive files hashed by different helpers.

    ``only``: paths to write (others are passed unread - over parts - and checked by size only: files already in
    place). Returns the verified entries (with mtime_ns). Raises BundleError with every problem (nothing partial is
    returned; a file that failed is removed from the staging directory and named with the part(s) its bytes came
    from).
    """
    wanted = dict((f["path"], f) for f in manifest["files"])
    seen = set()
    good, problems = [], []
    workers = workers or hash_workers()
    if tar.random_access:
        jobs = []
        for member in iter(tar.next, None):
            entry = _accepted(member, wanted, seen, problems)
            if entry is not None and (only is None or entry["path"] in only):
                jobs.append((entry, tar.data_start))
        refused = problems or len(seen) < len(wanted)       # no need to copy anything
        written = [] if refused else _extract_parallel(tar, jobs, staging_files, workers, chunk)
    else:
        written = []
        with HashPipeline(chunk, workers=workers) as pipe:
            for member in iter(tar.next, None):
                entry = _accepted(member, wanted, seen, problems)
                if entry is None or (only is not None and entry["path"] not in only):
                    continue
                start = tar.position
                digest, count, mtime_ns = _extract_one(tar, pipe, len(written), staging_files, entry)
                written.append((entry, digest, count, mtime_ns, tar.where(start, tar.position)))
            pipe.wait()
    for entry, digest, count, mtime_ns, where in written:
        if count != entry["size"] or digest.hexdigest() != entry["sha256"]:
            problems.append("%s does not match its sha256 (%d bytes read%s)" % (entry["path"], count, where))
            os.unlink(os.path.join(staging_files, entry["path"]))
        else:
            good.append(dict(entry, mtime_ns=mtime_ns))
    missing = sorted(set(wanted) - seen)
    if missing:
        problems.append("%d file(s) of the manifest are not in the bundle: %s" % (
            len(missing), ", ".join(missing[:20])))
    if problems:
        raise BundleError("the bundle was refused (%d problem(s)): %s" % (len(problems), "; ".join(problems[:20])),
                          problems)
    return good
