# Copyright: (c) 2026, llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hub's store directory: generated repositories materialised on disk, with their sizes and sha256 digests.

Layout under the store root::

    models/<owner>/<name>/<revision>/<repo path>    materialised files (tests compare downloads with these bytes)
    manifests/<owner>/<name>/<revision>.json         {"fingerprint", "files": [{"path", "size", "sha256", "lfs"}]}
    .lock                                            serialises preparation between processes

A manifest whose fingerprint matches the spec is reused, so a second start costs no hashing. Models with
``materialise=False`` (the "large" benchmark models) keep no bytes on disk: only their manifest, which is then the
sha256 cache computed by one streaming pass at the first start. Revision directory names are percent-quoted.
"""

import fcntl
import hashlib
import json
import os
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional
from urllib.parse import quote

from .models import Blob, ModelSpec, RevisionSpec, build_repository

_COPY_CHUNK = 1 << 20


class FileBlob(Blob):
    """A materialised file, read from disk (served with sendfile when no fault applies)."""

    def __init__(self, path: Path, size: int, is_lfs: bool):
        self.path = path
        self.size = size
        self.is_lfs = is_lfs

    def iter_range(self, start, end):
        end = min(end, self.size)
        with open(self.path, "rb") as handle:
            handle.seek(start)
            while start < end:
                chunk = handle.read(min(_COPY_CHUNK, end - start))
                if not chunk:
                    raise IOError("%s is shorter than its manifest says" % self.path)
                start += len(chunk)
                yield chunk


@dataclass
class FileEntry:
    path: str
    size: int
    sha256: str
    is_lfs: bool
    blob: Blob

    @property
    def local_path(self) -> Optional[Path]:
        """The materialised file, or None for a generated-on-the-fly file."""
        return getattr(self.blob, "path", None)


@dataclass
class Snapshot:
    """One revision of one repository as served."""

    spec: ModelSpec
    revision: RevisionSpec
    commit_id: str
    files: "OrderedDict[str, FileEntry]"

    def directories(self):
        """Every directory implied by the file paths ("original" for "original/params.json")."""
        dirs = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        return sorted(dirs)


class Store:
    def __init__(self, root):
        self.root = Path(root).resolve()

    def revision_dir(self, spec: ModelSpec, revision: str) -> Path:
        return self.root / "models" / spec.owner / spec.name / quote(revision, safe="")

    def manifest_path(self, spec: ModelSpec, revision: str) -> Path:
        return self.root / "manifests" / spec.owner / spec.name / (quote(revision, safe="") + ".json")

    def prepare(self, spec: ModelSpec) -> Dict[str, Snapshot]:
        """Generate (or reuse) every revision of ``spec``: ``{revision name: Snapshot}``."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return OrderedDict((rev.name, self._prepare_revision(spec, rev)) for rev in spec.revisions)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _prepare_revision(self, spec: ModelSpec, rev: RevisionSpec) -> Snapshot:
        blobs = build_repository(spec, rev.name)
        manifest = self._load_manifest(spec, rev, blobs)
        if manifest is None:
            manifest = self._generate(spec, rev, blobs)
        files = OrderedDict()
        rev_dir = self.revision_dir(spec, rev.name)
        for item in manifest["files"]:
            path = item["path"]
            blob = blobs[path]
            if spec.materialise:
                blob = FileBlob(rev_dir / path, item["size"], item["lfs"])
            files[path] = FileEntry(path, item["size"], item["sha256"], item["lfs"], blob)
        return Snapshot(spec, rev, spec.commit_id(rev.name), files)

    def _load_manifest(self, spec, rev, blobs) -> Optional[dict]:
        path = self.manifest_path(spec, rev.name)
        try:
            manifest = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if manifest.get("fingerprint") != spec.fingerprint() or [f["path"] for f in manifest["files"]] != list(blobs):
            return None
        if spec.materialise:
            rev_dir = self.revision_dir(spec, rev.name)
            for item in manifest["files"]:
                try:
                    if (rev_dir / item["path"]).stat().st_size != item["size"]:
                        return None
                except OSError:
                    return None
        return manifest

    def _generate(self, spec, rev, blobs) -> dict:
        rev_dir = self.revision_dir(spec, rev.name)
        if spec.materialise:
            if rev_dir.exists():
                shutil.rmtree(rev_dir)
            rev_dir.mkdir(parents=True)
        entries = []
        for path, blob in blobs.items():
            if spec.materialise:
                sha = _write_blob(blob, rev_dir / path)
            else:
                sha = blob.compute_sha256()
            entries.append({"path": path, "size": blob.size, "sha256": sha, "lfs": blob.is_lfs})
        manifest = {"model_id": spec.model_id, "revision": rev.name, "fingerprint": spec.fingerprint(),
                    "files": entries}
        target = self.manifest_path(spec, rev.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1), "utf-8")
        os.replace(tmp, target)
        return manifest


def _write_blob(blob: Blob, target: Path) -> str:
    """Stream ``blob`` to ``target`` (atomically) and return its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as handle:
        for chunk in blob.iter_range(0, blob.size):
            digest.update(chunk)
            handle.write(chunk)
    os.replace(tmp, target)
    return digest.hexdigest()
