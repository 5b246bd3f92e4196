# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which files of a manifest a download must fetch, and whether the fetched ones are right.

Standard library only (runs on targets with Python >= 3.8). :func:`plan_files` decides file by file what is complete
(trusting the completion marker's size and mtime, or hashing again), what to fetch (counting the bytes of a partial
file the SDK resumes) and what wrong file to remove first; :func:`verify_fetched` checks size and sha256 of the files a
download brought.
"""

import os
import stat

from ansible_collections.llmops.deploy.plugins.module_utils.stream_hash import sha256_file
from ansible_collections.llmops.deploy.plugins.module_utils.tree_safety import PARTIAL_SUFFIX, lstat_or_none


def plan_files(model_dir, entries, marker_files=None, full=False, hasher=sha256_file, partial_root=None):
    """Decide, file by file, what a download must do.

    A file is *complete* when its marker entry matches the manifest (size, sha256) and its size and mtime_ns match the
    marker (quick; skipped when ``full``), or else when its size matches and its sha256 is recomputed and matches.
    Everything else is *fetched*; a wrong file in place is listed in ``remove`` (to delete before fetching) and the
    bytes of an SDK partial file (``<file>.incomplete`` under ``partial_root``, the private staging directory the
    download goes to; default ``model_dir``) are counted as already ``have``.

    Returns ``{'complete': [entry + mtime_ns], 'fetch': [entry + have], 'remove': [path], 'remove_bytes': int,
    'hashed_files': int, 'hashed_bytes': int}``.
    """
    marker_files = marker_files or {}
    plan = {"complete": [], "fetch": [], "remove": [], "remove_bytes": 0, "hashed_files": 0, "hashed_bytes": 0}
    for entry in entries:
        target = os.path.join(model_dir, entry["path"])
        st = lstat_or_none(target)
        if st is not None and stat.S_ISREG(st.st_mode):
            known = marker_files.get(entry["path"])
            if (not full and known is not None and known.get("sha256") == entry["sha256"]
                    and known.get("size") == entry["size"] and st.st_size == entry["size"]
                    and known.get("mtime_ns") == st.st_mtime_ns):
                plan["complete"].append(dict(entry, mtime_ns=st.st_mtime_ns))
                continue
            if st.st_size == entry["size"]:
                plan["hashed_files"] += 1
                plan["hashed_bytes"] += st.st_size
                if hasher(target) == entry["sha256"]:
                    plan["complete"].append(dict(entry, mtime_ns=st.st_mtime_ns))
                    continue
            plan["remove"].append(entry["path"])
            plan["remove_bytes"] += st.st_size
        partial = lstat_or_none(os.path.join(partial_root or model_dir, entry["path"]) + PARTIAL_SUFFIX)
        have = 0
        if partial is not None and stat.S_ISREG(partial.st_mode) and partial.st_size <= entry["size"]:
            have = partial.st_size
        plan["fetch"].append(dict(entry, have=have))
    return plan


def bytes_to_fetch(plan):
    """Bytes still to come over the network for a plan (partial files resume)."""
    return sum(item["size"] - item["have"] for item in plan["fetch"])


def verify_fetched(model_dir, entries, hasher=sha256_file, digests=None):
    """Check size and sha256 of freshly fetched files. Returns ``(good entries with mtime_ns, bad [(path, why)])``.

    ``digests``: ``{path: sha256}`` already computed for these very files (hashed while they arrived, or in
    parallel); a path missing from it is hashed here. Size, kind and mtime are always checked here.
    """
    digests = digests or {}
    good, bad = [], []
    for entry in entries:
        target = os.path.join(model_dir, entry["path"])
        st = lstat_or_none(target)
        if st is None:
            bad.append((entry["path"], "missing after the download"))
        elif not stat.S_ISREG(st.st_mode):
            bad.append((entry["path"], "not a regular file"))
        elif st.st_size != entry["size"]:
            bad.append((entry["path"], "%d bytes, expected %d" % (st.st_size, entry["size"])))
        else:
            actual = digests.get(entry["path"]) or hasher(target)
            if actual != entry["sha256"]:
                bad.append((entry["path"], "sha256 %s, expected %s" % (actual, entry["sha256"])))
            else:
                st2 = os.lstat(target)
                if st2.st_size != st.st_size or st2.st_mtime_ns != st.st_mtime_ns:
                    bad.append((entry["path"], "changed while it was being verified"))
                else:
                    good.append(dict(entry, mtime_ns=st.st_mtime_ns))
    return good, bad
