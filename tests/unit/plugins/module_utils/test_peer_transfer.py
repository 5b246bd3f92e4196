# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Receiving from peers: the manifest and source checks, the rsync command line, and the receiver's verification
(a peer that serves bad bytes is rejected and the next one used; partial files are kept for the next source)."""
import hashlib
import os
import sys

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import peer_transfer as pt

FILES = {"config.json": b'{"a": 1}', "sub/model.safetensors": b"W" * 5000}


def entries():
    return [{"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for p, d in sorted(FILES.items())]


def manifest():
    return pt.fanout_manifest("o/m", "master", "abc123", "http://hub", [], ["*.bin"], entries())


def test_manifest_is_a_bundle_manifest_and_is_checked():
    doc = pt.check_manifest(manifest())
    assert doc["format"] == "llmops.deploy/model-bundle/v1" and doc["bytes_total"] == 5008
    assert doc["exclude"] == ["*.bin"] and doc["files_count"] == 2
    bad = dict(doc, files=[dict(doc["files"][0], path="../etc/passwd")] + doc["files"][1:])
    with pytest.raises(pt.PeerError, match="unsafe path"):
        pt.check_manifest(bad)
    with pytest.raises(pt.PeerError, match="revision is missing"):
        pt.check_manifest(dict(doc, revision=""))
    with pytest.raises(pt.PeerError, match="files_digest"):
        pt.check_manifest(dict(doc, files_digest="0" * 64))


@pytest.mark.parametrize("source, message", [
    ({"host": "-oProxyCommand=x"}, "host must be"),
    ({"host": "a b"}, "host must be"),
    ({"host": "10.0.0.1", "user": "-l"}, "user must be"),
    ({"host": "10.0.0.1", "port": 0}, "port must be"),
    ("10.0.0.1", "not a dict"),
])
def test_sources_are_checked(source, message):
    with pytest.raises(pt.PeerError, match=message):
        pt.check_source(source)


def test_source_defaults_and_rsync_command_line():
    src = pt.check_source({"name": "gpu01", "host": "10.0.0.11", "port": "2222"})
    assert src == {"name": "gpu01", "host": "10.0.0.11", "port": 2222, "user": "root"}
    argv = pt.rsync_argv(src, "/m/.x.llmops-staging/files", "/m/list", "/k/id", "/m/kh", ["--bwlimit=1m"])
    assert argv[-2:] == ["root@10.0.0.11:.", "/m/.x.llmops-staging/files/"]
    assert "--inplace" in argv and "--from0" in argv and "--files-from=/m/list" in argv and "--bwlimit=1m" in argv
    ssh = argv[argv.index("-e") + 1]
    assert "StrictHostKeyChecking=yes" in ssh and "UserKnownHostsFile=/m/kh" in ssh and "-p 2222" in ssh
    assert "IdentityAgent=none" in ssh and "BatchMode=yes" in ssh
    v6 = pt.rsync_argv(pt.check_source({"host": "fd00::1"}), "/d", "/l", "/k", "/kh")
    assert v6[-2] == "root@[fd00::1]:."


@pytest.mark.parametrize("extra, found", [
    (None, []),
    (["--bwlimit=1m", "--info=stats2", "--itemize-changes", "--outbuf=L"], []),
    (["--out-format=%n", "--bwlimit=1m"], ["--out-format=%n"]),
    (["--log-format=%i %n"], ["--log-format=%i %n"]),
    (["--quiet", "--log-format"], ["--quiet", "--log-format"]),
    (["-q", "--bwlimit=1m"], ["-q"]),
])
def test_options_that_take_away_the_per_file_line(extra, found):
    """rsync 3.2.7 (checked on the fan-out test hosts): the last --out-format/--log-format wins over the receiver's
    own, --quiet prints no line at all; --itemize-changes, --info and the others leave the lines alone."""
    assert pt.options_without_lines(extra) == found


def test_received_bytes():
    assert pt.received_bytes("Number of files: 3\nTotal bytes received: 1,234,567\n") == 1234567
    # rsync 3.2.7 with --quiet prints no statistics even with --stats (checked with the fan-out test hosts' rsync):
    # the count is unknown, not 0
    assert pt.received_bytes("rsync error") is None
    assert pt.received_bytes("") is None


def test_total_received_is_unknown_when_one_attempt_is():
    assert pt.total_received([{"bytes_received": 10}, {"bytes_received": 5}]) == 15
    assert pt.total_received([]) == 0
    assert pt.total_received([{"bytes_received": 10}, {"bytes_received": None}]) is None


def _serving(files):
    """A transfer that writes ``files`` (``{source: {path: bytes}}``) like rsync would, and records the calls."""
    calls = []

    def transfer(staging, source, paths):
        calls.append((source["name"], list(paths)))
        served = files.get(source["name"], {})
        for rel in paths:
            if rel in served:
                path = os.path.join(staging, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as handle:
                    handle.write(served[rel])
        return (0, "Total bytes received: %d" % sum(len(served.get(p, b"")) for p in paths)) \
            if all(len(served.get(p, b"")) >= len(FILES[p]) for p in paths) else (23, "rsync error: some files could not be transferred")
    return transfer, calls


def _receiver(tmp_path, files):
    transfer, calls = _serving(files)
    staging = str(tmp_path)
    return pt.Receiver(staging, entries(), lambda src, paths, _on_line: transfer(staging, src, paths)), calls


def test_bad_bytes_are_rejected_and_fetched_from_the_next_peer(tmp_path):
    evil = dict(FILES, **{"sub/model.safetensors": b"X" + FILES["sub/model.safetensors"][1:]})
    receiver, calls = _receiver(tmp_path, {"p2": evil, "p1": FILES})
    missing = receiver.run([{"name": "p2"}, {"name": "p1"}])
    assert missing == []
    assert calls == [("p2", ["config.json", "sub/model.safetensors"]), ("p1", ["sub/model.safetensors"])]
    assert [(r["path"], r["source"]) for r in receiver.rejected] == [("sub/model.safetensors", "p2")]
    assert "expected" in receiver.rejected[0]["reason"]
    assert sorted(e["path"] for e in receiver.good) == ["config.json", "sub/model.safetensors"]
    assert all("mtime_ns" in e for e in receiver.good)
    with open(str(tmp_path / "sub/model.safetensors"), "rb") as handle:
        assert handle.read() == FILES["sub/model.safetensors"]


def test_oversized_file_is_rejected(tmp_path):
    receiver, _calls = _receiver(tmp_path, {"p1": dict(FILES, **{"config.json": FILES["config.json"] + b"!"})})
    assert receiver.run([{"name": "p1"}]) == ["config.json"]
    assert receiver.rejected[0]["path"] == "config.json" and not (tmp_path / "config.json").exists()


def test_partial_files_are_kept_for_the_next_source_and_failures_reported(tmp_path):
    part = FILES["sub/model.safetensors"][:1000]
    receiver, _calls = _receiver(tmp_path, {"p1": {"config.json": FILES["config.json"],
                                                   "sub/model.safetensors": part}})
    missing = receiver.run([{"name": "p1"}])
    assert missing == ["sub/model.safetensors"]
    attempt = receiver.attempts[0]
    assert attempt["rc"] == 23 and attempt["partial"] == ["sub/model.safetensors"] and "rsync error" in attempt["error"]
    assert (tmp_path / "sub/model.safetensors").stat().st_size == 1000    # kept: the next transfer resumes from it
    assert receiver.rejected == []


def test_files_from_is_nul_separated(tmp_path):
    path = str(tmp_path / "list")
    pt.write_files_from(path, ["a b", "c\nd"])
    with open(path, "rb") as handle:
        assert handle.read() == b"a b\0c\nd\0"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKWL33sx4iz llmops-fanout@gpu02"


def test_authorised_transfer_keys_are_restricted_and_withdrawn():
    line = pt.authorized_line("/usr/bin/rrsync", "/opt/llmops/models/a b", KEY + "\n")
    assert line == 'restrict,command="/usr/bin/rrsync -ro \'/opt/llmops/models/a b\'" ' + KEY
    with pytest.raises(pt.PeerError, match="not a transfer key"):
        pt.authorized_line("/usr/bin/rrsync", "/m", "ssh-ed25519 AAAA root@admin")     # not one of ours
    with pytest.raises(pt.PeerError, match="not a transfer key"):
        pt.authorized_line("/usr/bin/rrsync", "/m", 'command="sh" ' + KEY)
    other = "ssh-ed25519 AAAAother admin@laptop"
    text, changed = pt.updated_authorized_keys(other + "\n", add=[line])
    assert changed and text == other + "\n" + line + "\n"
    assert pt.updated_authorized_keys(text, add=[line]) == (text, False)
    # withdraw: every transfer key of this directory goes, nothing else
    foreign = pt.authorized_line("/usr/bin/rrsync", "/opt/other", KEY)
    text, _changed = pt.updated_authorized_keys(text, add=[foreign])
    left, changed = pt.updated_authorized_keys(
        text, remove=lambda ln: pt.is_transfer_line(ln, "/usr/bin/rrsync", "/opt/llmops/models/a b"))
    assert changed and left == other + "\n" + foreign + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Hashing while the bytes arrive
# ---------------------------------------------------------------------------------------------------------------
def test_rsync_is_asked_for_a_line_after_each_file():
    argv = pt.rsync_argv(pt.check_source({"host": "10.0.0.1"}), "/d", "/l", "/k", "/kh")
    # %b is a post-transfer escape: the receiver prints the line once the file's bytes are written
    assert "--out-format=llmops-received %b %n" in argv


@pytest.mark.parametrize("line, path", [
    ("llmops-received 5000 sub/model.safetensors\n", "sub/model.safetensors"),
    ("llmops-received 0 a b.json\n", "a b.json"),
    ("llmops-received 7 caf\\#303\\#251.txt\n", u"caf\u00e9.txt"),       # non-ASCII, escaped by rsync
    ("llmops-received 7 a\\#012b\n", "a\nb"),
    ("llmops-received 7 a\\#134#012b\n", "a\\#012b"),                   # a literal backslash-hash, escaped
    ("sub/\n", None),
    ("Total bytes received: 12\n", None),
    ("llmops-received x a\n", None),
])
def test_reported_path(line, path):
    assert pt.reported_path(line) == path


def test_run_transfer_hands_over_each_line_while_the_command_runs(tmp_path):
    flag = tmp_path / "seen"
    script = ("import os, sys, time\n"
              "print('llmops-received 3 first', flush=True)\n"
              "deadline = time.time() + 60\n"
              "while not os.path.exists(%r) and time.time() < deadline:\n"
              "    time.sleep(0.01)\n"
              "print('llmops-received 3 second' if os.path.exists(%r) else 'never streamed', flush=True)\n"
              "print('Total bytes received: 6', file=sys.stderr)\n" % (str(flag), str(flag)))
    lines = []

    def on_line(line):
        lines.append(pt.reported_path(line))
        flag.write_text("x")

    rc, output = pt.run_transfer([sys.executable, "-c", script], on_line=on_line)
    # the second line is only printed once the first one was handed over: the output is read as it comes
    assert rc == 0 and lines == ["first", "second"]
    assert pt.received_bytes(output) == 6 and "llmops-received" not in output


def _reporting(tmp_path, plan):
    """A transfer that writes files like rsync (``plan``: ``[(path, bytes, times reported)]`` in order) and prints
    rsync's per-file line after each, then runs ``after`` (a hook on the staging directory)."""
    def transfer(source, paths, on_line):
        for rel, data, reported in plan:
            if rel not in paths:
                continue
            path = os.path.join(str(tmp_path), rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "r+b" if os.path.exists(path) else "wb") as handle:
                handle.write(data)
                handle.truncate(len(data))
            for _time in range(reported):
                on_line("llmops-received %d %s\n" % (len(data), rel))
        after = source.get("after")
        if after:
            after(str(tmp_path))
        return 0, "Total bytes received: 1\n"
    return transfer


