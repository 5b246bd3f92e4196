# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one HTTP client of the collection's hub modules, built on ``ansible.module_utils.urls``.

``modelscope_download`` (the listing) and ``modelscope_info`` (listing, small files, ranged safetensors headers)
talk to a hub only through :class:`HubClient`, so retries, redirects, TLS, proxies and error messages live here once:

* requests go through ``ansible.module_utils.urls.Request`` with the options users expect from every network module
  (``validate_certs``, ``ca_path``, ``use_proxy`` with proxies taken from the environment as Ansible does,
  ``timeout``; doc fragment ``llmops.deploy.hub_client``, argument spec ``HUB_CLIENT_ARGSPEC`` from module_utils
  ``hub_options``, re-exported here); ``~/.netrc`` is never read;
* redirects are followed here, not by urllib (at most :data:`MAX_REDIRECTS`): the token (an ``Authorization:
  Bearer`` header, never in a URL) is sent only to the origin it was given for, compared as scheme, host **and**
  port; a redirect to any other origin, another port of the same host included, goes without it;
* 5xx, 429 and network errors are retried (``retries`` times) after 1, 2, 4... seconds, or after the seconds a
  ``Retry-After`` header asks for (a number or an HTTP date), never more than :data:`MAX_RETRY_DELAY` apart, as the
  SDK does; other statuses fail at once with :class:`hub_manifest.HubError` whose message never holds the token.

:func:`sdk_environment` turns the same options into the environment of the SDK subprocess (CA bundle, proxies), so
the SDK reaches the hub the way this client does; nothing of it goes on a command line.
"""

import json
import socket
import time
from email.utils import parsedate_to_datetime

try:  # Python 3
    from urllib.error import HTTPError, URLError
    from urllib.parse import urljoin, urlsplit
    from urllib.request import Request as UrllibRequest
except ImportError:  # pragma: no cover - Python 2 is not supported
    raise

from ansible.module_utils.urls import Request

from ansible_collections.llmops.deploy.plugins.module_utils.hub_manifest import (
    HubError, error_detail, listing_url, normalize_endpoint, parse_listing, split_model_id, validate_revision)
# the options' argument spec and check live in hub_options (no network import); re-exported for the hub modules
# pylint: disable-next=unused-import
from ansible_collections.llmops.deploy.plugins.module_utils.hub_options import (  # noqa: F401
    HUB_CLIENT_ARGSPEC, check_client_options)

MAX_REDIRECTS = 5
# The longest wait between two attempts, whatever the backoff or a Retry-After header says (the SDK's own bound).
MAX_RETRY_DELAY = 60
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
USER_AGENT = "llmops.deploy"

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def origin(url):
    """``(scheme, host, port)`` of a URL, the port made explicit (80/443 when the URL has none)."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def sdk_environment(validate_certs=True, ca_path=None, use_proxy=True, timeout=None, retries=None):
    """Environment for the SDK subprocess (``requests``) that matches the client options.

    ``ca_path`` becomes ``REQUESTS_CA_BUNDLE`` and ``SSL_CERT_FILE``; ``use_proxy=False`` blanks every proxy variable
    and sets ``NO_PROXY=*``; with ``use_proxy=True`` the proxies of the module's environment pass through unchanged.
    ``validate_certs=False`` cannot be said through the environment: the SDK runner reads it from its request.
    ``timeout`` becomes the SDK's idle read timeout (``MODELSCOPE_DOWNLOAD_TIMEOUT``) and ``retries`` the times it
    retries a file's request after an error (``MODELSCOPE_DOWNLOAD_MAX_RETRIES``, backoff 1, 2, 4... seconds); None
    leaves the SDK's own defaults (60 seconds, 5 retries).
    """
    env = {}
    if timeout is not None:
        env["MODELSCOPE_DOWNLOAD_TIMEOUT"] = str(int(timeout))
    if retries is not None:
        env["MODELSCOPE_DOWNLOAD_MAX_RETRIES"] = str(int(retries))
    if ca_path:
        env.update(REQUESTS_CA_BUNDLE=ca_path, SSL_CERT_FILE=ca_path, CURL_CA_BUNDLE=ca_path)
    if not use_proxy:
        for name in _PROXY_VARS:
            env[name] = ""
        env.update(no_proxy="*", NO_PROXY="*")
    return env


