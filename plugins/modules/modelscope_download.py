#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: modelscope_download
short_description: Put one model, at one revision, into a directory, verified file by file
version_added: 0.1.0
description:
  - Resolves the manifest of a model from a ModelScope-compatible hub (every file's path, size and sha256, and the
    revision it resolved to), refuses unsafe paths and symlinked directories in the target, checks free disk space,
    then lets the ModelScope SDK download the missing files (in parallel, resuming partial files left by a killed run).
  - The module owns correctness, the SDK only moves bytes. The SDK downloads into a private staging directory
    C(<parent of the real model_dir>/.<name>.llmops-staging) (a real directory owned by the module's user, mode 0700,
    on the model directory's filesystem; anything else found at that name is removed first), never into the model
    directory. Every file is hashed while its bytes arrive, from the very bytes the SDK writes; the module's runner
    in the SDK's process hashes each file in a thread of its own as it is written (no second read of the file) and
    reports the digest with the file's identity (device, inode, size, mtime); the module uses a digest only for the
    file it describes and hashes any other file itself (in parallel). It then checks in the staging directory that
    it holds only regular files and directories (no link of any kind) and that every file has its listed size and
    sha256. The SDK is not asked to hash the same bytes a second time; a file that arrived with wrong bytes is
    deleted and fetched once more in a second SDK run (the retry the SDK's own check would have made). A file that
    still fails is deleted; nothing is moved and no marker is written.
  - Only then are the verified files moved into place, by C(rename) from the staging directory to the model
    directory through directory descriptors; every directory below the model directory is opened with C(O_NOFOLLOW)
    (a symlink there is refused, never followed); a rename replaces a name and never writes through a link. Owner
    and mode are set through descriptors (C(fchown)/C(fchmod)) on the staged files before the move, and afterwards on
    directories and files opened with C(O_NOFOLLOW). Nothing planted in the model directory during a run (a symlinked
    subdirectory, a symlink named like a partial file) can make the module write, C(chown) or C(chmod) outside it;
    the tree is checked again before the move and after it, and a run that finds such a thing fails without a marker.
  - "An update never leaves a half-old, half-new model: the previous revision's files and its completion marker stay
    untouched while the new files download and are verified in the staging directory. The switch is: remove the old
    marker, rename the verified files in (one rename each, milliseconds), check the tree, write the new marker
    C(<model_dir>/.llmops-complete.json) atomically (new file, fsync, rename). The files' data is on disk before the
    marker is (the runner's hashing thread syncs each file every 64 MiB while the next bytes arrive, the rest is
    synced before the switch, the directories after the renames), so a power cut never leaves a durable marker over
    data that did not reach the disk. A directory without a valid marker is never reported as complete. A failed
    download leaves the previous revision whole and usable, and its verified files wait in the staging directory
    for the next run (hashed again before they are used)."
  - On a rerun with a valid marker nothing is fetched and nothing is re-hashed (sizes and mtimes are compared with the
    marker); only the listing is fetched to notice a moved revision. O(verify=full) re-hashes every file.
    O(offline=true) trusts the marker without asking the hub.
  - The module's own requests (the listing) go through the collection's one hub client (C(ansible.module_utils.urls));
    O(validate_certs), O(ca_path), O(use_proxy), O(timeout) and O(retries) apply to it, and the same CA bundle, proxy
    choice, read timeout and retries are handed to the SDK subprocess in its environment.
  - The SDK runs in a child process (the interpreter O(sdk_python), isolated mode, working directory O(state_dir)) that
    gets the token on its standard input, never on a command line or in its environment. The endpoint is always
    explicit, Alibaba Cloud region probing is off, and the SDK's side files (session id, cache) go to O(state_dir).
  - Nothing from the model repository is imported or executed. Pickle weights and code files are reported.
  - Role C(llmops.deploy.model_download) wraps this module and M(llmops.deploy.model_verify).
  - Runs are serialised per model directory by an C(flock) on C(<parent>/.<name>.llmops-lock); a second run waits up
    to O(lock_timeout) seconds, then fails naming the holder. A O(model_dir) that is a symlink to something other
    than a directory is refused before any lock file is made.
author:
  - llmops.deploy developers (@llmops)
requirements:
  - The ModelScope SDK (C(modelscope) and C(modelscope-hub), pinned 1.40.2 / 0.5.1) importable by O(sdk_python), for
    downloads only. Check mode, reruns of complete directories and O(offline=true) need only the standard library.
  - Linux (C(fcntl), C(os.statvfs)).
extends_documentation_fragment:
  - llmops.deploy.attributes
  - llmops.deploy.hub_client
  - llmops.deploy.model_files
attributes:
  check_mode:
    support: full
    details: Fetches the listing, hashes files that lack a valid marker entry, and reports what would be fetched
      (RV(would_fetch), RV(would_fetch_bytes)); writes nothing, not even the lock file.
  diff_mode:
    support: none
  platform:
    platforms: posix
    support: full
    description: Linux hosts (C(fcntl) locks, C(os.statvfs)); the download step needs the ModelScope SDK.
options:
  model_id:
    description: Model to download, as C(owner/name).
    type: str
    required: true
    aliases: [model]
  revision:
    description:
      - Branch, tag or commit to download. Letters, digits, C(.), C(_), C(+) and C(-) in segments joined by C(/)
        (C(release/v1)); C(..), a leading or trailing C(/) and any other character are refused before any request.
    type: str
    default: master
  model_dir:
    description:
      - Directory that receives the model's files. Created with its parents when missing.
      - Defaults to C(/opt/llmops/models/<owner>/<name>).
      - It may itself be a symlink to a directory; symlinks inside it are refused.
    type: path
  endpoint:
    description:
      - Hub URL, always passed explicitly to the SDK (no probing of public sites).
      - A bare host is refused rather than guessed.
    type: str
    default: https://modelscope.cn
  token:
    description:
      - Hub access token (keep it in Ansible Vault). Sent as a Bearer header to the hub; handed to the SDK on its
        standard input. Never logged, never on a command line.
    type: str
  include:
    description:
      - Glob patterns of the files to download, matched like the SDK does (case-sensitive C(fnmatch) on the full path,
        C(*) also matches C(/), comma-separated values split). Empty selects every file.
    type: list
    elements: str
    default: []
  exclude:
    description: Glob patterns of files to leave out; exclusion wins over O(include).
    type: list
    elements: str
    default: []
  verify:
    description:
      - How files already on disk are trusted. C(quick) accepts a file whose marker entry matches the manifest and
        whose size and mtime did not change since it was verified. C(full) re-hashes every file.
      - Files fetched by this run are always checked by size and sha256.
    type: str
    choices: [quick, full]
    default: quick
  offline:
    description:
      - Do not ask the hub. The directory must already hold a valid marker for the same O(model_id), O(revision),
        O(include) and O(exclude); its files are checked as O(verify) says. Nothing can be repaired offline.
    type: bool
    default: false
  max_workers:
    description: Files downloaded in parallel by the SDK.
    type: int
    default: 4
  free_space_margin:
    description:
      - Free space to keep on top of the bytes still to fetch, checked before any byte is written.
      - A percentage of the bytes to fetch (C(5%)) or a size (C(1GiB), C(500MB), C(0)).
    type: str
    default: 5%
  lock_timeout:
    description: Seconds to wait for another run on the same model directory before failing.
    type: int
    default: 600
  state_dir:
    description:
      - Directory for the SDK's side files (C(MODELSCOPE_CACHE), C(MODELSCOPE_HOME), C(HOME) of the SDK process),
        so nothing lands in the home of the user running the module.
      - Defaults to C(<parent of model_dir>/.modelscope-state).
    type: path
  sdk_python:
    description:
      - Python interpreter that can import the ModelScope SDK, used for the download step only.
      - Defaults to the interpreter running this module.
    type: path
notes:
  - Every listed blob must carry a size and a lowercase hex sha256; a listing that does not, or that holds an unsafe
    path (C(..), absolute, backslash, drive letter, a control or format character of Unicode categories Cc, Cf, Zl or
    Zp such as U+0085, U+009B, U+2028 or the bidi override U+202E, empty segment, the marker's name, an SDK
    partial-file suffix), is refused as a whole, even for files the patterns would exclude.
  - The staging directory needs room for the files being fetched while the previous revision's files are still in
    place (O(free_space_margin) is checked on that filesystem).
  - Files in the directory that the selection does not name are left alone.
  - Pickle weights (C(.bin), C(.pt), ...) are reported in RV(pickle_files), code in RV(code_files); exclude them with
    O(exclude) if the runtime does not need them.
seealso:
  - module: llmops.deploy.model_verify
"""

EXAMPLES = r"""
- name: Download Qwen2.5-7B-Instruct safetensors weights
  llmops.deploy.modelscope_download:
    model_id: Qwen/Qwen2.5-7B-Instruct
    revision: master
    model_dir: /opt/llmops/models/Qwen/Qwen2.5-7B-Instruct
    token: "{{ vault_modelscope_token }}"
    exclude:
      - "*.bin"
      - "*.pt"
    owner: llm
    group: llm
    mode: "0644"
    dir_mode: "0755"
    sdk_python: /opt/llmops/venv/bin/python

- name: Check what a download would fetch
  llmops.deploy.modelscope_download:
    model_id: Qwen/Qwen2.5-0.5B-Instruct
    endpoint: http://hub.internal:8080
  check_mode: true
  register: plan

- name: Download from an internal mirror with a private CA, through the site proxy
  llmops.deploy.modelscope_download:
    model_id: Qwen/Qwen2.5-0.5B-Instruct
    endpoint: https://hub.mirror.internal
    ca_path: /etc/pki/llmops/mirror-ca.pem
    sdk_python: /opt/llmops/venv/bin/python
  environment:
    https_proxy: http://proxy.internal:3128
    no_proxy: localhost,127.0.0.1

- name: Re-hash every file against the marker without asking the hub
  llmops.deploy.modelscope_download:
    model_id: Qwen/Qwen2.5-0.5B-Instruct
    offline: true
    verify: full
"""

RETURN = r"""
model_dir:
  description: Absolute path of the model directory.
  returned: always
  type: str
  sample: /opt/llmops/models/Qwen/Qwen2.5-7B-Instruct
model_id:
  description: The model downloaded.
  returned: always
  type: str
  sample: Qwen/Qwen2.5-7B-Instruct
revision:
  description: The revision the hub resolved (its commit id when the listing carries one, else the requested one).
  returned: success
  type: str
  sample: 5c3a1b2e9f0d4c6b8a7e
revision_requested:
  description: The revision asked for.
  returned: always
  type: str
  sample: master
endpoint:
  description: Hub endpoint used (never with credentials).
  returned: always
  type: str
  sample: https://modelscope.cn
files:
  description: Number of files in the selection.
  returned: success
  type: int
  sample: 14
bytes_total:
  description: Total size of the selected files.
  returned: success
  type: int
  sample: 15231233024
files_fetched:
  description: Files the SDK was asked to fetch in this run.
  returned: success
  type: int
  sample: 4
bytes_fetched:
  description: Bytes added to the fetched files on disk in this run (final sizes minus partial bytes already there).
  returned: success
  type: int
  sample: 3145851
files_staged:
  description: Files found complete and verified in the staging directory (left by an interrupted run), reused
    without a request.
  returned: when something was to be fetched
  type: int
  sample: 3
hashed_while_downloading:
  description: Fetched files whose sha256 was computed while their bytes arrived (the others were hashed after the
    SDK finished, in parallel).
  returned: when the SDK ran
  type: int
  sample: 4
sdk_attempts:
  description: SDK runs in this download (2 when files that arrived with wrong bytes were fetched once more).
  returned: when the SDK ran
  type: int
  sample: 1
verify_seconds:
  description: Seconds spent after the SDK exited to finish hashing (what was not hashed while it downloaded).
  returned: when the SDK ran
  type: float
  sample: 0.02
files_removed:
  description: Files that were in place with the wrong content (or another revision's) and were replaced by the
    verified new ones.
  returned: success
  type: list
  elements: str
  sample: [model-00002-of-00004.safetensors]
hashed_files:
  description: Files whose sha256 was computed in this run (fetched files and files without a usable marker entry).
  returned: success
  type: int
  sample: 4
hashed_bytes:
  description: Bytes hashed in this run.
  returned: success
  type: int
  sample: 3145851
verified:
  description: How files already on disk were checked (C(quick) size and mtime against the marker, C(full) sha256).
  returned: success
  type: str
  sample: quick
marker:
  description: Path of the completion marker.
  returned: always
  type: str
  sample: /opt/llmops/models/Qwen/Qwen2.5-7B-Instruct/.llmops-complete.json
marker_written:
  description: Whether this run wrote the marker.
  returned: success
  type: bool
  sample: true
complete:
  description: Whether the directory holds a valid marker matching the selection at the end of the run (false in
    check mode when something would be fetched).
  returned: success
  type: bool
  sample: true
pickle_files:
  description: Selected files that are (or may be) Python pickles; loading them can execute code.
  returned: success
  type: list
  elements: str
  sample: [pytorch_model.bin]
code_files:
  description: Selected files that are code (Python, native libraries, scripts); never run by this module.
  returned: success
  type: list
  elements: str
  sample: [modeling_custom.py]
would_fetch:
  description: In check mode, the files a real run would fetch, with their size and the partial bytes already there.
  returned: check mode
  type: list
  elements: dict
  sample: [{"path": "model.safetensors", "size": 3145851, "have": 0}]
would_fetch_bytes:
  description: In check mode, the bytes a real run would still fetch.
  returned: check mode
  type: int
  sample: 3145851
free_space:
  description: The free-space check (filesystem path checked, bytes available, bytes required including the margin).
  returned: when something is to be fetched
  type: dict
  sample: {"path": "/opt/llmops/models", "available": 107374182400, "required": 3303143, "margin": 157292}
lock_waited:
  description: Seconds spent waiting for another run's lock.
  returned: always
  type: float
  sample: 0.0
sdk:
  description: The SDK run (return code, seconds, interface used, error and failed files when it failed).
  returned: when the SDK ran
  type: dict
  sample: {"rc": 0, "seconds": 2.31, "api": "HubApi.download_repo(file_list)", "error": null, "failed": {}}
unsafe_paths:
  description: When the listing was refused, its unsafe paths with the reason for each (nothing was written).
  returned: failure
  type: list
  elements: str
  sample: ["unsafe path '../escaped.txt': '..' path segment"]
failed_files:
  description: Files that failed the size or sha256 check after the download, with the reason (deleted).
  returned: failure
  type: dict
  sample: {"model.safetensors": "sha256 3f...; expected 47..."}
"""

import json
import os
import stat
import sys
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.deploy.plugins.module_utils.dir_lock import DirLock, LockError, lock_path_for
from ansible_collections.llmops.deploy.plugins.module_utils.fetch_plan import bytes_to_fetch, plan_files, verify_fetched
from ansible_collections.llmops.deploy.plugins.module_utils.file_kinds import classify_paths
from ansible_collections.llmops.deploy.plugins.module_utils.free_space import (
    VerifyError, check_free_space, margin_bytes)
from ansible_collections.llmops.deploy.plugins.module_utils.hub_client import (
    HUB_CLIENT_ARGSPEC, HubClient, check_client_options, fetch_manifest, sdk_environment)
from ansible_collections.llmops.deploy.plugins.module_utils.hub_manifest import (
    HubError, ManifestError, normalize_endpoint, normalize_patterns, select_entries, split_model_id,
    validate_revision)
from ansible_collections.llmops.deploy.plugins.module_utils.marker import (
    RESERVED_NAMES, build_marker, full_check, manifest_matches_marker, marker_files, marker_path, quick_check,
    read_marker, remove_marker)
from ansible_collections.llmops.deploy.plugins.module_utils.model_install import (
    SYNC_EVERY, InstallError, install_verified, sync_attributes)
from ansible_collections.llmops.deploy.plugins.module_utils.stream_hash import hash_files, streamed_digests
from ansible_collections.llmops.deploy.plugins.module_utils.tree_safety import (
    PARTIAL_SUFFIX, STAGING_FILES, TreeError, apply_to_files, file_arguments, lstat_or_none, prepare_staging,
    remove_tree, staging_path_for, target_tree_problems, tree_problems)

MODULE_VERSION = "0.1.0"
# SDK runs per download: a file that arrives with wrong bytes is fetched once more.
FETCH_ATTEMPTS = 2
DEFAULT_MODELS_ROOT = "/opt/llmops/models"

# The download step, run by ``sdk_python -I -c``. It reads its request (token included) as JSON on stdin, dies with
# its parent, downloads exactly the files of the verified manifest and prints one JSON line. It never decides success:
# the module re-checks every file.
SDK_RUNNER = r"""
import json, os, sys
def _prctl(option, value):
    # Linux prctl(2); elsewhere nothing happens
    try:
        import ctypes
        ctypes.CDLL(None).prctl(option, value, 0, 0, 0)
    except Exception:
        pass
def _die_with_parent(parent):
    _prctl(1, 9)   # PR_SET_PDEATHSIG: SIGKILL
    if os.getppid() != parent:
        os._exit(70)
_streamed = {}
def _name_thread(name):
    _prctl(15, name.encode())   # PR_SET_NAME: what `top -H` and /proc/PID/task/TID/comm show for this thread
def _out(result):
    if _streamed:
        result["streamed"] = _streamed
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
def _hash_as_written(local_dir, suffix, sync_every):
    # Each file the SDK writes below local_dir (front to back, "wb", or "ab" to resume) is hashed from the very bytes
    # handed to write(), in a thread per file; on close its digest is recorded with the file's identity. The module
    # accepts a digest only for the file it describes (device, inode, size, mtime) and hashes any other file itself.
    import builtins, hashlib, queue, threading
    from modelscope_hub import _download
    BATCH = 4 << 20
    real_open = builtins.open
    root = os.path.abspath(local_dir) + os.sep
    class Hashing(object):
        def __init__(self, handle, rel, append):
            self._handle, self._rel, self._ok = handle, rel, True
            # Received blocks are handed to the hashing thread in batches of BATCH bytes: one hand-off (a lock, a
            # wake-up, the interpreter lock changing threads) per batch instead of per block the socket gave. At most
            # five batches (20 MiB) per file wait for the hash, which runs faster than any link.
            self._digest, self._queue, self._batch, self._batched = hashlib.sha256(), queue.Queue(4), [], 0
            self._fd = os.dup(handle.fileno())   # the syncing thread's own, closed after it
            self._unsynced, self._sync_due, self._done = 0, threading.Event(), False
            if append:
                with real_open(handle.name, "rb") as prefix:
                    for block in iter(lambda: prefix.read(1 << 20), b""):
                        self._digest.update(block)
            self._thread = threading.Thread(target=self._hash, daemon=True)
            self._syncer = threading.Thread(target=self._sync, daemon=True)
            self._thread.start()
            self._syncer.start()
        def _hash(self):
            _name_thread("llmops-sha256")
            for batch in iter(self._queue.get, None):
                for data in batch:
                    self._digest.update(data)
                    self._unsynced += len(data)
                if self._unsynced >= sync_every:
                    # the data goes to disk while the next bytes arrive (in the syncing thread, so that neither
                    # the hashing nor the download waits for the disk), not all at once before the marker
                    self._unsynced = 0
                    self._sync_due.set()
        def _sync(self):
            _name_thread("llmops-sync")
            while not self._done:
                self._sync_due.wait()
                self._sync_due.clear()
                if self._done:
                    break
                try:
                    os.fdatasync(self._fd)
                except OSError:
                    pass
        def _hand_off(self):
            if self._batch:
                self._queue.put(self._batch)
                self._batch, self._batched = [], 0
        def write(self, data):
            try:
                count = self._handle.write(data)
            except BaseException:
                self._ok = False
                raise
            if count is not None and count != len(data):
                self._ok = False
            self._batch.append(data if isinstance(data, bytes) else bytes(data))
            self._batched += len(data)
            if self._batched >= BATCH:
                self._hand_off()
            return count
        def close(self):
            if self._handle.closed:
                return
            try:
                self._handle.flush()
                st = os.fstat(self._handle.fileno())
            except BaseException:
                self._ok = False
                raise
            finally:
                self._handle.close()
                self._hand_off()
                self._queue.put(None)
                self._thread.join()
                self._done = True
                self._sync_due.set()
                self._syncer.join()
                os.close(self._fd)
            if self._ok:
                _streamed[self._rel] = [self._digest.hexdigest(), st.st_size, st.st_dev, st.st_ino, st.st_mtime_ns]
            else:
                _streamed.pop(self._rel, None)
        def __enter__(self):
            return self
        def __exit__(self, kind, value, tb):
            if kind is not None:
                self._ok = False
            self.close()
        def __getattr__(self, name):
            return getattr(self._handle, name)
    def hooked_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        path = os.path.abspath(os.fspath(file)) if isinstance(file, (str, bytes, os.PathLike)) else ""
        if "b" in mode and "+" not in mode and ("w" in mode or "a" in mode) and isinstance(path, str) \
                and path.startswith(root):
            rel = path[len(root):]
            rel = rel[:-len(suffix)] if rel.endswith(suffix) else rel
            _streamed.pop(rel, None)
            return Hashing(handle, rel, "a" in mode)
        return handle
    _download.open = hooked_open
req = json.loads(sys.stdin.read())
_die_with_parent(req["parent_pid"])
if req.get("validate_certs") is False:
    try:
        import requests
        _request = requests.Session.request
        def _unverified(self, *args, **kwargs):
            kwargs["verify"] = False
            return _request(self, *args, **kwargs)
        requests.Session.request = _unverified
    except ImportError:
        pass
try:
    import inspect
    api = "HubApi.download_repo(file_list)"
    try:
        from modelscope_hub import HubApi
        if "file_list" not in inspect.signature(HubApi.download_repo).parameters:
            raise ImportError("no file_list")
    except ImportError:
        HubApi = None
        api = "modelscope.snapshot_download(allow_patterns)"
        from modelscope import snapshot_download
except Exception as exc:
    _out({"ok": False, "api": None, "error": "the ModelScope SDK cannot be imported by %s: %s: %s" % (
        sys.executable, type(exc).__name__, exc), "failed": {}})
    raise SystemExit(3)
files = req["files"]
if HubApi is not None and req.get("stream_hash"):
    try:
        _hash_as_written(req["local_dir"], req["partial_suffix"], req["sync_every"])
    except Exception:
        pass  # this SDK writes its files some other way: the module hashes them after the download
try:
    if HubApi is not None:
        HubApi(endpoint=req["endpoint"], token=req["token"] or None).download_repo(
            req["model_id"], "model", revision=req["revision"], local_dir=req["local_dir"],
            max_workers=req["max_workers"],
            file_list=[{"Path": f["path"], "Type": "blob", "Size": f["size"],
                        "Sha256": f["sha256"] if req.get("sdk_verify", True) else None} for f in files])
    else:
        if any("," in f["path"] for f in files):
            raise RuntimeError("this SDK cannot be given a path with a comma; install modelscope-hub 0.5.1")
        def _literal(path):
            return "".join("[%s]" % c if c in "*?[" else c for c in path)
        snapshot_download(req["model_id"], revision=req["revision"], local_dir=req["local_dir"],
                          allow_patterns=[_literal(f["path"]) for f in files], max_workers=req["max_workers"],
                          token=req["token"] or None, endpoint=req["endpoint"])
except BaseException as exc:
    failed = dict((str(k), "%s: %s" % (type(v).__name__, v)) for k, v in (getattr(exc, "failed_files", None) or {}).items())
    _out({"ok": False, "api": api, "error": "%s: %s" % (type(exc).__name__, exc), "failed": failed})
    raise SystemExit(1)
_out({"ok": True, "api": api, "error": None, "failed": {}})
# Every file is closed and renamed by now, and the module checks each one anyway: skip the interpreter's teardown
# (unloading the SDK's modules takes longer than a small file's download on a busy machine).
sys.stderr.flush()
os._exit(0)
"""


def build_module():
    spec = dict(HUB_CLIENT_ARGSPEC)
    spec.update(
        model_id=dict(type="str", required=True, aliases=["model"]),
        revision=dict(type="str", default="master"),
        model_dir=dict(type="path"),
        endpoint=dict(type="str", default="https://modelscope.cn"),
        token=dict(type="str", no_log=True),
        include=dict(type="list", elements="str", default=[]),
        exclude=dict(type="list", elements="str", default=[]),
        verify=dict(type="str", choices=["quick", "full"], default="quick"),
        offline=dict(type="bool", default=False),
        max_workers=dict(type="int", default=4),
        free_space_margin=dict(type="str", default="5%"),
        lock_timeout=dict(type="int", default=600),
        state_dir=dict(type="path"),
        sdk_python=dict(type="path"),
        dir_mode=dict(type="raw"),
    )
    # owner, group, mode (and the SELinux and attribute options, refused by tree_safety.file_arguments) come from
    # Ansible's common file arguments; they are applied through descriptors, never with set_fs_attributes_if_different
    # (see the notes of the llmops.deploy.model_files doc fragment).
    return AnsibleModule(argument_spec=spec, supports_check_mode=True, add_file_common_args=True)


class Download(object):
    """One run of the module. Every failure goes through ``fail``; nothing raises out of ``run``."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.result = {"changed": False}
        self.lock = None

    # ------------------------------------------------------------------ helpers
    def fail(self, msg, **extra):
        self.result.update(extra)
        self.module.fail_json(msg=self.scrub(msg), **self.result)

    def scrub(self, text):
        token = self.params.get("token")
        if token and isinstance(text, str):
            text = text.replace(token, "********")
        return text

    def check_params(self):
        p = self.params
        try:
            self.owner, self.name = split_model_id(p["model_id"])
            self.endpoint = normalize_endpoint(p["endpoint"])
            validate_revision(p["revision"])
            self.include = normalize_patterns(p["include"])
            self.exclude = normalize_patterns(p["exclude"])
            margin_bytes(p["free_space_margin"], 0)
        except (ManifestError, VerifyError) as exc:
            self.fail(exc.message)
        for key, low in (("max_workers", 1), ("lock_timeout", 0)):
            if p[key] < low:
                self.fail("%s %r is not valid: expected an integer >= %d" % (key, p[key], low))
        problems = check_client_options(p)
        if problems:
            self.fail("; ".join(problems))
        try:
            self.uid, self.gid, self.file_mode, self.dir_mode = file_arguments(p, "modelscope_download")
        except ValueError as exc:
            self.fail(str(exc))
        self.model_dir = os.path.abspath(p["model_dir"] or os.path.join(DEFAULT_MODELS_ROOT, self.owner, self.name))
        if self.model_dir == os.path.dirname(self.model_dir):
            self.fail("model_dir %r is not valid: expected a directory below /" % p["model_dir"])
        self.result.update(model_dir=self.model_dir, model_id=p["model_id"], revision_requested=p["revision"],
                           endpoint=self.endpoint, marker=marker_path(self.model_dir), lock_waited=0.0)
        # Before any lock file is made: a model_dir that is a symlink must lead to a directory.
        try:
            lst = os.lstat(self.model_dir)
        except OSError:
            lst = None
        if lst is not None and stat.S_ISLNK(lst.st_mode):
            try:
                target = os.stat(self.model_dir)
            except OSError as exc:
                self.fail("refusing model_dir %s: it is a symlink to %s, which cannot be used (%s)" % (
                    self.model_dir, os.readlink(self.model_dir), exc.strerror))
            if not stat.S_ISDIR(target.st_mode):
                self.fail("refusing model_dir %s: it is a symlink to %s, which is not a directory" % (
                    self.model_dir, os.readlink(self.model_dir)))
        elif lst is not None and not stat.S_ISDIR(lst.st_mode):
            self.fail("refusing model_dir %s: it exists and is not a directory" % self.model_dir)
        parent = os.path.dirname(self.model_dir)
        self.state_dir = os.path.abspath(p["state_dir"] or os.path.join(parent, ".modelscope-state"))
        real_model = os.path.realpath(self.model_dir)
        for state in (self.state_dir, os.path.realpath(self.state_dir)):
            for model in (self.model_dir, real_model):
                if state == model or state.startswith(model + os.sep):
                    self.fail("state_dir %r is not valid: it must not be inside model_dir %s" % (
                        self.state_dir, self.model_dir))
        self.staging = staging_path_for(self.model_dir)
        self.staging_files = os.path.join(self.staging, STAGING_FILES)

    # ------------------------------------------------------------------ the run
    def run(self):
        self.check_params()
        check = self.module.check_mode
        if not check:
            try:
                os.makedirs(os.path.dirname(self.model_dir), exist_ok=True)
            except OSError as exc:
                self.fail("cannot create the parent of model_dir %s: %s" % (self.model_dir, exc))
        lock = DirLock(lock_path_for(self.model_dir), self.params["lock_timeout"], shared=check)
        try:
            lock.acquire()
        except LockError as exc:
            self.fail(str(exc))
        self.lock = lock
        try:
            self.result["lock_waited"] = round(lock.waited, 2)
            if self.params["offline"]:
                self.run_offline()
            else:
                self.run_online()
        finally:
            lock.release()
        self.module.exit_json(**self.result)

    def current_marker(self):
        marker, reason = read_marker(self.model_dir)
        if marker is not None and marker["model_id"] != self.params["model_id"]:
            return None, "the completion marker is for %s" % marker["model_id"]
        return marker, reason

    def marker_is_current(self, marker, entries, revision):
        return bool(marker) and manifest_matches_marker(entries, marker) and all((
            marker["revision_requested"] == self.params["revision"],
            marker["revision"] == revision,
            marker["include"] == self.include,
            marker["exclude"] == self.exclude,
        ))

    def run_offline(self):
        marker, reason = self.current_marker()
        if marker is None:
            self.fail("offline: %s in %s; run once with offline=false" % (reason, self.model_dir))
        for key, want in (("revision_requested", self.params["revision"]), ("include", self.include),
                          ("exclude", self.exclude)):
            if marker[key] != want:
                self.fail("offline: the completion marker was written for %s=%r, not %r; run with offline=false" % (
                    key.replace("_requested", ""), marker[key], want))
        files = marker["files"]
        problems = target_tree_problems(self.model_dir, [f["path"] for f in files])
        if self.params["verify"] == "full":
            problems += full_check(self.model_dir, files)
        else:
            problems += quick_check(self.model_dir, files)
        if problems:
            self.fail("offline: the model directory does not match its completion marker (%d problem(s)): %s" % (
                len(problems), "; ".join(problems[:20])), complete=False)
        self.result.update(
            revision=marker["revision"], files=len(files), bytes_total=sum(f["size"] for f in files),
            files_fetched=0, bytes_fetched=0, files_removed=[], verified=self.params["verify"],
            hashed_files=len(files) if self.params["verify"] == "full" else 0,
            hashed_bytes=sum(f["size"] for f in files) if self.params["verify"] == "full" else 0,
            marker_written=False, complete=True, **classify_paths([f["path"] for f in files]))
        if self.sync_attributes([f["path"] for f in files], check=self.module.check_mode):
            self.result["changed"] = True

    def run_online(self):
        p = self.params
        client = HubClient.from_params(p)
        try:
            manifest = fetch_manifest(self.endpoint, p["model_id"], p["revision"], reserved_names=RESERVED_NAMES,
                                      client=client)
        except ManifestError as exc:
            self.fail(exc.message, unsafe_paths=[x for x in exc.problems if x.startswith("unsafe path")])
        except HubError as exc:
            self.fail("cannot resolve %s@%s from %s: %s" % (p["model_id"], p["revision"], self.endpoint, exc.message))
        entries = select_entries(manifest["entries"], self.include, self.exclude)
        if not entries:
            self.fail("no file of %s@%s matches include=%r exclude=%r (the hub lists %d file(s))" % (
                p["model_id"], p["revision"], self.include, self.exclude, len(manifest["entries"])))
        revision = manifest["revision"]
        paths = [e["path"] for e in entries]
        self.result.update(revision=revision, files=len(entries), bytes_total=sum(e["size"] for e in entries),
                           verified=p["verify"], **classify_paths(paths))

        problems = target_tree_problems(self.model_dir, paths)
        if problems:
            self.fail("refusing to write into %s: %s" % (self.model_dir, "; ".join(problems)))

        marker, _reason = self.current_marker()
        plan = plan_files(self.model_dir, entries, marker_files(marker), full=(p["verify"] == "full"),
                          partial_root=self.staging_files)
        to_fetch = bytes_to_fetch(plan)
        current = self.marker_is_current(marker, entries, revision) and not plan["fetch"]
        self.result.update(hashed_files=plan["hashed_files"], hashed_bytes=plan["hashed_bytes"],
                           files_removed=list(plan["remove"]), files_fetched=0, bytes_fetched=0)
        if plan["fetch"]:
            try:
                # The new files are staged beside the model directory while the old ones stay in place.
                self.result["free_space"] = check_free_space(self.staging, to_fetch, p["free_space_margin"])
            except VerifyError as exc:
                self.fail(exc.message, would_fetch_bytes=to_fetch)

        if self.module.check_mode:
            self.result.update(
                would_fetch=[{"path": f["path"], "size": f["size"], "have": f["have"]} for f in plan["fetch"]],
                would_fetch_bytes=to_fetch, files_fetched=0, bytes_fetched=0, marker_written=False,
                complete=current, changed=not current)
            if current:
                self.result["changed"] = self.sync_attributes(paths, check=True)
            return

        staged = []
        if not current:
            self.result["changed"] = True
            self.prepare_dirs()
            known = marker_files(marker)
            wanted = dict((e["path"], e["sha256"]) for e in entries)
            if any(known.get(rel, {}).get("sha256") == wanted[rel] for rel in plan["remove"]):
                # A file the marker vouches for was found damaged: the marker no longer tells the truth.
                remove_marker(self.model_dir)
            if plan["fetch"]:
                staged = self.stage(plan["fetch"])
            files = plan["complete"] + staged
            self.install(paths, plan["complete"], staged, build_marker(
                p["model_id"], p["revision"], revision, self.endpoint, self.include, self.exclude, files,
                MODULE_VERSION, verified="full" if (p["verify"] == "full" or not plan["complete"]) else "quick"))
        self.result.update(marker_written=not current, complete=True)
        if self.sync_attributes(paths, check=False):
            self.result["changed"] = True

    # ------------------------------------------------------------------ staging
    def prepare_dirs(self):
        try:
            os.makedirs(self.model_dir, exist_ok=True)
            if not os.path.isdir(self.state_dir):
                os.makedirs(self.state_dir, mode=0o700)
            for sub in ("cache", "home"):
                os.makedirs(os.path.join(self.state_dir, sub), mode=0o700, exist_ok=True)
            prepare_staging(self.staging)
        except (OSError, TreeError) as exc:
            self.fail("cannot prepare %s or the private staging directory %s: %s" % (
                self.state_dir, self.staging, getattr(exc, "message", exc)))

    def workers(self):
        return max(1, min(self.params["max_workers"], os.cpu_count() or 1))

    def stage(self, items):
        """Fetch ``items`` into the private staging directory and verify them there. Returns the good entries
        (with mtime_ns). Files left complete in staging by an interrupted run are hashed and reused."""
        p = self.params
        root = self.staging_files
        candidates = []
        for item in items:
            st = lstat_or_none(os.path.join(root, item["path"]))
            if st is not None and stat.S_ISREG(st.st_mode) and st.st_size == item["size"]:
                candidates.append(item["path"])
        digests = hash_files(root, candidates, self.workers())
        reused, todo = [], []
        for item in items:
            if item["path"] in digests:
                self.result["hashed_files"] += 1
                self.result["hashed_bytes"] += item["size"]
            if item["path"] in digests and digests[item["path"]] == item["sha256"]:
                reused.append(item)
            else:
                if item["path"] in digests:
                    os.unlink(os.path.join(root, item["path"]))
                todo.append(item)
        good = []
        if reused:
            good, bad = verify_fetched(root, reused, digests=digests)
            todo.extend(dict(e, have=0) for e in reused if e["path"] in dict(bad))
        self.result.update(files_fetched=len(todo), bytes_fetched=sum(f["size"] - f["have"] for f in todo),
                           files_staged=len(good))
        if todo:
            good.extend(self.fetch(todo))
        # owner and mode while the files are still in the private staging directory
        apply_to_files(root, [g["path"] for g in good], self.uid, self.gid, self.file_mode)
        return good

    def sdk_python(self):
        wanted = self.params["sdk_python"] or sys.executable
        found = self.module.get_bin_path(wanted, required=False)
        if not found:
            self.fail("sdk_python %r is not an executable interpreter; install the SDK with role "
                      "llmops.deploy.modelscope_sdk or set sdk_python" % wanted)
        return found

    def fetch(self, items):
        """Let the SDK fetch ``items`` into the staging directory, verify them, and fetch again (once) the files
        that arrived with wrong bytes: the SDK is not asked to hash (the module does, while the bytes arrive), so
        this retry stands in for the SDK's own. Returns the good entries; fails naming every bad file."""
        p = self.params
        good, bad, todo = [], [], list(items)
        self.result["hashed_while_downloading"] = 0
        self.result["sdk_attempts"] = 0
        for attempt in range(1, FETCH_ATTEMPTS + 1):
            got, bad = self.fetch_once(todo)
            good.extend(got)
            mismatched = [rel for rel, why in bad if why.startswith(("sha256 ", "changed while"))]
            if not bad or attempt == FETCH_ATTEMPTS or len(mismatched) != len(bad):
                break
            todo = [dict(f, have=0) for f in todo if f["path"] in set(mismatched)]
        if bad:
            self.result.update(complete=False, marker_written=False)
            sdk = self.result["sdk"]
            self.fail("%d of %d file(s) of %s@%s failed the size/sha256 check and were deleted, no completion "
                      "marker was written: %s%s" % (
                          len(bad), len(items), p["model_id"], p["revision"],
                          "; ".join("%s (%s)" % item for item in bad[:20]),
                          (" -- SDK: %s" % sdk["error"]) if sdk["error"] else ""),
                      failed_files=dict(bad))
        if self.result["sdk"]["rc"] != 0:
            self.module.warn("the SDK reported a failure (%s) but every file passed the size and sha256 check" % (
                self.result["sdk"]["error"],))
        return good

    def fetch_once(self, items):
        p = self.params
        python = self.sdk_python()
        root = self.staging_files
        request = {
            "parent_pid": os.getpid(), "model_id": p["model_id"], "revision": p["revision"],
            "endpoint": self.endpoint, "token": p["token"] or "", "local_dir": root,
            "max_workers": p["max_workers"], "validate_certs": p["validate_certs"],
            # The runner hashes every byte as the SDK writes it (stream_hash), and the module checks every digest;
            # a second hash in the SDK would only cost CPU.
            "sdk_verify": False, "stream_hash": True, "partial_suffix": PARTIAL_SUFFIX, "sync_every": SYNC_EVERY,
            "files": [{"path": f["path"], "size": f["size"], "sha256": f["sha256"]} for f in items],
        }
        env = {
            "LC_ALL": "C", "MODELSCOPE_ENDPOINT": self.endpoint, "MODELSCOPE_DOWNLOAD_INTRA_CLOUD": "false",
            "MODELSCOPE_CACHE": os.path.join(self.state_dir, "cache"),
            "MODELSCOPE_HOME": os.path.join(self.state_dir, "home"), "HOME": os.path.join(self.state_dir, "home"),
            "MODELSCOPE_DOWNLOAD_FILE_LOCK": "false", "TQDM_DISABLE": "1", "PYTHONDONTWRITEBYTECODE": "1",
            # each file written front to back by one writer, so its bytes can be hashed as they are written
            "MODELSCOPE_DOWNLOAD_PARALLEL_WORKERS": "1",
        }
        env.update(sdk_environment(p["validate_certs"], p["ca_path"], p["use_proxy"], p["timeout"], p["retries"]))
        started = time.time()
        rc, out, err = self.module.run_command(
            [python, "-I", "-c", SDK_RUNNER], data=json.dumps(request), environ_update=env, cwd=self.state_dir,
            pass_fds=(self.lock.fd,) if self.lock is not None and self.lock.fd is not None else None)
        sdk_seconds = time.time() - started
        outcome = _last_json_line(out) or {"ok": False, "api": None, "error": None, "failed": {}}
        sdk = {"rc": rc, "seconds": round(sdk_seconds, 2), "api": outcome.get("api"),
               "error": self.scrub(outcome.get("error")), "failed": outcome.get("failed") or {}}
        if rc != 0 and not sdk["error"]:
            sdk["error"] = self.scrub((err or out or "").strip()[-1500:]) or "exit status %d" % rc
        self.result["sdk"] = sdk
        self.result["sdk_attempts"] += 1
        if outcome.get("api") is None and outcome.get("error"):
            # The SDK never started (not importable): that is the cause, say it first.
            self.fail("cannot download %s@%s: %s; nothing was downloaded and no completion marker was written" % (
                p["model_id"], p["revision"], sdk["error"]), complete=False, marker_written=False)

        links = tree_problems(self.staging)
        if links:
            self.fail("the private staging directory %s holds something other than regular files and directories "
                      "(%s); nothing was put into %s" % (self.staging, "; ".join(links[:20]), self.model_dir),
                      complete=False, marker_written=False)
        # digests of the bytes as they were written, for the files that are still exactly what was hashed; every
        # other file is hashed now, in parallel
        streamed = streamed_digests(root, items, outcome.get("streamed"))
        present = [f["path"] for f in items if f["path"] not in streamed
                   and lstat_or_none(os.path.join(root, f["path"])) is not None]
        digests = dict(streamed)
        digests.update(hash_files(root, present, self.workers()))
        self.result["hashed_while_downloading"] += len(streamed)
        self.result["verify_seconds"] = round(time.time() - started - sdk_seconds, 2)
        good, bad = verify_fetched(root, items, digests=digests)
        self.result["hashed_files"] += len(good) + len([b for b in bad if b[0] in digests])
        self.result["hashed_bytes"] += sum(f["size"] for f in good)
        if bad:
            self.result["bytes_fetched"] = self.bytes_on_disk(items)
            for rel, _why in bad:
                try:
                    os.unlink(os.path.join(root, rel))
                except OSError:
                    pass
        return good, bad

    def bytes_on_disk(self, items):
        total = 0
        for item in items:
            for suffix in ("", PARTIAL_SUFFIX):
                st = lstat_or_none(os.path.join(self.staging_files, item["path"] + suffix))
                if st is not None:
                    total += st.st_size
                    break
        return max(total - sum(i["have"] for i in items), 0)

    # ------------------------------------------------------------------ the switch
    def install(self, paths, complete, staged, marker):
        """Move the verified staged files into the model directory and write the marker last.

        Until the first rename the previous revision is untouched (its marker included); a refusal before that
        point leaves it usable. The renames go from the staging directory's descriptors to the model directory's
        descriptors (tree_safety.TargetDir), so a symlink planted in the model directory is refused, never
        followed."""
        try:
            install_verified(self.model_dir, self.staging_files, paths, complete, staged, marker, uid=self.uid,
                             gid=self.gid, file_mode=self.file_mode, dir_mode=self.dir_mode)
        except InstallError as exc:
            self.fail(exc.message, complete=False, marker_written=False)
        except TreeError as exc:
            self.fail("refusing to write into %s: %s; no completion marker was written" % (
                self.model_dir, exc.message), complete=False, marker_written=False)
        except OSError as exc:
            self.fail("cannot move the verified files into %s: %s; no completion marker was written" % (
                self.model_dir, exc), complete=False, marker_written=False)
        try:
            remove_tree(self.staging)
        except OSError as exc:
            self.module.warn("the staging directory %s could not be removed: %s" % (self.staging, exc))

    # ------------------------------------------------------------------ ownership and modes
    def sync_attributes(self, paths, check):
        """Owner/group/mode of the model directory, its subdirectories, the files and the marker, through
        descriptors opened without following links. Returns True when something differs (check) or changed."""
        try:
            return sync_attributes(self.model_dir, paths, self.uid, self.gid, self.file_mode, self.dir_mode, check)
        except TreeError as exc:
            self.fail("refusing to set owner or mode in %s: %s" % (self.model_dir, exc.message))
        except OSError as exc:
            self.fail("cannot set owner or mode in %s: %s" % (self.model_dir, exc))


def _last_json_line(text):
    for line in reversed((text or "").splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def main():
    module = build_module()
    Download(module).run()


if __name__ == "__main__":
    main()
