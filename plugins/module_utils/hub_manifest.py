# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The manifest of a model on a ModelScope-compatible hub: fetch the file listing, parse it, check every path.

Standard library only, no network (runs on targets with Python >= 3.8): the request parameters, the URLs the SDK
uses (``GET {endpoint}/api/v1/models/{owner}/{name}/repo/files?Revision=R&Recursive=True``), the parsing and checking
of the listing, path safety and selection. The one HTTP client that fetches the listing is ``hub_client``
(``fetch_manifest``), so the manifest can be resolved, and checked, before the SDK is imported or any byte is written.

A manifest is a list of entries ``{'path': str, 'size': int, 'sha256': str}`` (64 lowercase hex). Every listed blob
must carry a size and a sha256: a file the hub cannot vouch for is refused (exclude it with a pattern to go on).
"""

import fnmatch
import json
import re
import unicodedata

try:  # Python 3
    from urllib.parse import quote, urlencode, urlsplit, urlunsplit
except ImportError:  # pragma: no cover - Python 2 is not supported
    raise

from ansible_collections.llmops.deploy.plugins.module_utils import model_names
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

# The SDK treats a recursive listing of this many entries as truncated by the server (modelscope_hub 0.5.1).
LISTING_TRUNCATION_LIMIT = 3000

# Suffixes the SDK gives its own partial files next to the target: a listed path ending so would collide with them.
SDK_PARTIAL_SUFFIXES = (".incomplete", ".parallel_tmp")

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_MAX_SEGMENT_BYTES = 255
# A branch, tag or commit id: segments of letters, digits, '.', '_', '+', '-', each starting with a letter or digit,
# joined by single '/' (release/v1); never '..', never a leading or trailing '/'.
_REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*(/[A-Za-z0-9][A-Za-z0-9._+-]*)*$")
_MAX_REVISION_CHARS = 256
# Unicode categories refused in a path: control (Cc, C0/C1 and DEL), format (Cf: bidi overrides, zero-width
# characters), line and paragraph separators (Zl, Zp).
UNSAFE_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")


class ManifestError(Exception):
    """The listing or a request parameter cannot be accepted. ``problems`` lists every reason."""

    def __init__(self, message, problems=None):
        super(ManifestError, self).__init__(message)
        self.message = message
        self.problems = list(problems or [])


class HubError(Exception):
    """The hub could not be asked or refused the request. ``status`` is the HTTP status (None: no answer)."""

    def __init__(self, message, status=None, url=None):
        super(HubError, self).__init__(message)
        self.message = message
        self.status = status
        self.url = url


# ---------------------------------------------------------------------------------------------------------------
# Request parameters
# ---------------------------------------------------------------------------------------------------------------
def split_model_id(model_id):
    """``'Qwen/Qwen2.5-7B-Instruct'`` -> ``('Qwen', 'Qwen2.5-7B-Instruct')`` for a hub request, by the one rule of
    ``model_names.split_model_id`` (blanks around the id refused); anything else raises ManifestError naming
    ``model_id``."""
    try:
        return model_names.split_model_id(model_id, strip=False)
    except SizingInputError as exc:
        raise ManifestError("model_id %r is not valid: expected 'owner/name', each part letters, digits, '.', '_' or "
                            "'-' and starting with a letter or digit (%s)" % (model_id, exc.detail))


def normalize_endpoint(endpoint):
    """Check a hub endpoint and return it without a trailing slash.

    Accepted: ``http://`` or ``https://`` URL with a host, optional port and path, no credentials, query or
    fragment. A bare host is refused rather than guessed (the SDK would silently add ``https://``).
    """
    accepted = "an http:// or https:// URL such as https://modelscope.cn, without user:password, query or fragment"
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ManifestError("endpoint %r is not valid: expected %s" % (endpoint, accepted))
    text = endpoint.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ManifestError("endpoint %r is not valid: expected %s" % (endpoint, accepted))
    if parts.username is not None or parts.password is not None:
        raise ManifestError("endpoint is not valid: credentials in the URL are refused; pass the token instead")
    if parts.query or parts.fragment:
        raise ManifestError("endpoint %r is not valid: expected %s" % (endpoint, accepted))
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ManifestError("endpoint %r is not valid: bad port; expected %s" % (endpoint, accepted))
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def validate_revision(revision):
    """A revision (branch, tag or commit id): ASCII letters, digits, ``.``, ``_``, ``+`` and ``-`` in segments that
    start with a letter or digit, joined by single ``/`` (``release/v1``). ``..``, ``./``, a leading or trailing
    ``/``, ``.lock`` endings, spaces and any other character are refused before any request."""
    if (not isinstance(revision, str) or len(revision) > _MAX_REVISION_CHARS or not _REVISION_RE.fullmatch(revision)
            or ".." in revision or revision.endswith((".", ".lock"))):
        raise ManifestError("revision %r is not valid: expected a branch, tag or commit id such as 'master', 'v1.0' "
                            "or 'release/v1' (letters, digits, '.', '_', '+', '-', segments joined by '/', no '..')"
                            % (revision,))
    return revision


def listing_url(endpoint, owner, name, revision):
    """The URL of the recursive file listing, with the query parameters the SDK sends."""
    query = urlencode([("Revision", revision), ("Recursive", "True")])
    return "%s/api/v1/models/%s/%s/repo/files?%s" % (endpoint, quote(owner, safe=""), quote(name, safe=""), query)


def file_url(endpoint, owner, name, revision, path):
    """The URL of one file's content, with the query parameters the SDK sends (``Revision``, ``FilePath``)."""
    query = urlencode([("Revision", revision), ("FilePath", path)])
    return "%s/api/v1/models/%s/%s/repo?%s" % (endpoint, quote(owner, safe=""), quote(name, safe=""), query)


# ---------------------------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------------------------
def unsafe_path_reason(path, reserved_names=()):
    """Return why a listed path may not be written under a model directory, or None when it is safe.

    Refused: empty, absolute, backslash, drive letter, control and format characters (every character of Unicode
    categories Cc, Cf, Zl and Zp: NUL, C1 controls such as U+0085 and U+009B, U+2028, bidi overrides such as
    U+202E, zero-width characters), lone surrogates, empty segments (``a//b``,
    trailing ``/``), ``.`` or ``..`` segments, a segment longer than 255 bytes, a segment equal to one of
    ``reserved_names`` (the module's own marker), and a name ending in a suffix the SDK uses for partial files.
    """
    if not isinstance(path, str):
        return "not a string"
    if not path:
        return "empty path"
    for ch in path:
        category = unicodedata.category(ch)
        if category in UNSAFE_CATEGORIES:
            return "%s in path (U+%04X, Unicode category %s)" % (
                "control character" if category == "Cc" else "format or separator character", ord(ch), category)
        if category == "Cs":
            return "lone surrogate U+%04X in path" % ord(ch)
    if "\\" in path:
        return "backslash in path"
    if path.startswith("/"):
        return "absolute path"
    if _DRIVE_RE.match(path):
        return "drive letter in path"
    segments = path.split("/")
    for segment in segments:
        if segment == "":
            return "empty path segment"
        if segment in (".", ".."):
            return "'%s' path segment" % segment
        if len(segment.encode("utf-8", "surrogatepass")) > _MAX_SEGMENT_BYTES:
            return "path segment longer than %d bytes" % _MAX_SEGMENT_BYTES
        if segment in reserved_names:
            return "reserved name %r" % segment
    for suffix in SDK_PARTIAL_SUFFIXES:
        if segments[-1].endswith(suffix):
            return "name ends in %r, which the SDK uses for partial files" % suffix
    return None


# ---------------------------------------------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------------------------------------------
def listing_entries(payload):
    """The raw entry list of a listing response (``Data`` as a list, or ``Data.Files``/``Data.files``)."""
    if not isinstance(payload, dict):
        raise ManifestError("the hub's listing is not a JSON object")
    data = payload.get("Data")
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        files = data.get("Files", data.get("files"))
        if isinstance(files, list):
            return files
    message = payload.get("Message") or payload.get("message") or ""
    raise ManifestError("the hub's listing has no file list (Data is %s)%s" % (
        type(data).__name__ if data is not None else "null", (": %s" % message) if message else ""))


def _entry_size(raw):
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw >= 0 else None
    if isinstance(raw, str) and raw.isdigit():
        return int(raw)
    return None


def parse_listing(payload, requested_revision, reserved_names=()):
    """Parse a listing response into ``{'revision': str, 'entries': [{'path', 'size', 'sha256'}], 'problems': []}``.

    Directory (``tree``) entries are skipped. Paths are read as the SDK reads them (``Path``, else ``path``, else
    ``Name``). Every problem of every blob is collected; when there is any, ManifestError is raised with the full list,
    so nothing is ever downloaded from a listing that holds an unsafe path, even one the patterns would exclude.

    The resolved revision is the entries' common ``Revision`` (else ``CommitId``) when the hub sends one, else the
    requested revision.
    """
    raw_entries = listing_entries(payload)
    if len(raw_entries) >= LISTING_TRUNCATION_LIMIT:
        raise ManifestError("the hub returned %d listing entries, the limit at which it truncates listings; "
                            "repositories this large are not supported" % len(raw_entries))
    problems = []
    entries = []
    seen = {}
    revisions = set()
    for raw in raw_entries:
        if not isinstance(raw, dict):
            problems.append("listing entry %r is not an object" % (raw,))
            continue
        path = raw.get("Path") or raw.get("path") or raw.get("Name") or ""
        kind = raw.get("Type") or raw.get("type") or "blob"
        reason = unsafe_path_reason(path, reserved_names)
        if reason:
            problems.append("unsafe path %r: %s" % (path, reason))
            continue
        if kind == "tree":
            continue
        for key in ("Revision", "CommitId"):
            value = raw.get(key)
            if isinstance(value, str) and value:
                revisions.add((key, value))
        size = _entry_size(raw.get("Size", raw.get("size")))
        sha = raw.get("Sha256") or raw.get("sha256") or ""
        if size is None:
            problems.append("%s: no valid Size in the listing" % path)
            continue
        if not isinstance(sha, str) or not _SHA256_RE.match(sha):
            problems.append("%s: no valid Sha256 in the listing (need 64 lowercase hex digits, got %r)" % (path, sha))
            continue
        if path in seen:
            problems.append("%s: listed twice" % path)
            continue
        seen[path] = True
        entries.append({"path": path, "size": size, "sha256": sha})
    # A path that is both a file and a directory cannot be laid out on disk.
    for entry in entries:
        parts = entry["path"].split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in seen:
                problems.append("%s: listed as a file and as the directory of %s" % (prefix, entry["path"]))
    if problems:
        raise ManifestError("the hub's listing was refused: %d problem(s): %s" % (len(problems), "; ".join(problems)),
                            problems)
    entries.sort(key=lambda e: e["path"])
    return {"revision": _resolved_revision(revisions, requested_revision), "entries": entries}


def _resolved_revision(revisions, requested):
    for key in ("Revision", "CommitId"):
        values = set(v for k, v in revisions if k == key)
        if len(values) == 1:
            return values.pop()
    return requested


# ---------------------------------------------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------------------------------------------
def normalize_patterns(patterns):
    """A list of glob patterns as the SDK reads them: comma-separated values are split, blanks dropped."""
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    result = []
    for item in patterns:
        if not isinstance(item, str):
            raise ManifestError("pattern %r is not valid: expected a glob string such as '*.safetensors'" % (item,))
        for piece in item.split(","):
            piece = piece.strip()
            if piece:
                result.append(piece)
    return result


def path_matches(path, patterns):
    """The SDK's matching: case-sensitive fnmatch on the full path (``*`` also matches ``/``); a regex-style ``.*``
    is also tried as ``*``."""
    for pattern in patterns:
        if fnmatch.fnmatchcase(path, pattern):
            return True
        if ".*" in pattern and fnmatch.fnmatchcase(path, pattern.replace(".*", "*")):
            return True
    return False


def select_entries(entries, include=None, exclude=None):
    """Entries matching any include pattern (all when none) and no exclude pattern: exclusion wins."""
    include = normalize_patterns(include)
    exclude = normalize_patterns(exclude)
    selected = []
    for entry in entries:
        if include and not path_matches(entry["path"], include):
            continue
        if exclude and path_matches(entry["path"], exclude):
            continue
        selected.append(entry)
    return selected


# ---------------------------------------------------------------------------------------------------------------
# Error bodies (the HTTP client is hub_client)
# ---------------------------------------------------------------------------------------------------------------
def error_detail(body):
    """The hub's error message from an error body (its JSON ``Message``, else the start of the text)."""
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        for key in ("Message", "message", "msg", "error", "detail"):
            if data.get(key):
                return str(data[key])[:300]
    return ""