def _ansible_transport(validate_certs, ca_path, use_proxy):
    request = Request(use_proxy=use_proxy, validate_certs=validate_certs, ca_path=ca_path,
                      follow_redirects="none", use_netrc=False, http_agent=USER_AGENT)

    def transport(url, headers, timeout):
        return request.open("GET", url, headers=headers, timeout=timeout)
    return transport


def _opener_transport(opener):
    """A transport over an urllib-style opener (``opener.open(urllib Request, timeout=)``), for tests."""
    def transport(url, headers, timeout):
        return opener.open(UrllibRequest(url, headers=headers), timeout=timeout)
    return transport


def retry_after_seconds(value, now=None):
    """Seconds a ``Retry-After`` header asks to wait (delay-seconds or an HTTP date), or None when it says nothing
    usable."""
    if value is None:
        return None
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0, int(round(when.timestamp() - (time.time() if now is None else now))))


def _attempts(count):
    """'1 attempt', '4 attempts'."""
    return "%d attempt%s" % (count, "" if count == 1 else "s")


class HubClient(object):
    """GET requests to one hub, with a token that never leaves its origin.

    ``transport`` (``(url, headers, timeout) -> response``, raising ``HTTPError`` for every status >= 300) or
    ``opener`` (an urllib-style opener) replace the real ``ansible.module_utils.urls.Request`` in tests.
    ``requests`` counts every request sent (redirects and retries included).
    """

    def __init__(self, token=None, timeout=60, validate_certs=True, ca_path=None, use_proxy=True, retries=3,
                 backoff=1.0, sleep=time.sleep, transport=None, opener=None):
        self.token = token or None
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        if transport is None:
            transport = _opener_transport(opener) if opener is not None else _ansible_transport(
                validate_certs, ca_path, use_proxy)
        self.transport = transport
        self.requests = 0

    @classmethod
    def from_params(cls, params):
        """The client of a module's parameters: ``token`` and the options of ``HUB_CLIENT_ARGSPEC``."""
        return cls(token=params.get("token"), timeout=params["timeout"], validate_certs=params["validate_certs"],
                   ca_path=params["ca_path"], use_proxy=params["use_proxy"], retries=params["retries"])

    def _send(self, url, headers):
        self.requests += 1
        return self.transport(url, headers, self.timeout)

    def open(self, url, headers=None, what=None, not_found=None):
        """The response to ``GET url`` (status < 300) after redirects and retries; raises HubError.

        ``what``: a prefix for error messages (a file path); ``not_found``: the message of a 404.
        """
        token_origin = origin(url)
        attempt = 0
        redirects = 0
        current = url
        while True:
            attempt += 1
            sent = dict(headers or {})
            sent.setdefault("User-Agent", USER_AGENT)
            if self.token and origin(current) == token_origin:
                sent["Authorization"] = "Bearer %s" % self.token
            try:
                return self._send(current, sent)
            except HTTPError as exc:
                status = exc.code
                location = exc.headers.get("Location") if exc.headers is not None else None
                try:
                    body = exc.read() or b""
                except (OSError, ValueError, AttributeError):
                    body = b""
                finally:
                    try:
                        exc.close()
                    except (OSError, AttributeError):
                        pass
                if status in REDIRECT_STATUSES and location:
                    redirects += 1
                    if redirects > MAX_REDIRECTS:
                        raise HubError(self._prefix(what) + "the hub redirected more than %d times" % MAX_REDIRECTS,
                                       status, url)
                    current = urljoin(current, location)
                    if origin(current)[0] not in ("http", "https"):
                        raise HubError(self._prefix(what) + "the hub redirected to a non-HTTP URL", status, url)
                    attempt -= 1
                    continue
                retryable = status >= 500 or status == 429
                if retryable and attempt <= self.retries:
                    asked = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers is not None else None)
                    self.sleep(self._delay(attempt, asked))
                    continue
                raise HubError(self._status_message(status, error_detail(body), what, not_found,
                                                    attempt if retryable else 0), status, url)
            except (URLError, socket.timeout, ConnectionError, OSError) as exc:
                if attempt <= self.retries:
                    self.sleep(self._delay(attempt))
                    continue
                raise HubError("%sthe hub could not be reached after %s: %s" % (
                    self._prefix(what), _attempts(attempt), self._scrub(str(getattr(exc, "reason", exc)))), None, url)

    def _delay(self, attempt, asked=None):
        """Seconds to wait before attempt ``attempt + 1``: what the server asked for, else the doubling backoff;
        at most MAX_RETRY_DELAY."""
        wanted = asked if asked is not None else self.backoff * (2 ** (attempt - 1))
        return min(wanted, MAX_RETRY_DELAY)

    @staticmethod
    def _prefix(what):
        return ("%s: " % what) if what else ""

    def _scrub(self, text):
        if self.token and isinstance(text, str):
            return text.replace(self.token, "********")
        return text

    def _status_message(self, status, detail, what, not_found, attempts):
        detail = self._scrub((": %s" % detail) if detail else "")
        prefix = self._prefix(what)
        if status in (401, 403):
            hint = "the token is missing, wrong or lacks access" if self.token else "no token was given"
            return "%sthe hub refused access (HTTP %d%s): %s" % (prefix, status, detail, hint)
        if status == 404:
            return "%s%s (HTTP 404%s)" % (prefix, not_found or "the hub has no such resource", detail)
        tail = (" after %s" % _attempts(attempts)) if attempts else ""
        return "%sthe hub answered HTTP %d%s%s" % (prefix, status, detail, tail)

    def get_json(self, url, not_found=None):
        """GET ``url`` and return its decoded JSON."""
        response = self.open(url, {"Accept": "application/json"}, not_found=not_found)
        try:
            body = response.read()
        except (socket.timeout, OSError) as exc:
            raise HubError("the connection failed while the hub's answer was read: %s" % exc, None, url)
        finally:
            response.close()
        try:
            return json.loads(body.decode("utf-8"))
        except ValueError:
            raise HubError("the hub's answer is not JSON", None, url)


