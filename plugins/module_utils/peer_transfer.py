# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copy a model revision from peers (hosts that already hold it) into a private staging directory, trusting only the
manifest the controller fetched from the hub.

Standard library only (runs on targets with Python >= 3.8). The transport is rsync over SSH, pulled by the receiver
(``rsync --files-from`` of the files still missing, ``--inplace`` into the private staging directory, so a transfer
killed mid-file resumes from the bytes already there, from the same peer or another one). Each source is tried in
turn; every received file is checked against the manifest (size and sha256); a file that does not match is deleted
from the staging directory, recorded against the peer that served it, and fetched from the next source. The caller
then installs the verified files exactly as a bundle import does (module_utils ``model_install``).

The files are hashed while the bytes arrive (:class:`ArrivalHasher`), not after rsync exits, so the wall time is
about the transfer's, not the transfer's plus a second read of every byte. What rsync 3.2.7 does, read in its
``receiver.c`` and checked with a pull over a remote shell: with an ``--out-format`` holding a post-transfer escape
(``%b``) the receiving side prints a file's line after ``receive_data()`` returned (every byte of that pass written,
the file truncated to its length under ``--inplace``) and before it sets the mtime; a file whose whole-file checksum
failed is sent again in a second pass and printed a second time; a file the quick check skips is not printed. Within
one pass the receiver writes at strictly increasing offsets (literal data is written at the running offset; a block
matched at the same offset under ``--inplace`` is skipped over), so a file that did not exist when the transfer
started holds, below its current size, only bytes that pass will not write again. Hence:

* a large file absent when the transfer starts is followed while it grows (module_utils ``stream_hash.FollowHasher``:
  read from the page cache right behind rsync, from the very inode that ends at the final name), so even a model of
  one big file is hashed during its transfer;
* any other file (a small one, or a resumed partial file, whose old bytes rsync may rewrite anywhere) is hashed as soon
  as rsync prints its line, by ``hash_workers`` threads, while rsync goes on with the next files;
* an early digest counts only when rsync printed the file exactly once, the final name is still that regular file
  (same device, inode) of the listed size, and the digest equals the manifest's; anything else (not printed, printed
  twice, replaced, a digest that does not match) is hashed again from disk after rsync exited, as before, and only
  that second digest can reject a file. Nothing is opened through a link (``open_regular``: ``O_NOFOLLOW``).

