#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: model_fanout
short_description: Spread one model revision from host to host, verified against the hub's manifest
version_added: 0.1.0
description:
  - The three steps of a peer fan-out (role C(llmops.deploy.model_download) with C(model_download_source=peer)
    drives them; the hub is asked once per fleet or group, the hosts copy from each other in rounds).
  - O(state=manifest) (run on the controller) fetches the model's listing from the hub through the collection's hub
    client and returns the manifest every receiver checks against - model, revision, selection and every file's
    path, size and sha256, in the format of a M(llmops.deploy.model_bundle) manifest. It fetches no file.
  - O(state=probe) says whether O(path) already holds that manifest under a valid completion marker (files present
    with the marker's sizes and mtimes). It writes nothing.
  - O(state=receive) pulls the missing files from O(sources) (peers that hold the revision), with C(rsync) over
    C(ssh) run on this host, into the same private staging directory downloads and bundle imports use
    (C(.<name>.llmops-staging), mode 0700). C(--inplace) keeps the bytes of a transfer that was killed, so the next
    run (from the same peer or another) resumes. Every file is checked against O(manifest) (size and sha256, never
    the peer's marker), hashed while the bytes arrive (a new large file is read right behind C(rsync) as it grows, any
    other one as soon as C(rsync) reports it finished, while the next files arrive; anything C(rsync) did not
    report exactly once is hashed after it exits); a file with bad bytes is deleted, named with the peer that served
    it in RV(rejected), and fetched from the next source. When every file matched, the files are moved in and the
    completion marker is written exactly as a hub download or a bundle import writes it.
  - The peers are reached with this host's key O(ssh_key) and only the host keys given in O(known_hosts) (strict
    host key checking, no agent); other C(ssh) settings come from this host's C(ssh_config), for example C(Ciphers
    aes128-gcm@openssh.com), which costs less CPU than OpenSSH's default cipher on CPUs with AES instructions (a
    transfer whose CPUs, not the network, are the limit). O(state=prepare) makes that key pair for the run
    (O(make_key), in O(key_dir), mode 0700; the private key never leaves the host) and returns the host's own SSH
    host key (O(host_key)) for the receivers' C(known_hosts); O(state=authorize) adds O(public_keys) to the
    C(authorized_keys) of O(user), each restricted to a read-only rsync of O(path)
    (C(restrict,command="rrsync -ro <path>")); O(state=withdraw) removes every such key of O(path) and deletes
    O(key_dir). No daemon is started.
author:
  - llmops.deploy developers (@llmops)
requirements:
  - C(rsync) and C(ssh) on the receiver (O(state=receive)); C(rsync) with C(rrsync) on the peers.
extends_documentation_fragment:
  - llmops.deploy.attributes
  - llmops.deploy.hub_client
  - llmops.deploy.model_files
attributes:
  check_mode:
    support: full
    details: O(state=receive) reports which files would be fetched and from which peer, and writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
    support: full
