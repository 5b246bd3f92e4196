#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: model_bundle
short_description: Carry a verified model directory to a site without a hub, as a bundle of parts
version_added: 0.1.0
description:
  - O(state=export) writes a model directory that M(llmops.deploy.modelscope_download) completed (a valid completion
    marker) as one bundle; O(state=import) puts a bundle into a model directory, fully verified, and writes the same
    completion marker a hub download writes, so M(llmops.deploy.model_verify), reruns of
    M(llmops.deploy.modelscope_download) with O(llmops.deploy.modelscope_download#module:offline=true) and the serving
    roles do not know the difference.
  - The stream is not compressed - safetensors weights barely compress, and a compressing transport or filesystem
    does it better without a second pass here.
  - A bundle is a POSIX tar stream (any C(tar) can list or unpack it) whose first member C(llmops-bundle.json) is the
    manifest (model, revision, selection, and every file's path, size and sha256, taken from the completion marker),
    followed by the files. The stream is written straight into parts of O(part_size) bytes
    (C(<bundle>.tar.part0000), C(.part0001)...; one file C(<bundle>.tar) when O(part_size) is not given) for
    removable media;
    no second full copy of the model is ever written. A sidecar C(<bundle>.json) lists the parts with their size,
    and the sha256 of the manifest.
  - Every byte is read once and hashed once. Export reads every file once (C(O_NOFOLLOW)) and checks it against the
    marker's sha256, hashed from the same buffers that are written into the bundle (in helper threads beside the
    copy, consecutive files on different cores); a directory whose files no longer match its marker is refused and
    no bundle is left behind. Each full part is synced to disk while the next one is written; the sidecar is
    written once every part is.
  - Import reads every byte of the parts once - first every tar header, in order (the files' data is passed
    unread), then the files at their offsets, one file per core at a time, each hashed by a helper thread of its own,
    so the sha256 of several files are computed on several cores; files already in place under a valid marker are not
    read at all. Every member must be a regular file the manifest names, of its listed size; links, devices,
    directories, unknown or repeated names are refused. A part opened again for its data
    must be the very file (device and inode) whose headers were read. Files are written into the same private
    staging directory downloads use (C(.<name>.llmops-staging), mode 0700), each hashed from the very bytes written,
    and switched into the model directory only when every one of them matched the manifest's sha256 (the previous
    revision stays whole until then, see M(llmops.deploy.modelscope_download)). A file that does not match is named
    with the part(s) its bytes came from. The manifest must match its sha256 in the sidecar, every tar header its
    checksum, and the padding and the end of the archive must be zeros, so a damaged byte anywhere that matters is
    refused.
  - Bundles whose sidecar lists a sha256 per part (written by earlier development versions) are still imported, and
    those part digests checked too (a second hash of every byte, for those bundles only; they are read front to
    back, one file after another).
  - Runs are serialised per model directory with the lock M(llmops.deploy.modelscope_download) uses.
author:
  - llmops.deploy developers (@llmops)
extends_documentation_fragment:
  - llmops.deploy.attributes
  - llmops.deploy.model_files
attributes:
  check_mode:
    support: full
    details: Reads the marker (export) or the bundle's manifest (import) and reports whether anything would be
      written; writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
    support: full
options:
  state:
    description: C(export) a model directory into a bundle, or C(import) a bundle into a model directory.
    type: str
    choices: [export, import]
    required: true
  path:
    description: The model directory (the source of an export, the target of an import).
    type: path
    required: true
  bundle:
    description:
      - Path of the bundle without its suffix, for example C(/media/usb/Qwen2.5-7B-Instruct). The files are
        C(<bundle>.tar) (C(<bundle>.tar.partNNNN) when split) and the sidecar C(<bundle>.json).
      - Its directory must exist.
    type: path
    required: true
  part_size:
    description:
      - Split the bundle into parts of this size (C(4GiB), C(700MB)); empty for one file.
    type: str
    default: ""
  model_id:
    description: The model the bundle must hold (C(owner/name)); checked against the marker or the bundle's manifest.
    type: str
  lock_timeout:
    description: Seconds to wait for another run on the same model directory before failing.
    type: int
    default: 600
  workers:
    description:
      - Threads that handle files at once. An import copies that many files out of the bundle at once, each
        reading its own place in the bundle and hashing what it copies. An export reads the files one after another
        (a bundle is one stream) and hashes up to that many at once. Default is one per core, at most 4.
      - V(1) imports one file at a time, for a bundle on a rotating disk or removable media, where reading several
        places at once makes the head seek back and forth.
    type: int