What is left (``benchmarks/fanout_bench.py --peer-vs-rsync --breakdown``, 516 MiB in 17 files over loopback on the
2-core test machine): everything after rsync exits (the followers' catch-up, verification, move, marker) takes about
30 ms; on top of rsync's own CPU the receive costs the sha256 of every byte (about 0.6 CPU-second per GiB there, with
the CPU's SHA instructions) and the module's start-up (about 0.2 CPU-second, half of it compiling Ansible's zipped
module_utils). Where the link is slower than the CPUs that CPU hides beside the transfer; where the CPUs are the limit
(ssh's cipher on both ends, rsync, sha256 on the same two cores) it shows in the wall time.

The manifest is the bundle manifest (module_utils ``model_bundle``, format ``llmops.deploy/model-bundle/v1``): model,
revision, selection and every file's path, size and sha256; nothing the peer says (its marker, its listing) is used.
"""

import os
import queue
import re
import shlex
import stat
import subprocess
import threading

from ansible_collections.llmops.deploy.plugins.module_utils.fetch_plan import verify_fetched
from ansible_collections.llmops.deploy.plugins.module_utils.model_bundle import bundle_manifest, manifest_problems
from ansible_collections.llmops.deploy.plugins.module_utils.model_install import SYNC_EVERY
from ansible_collections.llmops.deploy.plugins.module_utils.stream_hash import (
    FollowHasher, hash_files, open_regular, sha256_file)
from ansible_collections.llmops.deploy.plugins.module_utils.tree_safety import lstat_or_none

_STATS_RE = re.compile(r"^Total bytes received:\s*([\d,.]+)", re.MULTILINE)
_HOST_RE = re.compile(r"^[A-Za-z0-9._:%-]+$")
_USER_RE = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")
#: rsync's line for each file it finished receiving: ``%b`` (a post-transfer escape) makes the receiver print it
#: after the file's bytes are written, not before; the name comes last (it may hold spaces).
DONE_TAG = "llmops-received"
OUT_FORMAT = DONE_TAG + " %b %n"
_DONE_RE = re.compile(r"^" + DONE_TAG + r" (\d+) (.+)$")
_ESCAPE_RE = re.compile(rb"\\#([0-7]{3})")
#: rsync options (of the user's ``rsync_opts``, which come after OUT_FORMAT) that replace the per-file line
#: (``--out-format`` and its old name ``--log-format``) or silence it (``--quiet``, ``-q``): with one of them no file is
#: hashed while it arrives; every file is then hashed after rsync exits (still checked, only later). ``--quiet``
#: also silences ``--stats``: the bytes received are then unknown.
LINE_OPTIONS = ("--out-format", "--log-format", "--quiet", "-q")
#: Files followed while they grow: new files of at least FOLLOW_MIN_BYTES, at most HELD_MAX of them (each follower
#: polls its files; thousands of small files would cost more in ``lstat`` than they save). Smaller ones are hashed
#: on rsync's line. At most HELD_MAX descriptors are kept for line-hashed files; beyond, files are hashed after rsync.
FOLLOW_MIN_BYTES = 4 * 1024 * 1024
HELD_MAX = 256


class PeerError(Exception):
    """A source or an option cannot be used; the message says which and why."""

    def __init__(self, message):
        super(PeerError, self).__init__(message)
        self.message = message


def fanout_manifest(model_id, revision_requested, revision, endpoint, include, exclude, entries):
    """The manifest the controller hands every receiver: the bundle manifest of the hub's selected entries."""
    marker_like = {"model_id": model_id, "revision_requested": revision_requested, "revision": revision,
                   "endpoint": endpoint, "include": list(include or []), "exclude": list(exclude or []),
                   "files": [{"path": e["path"], "size": e["size"], "sha256": e["sha256"]} for e in entries]}
    return bundle_manifest(marker_like)


def check_manifest(doc):
    """Raise PeerError when the manifest cannot be trusted (bad paths, sizes, sha256, digest, duplicates)."""
    problems = manifest_problems(doc)
    for key in ("model_id", "revision_requested", "revision", "endpoint"):
        if isinstance(doc, dict) and (not isinstance(doc.get(key), str) or not doc.get(key)):
            problems.append("manifest field %s is missing" % key)
    if problems:
        raise PeerError("the manifest was refused: %s" % "; ".join(problems[:20]))
    return doc


def check_source(source):
    """A source as the module takes it: ``{'name', 'host', 'port', 'user'}``, checked (no option injection)."""
    if not isinstance(source, dict):
        raise PeerError("sources entry %r is not a dict with name, host, port and user" % (source,))
    name = source.get("name") or source.get("host")
    host, user, port = source.get("host"), source.get("user") or "root", source.get("port")
    if port is None or port == "":
        port = 22
    if not isinstance(host, str) or not _HOST_RE.match(host) or host.startswith("-"):
        raise PeerError("sources entry %r: host must be a host name or address, got %r" % (name, host))
    if not isinstance(user, str) or not _USER_RE.match(user):
        raise PeerError("sources entry %r: user must be a login name, got %r" % (name, user))
    try:
        port = int(port)
    except (TypeError, ValueError):
        port = -1
    if not 0 < port < 65536:
        raise PeerError("sources entry %r: port must be 1-65535, got %r" % (name, source.get("port")))
    return {"name": str(name), "host": host, "port": port, "user": user}


def ssh_command(key_file, known_hosts_file, port, connect_timeout=20, ssh="ssh"):
    """The ``rsync -e`` command: the receiver's key only, the host keys the controller read from the peers only
    (strict checking), no agent, no password prompt."""
    argv = [ssh, "-p", str(port), "-i", key_file, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + known_hosts_file,
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=%d" % connect_timeout,
            "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-o", "LogLevel=ERROR"]
    return " ".join(shlex.quote(a) for a in argv)


def rsync_argv(source, dest, files_from, key_file, known_hosts_file, extra=None, connect_timeout=20,
               rsync="rsync", ssh="ssh"):
    """argv of one pull: the listed files (NUL-separated in ``files_from``) of the peer's model directory into
    ``dest``. The peer's forced command (``rrsync -ro <model dir>``) maps the path ``.`` to its model directory."""
    host = source["host"]
    if ":" in host:
        host = "[%s]" % host
    return [rsync, "--files-from=" + files_from, "--from0", "--inplace", "--partial", "--times", "--no-perms",
            "--no-owner", "--no-group", "--no-links", "--no-devices", "--no-specials", "--stats",
            "--out-format=" + OUT_FORMAT,
            "--timeout=%d" % max(60, connect_timeout),
            "-e", ssh_command(key_file, known_hosts_file, source["port"], connect_timeout, ssh)] \
        + list(extra or []) + ["%s@%s:." % (source["user"], host), dest.rstrip("/") + "/"]


def options_without_lines(extra):
    """The options of ``extra`` (the user's rsync options) that take away rsync's line for each finished file, so
    that nothing can be hashed while it arrives (see LINE_OPTIONS); empty when early hashing works."""
    return [opt for opt in extra or [] if opt.split("=", 1)[0] in LINE_OPTIONS]


def received_bytes(output):
    """``Total bytes received`` of rsync's ``--stats``; None when rsync printed no statistics (``--quiet`` silences
    them)."""
    match = _STATS_RE.search(output or "")
    if not match:
        return None
    return int(re.sub(r"[,.]", "", match.group(1)))


def total_received(attempts):
    """The bytes received over all ``attempts`` (each with ``bytes_received``); None when any of them is unknown."""
    counts = [attempt.get("bytes_received") for attempt in attempts]
    if any(count is None for count in counts):
        return None
    return sum(counts)


def reported_path(line):
    """The relative path in rsync's line for a finished file (``OUT_FORMAT``), else None. rsync writes the bytes of a
    name it will not print as is (control characters, and non-ASCII without ``--8-bit-output``) as ``\\#ooo``
    (octal), and a backslash followed by ``#`` the same way, so the name is decoded back unambiguously."""
    match = _DONE_RE.match(line.rstrip("\r\n"))
    if not match:
        return None
    raw = match.group(2).encode("utf-8", "surrogateescape")
    raw = _ESCAPE_RE.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), raw)
    return raw.decode("utf-8", "surrogateescape")


