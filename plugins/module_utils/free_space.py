# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Free disk space before a download: the margin option and the check that refuses to start when space is short.

Standard library only (runs on targets with Python >= 3.8).
"""

import os
import re

from ansible_collections.llmops.deploy.plugins.module_utils import host_resources


class VerifyError(Exception):
    """The free-space margin is not valid, or the disk lacks the space a download needs; ``problems`` lists every
    reason."""

    def __init__(self, message, problems=None):
        super(VerifyError, self).__init__(message)
        self.message = message
        self.problems = list(problems or [])


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10 ** 3, "kb": 10 ** 3, "m": 10 ** 6, "mb": 10 ** 6, "g": 10 ** 9, "gb": 10 ** 9,
          "t": 10 ** 12, "tb": 10 ** 12, "p": 10 ** 15, "pb": 10 ** 15, "ki": 2 ** 10, "kib": 2 ** 10,
          "mi": 2 ** 20, "mib": 2 ** 20, "gi": 2 ** 30, "gib": 2 ** 30, "ti": 2 ** 40, "tib": 2 ** 40,
          "pi": 2 ** 50, "pib": 2 ** 50}
MARGIN_ACCEPTED = "a percentage of the bytes to fetch such as '5%', or a size such as '1GiB', '500MB' or '0'"


def margin_bytes(spec, to_fetch):
    """The free-space margin in bytes: ``'5%'`` of ``to_fetch`` or an absolute size (``'1GiB'``, ``'500MB'``)."""
    text = str(spec).strip()
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            pct = -1.0
        if not 0 <= pct <= 1000:
            raise VerifyError("free_space_margin %r is not valid: expected %s" % (spec, MARGIN_ACCEPTED))
        return int(to_fetch * pct / 100.0 + 0.5)
    match = _SIZE_RE.match(text)
    if not match or (match.group(2) or "").lower() not in _UNITS:
        raise VerifyError("free_space_margin %r is not valid: expected %s" % (spec, MARGIN_ACCEPTED))
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])


def free_bytes(path, statvfs=None):
    """Bytes an unprivileged writer may still use on the filesystem holding ``path`` (or its nearest ancestor)."""
    where = host_resources.nearest_existing_dir(path)
    st = (statvfs or os.statvfs)(where)
    return where, st.f_bavail * st.f_frsize


def check_free_space(path, to_fetch, margin_spec, freed=0, statvfs=None):
    """Raise VerifyError when the filesystem of ``path`` lacks ``to_fetch`` + margin bytes (``freed``: bytes that
    will be deleted first). Returns ``{'path', 'available', 'required', 'margin'}``."""
    margin = margin_bytes(margin_spec, to_fetch)
    where, available = free_bytes(path, statvfs)
    required = to_fetch + margin if to_fetch else 0
    if required > available + freed:
        raise VerifyError(
            "not enough free disk space on %s: %d bytes to fetch plus a margin of %d bytes (free_space_margin=%s) "
            "need %d bytes, %d are available%s; nothing was downloaded" % (
                where, to_fetch, margin, margin_spec, required, available,
                (" (+%d freed by replacing wrong files)" % freed) if freed else ""))
    return {"path": where, "available": available, "required": required, "margin": margin}
