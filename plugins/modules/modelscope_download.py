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
  - The module owns correctness, the SDK only moves bytes. After the SDK ran, the module checks every file's size and
    sha256 itself and only then writes a completion marker C(<model_dir>/.llmops-complete.json) holding the verified
    manifest, atomically. A directory without a valid marker is never reported as complete; a file that failed its
    check is deleted.
  - On a rerun with a valid marker nothing is fetched and nothing is re-hashed (sizes and mtimes are compared with the
    marker); only the listing is fetched to notice a moved revision. O(verify=full) re-hashes every file.
    O(offline=true) trusts the marker without asking the hub.
  - The SDK runs in a child process (the interpreter O(sdk_python), isolated mode, working directory O(state_dir)) that
    gets the token on its standard input, never on a command line or in its environment. The endpoint is always
    explicit, Alibaba Cloud region probing is off, and the SDK's side files (session id, cache) go to O(state_dir).
  - Nothing from the model repository is imported or executed. Pickle weights and code files are reported.
  - Role C(llmops.deploy.model_download) wraps this module and M(llmops.deploy.model_verify).
  - Runs are serialised per model directory by an C(flock) on C(<parent>/.<name>.llmops-lock); a second run waits up
    to O(lock_timeout) seconds, then fails naming the holder.
author:
  - llmops.deploy developers (@llmops)
requirements:
  - The ModelScope SDK (C(modelscope) and C(modelscope-hub), pinned 1.40.2 / 0.5.1) importable by O(sdk_python), for
    downloads only. Check mode, reruns of complete directories and O(offline=true) need only the standard library.
  - Linux (C(fcntl), C(os.statvfs)).
extends_documentation_fragment:
  - llmops.deploy.attributes
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
    description: Branch, tag or commit to download.
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
  timeout:
    description: Seconds per HTTP request when fetching the listing.
    type: int
    default: 60
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
  owner:
    description: Owner of the model directory, its subdirectories, files and marker. Unchanged when not given.
    type: str
  group:
    description: Group of the model directory, its subdirectories, files and marker. Unchanged when not given.
    type: str
  mode:
    description: Mode of the model's files and marker, for example C('0644'). Unchanged when not given.
    type: raw
  dir_mode:
    description: Mode of the model directory and its subdirectories, for example C('0755'). Unchanged when not given.
    type: raw
notes:
  - Every listed blob must carry a size and a lowercase hex sha256; a listing that does not, or that holds an unsafe
    path (C(..), absolute, backslash, drive letter, control character, empty segment, the marker's name, an SDK
    partial-file suffix), is refused as a whole, even for files the patterns would exclude.
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
files_removed:
  description: Files that were in place with the wrong content and were deleted before fetching.
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
import sys
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.deploy.plugins.module_utils.file_verify import (
    RESERVED_NAMES, DirLock, LockTimeout, VerifyError, build_marker, bytes_to_fetch, check_free_space,
    classify_paths, full_check, lock_path_for, manifest_matches_marker, margin_bytes, marker_files, marker_path,
    plan_files, quick_check, read_marker, remove_marker, target_tree_problems, verify_fetched, write_marker)
from ansible_collections.llmops.deploy.plugins.module_utils.hub_client import fetch_manifest
from ansible_collections.llmops.deploy.plugins.module_utils.hub_manifest import (
    HubError, ManifestError, normalize_endpoint, normalize_patterns, select_entries, split_model_id,
    validate_revision)

MODULE_VERSION = "0.1.0"
DEFAULT_MODELS_ROOT = "/opt/llmops/models"

# The download step, run by ``sdk_python -I -c``. It reads its request (token included) as JSON on stdin, dies with
# its parent, downloads exactly the files of the verified manifest and prints one JSON line. It never decides success:
# the module re-checks every file.
SDK_RUNNER = r"""
import json, os, sys
def _die_with_parent(parent):
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, 9)
    except Exception:
        pass
    if os.getppid() != parent:
        os._exit(70)
def _out(result):
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
req = json.loads(sys.stdin.read())
_die_with_parent(req["parent_pid"])
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
try:
    if HubApi is not None:
        HubApi(endpoint=req["endpoint"], token=req["token"] or None).download_repo(
            req["model_id"], "model", revision=req["revision"], local_dir=req["local_dir"],
            max_workers=req["max_workers"],
            file_list=[{"Path": f["path"], "Type": "blob", "Size": f["size"], "Sha256": f["sha256"]} for f in files])
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
"""


def build_module():
    return AnsibleModule(
        argument_spec=dict(
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
            timeout=dict(type="int", default=60),
            state_dir=dict(type="path"),
            sdk_python=dict(type="path"),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="raw"),
            dir_mode=dict(type="raw"),
        ),
        supports_check_mode=True,
    )


