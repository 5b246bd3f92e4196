# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hub_client: origins, redirects and the token, retries, options, the SDK's environment (over a scripted
transport), and TLS for real through ansible.module_utils.urls against a local HTTPS server with its own CA
(plain HTTP through it is exercised by test_hub_manifest's server)."""

import io
import os
from urllib.error import HTTPError

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import hub_client as hc
from ansible_collections.llmops.deploy.plugins.module_utils.hub_manifest import HubError


class Response(object):
    def __init__(self, body=b"{}"):
        self.status = 200
        self.body = io.BytesIO(body)

    def read(self, size=-1):
        return self.body.read(size)

    def close(self):
        pass


class Script(object):
    """Answers each request with the next step: a Response, or (status, headers) raised as HTTPError."""

    def __init__(self, *steps):
        self.steps = list(steps)
        self.sent = []

    def __call__(self, url, headers, timeout):
        self.sent.append((url, dict(headers)))
        step = self.steps.pop(0)
        if isinstance(step, Response):
            return step
        status, headers = step
        raise HTTPError(url, status, "scripted", headers, io.BytesIO(b'{"Message": "scripted"}'))


@pytest.mark.parametrize("a, b, same", [
    ("http://hub:8080/x", "http://hub:8080/y?z", True),
    ("http://hub/x", "http://hub:80/y", True),
    ("https://hub/x", "https://HUB:443/", True),
    ("http://hub:8080/x", "http://hub:8081/x", False),
    ("http://hub/x", "https://hub/x", False),
    ("http://hub/x", "http://hub.evil/x", False),
])
def test_origin_is_scheme_host_and_port(a, b, same):
    assert (hc.origin(a) == hc.origin(b)) is same


def test_token_kept_on_same_origin_dropped_on_another_port_and_not_restored():
    script = Script((302, {"Location": "/moved"}), (307, {"Location": "http://hub:8081/other"}),
                    (302, {"Location": "http://hub:8080/back"}), Response(b'{"ok": 1}'))
    client = hc.HubClient(token="CANARY", transport=script, sleep=lambda s: None)
    assert client.get_json("http://hub:8080/start") == {"ok": 1}
    auth = [(url, headers.get("Authorization")) for url, headers in script.sent]
    assert auth == [("http://hub:8080/start", "Bearer CANARY"), ("http://hub:8080/moved", "Bearer CANARY"),
                    ("http://hub:8081/other", None), ("http://hub:8080/back", "Bearer CANARY")]
    assert client.requests == 4


def test_redirect_loops_and_non_http_targets_are_refused():
    loop = Script(*[(302, {"Location": "/again"})] * 10)
    with pytest.raises(HubError, match="redirected more than 5 times"):
        hc.HubClient(transport=loop).get_json("http://hub/x")
    with pytest.raises(HubError, match="non-HTTP URL"):
        hc.HubClient(transport=Script((302, {"Location": "file:///etc/passwd"}))).get_json("http://hub/x")


def test_retries_then_a_clear_error_without_the_token():
    script = Script((503, {}), (500, {}), (500, {}))
    slept = []
    client = hc.HubClient(token="CANARY", retries=2, transport=script, sleep=slept.append)
    with pytest.raises(HubError) as info:
        client.get_json("http://hub/x")
    assert "HTTP 500: scripted after 3 attempts" in info.value.message and "CANARY" not in info.value.message
    assert slept == [1.0, 2.0]


def test_retry_after_is_honoured_within_the_bound_and_backoff_is_bounded_too():
    date = "Wed, 21 Oct 2015 07:28:30 GMT"   # 1445412510
    script = Script((429, {"Retry-After": "7"}), (503, {"Retry-After": "600"}), (503, {"Retry-After": date}),
                    (503, {"Retry-After": "soon"}), Response(b"{}"))
    slept = []
    client = hc.HubClient(retries=4, transport=script, sleep=slept.append)
    assert client.get_json("http://hub/x") == {} and client.requests == 5
    # 7 as asked; 600 asked, 60 at most; a date in the past: at once; unreadable: the backoff of the 4th attempt
    assert slept == [7, 60, 0, 8.0]
    assert hc.retry_after_seconds(date, now=1445412500) == 10
    assert [hc.retry_after_seconds(v) for v in (None, "", "-3", "1.5", "Wed, 21 Oct 2015")] == [None] * 5
    slept = []
    client = hc.HubClient(retries=8, transport=Script(*[(500, {})] * 9), sleep=slept.append)
    with pytest.raises(HubError, match="after 9 attempts"):
        client.get_json("http://hub/x")
    assert slept == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60, 60]


