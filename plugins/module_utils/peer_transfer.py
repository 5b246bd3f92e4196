# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copy a model revision from peers (hosts that already hold it) into a private staging directory, trusting only the
manifest the controller fetched from the hub.

Standard library only (runs on targets with Python >= 3.8). The transport is rsync over SSH, pulled by the receiver
(``rsync --files-from`` of the files still missing, ``--inplace`` into the private staging directory, so a transfer
killed mid-file resumes from the bytes already there, from the same peer or another one). Each source is tried in
turn; after every transfer each received file is checked against the manifest (size and sha256); a file that does not
match is deleted from the staging directory, recorded against the peer that served it, and fetched from the next
source. The caller then installs the verified files exactly as a bundle import does (module_utils ``model_install``).

The manifest is the bundle manifest (module_utils ``model_bundle``, format ``llmops.deploy/model-bundle/v1``): model,
revision, selection and every file's path, size and sha256; nothing the peer says (its marker, its listing) is used.
"""

import os
import re
import shlex

from ansible_collections.llmops.deploy.plugins.module_utils.fetch_plan import verify_fetched
from ansible_collections.llmops.deploy.plugins.module_utils.model_bundle import bundle_manifest, manifest_problems
from ansible_collections.llmops.deploy.plugins.module_utils.stream_hash import hash_files
from ansible_collections.llmops.deploy.plugins.module_utils.tree_safety import lstat_or_none

_STATS_RE = re.compile(r"^Total bytes received:\s*([\d,.]+)", re.MULTILINE)
_HOST_RE = re.compile(r"^[A-Za-z0-9._:%-]+$")
_USER_RE = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")


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
            "--timeout=%d" % max(60, connect_timeout),
            "-e", ssh_command(key_file, known_hosts_file, source["port"], connect_timeout, ssh)] \
        + list(extra or []) + ["%s@%s:." % (source["user"], host), dest.rstrip("/") + "/"]


def received_bytes(output):
    """``Total bytes received`` of rsync's ``--stats`` (0 when absent)."""
    match = _STATS_RE.search(output or "")
    if not match:
        return 0
    return int(re.sub(r"[,.]", "", match.group(1)))


def write_files_from(path, rel_paths):
    with open(path, "wb") as handle:
        for rel in rel_paths:
            handle.write(rel.encode("utf-8", "surrogateescape") + b"\0")
    os.chmod(path, 0o600)


class Receiver(object):
    """Fetch ``todo`` (manifest entries) into ``staging_files`` from ``sources`` in order.

    ``transfer(source, rel_paths)`` runs one pull and returns ``(rc, output)``; it is the only I/O over the network
    (the module runs rsync; tests can substitute). After each transfer, every file still wanted is verified against
    the manifest; files that fail are deleted and recorded in ``rejected`` with the source that served them.
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
            rc, output = self.transfer(source, paths)
            attempt = {"source": source["name"], "files": len(paths), "rc": rc,
                       "bytes_received": received_bytes(output)}
            present = [p for p in paths if self._size(p) is not None]
            digests = hash_files(self.staging_files, present, workers=self.hash_workers)
            complete = [wanted[p] for p in present if self._size(p) == wanted[p]["size"]]
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