def run_transfer(argv, env=None, on_line=None):
    """Run ``argv`` (rsync), handing each line of its output to ``on_line`` as it comes; ``(rc, output)`` with the
    per-file lines left out of ``output``. stderr goes into the same pipe (rsync's messages stay in order)."""
    kept = []
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, close_fds=True)
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "surrogateescape")
            if on_line is not None and line.startswith(DONE_TAG + " "):
                on_line(line)
            else:
                kept.append(line)
    finally:
        proc.stdout.close()
        rc = proc.wait()
    return rc, "".join(kept)


class ArrivalHasher(object):
    """sha256 of the files of one transfer while rsync writes them (see the module's docstring for the rules).

    ``entries``: manifest entries asked for; ``fresh``: the paths absent (or empty) when the transfer started, of which
    the large ones (``FOLLOW_MIN_BYTES``, at most ``HELD_MAX``, largest first) are followed as they grow; the others are
    hashed when :meth:`line` sees rsync's line for them. :meth:`finish`
    (after rsync exited) returns ``{path: sha256}`` of the early digests that may be trusted, each equal to the
    manifest's. Use :meth:`start` before the transfer and :meth:`finish` after it, even when it failed.
    """

    def __init__(self, root, entries, fresh, workers=2):
        self.root = root
        self.entries = dict((e["path"], e) for e in entries)
        large = sorted((p for p in fresh if p in self.entries and self.entries[p]["size"] >= FOLLOW_MIN_BYTES),
                       key=lambda p: -self.entries[p]["size"])
        self.fresh = set(large[:HELD_MAX])
        self.workers = max(1, int(workers))
        self.follower = FollowHasher(root, [e for p, e in sorted(self.entries.items()) if p in self.fresh],
                                     workers=self.workers, sync_every=SYNC_EVERY) if self.fresh else None
        self.reports = {}
        self.records = {}
        self.jobs = queue.Queue()
        self.threads = []
        self.lock = threading.Lock()

    def start(self):
        if self.follower is not None:
            self.follower.start()
        if len(self.fresh) < len(self.entries):
            for index in range(min(self.workers, len(self.entries) - len(self.fresh))):
                thread = threading.Thread(target=self._work, name="llmops-peer-hash-%d" % index)
                thread.daemon = True
                thread.start()
                self.threads.append(thread)
        return self

    def line(self, text):
        """One line of rsync's output: a finished file of this transfer is counted, and hashed unless followed."""
        rel = reported_path(text)
        if rel is None or rel not in self.entries:
            return
        with self.lock:
            self.reports[rel] = self.reports.get(rel, 0) + 1
            first = self.reports[rel] == 1
        if first and rel not in self.fresh and self.threads:
            self.jobs.put(rel)

    def _work(self):
        while True:
            rel = self.jobs.get()
            if rel is None:
                return
            try:
                record = self._hash(rel)
            except (IOError, OSError):
                record = None
            if record is not None:
                with self.lock:
                    self.records[rel] = record

    def _hash(self, rel):
        """``(sha256, fd)``: the descriptor stays open until :meth:`finish`, so that inode cannot be freed and its
        number given to another file put at the name meanwhile (the identity check would pass on a reused number)."""
        with self.lock:
            if len(self.records) >= HELD_MAX:
                return None
        fd = open_regular(os.path.join(self.root, rel))
        try:
            before = os.fstat(fd)
            if before.st_size != self.entries[rel]["size"]:
                os.close(fd)
                return None
            digest = sha256_file(os.dup(fd))
            after = os.fstat(fd)
            try:
                os.fdatasync(fd)   # complete (rsync said so): to disk now, while the next files arrive
            except OSError:
                pass               # the sync before the marker reports it
        except BaseException:
            os.close(fd)
            raise
        if after.st_size != before.st_size or after.st_nlink == 0:
            os.close(fd)
            return None
        return (digest, fd)

    def finish(self):
        """``{path: sha256}`` of the early digests that count (after rsync exited); every thread ends."""
        for _thread in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join()
        self.threads = []
        followed = self.follower.finish() if self.follower is not None else {}
        trusted = {}
        try:
            for rel, entry in self.entries.items():
                if self.reports.get(rel) != 1:
                    continue
                st = lstat_or_none(os.path.join(self.root, rel))
                if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != entry["size"]:
                    continue
                if rel in self.fresh:
                    digest = followed.get(rel)
                else:
                    digest = self._still_there(self.records.get(rel), st)
                if digest is not None and digest == entry["sha256"]:
                    trusted[rel] = digest
        finally:
            for record in self.records.values():
                os.close(record[1])
            self.records = {}
        return trusted

    @staticmethod
    def _still_there(record, st):
        """The digest of ``record`` when the inode it read is the one at the name (``st``), unchanged in size."""
        if record is None:
            return None
        fst = os.fstat(record[1])
        if fst.st_nlink > 0 and (fst.st_dev, fst.st_ino, fst.st_size) == (st.st_dev, st.st_ino, st.st_size):
            return record[0]
        return None