def test_retries_zero_fails_at_the_first_server_error_and_a_404_is_never_retried():
    script = Script((500, {}))
    client = hc.HubClient(retries=0, transport=script, sleep=pytest.fail)
    with pytest.raises(HubError) as info:
        client.get_json("http://hub/x")
    assert info.value.message.endswith("HTTP 500: scripted after 1 attempt") and client.requests == 1
    client = hc.HubClient(retries=3, transport=Script((404, {})), sleep=pytest.fail)
    with pytest.raises(HubError, match="HTTP 404"):
        client.get_json("http://hub/x")
    assert client.requests == 1


def test_the_client_of_a_modules_params():
    script = Script((500, {}), Response(b'{"ok": 1}'))
    params = {"token": "CANARY", "timeout": 7, "validate_certs": True, "ca_path": None, "use_proxy": True,
              "retries": 1}
    client = hc.HubClient.from_params(params)
    assert (client.token, client.timeout, client.retries) == ("CANARY", 7, 1)
    client.transport, client.sleep = script, lambda seconds: None
    assert client.get_json("http://hub/x") == {"ok": 1} and client.requests == 2


def test_options_are_checked(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert hc.check_client_options({"timeout": 5, "ca_path": str(ca)}) == []
    problems = hc.check_client_options({"timeout": 0, "ca_path": str(tmp_path / "missing.pem")})
    assert len(problems) == 2 and problems[0].startswith("timeout 0 is not valid")
    for retries in (0, 10):
        assert hc.check_client_options({"timeout": 5, "retries": retries}) == []
    for retries in (-1, 11, True, "3"):
        (problem,) = hc.check_client_options({"timeout": 5, "retries": retries})
        assert problem == "retries %r is not valid: expected an integer from 0 to 10" % (retries,)


def test_the_options_have_one_source_without_network_imports():
    """hub_client re-exports hub_options' spec and check (modelscope_download, modelscope_info use them from here);
    hub_options itself loads no HTTP code, so model_fanout can build its spec from it alone."""
    import subprocess
    import sys
    from ansible_collections.llmops.deploy.plugins.module_utils import hub_options
    assert hc.HUB_CLIENT_ARGSPEC is hub_options.HUB_CLIENT_ARGSPEC
    assert hc.check_client_options is hub_options.check_client_options
    assert set(hub_options.HUB_CLIENT_ARGSPEC) == {"validate_certs", "ca_path", "use_proxy", "timeout", "retries"}
    code = ("import sys; from ansible_collections.llmops.deploy.plugins.module_utils import hub_options; "
            "print(sorted(m for m in sys.modules if m.startswith(('ansible.module_utils.urls', 'http.client', "
            "'urllib.request'))))")
    out = subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))).stdout
    assert out.strip() == "[]"


def test_sdk_environment():
    assert hc.sdk_environment() == {}
    env = hc.sdk_environment(ca_path="/etc/ca.pem", use_proxy=False)
    assert env["REQUESTS_CA_BUNDLE"] == env["SSL_CERT_FILE"] == "/etc/ca.pem"
    assert env["https_proxy"] == env["HTTP_PROXY"] == "" and env["NO_PROXY"] == "*"
    assert "MODELSCOPE_DOWNLOAD_TIMEOUT" not in env and "MODELSCOPE_DOWNLOAD_MAX_RETRIES" not in env
    env = hc.sdk_environment(timeout=30, retries=0)
    assert env == {"MODELSCOPE_DOWNLOAD_TIMEOUT": "30", "MODELSCOPE_DOWNLOAD_MAX_RETRIES": "0"}


# ---------------------------------------------------------------------------------------------------------------
# TLS for real: a local HTTPS server with its own CA
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def https_hub(tmp_path):
    import ssl
    import subprocess
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    ca_key, ca_crt = tmp_path / "ca.key", tmp_path / "ca.pem"
    key, csr, crt = tmp_path / "hub.key", tmp_path / "hub.csr", tmp_path / "hub.pem"
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    for argv in (
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt, "-days", "2",
             "-subj", "/CN=llmops test CA"],
            ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
            ["x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
             "-days", "2", "-extfile", ext]):
        subprocess.run(["openssl"] + [str(a) for a in argv], check=True, capture_output=True)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(crt), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield "https://127.0.0.1:%d/x" % server.server_address[1], str(ca_crt)
    server.shutdown()
    server.server_close()


def test_tls_certificates_are_verified_with_the_given_ca(https_hub):
    url, ca = https_hub
    with pytest.raises(HubError, match="could not be reached"):
        hc.HubClient(retries=0).get_json(url)                          # an unknown CA is refused
    assert hc.HubClient(retries=0, ca_path=ca).get_json(url) == {"ok": True}
    assert hc.HubClient(retries=0, validate_certs=False).get_json(url) == {"ok": True}
