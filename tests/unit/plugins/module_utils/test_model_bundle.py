# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_bundle: manifest checks, parts, export of a marked directory and a strict, verified import in which every
byte is read once and hashed once, and a damaged byte is refused wherever it is."""

import hashlib
import io
import json
import os
import tarfile

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import marker as mk
from ansible_collections.llmops.deploy.plugins.module_utils import model_bundle as mb

FILES = {"config.json": b'{"model_type": "qwen2"}', "model.safetensors": os.urandom(300000),
         "sub/tokenizer.json": b"{}"}


def make_model(root, files=None):
    files = FILES if files is None else files
    entries = []
    for rel, data in files.items():
        path = os.path.join(str(root), rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
        entries.append({"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                        "mtime_ns": os.stat(path).st_mtime_ns})
    marker = mk.build_marker("o/n", "master", "c0ffee", "http://hub", [], [], entries, "0.1.0")
    mk.write_marker(str(root), marker)
    return marker


def export(tmp_path, part_size=None, chunk=mb.CHUNK):
    """``(manifest, parts, manifest_sha256)`` of a bundle of FILES written into ``tmp_path``."""
    src = tmp_path / "src"
    marker = make_model(src)
    manifest = mb.bundle_manifest(marker)
    writer = mb.PartWriter(str(tmp_path / "b.tar"), part_size)
    manifest_sha256 = mb.write_bundle(str(src), manifest, writer, chunk=chunk)
    return manifest, writer.commit(), manifest_sha256


def read_parts(tmp_path, parts):
    return b"".join((tmp_path / p["name"]).read_bytes() for p in parts)


def test_parts_hold_the_whole_stream(tmp_path):
    # a buffer smaller than the big file: it is read, hashed and written in many rounds through the pipeline
    manifest, parts, manifest_sha256 = export(tmp_path, part_size=100000, chunk=4096)
    assert len(parts) > 3 and all(p["size"] == 100000 for p in parts[:-1])
    whole = read_parts(tmp_path, parts)
    assert sum(p["size"] for p in parts) == len(whole) and len(whole) % mb.RECORD == 0
    with tarfile.open(fileobj=io.BytesIO(whole)) as tar:      # any tar reads a bundle
        names = tar.getnames()
        assert tar.extractfile("model.safetensors").read() == FILES["model.safetensors"]
        assert hashlib.sha256(tar.extractfile(mb.MANIFEST_MEMBER).read()).hexdigest() == manifest_sha256
    assert names == [mb.MANIFEST_MEMBER] + [f["path"] for f in manifest["files"]]
    assert not [n for n in os.listdir(str(tmp_path)) if ".tmp-" in n]


def opened(tmp_path):
    """A bundle exported in parts of 70,000 bytes, opened for import past its manifest (checked against the sidecar's
    sha256) and an empty staging directory: ``(manifest, parts, reader, tar, staging)``."""
    manifest, parts, manifest_sha256 = export(tmp_path, part_size=70000)
    reader = mb.PartReader([str(tmp_path / p["name"]) for p in parts])
    tar = mb.TarReader(reader)
    assert mb.read_manifest(tar, sha256=manifest_sha256) == manifest
    staging = tmp_path / "staging"
    staging.mkdir()
    return manifest, parts, reader, tar, staging


@pytest.mark.parametrize("chunk, workers", [(mb.CHUNK, 1), (1000, 1), (1000, 3)])
def test_import_verifies_every_file_and_reads_each_part_once(tmp_path, chunk, workers):
    manifest, parts, reader, tar, staging = opened(tmp_path)
    good = mb.extract_bundle(tar, manifest, str(staging), chunk=chunk, workers=workers)
    assert tar.finish() > 0
    assert sorted(g["path"] for g in good) == sorted(FILES)
    for rel, data in FILES.items():
        assert (staging / rel).read_bytes() == data
    # every byte of every part read once, none twice (headers in order, the files' data at their offsets); no part
    # digest computed (only v1 sidecars ask for them)
    assert reader.position == tar.position == reader.bytes_read == sum(p["size"] for p in parts)
    assert reader.digests == []


def test_files_already_in_place_are_passed_unread_and_the_others_checked(tmp_path):
    manifest, parts, reader, tar, staging = opened(tmp_path)
    good = mb.extract_bundle(tar, manifest, str(staging), only={"config.json", "sub/tokenizer.json"}, workers=2)
    tar.finish()
    assert sorted(g["path"] for g in good) == ["config.json", "sub/tokenizer.json"]
    assert not (staging / "model.safetensors").exists()
    total = sum(p["size"] for p in parts)
    assert reader.position == total and reader.bytes_read == total - len(FILES["model.safetensors"])


def test_a_part_replaced_after_its_headers_were_read_is_refused(tmp_path):
    manifest, parts, _sha = export(tmp_path, part_size=70000)
    reader = mb.PartReader([str(tmp_path / p["name"]) for p in parts])
    tar = mb.TarReader(reader)
    mb.read_manifest(tar)
    while tar.next() is not None:          # every header read, the data passed
        pass
    _header, data_at, _size = offsets(tmp_path, parts)["model.safetensors"]
    files = mb.PartFiles(reader)
    view = memoryview(bytearray(100))
    assert files.readinto_at(view, data_at) == 100 and bytes(view) == FILES["model.safetensors"][:100]
    files.close()
    second = tmp_path / parts[1]["name"]
    copy = tmp_path / "copy"
    copy.write_bytes(second.read_bytes())
    os.replace(str(copy), str(second))      # same bytes, another file
    with pytest.raises(mb.BundleError, match="was replaced while the bundle was read"):
        files.readinto_at(view, 70000 + 5)
    reader.close()


def test_bytes_added_to_a_part_after_it_was_opened_are_not_read(tmp_path):
    # the stream is the parts at the sizes they had when opened (the module checks those against the sidecar first)
    manifest, parts, reader, tar, staging = opened(tmp_path)
    assert sorted(g["path"] for g in mb.extract_bundle(tar, manifest, str(staging))) == sorted(FILES)
    assert reader.index == len(parts) - 1                  # the last part is open: its end of archive was read
    with open(str(tmp_path / parts[-1]["name"]), "ab") as handle:
        handle.write(b"\xff" * 1000)
    tar.finish()
    assert reader.position == reader.bytes_read == sum(p["size"] for p in parts)


def test_parts_that_end_in_the_middle_of_a_file_are_refused(tmp_path):
    manifest, parts, manifest_sha256 = export(tmp_path, part_size=70000)
    exc = import_parts(tmp_path, parts[:3], manifest, manifest_sha256)
    assert exc is not None and "truncated" in exc.message
    assert os.listdir(str(tmp_path / "staging")) == []


def test_part_digests_of_older_sidecars_are_computed_on_request(tmp_path):
    _manifest, parts, _sha = export(tmp_path, part_size=70000)
    paths = [str(tmp_path / p["name"]) for p in parts]
    reader = mb.PartReader(paths, part_digests=True)
    while reader.read(50000):
        pass
    assert reader.digests == [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths]


def import_parts(tmp_path, parts, manifest, manifest_sha256=None):
    """Import the bundle ``parts`` into a fresh staging directory: the BundleError raised (None: accepted)."""
    staging = tmp_path / "staging"
    staging.mkdir(exist_ok=True)
    reader = mb.PartReader([str(tmp_path / p["name"]) for p in parts])
    try:
        tar = mb.TarReader(reader)
        mb.read_manifest(tar, sha256=manifest_sha256)
        mb.extract_bundle(tar, manifest, str(staging))
        tar.finish()
    except mb.BundleError as exc:
        return exc
    finally:
        reader.close()
    return None


def flip(tmp_path, parts, offset):
    """Flip one byte at ``offset`` of the whole stream, in whichever part holds it."""
    for part in parts:
        if offset < part["size"]:
            path = tmp_path / part["name"]
            data = bytearray(path.read_bytes())
            data[offset] ^= 0x01
            path.write_bytes(bytes(data))
            return part["name"]
        offset -= part["size"]
    raise AssertionError("offset past the end")


def offsets(tmp_path, parts):
    """``{name: (header offset, data offset, size)}`` of the bundle's members, as tarfile sees them."""
    with tarfile.open(fileobj=io.BytesIO(read_parts(tmp_path, parts))) as tar:
        return dict((m.name, (m.offset, m.offset_data, m.size)) for m in tar.getmembers())