def write_files_from(path, rel_paths):
    with open(path, "wb") as handle:
        for rel in rel_paths:
            handle.write(rel.encode("utf-8", "surrogateescape") + b"\0")
    os.chmod(path, 0o600)


class Receiver(object):
    """Fetch ``todo`` (manifest entries) into ``staging_files`` from ``sources`` in order.

    ``transfer(source, rel_paths, on_line)`` runs one pull, hands each line of rsync's output to ``on_line`` as it
    comes, and returns ``(rc, output)``; it is the only I/O over the network (the module runs rsync through
    :func:`run_transfer`; tests can substitute). The files are hashed while they arrive (:class:`ArrivalHasher`);
    after each transfer every complete file still wanted is verified against the manifest (size and sha256; what was
    not hashed early is hashed then, ``hash_workers`` at a time); files that fail are deleted and recorded in
    ``rejected`` with the source that served them.
    """

    def __init__(self, staging_files, todo, transfer, hash_workers=2):
        self.staging_files = staging_files
        self.todo = list(todo)
        self.transfer = transfer
        self.hash_workers = hash_workers
        self.good = []
        self.rejected = []
        self.attempts = []

    def run(self, sources):
        wanted = dict((e["path"], e) for e in self.todo)
        for source in sources:
            if not wanted:
                break
            paths = sorted(wanted)
            before = dict((p, self._size(p)) for p in paths)
            hasher = ArrivalHasher(self.staging_files, [wanted[p] for p in paths],
                                   [p for p in paths if not before[p]], workers=self.hash_workers).start()
            try:
                rc, output = self.transfer(source, paths, hasher.line)
            finally:
                early = hasher.finish()
            attempt = {"source": source["name"], "files": len(paths), "rc": rc,
                       "bytes_received": received_bytes(output)}
            present = [p for p in paths if self._size(p) is not None]
            complete = [wanted[p] for p in present if self._size(p) == wanted[p]["size"]]
            digests = hash_files(self.staging_files, [e["path"] for e in complete if e["path"] not in early],
                                 workers=self.hash_workers)
            digests.update(early)
            good, bad = verify_fetched(self.staging_files, complete, digests=digests)
            bad += [(p, "%d bytes, expected %d" % (self._size(p), wanted[p]["size"])) for p in present
                    if self._size(p) > wanted[p]["size"]]
            for entry in good:
                self.good.append(entry)
                del wanted[entry["path"]]
            for rel, why in bad:
                self.rejected.append({"path": rel, "source": source["name"], "reason": why})
                os.unlink(os.path.join(self.staging_files, rel))
            attempt["verified"] = len(good)
            attempt["hashed_while_receiving"] = len([e for e in good if e["path"] in early])
            attempt["rejected"] = [rel for rel, _why in bad]
            if rc != 0:
                attempt["error"] = _last_lines(output)
                # files that grew are partial: kept for the next source (resume), never trusted before verification
                attempt["partial"] = sorted(p for p in wanted if (self._size(p) or 0) > (before[p] or 0))
            self.attempts.append(attempt)
        return sorted(wanted)

    def _size(self, rel):
        st = lstat_or_none(os.path.join(self.staging_files, rel))
        return None if st is None else st.st_size


