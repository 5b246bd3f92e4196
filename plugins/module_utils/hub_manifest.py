# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The manifest of a model on a ModelScope-compatible hub: fetch the file listing, parse it, check every path.

Standard library only (runs on targets with Python >= 3.8). The listing is fetched with ``urllib`` from the same
endpoint the SDK uses (``GET {endpoint}/api/v1/models/{owner}/{name}/repo/files?Revision=R&Recursive=True``), so the
manifest can be resolved, and checked, before the SDK is imported or any byte is written.

A manifest is a list of entries ``{'path': str, 'size': int, 'sha256': str}`` (64 lowercase hex). Every listed blob
must carry a size and a sha256: a file the hub cannot vouch for is refused (exclude it with a pattern to go on).
"""

import fnmatch
import json
import re
import socket
import time

try:  # Python 3
    from urllib.error import HTTPError, URLError
    from urllib.parse import quote, urlencode, urlsplit, urlunsplit
    from urllib.request import HTTPRedirectHandler, Request, build_opener
except ImportError:  # pragma: no cover - Python 2 is not supported
    raise

# The SDK treats a recursive listing of this many entries as truncated by the server (modelscope_hub 0.5.1).
LISTING_TRUNCATION_LIMIT = 3000

# Suffixes the SDK gives its own partial files next to the target: a listed path ending so would collide with them.
SDK_PARTIAL_SUFFIXES = (".incomplete", ".parallel_tmp")

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_MAX_SEGMENT_BYTES = 255


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
    """``'Qwen/Qwen2.5-7B-Instruct'`` -> ``('Qwen', 'Qwen2.5-7B-Instruct')``; anything else raises ManifestError."""
    accepted = "'owner/name', each part letters, digits, '.', '_' or '-' and starting with a letter or digit"
    if not isinstance(model_id, str) or model_id.count("/") != 1:
        raise ManifestError("model_id %r is not valid: expected %s" % (model_id, accepted))
    owner, name = model_id.split("/")
    for part in (owner, name):
        if not _NAME_RE.match(part) or part in (".", ".."):
            raise ManifestError("model_id %r is not valid: expected %s" % (model_id, accepted))
    return owner, name


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
    """A revision (branch, tag or commit) is a non-empty string without control characters or whitespace."""
    if not isinstance(revision, str) or not revision or any(ord(ch) < 33 or ord(ch) == 127 for ch in revision):
        raise ManifestError("revision %r is not valid: expected a branch, tag or commit id such as 'master' or "
                            "'v1.0', without spaces or control characters" % (revision,))
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

    Refused: empty, absolute, backslash, drive letter, control characters (NUL included), empty segments (``a//b``,
    trailing ``/``), ``.`` or ``..`` segments, a segment longer than 255 bytes, a segment equal to one of
    ``reserved_names`` (the module's own marker), and a name ending in a suffix the SDK uses for partial files.
    """
    if not isinstance(path, str):
        return "not a string"
    if not path:
        return "empty path"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        return "control character in path"
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
# HTTP
# ---------------------------------------------------------------------------------------------------------------
class _SameOriginAuthRedirect(HTTPRedirectHandler):
    """Follow redirects, but never carry the Authorization header to another scheme, host or port."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = HTTPRedirectHandler.redirect_request(self, req, fp, code, msg, headers, newurl)
        if new is not None:
            old_parts, new_parts = urlsplit(req.full_url), urlsplit(new.full_url)
            if (old_parts.scheme, old_parts.netloc) != (new_parts.scheme, new_parts.netloc):
                for key in list(new.headers):
                    if key.lower() == "authorization":
                        del new.headers[key]
                new.unredirected_hdrs.pop("Authorization", None)
        return new


def hub_opener():
    """A urllib opener that follows redirects but never carries the Authorization header to another origin."""
    return build_opener(_SameOriginAuthRedirect())


def error_detail(body):
    """The hub's error message from an error body (its JSON ``Message``, else the start of the text)."""
    return _error_message(body)


def _error_message(body):
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        for key in ("Message", "message", "msg", "error", "detail"):
            if data.get(key):
                return str(data[key])[:300]
    return ""


def http_get_json(url, token=None, timeout=60, retries=3, backoff=1.0, opener=None, sleep=time.sleep):
    """GET ``url`` and return the decoded JSON object.

    The token, if any, goes in an ``Authorization: Bearer`` header (never in the URL) and is not forwarded across a
    redirect to another origin. 5xx, 429 and network errors are retried ``retries`` times with exponential backoff;
    other HTTP errors fail at once. Raises HubError whose message never contains the token.
    """
    opener = opener or build_opener(_SameOriginAuthRedirect())
    headers = {"Accept": "application/json", "User-Agent": "llmops.deploy/hub_manifest"}
    if token:
        headers["Authorization"] = "Bearer %s" % token
    attempt = 0
    while True:
        attempt += 1
        request = Request(url, headers=headers)
        try:
            response = opener.open(request, timeout=timeout)
            try:
                body = response.read()
            finally:
                response.close()
        except HTTPError as exc:
            status = exc.code
            detail = _error_message(exc.read() or b"")
            retryable = status >= 500 or status == 429
            if retryable and attempt <= retries:
                sleep(backoff * (2 ** (attempt - 1)))
                continue
            if status in (401, 403):
                hint = "the token is missing, wrong or lacks access" if token else "no token was given"
                raise HubError("the hub refused access (HTTP %d%s): %s" % (
                    status, (": %s" % detail) if detail else "", hint), status, url)
            if status == 404:
                raise HubError("the hub has no such model or revision (HTTP 404%s)" % (
                    (": %s" % detail) if detail else ""), status, url)
            raise HubError("the hub answered HTTP %d%s%s" % (
                status, (": %s" % detail) if detail else "",
                " after %d attempts" % attempt if retryable else ""), status, url)
        except (URLError, socket.timeout, ConnectionError, OSError) as exc:
            if attempt <= retries:
                sleep(backoff * (2 ** (attempt - 1)))
                continue
            reason = getattr(exc, "reason", exc)
            raise HubError("the hub could not be reached after %d attempts: %s" % (attempt, reason), None, url)
        try:
            return json.loads(body.decode("utf-8"))
        except ValueError:
            raise HubError("the hub's answer is not JSON", None, url)


def fetch_manifest(endpoint, model_id, revision, token=None, timeout=60, retries=3, reserved_names=(),
                   opener=None, sleep=time.sleep):
    """Fetch and parse the listing of ``model_id`` at ``revision``.

    Returns ``{'revision', 'entries', 'url'}``; raises ManifestError (refused listing or parameters) or HubError.
    """
    endpoint = normalize_endpoint(endpoint)
    owner, name = split_model_id(model_id)
    validate_revision(revision)
    url = listing_url(endpoint, owner, name, revision)
    payload = http_get_json(url, token=token, timeout=timeout, retries=retries, opener=opener, sleep=sleep)
    manifest = parse_listing(payload, revision, reserved_names)
    manifest["url"] = url
    return manifest