def http_get_json(url, token=None, timeout=60, retries=3, backoff=1.0, opener=None, sleep=time.sleep, client=None):
    """GET ``url`` and return the decoded JSON object (see :class:`HubClient`)."""
    client = client or HubClient(token=token, timeout=timeout, retries=retries, backoff=backoff, sleep=sleep,
                                 opener=opener)
    return client.get_json(url, not_found="the hub has no such model or revision")


def fetch_manifest(endpoint, model_id, revision, token=None, timeout=60, retries=3, reserved_names=(),
                   opener=None, sleep=time.sleep, client=None):
    """Fetch and parse the listing of ``model_id`` at ``revision``.

    Returns ``{'revision', 'entries', 'url'}``; raises ManifestError (refused listing or parameters) or HubError.
    Parameters are checked before any request. ``client``: a :class:`HubClient` (else one is made from the other
    arguments).
    """
    endpoint = normalize_endpoint(endpoint)
    owner, name = split_model_id(model_id)
    validate_revision(revision)
    url = listing_url(endpoint, owner, name, revision)
    payload = http_get_json(url, token=token, timeout=timeout, retries=retries, opener=opener, sleep=sleep,
                            client=client)
    manifest = parse_listing(payload, revision, reserved_names)
    manifest["url"] = url
    return manifest
