# Copyright: (c) 2026, llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A ModelScope-compatible hub for tests and demos: stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive.

It speaks the legacy ``/api/v1`` surface the real SDK uses to download (see ``shared/modelscope-protocol.md`` §4):

* ``GET /api/v1/models/{owner}/{name}/repo/files?Revision=&Recursive=&Root=``: listing, ``Data.Files`` entries with
  full repo-relative ``Path`` even under ``Root``, ``tree`` entries for directories, truncated at 3000 entries like the
  real site;
* ``GET|HEAD /api/v1/models/{owner}/{name}/repo?Revision=&FilePath=``: file bytes with ``Content-Length``;
  ``Range: bytes=N-`` / ``bytes=A-B`` / ``bytes=-S`` -> 206 + ``Content-Range``; a start past the end -> 416 with
  ``Content-Range: bytes */TOTAL``;
* ``GET /api/v1/models/{owner}/{name}`` (model info) and ``.../revisions``;
* ``GET /api/v1/repos/internalAccelerationInfo`` -> 404 (not on Alibaba Cloud).

Errors carry the real site's body ``{"Code", "Message", "RequestId", "Success": false, "Data": null}``. When a token is
configured, API requests need ``Authorization: Bearer <token>`` (or the ``m_session_id`` cookie the SDK also sends):
none -> 401, a wrong one -> 403. Revisions are addressed by name or by commit id.

Admin endpoints (answered to loopback clients only, never logged, no token needed)::

    GET    /_admin/faults      current fault rules with their hit counts
    POST   /_admin/faults      replace the rules (body: a fault specification, see faults.py); PUT is the same
    DELETE /_admin/faults      remove every rule
    GET    /_admin/requests    the request log; DELETE clears it
    GET    /_admin/models      models, revisions and files (size, sha256) served
    GET    /_admin/held        {"held": N}: transfers held by a ``hold`` fault right now
    POST   /_admin/release     let every held transfer go on (and later ones of the same rules pass)