options:
  state:
    description: V(manifest) (controller); V(probe), V(receive), V(prepare), V(authorize) or V(withdraw) (each host).
    type: str
    choices: [manifest, probe, receive, prepare, authorize, withdraw]
    required: true
  model_id:
    description: The model, C(owner/name) (O(state=manifest)).
    type: str
  revision:
    description: Branch, tag or commit (O(state=manifest)).
    type: str
    default: master
  endpoint:
    description: Hub URL (O(state=manifest)).
    type: str
    default: https://modelscope.cn
  token:
    description: Hub access token (O(state=manifest)); never logged.
    type: str
  include:
    description: Glob patterns of the files to take (O(state=manifest)); empty means every file.
    type: list
    elements: str
    default: []
  exclude:
    description: Glob patterns of files to leave out (O(state=manifest)).
    type: list
    elements: str
    default: []
  path:
    description: The model directory (O(state=probe) and O(state=receive)).
    type: path
  manifest:
    description: The manifest returned by O(state=manifest) (RV(manifest)), for O(state=probe) and O(state=receive).
    type: dict
  sources:
    description:
      - Peers to copy from, in order of preference; each C(name) (for messages), C(host), C(port) (22) and C(user)
        (root). The first one serves everything it can; the next ones serve what is still missing or was rejected.
    type: list
    elements: dict
    default: []
  ssh_key:
    description: Private key this host uses to reach the peers (O(state=receive)).
    type: path
  known_hosts:
    description: C(known_hosts) lines of the peers' host keys (O(state=receive)); nothing else is trusted.
    type: str
  key_dir:
    description: Private directory of this host's transfer key (O(state=prepare) and O(state=withdraw)).
    type: path
  make_key:
    description: Make the transfer key pair (O(state=prepare)); V(false) only reads the host key.
    type: bool
    default: false
  host_key:
    description: This host's SSH host public key (O(state=prepare)).
    type: path
    default: /etc/ssh/ssh_host_ed25519_key.pub
  user:
    description: Login account peers use on this host (O(state=authorize) and O(state=withdraw)).
    type: str
    default: root
  public_keys:
    description: Transfer public keys to authorise (O(state=authorize)), as returned by O(state=prepare).
    type: list
    elements: str
    default: []
  rrsync:
    description: C(rrsync) on this host, the forced command of the authorised keys.
    type: path
    default: /usr/bin/rrsync
  rsync_opts:
    description:
      - More C(rsync) options, for example C(--bwlimit=100m).
      - C(--out-format), C(--log-format) and C(--quiet) (C(-q)) replace or silence the line C(rsync) prints for each
        file it received, which lets the module hash a file while the next ones arrive; with one of them every file is
        hashed after C(rsync) exits (still checked, the receive only takes longer) and a warning says so.
        C(--quiet) also silences the transfer statistics (RV(bytes_received) is then V(null)).
    type: list
    elements: str
    default: []
  connect_timeout:
    description: Seconds to connect to a peer (C(ssh)); C(rsync) gives up after four times as long without data.
    type: int
    default: 20
  hash_workers:
    description: Threads that hash the received files while C(rsync) writes them (files hashed at the same time),
      and files hashed in parallel after a transfer when they could not be hashed on the way.
    type: int
    default: 2
  lock_timeout:
    description: Seconds to wait for another run on the same model directory.
    type: int
    default: 600
notes:
  - O(owner), O(group), O(mode) and O(dir_mode) apply to the model directory O(state=receive) writes; files it
    writes get mode C(0644) when O(mode) is not given. O(state=probe) checks that they are valid; the other states
    ignore them. A value of an unsupported file argument (O(seuser), O(serole), O(setype), O(selevel),
    O(attributes)) is refused in every state.
seealso:
  - module: llmops.deploy.modelscope_download
  - module: llmops.deploy.model_bundle
"""

EXAMPLES = r"""
- name: Read the manifest once, on the controller
  llmops.deploy.model_fanout:
    state: manifest
    model_id: Qwen/Qwen2.5-7B-Instruct
    endpoint: https://modelscope.cn
  delegate_to: localhost
  run_once: true
  register: fanout_manifest

- name: Copy it from two peers that hold it
  llmops.deploy.model_fanout:
    state: receive
    path: /opt/llmops/models/Qwen/Qwen2.5-7B-Instruct
    manifest: "{{ fanout_manifest.manifest }}"
    sources:
      - {name: gpu01, host: 10.0.0.11, port: 22, user: root}
      - {name: gpu02, host: 10.0.0.12, port: 22, user: root}
    ssh_key: /root/.llmops-fanout/id_ed25519
    known_hosts: "{{ peer_host_keys }}"
"""

RETURN = r"""
manifest:
  description: The manifest (O(state=manifest)).
  returned: state=manifest
  type: dict
  sample: {"model_id": "Qwen/Qwen2.5-7B-Instruct", "revision": "5c3a1b", "files": [{"path": "config.json",
           "size": 663, "sha256": "3f1c..."}], "bytes_total": 15231233024}
complete:
  description: Whether O(path) holds the manifest under a valid marker (after the run).
  returned: state=probe or state=receive
  type: bool
  sample: true