notes:
  - O(owner), O(group), O(mode) and O(dir_mode) apply to the model directory an import writes (O(state=import));
    files an import writes get mode C(0644) when O(mode) is not given. An export checks that they are valid and
    does not apply them; the bundle's parts (mode C(0644)) and sidecar belong to the user running the module.
  - An export is unchanged when the sidecar (of the current format) already describes the same files, revision and
    part size and every part is there with its recorded size; an import is unchanged when the model directory
    already holds the bundle's files under a valid marker.
seealso:
  - module: llmops.deploy.modelscope_download
  - module: llmops.deploy.model_verify
"""

EXAMPLES = r"""
- name: Export a downloaded model to removable media in 4 GiB parts
  llmops.deploy.model_bundle:
    state: export
    path: /opt/llmops/models/Qwen/Qwen2.5-7B-Instruct
    bundle: /media/usb/Qwen2.5-7B-Instruct
    part_size: 4GiB

- name: Import it on the air-gapped side
  llmops.deploy.model_bundle:
    state: import
    bundle: /media/usb/Qwen2.5-7B-Instruct
    path: /opt/llmops/models/Qwen/Qwen2.5-7B-Instruct
    model_id: Qwen/Qwen2.5-7B-Instruct
    owner: llm
    group: llm
    mode: "0644"
    dir_mode: "0755"
"""

RETURN = r"""
model_id:
  description: The model in the bundle.
  returned: success
  type: str
  sample: Qwen/Qwen2.5-7B-Instruct
revision:
  description: The revision in the bundle (the commit id the hub resolved).
  returned: success
  type: str
  sample: 5c3a1b2e9f0d4c6b8a7e
files:
  description: Number of files in the bundle.
  returned: success
  type: int
  sample: 14
bytes_total:
  description: Total size of the model's files.
  returned: success
  type: int
  sample: 15231233024
parts:
  description: The bundle's parts (name, size).
  returned: success
  type: list
  elements: dict
  sample: [{"name": "Qwen2.5-7B-Instruct.tar.part0000", "size": 4294967296}]
sidecar:
  description: Path of the sidecar that lists the parts.
  returned: success
  type: str
  sample: /media/usb/Qwen2.5-7B-Instruct.json
files_written:
  description: Files imported into the model directory (files already in place under a valid marker are not).
  returned: state=import
  type: int
  sample: 14
seconds:
  description: Seconds spent reading and writing the bundle.
  returned: when something was written
  type: float
  sample: 41.2
marker:
  description: Path of the completion marker (import).
  returned: state=import
  type: str
  sample: /opt/llmops/models/Qwen/Qwen2.5-7B-Instruct/.llmops-complete.json
