# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""sha256 of files: one file (:func:`sha256_file`), many files at once (:func:`hash_files`), digests computed while
a file was written (:func:`streamed_digests`), files followed while another process writes them
(:class:`FollowHasher`), and bytes hashed in helper threads while this one copies them (:class:`HashPipeline`).

Standard library only (runs on targets with Python >= 3.8). Reading a downloaded file again after the download
doubles the disk traffic (140 GB read back is minutes) and, on a busy machine, costs as much CPU as the download
itself. So the bytes are hashed while they arrive:

* ``modelscope_download``'s SDK runner hashes each file from the very bytes the SDK hands to ``write()`` (no second
  read, a hashing thread per file) and records, when the file is closed, its digest with the file's identity
  ``[sha256, size, st_dev, st_ino, st_mtime_ns]``. :func:`streamed_digests` accepts such a digest only when the
  final name is a regular file with exactly that identity and the listed size: a file written, truncated or replaced
  after it was hashed is hashed again by :func:`hash_files`.
* :class:`FollowHasher` reads files **while they grow**, from the page cache, in threads of this process, for
  writers that cannot hash themselves (an SDK that writes files another way). What makes a followed hash count
  (:meth:`FollowHasher.finish`): the final name is a regular file that is the very inode that was followed (device
  and inode numbers), still linked, of exactly the listed size, and every one of its bytes was read after it was
  written. A file that was deleted and started again is followed again from its first byte; a file that shrank
  under the reader is read again from the start.

* :class:`HashPipeline` hashes bytes this process copies itself (a bundle written or read by ``model_bundle``): the
  copy reads into one of a few reused buffers, hands it to a helper thread that updates the file's sha256, and writes
  the very same buffer while the helper hashes it; a buffer is refilled only once the helper is done with it. Each
  byte is read once and hashed once, the hashing runs beside the copy instead of after it, and with several helpers
  consecutive files are hashed on different cores at once.