would_fetch:
  description: Files that would be fetched (check mode) or were to fetch (receive).
  returned: state=receive
  type: list
  elements: str
  sample: ["model.safetensors"]
files_fetched:
  description: Files received from peers and verified.
  returned: state=receive
  type: int
  sample: 3
bytes_fetched:
  description: Bytes of the files received from peers and verified.
  returned: state=receive
  type: int
  sample: 4300000
bytes_received:
  description:
    - Bytes rsync received over the network (all attempts; less than RV(bytes_fetched) when a transfer resumed).
    - V(null) when rsync printed no statistics for an attempt (C(--quiet) in O(rsync_opts) silences them).
  returned: state=receive
  type: int
  sample: 4301022
attempts:
  description: One entry per peer tried (source, files asked, rsync's exit code, bytes received, files verified,
    of those the files hashed while they arrived, files rejected, error).
  returned: state=receive
  type: list
  elements: dict
  sample: [{"source": "gpu01", "files": 3, "rc": 0, "bytes_received": 4301022, "verified": 3,
           "hashed_while_receiving": 3, "rejected": []}]
rejected:
  description: Files a peer served with bad bytes (path, source, reason); each was fetched again from another peer.
  returned: state=receive
  type: list
  elements: dict
  sample: [{"path": "model.safetensors", "source": "gpu02", "reason": "sha256 9e..., expected 47..."}]
public_key:
  description: The transfer public key made by O(state=prepare) with O(make_key=true).
  returned: state=prepare and make_key
  type: str
  sample: ssh-ed25519 AAAAC3Nza... llmops-fanout@gpu02
host_key:
  description: Type and key of this host's SSH host key (O(state=prepare)).
  returned: state=prepare
  type: str
  sample: ssh-ed25519 AAAAC3Nza...
marker:
  description: Path of the completion marker.
  returned: state=probe or state=receive
  type: str
  sample: /opt/llmops/models/Qwen/Qwen2.5-7B-Instruct/.llmops-complete.json
