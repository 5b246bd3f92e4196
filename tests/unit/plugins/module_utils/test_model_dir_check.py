# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_dir_check: a model directory checked on its own (config, weights, shard index, safetensors headers,
completion marker)."""

import json
import os

from ansible_collections.llmops.deploy.plugins.module_utils.marker import build_marker, write_marker
from ansible_collections.llmops.deploy.plugins.module_utils.model_dir_check import check_model_dir

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
