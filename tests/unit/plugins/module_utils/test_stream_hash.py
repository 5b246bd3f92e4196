# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""stream_hash: one file hashed in chunks; files hashed while a writer appends to them, stepped by hand (no threads,
no timing); bytes hashed in a helper thread beside the copy (HashPipeline), ordered by events, not by durations."""

import hashlib
import os
import threading
import time

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils.stream_hash import (
    FollowHasher, HashPipeline, hash_files, sha256_file)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def follower(tmp_path, *entries):
    return FollowHasher(str(tmp_path), [{"path": p, "size": s} for p, s in entries], chunk=7)


def append(path, data):
    with open(str(path), "ab") as handle:
        handle.write(data)


def test_bytes_hashed_as_they_arrive_then_renamed(tmp_path):
    data = b"0123456789" * 10
    hasher = follower(tmp_path, ("a.bin", len(data)))
    item = hasher.items[0]
    assert hasher._advance(item) is False                       # nothing there yet
    append(tmp_path / "a.bin.incomplete", data[:30])
    assert hasher._advance(item) and item.offset == 30
    append(tmp_path / "a.bin.incomplete", data[30:])
    assert hasher._advance(item) and item.offset == len(data)
    os.rename(str(tmp_path / "a.bin.incomplete"), str(tmp_path / "a.bin"))
    assert hasher.finish() == {"a.bin": sha(data)}
    assert hasher.bytes_followed == len(data)


def test_a_file_deleted_and_started_again_is_followed_from_its_first_byte(tmp_path):
    good = b"G" * 50
    hasher = follower(tmp_path, ("a.bin", len(good)))
    item = hasher.items[0]
    append(tmp_path / "a.bin.incomplete", b"B" * 50)            # a first attempt, bad bytes
    hasher._advance(item)
    os.unlink(str(tmp_path / "a.bin.incomplete"))               # the writer's own retry
    append(tmp_path / "a.bin.incomplete", good[:20])
    hasher._advance(item)                                        # notices the deletion
    hasher._advance(item)
    append(tmp_path / "a.bin.incomplete", good[20:])
    os.rename(str(tmp_path / "a.bin.incomplete"), str(tmp_path / "a.bin"))
    assert hasher.finish() == {"a.bin": sha(good)} and item.restarts == 1


def test_a_file_that_shrinks_is_read_again(tmp_path):
    hasher = follower(tmp_path, ("a.bin", 40))
    item = hasher.items[0]
    append(tmp_path / "a.bin.incomplete", b"X" * 30)
    hasher._advance(item)
    with open(str(tmp_path / "a.bin.incomplete"), "r+b") as handle:
        handle.truncate(0)
        handle.write(b"Y" * 10)
    hasher._advance(item)
    hasher._advance(item)
    append(tmp_path / "a.bin.incomplete", b"Y" * 30)
    os.rename(str(tmp_path / "a.bin.incomplete"), str(tmp_path / "a.bin"))
    assert hasher.finish() == {"a.bin": sha(b"Y" * 40)}


def test_a_final_file_that_is_not_the_followed_inode_is_not_vouched_for(tmp_path):
    hasher = follower(tmp_path, ("a.bin", 10), ("never.bin", 5))
    item = hasher.items[0]
    append(tmp_path / "a.bin.incomplete", b"A" * 10)
    hasher._advance(item)
    (tmp_path / "other").write_bytes(b"A" * 10)
    os.rename(str(tmp_path / "other"), str(tmp_path / "a.bin"))   # a different inode took the name
    assert hasher.finish() == {}


def test_a_file_of_the_wrong_size_is_left_to_the_full_check(tmp_path):
    hasher = follower(tmp_path, ("a.bin", 10))
    append(tmp_path / "a.bin.incomplete", b"A" * 12)
    hasher._advance(hasher.items[0])
    os.rename(str(tmp_path / "a.bin.incomplete"), str(tmp_path / "a.bin"))
    assert hasher.finish() == {}


def test_threads_follow_a_whole_download(tmp_path):
    files = dict(("f%d.bin" % i, os.urandom(100000 + i)) for i in range(5))
    hasher = FollowHasher(str(tmp_path), [{"path": p, "size": len(d)} for p, d in files.items()], workers=2,
                          poll=0.001, chunk=4096).start()
    items = dict((item.entry["path"], item) for item in hasher.items)
    for path, data in files.items():
        for start in range(0, len(data), 10000):
            append(tmp_path / (path + ".incomplete"), data[start:start + 10000])
        # the writer renames only once the reader is through (a condition, not a duration)
        deadline = time.monotonic() + 60
        while items[path].offset < len(data) and time.monotonic() < deadline:
            time.sleep(0.001)
        os.rename(str(tmp_path / (path + ".incomplete")), str(tmp_path / path))
    assert hasher.finish() == dict((p, sha(d)) for p, d in files.items())


def test_hash_files_in_parallel(tmp_path):
    files = dict(("d/f%d" % i, os.urandom(1000 * i)) for i in range(6))
    (tmp_path / "d").mkdir()
    for path, data in files.items():
        (tmp_path / path).write_bytes(data)
    assert hash_files(str(tmp_path), list(files) + ["d/missing"], workers=3) == dict(
        [(p, sha(d)) for p, d in files.items()] + [("d/missing", None)])


def test_sha256_file_small_chunks(tmp_path):
    data = os.urandom(10000)
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(str(tmp_path / "f"), chunk_size=333) == sha(data)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_pipeline_hashes_what_is_copied_through_its_buffers(workers):
    data = os.urandom(100003)
    pieces = [data[:50000], data[50000:50001], data[50001:]]
    copied = bytearray()
    digests = [hashlib.sha256() for _piece in pieces]   # three "files", each on its own lane when there are lanes
    with HashPipeline(chunk=4096, depth=3, workers=workers) as pipe:
        for lane, (digest, piece) in enumerate(zip(digests, pieces)):
            pos = 0
            while pos < len(piece):
                index, view = pipe.take()
                count = min(len(view), len(piece) - pos)
                view[:count] = piece[pos:pos + count]     # "read" into the buffer
                pipe.hash(digest, index, count, lane)
                copied += view[:count]                    # "write" the same buffer meanwhile
                pos += count
        pipe.wait()                                       # once, at the end: files overlap in the helpers
    assert bytes(copied) == data and pipe.bytes_hashed == len(data)
    assert [d.hexdigest() for d in digests] == [sha(p) for p in pieces]


class BlockingDigest(object):
    """A digest whose update waits for ``release`` (so the test sees the buffer held by the helper)."""

    def __init__(self, fail=False):
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail = fail
        self.data = b""

    def update(self, view):
        self.entered.set()
        self.release.wait()
        if self.fail:
            raise ValueError("digest failed")
        self.data += bytes(view)


def test_a_buffer_is_not_handed_out_again_while_the_helper_hashes_it():
    with HashPipeline(chunk=8, depth=2) as pipe:
        digest = BlockingDigest()
        index, view = pipe.take()
        view[:3] = b"abc"
        pipe.hash(digest, index, 3)
        assert digest.entered.wait(60)                    # the helper holds the buffer now
        other, _view = pipe.take()
        assert other != index and pipe._free.empty()      # the one being hashed is not free
        pipe.give_back(other)
        digest.release.set()
        pipe.wait()
        assert digest.data == b"abc" and pipe._free.qsize() == 2


def test_fill_gives_the_buffer_back_at_the_end_and_on_an_error():
    with HashPipeline(chunk=8, depth=2) as pipe:

        def read(view):
            view[:2] = b"hi"
            return 2
        index, view, count = pipe.fill(read)
        assert bytes(view[:count]) == b"hi" and pipe._free.qsize() == 1      # taken until hashed
        pipe.give_back(index)
        assert pipe.fill(lambda view: 0) is None and pipe._free.qsize() == 2

        def broken(view):
            raise OSError("read failed")
        with pytest.raises(OSError):
            pipe.fill(broken)
        assert pipe._free.qsize() == 2


def test_an_error_in_the_helper_is_raised_by_wait():
    with HashPipeline(chunk=8, depth=2) as pipe:
        digest = BlockingDigest(fail=True)
        digest.release.set()
        index, _view = pipe.take()
        pipe.hash(digest, index, 4)
        with pytest.raises(ValueError, match="digest failed"):
            pipe.wait()


def test_sha256_file_refuses_a_link_and_a_fifo_without_blocking(tmp_path):
    (tmp_path / "real").write_bytes(b"data")
    os.symlink("real", str(tmp_path / "link"))
    with pytest.raises(OSError):
        sha256_file(str(tmp_path / "link"))
    os.mkfifo(str(tmp_path / "fifo"))
    with pytest.raises(OSError) as info:
        sha256_file(str(tmp_path / "fifo"))     # no writer: opening it blocking would hang here
    assert "not a regular file" in str(info.value)
    fd = os.open(str(tmp_path / "real"), os.O_RDONLY)
    assert sha256_file(fd) == sha(b"data")      # an open descriptor is read (and closed)
    with pytest.raises(OSError):
        os.fstat(fd)