"""

import json
import os
import stat
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.deploy.plugins.module_utils.dir_lock import DirLock, LockError, lock_path_for
from ansible_collections.llmops.deploy.plugins.module_utils.fetch_plan import plan_files
from ansible_collections.llmops.deploy.plugins.module_utils.free_space import (
    VerifyError, check_free_space, margin_bytes)
from ansible_collections.llmops.deploy.plugins.module_utils.hub_manifest import ManifestError, split_model_id
from ansible_collections.llmops.deploy.plugins.module_utils.marker import (
    build_marker, marker_files, marker_path, quick_check, read_marker)
from ansible_collections.llmops.deploy.plugins.module_utils.model_bundle import (
    BundleError, PartReader, PartWriter, TarReader, bundle_manifest, extract_bundle, is_sha256, read_manifest,
    write_bundle)
from ansible_collections.llmops.deploy.plugins.module_utils.model_install import (
    InstallError, install_verified, sync_attributes)
from ansible_collections.llmops.deploy.plugins.module_utils.tree_safety import (
    TreeError, apply_to_files, file_arguments, prepare_staging, remove_tree, staging_path_for, target_tree_problems)

MODULE_VERSION = "0.1.0"
SIDECAR_FORMAT = "llmops.deploy/model-bundle-parts/v2"
#: Sidecars of earlier development versions: a sha256 per part instead of the manifest's (still imported).
SIDECAR_FORMAT_V1 = "llmops.deploy/model-bundle-parts/v1"


def build_module():
    # owner, group, mode (and the SELinux and attribute options, refused by tree_safety.file_arguments) come from
    # Ansible's common file arguments; they are applied through descriptors, never with set_fs_attributes_if_different
    # (see the notes of the llmops.deploy.model_files doc fragment).
    return AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["export", "import"], required=True),
            path=dict(type="path", required=True),
            bundle=dict(type="path", required=True),
            part_size=dict(type="str", default=""),
            model_id=dict(type="str"),
            lock_timeout=dict(type="int", default=600),
            workers=dict(type="int"),
            dir_mode=dict(type="raw"),
        ),
        supports_check_mode=True,
        add_file_common_args=True,
    )


class Bundle(object):
    """One run of the module. Every failure goes through ``fail``."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.result = {"changed": False}

    def fail(self, msg, **extra):
        self.result.update(extra)
        self.module.fail_json(msg=msg, **self.result)

    # ------------------------------------------------------------------ parameters
    def check_params(self):
        p = self.params
        try:
            if p["model_id"]:
                split_model_id(p["model_id"])
            self.part_size = margin_bytes(p["part_size"], 0) if p["part_size"].strip() else None
        except ManifestError as exc:
            self.fail(getattr(exc, "message", str(exc)))
        except VerifyError:
            self.fail("part_size %r is not valid: expected a size such as '4GiB' or '700MB', or empty for one file"
                      % p["part_size"])
        if self.part_size is not None and self.part_size < 1024 * 1024:
            self.fail("part_size %r is not valid: expected at least 1MiB" % p["part_size"])
        if p["lock_timeout"] < 0:
            self.fail("lock_timeout %r is not valid: expected an integer >= 0" % p["lock_timeout"])
        if p["workers"] is not None and p["workers"] < 1:
            self.fail("workers %r is not valid: expected an integer >= 1 (1: one file at a time)" % p["workers"])
        try:
            self.uid, self.gid, self.file_mode, self.dir_mode = file_arguments(p, "model_bundle")
        except ValueError as exc:
            self.fail(str(exc))
        self.model_dir = os.path.abspath(p["path"])
        self.bundle = os.path.abspath(p["bundle"])
        self.sidecar = self.bundle + ".json"
        if not os.path.isdir(os.path.dirname(self.bundle)):
            self.fail("bundle %r is not valid: its directory %s does not exist" % (
                p["bundle"], os.path.dirname(self.bundle)))
        self.data = self.bundle + ".tar"

    def read_sidecar(self):
        try:
            with open(self.sidecar, "rb") as handle:
                doc = json.loads(handle.read(16 * 1024 * 1024).decode("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self.fail("the bundle sidecar %s cannot be read: %s" % (self.sidecar, exc))
        if not isinstance(doc, dict) or doc.get("format") not in (SIDECAR_FORMAT, SIDECAR_FORMAT_V1) \
                or not isinstance(doc.get("parts"), list):
            self.fail("%s is not a bundle sidecar (format %s)" % (self.sidecar, SIDECAR_FORMAT))
        if doc["format"] == SIDECAR_FORMAT and not is_sha256(doc.get("manifest_sha256")):
            self.fail("the bundle sidecar %s has no valid manifest_sha256" % self.sidecar)
        for part in doc["parts"]:
            if not isinstance(part, dict) or not isinstance(part.get("name"), str) or "/" in part["name"] \
                    or part["name"].startswith("."):
                self.fail("the bundle sidecar %s names an unsafe part %r" % (self.sidecar, part))
        return doc

    def run(self):
        self.check_params()
        if self.params["state"] == "export":
            self.export()
        else:
            self.import_()
        self.module.exit_json(**self.result)

    def lock(self, shared):
        lock = DirLock(lock_path_for(self.model_dir), self.params["lock_timeout"], shared=shared)
        try:
            lock.acquire()
        except LockError as exc:
            self.fail(str(exc))
        return lock

    # ------------------------------------------------------------------ export
    def export(self):
        p = self.params
        if not os.path.isdir(self.model_dir):
            self.fail("path %s is not a model directory" % self.model_dir)
        lock = self.lock(shared=True)
        try:
            marker, reason = read_marker(self.model_dir)
            if marker is None:
                self.fail("cannot export %s: %s; complete it with llmops.deploy.modelscope_download first" % (
                    self.model_dir, reason))
            if p["model_id"] and marker["model_id"] != p["model_id"]:
                self.fail("cannot export %s: it holds %s, not %s" % (self.model_dir, marker["model_id"],
                                                                     p["model_id"]))
            problems = target_tree_problems(self.model_dir, [f["path"] for f in marker["files"]])
            problems += quick_check(self.model_dir, marker["files"])
            if problems:
                self.fail("cannot export %s: it does not match its completion marker: %s" % (
                    self.model_dir, "; ".join(problems[:20])))
            manifest = bundle_manifest(marker)
            self.result.update(model_id=manifest["model_id"], revision=manifest["revision"],
                               files=manifest["files_count"], bytes_total=manifest["bytes_total"],
                               sidecar=self.sidecar)
            current = self.read_sidecar()
            if current and self.export_is_current(current, manifest):
                self.result.update(parts=current["parts"])
                return
            self.result["changed"] = True
            if self.module.check_mode:
                return
            try:
                check_free_space(os.path.dirname(self.bundle), manifest["bytes_total"], "1%")
            except VerifyError as exc:
                self.fail(exc.message)
            started = time.monotonic()
            parts = self.write_parts(manifest)
            self.result.update(parts=parts, seconds=round(time.monotonic() - started, 2))
        finally:
            lock.release()

    def export_is_current(self, sidecar, manifest):
        p = self.params
        if (sidecar.get("format"), sidecar.get("files_digest"), sidecar.get("revision"), sidecar.get("part_size")) != (
                SIDECAR_FORMAT, manifest["files_digest"], manifest["revision"], self.part_size):
            return False
        base = os.path.dirname(self.bundle)
        for part in sidecar["parts"]:
            try:
                st = os.lstat(os.path.join(base, part["name"]))
            except OSError:
                return False
            if not stat.S_ISREG(st.st_mode) or st.st_size != part.get("size"):
                return False
        return True

    def write_parts(self, manifest):
        writer = PartWriter(self.data, self.part_size)
        try:
            manifest_sha256 = write_bundle(self.model_dir, manifest, writer, workers=self.params["workers"])
            parts = writer.commit()
        except BundleError as exc:
            writer.abort()
            self.fail("cannot export %s: %s" % (self.model_dir, exc.message))
        except OSError as exc:
            writer.abort()
            self.fail("cannot write the bundle %s: %s" % (self.bundle, exc))
        self.remove_stale_parts(parts)
        sidecar = {"format": SIDECAR_FORMAT, "model_id": manifest["model_id"], "revision": manifest["revision"],
                   "files_digest": manifest["files_digest"], "files_count": manifest["files_count"],
                   "bytes_total": manifest["bytes_total"], "part_size": self.part_size, "parts": parts,
                   "manifest_sha256": manifest_sha256}
        tmp = "%s.tmp-%d" % (self.sidecar, os.getpid())
        with open(tmp, "w") as handle:
            json.dump(sidecar, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.sidecar)
        return parts

    def remove_stale_parts(self, parts):
        keep = set(part["name"] for part in parts)
        base = os.path.dirname(self.bundle)
        stem = os.path.basename(self.data)
        for name in os.listdir(base):
            if (name == stem or (name.startswith(stem + ".part") and name[len(stem) + 5:].isdigit())) \
                    and name not in keep:
                os.unlink(os.path.join(base, name))

    # ------------------------------------------------------------------ import
    def part_paths(self, sidecar):
        base = os.path.dirname(self.bundle)
        if sidecar is not None:
            paths = [os.path.join(base, part["name"]) for part in sidecar["parts"]]
            for part, path in zip(sidecar["parts"], paths):
                try:
                    st = os.stat(path)
                except OSError:
                    self.fail("part %s of the bundle is missing" % path)
                if st.st_size != part.get("size"):
                    self.fail("part %s has %d bytes, the sidecar says %s: copied incompletely?" % (
                        path, st.st_size, part.get("size")))
            return paths
        if os.path.isfile(self.data):
            return [self.data]
        stem = os.path.basename(self.data)
        parts = sorted(n for n in os.listdir(base) if n.startswith(stem + ".part") and n[len(stem) + 5:].isdigit())
        if not parts:
            self.fail("no bundle at %s: neither %s nor its parts nor the sidecar %s" % (
                self.bundle, self.data, self.sidecar))
        return [os.path.join(base, n) for n in parts]

    def import_(self):
        p = self.params
        sidecar = self.read_sidecar()
        paths = self.part_paths(sidecar)
        try:
            lst = os.lstat(self.model_dir)
        except OSError:
            lst = None
        if lst is not None and not stat.S_ISDIR(os.stat(self.model_dir).st_mode if stat.S_ISLNK(lst.st_mode)
                                                else lst.st_mode):
            self.fail("refusing path %s: it exists and is not a directory" % self.model_dir)
        self.result["marker"] = marker_path(self.model_dir)
        if not self.module.check_mode:
            os.makedirs(os.path.dirname(self.model_dir), exist_ok=True)
        lock = self.lock(shared=self.module.check_mode)
        reader = None
        part_digests = bool(sidecar) and sidecar["format"] == SIDECAR_FORMAT_V1
        try:
            try:
                reader = PartReader(paths, part_digests=part_digests)
                tar = TarReader(reader)
                manifest = read_manifest(tar, sha256=sidecar.get("manifest_sha256") if sidecar else None)
            except (BundleError, OSError) as exc:
                self.fail("cannot read the bundle %s: %s" % (self.bundle, getattr(exc, "message", exc)))
            if p["model_id"] and manifest["model_id"] != p["model_id"]:
                self.fail("the bundle holds %s, not %s" % (manifest["model_id"], p["model_id"]))
            entries = manifest["files"]
            names = [e["path"] for e in entries]
            self.result.update(model_id=manifest["model_id"], revision=manifest["revision"], files=len(entries),
                               bytes_total=manifest["bytes_total"], parts=sidecar["parts"] if sidecar else
                               [{"name": os.path.basename(x)} for x in paths], sidecar=self.sidecar, files_written=0)
            problems = target_tree_problems(self.model_dir, names)
            if problems:
                self.fail("refusing to write into %s: %s" % (self.model_dir, "; ".join(problems)))
            marker, _reason = read_marker(self.model_dir)
            known = marker_files(marker) if marker and marker["model_id"] == manifest["model_id"] else {}
            plan = plan_files(self.model_dir, entries, known, full=False, hasher=lambda path: None)
            complete = [c for c in plan["complete"] if c["path"] in known]
            current = bool(marker) and marker.get("files_digest") == manifest["files_digest"] \
                and marker["revision"] == manifest["revision"] and len(complete) == len(entries)
            if current:
                self.result["changed"] = sync_attributes(self.model_dir, names, self.uid, self.gid, self.file_mode,
                                                         self.dir_mode, check=self.module.check_mode) \
                    if not self.module.check_mode else self.check_attributes(names)
                return
            self.result["changed"] = True
            if self.module.check_mode:
                self.result["files_written"] = len(entries) - len(complete)
                return
            done = set(c["path"] for c in complete)
            todo = [e for e in entries if e["path"] not in done]
            staging = staging_path_for(self.model_dir)
            try:
                check_free_space(staging, sum(e["size"] for e in todo), "1%")
                os.makedirs(self.model_dir, exist_ok=True)
                staging_files = prepare_staging(staging)
            except VerifyError as exc:
                self.fail(exc.message)
            except (OSError, TreeError) as exc:
                self.fail("cannot prepare the staging directory %s: %s" % (staging, getattr(exc, "message", exc)))
            started = time.monotonic()
            try:
                staged = extract_bundle(tar, manifest, staging_files, only=set(e["path"] for e in todo),
                                        workers=self.params["workers"])
                tar.finish()                      # to the end of the last part: zeros only
                reader.close()
            except BundleError as exc:
                self.fail("cannot import %s: %s; nothing was put into %s" % (
                    self.bundle, exc.message, self.model_dir))
            except OSError as exc:
                self.fail("cannot import %s: the bundle is damaged or truncated (%s); nothing was put into %s" % (
                    self.bundle, exc, self.model_dir))
            if part_digests:
                bad = [part["name"] for part, digest in zip(sidecar["parts"], reader.digests)
                       if part.get("sha256") != digest]
                if bad:
                    self.fail("part(s) %s do not match their sha256 in %s; nothing was put into %s" % (
                        ", ".join(bad), self.sidecar, self.model_dir))
            apply_to_files(staging_files, [s["path"] for s in staged], self.uid, self.gid,
                           0o644 if self.file_mode is None else self.file_mode)
            files = complete + staged
            new_marker = build_marker(manifest["model_id"], manifest["revision_requested"], manifest["revision"],
                                      manifest["endpoint"], manifest["include"], manifest["exclude"], files,
                                      MODULE_VERSION, verified="full")
            try:
                install_verified(self.model_dir, staging_files, names, complete, staged, new_marker, self.uid,
                                 self.gid, self.file_mode, self.dir_mode)
                sync_attributes(self.model_dir, names, self.uid, self.gid, self.file_mode, self.dir_mode)
            except InstallError as exc:
                self.fail(exc.message)
            except TreeError as exc:
                self.fail("refusing to write into %s: %s; no completion marker was written" % (
                    self.model_dir, exc.message))
            remove_tree(staging)
            self.result.update(files_written=len(staged), seconds=round(time.monotonic() - started, 2))
        finally:
            if reader is not None:
                reader.close()
            lock.release()

    def check_attributes(self, names):
        try:
            return sync_attributes(self.model_dir, names, self.uid, self.gid, self.file_mode, self.dir_mode,
                                   check=True)
        except (TreeError, OSError) as exc:
            self.fail("cannot read owner or mode in %s: %s" % (self.model_dir, getattr(exc, "message", exc)))


def main():
    module = build_module()
    Bundle(module).run()


if __name__ == "__main__":
    main()