Every other request is recorded in the request log (memory, and a JSONL file if given): time, method, path, query,
decoded params, kind (listing/file/model_info/revisions/acceleration/other), model, revision, file path, Range,
whether credentials were present (never their value), status, body bytes sent, the fault applied, whether the
connection was dropped, duration.
"""

import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from . import faults as faults_mod
from .models import BytesBlob, resolve_models
from .store import FileBlob, Snapshot, Store

#: The real site silently truncates a repo/files listing at this many entries.
LISTING_LIMIT = 3000
_MAX_ADMIN_BODY = 1 << 20

_API_MODEL_RE = re.compile(r"^/api/v1/models/(?P<owner>[^/]+)/(?P<name>[^/]+)(?P<rest>/repo/files|/repo|/revisions)?/?$")


# Business codes in error bodies are chosen outside the SDK's business-code table (modelscope_hub.errors), where for
# example 10010101001 means "model already exists" and would turn a 401 into AlreadyExistsError.


def _error_body(code: int, message: str, request_id: str) -> dict:
    return {"Code": code, "Message": message, "RequestId": request_id, "Success": False, "Data": None}


class _HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "llmops-local-hub/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this

    # -- plumbing -----------------------------------------------------------------------------------------------------
    @property
    def hub(self) -> "LocalHub":
        return self.server.hub

    def setup(self):
        super().setup()
        self.hub._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.hub._track(self.connection, False)

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        pass

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _dispatch(self):
        started = time.monotonic()
        url = urlsplit(self.path)
        self._path = unquote(url.path)
        self._params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self._request_id = uuid.uuid4().hex
        self._body_sent = 0
        self._status = None
        self._record = {
            "time": time.time(), "method": self.command, "path": self._path, "query": url.query,
            "params": dict(self._params), "kind": "other", "model": None, "revision": None, "file": None,
            "range": self.headers.get("Range"),
            "auth": self.headers.get("Authorization") is not None,
            "cookie_auth": "m_session_id=" in (self.headers.get("Cookie") or ""),
            "user_agent": self.headers.get("User-Agent"),
            "status": None, "bytes_sent": 0, "fault": None, "dropped": False, "error": None,
        }
        admin = self._path.startswith("/_admin/")
        if not admin:
            self.hub._in_flight(+1)
        try:
            body = self._read_request_body()
            if admin:
                self._admin(body)
            else:
                self._api()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout, OSError) as exc:
            self.close_connection = True
            self._record["error"] = "%s: %s" % (type(exc).__name__, exc)
        except Exception as exc:  # a hub bug: answer 500 (if nothing was sent yet) and record it
            self.close_connection = True
            self._record["error"] = "%s: %s" % (type(exc).__name__, exc)
            if self._status is None:
                try:
                    self._send_error(500, 10010500500, "local hub internal error: %s" % type(exc).__name__)
                except OSError:
                    pass
        finally:
            if not admin:
                self._record["status"] = self._status
                self._record["bytes_sent"] = self._body_sent
                self._record["duration_s"] = round(time.monotonic() - started, 4)
                try:
                    self.hub._log_request(self._record)
                finally:
                    self.hub._in_flight(-1)

    def _read_request_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_ADMIN_BODY:
            self.close_connection = True
            raise ConnectionAbortedError("request body too large")
        return self.rfile.read(length) if length else b""

    def _start(self, status: int, headers: Dict[str, str]):
        self._status = status
        self.send_response(status)
        headers.setdefault("X-Request-Id", self._request_id)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _send_json(self, status: int, obj, extra: Optional[Dict[str, str]] = None):
        payload = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", "Content-Length": str(len(payload))}
        headers.update(extra or {})
        self._start(status, headers)
        if self.command != "HEAD":
            self.wfile.write(payload)
            self._body_sent += len(payload)

    def _send_error(self, status: int, code: int, message: str, extra: Optional[Dict[str, str]] = None):
        self._send_json(status, _error_body(code, message, self._request_id), extra)

    def _send_ok(self, data):
        self._send_json(200, {"Code": 200, "Message": "success", "RequestId": self._request_id,
                              "Success": True, "Data": data})

    # -- admin --------------------------------------------------------------------------------------------------------
    def _admin(self, body: bytes):
        host = self.client_address[0]
        if not (host.startswith("127.") or host == "::1"):
            return self._send_error(403, 10010403001, "admin endpoints answer loopback clients only")
        hub = self.hub
        if self._path == "/_admin/faults":
            if self.command in ("GET", "HEAD"):
                return self._send_json(200, hub.faults())
            if self.command in ("POST", "PUT"):
                try:
                    spec = json.loads(body.decode("utf-8") or "{}")
                    return self._send_json(200, hub.set_faults(spec))
                except (ValueError, faults_mod.FaultError) as exc:
                    return self._send_error(400, 10010400001, "invalid fault specification: %s" % exc)
            if self.command == "DELETE":
                hub.clear_faults()
                return self._send_json(200, hub.faults())
        elif self._path == "/_admin/requests":
            if self.command in ("GET", "HEAD"):
                return self._send_json(200, hub.requests())
            if self.command == "DELETE":
                hub.clear_requests()
                return self._send_json(200, [])
        elif self._path == "/_admin/models" and self.command in ("GET", "HEAD"):
            return self._send_json(200, hub.describe())
        elif self._path == "/_admin/held" and self.command in ("GET", "HEAD"):
            return self._send_json(200, {"held": hub.held()})
        elif self._path == "/_admin/release" and self.command == "POST":
            hub.release()
            return self._send_json(200, {"held": hub.held()})
        return self._send_error(404, 10010404000, "no admin endpoint %s %s" % (self.command, self._path))

    # -- API ----------------------------------------------------------------------------------------------------------
    def _api(self):
        hub = self.hub
        if self._path == "/api/v1/repos/internalAccelerationInfo":
            self._record["kind"] = "acceleration"
            return self._send_error(404, 10010404000, "not an Alibaba Cloud region")
        match = _API_MODEL_RE.match(self._path)
        if not match:
            return self._send_error(404, 10010404000, "no such endpoint: %s" % self._path)
        model_id = "%s/%s" % (match.group("owner"), match.group("name"))
        rest = match.group("rest") or ""
        self._record["kind"] = {"": "model_info", "/repo/files": "listing", "/repo": "file",
                                "/revisions": "revisions"}[rest]
        self._record["model"] = model_id
        if self.command not in ("GET", "HEAD"):
            return self._send_error(405, 10010405000, "method %s is not allowed here" % self.command)
        if not self._authorized(model_id):
            return
        revisions = hub._models.get(model_id)
        if revisions is None:
            return self._send_error(404, 10010205001, "模型不存在")
        if rest == "":
            return self._send_ok(hub._model_info(model_id))
        if rest == "/revisions":
            return self._send_ok(hub._revision_map(model_id))
        revision = self._params.get("Revision") or "master"
        self._record["revision"] = revision
        snapshot = hub._resolve_revision(model_id, revision)
        if snapshot is None:
            return self._send_error(404, 10010205002, "Revision '%s' of model %s does not exist." % (revision, model_id))
        if rest == "/repo/files":
            return self._listing(snapshot, revision)
        return self._file(snapshot, revision)

    def _authorized(self, model_id: str) -> bool:
        token = self.hub._token
        if token is None:
            return True
        given = None
        auth = self.headers.get("Authorization")
        if auth is not None:
            scheme, _ignored, value = auth.partition(" ")
            given = value.strip() if scheme.lower() == "bearer" else ""
        else:
            for part in (self.headers.get("Cookie") or "").split(";"):
                key, _ignored, value = part.strip().partition("=")
                if key == "m_session_id":
                    given = value
        if not given:
            self._send_error(401, 10010102001, "用户未登录: send Authorization: Bearer <token>")
            return False
        if not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
            self._send_error(403, 10010102002, "Permission denied: the token is not valid for %s." % model_id)
            return False
        return True

    def _apply_common_fault(self, rule) -> bool:
        """delay/status/redirect effects of a rule; True when the response was already sent."""
        if rule.get("delay"):
            if self.hub._stopping.wait(rule["delay"]):
                raise ConnectionAbortedError("hub stopping")
        if "redirect" in rule:
            location = rule["redirect"] + self.path
            self._start(302, {"Location": location, "Content-Length": "0"})
            return True
        if "status" in rule:
            extra = {"Retry-After": str(rule["retry_after"])} if "retry_after" in rule else None
            self._send_error(rule["status"], 10010500000 + rule["status"],
                             "Injected fault: HTTP %d for this request." % rule["status"], extra)
            return True
        return False

    def _listing(self, snapshot: Snapshot, revision: str):
        rule = self.hub._faults.match_listing(snapshot.spec.model_id, revision)
        if rule:
            self._record["fault"] = rule
            if self._apply_common_fault(rule):
                return
        root = (self._params.get("Root") or "").strip("/")
        recursive = (self._params.get("Recursive") or "False").lower() == "true"
        dirs = snapshot.directories()
        if root and root not in dirs:
            return self._send_error(404, 10010205003, "Directory '%s' does not exist in revision '%s'."
                                    % (root, revision))
        prefix = root + "/" if root else ""

        def wanted(path):
            if not path.startswith(prefix):
                return False
            return recursive or "/" not in path[len(prefix):]

        commit = snapshot.commit_id
        date = snapshot.revision.created_at
        entries = []
        for path in dirs:
            if wanted(path):
                entries.append(_entry(path, "tree", 0, "", False, commit, date))
        omit_sha = bool(rule and rule.get("omit_sha256"))
        for path, item in snapshot.files.items():
            if wanted(path):
                entries.append(_entry(path, "blob", item.size, "" if omit_sha else item.sha256, item.is_lfs,
                                      commit, date))
        entries.sort(key=lambda e: e["Path"])
        if rule and rule.get("unsafe_paths") and not root:
            for path in rule["unsafe_paths"]:
                data = _unsafe_content(path)
                entries.append(_entry(path, "blob", len(data), "" if omit_sha else _sha256(data), False, commit, date))
        self._send_ok({"Files": entries[:self.hub.listing_limit]})

    def _file(self, snapshot: Snapshot, revision: str):
        model_id = snapshot.spec.model_id
        path = self._params.get("FilePath")
        self._record["file"] = path
        if path is None or path == "":
            return self._send_error(400, 10010400002, "FilePath is required")
        item = snapshot.files.get(path)
        blob = item.blob if item else None
        sha = item.sha256 if item else None
        if blob is None and path in self.hub._faults.unsafe_paths(model_id, revision):
            data = _unsafe_content(path)
            blob, sha = BytesBlob(data), _sha256(data)
        if blob is None:
            return self._send_error(404, 10010205004, "File '%s' does not exist in revision '%s'." % (path, revision))
        rule = self.hub._faults.match_file(model_id, revision, path)
        if rule:
            self._record["fault"] = rule
            if self._apply_common_fault(rule):
                return
        size = blob.size
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes",
                   "Content-Disposition": "attachment; filename=\"%s\"" % path.rsplit("/", 1)[-1].replace('"', "")}
        if self.hub.linked_etag:
            headers["X-Linked-ETag"] = '"%s"' % sha
        start, end, status = 0, size, 200
        range_header = self.headers.get("Range")
        if range_header:
            parsed = _parse_range(range_header, size)
            if parsed == "unsatisfiable":
                headers = {"Content-Range": "bytes */%d" % size}
                return self._send_error(416, 10010416000, "Range %s is not satisfiable for %d bytes."
                                        % (range_header, size), headers)
            if parsed is not None:
                start, end = parsed
                status = 206
                headers["Content-Range"] = "bytes %d-%d/%d" % (start, end - 1, size)
        headers["Content-Length"] = str(end - start)
        self._start(status, headers)
        if self.command == "HEAD":
            return
        self._send_body(blob, start, end, rule or {})

    def _send_body(self, blob, start: int, end: int, rule: dict):
        corrupt, drop_after, rate = rule.get("corrupt"), rule.get("drop_after"), rule.get("slow")
        hold_at = start + rule["hold"] if "hold" in rule else None
        if not (corrupt or drop_after is not None or rate or hold_at is not None or self.hub.link) \
                and isinstance(blob, FileBlob) and end > start:
            with open(blob.path, "rb") as handle:
                self._body_sent += self.connection.sendfile(handle, start, end - start)
            return
        if corrupt:
            c_start = corrupt["offset"] if corrupt["offset"] is not None else blob.size // 2
            c_end = c_start + corrupt["length"]
        drop_at = start + drop_after if drop_after is not None and start + drop_after < end else None
        began = time.monotonic()
        pos = start
        if hold_at is not None and hold_at <= start:
            self._hold()
            hold_at = None
        for chunk in blob.iter_range(start, end):
            if hold_at is not None and pos + len(chunk) > hold_at:
                self._write(chunk[:hold_at - pos], rate, began)
                self._hold()
                chunk = chunk[hold_at - pos:]
                pos = hold_at
                hold_at = None
            if corrupt and pos < c_end and pos + len(chunk) > c_start:
                buf = bytearray(chunk)
                for i in range(max(c_start, pos), min(c_end, pos + len(chunk))):
                    buf[i - pos] ^= 0xFF
                chunk = bytes(buf)
            if drop_at is not None and pos + len(chunk) > drop_at:
                self._write(chunk[:drop_at - pos], rate, began)
                self._record["dropped"] = True
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self._write(chunk, rate, began)
            pos += len(chunk)

    def _hold(self):
        self.wfile.flush()
        self._record["held"] = True
        if not self.hub._wait_release():
            raise ConnectionAbortedError("hub stopping")

    def _write(self, chunk: bytes, rate: Optional[int], began: float):
        link = self.hub.link
        if not rate and not link:
            self.wfile.write(chunk)
            self._body_sent += len(chunk)
            return
        if not rate:
            view = memoryview(chunk)
            for i in range(0, len(chunk), _Link.PIECE):
                piece = view[i:i + _Link.PIECE]
                if self.hub._stopping.wait(link.reserve(len(piece))):
                    raise ConnectionAbortedError("hub stopping")
                self.wfile.write(piece)
                self._body_sent += len(piece)
            return
        step = max(1024, rate // 20)
        view = memoryview(chunk)
        for i in range(0, len(chunk), step):
            piece = view[i:i + step]
            ahead = (self._body_sent + len(piece)) / rate - (time.monotonic() - began)
            if ahead > 0 and self.hub._stopping.wait(ahead):
                raise ConnectionAbortedError("hub stopping")
            if link and self.hub._stopping.wait(link.reserve(len(piece))):
                raise ConnectionAbortedError("hub stopping")
            self.wfile.write(piece)
            self._body_sent += len(piece)


def _entry(path, kind, size, sha, is_lfs, commit, date) -> dict:
    return {"Name": path.rstrip("/").rsplit("/", 1)[-1], "Path": path, "Type": kind, "Size": size, "Sha256": sha,
            "IsLFS": is_lfs, "Mode": "40000" if kind == "tree" else "100644", "Revision": commit,
            "CommitId": commit, "CommitMessage": "Generated by the llmops local hub", "CommittedDate": date,
            "CommitterName": "llmops-local-hub", "InCheck": False}


def _unsafe_content(path: str) -> bytes:
    return ("unsafe listing entry %r served by the llmops local hub\n" % path).encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


def _parse_range(header: str, size: int):
    """``(start, end_exclusive)``, ``"unsatisfiable"``, or None to ignore the header (malformed or multi-range)."""
    match = _RANGE_RE.match(header)
    if not match or not (match.group(1) or match.group(2)):
        return None
    first, last = match.groups()
    if first:
        start = int(first)
        if last and int(last) < start:
            return None
        if start >= size:
            return "unsatisfiable"
        return start, min(size, int(last) + 1) if last else size
    suffix = int(last)
    if suffix == 0 or size == 0:
        return "unsatisfiable"
    return max(0, size - suffix), size


class _Link:
    """The one network link every transfer of the hub shares: bodies are paced together to ``rate`` bytes per second
    (a mirror behind a 1 Gbit/s link serves 4 parallel downloads at a quarter of that each, not at 4 x the rate)."""

    PIECE = 256 * 1024

    def __init__(self, rate: int, clock=time.monotonic):
        if not isinstance(rate, int) or isinstance(rate, bool) or rate < 1024:
            raise ValueError("link_rate must be an integer of at least 1024 (bytes per second), got %r" % (rate,))
        self.rate = rate
        self._clock = clock
        self._lock = threading.Lock()
        self._free_at = 0.0

    def reserve(self, count: int) -> float:
        """Book the link for ``count`` bytes; seconds to wait before sending them (the link's time is handed out in
        order, so the transfers together never go faster than ``rate``)."""
        with self._lock:
            now = self._clock()
            start = max(now, self._free_at)
            self._free_at = start + count / self.rate
            return start - now


class LocalHub:
    """The hub, embeddable in tests::

        hub = LocalHub(store_dir, models=None, token=None).start()
        hub.endpoint                       # "http://127.0.0.1:PORT"
        hub.add_file_fault("model.safetensors", corrupt=True)
        hub.requests(kind="file")          # the request log
        hub.stop()

    ``models``: ModelSpec objects or catalogue ids/aliases (``default``, ``bench:1GiB``); None = the default set.
    ``token``: when set, API requests need it (401 without, 403 with a wrong one).
    ``faults``: an initial fault specification (see :mod:`tools.local_hub.faults`).
    ``log_path``: also append every request record to this JSONL file.
    ``linked_etag``: send ``X-Linked-ETag: "<sha256>"`` with files (makes the SDK verify single-file downloads).
    ``link_rate``: bytes per second of the one link all file bodies share (a network-bound mirror, for benchmarks);
    None: as fast as the machine allows (``sendfile``).
    """

    def __init__(self, store_dir, models=None, token: Optional[str] = None, host: str = "127.0.0.1", port: int = 0,
                 log_path=None, faults=None, linked_etag: bool = False, listing_limit: int = LISTING_LIMIT,
                 link_rate: Optional[int] = None):
        self.store = Store(store_dir)
        self.specs = resolve_models(models)
        self.host = host
        self.requested_port = port
        self.linked_etag = linked_etag
        self.link = _Link(link_rate) if link_rate is not None else None
        self.listing_limit = listing_limit
        self.log_path = Path(log_path) if log_path else None
        self._token = token or None
        self._faults = faults_mod.FaultSet(faults)
        self._models: Dict[str, Dict[str, Snapshot]] = {}
        self._log: List[dict] = []
        self._log_lock = threading.Lock()
        self._settled = threading.Condition(self._log_lock)
        self._active = 0
        self._log_file = None
        self._conns = set()
        self._conns_lock = threading.Lock()
        self._stopping = threading.Event()
        self._released = threading.Event()
        self._holding = 0
        self._hold_cond = threading.Condition()
        self._httpd = None
        self._thread = None

    # -- life cycle ---------------------------------------------------------------------------------------------------
    def prepare(self) -> "LocalHub":
        """Generate or load every served model (done by start(); callable alone to pre-build a store)."""
        if not self._models:
            self._models = {spec.model_id: self.store.prepare(spec) for spec in self.specs}
        return self

    def start(self) -> "LocalHub":
        self.prepare()
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "a", encoding="utf-8")
        self._stopping.clear()
        self._httpd = _HubHTTPServer((self.host, self.requested_port), _Handler)
        self._httpd.hub = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        self._thread.join(10)
        self._httpd = None
        with self._log_lock:
            if self._log_file:
                self._log_file.close()
                self._log_file = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def endpoint(self) -> str:
        host = self.host if ":" not in self.host else "[%s]" % self.host
        return "http://%s:%d" % (host, self.port)

    @property
    def model_ids(self) -> List[str]:
        return [spec.model_id for spec in self.specs]

    def set_token(self, token: Optional[str]):
        self._token = token or None

    # -- faults -------------------------------------------------------------------------------------------------------
    def set_faults(self, spec) -> dict:
        """Replace every rule (raises FaultError, a ValueError, on a bad specification)."""
        out = self._faults.replace(spec)
        if any("hold" in rule for rule in out["files"]):
            self._released.clear()
        return out

    def clear_faults(self):
        self._faults.clear()
        self.release()

    # -- held transfers -------------------------------------------------------------------------------------------
    def _wait_release(self) -> bool:
        """Called by a handler whose transfer a ``hold`` rule stops; False when the hub stops instead."""
        with self._hold_cond:
            self._holding += 1
            self._hold_cond.notify_all()
        try:
            while not self._released.wait(0.05):
                if self._stopping.is_set():
                    return False
            return True
        finally:
            with self._hold_cond:
                self._holding -= 1
                self._hold_cond.notify_all()

    def held(self) -> int:
        """Transfers held right now."""
        with self._hold_cond:
            return self._holding

    def wait_held(self, count: int = 1, timeout: float = 60.0) -> bool:
        """Wait until ``count`` transfers are held (True) or ``timeout`` seconds passed (False)."""
        with self._hold_cond:
            return self._hold_cond.wait_for(lambda: self._holding >= count, timeout=timeout)

    def release(self):
        """Let every held transfer go on; later matches of a ``hold`` rule pass without stopping until a new hold
        rule is set."""
        self._released.set()

    def faults(self) -> dict:
        """The current rules, each with its ``hits`` count."""
        return self._faults.to_dict()

    def add_file_fault(self, path: str, **effects) -> dict:
        """Add one file rule: ``add_file_fault("model.safetensors", drop_after=1 << 20, times=1)``."""
        rule = self._faults.add("files", dict(effects, path=path))
        if "hold" in rule:
            self._released.clear()
        return rule

    def add_listing_fault(self, **effects) -> dict:
        """Add one listing rule: ``add_listing_fault(unsafe_paths=True)``."""
        return self._faults.add("listing", effects)

    # -- request log --------------------------------------------------------------------------------------------------
    def _log_request(self, record: dict):
        with self._log_lock:
            self._log.append(record)
            if self._log_file:
                self._log_file.write(json.dumps(record, ensure_ascii=False) + "\n")
                self._log_file.flush()

    def _in_flight(self, delta: int):
        with self._settled:
            self._active += delta
            if not self._active:
                self._settled.notify_all()

    def requests(self, kind: Optional[str] = None, model: Optional[str] = None, settle: float = 2.0) -> List[dict]:
        """Copies of the logged requests in the order they arrived, optionally only one kind (``listing``,
        ``file``...) or one model.

        Requests are logged when they finish (a file transfer can finish after the client's next request arrived);
        this waits up to ``settle`` seconds for those still being answered, so a test that just saw a response (or a
        client exit) also sees its record, and orders them by arrival.
        """
        with self._settled:
            self._settled.wait_for(lambda: self._active == 0, timeout=settle)
            return [dict(r) for r in sorted(self._log, key=lambda record: record["time"])
                    if (kind is None or r["kind"] == kind) and (model is None or r["model"] == model)]

    def clear_requests(self, settle: float = 10.0):
        """Empty the log. Requests still being answered (a client just killed, whose transfer the server has not
        noticed yet) are waited for up to ``settle`` seconds first, so their records do not land in the next log."""
        with self._settled:
            self._settled.wait_for(lambda: self._active == 0, timeout=settle)
            self._log.clear()

    def _track(self, conn, opened: bool):
        with self._conns_lock:
            if opened:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    # -- content ------------------------------------------------------------------------------------------------------
    def snapshot(self, model_id: str, revision: str = "master") -> Snapshot:
        """The served files of one revision (``.files[path]`` has size, sha256, local_path and blob)."""
        self.prepare()
        return self._models[model_id][revision]

    def read_file(self, model_id: str, path: str, revision: str = "master") -> bytes:
        """The true bytes of a (small) served file."""
        return self.snapshot(model_id, revision).files[path].blob.read()

    def describe(self) -> dict:
        out = {}
        for model_id, revisions in self._models.items():
            out[model_id] = {name: {"commit_id": snap.commit_id,
                                    "files": {p: {"size": f.size, "sha256": f.sha256} for p, f in snap.files.items()}}
                             for name, snap in revisions.items()}
        return out

    def _resolve_revision(self, model_id: str, revision: str) -> Optional[Snapshot]:
        revisions = self._models[model_id]
        if revision in revisions:
            return revisions[revision]
        for snap in revisions.values():
            if snap.commit_id == revision:
                return snap
        return None

    def _model_info(self, model_id: str) -> dict:
        revisions = self._models[model_id]
        spec = next(iter(revisions.values())).spec
        created = [snap.revision.created_at for snap in revisions.values()]
        return {"Id": zlib.crc32(model_id.encode("utf-8")), "Name": spec.name, "Path": spec.owner,
                "ChineseName": "", "Description": spec.description, "Visibility": 5, "IsPublished": 1,
                "License": "Apache License 2.0", "Tasks": [{"Name": "text-generation"}],
                "Frameworks": ["pytorch"], "ModelType": [spec.arch.family], "Downloads": 0, "Stars": 0,
                "CreatedTime": min(created), "LastUpdatedTime": max(created),
                "Revision": "master", "Architectures": ["Qwen2ForCausalLM" if spec.arch.family == "qwen2"
                                                        else "LlamaForCausalLM"]}

    def _revision_map(self, model_id: str) -> dict:
        branches, tags = [], []
        for snap in self._models[model_id].values():
            entry = {"Revision": snap.revision.name, "CreatedAt": snap.revision.created_at,
                     "CommitId": snap.commit_id, "Message": snap.revision.note}
            (tags if snap.revision.kind == "tag" else branches).append(entry)
        return {"RevisionMap": {"Branches": branches, "Tags": tags}}