def test_a_resumed_file_reported_once_is_hashed_on_its_line(tmp_path):
    big = "sub/model.safetensors"
    os.makedirs(str(tmp_path / "sub"))
    (tmp_path / big).write_bytes(FILES[big][:1000])              # a partial file from a killed transfer
    receiver = pt.Receiver(str(tmp_path), entries(), _reporting(tmp_path, [
        ("config.json", FILES["config.json"], 0),                 # not reported: hashed after rsync exited
        (big, FILES[big], 1)]))
    assert receiver.run([{"name": "p1"}]) == []
    attempt = receiver.attempts[0]
    assert attempt["verified"] == 2 and attempt["hashed_while_receiving"] == 1
    assert sorted(e["path"] for e in receiver.good) == ["config.json", big]


def test_a_file_reported_twice_is_hashed_again_after_the_transfer(tmp_path):
    big = "sub/model.safetensors"
    os.makedirs(str(tmp_path / "sub"))
    (tmp_path / big).write_bytes(FILES[big][:10])
    receiver = pt.Receiver(str(tmp_path), entries(), _reporting(tmp_path, [
        ("config.json", FILES["config.json"], 1), (big, FILES[big], 2)]))     # rsync's second pass (redo)
    assert receiver.run([{"name": "p1"}]) == []
    assert receiver.attempts[0]["verified"] == 2
    assert receiver.attempts[0]["hashed_while_receiving"] == 1    # config.json only: the redone file never counts early