Anything else is hashed again by :func:`hash_files` (in parallel across files). The check against the listed size and
sha256 is never skipped: only *when* the bytes are read changes.
"""

import errno
import hashlib
import os
import queue
import stat
import threading

from ansible_collections.llmops.deploy.plugins.module_utils.tree_safety import PARTIAL_SUFFIX, lstat_or_none

#: Bytes read at once by a follower, and by :func:`sha256_file`. Each thread reads into one buffer it keeps: a fresh
#: multi-megabyte ``bytes`` per read costs more CPU (allocation, page faults) than the copy itself, about a quarter
#: of the sha256 time per GiB on the 2-core test machine.
CHUNK = 1024 * 1024
HASH_CHUNK = 1024 * 1024
_PREADV = getattr(os, "preadv", None)
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def open_regular(path):
    """A read-only descriptor of the regular file at ``path``, opened without following a link there (a link put in
    place after the caller's ``lstat`` is refused, not followed) and without blocking on a FIFO. Raises OSError."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def sha256_file(path, chunk_size=HASH_CHUNK):
    """Lowercase hex sha256 of a regular file, read in chunks into one reused buffer (no allocation per chunk).

    ``path`` is a path (opened with :func:`open_regular`: a link or a non-regular file is refused with OSError) or an
    open descriptor, which is closed."""
    digest = hashlib.sha256()
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    fd = path if isinstance(path, int) else open_regular(path)
    with open(fd, "rb", buffering=0) as handle:
        while True:
            count = handle.readinto(buf)
            if not count:
                break
            digest.update(view[:count])
    return digest.hexdigest()


def _pread_into(fd, buf, offset):
    """Bytes read into ``buf`` from ``offset`` of ``fd`` (``preadv`` where the OS has it; a copy otherwise)."""
    if _PREADV is not None:
        return _PREADV(fd, [buf], offset)
    data = os.pread(fd, len(buf), offset)
    buf[:len(data)] = data
    return len(data)


def streamed_digests(root, entries, records):
    """``{path: sha256}`` of the ``entries`` (dicts with ``path``, ``size``) under ``root`` whose digest, computed
    while the file was written, still describes the file: ``records`` maps a path to ``[sha256, size, st_dev,
    st_ino, st_mtime_ns]`` taken when the writer closed it; the file's ``lstat`` must show a regular file with that
    very device, inode, size and mtime, and the size must be the listed one. Anything malformed is ignored (the
    file is then hashed from disk)."""
    if not isinstance(records, dict):
        return {}
    found = {}
    for entry in entries:
        record = records.get(entry["path"])
        if not isinstance(record, list) or len(record) != 5 or not isinstance(record[0], str) \
                or len(record[0]) != 64 or not all(isinstance(v, int) and not isinstance(v, bool)
                                                   for v in record[1:]):
            continue
        st = lstat_or_none(os.path.join(root, entry["path"]))
        if st is None or not stat.S_ISREG(st.st_mode):
            continue
        if record[1:] == [st.st_size, st.st_dev, st.st_ino, st.st_mtime_ns] and st.st_size == entry["size"]:
            found[entry["path"]] = record[0].lower()
    return found


class _Follow(object):
    def __init__(self, entry):
        self.entry = entry
        self.fd = None
        self.ident = None
        self.offset = 0
        self.digest = hashlib.sha256()
        self.busy = False
        self.restarts = 0

    def reset(self):
        if self.fd is not None:
            os.close(self.fd)
        self.fd = None
        self.ident = None
        self.offset = 0
        self.digest = hashlib.sha256()


class FollowHasher(object):
    """Follow the files of ``entries`` (dicts with ``path``, ``size``) under ``root`` while they are written.

    ``start()`` launches ``workers`` threads; ``stop()`` ends them; ``finish()`` (after the writer exited) returns
    ``{path: sha256}`` for the files whose every byte was hashed from the final inode, and closes everything.
    ``sync_every``: also write a file's data to disk (``fdatasync``) each time that many more bytes were hashed, so it
    reaches the disk while the writer goes on (None: never).
    """

    def __init__(self, root, entries, workers=2, poll=0.05, chunk=CHUNK, sync_every=None):
        self.root = root
        self.sync_every = sync_every
        self.items = [_Follow(e) for e in entries]
        self.workers = max(1, int(workers))
        self.poll = poll
        self.chunk = chunk
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []
        self.bytes_followed = 0
        self._local = threading.local()

    # -- threads
    def start(self):
        for index in range(min(self.workers, max(1, len(self.items)))):
            thread = threading.Thread(target=self._loop, name="llmops-hash-%d" % index)
            thread.daemon = True
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join()
        self.threads = []

    def _claim(self, start):
        with self.lock:
            count = len(self.items)
            for step in range(count):
                item = self.items[(start + step) % count]
                if not item.busy:
                    item.busy = True
                    return item, (start + step + 1) % count
        return None, start

    def _loop(self):
        cursor = 0
        idle_round = 0
        while not self.stopping.is_set():
            item, cursor = self._claim(cursor)
            progressed = False
            if item is not None:
                try:
                    progressed = self._advance(item)
                except OSError:
                    item.reset()
                finally:
                    with self.lock:
                        item.busy = False
            if progressed:
                idle_round = 0
                continue
            idle_round += 1
            if idle_round >= max(1, len(self.items)):
                idle_round = 0
                self.stopping.wait(self.poll)

    # -- one file
    def _names(self, item):
        full = os.path.join(self.root, item.entry["path"])
        return full + PARTIAL_SUFFIX, full

    def _current(self, item):
        """``(dev, ino)`` now reachable at the partial or the final name (partial first), else None."""
        for name in self._names(item):
            st = lstat_or_none(name)
            if st is not None and stat.S_ISREG(st.st_mode):
                return (st.st_dev, st.st_ino), name
        return None, None

    def _advance(self, item):
        """Read what is new in ``item``'s file; True when bytes were hashed."""
        if item.fd is not None:
            fst = os.fstat(item.fd)
            if fst.st_nlink == 0:
                item.restarts += 1
                item.reset()        # deleted (the writer restarts it): follow the new file from byte 0
        if item.fd is None:
            ident, name = self._current(item)
            if ident is None:
                return False
            try:
                fd = os.open(name, _OPEN_FLAGS)
            except OSError:
                return False
            fst = os.fstat(fd)
            if not stat.S_ISREG(fst.st_mode) or (fst.st_dev, fst.st_ino) != ident:
                os.close(fd)
                return False
            item.fd, item.ident = fd, ident
        fst = os.fstat(item.fd)
        if fst.st_size < item.offset:
            item.restarts += 1
            ident = item.ident
            item.reset()
            return bool(ident)
        return self._read(item, min(fst.st_size, item.entry["size"])) > 0

    def _read(self, item, end, stoppable=True):
        """Hash ``item``'s bytes from its offset up to ``end`` through this thread's buffer; the count read."""
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = bytearray(self.chunk)
            self._local.view = memoryview(buf)
        view = self._local.view
        total = 0
        while item.offset < end and not (stoppable and self.stopping.is_set()):
            count = _pread_into(item.fd, view[:min(self.chunk, end - item.offset)], item.offset)
            if not count:
                break
            item.digest.update(view[:count])
            item.offset += count
            total += count
            if self.sync_every and item.offset // self.sync_every != (item.offset - count) // self.sync_every:
                try:
                    os.fdatasync(item.fd)
                except OSError:
                    pass   # the sync before the marker reports it
        self.bytes_followed += total
        return total

    # -- the end
    def finish(self):
        """After the writer exited: catch up, then ``{path: sha256}`` of every file hashed from its final inode."""
        self.stop()
        done = {}
        for item in self.items:
            try:
                final = lstat_or_none(os.path.join(self.root, item.entry["path"]))
                if item.fd is not None and final is not None and stat.S_ISREG(final.st_mode) \
                        and (final.st_dev, final.st_ino) == item.ident and final.st_size == item.entry["size"]:
                    self._read(item, final.st_size, stoppable=False)
                    fst = os.fstat(item.fd)
                    if item.offset == item.entry["size"] == fst.st_size and fst.st_nlink > 0:
                        done[item.entry["path"]] = item.digest.hexdigest()
            except OSError:
                pass
            finally:
                item.reset()
        return done


def in_threads(work, count, name):
    """Run ``work()`` in ``count`` threads at once, this one included (at least this one), and return when every one
    has returned. ``work`` takes its jobs itself (a shared list under a lock) and keeps its own errors."""
    threads = [threading.Thread(target=work, name="%s-%d" % (name, index)) for index in range(1, max(1, count))]
    for thread in threads:
        thread.daemon = True
        thread.start()
    try:
        work()
    finally:
        for thread in threads:
            thread.join()


def hash_files(root, paths, workers=2, hasher=sha256_file):
    """``{path: sha256}`` of files under ``root``, ``workers`` at a time (threads: hashlib releases the GIL).
    A file that cannot be read maps to None."""
    results = {}
    pending = list(paths)
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                if not pending:
                    return
                rel = pending.pop()
            try:
                digest = hasher(os.path.join(root, rel))
            except (IOError, OSError):
                digest = None
            with lock:
                results[rel] = digest

    in_threads(work, min(int(workers), len(pending)), "llmops-hash-files")
    return results


class HashPipeline(object):
    """sha256 of bytes this thread copies, computed in helper threads beside the copy.

    ``depth`` buffers of ``chunk`` bytes per helper are reused for the whole run. The copy loop takes a free buffer
    (:meth:`take`), reads into it, hands the bytes read to a helper (:meth:`hash`: ``digest.update`` runs there;
    hashlib releases the GIL) and writes the same buffer meanwhile; it must not touch the buffer after writing it.
    :meth:`take` blocks until a buffer is free again, :meth:`wait` until every digest handed over is up to date,
    so a digest is read only after :meth:`wait`. ``workers`` helpers (lanes) hash different files at the same time:
    all the buffers of one digest must go to the same lane (they are hashed in the order given). Use as a context
    manager (the helpers end on exit).

    One pipeline serves one copying thread: a helper gives a buffer back as soon as it has hashed it, possibly while
    the copier is still writing it, so only that copier's own next :meth:`take` may reuse it. Threads that copy at
    the same time each need a pipeline of their own.
    """

    def __init__(self, chunk=CHUNK, depth=4, workers=1):
        self.chunk = int(chunk)
        self.workers = max(1, int(workers))
        self.depth = max(2, int(depth)) * self.workers
        self._views = [memoryview(bytearray(self.chunk)) for _index in range(self.depth)]
        self._free = queue.Queue()
        for index in range(self.depth):
            self._free.put(index)
        self._lanes = [None] * self.workers
        self._error = None
        self._count_lock = threading.Lock()
        self.bytes_hashed = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def take(self):
        """``(index, view)``: a buffer no helper reads."""
        index = self._free.get()
        return index, self._views[index]

    def fill(self, read):
        """Take a free buffer and fill it with ``read(view)``, which returns the number of bytes it read:
        ``(index, view, count)``, or None at the end (``read`` returned 0). The buffer goes back to the free ones when
        ``read`` reads nothing or raises; otherwise hand it to :meth:`hash`."""
        index, view = self.take()
        try:
            count = read(view)
        except BaseException:
            self.give_back(index)
            raise
        if not count:
            self.give_back(index)
            return None
        return index, view, count

    def give_back(self, index):
        """Return a buffer taken with :meth:`take` and not handed to :meth:`hash`."""
        self._free.put(index)

    def hash(self, digest, index, count, lane=0):
        """Update ``digest`` with the first ``count`` bytes of buffer ``index`` in helper ``lane`` (modulo
        ``workers``); the buffer comes back to the free ones when that is done."""
        lane %= self.workers
        if self._lanes[lane] is None:
            jobs = queue.Queue()
            thread = threading.Thread(target=self._work, args=(jobs,), name="llmops-hash-pipeline-%d" % lane)
            thread.daemon = True
            thread.start()
            self._lanes[lane] = (jobs, thread)
        self._lanes[lane][0].put((digest, index, count))

    def _work(self, jobs):
        while True:
            job = jobs.get()
            if job is None:
                return
            digest, index, count = job
            try:
                if self._error is None:
                    digest.update(self._views[index][:count])
                    with self._count_lock:
                        self.bytes_hashed += count
            except Exception as exc:  # pylint: disable=broad-except
                self._error = exc
            finally:
                self._free.put(index)

    def wait(self):
        """Block until the helpers have hashed everything handed to them (every buffer is free again)."""
        taken = [self._free.get() for _index in range(self.depth)]
        for index in taken:
            self._free.put(index)
        if self._error is not None:
            raise self._error

    def close(self):
        """End the helper threads (after the work handed to them)."""
        for lane in self._lanes:
            if lane is not None:
                lane[0].put(None)
                lane[1].join()
        self._lanes = [None] * self.workers
