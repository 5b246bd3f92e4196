# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_dir_check: a model directory checked on its own (config, weights, shard index, safetensors headers,
completion marker); the one listing, which follows no link below the directory, even when one appears between the
listing and the read; the local source of modelscope_info(path=)."""

import hashlib
import json
import os
import socket
import struct

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils.marker import MARKER_NAME, build_marker, write_marker
from ansible_collections.llmops.deploy.plugins.module_utils.model_dir_check import (
    ModelDir, ModelDirError, ModelDirSource, check_model_dir)
from ansible_collections.llmops.deploy.plugins.module_utils.model_metadata import collect_metadata

from model_files import entry, safetensors, write


def make_model(root, with_marker=True):
    shard1 = safetensors([("a.weight", "BF16", [4, 4]), ("b.weight", "BF16", [4])])
    shard2 = safetensors([("c.weight", "BF16", [8, 4])])
    index = {"metadata": {"total_size": 32 + 8 + 64},
             "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00001-of-00002.safetensors",
                            "c.weight": "model-00002-of-00002.safetensors"}}
    data = {"config.json": b'{"architectures": ["X"], "auto_map": {"AutoModel": "modeling_x.XModel"}}',
            "model-00001-of-00002.safetensors": shard1, "model-00002-of-00002.safetensors": shard2,
            "model.safetensors.index.json": json.dumps(index).encode(), "modeling_x.py": b"print(1)"}
    files = []
    for rel, blob in data.items():
        path = write(root, rel, blob)
        files.append(dict(entry(rel, blob), mtime_ns=os.stat(path).st_mtime_ns))
    if with_marker:
        write_marker(str(root), build_marker("o/n", "master", "abc", "http://h", [], [], files, "0"))
    return data


def test_good_model_dir(tmp_path):
    make_model(tmp_path)
    report = check_model_dir(str(tmp_path), verify="full")
    assert report["problems"] == [] and report["warnings"] == []
    facts = report["facts"]
    assert facts["marker"] == "valid" and facts["model_id"] == "o/n" and facts["revision"] == "abc"
    assert facts["summary"]["params_total"] == 16 + 4 + 32 and facts["summary"]["precision"] == "bf16"
    assert facts["weights"]["safetensors"] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert facts["code_files"] == ["modeling_x.py"] and facts["remote_code"] == ["modeling_x.XModel"]
    assert facts["files"] == 5


def test_model_dir_missing_shard_and_config(tmp_path):
    make_model(tmp_path, with_marker=False)
    os.unlink(os.path.join(str(tmp_path), "model-00002-of-00002.safetensors"))
    os.unlink(os.path.join(str(tmp_path), "config.json"))
    problems = check_model_dir(str(tmp_path), verify="none")["problems"]
    assert "config.json is missing" in problems
    assert ("model.safetensors.index.json names shard model-00002-of-00002.safetensors, which is not among the "
            "model's files") in problems


def test_model_dir_truncated_shard(tmp_path):
    data = make_model(tmp_path)
    write(tmp_path, "model-00002-of-00002.safetensors", data["model-00002-of-00002.safetensors"][:-10])
    problems = check_model_dir(str(tmp_path), verify="quick")["problems"]
    assert any(p.startswith("model-00002-of-00002.safetensors:") and "truncated" in p for p in problems)
    size = len(data["model-00002-of-00002.safetensors"])
    assert "model-00002-of-00002.safetensors has %d bytes, expected %d" % (size - 10, size) in problems


def test_model_dir_index_names_a_tensor_the_shard_lacks(tmp_path):
    make_model(tmp_path, with_marker=False)
    write(tmp_path, "model-00002-of-00002.safetensors", safetensors([("other", "BF16", [8, 4])]))
    problems = check_model_dir(str(tmp_path), verify="none")["problems"]
    assert any("lacks 1 tensor(s) the index names, e.g. c.weight" in p for p in problems)


def test_model_dir_stale_total_size_is_a_warning(tmp_path):
    make_model(tmp_path, with_marker=False)
    index = json.loads(open(os.path.join(str(tmp_path), "model.safetensors.index.json")).read())
    index["metadata"]["total_size"] = 1
    write(tmp_path, "model.safetensors.index.json", json.dumps(index).encode())
    report = check_model_dir(str(tmp_path), verify="none")
    assert report["problems"] == [] and "total_size is 1" in report["warnings"][0]


def test_model_dir_without_weights_or_marker(tmp_path):
    write(tmp_path, "config.json", b"{}")
    write(tmp_path, "training_args.bin", b"x")
    write(tmp_path, "x.incomplete", b"x")
    report = check_model_dir(str(tmp_path), verify="quick")
    assert any(p.startswith("no weights found") for p in report["problems"])
    assert any("no completion marker" in p for p in report["problems"])
    assert report["facts"]["marker"] == "absent"
    assert report["warnings"] == ["partial downloads present: x.incomplete"]
    assert report["facts"]["pickle_files"] == ["training_args.bin"]


def test_model_dir_marker_mismatch_full(tmp_path):
    make_model(tmp_path)
    path = os.path.join(str(tmp_path), "modeling_x.py")
    st = os.stat(path)
    write(tmp_path, "modeling_x.py", b"print(2)")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert check_model_dir(str(tmp_path), verify="quick")["problems"] == []
    report = check_model_dir(str(tmp_path), verify="full")
    assert report["problems"] == ["modeling_x.py does not match its sha256"]
    assert report["facts"]["marker"] == "mismatch"


def test_model_dir_not_a_directory(tmp_path):
    assert check_model_dir(str(tmp_path / "nope"))["problems"] == ["%s is not a directory" % (tmp_path / "nope")]


def test_gguf_counts_as_weights(tmp_path):
    write(tmp_path, "config.json", b"{}")
    write(tmp_path, "m-Q4_K_M.gguf", b"GGUF")
    report = check_model_dir(str(tmp_path), verify="none")
    assert report["problems"] == [] and report["facts"]["weights"]["gguf"] == ["m-Q4_K_M.gguf"]


# ---------------------------------------------------------------------------------------------------------------
# The one listing: nothing below the directory is followed
# ---------------------------------------------------------------------------------------------------------------
REFUSED_WARNING = "not followed or read (links and special files below the model directory are refused): "
# A valid safetensors file outside the model directory, with far more parameters than the model: were it read, the
# counts would show it.
OUTSIDE_SHARD = safetensors([("c.weight", "BF16", [1000, 1000])])


def swap_after_listing(monkeypatch, action):
    """Run ``action`` right after the real listing returns: a link planted between the listing and the reads."""
    listing = ModelDir.listing

    def racing(self):
        found = listing(self)
        action()
        return found

    monkeypatch.setattr(ModelDir, "listing", racing)


def shard_swapped_for_a_link_after_listing(tmp_path, monkeypatch):
    """A model (no marker) whose second shard becomes a link to OUTSIDE_SHARD right after the listing."""
    model = tmp_path / "model"
    make_model(model, with_marker=False)
    outside = write(tmp_path, "outside/shard.safetensors", OUTSIDE_SHARD)
    shard = str(model / "model-00002-of-00002.safetensors")

    def plant():
        os.unlink(shard)
        os.symlink(outside, shard)

    swap_after_listing(monkeypatch, plant)
    return model


def test_listing_refuses_links_and_special_files_and_names_them(tmp_path):
    model = tmp_path / "model"
    data = make_model(model)
    write(tmp_path, "outside/secret.json", b'{"secret": 1}')
    write(tmp_path, "outside/sub/f.txt", b"x")
    write(model, "sub/notes.txt", b"n")
    write(model, "model-00003-of-00003.safetensors.incomplete", b"p")
    os.symlink(str(tmp_path / "outside" / "secret.json"), str(model / "tokenizer.json"))
    os.symlink(str(tmp_path / "outside" / "sub"), str(model / "linked"))
    os.symlink("config.json", str(model / "alias.json"))          # a link inside the tree is refused too
    os.mkfifo(str(model / "pipe"))
    with ModelDir(str(model)) as tree:
        listing = tree.listing()
    assert [rel for rel, _st in listing["files"]] == sorted(list(data) + ["sub/notes.txt"])
    assert MARKER_NAME not in [rel for rel, _st in listing["files"]]
    assert dict(listing["files"])["config.json"].st_size == len(data["config.json"])
    assert listing["partials"] == ["model-00003-of-00003.safetensors.incomplete"]
    assert listing["refused"] == [{"path": "alias.json", "reason": "a symlink"},
                                  {"path": "linked", "reason": "a symlink"},
                                  {"path": "pipe", "reason": "a fifo"},
                                  {"path": "tokenizer.json", "reason": "a symlink"}]


def test_a_symlinked_config_out_of_the_tree_is_refused_and_never_read(tmp_path):
    model = tmp_path / "model"
    make_model(model, with_marker=False)
    outside = write(tmp_path, "outside/config.json", b'{"architectures": ["Outside"]}')
    os.unlink(str(model / "config.json"))
    os.symlink(outside, str(model / "config.json"))
    report = check_model_dir(str(model), verify="none")
    assert report["problems"] == ["config.json is a symlink (refused: not followed or read)"]
    assert report["facts"]["config"] is None and report["facts"]["remote_code"] == []
    assert report["facts"]["refused"] == [{"path": "config.json", "reason": "a symlink"}]
    assert report["warnings"] == [REFUSED_WARNING + "config.json (a symlink)"]
    assert report["facts"]["files"] == 4


def test_a_symlinked_shard_counts_as_missing(tmp_path):
    model = tmp_path / "model"
    make_model(model, with_marker=True)
    outside = write(tmp_path, "outside/shard.safetensors", OUTSIDE_SHARD)
    os.unlink(str(model / "model-00002-of-00002.safetensors"))
    os.symlink(outside, str(model / "model-00002-of-00002.safetensors"))
    report = check_model_dir(str(model), verify="full")
    assert ("model.safetensors.index.json names shard model-00002-of-00002.safetensors, which is not among the "
            "model's files") in report["problems"]
    assert "model-00002-of-00002.safetensors is not a regular file" in report["problems"]
    assert report["facts"]["summary"]["params_total"] == 16 + 4                  # shard 1 only
    assert report["facts"]["marker"] == "mismatch"


def test_a_shard_swapped_for_a_symlink_after_the_listing_is_not_read(tmp_path, monkeypatch):
    model = shard_swapped_for_a_link_after_listing(tmp_path, monkeypatch)
    report = check_model_dir(str(model), verify="none")
    assert "model-00002-of-00002.safetensors: a symlink, not followed" in report["problems"]
    assert report["facts"]["summary"]["params_total"] == 16 + 4                  # the outside file was not read


def test_a_directory_swapped_for_a_symlink_after_the_listing_is_not_entered(tmp_path, monkeypatch):
    model = tmp_path / "model"
    write(model, "config.json", b"{}")
    write(model, "weights/model.safetensors", safetensors([("a.weight", "BF16", [4, 4])]))
    write(tmp_path, "outside/model.safetensors", OUTSIDE_SHARD)

    def plant():
        os.rename(str(model / "weights"), str(model / "weights.old"))
        os.symlink(str(tmp_path / "outside"), str(model / "weights"))

    swap_after_listing(monkeypatch, plant)
    report = check_model_dir(str(model), verify="none")
    # The directory opened by the listing is the one read (now weights.old, inside the tree), never the link.
    assert report["problems"] == [] and report["facts"]["summary"]["params_total"] == 16


def test_full_verify_hashes_through_the_descriptor_never_a_planted_link(tmp_path, monkeypatch):
    model = tmp_path / "model"
    data = make_model(model)
    outside = write(tmp_path, "outside/modeling_x.py", data["modeling_x.py"])      # same bytes: a hash would pass
    target = str(model / "modeling_x.py")

    def plant():
        os.unlink(target)
        os.symlink(outside, target)

    swap_after_listing(monkeypatch, plant)
    report = check_model_dir(str(model), verify="full")
    assert report["problems"] == ["modeling_x.py: a symlink, not followed"]
    assert report["facts"]["marker"] == "mismatch"


def test_a_symlinked_marker_is_not_read(tmp_path):
    model = tmp_path / "model"
    make_model(model)
    os.rename(str(model / MARKER_NAME), str(tmp_path / "marker.json"))
    os.symlink(str(tmp_path / "marker.json"), str(model / MARKER_NAME))
    report = check_model_dir(str(model), verify="quick")
    assert report["facts"]["marker"] == "invalid"
    assert report["problems"] == ["%s is not a regular file (the directory was never completed by "
                                  "modelscope_download)" % MARKER_NAME]


def test_the_model_directory_itself_may_be_a_symlink(tmp_path):
    make_model(tmp_path / "real")
    os.symlink(str(tmp_path / "real"), str(tmp_path / "model"))
    report = check_model_dir(str(tmp_path / "model"), verify="full")
    assert report["problems"] == [] and report["facts"]["refused"] == []


def test_model_dir_error_names_the_entry(tmp_path):
    make_model(tmp_path / "model")
    os.mkfifo(str(tmp_path / "model" / "pipe"))
    with ModelDir(str(tmp_path / "model")) as tree:
        for rel, words in (("pipe", "pipe: a fifo, not a regular file"),
                           ("nope.json", "nope.json: cannot be opened: No such file or directory")):
            with pytest.raises(ModelDirError) as info:
                tree.read_bytes(rel, 10)
            assert info.value.message == words
        with pytest.raises(ValueError, match="larger than 10 bytes"):
            tree.read_bytes("config.json", 10)


# ---------------------------------------------------------------------------------------------------------------
# modelscope_info(path=): the directory as the local source of collect_metadata
# ---------------------------------------------------------------------------------------------------------------
def collect(path, **kwargs):
    with ModelDirSource(str(path), **kwargs) as source:
        return collect_metadata(source.load())


def test_source_reads_the_directory_without_network(tmp_path, monkeypatch):
    def no_network(*_args, **_kwargs):
        raise AssertionError("the local source must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    data = make_model(tmp_path, with_marker=False)
    write(tmp_path, "model-00001-of-00002.safetensors.incomplete", b"partial")
    result = collect(tmp_path)
    assert result["source"] == "local" and result["model_id"] is None and result["revision"] is None
    assert [f["path"] for f in result["files"]] == sorted(data) and all(f["sha256"] is None for f in result["files"])
    assert result["download_bytes"] == sum(len(d) for d in data.values()) and result["http_requests"] == 0
    assert result["params"] == 16 + 4 + 32 and result["config"]["architectures"] == ["X"]
    assert result["bytes_read"] == sum(f["header_bytes"] for f in result["safetensors_files"])
    assert result["metadata_warnings"][0] == (
        "partial downloads present (not counted): model-00001-of-00002.safetensors.incomplete")


def test_source_takes_sha256_only_from_a_marker_that_vouches(tmp_path):
    data = make_model(tmp_path)
    with open(str(tmp_path / "modeling_x.py"), "ab") as handle:
        handle.write(b"# edited\n")
    result = collect(tmp_path, model_id="o/n", revision="v9")
    sha = dict((f["path"], f["sha256"]) for f in result["files"])
    assert sha["config.json"] == hashlib.sha256(data["config.json"]).hexdigest() and sha["modeling_x.py"] is None
    assert MARKER_NAME not in sha and result["model_id"] == "o/n" and result["revision"] == "abc"
    assert "modeling_x.py changed since the completion marker verified it: sha256 not available" in (
        result["metadata_warnings"])
    assert "the directory holds revision master (abc), not v9" in result["metadata_warnings"]
    result = collect(tmp_path, model_id="acme/other")
    assert all(f["sha256"] is None for f in result["files"])
    assert "the completion marker is for o/n, not acme/other: sha256 not taken from it" in result["metadata_warnings"]


def test_source_refuses_symlinked_files_and_directories(tmp_path):
    """The old local source followed symlinked files (a Hugging Face cache snapshot read through its blobs); now a
    link is never followed: it is refused, named, and not among the model's files."""
    blobs = tmp_path / "blobs"
    make_model(blobs, with_marker=False)
    model = tmp_path / "model"
    data = make_model(model, with_marker=False)
    write(tmp_path, "outside/README.md", b"# outside\n" * 100)
    os.symlink(str(tmp_path / "outside" / "README.md"), str(model / "README.md"))
    os.symlink(str(blobs), str(model / "linked-dir"))
    result = collect(model)
    assert [f["path"] for f in result["files"]] == sorted(data)
    assert result["total_bytes"] == sum(len(d) for d in data.values())
    assert REFUSED_WARNING + "README.md (a symlink), linked-dir (a symlink)" in result["metadata_warnings"]
    with ModelDirSource(str(model)) as source:
        assert source.load().refused == [{"path": "README.md", "reason": "a symlink"},
                                         {"path": "linked-dir", "reason": "a symlink"}]


def test_source_refuses_a_shard_swapped_for_a_symlink_after_the_listing(tmp_path, monkeypatch):
    model = shard_swapped_for_a_link_after_listing(tmp_path, monkeypatch)
    with pytest.raises(ModelDirError) as info:
        collect(model)
    assert info.value.message == "model-00002-of-00002.safetensors: cannot be read: a symlink, not followed"


@pytest.mark.parametrize("make, words", [
    (lambda p: None, "No such file or directory"),
    (lambda p: p.write_text("x"), "not a directory"),
])
def test_source_path_must_be_a_directory(tmp_path, make, words):
    target = tmp_path / "model"
    make(target)
    with pytest.raises(ModelDirError) as info:
        ModelDirSource(str(target)).load()
    assert info.value.message == "path %s is not valid: %s; expected a local model directory" % (target, words)


def test_source_malformed_header_names_the_file(tmp_path):
    make_model(tmp_path, with_marker=False)
    write(tmp_path, "model-00002-of-00002.safetensors", struct.pack("<Q", 4) + b"nope")
    with pytest.raises(ModelDirError) as info:
        collect(tmp_path)
    assert info.value.message.startswith("model-00002-of-00002.safetensors: not a valid safetensors header")