"""

import errno
import os
import pwd
import socket
import stat

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.deploy.plugins.module_utils.dir_lock import DirLock, LockError, lock_path_for
from ansible_collections.llmops.deploy.plugins.module_utils.fetch_plan import plan_files
from ansible_collections.llmops.deploy.plugins.module_utils.free_space import VerifyError, check_free_space
from ansible_collections.llmops.deploy.plugins.module_utils.hub_options import (
    HUB_CLIENT_ARGSPEC, check_client_options)
from ansible_collections.llmops.deploy.plugins.module_utils.hub_manifest import (
    HubError, ManifestError, normalize_endpoint, normalize_patterns, select_entries, split_model_id,
    validate_revision)
from ansible_collections.llmops.deploy.plugins.module_utils.marker import (
    RESERVED_NAMES, build_marker, manifest_matches_marker, marker_files, marker_path, quick_check, read_marker)
from ansible_collections.llmops.deploy.plugins.module_utils.model_install import (
    InstallError, install_verified, sync_attributes)
from ansible_collections.llmops.deploy.plugins.module_utils.peer_transfer import (
    KEY_COMMENT_PREFIX, PeerError, Receiver, authorized_line, check_manifest, check_source, fanout_manifest,
    is_transfer_line, options_without_lines, rsync_argv, run_transfer, total_received, updated_authorized_keys,
    write_files_from)
from ansible_collections.llmops.deploy.plugins.module_utils.tree_safety import (
    TreeError, apply_to_files, file_arguments, prepare_staging, refuse_unsupported_file_args, remove_tree,
    staging_path_for, target_tree_problems)

MODULE_VERSION = "0.1.0"


def build_module():
    spec = dict(HUB_CLIENT_ARGSPEC)
    spec.update(
        state=dict(type="str", choices=["manifest", "probe", "receive", "prepare", "authorize", "withdraw"],
                   required=True),
        model_id=dict(type="str"),
        revision=dict(type="str", default="master"),
        endpoint=dict(type="str", default="https://modelscope.cn"),
        token=dict(type="str", no_log=True),
        include=dict(type="list", elements="str", default=[]),
        exclude=dict(type="list", elements="str", default=[]),
        path=dict(type="path"),
        manifest=dict(type="dict"),
        sources=dict(type="list", elements="dict", default=[]),
        ssh_key=dict(type="path", no_log=False),
        known_hosts=dict(type="str"),
        key_dir=dict(type="path"),
        make_key=dict(type="bool", default=False),
        host_key=dict(type="path", default="/etc/ssh/ssh_host_ed25519_key.pub"),
        user=dict(type="str", default="root"),
        public_keys=dict(type="list", elements="str", default=[], no_log=False),
        rrsync=dict(type="path", default="/usr/bin/rrsync"),
        rsync_opts=dict(type="list", elements="str", default=[]),
        connect_timeout=dict(type="int", default=20),
        hash_workers=dict(type="int", default=2),
        lock_timeout=dict(type="int", default=600),
        dir_mode=dict(type="raw"),
    )
    # owner, group, mode (and the SELinux and attribute options, refused by tree_safety) come from Ansible's common
    # file arguments; they are applied through descriptors, never with set_fs_attributes_if_different (see the notes
    # of the llmops.deploy.model_files doc fragment).
    return AnsibleModule(
        argument_spec=spec,
        required_if=[("state", "manifest", ["model_id"]), ("state", "probe", ["path", "manifest"]),
                     ("state", "receive", ["path", "manifest"]), ("state", "prepare", ["key_dir"]),
                     ("state", "authorize", ["path"]), ("state", "withdraw", ["path"])],
        supports_check_mode=True,
        add_file_common_args=True,
    )


class Fanout(object):
    """One run of the module; every failure goes through ``fail``."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.result = {"changed": False}

    def fail(self, msg, **extra):
        token = self.params.get("token")
        if token:
            msg = msg.replace(token, "********")
        self.result.update(extra)
        self.module.fail_json(msg=msg, **self.result)

    def run(self):
        state = self.params["state"]
        try:
            refuse_unsupported_file_args(self.params, "model_fanout")
        except ValueError as exc:
            self.fail(str(exc))
        if state == "manifest":
            self.manifest()
        elif state == "prepare":
            self.prepare()
        elif state in ("authorize", "withdraw"):
            self.authorize(withdraw=state == "withdraw")
        else:
            self.local(state)
        self.module.exit_json(**self.result)

    # ------------------------------------------------------------------ manifest (controller)
    def manifest(self):
        p = self.params
        try:
            split_model_id(p["model_id"])
            endpoint = normalize_endpoint(p["endpoint"])
            validate_revision(p["revision"])
            include = normalize_patterns(p["include"])
            exclude = normalize_patterns(p["exclude"])
        except ManifestError as exc:
            self.fail(exc.message)
        problems = check_client_options(p)
        if problems:
            self.fail("; ".join(problems))
        # the HTTP client (and with it ansible.module_utils.urls) is loaded only here: the states a host runs,
        # a peer receive above all, never talk to the hub and do not pay for loading it
        from ansible_collections.llmops.deploy.plugins.module_utils.hub_client import HubClient, fetch_manifest
        client = HubClient.from_params(p)
        try:
            listing = fetch_manifest(endpoint, p["model_id"], p["revision"], reserved_names=RESERVED_NAMES,
                                     client=client)
        except ManifestError as exc:
            self.fail(exc.message)
        except HubError as exc:
            self.fail("cannot resolve %s@%s from %s: %s" % (p["model_id"], p["revision"], endpoint, exc.message))
        entries = select_entries(listing["entries"], include, exclude)
        if not entries:
            self.fail("no file of %s@%s matches include=%r exclude=%r (the hub lists %d file(s))" % (
                p["model_id"], p["revision"], include, exclude, len(listing["entries"])))
        self.result["manifest"] = fanout_manifest(p["model_id"], p["revision"], listing["revision"], endpoint,
                                                  include, exclude, entries)

    # ------------------------------------------------------------------ transfer keys (each host)
    def prepare(self):
        p = self.params
        key_dir = os.path.abspath(p["key_dir"])
        try:
            with open(p["host_key"]) as handle:
                fields = handle.read(16384).split()
        except (IOError, OSError) as exc:
            self.fail("cannot read the host key %s: %s" % (p["host_key"], exc))
        if len(fields) < 2:
            self.fail("%s is not an OpenSSH public key" % p["host_key"])
        self.result["host_key"] = "%s %s" % (fields[0], fields[1])
        if not p["make_key"]:
            return
        key = os.path.join(key_dir, "id_ed25519")
        st = None
        try:
            st = os.lstat(key_dir)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                self.fail("cannot use %s: %s" % (key_dir, exc))
        if st is not None and not (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
                                   and stat.S_IMODE(st.st_mode) & 0o077 == 0):
            self.fail("refusing key_dir %s: it is not a private directory of uid %d" % (key_dir, os.geteuid()))
        if not (os.path.isfile(key) and os.path.isfile(key + ".pub")):
            self.result["changed"] = True
            if self.module.check_mode:
                return
            if st is None:
                os.makedirs(key_dir, 0o700)
            for name in (key, key + ".pub"):
                if os.path.lexists(name):
                    os.unlink(name)
            keygen = self.module.get_bin_path("ssh-keygen", required=True)
            rc, _out, err = self.module.run_command(
                [keygen, "-q", "-t", "ed25519", "-N", "", "-C", KEY_COMMENT_PREFIX + socket.gethostname(), "-f", key])
            if rc != 0:
                self.fail("ssh-keygen failed: %s" % err.strip())
        with open(key + ".pub") as handle:
            self.result["public_key"] = " ".join(handle.read(16384).split()[:3])

    def authorize(self, withdraw):
        p = self.params
        model_dir = os.path.abspath(p["path"])
        try:
            account = pwd.getpwnam(p["user"])
        except KeyError:
            self.fail("user %r is not valid: no such account on this host" % p["user"])
        lines = []
        try:
            for key in [] if withdraw else p["public_keys"]:
                lines.append(authorized_line(p["rrsync"], model_dir, key))
        except PeerError as exc:
            self.fail(exc.message)
        ssh_dir = os.path.join(account.pw_dir, ".ssh")
        path = os.path.join(ssh_dir, "authorized_keys")
        text = ""
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                self.fail("refusing %s: it is not a regular file" % path)
            with open(path) as handle:
                text = handle.read()
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                self.fail("cannot read %s: %s" % (path, exc))
        new, changed = updated_authorized_keys(
            text, add=lines, remove=(lambda line: is_transfer_line(line, p["rrsync"], model_dir)) if withdraw
            else None)
        if changed and not self.module.check_mode:
            if not os.path.isdir(ssh_dir):
                os.makedirs(ssh_dir, 0o700)
                os.chown(ssh_dir, account.pw_uid, account.pw_gid)
            tmp = "%s.llmops-tmp-%d" % (path, os.getpid())
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, new.encode("utf-8"))
                os.fchown(fd, account.pw_uid, account.pw_gid)
                os.fchmod(fd, 0o600)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path)
        self.result["changed"] = changed
        if withdraw and p["key_dir"] and os.path.lexists(p["key_dir"]):
            self.result["changed"] = True
            if not self.module.check_mode:
                remove_tree(p["key_dir"])

    # ------------------------------------------------------------------ probe and receive (each host)
    def check_local(self):
        p = self.params
        try:
            self.doc = check_manifest(p["manifest"])
            self.sources = [check_source(s) for s in p["sources"]]
        except PeerError as exc:
            self.fail(exc.message)
        for key, low in (("connect_timeout", 1), ("hash_workers", 1), ("lock_timeout", 0)):
            if p[key] < low:
                self.fail("%s %r is not valid: expected an integer >= %d" % (key, p[key], low))
        for opt in p["rsync_opts"]:
            if not opt.startswith("--") or opt.split("=")[0] in ("--rsh", "--rsync-path", "--files-from",
                                                                 "--remove-source-files", "--delete"):
                self.fail("rsync_opts %r is not valid: expected long rsync options (--name or --name=value) other "
                          "than --rsh, --rsync-path, --files-from, --delete and --remove-source-files" % opt)
        try:
            self.uid, self.gid, self.file_mode, self.dir_mode = file_arguments(p, "model_fanout")
        except ValueError as exc:
            self.fail(str(exc))
        self.model_dir = os.path.abspath(p["path"])
        try:
            lst = os.lstat(self.model_dir)
        except OSError:
            lst = None
        if lst is not None and not stat.S_ISDIR(os.stat(self.model_dir).st_mode if stat.S_ISLNK(lst.st_mode)
                                                else lst.st_mode):
            self.fail("refusing path %s: it exists and is not a directory" % self.model_dir)
        self.entries = self.doc["files"]
        self.names = [e["path"] for e in self.entries]
        self.result.update(marker=marker_path(self.model_dir), model_id=self.doc["model_id"],
                           revision=self.doc["revision"], files=len(self.entries),
                           bytes_total=self.doc["bytes_total"])

    def is_current(self, marker):
        d = self.doc
        return bool(marker) and marker["model_id"] == d["model_id"] and manifest_matches_marker(self.entries, marker) \
            and (marker["revision_requested"], marker["revision"], marker["include"], marker["exclude"]) == (
                d["revision_requested"], d["revision"], d["include"], d["exclude"])

    def local(self, state):
        self.check_local()
        check = self.module.check_mode or state == "probe"
        if not check:
            try:
                os.makedirs(os.path.dirname(self.model_dir), exist_ok=True)
            except OSError as exc:
                self.fail("cannot create the parent of %s: %s" % (self.model_dir, exc))
        lock = None
        if os.path.isdir(os.path.dirname(self.model_dir)):
            lock = DirLock(lock_path_for(self.model_dir), self.params["lock_timeout"], shared=check)
            try:
                lock.acquire()
            except LockError as exc:
                self.fail(str(exc))
        try:
            if state == "probe":
                self.probe()
            else:
                self.receive()
        finally:
            if lock is not None:
                lock.release()

    def probe(self):
        marker, _reason = read_marker(self.model_dir)
        current = self.is_current(marker) and not target_tree_problems(self.model_dir, self.names) \
            and not quick_check(self.model_dir, marker["files"])
        self.result["complete"] = bool(current)

    def receive(self):
        p = self.params
        problems = target_tree_problems(self.model_dir, self.names)
        if problems:
            self.fail("refusing to write into %s: %s" % (self.model_dir, "; ".join(problems)))
        marker, _reason = read_marker(self.model_dir)
        known = marker_files(marker) if marker and marker["model_id"] == self.doc["model_id"] else {}
        plan = plan_files(self.model_dir, self.entries, known, full=False)
        complete = plan["complete"]
        current = self.is_current(marker) and not plan["fetch"]
        todo = plan["fetch"]
        self.result.update(would_fetch=[t["path"] for t in todo], files_fetched=0, bytes_fetched=0,
                           bytes_received=0, attempts=[], rejected=[],
                           sources=[s["name"] for s in self.sources])
        if current:
            self.result["complete"] = True
            self.result["changed"] = self.attributes(check=self.module.check_mode)
            return
        self.result["changed"] = True
        self.result["complete"] = False
        silencing = options_without_lines(p["rsync_opts"])
        if silencing:
            self.module.warn("rsync_opts %s replace or silence rsync's line for each file it received, so no file is "
                             "hashed while it arrives: every file is hashed after rsync exits (still checked against "
                             "the manifest, only later, and the receive takes longer); leave them out to hash on "
                             "arrival%s" % (", ".join(silencing),
                                            "; --quiet also silences rsync's statistics, so bytes_received is null"
                                            if set(silencing) & {"--quiet", "-q"} else ""))
        if self.module.check_mode:
            return
        if not self.sources:
            self.fail("%d file(s) of %s are missing in %s and no peer was given to copy them from" % (
                len(todo), self.doc["model_id"], self.model_dir))
        if not p["ssh_key"] or p["known_hosts"] is None:
            self.fail("state=receive needs ssh_key and known_hosts to reach the peers")
        rsync = self.module.get_bin_path("rsync", required=True)
        ssh = self.module.get_bin_path("ssh", required=True)
        staging = staging_path_for(self.model_dir)
        try:
            os.makedirs(self.model_dir, exist_ok=True)
            staging_files = prepare_staging(staging)
        except (OSError, TreeError) as exc:
            self.fail("cannot prepare the staging directory %s: %s" % (staging, getattr(exc, "message", exc)))
        try:
            check_free_space(staging, sum(t["size"] for t in todo), "1%")
        except VerifyError as exc:
            self.fail(exc.message)
        # side files of the transfer: beside the files, inside the private staging directory
        known_hosts = os.path.join(staging, "known_hosts")
        files_from = os.path.join(staging, "files-from")
        with open(known_hosts, "w") as handle:
            handle.write(p["known_hosts"].rstrip("\n") + "\n")
        os.chmod(known_hosts, 0o600)
        clean_env = dict(os.environ, LC_ALL="C", LANG="C")

        def transfer(source, rel_paths, on_line):
            # rsync's output is read while it runs (not with run_command, which returns it at the end): each line
            # for a finished file lets that file be hashed while the next ones arrive
            write_files_from(files_from, rel_paths)
            argv = rsync_argv(source, staging_files, files_from, p["ssh_key"], known_hosts, p["rsync_opts"],
                              p["connect_timeout"], rsync=rsync, ssh=ssh)
            try:
                return run_transfer(argv, env=clean_env, on_line=on_line)
            except OSError as exc:
                return 127, "cannot run %s: %s" % (rsync, exc)

        receiver = Receiver(staging_files, [dict((k, t[k]) for k in ("path", "size", "sha256")) for t in todo],
                            transfer, hash_workers=p["hash_workers"])
        missing = receiver.run(self.sources)
        self.result.update(attempts=receiver.attempts, rejected=receiver.rejected,
                           bytes_received=total_received(receiver.attempts))
        if missing:
            self.fail("%d file(s) could not be copied from any peer (%s): %s; what arrived stays in %s for the next "
                      "run" % (len(missing), ", ".join(s["name"] for s in self.sources), ", ".join(missing[:20]),
                               staging), missing=missing)
        staged = receiver.good
        apply_to_files(staging_files, [s["path"] for s in staged], self.uid, self.gid,
                       0o644 if self.file_mode is None else self.file_mode)
        d = self.doc
        new_marker = build_marker(d["model_id"], d["revision_requested"], d["revision"], d["endpoint"], d["include"],
                                  d["exclude"], complete + staged, MODULE_VERSION, verified="full")
        try:
            install_verified(self.model_dir, staging_files, self.names, complete, staged, new_marker, self.uid,
                             self.gid, self.file_mode, self.dir_mode)
            sync_attributes(self.model_dir, self.names, self.uid, self.gid, self.file_mode, self.dir_mode)
        except InstallError as exc:
            self.fail(exc.message)
        except TreeError as exc:
            self.fail("refusing to write into %s: %s; no completion marker was written" % (
                self.model_dir, exc.message))
        except OSError as exc:
            self.fail("cannot move the verified files into %s: %s; no completion marker was written" % (
                self.model_dir, exc))
        try:
            remove_tree(staging)
        except OSError as exc:
            self.module.warn("the staging directory %s could not be removed: %s" % (staging, exc))
        self.result.update(complete=True, files_fetched=len(staged), bytes_fetched=sum(s["size"] for s in staged))

    def attributes(self, check):
        try:
            return sync_attributes(self.model_dir, self.names, self.uid, self.gid, self.file_mode, self.dir_mode,
                                   check=check)
        except (TreeError, OSError) as exc:
            self.fail("cannot set owner or mode in %s: %s" % (self.model_dir, getattr(exc, "message", exc)))


def main():
    module = build_module()
    Fanout(module).run()


if __name__ == "__main__":
    main()