class Download(object):
    """One run of the module. Every failure goes through ``fail``; nothing raises out of ``run``."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.result = {"changed": False}

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
        for key, low in (("max_workers", 1), ("lock_timeout", 0), ("timeout", 1)):
            if p[key] < low:
                self.fail("%s %r is not valid: expected an integer >= %d" % (key, p[key], low))
        self.model_dir = os.path.abspath(p["model_dir"] or os.path.join(DEFAULT_MODELS_ROOT, self.owner, self.name))
        if self.model_dir == os.path.dirname(self.model_dir):
            self.fail("model_dir %r is not valid: expected a directory below /" % p["model_dir"])
        parent = os.path.dirname(self.model_dir)
        self.state_dir = os.path.abspath(p["state_dir"] or os.path.join(parent, ".modelscope-state"))
        if self.state_dir == self.model_dir or self.state_dir.startswith(self.model_dir + os.sep):
            self.fail("state_dir %r is not valid: it must not be inside model_dir %s" % (self.state_dir, self.model_dir))
        self.result.update(model_dir=self.model_dir, model_id=p["model_id"], revision_requested=p["revision"],
                           endpoint=self.endpoint, marker=marker_path(self.model_dir), lock_waited=0.0)

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
        except LockTimeout as exc:
            self.fail(str(exc))
        except OSError as exc:
            self.fail("cannot lock %s: %s" % (lock.path, exc))
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
        self.apply_attributes([f["path"] for f in files])

    def run_online(self):
        p = self.params
        try:
            manifest = fetch_manifest(self.endpoint, p["model_id"], p["revision"], token=p["token"],
                                      timeout=p["timeout"], reserved_names=RESERVED_NAMES)
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
        plan = plan_files(self.model_dir, entries, marker_files(marker), full=(p["verify"] == "full"))
        to_fetch = bytes_to_fetch(plan)
        current = self.marker_is_current(marker, entries, revision) and not plan["fetch"]
        self.result.update(hashed_files=plan["hashed_files"], hashed_bytes=plan["hashed_bytes"],
                           files_removed=list(plan["remove"]))
        if plan["fetch"]:
            try:
                self.result["free_space"] = check_free_space(self.model_dir, to_fetch, p["free_space_margin"],
                                                             freed=plan["remove_bytes"])
            except VerifyError as exc:
                self.fail(exc.message, would_fetch_bytes=to_fetch)

        if self.module.check_mode:
            self.result.update(
                would_fetch=[{"path": f["path"], "size": f["size"], "have": f["have"]} for f in plan["fetch"]],
                would_fetch_bytes=to_fetch, files_fetched=0, bytes_fetched=0, marker_written=False,
                complete=current, changed=not current)
            if current:
                self.result["changed"] = self.attributes_differ(paths)
            return

        fetched_good = []
        if not current:
            self.prepare_dir()
            remove_marker(self.model_dir)
            for rel in plan["remove"]:
                try:
                    os.unlink(os.path.join(self.model_dir, rel))
                except FileNotFoundError:
                    pass
            self.result["changed"] = True
            if plan["fetch"]:
                fetched_good = self.fetch(plan["fetch"])
            files = plan["complete"] + fetched_good
            self.remove_stale_partials(files)
            recheck = quick_check(self.model_dir, plan["complete"])
            if recheck:
                self.fail("files changed while the download ran (%s); nothing was marked complete" % "; ".join(
                    recheck), complete=False)
            write_marker(self.model_dir, build_marker(
                p["model_id"], p["revision"], revision, self.endpoint, self.include, self.exclude, files,
                MODULE_VERSION, verified="full" if (p["verify"] == "full" or not plan["complete"]) else "quick"))
        self.result.update(files_fetched=len(plan["fetch"]), marker_written=not current, complete=True,
                           bytes_fetched=sum(f["size"] - f["have"] for f in plan["fetch"]))
        self.result["hashed_files"] = plan["hashed_files"] + len(fetched_good)
        self.result["hashed_bytes"] = plan["hashed_bytes"] + sum(f["size"] for f in fetched_good)
        if self.apply_attributes(paths):
            self.result["changed"] = True

    # ------------------------------------------------------------------ download
    def prepare_dir(self):
        try:
            os.makedirs(self.model_dir, exist_ok=True)
            if not os.path.isdir(self.state_dir):
                os.makedirs(self.state_dir, mode=0o700)
            for sub in ("cache", "home"):
                os.makedirs(os.path.join(self.state_dir, sub), mode=0o700, exist_ok=True)
        except OSError as exc:
            self.fail("cannot create %s or %s: %s" % (self.model_dir, self.state_dir, exc))

    def sdk_python(self):
        wanted = self.params["sdk_python"] or sys.executable
        found = self.module.get_bin_path(wanted, required=False)
        if not found:
            self.fail("sdk_python %r is not an executable interpreter; install the SDK with role "
                      "llmops.deploy.modelscope_sdk or set sdk_python" % wanted)
        return found

    def fetch(self, items):
        p = self.params
        python = self.sdk_python()
        request = {
            "parent_pid": os.getpid(), "model_id": p["model_id"], "revision": p["revision"],
            "endpoint": self.endpoint, "token": p["token"] or "", "local_dir": self.model_dir,
            "max_workers": p["max_workers"],
            "files": [{"path": f["path"], "size": f["size"], "sha256": f["sha256"]} for f in items],
        }
        env = {
            "LC_ALL": "C", "MODELSCOPE_ENDPOINT": self.endpoint, "MODELSCOPE_DOWNLOAD_INTRA_CLOUD": "false",
            "MODELSCOPE_CACHE": os.path.join(self.state_dir, "cache"),
            "MODELSCOPE_HOME": os.path.join(self.state_dir, "home"), "HOME": os.path.join(self.state_dir, "home"),
            "MODELSCOPE_DOWNLOAD_FILE_LOCK": "false", "TQDM_DISABLE": "1", "PYTHONDONTWRITEBYTECODE": "1",
        }
        started = time.time()
        rc, out, err = self.module.run_command(
            [python, "-I", "-c", SDK_RUNNER], data=json.dumps(request), environ_update=env, cwd=self.state_dir,
            pass_fds=(self.lock.fd,) if self.lock.fd is not None else None)
        outcome = _last_json_line(out) or {"ok": False, "api": None, "error": None, "failed": {}}
        sdk = {"rc": rc, "seconds": round(time.time() - started, 2), "api": outcome.get("api"),
               "error": self.scrub(outcome.get("error")), "failed": outcome.get("failed") or {}}
        if rc != 0 and not sdk["error"]:
            sdk["error"] = self.scrub((err or out or "").strip()[-1500:]) or "exit status %d" % rc
        self.result["sdk"] = sdk

        good, bad = verify_fetched(self.model_dir, items)
        if bad:
            for rel, _why in bad:
                try:
                    os.unlink(os.path.join(self.model_dir, rel))
                except FileNotFoundError:
                    pass
            failed = dict(bad)
            self.result.update(complete=False, files_fetched=len(items), marker_written=False,
                               bytes_fetched=self.bytes_on_disk(items))
            self.fail("%d of %d file(s) of %s@%s failed the size/sha256 check and were deleted, no completion "
                      "marker was written: %s%s" % (
                          len(bad), len(items), p["model_id"], p["revision"],
                          "; ".join("%s (%s)" % item for item in bad[:20]),
                          (" -- SDK: %s" % sdk["error"]) if sdk["error"] else ""),
                      failed_files=failed)
        if rc != 0:
            self.module.warn("the SDK reported a failure (%s) but every file passed the size and sha256 check" % (
                sdk["error"],))
        return good

    def remove_stale_partials(self, files):
        """SDK partial files left next to files that are now complete (an interrupted older download)."""
        for item in files:
            partial = os.path.join(self.model_dir, item["path"] + ".incomplete")
            if os.path.isfile(partial) and not os.path.islink(partial):
                os.unlink(partial)

    def bytes_on_disk(self, items):
        total = 0
        for item in items:
            for suffix in ("", ".incomplete"):
                try:
                    total += os.lstat(os.path.join(self.model_dir, item["path"] + suffix)).st_size
                    break
                except OSError:
                    continue
        return max(total - sum(i["have"] for i in items), 0)

    # ------------------------------------------------------------------ ownership and modes
    def _attribute_targets(self, paths):
        dirs = set([self.model_dir])
        for rel in paths:
            parts = rel.split("/")
            for i in range(1, len(parts)):
                dirs.add(os.path.join(self.model_dir, *parts[:i]))
        files = [os.path.join(self.model_dir, rel) for rel in paths] + [marker_path(self.model_dir)]
        return sorted(dirs), files

    def attributes_differ(self, paths):
        p = self.params
        if not (p["owner"] or p["group"] or p["mode"] is not None or p["dir_mode"] is not None):
            return False
        dirs, files = self._attribute_targets(paths)
        for path, mode in [(d, p["dir_mode"]) for d in dirs] + [(f, p["mode"]) for f in files]:
            if not os.path.exists(path):
                return True
            if self._probe({"path": path, "owner": p["owner"], "group": p["group"], "mode": mode}):
                return True
        return False

    def _probe(self, args):
        # set_*_if_different honour check mode: they report a change without making it.
        changed = False
        changed = self.module.set_owner_if_different(args["path"], args["owner"], changed, expand=False)
        changed = self.module.set_group_if_different(args["path"], args["group"], changed, expand=False)
        if args["mode"] is not None:
            changed = self.module.set_mode_if_different(args["path"], args["mode"], changed, expand=False)
        return changed

    def apply_attributes(self, paths):
        p = self.params
        if not (p["owner"] or p["group"] or p["mode"] is not None or p["dir_mode"] is not None):
            return False
        dirs, files = self._attribute_targets(paths)
        changed = False
        for path in dirs:
            if self._probe({"path": path, "owner": p["owner"], "group": p["group"], "mode": p["dir_mode"]}):
                changed = True
        for path in files:
            if os.path.exists(path) and self._probe({"path": path, "owner": p["owner"], "group": p["group"],
                                                     "mode": p["mode"]}):
                changed = True
        return changed


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
