# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_bundle end to end: a hub download exported in parts, carried, imported with full verification into the same
marker a hub download writes (real ``ansible`` runs, the local hub, the real SDK for the first download)."""
import hashlib
import io
import json
import os
import subprocess
import tarfile

import pytest

from test_download_module import LLAMA, MARKER, all_files, download, run_module

pytestmark = pytest.mark.slow


def bundle(**args):
    return run_module("model_bundle", args, check=args.pop("_check", False))


def marker_of(model_dir):
    with open(os.path.join(str(model_dir), MARKER)) as handle:
        return json.load(handle)


@pytest.fixture
def downloaded(local_hub, tmp_path):
    source = tmp_path / "hub-side" / "Llama"
    res = download(local_hub, source, LLAMA)
    assert res["complete"], res.get("msg")
    return source


def test_export_in_parts_import_verified_same_marker(downloaded, tmp_path):
    media = tmp_path / "usb"
    media.mkdir()
    prefix = str(media / "llama")
    res = bundle(state="export", path=str(downloaded), bundle=prefix, part_size="1MiB", _check=True)
    assert res["changed"] and os.listdir(str(media)) == []
    res = bundle(state="export", path=str(downloaded), bundle=prefix, part_size="1MiB")
    assert res["changed"] and res["model_id"] == LLAMA, res.get("msg")
    names = sorted(os.listdir(str(media)))
    assert names == sorted(["llama.json"] + ["llama.tar.part%04d" % i for i in range(len(res["parts"]))])
    assert all(p["size"] == 1024 * 1024 for p in res["parts"][:-1])
    assert sum(p["size"] for p in res["parts"]) > res["bytes_total"] > 3 * 1024 * 1024
    # a rerun of the export changes nothing; any tar lists the bundle
    assert bundle(state="export", path=str(downloaded), bundle=prefix, part_size="1MiB")["changed"] is False
    listing = subprocess.run("cat %s.tar.part* | tar -tf -" % prefix, shell=True, capture_output=True, text=True,
                             check=True).stdout.split()
    assert listing[0] == "llmops-bundle.json" and "config.json" in listing

    target = tmp_path / "air-gapped" / "Llama"
    res = bundle(state="import", path=str(target), bundle=prefix, model_id=LLAMA, _check=True)
    assert res["changed"] and not target.exists()
    res = bundle(state="import", path=str(target), bundle=prefix, model_id=LLAMA, mode="0640", dir_mode="0750")
    assert res["changed"] and res["files_written"] == res["files"], res.get("msg")
    hub_marker, imported = marker_of(downloaded), marker_of(target)
    for key in ("format", "model_id", "revision", "revision_requested", "endpoint", "include", "exclude",
                "files_digest", "files_count", "bytes_total"):
        assert imported[key] == hub_marker[key], key
    assert all_files(target) == all_files(downloaded)
    assert oct(os.stat(str(target / "config.json")).st_mode & 0o777) == "0o640"
    assert not [n for n in os.listdir(str(target.parent)) if n.endswith(".llmops-staging")]
    res = run_module("model_verify", {"path": str(target), "verify": "full"})
    assert res["valid"], res.get("msg")
    # offline reruns of the download module accept it as their own
    res = run_module("modelscope_download", {"model_id": LLAMA, "model_dir": str(target), "offline": True,
                                             "verify": "full", "endpoint": "http://127.0.0.1:9"})
    assert res.get("failed") is not True and res["complete"], res.get("msg")
    # and a rerun of the import changes nothing
    res = bundle(state="import", path=str(target), bundle=prefix, model_id=LLAMA, mode="0640", dir_mode="0750")
    assert res["changed"] is False and res["files_written"] == 0


def export_in_1mib_parts(downloaded, tmp_path):
    """The downloaded model exported to ``tmp_path/usb/llama.*`` in 1 MiB parts: ``(media, prefix, result)``."""
    media = tmp_path / "usb"
    media.mkdir()
    prefix = str(media / "llama")
    res = bundle(state="export", path=str(downloaded), bundle=prefix, part_size="1MiB")
    assert res["changed"], res.get("msg")
    return media, prefix, res


def test_damaged_or_incomplete_parts_are_refused_and_nothing_changes(downloaded, tmp_path):
    media, prefix, res = export_in_1mib_parts(downloaded, tmp_path)
    assert all(set(p) == {"name", "size"} for p in res["parts"])     # no second hash of the parts
    sidecar = json.loads((media / "llama.json").read_text())
    assert len(sidecar["manifest_sha256"]) == 64
    # one flipped byte in the middle of the largest file's data, wherever tar puts it
    with tarfile.open(fileobj=io.BytesIO(b"".join((media / p["name"]).read_bytes() for p in res["parts"]))) as tar:
        largest = max(tar.getmembers(), key=lambda m: m.size)
    at = largest.offset_data + largest.size // 2
    index = at // (1024 * 1024)
    part = media / res["parts"][index]["name"]
    data = bytearray(part.read_bytes())
    data[at % (1024 * 1024)] ^= 0x01
    part.write_bytes(bytes(data))
    target = tmp_path / "air-gapped" / "Llama"
    res = bundle(state="import", path=str(target), bundle=prefix)
    assert res["failed"] and "nothing was put into" in res["msg"], res["msg"]
    assert "%s does not match its sha256" % largest.name in res["msg"] and part.name in res["msg"], res["msg"]
    assert not (target / MARKER).exists() and all_files(target) == []

    part.write_bytes(bytes(data[:1000]))                  # copied incompletely
    res = bundle(state="import", path=str(target), bundle=prefix)
    assert res["failed"] and "copied incompletely" in res["msg"]


def test_export_refuses_a_directory_without_a_valid_marker(downloaded, tmp_path):
    os.unlink(str(downloaded / MARKER))
    res = bundle(state="export", path=str(downloaded), bundle=str(tmp_path / "b"))
    assert res["failed"] and "no completion marker" in res["msg"]
    assert not [n for n in os.listdir(str(tmp_path)) if n.startswith("b")]


def test_sidecars_name_the_manifest_and_older_ones_are_still_checked(downloaded, tmp_path):
    media, prefix, res = export_in_1mib_parts(downloaded, tmp_path)
    sidecar_path = media / "llama.json"
    sidecar = json.loads(sidecar_path.read_text())
    target = tmp_path / "air-gapped" / "Llama"

    # a sidecar whose manifest digest is not the bundle's: refused before anything is written
    sidecar_path.write_text(json.dumps(dict(sidecar, manifest_sha256="0" * 64)))
    res = bundle(state="import", path=str(target), bundle=prefix)
    assert res["failed"] and "does not match the manifest_sha256" in res["msg"], res["msg"]
    assert all_files(target) == []

    # a sidecar of the earlier format (a sha256 per part): still imported, its part digests still checked
    digests = [hashlib.sha256((media / p["name"]).read_bytes()).hexdigest() for p in sidecar["parts"]]
    old = dict((k, v) for k, v in sidecar.items() if k != "manifest_sha256")
    old.update(format="llmops.deploy/model-bundle-parts/v1",
               parts=[dict(p, sha256=d) for p, d in zip(sidecar["parts"], digests)])
    old["parts"][-1]["sha256"] = "f" * 64
    sidecar_path.write_text(json.dumps(old))
    res = bundle(state="import", path=str(target), bundle=prefix)
    assert res["failed"] and "part(s) %s do not match" % old["parts"][-1]["name"] in res["msg"], res["msg"]
    assert not (target / MARKER).exists() and all_files(target) == []
    old["parts"][-1]["sha256"] = digests[-1]
    sidecar_path.write_text(json.dumps(old))
    res = bundle(state="import", path=str(target), bundle=prefix, model_id=LLAMA)
    assert res["changed"] and res["files_written"] == res["files"], res.get("msg")
    assert marker_of(target)["files_digest"] == marker_of(downloaded)["files_digest"]

    # an export over an older sidecar writes the current format
    res = bundle(state="export", path=str(downloaded), bundle=prefix, part_size="1MiB")
    assert res["changed"] and json.loads(sidecar_path.read_text())["format"] == sidecar["format"]