def _last_lines(text, count=3):
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return " | ".join(lines[-count:])


# ---------------------------------------------------------------------------------------------------------------
# Transfer keys and their authorisation (one fan-out run)
# ---------------------------------------------------------------------------------------------------------------
KEY_COMMENT_PREFIX = "llmops-fanout@"
_PUBKEY_RE = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+ llmops-fanout@[^\s]+$")


def key_options(rrsync, model_dir):
    """The options of an authorised transfer key: nothing but a read-only rsync of ``model_dir``."""
    return 'restrict,command="%s -ro %s"' % (rrsync, shlex.quote(model_dir))


def authorized_line(rrsync, model_dir, public_key):
    public_key = " ".join(public_key.split()[:3])
    if not _PUBKEY_RE.match(public_key):
        raise PeerError("%r is not a transfer key made by the fan-out (type, key, comment %s<host>)" % (
            public_key[:80], KEY_COMMENT_PREFIX))
    return "%s %s" % (key_options(rrsync, model_dir), public_key)


def is_transfer_line(line, rrsync, model_dir):
    """Is ``line`` of an authorized_keys file a transfer key of this model directory (any receiver, any run)?"""
    prefix = key_options(rrsync, model_dir) + " "
    return line.startswith(prefix) and line.split()[-1].startswith(KEY_COMMENT_PREFIX)


def updated_authorized_keys(text, add=(), remove=None):
    """The new content of an authorized_keys file: ``add`` lines appended when missing, lines for which ``remove``
    returns True dropped. Returns ``(new_text, changed)``."""
    lines = text.splitlines()
    kept = [line for line in lines if not (remove and remove(line))]
    for line in add:
        if line not in kept:
            kept.append(line)
    new = "\n".join(kept) + ("\n" if kept else "")
    return new, new != (text if text.endswith("\n") or not text else text + "\n")
