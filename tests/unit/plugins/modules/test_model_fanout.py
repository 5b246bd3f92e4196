# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_fanout as a host runs it: a receive (or a probe) never loads the HTTP client, only state=manifest does;
options that would silently turn off hashing on arrival are named in a warning."""
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils.marker import build_marker, write_marker
from ansible_collections.llmops.deploy.plugins.module_utils.peer_transfer import fanout_manifest
from ansible_collections.llmops.deploy.plugins.modules import model_fanout

from .module_runner import run_module, tree, write_files

FILES = {"config.json": b'{"a": 1}', "model.safetensors": b"W" * 5000}
HTTP_CLIENT = ("ansible.module_utils.urls", "ansible_collections.llmops.deploy.plugins.module_utils.hub_client")

# Run the module's main() in a fresh interpreter (its own sys.modules) with the given arguments, then say which of
# HTTP_CLIENT were loaded: the result of exit_json/fail_json is the first line, the loaded modules the last.
RUNNER = """
import json, sys
from ansible.module_utils.testing import patch_module_args
from ansible_collections.llmops.deploy.plugins.modules import model_fanout
with patch_module_args(json.loads(sys.argv[1])):
    try:
        model_fanout.main()
    except SystemExit:
        pass
print()
print(json.dumps(sorted(m for m in sys.modules if m in json.loads(sys.argv[2]))))
"""


def manifest():
    entries = [{"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for p, d in sorted(FILES.items())]
    return fanout_manifest("o/m", "master", "abc123", "http://hub.invalid", [], [], entries)


def complete_model(model_dir):
    """A model directory that holds the manifest under a valid marker, as a finished receive leaves it."""
    os.makedirs(model_dir)
    files = write_files(model_dir, FILES)
    doc = manifest()
    write_marker(model_dir, build_marker(doc["model_id"], doc["revision_requested"], doc["revision"],
                                         doc["endpoint"], doc["include"], doc["exclude"], files, "0.1.0"))


def run_fresh(args):
    """``(result, loaded)``: the module's result and the modules of HTTP_CLIENT it loaded, in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(args), json.dumps(HTTP_CLIENT)], check=True,
                         stdout=subprocess.PIPE, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    return json.loads(lines[0]), json.loads(lines[-1])


def receive_args(model_dir, **extra):
    return dict(state="receive", path=model_dir, manifest=manifest(), ssh_key="/nonexistent/id_ed25519",
                known_hosts="", sources=[{"name": "peer1", "host": "127.0.0.1", "port": 22}], **extra)


def test_a_receive_and_a_probe_do_not_load_the_http_client(tmp_path):
    planned, loaded = run_fresh(dict(receive_args(str(tmp_path / "new" / "o" / "m")), _ansible_check_mode=True))
    assert not planned.get("failed") and planned["changed"], planned
    assert planned["would_fetch"] == sorted(FILES) and not planned["complete"]
    assert loaded == []
    model_dir = str(tmp_path / "done" / "o" / "m")
    complete_model(model_dir)
    current, loaded = run_fresh(receive_args(model_dir))
    assert not current.get("failed") and current["complete"] and not current["changed"], current
    assert loaded == []
    probed, loaded = run_fresh(dict(state="probe", path=model_dir, manifest=manifest()))
    assert probed["complete"] and loaded == []


class _NoSuchModel(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"Message": "no such model"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def hub_404():
    server = http.server.HTTPServer(("127.0.0.1", 0), _NoSuchModel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_state_manifest_loads_the_http_client_and_uses_its_options(hub_404):
    """The control of the test above: the hub is asked through hub_client (ansible.module_utils.urls)."""
    result, loaded = run_fresh(dict(state="manifest", model_id="o/m", endpoint=hub_404, timeout=5))
    assert result["failed"] and "HTTP 404" in result["msg"] and "cannot resolve o/m@master" in result["msg"]
    assert loaded == sorted(HTTP_CLIENT)


def test_bad_client_options_are_refused_before_the_hub_is_asked(monkeypatch, tmp_path):
    failed, result = run_module(monkeypatch, model_fanout, dict(state="manifest", model_id="o/m", timeout=0,
                                                                retries=-1, endpoint="http://127.0.0.1:9"))
    assert failed and "timeout 0 is not valid" in result["msg"]
    assert "retries -1 is not valid: expected an integer from 0 to 10" in result["msg"]


@pytest.mark.parametrize("opts, named", [
    (["--bwlimit=64m"], None),
    (["--bwlimit=64m", "--out-format=%n"], "--out-format=%n"),
    (["--log-format=%i %n"], "--log-format=%i %n"),
    (["--quiet"], "--quiet"),
])
def test_options_that_take_away_rsyncs_lines_are_named_in_a_warning(monkeypatch, tmp_path, opts, named):
    failed, result = run_module(monkeypatch, model_fanout, receive_args(str(tmp_path / "o" / "m"), rsync_opts=opts),
                                check_mode=True)
    assert not failed and result["would_fetch"] == sorted(FILES)
    if named is None:
        assert result["_warnings"] == []
    else:
        assert len(result["_warnings"]) == 1 and named in result["_warnings"][0]
        assert "hashed after rsync exits" in result["_warnings"][0]


def test_no_warning_when_nothing_is_to_fetch(monkeypatch, tmp_path):
    model_dir = str(tmp_path / "o" / "m")
    complete_model(model_dir)
    failed, result = run_module(monkeypatch, model_fanout, receive_args(model_dir, rsync_opts=["--quiet"]))
    assert not failed and result["complete"] and result["_warnings"] == []


@pytest.mark.parametrize("state, unsupported, named", [
    ("receive", {"setype": "httpd_sys_content_t"}, "setype is"),
    ("receive", {"serole": "object_r", "attributes": "+i"}, "serole and attributes are"),
    ("prepare", {"selevel": "s0"}, "selevel is"),
])
def test_an_unsupported_file_argument_is_refused_and_nothing_is_written(monkeypatch, tmp_path, state, unsupported,
                                                                        named):
    host_key = tmp_path / "ssh_host_ed25519_key.pub"
    host_key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA host\n")
    if state == "receive":
        # not check mode: a receive that got past its checks would create the parent, the lock and the staging
        # directory before it reached for a peer
        args = receive_args(str(tmp_path / "models" / "o" / "m"), mode="0640", dir_mode="0750")
    else:
        args = dict(state="prepare", key_dir=str(tmp_path / "keys"), make_key=True, host_key=str(host_key))
    before = tree(tmp_path)
    failed, result = run_module(monkeypatch, model_fanout, dict(args, **unsupported))
    assert failed and result["msg"].startswith("%s not supported by model_fanout: it sets only owner, group and "
                                               "mode (and dir_mode)" % named), result["msg"]
    assert tree(tmp_path) == before and not result["changed"]
    # the control: the same task without it is accepted (a receive in check mode plans the files)
    failed, result = run_module(monkeypatch, model_fanout, args, check_mode=True)
    assert not failed and result["changed"], result
    if state == "receive":
        assert result["would_fetch"] == sorted(FILES)