def test_a_file_replaced_after_its_line_is_judged_by_its_final_bytes(tmp_path):
    big = "sub/model.safetensors"
    os.makedirs(str(tmp_path / "sub"))
    (tmp_path / big).write_bytes(FILES[big][:10])

    def replace(root):
        # good bytes reported, then another file of the same size put at the name: the early digest must not count
        path = os.path.join(root, big)
        os.unlink(path)
        with open(path, "wb") as handle:
            handle.write(b"Z" * len(FILES[big]))

    receiver = pt.Receiver(str(tmp_path), entries(), _reporting(tmp_path, [
        ("config.json", FILES["config.json"], 1), (big, FILES[big], 1)]))
    assert receiver.run([{"name": "p1", "after": replace}, {"name": "p2"}]) == []
    assert [(r["path"], r["source"]) for r in receiver.rejected] == [(big, "p1")]
    assert [a["source"] for a in receiver.attempts] == ["p1", "p2"] and receiver.attempts[1]["files"] == 1
    assert (tmp_path / big).read_bytes() == FILES[big]


def test_a_link_at_a_reported_name_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.write_bytes(FILES["config.json"])
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "config.json").write_bytes(b"{")
    hasher = pt.ArrivalHasher(str(staging), entries()[:1], [], workers=1).start()
    (staging / "config.json").unlink()
    os.symlink(str(outside), str(staging / "config.json"))
    hasher.line("llmops-received 8 config.json\n")
    assert hasher.finish() == {}