def test_a_flipped_byte_inside_a_file_is_refused_naming_the_file_and_its_part(tmp_path):
    manifest, parts, manifest_sha256 = export(tmp_path, part_size=70000)
    _header, data_at, size = offsets(tmp_path, parts)["model.safetensors"]
    part = flip(tmp_path, parts, data_at + size // 2)
    exc = import_parts(tmp_path, parts, manifest, manifest_sha256)
    starts = [sum(p["size"] for p in parts[:i]) for i in range(len(parts))]
    holding = [p["name"] for p, first in zip(parts, starts) if first < data_at + size and first + p["size"] > data_at]
    assert part in holding and len(holding) == 5                # 300000 bytes across parts of 70000
    assert exc is not None and exc.problems == [
        "model.safetensors does not match its sha256 (300000 bytes read in %s)" % ", ".join(holding)]
    # the bad file is not left in the staging directory; the module then installs nothing
    assert not (tmp_path / "staging" / "model.safetensors").exists()


@pytest.mark.parametrize("where, fragment", [
    ("header", "damaged tar header"),
    ("padding", "padding after config.json holds bytes that are not zeros"),
    ("end", "after its end of archive"),
    ("manifest", "does not match the manifest_sha256"),
])
def test_a_flipped_byte_outside_the_files_is_refused_too(tmp_path, where, fragment):
    manifest, parts, manifest_sha256 = export(tmp_path, part_size=70000)
    members = offsets(tmp_path, parts)
    header, data_at, size = members["config.json"]
    total = sum(p["size"] for p in parts)
    at = {"header": header + 100, "padding": data_at + size + 3, "end": total - 7,
          "manifest": members[mb.MANIFEST_MEMBER][1] + 20}[where]
    part = flip(tmp_path, parts, at)
    exc = import_parts(tmp_path, parts, manifest, manifest_sha256)
    assert exc is not None and fragment in exc.message, exc
    if where != "manifest":
        assert part in exc.message


def test_export_refuses_a_file_that_no_longer_matches_its_marker(tmp_path):
    src = tmp_path / "src"
    marker = make_model(src)
    with open(str(src / "model.safetensors"), "r+b") as handle:
        handle.write(b"X")
    writer = mb.PartWriter(str(tmp_path / "b.tar"))
    with pytest.raises(mb.BundleError, match="model.safetensors") as info:
        mb.write_bundle(str(src), mb.bundle_manifest(marker), writer, chunk=4096, workers=2)
    assert info.value.problems == ["model.safetensors"]
    writer.abort()
    assert os.listdir(str(tmp_path)) == ["src"]


def tar_with(members, manifest):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo(mb.MANIFEST_MEMBER)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def member(name, data=None, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if data is not None else 0
    return info, data


@pytest.mark.parametrize("members, fragment", [
    ([member("config.json", b"x" * 23)], "config.json does not match its sha256"),
    ([member("config.json", kind=tarfile.SYMTYPE, linkname="/etc/passwd")], "config.json is not a regular file"),
    ([member("../escape", b"x")], "unexpected member '../escape'"),
    ([member("config.json", b"{}")], "config.json has 2 bytes in the bundle"),
])
def test_import_refuses_links_unknown_names_and_bad_bytes(tmp_path, members, fragment):
    manifest = mb.bundle_manifest(make_model(tmp_path / "src", {"config.json": b'{"model_type": "qwen2"}'}))
    staging = tmp_path / "staging"
    staging.mkdir()
    tar = mb.TarReader(tar_with(members, manifest))
    mb.read_manifest(tar)
    with pytest.raises(mb.BundleError) as info:
        mb.extract_bundle(tar, manifest, str(staging))
    assert fragment in info.value.message
    assert os.listdir(str(staging)) == [] and not (tmp_path / "escape").exists()


@pytest.mark.parametrize("mutate, fragment", [
    (lambda m: m["files"].append({"path": "../x", "size": 1, "sha256": "0" * 64}), "unsafe path"),
    (lambda m: m["files"][0].update(sha256="XYZ"), "no valid sha256"),
    (lambda m: m.update(format="other"), "unknown bundle format"),
    (lambda m: m["files"][0].update(size=5), "files_digest does not match"),
    (lambda m: m["files"].append({"path": "config.json/x", "size": 1, "sha256": "0" * 64}), "as the directory of"),
])
def test_manifest_problems(tmp_path, mutate, fragment):
    manifest = mb.bundle_manifest(make_model(tmp_path / "src", {"config.json": b"{}"}))
    mutate(manifest)
    assert any(fragment in p for p in mb.manifest_problems(manifest)), mb.manifest_problems(manifest)


def test_long_and_unicode_names_and_what_tar_writes_are_read(tmp_path):
    files = {"d/" + "x" * 150 + ".json": b"{}", "模型/权重.safetensors": b"W" * 1000}
    src = tmp_path / "src"
    marker = make_model(src, files)
    manifest = mb.bundle_manifest(marker)
    buf = io.BytesIO()
    mb.write_bundle(str(src), manifest, buf)
    buf.seek(0)
    tar = mb.TarReader(buf)
    assert mb.read_manifest(tar) == manifest
    staging = tmp_path / "staging"
    staging.mkdir()
    assert sorted(g["path"] for g in mb.extract_bundle(tar, manifest, str(staging))) == sorted(files)
    assert (staging / "模型" / "权重.safetensors").read_bytes() == b"W" * 1000


def test_truncated_bundle_is_refused(tmp_path):
    manifest, parts, _sha = export(tmp_path)
    data = open(str(tmp_path / parts[0]["name"]), "rb").read()
    tar = mb.TarReader(io.BytesIO(data[:len(data) // 2]))
    mb.read_manifest(tar)
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(mb.BundleError, match="truncated"):
        mb.extract_bundle(tar, manifest, str(staging))


def test_a_part_that_cannot_be_synced_fails_the_commit_and_leaves_nothing(tmp_path, monkeypatch):
    src = tmp_path / "src"
    manifest = mb.bundle_manifest(make_model(src))
    media = tmp_path / "media"
    media.mkdir()
    writer = mb.PartWriter(str(media / "b.tar"), 100000)
    mb.write_bundle(str(src), manifest, writer)

    def no_space(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mb.os, "fsync", no_space)     # a full or removed medium, which cannot be made here
    with pytest.raises(OSError, match="No space left"):
        writer.commit()
    writer.abort()
    assert os.listdir(str(media)) == []
